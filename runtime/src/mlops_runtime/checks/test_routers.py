"""Each router alone, on an app that holds only that router and the state it reads."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from mlops_runtime.objective import TuningData
from mlops_runtime.serving.config import ServingConfig
from mlops_runtime.serving.loader import from_local
from mlops_runtime.serving.predlog import PredictionLog
from mlops_runtime.serving.routers import feedback, operations, prediction
from mlops_runtime.serving.state import ServiceState
from mlops_runtime.serving.telemetry import ServiceMetrics
from mlops_runtime.testing import FEEDBACK_AUTH, records


@pytest.fixture
def state(config: ServingConfig, tuning_data: TuningData) -> Iterator[ServiceState]:
    """The shared state, built by hand from the model on disk: no params.yaml, no lifespan."""
    model = from_local(tuning_data.task, config.model_path, config.paths).for_requests(tuning_data.contract)
    service = ServiceState(
        config,
        tuning_data.contract,
        tuning_data.task,
        "model",
        model,
        PredictionLog(config.prediction_log_url),
        ServiceMetrics(tuning_data.task, tuning_data.contract),
    )
    yield service
    service.close()


def client_for(router: APIRouter, state: ServiceState) -> TestClient:
    """An app with one router and the state its lifespan would have built."""
    app = FastAPI()
    app.include_router(router)
    app.state.service = state
    return TestClient(app)


def test_the_prediction_router_predicts_and_logs(state: ServiceState, tuning_data: TuningData) -> None:
    client = client_for(prediction.router(tuning_data.contract.record_model(), state.config), state)

    response = client.post("/predict", json=records(tuning_data, 3))

    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 3
    state.log.flush()
    assert state.log.count() == 3


def test_the_feedback_router_checks_labels_against_the_contract(state: ServiceState, tuning_data: TuningData) -> None:
    predicted = client_for(prediction.router(tuning_data.contract.record_model(), state.config), state)
    request_id = predicted.post("/predict", json=records(tuning_data, 1)).json()["predictions"][0]["request_id"]
    client = client_for(feedback.router(tuning_data.contract.target, state.config), state)
    label = tuning_data.contract.target.examples()[0]

    assert (
        client.post("/feedback", json={"request_id": request_id, "label": label}, headers=FEEDBACK_AUTH).status_code
        == 201
    )
    refused = client.post("/feedback", json={"request_id": request_id, "label": "not a label"}, headers=FEEDBACK_AUTH)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["label"]


def test_the_operations_router_reports_the_served_model(state: ServiceState, tuning_data: TuningData) -> None:
    client = client_for(operations.router(tuning_data.contract.record_model()), state)

    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/model").json()
    assert info["version"] == state.model.version
    assert set(info["input_schema"]["properties"]) == set(tuning_data.contract.feature_names)
    assert "model_info{" in client.get("/metrics").text
    assert client.post("/reload", headers={"authorization": "Bearer s3cret"}).json()["version"] == state.model.version


def test_ready_is_503_until_the_state_exists(tmp_path: Path, tuning_data: TuningData) -> None:
    app = FastAPI()
    app.include_router(operations.router(tuning_data.contract.record_model()))

    response = TestClient(app).get("/ready")

    assert response.status_code == 503
    assert response.json()["detail"] == "no model loaded"
