"""Privacy: pii fields never reach the prediction log, and `purge` deletes what is past its retention."""

import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mlops_runtime.cli import app
from mlops_runtime.files import write_json
from mlops_runtime.monitoring.profile import build_profile
from mlops_runtime.monitoring.simulate import Scenario, traffic
from mlops_runtime.monitoring.simulate import records as simulated_records
from mlops_runtime.objective import TuningData
from mlops_runtime.params import ProfileParams
from mlops_runtime.schema import Contract
from mlops_runtime.serving.app import create_app
from mlops_runtime.serving.config import ServingConfig
from mlops_runtime.serving.loader import from_local
from mlops_runtime.serving.predlog import (
    PredictionLog,
    create_tables,
    feedback,
    make_engine,
    predictions,
    refusals,
    shadow_predictions,
)
from mlops_runtime.testing import MAX_RECORDS, records

DAY = 86_400.0
NOW = time.time()
MARKER = "purge-me-4f1e"  # a value only the old rows hold, to look for in the database files


def with_pii(contract: Contract, name: str) -> Contract:
    """The contract with feature `name` marked pii (the model's features are the same)."""
    return replace(contract, features=tuple(replace(c, pii=c.name == name) for c in contract.features))


@pytest.mark.ml_test_score("D5")
def test_pii_fields_never_reach_the_log_and_the_answer_is_unchanged(
    config: ServingConfig, tuning_data: TuningData
) -> None:
    private = tuning_data.contract.numeric_features[0]
    (config.paths.schema).write_text(with_pii(tuning_data.contract, private).to_yaml())
    rows = records(tuning_data, 5)

    with TestClient(create_app(config)) as client:
        response = client.post("/predict", json=rows)

    assert response.status_code == 200, response.text
    loaded = from_local(tuning_data.task, config.model_path, config.paths)
    expected = loaded.predict(tuning_data.contract.frame(rows))  # the full rows, pii field included
    answers = [{k: v for k, v in answer.items() if k != "request_id"} for answer in response.json()["predictions"]]
    assert answers == expected
    logged = [json.loads(text) for text in pd.read_sql_table("predictions", config.prediction_log_url)["input"]]
    assert len(logged) == 5
    for row in logged:
        assert private not in row
        assert set(row) == set(tuning_data.contract.feature_names) - {private}


