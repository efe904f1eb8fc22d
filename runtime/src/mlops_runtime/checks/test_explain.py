"""Debugging one prediction: `explain` replays a logged request step by step through the model that answered it."""

import json
from dataclasses import replace
from typing import Any

import mlflow.sklearn
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mlops_runtime import registry, tracking
from mlops_runtime.cli import app
from mlops_runtime.explain import explain
from mlops_runtime.objective import TuningData, fit_model
from mlops_runtime.params import load_params
from mlops_runtime.serving.app import create_app
from mlops_runtime.serving.config import ServingConfig
from mlops_runtime.serving.predlog import make_engine, predictions
from mlops_runtime.stages.train import model_save_options
from mlops_runtime.testing import records


@pytest.fixture
def served(config: ServingConfig, monkeypatch: pytest.MonkeyPatch) -> ServingConfig:
    """The service folder as the working folder, its log in SERVE_PREDICTION_LOG_URL, no MLflow store."""
    monkeypatch.chdir(config.paths.root)
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", config.prediction_log_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{config.paths.root / 'mlflow.db'}")
    return config


def predict(config: ServingConfig, row: dict[str, Any]) -> dict[str, Any]:
    """One prediction from the real service; leaving the client drains the log."""
    with TestClient(create_app(config)) as client:
        response = client.post("/predict", json=row)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()["predictions"][0]
    return answer


def run_explain(request_id: str) -> Any:
    return CliRunner().invoke(app, ["explain", request_id], terminal_width=200)


def set_logged(config: ServingConfig, request_id: str, **values: Any) -> None:
    """Change a logged row by hand, as a broken writer or a swapped model would."""
    engine = make_engine(config.prediction_log_url)
    with engine.begin() as connection:
        connection.execute(predictions.update().where(predictions.c.request_id == request_id).values(**values))
    engine.dispose()


@pytest.mark.ml_test_score("I5")
def test_explain_replays_a_logged_prediction_to_the_logged_answer(
    served: ServingConfig, tuning_data: TuningData
) -> None:
    answer = predict(served, records(tuning_data, 1)[0])
    request_id = answer.pop("request_id")
    params = load_params(served.paths.params)

    explanation = explain(served, params.task, params.mlflow.registered_model, tuning_data.contract, request_id)

    assert explanation.matches
    assert explanation.replayed == explanation.logged == answer
    assert [step.name for step in explanation.steps] == ["input", "model view", "features", "estimator"]
    features = explanation.steps[2]
    assert features.source == "ColumnTransformer"
    categorical = tuning_data.contract.categorical_features[0]
    assert any(name.startswith(f"{categorical}_") for name in features.values)  # one-hot names, not x0, x1...
    assert explanation.steps[3].values["prediction"] == answer["prediction"]


@pytest.mark.ml_test_score("I5")
def test_the_explain_command_shows_every_step_and_the_match(served: ServingConfig, tuning_data: TuningData) -> None:
    answer = predict(served, records(tuning_data, 1)[0])

    result = run_explain(answer["request_id"])

    assert result.exit_code == 0, result.output
    for step in ("1. input", "2. model view (Contract.frame)", "3. features (ColumnTransformer)", "4. estimator ("):
        assert step in result.output
    numeric = tuning_data.contract.numeric_features[0]
    assert f"     {numeric} = " in result.output
    assert "match: the replay gives the logged answer." in result.output


@pytest.mark.ml_test_score("I5")
def test_explain_of_an_unknown_request_is_one_clear_error(served: ServingConfig, tuning_data: TuningData) -> None:
    predict(served, records(tuning_data, 1)[0])

    result = run_explain("0" * 32)

    assert result.exit_code == 1
    assert f"no prediction with request id {'0' * 32!r} in the prediction log" in result.output
    assert "Traceback" not in result.output


