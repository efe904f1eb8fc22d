"""The copier-mlops CLI: one-line errors for user mistakes, a working render otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from generator.project import dvc_summary, locked_stages, session_results

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


def test_new_says_when_the_data_path_matches_no_file(tmp_path: Path) -> None:
    answers = ["--no-tasks", "-d", "data_source=file", "-d", "target_column=y"]
    missing = cli("new", str(tmp_path / "a"), *answers, "-d", "data_path=data/source/*.csv")
    assert missing.returncode == 0, missing.stderr
    assert "note: data_path 'data/source/*.csv' matches no file yet" in missing.stderr
    (tmp_path / "mine.csv").write_text("x,y\n1,2\n")
    found = cli("new", str(tmp_path / "b"), *answers, "-d", f"data_path={tmp_path / 'mine.csv'}")
    assert found.returncode == 0, found.stderr
    assert "matches no file" not in found.stderr


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


# What `dvc status --json` printed on a project that ran its pipeline once, then had two modules edited.
STATUS_AFTER_EDITS = {
    "train": [{"changed deps": {"src/p/features.py": "modified"}}],
    "evaluate": [{"changed deps": {"src/p/features.py": "modified"}}],
}


def test_check_condenses_dvc_status_to_stage_names() -> None:
    stages = ["extract", "validate", "analyze", "prepare", "train", "evaluate", "accept"]
    never_run = {name: [{"changed outs": {f"out/{name}": "deleted"}}] for name in stages}
    assert dvc_summary(never_run, set()) == (
        "dvc: 7 stages not run yet (extract, validate, analyze, prepare, train, evaluate, accept);"
        " run `uv run dvc repro`"
    )
    assert dvc_summary(STATUS_AFTER_EDITS, set(stages)) == (
        "dvc: 2 stages changed (train, evaluate); run `uv run dvc repro`"
    )
    mixed = {"accept": [{"changed outs": {"models/acceptance.json": "deleted"}}], **STATUS_AFTER_EDITS}
    assert dvc_summary(mixed, set(stages) - {"accept"}).startswith(
        "dvc: 1 stage not run yet (accept), 2 stages changed"
    )
    assert dvc_summary({}, set(stages)) == "dvc: up to date"


def test_the_stages_that_ran_are_read_from_dvc_lock(tmp_path: Path) -> None:
    assert locked_stages(tmp_path) == set()
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  extract:\n    cmd: x\n  train:\n    cmd: y\n")
    assert locked_stages(tmp_path) == {"extract", "train"}
    (tmp_path / "dvc.lock").write_text("stages: [\n")
    assert locked_stages(tmp_path) == set()


def test_check_reads_each_nox_sessions_outcome_and_the_test_counts() -> None:
    output = [
        "nox > Running session lint",
        "All checks passed!",
        "nox > Session lint was successful in 2 seconds.",
        "nox > Running session typecheck",
        "Found 1 error in 1 file (checked 52 source files)",
        "nox > Session typecheck failed.",
        "nox > Running session tests",
        "........ [100%]",
        "\x1b[32m120 passed, 2 skipped in 31.20s\x1b[0m",
        "nox > Session tests was successful in 40 seconds.",
        "nox > Ran multiple sessions:",
        "nox > * lint: success",
    ]
    assert session_results(output) == {"lint": "ok", "typecheck": "failed", "tests": "120 passed, 2 skipped"}
    failing = ["=========== 3 failed, 117 passed in 12.01s ===========", "nox > Session tests failed."]
    assert session_results(failing) == {"tests": "3 failed, 117 passed"}
    floor = ["120 passed in 9.00s", "FAIL Required test coverage of 80% not reached.", "nox > Session tests failed."]
    assert session_results(floor) == {"tests": "120 passed (failed)"}
