"""The prediction service: contract at the door, one artifact behind it, everything logged."""

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.preprocessing import StandardScaler
from sklearn.utils import validation

from mlops_runtime.batch import predict_file
from mlops_runtime.cli import app
from mlops_runtime.objective import TuningData
from mlops_runtime.serving.app import create_app
from mlops_runtime.serving.config import ServingConfig
from mlops_runtime.serving.direct import answer_dataframe_checks_of_arrays
from mlops_runtime.serving.loader import from_local
from mlops_runtime.testing import (
    FEEDBACK_AUTH,
    FEEDBACK_TOKEN,
    MAX_RECORDS,
    RELOAD_TOKEN,
    assert_serve_refuses,
    records,
)


@pytest.fixture
def client(config: ServingConfig) -> Iterator[TestClient]:
    with TestClient(create_app(config)) as test_client:
        yield test_client


def test_one_record_gets_one_prediction(client: TestClient, tuning_data: TuningData) -> None:
    response = client.post("/predict", json=records(tuning_data, 1)[0])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"].startswith("local-")
    (prediction,) = body["predictions"]
    assert len(prediction["request_id"]) == 32
    if tuning_data.task == "regression":
        assert math.isfinite(prediction["prediction"])
    else:
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)
        assert prediction["prediction"] in tuning_data.contract.classes


def test_a_batch_gets_one_prediction_per_record(client: TestClient, tuning_data: TuningData) -> None:
    response = client.post("/predict", json=records(tuning_data, 5))
    assert response.status_code == 200
    ids = [prediction["request_id"] for prediction in response.json()["predictions"]]
    assert len(set(ids)) == 5


def test_the_direct_path_answers_as_the_pipeline(
    client: TestClient, tuning_data: TuningData, config: ServingConfig
) -> None:
    """The service's fast path (the Pipeline's fitted steps called on arrays, scikit-learn's DataFrame checks
    answered at once for arrays) gives the Pipeline's own answers, row for row, nulls included."""
    rows = records(tuning_data, MAX_RECORDS)
    answers = client.post("/predict", json=rows).json()["predictions"]
    assert client.get("/model").json()["inference"] == "direct"
    model = from_local(tuning_data.task, config.model_path, config.paths).model
    frame = tuning_data.contract.frame(rows)
    if tuning_data.task == "regression":
        assert [answer["prediction"] for answer in answers] == pytest.approx(model.predict(frame).tolist(), abs=1e-12)
        return
    expected = model.predict_proba(frame)
    for answer, probabilities in zip(answers, expected, strict=True):
        served = [answer["probabilities"][str(label)] for label in model.classes_]
        assert served == pytest.approx(probabilities.tolist(), abs=1e-12)


def test_dataframe_checks_are_answered_at_once_for_arrays_only() -> None:
    answer_dataframe_checks_of_arrays()
    answer_dataframe_checks_of_arrays()  # once per process, however often a model is loaded
    check = validation._get_feature_names
    assert not hasattr(check.asks_for_other_inputs, "asks_for_other_inputs")  # type: ignore[attr-defined]
    assert check(np.zeros((2, 2))) is None
    assert list(check(pd.DataFrame({"a": [1.0], "b": [2.0]}))) == ["a", "b"]
    scaler = StandardScaler().fit(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 5.0]}))
    with pytest.raises(ValueError, match="feature names"):  # frames are still checked by name
        scaler.transform(pd.DataFrame({"b": [1.0], "a": [2.0]}))