@pytest.mark.ml_test_score("D5")
def test_monitoring_judges_the_other_features_of_a_log_without_pii(
    config: ServingConfig, tuning_data: TuningData, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract, private = tuning_data.contract, tuning_data.contract.numeric_features[0]
    profile = build_profile(
        from_local(tuning_data.task, config.model_path, config.paths).model,
        contract,
        tuning_data.train,
        tuning_data.validation,
        tuning_data.task,
        ProfileParams(),
    )
    write_json(config.paths.model_profile, profile)  # from the training data, pii feature included
    config.paths.schema.write_text(with_pii(contract, private).to_yaml())
    features, _ = traffic(contract, pd.concat([tuning_data.validation] * 2), 300, Scenario(), seed=0)
    rows = simulated_records(features, contract)
    with TestClient(create_app(config)) as client:
        for start in range(0, len(rows), MAX_RECORDS):
            assert client.post("/predict", json=rows[start : start + MAX_RECORDS]).status_code == 200
    monkeypatch.chdir(config.paths.root)
    monkeypatch.setenv("MLFLOW_TRACKING", "off")
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", config.prediction_log_url)
    monkeypatch.delenv("MONITOR_WEBHOOK_URL", raising=False)

    result = CliRunner().invoke(app, ["monitor"])

    assert result.exit_code == 0, result.output
    (folder,) = (config.paths.monitoring_dir).glob("*Z")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["window"]["rows"] == 300
    assert summary["window"]["corrupt_rows"] == 0  # no row is refused for its missing pii field
    (version,) = summary["versions"].values()
    judged = {check["check"] for check in version["checks"]}
    assert {f"drift:{name}" for name in contract.feature_names if name != private} <= judged
    assert not {f"drift:{private}", f"missing:{private}"} & judged


def seed_log(url: str) -> None:
    """Two predictions 40 days old, one a day old; each labelled; refusals at the same ages."""
    engine = make_engine(url)
    create_tables(engine)
    ages = {"old-1": 40, "old-2": 40, "new-1": 1}
    with engine.begin() as connection:
        connection.execute(
            predictions.insert(),
            [
                {
                    "request_id": request_id,
                    "created_at": NOW - days * DAY,
                    "model_version": "local-test",
                    "input": json.dumps({"note": MARKER if days > 30 else "recent"}),
                    "output": json.dumps({"prediction": 1.0}),
                    "latency_ms": 1.0,
                }
                for request_id, days in ages.items()
            ],
        )
        connection.execute(
            feedback.insert(),
            [
                {"request_id": request_id, "label": "1", "created_at": NOW - days * DAY}
                for request_id, days in ages.items()
            ],
        )
        connection.execute(
            refusals.insert(),
            [{"created_at": NOW - days * DAY, "reason": "contract", "fields": "age"} for days in (45, 31, 2)],
        )
        connection.execute(
            shadow_predictions.insert(),
            [
                {
                    "request_id": request_id,
                    "created_at": NOW - days * DAY,
                    "model_version": "2",
                    "role": "challenger",
                    "output": json.dumps({"prediction": 2.0}),
                    "latency_ms": 1.0,
                }
                for request_id, days in ages.items()
            ],
        )
    engine.dispose()


def table(url: str, name: str) -> pd.DataFrame:
    return pd.read_sql_table(name, url)


def log_bytes(folder: Path) -> bytes:
    """Everything SQLite keeps of the log on disk: the database, its write-ahead log and shared memory."""
    return b"".join(path.read_bytes() for path in sorted(folder.glob("predictions.db*")))


@pytest.mark.ml_test_score("D5")
def test_purge_deletes_exactly_the_rows_older_than_the_cutoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    seed_log(url)
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", url)

    result = CliRunner().invoke(app, ["purge", "--older-than", "30"])

    assert result.exit_code == 0, result.output
    assert "deleted 2 predictions, 2 feedback rows and 2 refusals" in result.output
    assert "and 2 answers of a challenger in shadow" in result.output
    assert table(url, "predictions")["request_id"].tolist() == ["new-1"]
    assert table(url, "shadow_predictions")["request_id"].tolist() == ["new-1"]
    assert table(url, "feedback")["request_id"].tolist() == ["new-1"]
    assert table(url, "refusals")["created_at"].tolist() == [pytest.approx(NOW - 2 * DAY)]


@pytest.mark.ml_test_score("D5")
def test_purged_rows_cannot_be_read_back_from_the_database_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    seed_log(url)
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", url)
    service = PredictionLog(url)  # a running service keeps the log open: SQLite does not clean up on close
    assert service.count() == 3
    assert MARKER.encode() in log_bytes(tmp_path)

    assert CliRunner().invoke(app, ["purge", "--older-than", "30"]).exit_code == 0

    assert MARKER.encode() not in log_bytes(tmp_path)
    assert b"recent" in log_bytes(tmp_path)
    service.close()


@pytest.mark.ml_test_score("D5")
@pytest.mark.parametrize("days", ["0", "-3", "thirty", "nan", "inf", ""])
def test_purge_with_a_bad_number_of_days_is_one_clear_error(
    days: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    seed_log(url)
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", url)

    result = CliRunner().invoke(app, ["purge", "--older-than", days])

    assert result.exit_code == 1
    assert f"--older-than takes a positive number of days, got {days!r}" in result.output
    assert "Traceback" not in result.output
    assert len(table(url, "predictions")) == 3


@pytest.mark.ml_test_score("D5")
def test_purge_without_a_log_is_one_clear_error_and_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", f"sqlite:///{tmp_path / 'absent.db'}")

    result = CliRunner().invoke(app, ["purge", "--older-than", "30"])

    assert result.exit_code == 1
    assert "no prediction log at" in result.output
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.ml_test_score("D5")
def test_purge_refuses_a_database_that_is_not_a_prediction_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{other}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE runs (id INTEGER)")
    engine.dispose()
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", f"sqlite:///{other}")

    result = CliRunner().invoke(app, ["purge", "--older-than", "30"])

    assert result.exit_code == 1
    assert "is not a prediction log" in result.output
