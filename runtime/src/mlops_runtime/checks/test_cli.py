"""The console script: light start-up, one readable message for user errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops_runtime.cli import STAGES, app, simulated_line, summary_line
from mlops_runtime.objective import TuningData
from mlops_runtime.testing import Project, assert_serve_refuses

HEAVY = ("pandas", "sklearn", "mlflow", "pandera", "matplotlib", "duckdb")


def test_start_up_imports_no_heavy_library(project: Project) -> None:
    imports = f"import sys, {project.package}.cli"
    code = f"{imports}; print([m for m in {HEAVY!r} if m in sys.modules])"
    path = os.pathsep.join([str(project.root / "src"), *sys.path])  # where the project is, installed or not
    env = os.environ | {"PYTHONPATH": path}
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert completed.stdout.strip() == "[]"


def test_every_stage_is_a_subcommand() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for stage in STAGES:
        assert stage.replace("_", "-") in result.output


def test_a_user_error_exits_1_without_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["extract"])
    assert result.exit_code == 1
    assert "params.yaml not found" in result.output
    assert "Traceback" not in result.output


def test_serve_without_a_model_is_one_clear_error(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("params.yaml", "schema.yaml"):
        source = project.root / name
        if source.exists():
            (tmp_path / name).write_text(source.read_text())
    if not (tmp_path / "schema.yaml").exists():  # file and SQL sources infer it on the first run
        (tmp_path / "schema.yaml").write_text(
            "target: {name: y, type: numeric, min: 0, max: 1}\n"
            "features: {x: {type: numeric, min: 0, max: 1, owner: t, pii: false}}\n"
        )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'absent.db'}")
    assert_serve_refuses(app, "no model at")
    assert not (tmp_path / "absent.db").exists()  # looking for a registry never creates one


def _tune_worker(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: str | None, *options: str
) -> str:
    """Run `tune-worker` in a copy of the project's params; it must exit 1 with one line, no traceback."""
    (tmp_path / "params.yaml").write_text((project.root / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    if storage is None:
        monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    else:
        monkeypatch.setenv("OPTUNA_STORAGE", storage)
    result = CliRunner().invoke(app, ["tune-worker", *options])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    return result.output


def test_tune_worker_needs_a_shared_storage(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "set OPTUNA_STORAGE" in _tune_worker(project, tmp_path, monkeypatch, None)


def test_tune_worker_without_prepared_data_says_what_to_run(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tuning_data: TuningData
) -> None:
    (tmp_path / "schema.yaml").write_text(tuning_data.contract.to_yaml())
    output = _tune_worker(project, tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'optuna.db'}")
    assert "data/prepared/train.parquet is missing" in output


def _with_prepared_data(tmp_path: Path, tuning_data: TuningData) -> None:
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    for name in ("train", "validation"):
        getattr(tuning_data, name).to_parquet(tmp_path / "data" / "prepared" / f"{name}.parquet")
    (tmp_path / "schema.yaml").write_text(tuning_data.contract.to_yaml())


def test_tune_worker_on_an_unreachable_database_fails_at_once(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tuning_data: TuningData
) -> None:
    _with_prepared_data(tmp_path, tuning_data)
    output = _tune_worker(
        project, tmp_path, monkeypatch, "postgresql://tuner:s3cret@127.0.0.1:9/optuna", "--wait", "600"
    )
    assert "cannot reach the tuning storage postgresql+psycopg://tuner:***@127.0.0.1:9/optuna" in output
    assert "s3cret" not in output


def test_tune_worker_waits_for_train_a_bounded_time(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tuning_data: TuningData
) -> None:
    _with_prepared_data(tmp_path, tuning_data)
    output = _tune_worker(project, tmp_path, monkeypatch, f"journal:{tmp_path / 'studies.log'}", "--wait", "0")
    assert "did not appear" in output.splitlines()[-1]


def test_tune_worker_refuses_sqlite_which_cannot_lock_a_trial_to_one_worker(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tuning_data: TuningData
) -> None:
    _with_prepared_data(tmp_path, tuning_data)
    output = _tune_worker(project, tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'optuna.db'}", "--wait", "0")
    assert "cannot be shared by several tuning processes" in output


@pytest.mark.parametrize(
    ("result", "url", "line"),
    [
        (
            {"rows": 2000, "predicted": 2000, "feedback": 1013, "model_version": "3"},
            "",
            "simulate: 2000 of 2000 rows predicted by model version 3 into the prediction log; 1013 with feedback",
        ),
        (
            {"rows": 50, "predicted": 48, "feedback": 20},
            "http://127.0.0.1:8000",
            "simulate: 48 of 50 rows predicted into http://127.0.0.1:8000; 20 with feedback",
        ),
    ],
)
def test_simulate_says_in_one_line_where_the_traffic_went(result: dict[str, object], url: str, line: str) -> None:
    assert simulated_line(result, url) == line


def test_a_stage_says_what_it_did_in_one_line_without_json() -> None:
    result = {
        "rows": 234,
        "valid": True,
        "test": {"r2": 0.912345, "rmse": 1.5},
        "possible_leaks": [],
        "output": "data/raw/data.parquet",
    }
    line = summary_line("extract", result)
    assert line == (
        "extract: rows 234; valid yes; test r2 0.9123, rmse 1.5; possible leaks none; output data/raw/data.parquet"
    )
