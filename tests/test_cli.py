"""The copier-mlops CLI: one-line errors for user mistakes, a working render otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, project_env


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "generator", *args],
        cwd=cwd,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_one_line_error(completed: subprocess.CompletedProcess[str], message: str) -> None:
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("copier-mlops: error:")]
    assert len(errors) == 1, completed.stderr
    assert message in errors[0]
    assert "Traceback" not in completed.stderr


def test_new_renders_a_project(tmp_path: Path) -> None:
    dest = tmp_path / "proj"
    completed = cli("new", str(dest), "--no-tasks", "-d", "project_name=Demand Forecast", "-d", "task=regression")
    assert completed.returncode == 0, completed.stderr
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    assert answers["task"] == "regression"
    assert answers["project_slug"] == "demand-forecast"
    assert Path(answers["_src_path"]) == REPO
    assert (dest / "src" / "demand_forecast" / "cli.py").exists()


def test_non_empty_destination_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert_one_line_error(cli("new", str(tmp_path), "--no-tasks"), "is not empty")
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_unknown_answer_key_is_refused(tmp_path: Path) -> None:
    completed = cli("new", str(tmp_path / "p"), "--no-tasks", "-d", "tsak=regression")
    assert_one_line_error(completed, "unknown answer tsak")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("package_name=import", "is a Python keyword"),
        ("author_email=nobody", "author_email must look like"),
        ("task=ranking", "Invalid choice for 'task'"),
    ],
)
def test_invalid_answer_is_refused(tmp_path: Path, pair: str, message: str) -> None:
    completed = cli("new", str(tmp_path / "p"), "--no-tasks", "-d", pair)
    assert_one_line_error(completed, message)
    assert not (tmp_path / "p").exists()


def test_malformed_data_option_is_refused(tmp_path: Path) -> None:
    assert_one_line_error(cli("new", str(tmp_path / "p"), "-d", "task"), "--data expects KEY=VALUE")


def test_failed_setup_step_is_one_line(tmp_path: Path) -> None:
    # A demo into a project whose pipeline cannot run: `uv` is pointed at a missing binary.
    env = project_env() | {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    completed = subprocess.run(
        [sys.executable, "-m", "generator", "demo", str(tmp_path / "d")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if (Path(sys.executable).parent / "uv").exists():
        pytest.fail("uv is installed in the test environment; this test needs it absent from PATH")
    assert_one_line_error(completed, "uv not found")


def test_update_outside_a_generated_project_is_refused(tmp_path: Path) -> None:
    assert_one_line_error(cli("update", str(tmp_path)), "has no .copier-answers.yml")


def test_help_does_not_import_copier() -> None:
    code = "import sys, generator.cli as c; c.build_parser(); print('copier' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert completed.stdout.strip() == "False"


def test_check_outside_a_generated_project_is_refused(tmp_path: Path) -> None:
    assert_one_line_error(cli("check", str(tmp_path)), "has no .copier-answers.yml")