def broken(tuning_data: TuningData, change: str) -> Any:
    row = records(tuning_data, 1)[0]
    numeric = tuning_data.contract.numeric_features[0]
    categorical = tuning_data.contract.categorical_features[0]
    if change == "wrong type":
        row[numeric] = "forty"
    elif change == "missing field":
        del row[numeric]
    elif change == "unknown field":
        row["surprise"] = 1
    elif change == "out of range":
        row[numeric] = 1e12
    elif change == "unknown category":
        row[categorical] = "never-seen"
    elif change == "empty batch":
        return []
    elif change == "too many records":
        return [row] * (MAX_RECORDS + 1)
    return row


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ("wrong type", 422, True),
        ("missing field", 422, True),
        ("unknown field", 422, True),
        ("out of range", 422, True),
        ("unknown category", 422, True),
        ("empty batch", 422, True),
        ("too many records", 422, True),
    ],
)
@pytest.mark.ml_test_score("Mo2")
def test_bad_input_gets_a_4xx_with_field_errors(
    client: TestClient, tuning_data: TuningData, change: str, status: int, field: bool
) -> None:
    response = client.post("/predict", json=broken(tuning_data, change))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["detail"]
    if field:
        assert body["errors"]
        assert all(error["loc"] and error["msg"] for error in body["errors"])


@pytest.mark.parametrize("change", ["wrong type", "missing field", "unknown field", "out of range", "unknown category"])
@pytest.mark.parametrize("shape", ["one record", "a batch"])
def test_one_violation_is_exactly_one_error_at_its_field(
    client: TestClient, tuning_data: TuningData, change: str, shape: str
) -> None:
    """The body is one record or a list, and the 422 speaks of the shape that was sent: no "valid array" noise."""
    row = broken(tuning_data, change)
    field = {"unknown field": "surprise", "unknown category": tuning_data.contract.categorical_features[0]}.get(
        change, tuning_data.contract.numeric_features[0]
    )
    body, where = (row, [field]) if shape == "one record" else ([*records(tuning_data, 2), row], [2, field])

    response = client.post("/predict", json=body)

    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["loc"] == where
    assert "array" not in error["msg"]


@pytest.mark.parametrize("body", [b"42", b'"text"', b"null", b"true"])
def test_a_body_of_another_json_type_is_one_error_naming_both_shapes(client: TestClient, body: bytes) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"loc": ["body"], "msg": "the body must be one record (an object) or a list of records", "type": "body_type"}
    ]


def test_the_document_still_offers_one_record_or_a_list(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]
    one, many = schema["application/json"]["schema"]["anyOf"]
    assert one["type"] == "object"
    assert many["type"] == "array"
    assert many["items"] == one


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.ml_test_score("Mo2")
def test_nan_and_infinity_are_refused(client: TestClient, tuning_data: TuningData, token: str) -> None:
    row = records(tuning_data, 1)[0]
    numeric = tuning_data.contract.numeric_features[0]
    body = json.dumps(row).replace(json.dumps({numeric: row[numeric]})[1:-1], f'"{numeric}": {token}')
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][-1] == numeric


@pytest.mark.parametrize("body", [b"{not json", b"", b"42", b'"text"'])
def test_malformed_bodies_are_client_errors(client: TestClient, body: bytes) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422


@pytest.mark.parametrize("media_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_a_body_that_is_not_declared_as_json_is_refused(
    client: TestClient, tuning_data: TuningData, media_type: str
) -> None:
    """The document declares application/json only: a valid record sent as another media type gets 415."""
    body = json.dumps(records(tuning_data, 1)[0])
    response = client.post("/predict", content=body, headers={"content-type": media_type})
    assert response.status_code == 415
    assert client.post("/predict", content=body).status_code == 200  # no Content-Type: taken as JSON


def test_a_batch_over_max_items_is_a_contract_error_not_a_success(client: TestClient, tuning_data: TuningData) -> None:
    """Regression: the document says maxItems, so 1001 records must be refused with 422 like any schema violation.

    schemathesis reported a batch of MAX_RECORDS + 1 records answered with 413, which its
    negative-data check does not count as a rejection (ST201, seed 253843849056118892025324533597207847312).
    """
    row = records(tuning_data, 1)[0]
    schema = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert schema["application/json"]["schema"]["anyOf"][1]["maxItems"] == MAX_RECORDS

    response = client.post("/predict", json=[row] * (MAX_RECORDS + 1))

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"loc": ["body"], "msg": f"at most {MAX_RECORDS} records per request", "type": "too_long"}
    ]
    assert client.post("/predict", json=[row] * MAX_RECORDS).status_code == 200


def test_a_body_over_the_size_limit_is_refused(client: TestClient) -> None:
    response = client.post("/predict", content=b"[" + b" " * 60_000 + b"]")
    assert response.status_code == 413


