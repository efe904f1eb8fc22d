"""mlops-runtime, the library generated projects import: typed, built with the template's version."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import project_env
from .repo_copy import copy_repository, git

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"


def test_the_library_type_checks() -> None:
    mypy = Path(sys.executable).parent / "mypy"
    completed = subprocess.run(
        [str(mypy), "src", "--config-file", "pyproject.toml"],
        cwd=RUNTIME,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_the_wheel_is_typed_and_takes_the_template_tag_as_its_version(tmp_path: Path) -> None:
    source = copy_repository(tmp_path / "copier-mlops")
    git(source, "tag", "v4.5.6")
    completed = subprocess.run(
        ["uv", "build", "--wheel", "--quiet", "--out-dir", str(tmp_path / "dist")],
        cwd=source / "runtime",
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == "mlops_runtime-4.5.6-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"mlops_runtime/py.typed", "mlops_runtime/testing.py", "mlops_runtime/checks/conftest.py"} <= names
    entry_points = archive_text(wheel, "mlops_runtime-4.5.6.dist-info/entry_points.txt")
    assert "mlops_runtime = mlops_runtime.testing" in entry_points  # the pytest plugin
    assert not any(name.startswith(("tests/", "conftest.py")) for name in names)


def archive_text(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode()
