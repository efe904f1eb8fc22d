"""Shadow mode on a real MLflow registry and a real prediction log: the champion answers, the challenger scores
the same rows off the request path, `monitor` compares them, `promote` asks for their record, `/reload` moves."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow.sklearn
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mlops_runtime import registry, tracking
from mlops_runtime.cli import app
from mlops_runtime.files import plain
from mlops_runtime.metrics import is_classification
from mlops_runtime.monitoring.shadow import promotion_refusal, read_shadow
from mlops_runtime.objective import TuningData, fit_model
from mlops_runtime.params import PromoteParams
from mlops_runtime.serving.app import create_app
from mlops_runtime.serving.config import ServingConfig
from mlops_runtime.serving.loader import LoadedModel
from mlops_runtime.serving.predlog import PredictionLog, create_tables, make_engine, predictions, shadow_predictions
from mlops_runtime.serving.shadow import Shadow
from mlops_runtime.stages.train import model_save_options
from mlops_runtime.testing import FEEDBACK_TOKEN, RELOAD_TOKEN, records

pytestmark = pytest.mark.slow
ROWS = 120


@pytest.fixture
def registered(
    service_root: Path, tuning_data: TuningData, config: ServingConfig, monkeypatch: pytest.MonkeyPatch
) -> ServingConfig:
    """v1 (fit on shuffled labels: no better than chance) the champion, v2 (fit on the labels) the challenger, in
    the service folder's own store; the service serves from the registry with v2 in shadow."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{service_root / 'mlflow.db'}")
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", config.prediction_log_url)
    monkeypatch.chdir(service_root)  # MLflow writes artifacts relative to the working folder
    name = yaml.safe_load((service_root / "params.yaml").read_text())["mlflow"]["registered_model"]
    client = tracking.client()
    target = tuning_data.contract.target.name
    train = tuning_data.train
    shuffled = train.assign(**{target: train[target].sample(frac=1.0, random_state=0).to_numpy()})
    for rows in (shuffled, train):
        model = fit_model(tuning_data, "linear", {}, seed=0, frame=rows)
        with tracking.start_run("tests"):
            uri = mlflow.sklearn.log_model(model, name="model", **model_save_options(tuning_data)).model_uri
        version = registry.register(client, name, uri, {"metrics": "{}"})
        if version == "1":
            registry.set_champion(client, name, version)
    return replace(config, model_source="registry", shadow_alias="challenger")


def serve_labelled_traffic(client: TestClient, tuning_data: TuningData) -> dict[str, Any]:
    """ROWS requests answered, each labelled; GET /model once the challenger has scored them all and its answers
    are in the log."""
    labels = tuning_data.validation[tuning_data.contract.target.name].head(ROWS)
    rows = records(tuning_data, ROWS)
    predictions = []
    for start in range(0, ROWS, 40):  # requests of 40 rows (the test service takes at most 50)
        answer = client.post("/predict", json=rows[start : start + 40])
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "1"
        predictions += answer.json()["predictions"]
    for prediction, label in zip(predictions, labels, strict=True):
        body = {"request_id": prediction["request_id"], "label": plain(label)}
        stored = client.post("/feedback", json=body, headers={"authorization": f"Bearer {FEEDBACK_TOKEN}"})
        assert stored.status_code == 201, stored.text
    deadline = time.monotonic() + 60
    while client.get("/model").json()["shadow"]["scored"] < ROWS and time.monotonic() < deadline:
        time.sleep(0.05)
    client.app.state.service.log.flush()  # type: ignore[attr-defined]  # the app is FastAPI's
    info: dict[str, Any] = client.get("/model").json()
    return info


