"""Releases: `nox -s release` checks the version and its CHANGELOG.md entry, then tags; renders record the tag.

Every test works on a temporary git copy of this repository: no tag is created here, none is pushed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, project_env
from .repo_copy import copy_repository, git

ENTRY = """## {version}

### Generated projects gain

- a docs session.

### An update touches

- noxfile.py (a new session).

"""


def add_entry(repo: Path, version: str, entry: str = ENTRY) -> None:
    """Put a CHANGELOG.md entry for `version` above the newest one, and commit it."""
    changelog = repo / "CHANGELOG.md"
    intro, first_heading, rest = changelog.read_text().partition("\n## ")
    changelog.write_text(intro + "\n" + entry.format(version=version) + first_heading.lstrip("\n") + rest)
    git(repo, "commit", "--quiet", "--all", "-m", f"changelog for {version}")


def nox_release(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "nox", "--noxfile", str(repo / "noxfile.py"), "-s", "release", "--", *args]
    env = project_env()
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False)


def tags(repo: Path) -> list[str]:
    return git(repo, "tag", "--list").split()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repository(tmp_path / "repo")


def test_release_creates_an_annotated_tag_that_a_render_records(repo: Path, tmp_path: Path) -> None:
    import copier

    add_entry(repo, "1.0.0")
    completed = nox_release(repo, "1.0.0")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert tags(repo) == ["v1.0.0"]
    assert git(repo, "cat-file", "-t", "v1.0.0").strip() == "tag"  # annotated
    message = git(repo, "tag", "--list", "--format=%(contents)", "v1.0.0")
    assert "### An update touches" in message
    assert "noxfile.py (a new session)" in message
    assert not git(REPO, "tag", "--list", "v1.0.0").strip()  # nothing pushed back to the origin

    project = tmp_path / "project"
    copier.run_copy(str(repo), project, defaults=True, unsafe=True, skip_tasks=True, quiet=True)  # newest tag
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v1.0.0"
    assert answers["_src_path"] == str(repo)


def test_release_refuses_a_version_that_is_not_semver(repo: Path) -> None:
    completed = nox_release(repo, "1.0")
    assert completed.returncode != 0
    assert "'1.0' is not a release version" in completed.stderr
    assert tags(repo) == []


def test_release_refuses_a_version_not_newer_than_the_last_tag(repo: Path) -> None:
    git(repo, "tag", "v2.0.0")
    add_entry(repo, "1.5.0")
    completed = nox_release(repo, "1.5.0")
    assert completed.returncode != 0
    assert "1.5.0 is not newer than the last release, 2.0.0" in completed.stderr
    assert tags(repo) == ["v2.0.0"]


def test_release_refuses_a_version_without_a_changelog_entry(repo: Path) -> None:
    completed = nox_release(repo, "3.0.0")
    assert completed.returncode != 0
    assert "CHANGELOG.md has no entry for 3.0.0" in completed.stderr
    assert tags(repo) == []


@pytest.mark.parametrize(
    "entry",
    [
        "## {version}\n\n### Generated projects gain\n\n- a docs session.\n\n",
        "## {version}\n\n### Generated projects gain\n\n- a docs session.\n\n### An update touches\n\n",
    ],
    ids=["missing", "empty"],
)
def test_release_refuses_an_entry_that_does_not_say_what_an_update_touches(repo: Path, entry: str) -> None:
    add_entry(repo, "1.0.0", entry)
    completed = nox_release(repo, "1.0.0")
    assert completed.returncode != 0
    assert "needs a non-empty `### An update touches` section" in completed.stderr
    assert tags(repo) == []


def test_release_refuses_a_dirty_tree(repo: Path) -> None:
    add_entry(repo, "1.0.0")
    (repo / "template" / "NEW.md").write_text("not committed\n")
    completed = nox_release(repo, "1.0.0")
    assert completed.returncode != 0
    assert "uncommitted changes" in completed.stderr
    assert tags(repo) == []


def test_changelog_entries_are_complete_and_newest_first() -> None:
    from noxfile import changelog_entry, parse_version

    changelog = (REPO / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## (\S+)", changelog, flags=re.MULTILINE)
    assert versions, "CHANGELOG.md has no release entry"
    for version in versions:
        changelog_entry(changelog, version)
    parsed = [parse_version(version) for version in versions]
    assert parsed == sorted(parsed, reverse=True)
