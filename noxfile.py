"""Sessions of copier-mlops. Run with `uv run nox -s NAME`; each uses this project's uv environment."""

import re
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]


def uv_run(session: nox.Session, *args: str) -> None:
    session.run("uv", "run", "--frozen", *args, external=True)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """Ruff on this repository; the render tests lint every rendered combination."""
    uv_run(session, "ruff", "check", ".")
    uv_run(session, "ruff", "format", "--check", ".")
    uv_run(session, "pytest", "-q", "tests/test_render.py", "-k", "lint")


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Fast tests: render matrix, CLI, repository checks."""
    uv_run(session, "pytest", "-q", "-m", "not e2e", *session.posargs)


@nox.session(python=False)
def e2e(session: nox.Session) -> None:
    """End-to-end tests: install generated projects and run their pipelines."""
    uv_run(session, "pytest", "-q", "-n", "2", "-m", "e2e", *session.posargs)


@nox.session(python=False)
def update(session: nox.Session) -> None:
    """Template update tests (copier update from one version to the next)."""
    uv_run(session, "pytest", "-q", "-k", "update", *session.posargs)


@nox.session(python=False)
def corpus(session: nox.Session) -> None:
    """Every real data set of tests/corpus through a generated project (CI runs the `ci: true` handful)."""
    session.run(
        "uv",
        "run",
        "--frozen",
        "pytest",
        "-q",
        "-n",
        "2",
        "-m",
        "corpus",
        "tests/test_corpus.py",
        *session.posargs,
        env={"CORPUS": "all"},
        external=True,
    )


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: JSON figures on stdout."""
    uv_run(session, "python", "benchmarks/pipeline.py", *session.posargs)


@nox.session(python=False)
def demo(session: nox.Session) -> None:
    """The Quickstart's main job."""
    uv_run(session, "copier-mlops", "demo", *(session.posargs or ["/tmp/mlops-demo"]))


# ---------------------------------------------------------------- releases
# The version's one home is its git tag, vX.Y.Z: the wheel's version comes from it (hatch-vcs) and a
# generated project records it as `_commit` in .copier-answers.yml. CHANGELOG.md says, per release,
# what a generated project gains and what an update touches.

REPO = Path(__file__).resolve().parent
SEMVER = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
CHANGELOG_SECTIONS = ("### Generated projects gain", "### An update touches")


class ReleaseError(Exception):
    """Why a version cannot be released; one line for the user."""


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {' '.join(completed.stderr.split())}")
    return completed.stdout


def parse_version(text: str) -> tuple[int, int, int]:
    match = SEMVER.fullmatch(text.strip())
    if not match:
        raise ReleaseError(f"{text!r} is not a release version: give MAJOR.MINOR.PATCH, for example 0.2.0")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def changelog_entry(changelog: str, version: str) -> str:
    """The CHANGELOG.md entry of `version` (heading `## X.Y.Z`), checked for both sections."""
    entries = re.split(r"^(?=## )", changelog, flags=re.MULTILINE)
    entry = next((e for e in entries if re.match(rf"## v?{re.escape(version)}\b", e)), None)
    if entry is None:
        raise ReleaseError(f"CHANGELOG.md has no entry for {version}: add a `## {version}` section")
    for heading in CHANGELOG_SECTIONS:
        body = entry.split(heading, 1)[1].split("\n#", 1)[0] if heading in entry else ""
        if not body.strip():
            raise ReleaseError(f"the CHANGELOG.md entry for {version} needs a non-empty `{heading}` section")
    return entry.strip()


def tag_release(repo: Path, requested: str) -> str:
    """Check the version and its changelog entry, then create the annotated tag (never pushed). Returns the tag."""
    version = ".".join(str(part) for part in parse_version(requested))
    released = [parse_version(tag) for tag in git(repo, "tag", "--list").split() if SEMVER.fullmatch(tag)]
    if released and parse_version(version) <= max(released):
        latest = ".".join(str(part) for part in max(released))
        raise ReleaseError(f"{version} is not newer than the last release, {latest}")
    if git(repo, "status", "--porcelain"):
        raise ReleaseError("the working tree has uncommitted changes: commit them (the changelog entry too) first")
    entry = changelog_entry((repo / "CHANGELOG.md").read_text(), version)
    tag = f"v{version}"
    git(repo, "tag", "--annotate", "--cleanup=verbatim", tag, "--message", f"copier-mlops {version}\n\n{entry}")
    return tag


@nox.session(python=False)
def release(session: nox.Session) -> None:
    """Tag a release: `uv run nox -s release -- X.Y.Z` (checks CHANGELOG.md and the version; does not push)."""
    if len(session.posargs) != 1:
        session.error("give the version to release: uv run nox -s release -- X.Y.Z")
    try:
        tag = tag_release(REPO, session.posargs[0])
    except ReleaseError as error:
        session.error(str(error))
    session.log(f"tagged {tag}; publish it with: git push origin {tag}")