def set_promote_params(root: Path, **values: Any) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["promote"] = values
    (root / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.ml_test_score("I7")
def test_the_challenger_in_shadow_is_compared_then_promoted_and_served(
    registered: ServingConfig, tuning_data: TuningData, service_root: Path
) -> None:
    with TestClient(create_app(registered)) as client:
        info = serve_labelled_traffic(client, tuning_data)
        assert info["version"] == "1"
        assert info["shadow"] == {"version": "2", "role": "challenger", "scored": ROWS, "dropped": 0, "failed": 0}

        monitored = CliRunner().invoke(app, ["monitor"])
        assert monitored.exit_code in (0, 3), monitored.output
        assert f"shadow: v2 against champion v1 on {ROWS} requests ({ROWS} labelled)" in monitored.output
        (summary_file,) = (service_root / "reports" / "monitoring").glob("*/summary.json")
        (shadow,) = json.loads(summary_file.read_text())["shadow"]
        metric = shadow["metric"]
        assert (shadow["rows"], shadow["labelled"]) == (ROWS, ROWS)
        low, high = shadow[f"challenger_{metric}"]["interval"]
        assert low <= shadow[f"challenger_{metric}"]["value"] <= high
        assert 'id="shadow"' in (summary_file.parent / "report.html").read_text()

        set_promote_params(service_root, shadow_min_rows=ROWS + 1)
        refused = CliRunner().invoke(app, ["promote", "2"])
        assert refused.exit_code == 1
        assert f"version 2 has {ROWS} labelled requests in shadow; promote.shadow_min_rows asks for {ROWS + 1}" in (
            refused.output
        )
        assert "Traceback" not in refused.output

        set_promote_params(service_root, shadow_min_rows=ROWS)  # v2 learnt the labels, v1 noise: not worse
        promoted = CliRunner().invoke(app, ["promote", "2"])
        assert promoted.exit_code == 0, promoted.output
        assert f"shadow: v2 against champion v1 on {ROWS} requests" in promoted.output
        assert "champion is now v2 (was v1)" in promoted.output

        reloaded = client.post("/reload", headers={"authorization": f"Bearer {RELOAD_TOKEN}"})
        assert reloaded.json() == {"reloaded": True, "previous_version": "1", "version": "2"}
        served = client.get("/model").json()
        assert (served["version"], served["shadow"]) == ("2", None)  # the challenger serves: nothing to shadow


def test_a_challenger_worse_on_the_same_requests_is_not_promoted() -> None:
    entry = {
        "challenger": "2",
        "labelled": 500,
        "metric": "roc_auc",
        "challenger_roc_auc": {"value": 0.70, "interval": [0.66, 0.74]},
        "champion_roc_auc": {"value": 0.80, "interval": [0.76, 0.84]},
    }
    refusal = promotion_refusal(entry, "2", PromoteParams(shadow_min_rows=100))
    assert refusal is not None
    assert "worse than the champion on the same 500 labelled requests: roc_auc 0.7 [0.66, 0.74]" in refusal
    assert promotion_refusal(entry, "2", PromoteParams(shadow_min_rows=100, shadow_tolerance=0.2)) is None
    assert promotion_refusal(entry, "2", PromoteParams()) is None  # no record asked for


def test_shadow_mode_needs_the_registry(config: ServingConfig) -> None:
    from mlops_runtime.errors import StageError

    with (
        pytest.raises(StageError, match=r"shadow mode \(SERVE_SHADOW=challenger\) needs the model registry"),
        TestClient(create_app(replace(config, shadow_alias="challenger"))),
    ):
        pass


@pytest.mark.parametrize("value", ["champion", "chall enger"])
def test_a_shadow_alias_that_cannot_be_one_is_one_clear_error(value: str) -> None:
    from mlops_runtime.errors import StageError

    with pytest.raises(StageError, match="SERVE_SHADOW names the registry alias"):
        ServingConfig.from_env({"SERVE_SHADOW": value})


def test_the_shadow_columns_of_the_log_are_read_back(registered: ServingConfig, tuning_data: TuningData) -> None:
    with TestClient(create_app(registered)) as client:
        serve_labelled_traffic(client, tuning_data)
    logged = pd.read_sql_table("shadow_predictions", registered.prediction_log_url)
    assert len(logged) == ROWS
    assert set(logged["role"]) == {"challenger"}
    assert set(logged["model_version"]) == {"2"}
    assert (logged["latency_ms"] > 0).all()


def test_an_unreadable_shadow_row_is_left_out_and_a_log_without_shadow_reads_empty(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    assert len(read_shadow(url, 0, 1e12, []).rows) == 0  # no log yet: nothing, and no file made
    assert not (tmp_path / "predictions.db").exists()
    engine = make_engine(url)
    create_tables(engine)
    answer = json.dumps({"prediction": 1.5})
    with engine.begin() as connection:
        for request_id, shadow_output in (("good", answer), ("broken", "{not json"), ("list", "[1]")):
            connection.execute(
                predictions.insert().values(
                    request_id=request_id, created_at=10.0, model_version="1", input="{}", output=answer, latency_ms=2.0
                )
            )
            connection.execute(
                shadow_predictions.insert().values(
                    request_id=request_id,
                    created_at=10.0,
                    model_version="2",
                    role="challenger",
                    output=shadow_output,
                    latency_ms=1.0,
                )
            )
    engine.dispose()

    pairs = read_shadow(url, 0, 20, [])

    assert pairs.rows["request_id"].tolist() == ["good"]
    assert pairs.rows[["champion", "challenger", "challenger_prediction"]].iloc[0].tolist() == ["1", "2", 1.5]


def eventually(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


def challenger(tuning_data: TuningData, model: Any) -> LoadedModel:
    return LoadedModel(model, tuning_data.task, "model", "2", "registry").for_requests(tuning_data.contract)


def test_the_scorer_process_answers_as_the_model_does_and_its_death_costs_the_champion_nothing(
    tuning_data: TuningData, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    log = PredictionLog(url)
    loaded = challenger(tuning_data, fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train))
    shadow = Shadow(loaded, tuning_data.contract, log)
    rows = records(tuning_data, 30)
    shadow.submit([f"r{i}" for i in range(30)], rows)
    eventually(lambda: shadow.scored == 30, "30 rows scored")
    log.flush()
    logged = pd.read_sql_table("shadow_predictions", url)
    assert logged["request_id"].tolist() == [f"r{i}" for i in range(30)]
    assert [json.loads(output) for output in logged["output"]] == loaded.predict(tuning_data.contract.columns(rows))

    assert shadow.scorer_pid is not None
    os.kill(shadow.scorer_pid, signal.SIGKILL)  # out of memory, say
    shadow.submit([f"s{i}" for i in range(10)], rows[:10])
    eventually(lambda: shadow.failed == 10, "the rows after its death counted as failed")
    assert (shadow.scored, shadow.dropped) == (30, 0)
    assert "the challenger (version 2) failed to score: its process ended" in caplog.text
    shadow.close()
    log.close()


def test_a_challenger_that_fails_to_score_is_counted_and_reported_once(
    tuning_data: TuningData, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    never_fitted = LogisticRegression() if is_classification(tuning_data.task) else LinearRegression()
    log = PredictionLog(f"sqlite:///{tmp_path / 'predictions.db'}")
    shadow = Shadow(challenger(tuning_data, never_fitted), tuning_data.contract, log)
    rows = records(tuning_data, 20)
    for start in (0, 10):  # two model calls
        shadow.submit([f"r{i}" for i in range(start, start + 10)], rows[start : start + 10])
        eventually(lambda: shadow.failed == start + 10, f"{start + 10} rows failed")  # noqa: B023 - awaited here
    shadow.close()
    log.close()
    assert shadow.scored == 0
    assert caplog.text.count("the challenger (version 2) failed to score: NotFittedError") == 1
    assert "Traceback" not in caplog.text


def test_a_challenger_that_cannot_reach_its_scorer_process_is_one_clear_error(
    tuning_data: TuningData, tmp_path: Path
) -> None:
    from mlops_runtime.errors import StageError

    unpicklable = LoadedModel(lambda rows: rows, tuning_data.task, "model", "2", "registry")  # as a live handle is
    log = PredictionLog(f"sqlite:///{tmp_path / 'predictions.db'}")
    with pytest.raises(StageError, match=r"the challenger \(version 2\) cannot be handed to its scorer process"):
        Shadow(unpicklable, tuning_data.contract, log)
    log.close()


def test_a_backlog_past_its_bound_is_dropped_and_counted(tuning_data: TuningData, tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'predictions.db'}")
    loaded = challenger(tuning_data, fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train))
    shadow = Shadow(loaded, tuning_data.contract, log, max_rows=25)
    rows = records(tuning_data, 30)
    shadow.submit([f"a{i}" for i in range(30)], rows)  # past the bound at once: dropped
    shadow.submit([f"b{i}" for i in range(20)], rows[:20])
    shadow.close()  # scores what waits
    log.close()
    assert (shadow.scored, shadow.dropped, shadow.failed) == (20, 30, 0)


SERVICE_THAT_DIES = """
import sys, time
from pathlib import Path
from sklearn.dummy import DummyRegressor
from mlops_runtime.schema import load_contract
from mlops_runtime.serving.loader import LoadedModel
from mlops_runtime.serving.predlog import PredictionLog
from mlops_runtime.serving.shadow import Shadow

model = LoadedModel(DummyRegressor(), "regression", "model", "2", "registry")
shadow = Shadow(model, load_contract(Path(sys.argv[1])), PredictionLog(sys.argv[2]))
print(shadow.scorer_pid, flush=True)
time.sleep(600)
"""


def running(pid: int) -> bool:
    """Whether `pid` runs (a zombie, ended but not yet reaped by whoever inherited it, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_scorer_process_ends_when_the_service_is_killed(tuning_data: TuningData, tmp_path: Path) -> None:
    (tmp_path / "schema.yaml").write_text(tuning_data.contract.to_yaml())
    command = [sys.executable, "-c", SERVICE_THAT_DIES, str(tmp_path / "schema.yaml")]
    service = subprocess.Popen([*command, f"sqlite:///{tmp_path / 'predictions.db'}"], stdout=subprocess.PIPE)
    try:
        scorer = int(service.stdout.readline())  # type: ignore[union-attr]
        assert running(scorer)
    finally:
        service.kill()  # SIGKILL: no close(), no atexit
        service.wait()
    eventually(lambda: not running(scorer), "the orphaned scorer process ended", seconds=30)