def test_health_ready_model_and_metrics(client: TestClient, tuning_data: TuningData) -> None:
    client.post("/predict", json=records(tuning_data, 2))
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["status"] == "ready"
    info = client.get("/model").json()
    assert info["source"] == "local"
    assert info["inference"] == "direct"
    assert set(info["input_schema"]["properties"]) == set(tuning_data.contract.feature_names)
    exposition = client.get("/metrics").text
    for name in ("http_requests_total", "prediction_latency_seconds_bucket", "model_info{", "prediction_rejections"):
        assert name in exposition
    assert 'path="/predict",status="200"' in exposition


def test_feedback_is_stored_for_a_known_request(client: TestClient, tuning_data: TuningData) -> None:
    prediction = client.post("/predict", json=records(tuning_data, 1)).json()["predictions"][0]
    label = tuning_data.validation[tuning_data.contract.target.name].iloc[0]
    label = label.item() if hasattr(label, "item") else label
    body = {"request_id": prediction["request_id"], "label": label}
    assert client.post("/feedback", json=body, headers=FEEDBACK_AUTH).status_code == 201
    assert client.post("/feedback", json=body | {"request_id": "0" * 32}, headers=FEEDBACK_AUTH).status_code == 404
    bad_label = body | {"label": "not-a-class" if tuning_data.task != "regression" else 1e12}
    assert client.post("/feedback", json=bad_label, headers=FEEDBACK_AUTH).status_code == 422


