"""The prediction log keeps every answered prediction: committed before the answer, spooled to the local journal
while its database refuses writes, written back once when it is back; a full journal refuses predictions."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlops_runtime.objective import TuningData
from mlops_runtime.serving.app import create_app
from mlops_runtime.serving.config import ServingConfig
from mlops_runtime.serving.predlog import PredictionLog, create_tables, make_engine, predictions
from mlops_runtime.testing import records

pytestmark = pytest.mark.parametrize("task", ["binary_classification"])  # the log does not depend on the task


@contextmanager
def locked(database: Path) -> Iterator[None]:
    """Another process's write lock on the SQLite log (as a long purge or a stuck writer holds it)."""
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def logged_ids(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return [row[0] for row in connection.execute("SELECT request_id FROM predictions")]


def wait_until_written_back(client: TestClient, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while (state := client.get("/ready").json().get("prediction_log")) != "writing to its database":
        assert time.monotonic() < deadline, f"the journal was not written back: {state}"
        time.sleep(0.2)


def spooled_gauge(client: TestClient) -> float:
    line = next(line for line in client.get("/metrics").text.splitlines() if line.startswith("prediction_log_spooled"))
    return float(line.split()[-1])


def test_predictions_answered_while_the_sqlite_log_is_locked_are_written_back_once(
    config: ServingConfig, tuning_data: TuningData, tmp_path: Path
) -> None:
    database = Path(config.prediction_log_url.removeprefix("sqlite:///"))
    config = replace(config, log_journal_dir=tmp_path / "journal")
    answered: list[str] = []
    with TestClient(create_app(config)) as client:
        assert client.get("/ready").json()["prediction_log"] == "writing to its database"
        with locked(database):
            for row in records(tuning_data, 12):
                answer = client.post("/predict", json=row)
                assert answer.status_code == 200
                answered.append(answer.json()["predictions"][0]["request_id"])
            ready = client.get("/ready").json()
            assert ready["prediction_log"].startswith("12 rows spooled to the local journal"), ready
            assert "the database refuses writes since" in ready["prediction_log"]
            assert spooled_gauge(client) == 12
        wait_until_written_back(client)
        assert spooled_gauge(client) == 0
        answered.append(client.post("/predict", json=records(tuning_data, 1)[0]).json()["predictions"][0]["request_id"])
    ids = logged_ids(database)
    assert sorted(ids) == sorted(answered)  # every answer once, nothing else


def test_a_full_journal_refuses_predictions_and_answers_none_it_could_not_log(
    config: ServingConfig, tuning_data: TuningData, tmp_path: Path
) -> None:
    database = Path(config.prediction_log_url.removeprefix("sqlite:///"))
    config = replace(config, log_journal_dir=tmp_path / "journal", log_journal_max_rows=5)
    row = records(tuning_data, 1)[0]
    with TestClient(create_app(config)) as client:
        with locked(database):
            statuses = [client.post("/predict", json=row).status_code for _ in range(5)]
            refused = client.post("/predict", json=row)
            ready = client.get("/ready")
        assert statuses == [200] * 5
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert "journal holds 5 rows" in refused.json()["detail"]
        assert ready.status_code == 503
        assert "full: predictions are refused" in ready.json()["detail"]
        wait_until_written_back(client)
        assert client.post("/predict", json=row).status_code == 200
    assert len(logged_ids(database)) == 6


def test_the_journal_of_a_process_that_died_is_written_back_once(config: ServingConfig, tmp_path: Path) -> None:
    """A file no living process holds: the next log to open writes it to the database; a prediction already there
    (a write-back cut short by the crash) is not logged twice; a last line cut short (never answered) is skipped."""
    database = Path(config.prediction_log_url.removeprefix("sqlite:///"))
    journal = tmp_path / "journal"
    journal.mkdir()
    row = {"created_at": 1.0, "model_version": "1", "input": "{}", "output": "{}", "latency_ms": 1.0}
    rows = [row | {"request_id": f"{number:032x}"} for number in range(3)]
    entries = [{"table": "predictions", "row": logged} for logged in rows]
    dead = journal / "journal-999999-deadbeef.jsonl"
    dead.write_text("".join(json.dumps(entry) + "\n" for entry in entries) + '{"table": "predictions", "ro')
    engine = make_engine(config.prediction_log_url)
    create_tables(engine)
    with engine.begin() as connection:  # the first one was written before the crash
        connection.execute(predictions.insert(), [rows[0]])
    engine.dispose()

    log = PredictionLog(config.prediction_log_url, journal_dir=journal)
    try:
        log.flush()
        assert sorted(logged_ids(database)) == [f"{number:032x}" for number in range(3)]
        assert not dead.exists()
    finally:
        log.close()
