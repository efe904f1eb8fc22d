"""Where the template comes from, and which questions it asks.

copier must get a git URL or a git checkout as the source, never a copy in site-packages
or a temporary folder: otherwise `_src_path` and `_commit` in the answers file are wrong
and `copier update` breaks.

From a git checkout of this repository, the source is the checkout itself. Installed as a tool
(`uv tool install`), the wheel carries the template as package data (generator/_template); it is
committed into a local git repository, `$XDG_DATA_HOME/copier-mlops/template`, tagged `v<version>`
once per installed version. Projects record that repository as `_src_path` and the tag as
`_commit`, so `copier-mlops update` and stock `copier update` work offline; once a newer version of
the tool is installed and run, the repository holds both the old and the new version. It also holds
generator/migrate.py, at the path copier.yml's `_migrations` call it in a checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

import yaml

from .errors import GeneratorError

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGED = Path(__file__).resolve().parent / "_template"  # only in a built wheel
MIGRATE = Path(__file__).resolve().parent / "migrate.py"  # the steps `_migrations` run (see migrate.py)


def version() -> str:
    """This tool's version: the git tag it was built from (hatch-vcs), e.g. 0.2.0."""
    try:
        return metadata.version("copier-mlops")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def installed_template_repo() -> Path:
    """The local git repository that holds each installed version of the packaged template."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(data_home) / "copier-mlops" / "template").absolute()


def installed_tag() -> str:
    return f"v{version()}"


def default_template() -> str:
    """This repository when run from a git checkout of it; else the template the wheel carries."""
    if (REPO_ROOT / "copier.yml").exists() and (REPO_ROOT / ".git").exists():
        return str(REPO_ROOT)
    if (PACKAGED / "copier.yml").exists():
        return str(sync_installed_template())
    raise GeneratorError("no template source found: pass --template with a git URL or a git checkout of copier-mlops")


def sync_installed_template() -> Path:
    """Commit the packaged template into the local template repository, tagged with this version.

    A version is written once: later runs of the same version find its tag and change nothing.
    """
    repo = installed_template_repo()
    tag = installed_tag()
    try:
        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True, exist_ok=True)
            git(repo, "init", "--quiet", "--initial-branch=main")
        if tag in git(repo, "tag", "--list", tag).split():
            return repo
        for child in repo.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        shutil.copytree(PACKAGED, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (repo / "generator").mkdir()
        shutil.copy2(MIGRATE, repo / "generator" / "migrate.py")
    except OSError as error:
        message = f"cannot write the template to {repo} ({error}): set XDG_DATA_HOME to a writable folder"
        raise GeneratorError(message) from None
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", f"copier-mlops {version()}")
    git(repo, "tag", tag)
    return repo


def is_installed_template(source: str) -> bool:
    """True when `source` (a project's `_src_path`) is the local repository of the installed template."""
    return (PACKAGED / "copier.yml").exists() and Path(source).expanduser().absolute() == installed_template_repo()


def is_local(source: str) -> bool:
    return Path(source).expanduser().is_dir()


def default_ref(source: str) -> str | None:
    """The installed version's tag; HEAD for a checkout (work in progress included); the newest tag for a URL."""
    if is_installed_template(source):
        return installed_tag()
    return "HEAD" if is_local(source) else None


def question_names(source: str, vcs_ref: str | None) -> set[str]:
    """The template's question names, read from its copier.yml (at `vcs_ref` in a local git repository)."""
    if is_local(source):
        template = Path(source).expanduser()
        if vcs_ref and vcs_ref != "HEAD" and (template / ".git").exists():
            return _question_names_in(git(template, "show", f"{vcs_ref}:copier.yml"))
        return _questions_in(template)
    with tempfile.TemporaryDirectory(prefix="copier-mlops-") as folder:
        command = ["git", "clone", "--quiet", "--depth", "1", source, folder]
        if vcs_ref and vcs_ref != "HEAD":
            command[3:3] = ["--branch", vcs_ref]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as error:
            raise GeneratorError(f"cannot fetch the template from {source}: {error}") from None
        return _questions_in(Path(folder))


def _questions_in(folder: Path) -> set[str]:
    config = folder / "copier.yml"
    if not config.exists():
        raise GeneratorError(f"{folder} is not a copier template (no copier.yml)")
    return _question_names_in(config.read_text())


def _question_names_in(config: str) -> set[str]:
    data = yaml.safe_load(config) or {}
    return {key for key in data if not key.startswith("_")}


def git(repo: Path, *args: str) -> str:
    """git in `repo`, independent of the user's git configuration (identity, signing, hooks)."""
    command = ["git", "-c", "user.name=copier-mlops", "-c", "user.email=copier-mlops@localhost"]
    command += ["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args]
    try:
        completed = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise GeneratorError("git not found: install git") from None
    if completed.returncode != 0:
        message = " ".join(completed.stderr.split()) or f"exit code {completed.returncode}"
        raise GeneratorError(f"`git {' '.join(args)}` failed in {repo}: {message}")
    return completed.stdout