@pytest.mark.ml_test_score("I5")
def test_a_tampered_logged_answer_is_reported_as_a_mismatch(served: ServingConfig, tuning_data: TuningData) -> None:
    answer = predict(served, records(tuning_data, 1)[0])
    request_id = answer.pop("request_id")
    if tuning_data.task == "regression":
        tampered = answer | {"prediction": answer["prediction"] + 1.0}
    else:
        other = next(label for label in tuning_data.contract.classes if label != answer["prediction"])
        tampered = answer | {"prediction": other}
    set_logged(served, request_id, output=json.dumps(tampered))

    result = run_explain(request_id)

    assert result.exit_code == 1
    assert "mismatch: the replay does not give the logged answer" in result.output
    assert f"prediction: logged {tampered['prediction']!r}, replayed {answer['prediction']!r}" in result.output


@pytest.mark.ml_test_score("I5")
def test_an_unreadable_logged_row_is_one_clear_error(served: ServingConfig, tuning_data: TuningData) -> None:
    request_id = predict(served, records(tuning_data, 1)[0])["request_id"]
    set_logged(served, request_id, input="{not json")

    result = run_explain(request_id)

    assert result.exit_code == 1
    assert "its input or output is not a JSON object" in result.output
    assert "Traceback" not in result.output


@pytest.mark.ml_test_score("I5")
def test_a_request_answered_by_another_local_model_is_one_clear_error(
    served: ServingConfig, tuning_data: TuningData
) -> None:
    request_id = predict(served, records(tuning_data, 1)[0])["request_id"]
    set_logged(served, request_id, model_version="local-0badc0de")

    result = run_explain(request_id)

    assert result.exit_code == 1
    assert "answered by local-0badc0de, but" in result.output
    assert "Traceback" not in result.output


@pytest.mark.ml_test_score("I5")
def test_a_registry_version_without_a_registry_is_one_clear_error(
    served: ServingConfig, tuning_data: TuningData
) -> None:
    request_id = predict(served, records(tuning_data, 1)[0])["request_id"]
    set_logged(served, request_id, model_version="7")

    result = run_explain(request_id)

    assert result.exit_code == 1
    assert "version 7; no MLflow store at" in result.output
    assert not (served.paths.root / "mlflow.db").exists()  # looking never creates one


@pytest.mark.ml_test_score("I5", "D5")
def test_a_request_whose_pii_was_never_logged_cannot_be_replayed(
    served: ServingConfig, tuning_data: TuningData
) -> None:
    private = tuning_data.contract.numeric_features[0]
    marked = tuple(replace(column, pii=column.name == private) for column in tuning_data.contract.features)
    served.paths.schema.write_text(replace(tuning_data.contract, features=marked).to_yaml())
    request_id = predict(served, records(tuning_data, 1)[0])["request_id"]

    result = run_explain(request_id)

    assert result.exit_code == 1
    assert f"cannot be replayed exactly: its pii field(s) {private} are never written to the prediction log" in (
        result.output
    )


@pytest.mark.slow
@pytest.mark.ml_test_score("I5")
@pytest.mark.parametrize("task", ["binary_classification"])  # the registry path does not depend on the task
def test_explain_loads_the_registry_version_that_answered(served: ServingConfig, tuning_data: TuningData) -> None:
    name = load_params(served.paths.params).mlflow.registered_model
    model = fit_model(tuning_data, "random_forest", {"n_estimators": 20}, seed=0, frame=tuning_data.train)
    with tracking.start_run("tests"):
        uri = mlflow.sklearn.log_model(model, name="model", **model_save_options(tuning_data)).model_uri
    client = tracking.client()
    registry.set_champion(client, name, registry.register(client, name, uri, {"metrics": "{}"}))
    answer = predict(replace(served, model_source="registry"), records(tuning_data, 1)[0])
    engine = make_engine(served.prediction_log_url)
    with engine.connect() as connection:
        version = connection.execute(sa.select(predictions.c.model_version)).scalar_one()
    engine.dispose()
    assert version == "1"
    linear = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    with tracking.start_run("tests"):
        other = mlflow.sklearn.log_model(linear, name="model", **model_save_options(tuning_data)).model_uri
    registry.set_champion(client, name, registry.register(client, name, other, {"metrics": "{}"}))  # v2 serves now

    result = run_explain(answer["request_id"])

    assert result.exit_code == 0, result.output
    assert "by model version 1" in result.output
    assert "4. estimator (RandomForestClassifier)" in result.output
    assert "match: the replay gives the logged answer." in result.output
