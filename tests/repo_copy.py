"""A temporary git copy of this repository (its work in progress included) to tag and build freely."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .conftest import REPO, project_env


def git(cwd: Path, *args: str) -> str:
    completed = subprocess.run(["git", *args], cwd=cwd, env=project_env(), capture_output=True, text=True, check=False)
    assert completed.returncode == 0, f"git {' '.join(args)} failed:\n{completed.stderr}"
    return completed.stdout


def copy_repository(dest: Path) -> Path:
    """Clone this repository without its tags, then commit the checkout's uncommitted work on top."""
    git(REPO.parent, "clone", "--quiet", "--no-tags", str(REPO), str(dest))
    tracked = set(git(REPO, "ls-files", "-z").split("\0")) - {""}
    present = set(git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")) - {""}
    for name in present:
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for name in tracked:
        if not (REPO / name).exists():
            (dest / name).unlink(missing_ok=True)
    git(dest, "add", "--all")
    git(dest, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", "work in progress")
    return dest