@pytest.mark.parametrize("task", ["binary_classification"])  # authorisation does not depend on the task
def test_feedback_needs_its_own_token(client: TestClient, config: ServingConfig, tuning_data: TuningData) -> None:
    """Labels train the next model: no token, a wrong one, or the reload token are refused, and nothing is
    stored; a service without a feedback token refuses all feedback and says how to enable it."""
    prediction = client.post("/predict", json=records(tuning_data, 1)).json()["predictions"][0]
    body = {"request_id": prediction["request_id"], "label": tuning_data.contract.target.examples()[0]}
    for headers in (
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Bearer {RELOAD_TOKEN}"},
        {"authorization": f"Basic {FEEDBACK_TOKEN}"},
    ):
        refused = client.post("/feedback", json=body, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["detail"] == "a valid bearer token is required"
    state = client.app.state.service  # type: ignore[attr-defined]
    assert state.log.feedback_count() == 0
    assert client.post("/feedback", json=body, headers=FEEDBACK_AUTH).status_code == 201
    assert state.log.feedback_count() == 1

    with TestClient(create_app(replace(config, feedback_token=None))) as closed:
        disabled = closed.post("/feedback", json=body, headers=FEEDBACK_AUTH)
    assert disabled.status_code == 403
    assert disabled.json()["detail"] == "feedback is disabled: set SERVE_FEEDBACK_TOKEN to enable it"


def test_the_openapi_document_declares_the_bearer_scheme_on_feedback_and_reload(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the route's token, from the service's settings",
    }
    secured = {
        (path, method)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    }
    assert secured == {("/feedback", "post"), ("/reload", "post")}


@pytest.mark.ml_test_score("I7")
def test_reload_needs_the_token_and_keeps_serving_when_it_fails(
    client: TestClient, tuning_data: TuningData, config: ServingConfig
) -> None:
    assert client.post("/reload").status_code == 401
    assert client.post("/reload", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/reload", headers={"authorization": "Bearer s3cret"}).json()["reloaded"] is True

    config.paths.model_file.unlink()
    failed = client.post("/reload", headers={"authorization": "Bearer s3cret"})
    assert failed.status_code == 503
    assert "still serving" in failed.json()["detail"]
    assert client.post("/predict", json=records(tuning_data, 1)).status_code == 200


def test_every_prediction_is_logged(config: ServingConfig, tuning_data: TuningData) -> None:
    with TestClient(create_app(config)) as client:
        for _ in range(7):
            client.post("/predict", json=records(tuning_data, 3))
        client.post("/predict", json=[])  # refused: not logged
    log = pd.read_sql_table("predictions", config.prediction_log_url)
    assert len(log) == 21
    assert json.loads(log["input"].iloc[0]).keys() == set(tuning_data.contract.feature_names)


def test_serve_with_an_unusable_prediction_log_is_one_clear_error(
    service_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(service_root)
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", f"sqlite:///{service_root / 'missing-folder' / 'log.db'}")
    assert_serve_refuses(app, "cannot open the prediction log")


@pytest.mark.ml_test_score("Mo3")
def test_no_training_serving_skew(client: TestClient, config: ServingConfig, tuning_data: TuningData) -> None:
    """The same rows scored in process, by batch prediction and over HTTP give the same answers."""
    loaded = from_local(tuning_data.task, config.model_path, config.paths)
    rows = records(tuning_data, 40)
    in_process = loaded.predict(tuning_data.contract.frame(rows))

    source = config.paths.root / "rows.parquet"
    pd.DataFrame(rows).to_parquet(source)
    predict_file(source, config.paths.root / "out.parquet", loaded, tuning_data.contract, chunk_rows=16)
    batch = pd.read_parquet(config.paths.root / "out.parquet")

    over_http = client.post("/predict", json=rows).json()["predictions"]

    assert [answer["prediction"] for answer in over_http] == [answer["prediction"] for answer in in_process]
    assert batch["prediction"].tolist() == [answer["prediction"] for answer in in_process]
    if tuning_data.task != "regression":
        for http_answer, local_answer in zip(over_http, in_process, strict=True):
            assert http_answer["probabilities"] == local_answer["probabilities"]


@pytest.fixture
def live_service(config: ServingConfig) -> Iterator[str]:
    """The service on a real socket (127.0.0.1, a free port), in a thread: for clients that speak HTTP."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "the service stopped while starting"
        assert time.monotonic() < deadline, "the service did not start within 60 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.mark.parametrize("task", ["binary_classification"])  # the client does not depend on the task
def test_simulate_posts_labels_with_the_feedback_token_and_stops_when_refused(
    live_service: str, config: ServingConfig, tuning_data: TuningData
) -> None:
    from mlops_runtime.errors import StageError
    from mlops_runtime.monitoring.simulate import send_over_http
    from mlops_runtime.serving.predlog import PredictionLog

    contract = tuning_data.contract
    features, labels = contract.split_xy(tuning_data.validation.head(40))
    sent = send_over_http(live_service, contract, features, labels, 0.5, seed=0, feedback_token=FEEDBACK_TOKEN)
    assert sent["predicted"] == 40
    assert 5 < sent["feedback"] < 35

    with pytest.raises(StageError, match="set SERVE_FEEDBACK_TOKEN"):
        send_over_http(live_service, contract, features, labels, 0.5, seed=0)
    with pytest.raises(StageError, match=r"refused the request \(401\): a valid bearer token is required"):
        send_over_http(live_service, contract, features, labels, 0.5, seed=0, feedback_token="wrong")
    assert send_over_http(live_service, contract, features.head(3), labels.head(3), 0.0, seed=0)["feedback"] == 0

    log = PredictionLog(config.prediction_log_url)
    try:
        assert log.count() == 43  # refused before sending: no prediction of the refused runs was made
        assert log.feedback_count() == sent["feedback"]
    finally:
        log.close()


@pytest.mark.parametrize("task", ["binary_classification"])  # start-up does not depend on the task
def test_serve_says_which_token_routes_are_disabled(service_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Started without a feedback token, `serve` says feedback is disabled (here the port is taken, so it stops
    right after saying so: a real start-up, without serving)."""
    import socket

    from typer.testing import CliRunner

    monkeypatch.chdir(service_root)
    monkeypatch.setenv("SERVE_RELOAD_TOKEN", RELOAD_TOKEN)
    monkeypatch.delenv("SERVE_FEEDBACK_TOKEN", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(app, ["serve", "--model-source", "local", "--port", port])
    assert "POST /feedback is disabled: set SERVE_FEEDBACK_TOKEN to enable it." in result.output
    assert "POST /reload is disabled" not in result.output
    assert result.exit_code != 0
