"""Each place a project extends the library, working: a derived feature, an extra candidate family, its own
metric, a route behind a token, a monitoring check and a gate rule (docs/extending.md shows each)."""

import json
import shutil
from pathlib import Path
from typing import Any

import mlflow.sklearn
import numpy as np
import pytest
from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer
from typer.testing import CliRunner

from mlops_runtime import metrics
from mlops_runtime.cli import app
from mlops_runtime.errors import StageError
from mlops_runtime.modelling import ProjectModels
from mlops_runtime.monitoring import checks
from mlops_runtime.monitoring.window import Window
from mlops_runtime.objective import TuningData, fit_model
from mlops_runtime.params import MonitorParams, Range, Thresholds, parse_params
from mlops_runtime.schema import Contract
from mlops_runtime.serving.app import create_app
from mlops_runtime.serving.config import ServingConfig
from mlops_runtime.stages.accept import Candidate, own_rule
from mlops_runtime.stages.train import model_save_options
from mlops_runtime.testing import Project, log_traffic, records
from mlops_runtime.tuning import tune
from mlops_runtime.verdict import write_verdict

BINARY = pytest.mark.parametrize("task", ["binary_classification"])


def ratio(block: np.ndarray) -> np.ndarray:
    """A derived feature: the first column over the second (0 where either is missing)."""
    values = np.asarray(block, dtype="float64")
    return np.nan_to_num(values[:, 0] / (np.abs(values[:, 1]) + 1.0)).reshape(-1, 1)


def with_ratio(project: Project, numeric: list[str]) -> Any:
    """The project's build_model, with one more feature derived from two numeric columns."""

    def build_model(contract: Contract, estimator: Any, scale: bool = True) -> Pipeline:
        base = project.module("features").build_preprocessor(contract, scale=scale)
        derived = ColumnTransformer([("ratio", FunctionTransformer(ratio), numeric[:2])])
        return Pipeline([("features", FeatureUnion([("base", base), ("derived", derived)])), ("estimator", estimator)])

    return build_model


@BINARY
def test_a_derived_feature_is_served_as_it_was_trained(
    project: Project, tuning_data: TuningData, config: ServingConfig
) -> None:
    contract = tuning_data.contract
    models = project.models
    derived = ProjectModels(
        models.package, models.families, models.make_estimator, with_ratio(project, contract.numeric_features)
    )
    data = TuningData(
        contract, tuning_data.train, tuning_data.validation, tuning_data.task, tuning_data.metric, derived
    )
    model = fit_model(data, "linear", {}, seed=0, frame=data.train)
    shutil.rmtree(config.model_path)  # the service folder's model: this one instead
    mlflow.sklearn.save_model(model, config.model_path, **model_save_options(data))
    write_verdict(config.model_path, {"accepted": True, "checks": []})
    rows = records(tuning_data, 5)

    with TestClient(create_app(config)) as client:
        answers = client.post("/predict", json=rows).json()["predictions"]

    expected = model.predict_proba(contract.frame(rows))[:, 1]
    assert [answer["probabilities"][str(contract.classes[1])] for answer in answers] == pytest.approx(expected)


def make_estimator_with_knn(project: Project) -> Any:
    def make_estimator(family: str, task: str, hyperparameters: dict[str, Any], seed: int) -> Any:
        if family == "knn":
            cls = KNeighborsClassifier if task != "regression" else KNeighborsRegressor
            return cls(**hyperparameters)
        return project.models.make_estimator(family, task, hyperparameters, seed)

    return make_estimator


def test_an_extra_candidate_family_is_tuned_like_the_others(
    project: Project, tuning_data: TuningData, project_params: dict[str, Any]
) -> None:
    base = project.models
    models = ProjectModels(
        base.package, (*base.families, "knn"), make_estimator_with_knn(project), base.build_model, frozenset({"knn"})
    )
    data = TuningData(
        tuning_data.contract, tuning_data.train, tuning_data.validation, tuning_data.task, tuning_data.metric, models
    )
    params = parse_params(
        project_params | {"task": data.task} | {"train": project_params["train"] | {"primary_metric": data.metric}}
    )
    train = params.train.model_copy(update={"tuning": params.train.tuning.model_copy(update={"n_trials": 3})})

    result = tune("knn", {"n_neighbors": Range(low=3, high=25)}, data, train, "knn-check")

    assert result.trials == 3
    assert 3 <= result.best_params["n_neighbors"] <= 25
    with pytest.raises(StageError, match="unknown model family 'svm'"):
        fit_model(data, "svm", {}, seed=0, frame=data.train)


def share_of_positive(y_true: Any, predicted: Any, proba: np.ndarray | None, classes: list[Any]) -> float:
    return float(np.mean(np.asarray(predicted) == classes[1]))


