"""Where the template comes from, and which questions it asks.

copier must get a git URL or a git checkout as the source, never a copy in site-packages
or a temporary folder: otherwise `_src_path` and `_commit` in the answers file are wrong
and `copier update` breaks.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import yaml

from .errors import GeneratorError

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_template() -> str:
    """This repository, when the package runs from a git checkout of it."""
    if (REPO_ROOT / "copier.yml").exists() and (REPO_ROOT / ".git").exists():
        return str(REPO_ROOT)
    raise GeneratorError("no template source found: pass --template with a git URL or a git checkout of copier-mlops")


def is_local(source: str) -> bool:
    return Path(source).expanduser().is_dir()


def default_ref(source: str) -> str | None:
    """HEAD for a local checkout (work in progress included); the newest tag for a URL."""
    return "HEAD" if is_local(source) else None


def question_names(source: str, vcs_ref: str | None) -> set[str]:
    """The template's question names, read from its copier.yml."""
    if is_local(source):
        return _questions_in(Path(source).expanduser())
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
    data = yaml.safe_load(config.read_text()) or {}
    return {key for key in data if not key.startswith("_")}
