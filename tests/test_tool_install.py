"""The CLI installed as a tool, as a user installs it: `uv build`, then `uv tool install` into a clean home.

Two wheels are built once per session from a temporary git copy of this repository, tagged v1.0.0 and
v1.1.0 (the second changes the template). The installed CLI renders a project from the template the
wheel carries, with no checkout and git restricted to local repositories (no GitHub), and after an
upgrade `copier-mlops update` and stock `copier update` bring the project to v1.1.0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, project_env
from .repo_copy import copy_repository, git

pytestmark = pytest.mark.e2e

MARKER = "Release 1.1.0 of the template was here."
# Variables that would point the tool at the outer environment's homes, tools, interpreter or modules.
LOCATIONS = ("XDG_", "UV_TOOL_", "UV_PYTHON", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME")


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """copier_mlops 1.0.0 and 1.1.0 wheels; the repository copy they were built from is deleted."""
    root = tmp_path_factory.mktemp("wheels")
    source = copy_repository(root / "source")
    built: dict[str, Path] = {}
    for version in ("1.0.0", "1.1.0"):
        if version == "1.1.0":
            readme = source / "template" / "README.md.jinja"
            readme.write_text(readme.read_text() + f"\n{MARKER}\n")
            git(source, "commit", "--quiet", "--all", "-m", "a template change")
        git(source, "tag", f"v{version}")
        out = root / version
        completed = subprocess.run(
            ["uv", "build", "--quiet", "--out-dir", str(out)],
            cwd=source,
            env=project_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        (built[version],) = out.glob("*.whl")
        if version == "1.0.0":
            (root / "files").write_text(git(source, "ls-files", "-z", "copier.yml", "template", "runtime"))
    shutil.rmtree(source)  # no checkout left to fall back on
    return built


def test_the_wheel_carries_the_template(wheels: dict[str, Path]) -> None:
    assert wheels["1.0.0"].name == "copier_mlops-1.0.0-py3-none-any.whl"  # the version comes from the tag
    tracked = (wheels["1.0.0"].parent.parent / "files").read_text().split("\0")
    expected = {f"generator/_template/{name}" for name in tracked if name}
    with zipfile.ZipFile(wheels["1.0.0"]) as wheel:
        packaged = {name for name in wheel.namelist() if name.startswith("generator/_template/")}
    assert packaged == expected


def tool_env(tmp_path: Path) -> dict[str, str]:
    """A fresh home and tool directory; the uv cache is shared so PyPI downloads are reused."""
    cache = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    outer = project_env()  # keeps the machine's network settings (certificates, proxies, package index)
    env = {key: value for key, value in outer.items() if not key.startswith(LOCATIONS)}
    path = [str(tmp_path / "bin")] + [
        entry for entry in os.environ["PATH"].split(os.pathsep) if entry and not Path(entry).is_relative_to(REPO)
    ]
    return env | {
        "HOME": str(tmp_path / "home"),
        "PATH": os.pathsep.join(path),
        "UV_TOOL_DIR": str(tmp_path / "tools"),
        "UV_TOOL_BIN_DIR": str(tmp_path / "bin"),
        "UV_CACHE_DIR": cache,
        "UV_PYTHON_DOWNLOADS": "never",
        "GIT_ALLOW_PROTOCOL": "file",  # git may read local repositories only: no GitHub, no network
    }


def run_tool(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, f"{' '.join(command)}\n{completed.stdout}\n{completed.stderr}"
    return completed


def answers(project: Path) -> dict[str, str]:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def test_installed_tool_renders_offline_and_updates_after_an_upgrade(wheels: dict[str, Path], tmp_path: Path) -> None:
    env = tool_env(tmp_path)
    work = tmp_path / "work"  # not the repository
    work.mkdir()
    tool = tmp_path / "bin" / "copier-mlops"
    install = ["uv", "tool", "install", "--quiet", "--python", sys.executable]
    run_tool([*install, str(wheels["1.0.0"])], work, env)
    assert run_tool([str(tool), "--version"], work, env).stdout.strip() == "copier-mlops 1.0.0"

    run_tool([str(tool), "new", "project", "--defaults"], work, env)
    project = work / "project"
    template_repo = tmp_path / "home" / ".local" / "share" / "copier-mlops" / "template"
    assert answers(project)["_src_path"] == str(template_repo)
    assert answers(project)["_commit"] == "v1.0.0"
    assert "github.com/copier-mlops" not in (project / "README.md").read_text()  # no link to a missing repository
    assert (project / "uv.lock").exists()  # the setup tasks ran: git init, uv lock, first commit
    (project / "NOTES.md").write_text("my notes\n")
    git(project, "add", "NOTES.md")
    git(project, "commit", "--quiet", "-m", "my notes")
    stock = shutil.copytree(project, work / "stock")  # the same project, for stock `copier update`

    run_tool([*install, "--force", str(wheels["1.1.0"])], work, env)  # what `uv tool upgrade` does
    run_tool([str(tool), "update", "project"], work, env)
    assert answers(project)["_commit"] == "v1.1.0"
    assert MARKER in (project / "README.md").read_text()
    assert (project / "NOTES.md").read_text() == "my notes\n"

    copier = tmp_path / "tools" / "copier-mlops" / "bin" / "copier"  # copier, from the tool's environment
    run_tool([str(copier), "update", "--trust", "--defaults", str(stock)], work, env)
    assert answers(stock)["_commit"] == "v1.1.0"
    assert MARKER in (stock / "README.md").read_text()
    assert (stock / "NOTES.md").read_text() == "my notes\n"