@BINARY
def test_a_project_metric_is_scored_and_can_be_the_primary_metric(
    tuning_data: TuningData, project_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    metric = metrics.Metric("positive_share", ("binary_classification",), False, share_of_positive)
    # Registered for this test only: the tables are the library's, shared by every test of the process.
    monkeypatch.setitem(metrics.TASK_METRICS, "binary_classification", metrics.TASK_METRICS["binary_classification"])
    monkeypatch.setitem(metrics.HIGHER_IS_BETTER, metric.name, False)
    monkeypatch.setitem(metrics._PROJECT_METRICS, metric.name, metric)
    metrics.register(metric)
    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)

    scored = metrics.score(model, tuning_data.task, *tuning_data.contract.split_xy(tuning_data.validation))

    predicted = model.predict(tuning_data.contract.features_of(tuning_data.validation))
    assert scored["positive_share"] == pytest.approx(np.mean(predicted == tuning_data.contract.classes[1]), abs=1e-6)
    train = project_params["train"] | {"primary_metric": "positive_share"}
    assert parse_params(project_params | {"task": tuning_data.task, "train": train}).train.primary_metric == metric.name
    with pytest.raises(ValueError, match="is a built-in metric"):
        metrics.register(metrics.Metric("roc_auc", ("binary_classification",), True, share_of_positive))


def require_token(authorization: str = Header(default="")) -> None:
    if authorization != "Bearer s3cret":
        raise HTTPException(status_code=401, detail="a bearer token is required")


@BINARY
def test_an_extra_route_behind_a_token(config: ServingConfig) -> None:
    service = create_app(config)
    router = APIRouter()

    @router.get("/owner")
    def owner() -> dict[str, str]:
        return {"owner": "the churn team"}

    service.include_router(router, dependencies=[Depends(require_token)])
    with TestClient(service) as client:
        assert client.get("/owner").status_code == 401
        answer = client.get("/owner", headers={"Authorization": "Bearer s3cret"})
        assert answer.status_code == 200
        assert answer.json() == {"owner": "the churn team"}
        assert "/owner" in client.get("/openapi.json").json()["paths"]
        assert client.get("/ready").status_code == 200  # the library's routes stay open


def traffic_share(window: Window, params: MonitorParams) -> dict[str, Any]:
    return checks.result("rows_seen", float(len(window.served)), Thresholds(warn=1e9, alert=2e9), unit="rows")


def broken_check(window: Window, params: MonitorParams) -> dict[str, Any]:
    raise KeyError("no_such_column")


@BINARY
def test_a_monitoring_check_of_the_project_runs_with_the_library_ones(
    project: Project, monitored: Path, config: ServingConfig, tuning_data: TuningData, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_traffic(config, tuning_data, rows=300)
    monkeypatch.setattr(project.module("monitoring"), "CHECKS", [traffic_share, broken_check])

    result = CliRunner().invoke(app, ["monitor"])

    assert result.exit_code == 0, result.output
    summary = json.loads(next((monitored / "reports" / "monitoring").glob("*/summary.json")).read_text())
    found = {check["check"]: check for check in summary["checks"]}
    assert (found["rows_seen"]["status"], found["rows_seen"]["value"]) == ("ok", 300.0)
    assert found["broken_check"]["status"] == "n/a"
    assert "the check failed: KeyError" in found["broken_check"]["note"]


@BINARY
def test_a_gate_rule_of_the_project_judges_the_candidate(tuning_data: TuningData, project_params: dict) -> None:
    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    rows = tuning_data.contract.features_of(tuning_data.validation)
    params = parse_params(project_params | {"task": tuning_data.task})
    candidate = Candidate(model, tuning_data.contract, {"model": {}}, rows, params)

    def at_most_half_positive(judged: Candidate) -> dict[str, Any]:
        share = float(np.mean(judged.model.predict(judged.rows) == judged.contract.classes[1]))
        return {"passed": share <= 0.5, "message": f"{share:.0%} predicted positive (allowed 50%)"}

    def never(judged: Candidate) -> dict[str, Any]:
        return {"passed": False, "message": "refuses every model"}

    assert own_rule(at_most_half_positive, candidate)["rule"] == "at_most_half_positive"
    assert own_rule(never, candidate) == {"rule": "never", "passed": False, "message": "refuses every model"}
    with pytest.raises(StageError, match="the gate rule <lambda> failed to judge the model: ZeroDivisionError"):
        own_rule(lambda judged: {"passed": 1 / 0 > 0}, candidate)
    with pytest.raises(StageError, match="must return a dict with passed"):
        own_rule(lambda judged: True, candidate)  # type: ignore[arg-type, return-value]
