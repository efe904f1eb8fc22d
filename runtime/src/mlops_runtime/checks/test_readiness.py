"""The production-readiness checks of the ML Test Score, each made to fail on purpose and to pass.

Pipeline checks live in evaluate and accept; the scorecard turns their results and the marked
tests into the 28-item table (mlops_runtime.scorecard).
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_runtime.errors import StageError
from mlops_runtime.monitoring import checks
from mlops_runtime.objective import TuningData, fit_model
from mlops_runtime.params import (
    EvaluateParams,
    FeatureRules,
    MonitorParams,
    SliceRules,
    parse_params,
)
from mlops_runtime.paths import Paths
from mlops_runtime.schema import Contract, DatetimeColumn, NumericColumn, categorical_column
from mlops_runtime.scorecard import (
    ITEMS,
    MANUAL,
    Evidence,
    score_items,
    section_scores,
    table,
)
from mlops_runtime.serving.config import ServingConfig
from mlops_runtime.serving.loader import from_local
from mlops_runtime.stages.accept import (
    Champion,
    canary,
    check_features,
    check_slices,
    check_speed,
)
from mlops_runtime.stages.evaluate import (
    feature_cost,
    finite_outputs,
    likely_cost,
    slice_columns,
    slice_metrics,
)
from mlops_runtime.verdict import write_verdict

BINARY = pytest.mark.parametrize("task", ["binary_classification"])  # the rule does not depend on the task


def importance(feature: str, mean: float, std: float) -> dict[str, Any]:
    return {"feature": feature, "importance": mean, "std": std}


def cost(**shares: float) -> dict[str, Any]:
    return {"features": {name: {"measured": True, "gain": 0.01, "time_share": share} for name, share in shares.items()}}


@pytest.mark.ml_test_score("D2")
def test_a_feature_of_pure_noise_is_a_finding_that_refuses_only_when_enforced() -> None:
    rows = [importance("signal", 0.08, 0.01), importance("noise", 0.0004, 0.0009)]
    found = check_features(rows, cost(signal=0.1, noise=0.0), FeatureRules())[0]
    assert (found["item"], found["passed"], found["features"]) == ("D2", True, ["noise"])
    assert "noise 0.0004 ± 0.0009" in found["finding"]
    assert "remove them from schema.yaml" in found["finding"]  # what to do
    enforced = check_features(rows, cost(signal=0.1, noise=0.0), FeatureRules(enforce=True))[0]
    assert (enforced["passed"], enforced["features"]) == (False, ["noise"])
    kept = check_features(rows, cost(signal=0.1, noise=0.0), FeatureRules(keep=["noise"], enforce=True))[0]
    assert kept["passed"]
    assert not kept["finding"]
    with pytest.raises(StageError, match="keep names nosie"):
        check_features(rows, cost(signal=0.1, noise=0.0), FeatureRules(keep=["nosie"]))


@pytest.mark.ml_test_score("D3")
def test_a_feature_that_costs_most_of_predict_time_is_a_finding_that_refuses_only_when_enforced() -> None:
    rows = [importance("cheap", 0.05, 0.01), importance("dear", 0.05, 0.01)]
    found = check_features(rows, cost(cheap=0.05, dear=0.8), FeatureRules(max_time_share=0.5))[1]
    assert (found["item"], found["passed"], found["features"]) == ("D3", True, ["dear"])
    assert "dear 80%" in found["finding"]
    rules = FeatureRules(max_time_share=0.5, enforce=True)
    assert not check_features(rows, cost(cheap=0.05, dear=0.8), rules)[1]["passed"]


@BINARY
@pytest.mark.ml_test_score("D3")
def test_leaving_each_feature_out_measures_its_gain_and_its_share_of_predict_time(
    tuning_data: TuningData, project_params: dict[str, Any]
) -> None:
    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    raw = project_params | {"task": tuning_data.task, "train": project_params["train"] | {"primary_metric": "roc_auc"}}
    winner = {"family": "linear", "best_params": {}}
    # A budget no busy machine runs out of: the default one, on a loaded CI machine, left features unmeasured.
    ample = raw | {"evaluate": raw["evaluate"] | {"feature_cost": {"budget_seconds": 3600}}}
    report = feature_cost(model, tuning_data, winner, tuning_data.validation, parse_params(ample))
    features = report["features"]
    assert set(features) == set(tuning_data.contract.feature_names)
    assert all(entry["measured"] and 0.0 <= entry["time_share"] <= 1.0 for entry in features.values())
    assert max(entry["gain"] for entry in features.values()) > 0  # some feature carries the signal
    no_time = raw | {"evaluate": raw["evaluate"] | {"feature_cost": {"budget_seconds": 1e-9}}}
    over_budget = feature_cost(model, tuning_data, winner, tuning_data.validation, parse_params(no_time))
    assert not any(entry["measured"] for entry in over_budget["features"].values())


def test_the_refit_budget_goes_first_to_dates_then_to_the_widest_categories() -> None:
    columns = [
        NumericColumn(name="age", minimum=0, maximum=120),
        categorical_column("plan", ("basic", "premium")),
        DatetimeColumn(name="signed_up"),
        categorical_column("country", ("DE", "FR", "IT", "NL")),
    ]
    assert [column.name for column in sorted(columns, key=likely_cost, reverse=True)] == [
        "signed_up",
        "country",
        "plan",
        "age",
    ]


def slices_report(values: dict[str, dict[str, float]], sensitive: list[str] | None = None) -> dict[str, Any]:
    return {
        "by": list(values),
        "sensitive": sensitive or [],
        "slices": {
            name: {label: {"rows": 100, "roc_auc": value} for label, value in slices.items()}
            for name, slices in values.items()
        },
    }


@pytest.mark.ml_test_score("M6")
def test_a_bad_slice_fails_the_minimum_and_the_gap() -> None:
    report = slices_report({"plan": {"basic": 0.85, "premium": 0.55, "standard": 0.84}})
    rules = SliceRules(minimum={"roc_auc": 0.7}, max_gap={"roc_auc": 0.2})
    minimum, gap = check_slices(report, rules)
    assert (minimum["item"], minimum["passed"]) == ("M6", False)
    assert "plan=premium 0.5500" in minimum["message"]
    assert (gap["passed"], round(gap["value"], 2)) == (False, 0.3)
    healthy = slices_report({"plan": {"basic": 0.85, "premium": 0.8}})
    assert all(check["passed"] for check in check_slices(healthy, rules))


@BINARY
@pytest.mark.ml_test_score("M6")
def test_numeric_slicing_features_are_cut_into_quantile_bins(tuning_data: TuningData) -> None:
    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    numeric = tuning_data.contract.numeric_features[0]
    report = slice_metrics(
        model, tuning_data.task, tuning_data.contract, tuning_data.validation, EvaluateParams(slice_by=[numeric])
    )
    bins = report["slices"][numeric]
    assert 2 <= len(bins) <= 4
    assert sum(entry["rows"] for entry in bins.values()) == len(tuning_data.validation)


@BINARY
@pytest.mark.ml_test_score("M7")
def test_a_sensitive_feature_is_always_sliced_and_its_gap_has_its_own_bound(contract: Contract) -> None:
    group = contract.categorical_features[0]
    marked = Contract(
        features=tuple(
            column.__class__(**{**column.__dict__, "sensitive": column.name == group}) for column in contract.features
        ),
        target=contract.target,
    )
    assert group in slice_columns(marked, EvaluateParams(slice_by=[marked.numeric_features[0]]))
    report = slices_report({group: {"a": 0.82, "b": 0.75}}, sensitive=[group])
    rules = SliceRules(max_gap={"roc_auc": 0.2}, max_gap_sensitive={"roc_auc": 0.05})
    [gap] = check_slices(report, rules)
    assert (gap["item"], gap["feature"], gap["passed"]) == ("M7", group, False)
    assert "(sensitive)" in gap["message"]


class NaNModel:
    """A model whose outputs overflow: what numerical instability looks like."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.classes_ = getattr(model, "classes_", None)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), np.nan)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        proba = self.model.predict_proba(frame)
        proba[-1] = np.nan
        return proba


@pytest.mark.ml_test_score("Mo5")
def test_a_model_that_outputs_nan_fails_the_stability_check(tuning_data: TuningData) -> None:
    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    contract, test = tuning_data.contract, tuning_data.validation
    assert finite_outputs(model, tuning_data.task, contract, test)["passed"]
    broken = finite_outputs(NaNModel(model), tuning_data.task, contract, test)
    assert (broken["item"], broken["passed"]) == ("Mo5", False)
    assert broken["non_finite"] >= 1


class SlowModel:
    """The same answers, after predicting them `times` times: its cost is a multiple of the model's own,
    whatever the machine's speed or load (a fixed extra delay is lost in a slow prediction on a busy one)."""

    def __init__(self, model: Any, times: int) -> None:
        self.model, self.times = model, times

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        for _ in range(self.times - 1):
            self.model.predict(frame)
        return self.model.predict(frame)


@BINARY
@pytest.mark.ml_test_score("Mo6")
def test_a_candidate_much_slower_than_the_champion_is_refused(tuning_data: TuningData) -> None:
    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    rows = tuning_data.contract.features_of(tuning_data.validation)
    champion = Champion("1", model, age_days=1.0)
    slow = check_speed(SlowModel(model, 12), champion, rows, max_slowdown=3.0)
    assert (slow["item"], slow["passed"]) == ("Mo6", False)
    assert slow["value"] > 3.0
    assert check_speed(SlowModel(model, 1), champion, rows, max_slowdown=3.0)["passed"]


@pytest.mark.ml_test_score("I6")
def test_the_canary_passes_the_candidate_and_catches_a_service_that_answers_differently(
    config: ServingConfig, tuning_data: TuningData
) -> None:
    contract = tuning_data.contract
    rows = contract.features_of(tuning_data.validation)
    served = from_local(tuning_data.task, config.model_path, config.paths).model
    passed = canary(config.paths, tuning_data.task, contract, served, rows)
    assert (passed["item"], passed["passed"], passed["rows"]) == ("I6", True, len(rows) + len(contract.examples()))
    # The model the service loads is not the one judged: every answer disagrees.
    other = fit_model(tuning_data, "random_forest", {"n_estimators": 5}, seed=1, frame=tuning_data.train)
    caught = canary(config.paths, tuning_data.task, contract, other, rows)
    assert not caught["passed"]
    assert caught["failures"]


@pytest.mark.ml_test_score("I4")
def test_a_refused_or_unjudged_model_is_never_served(config: ServingConfig, tuning_data: TuningData) -> None:
    model_dir = config.model_path
    write_verdict(model_dir, {"accepted": False, "checks": [{"passed": False, "message": "roc_auc too low"}]})
    with pytest.raises(StageError, match=r"refused by the acceptance gate(?s:.*)roc_auc too low"):
        from_local(tuning_data.task, model_dir, config.paths)
    write_verdict(model_dir, {"accepted": True, "checks": []})
    (model_dir / "model.pkl").write_bytes((model_dir / "model.pkl").read_bytes() + b"\0")
    with pytest.raises(StageError, match="judged another model"):
        from_local(tuning_data.task, model_dir, config.paths)
    (model_dir.parent / "acceptance.json").unlink()
    with pytest.raises(StageError, match="no acceptance verdict"):
        from_local(tuning_data.task, model_dir, config.paths)


@BINARY
@pytest.mark.ml_test_score("I4")
def test_the_serving_image_check_refuses_a_refused_model(
    config: ServingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from mlops_runtime.cli import app

    monkeypatch.chdir(config.paths.root)
    accepted = CliRunner().invoke(app, ["check-model"])
    assert accepted.exit_code == 0, accepted.output
    write_verdict(config.model_path, {"accepted": False, "checks": [{"passed": False, "message": "slice too weak"}]})
    refused = CliRunner().invoke(app, ["check-model"])
    assert refused.exit_code == 1
    assert "slice too weak" in refused.output
    assert "Traceback" not in refused.output


@pytest.mark.ml_test_score("Mo4")
def test_a_model_past_its_age_limit_alerts() -> None:
    params = MonitorParams()
    trained_at = "2026-01-01T00:00:00+00:00"
    now = pd.Timestamp(trained_at).timestamp()
    assert checks.staleness({"trained_at": trained_at}, params, now=now + 86_400)["status"] == "ok"
    old = checks.staleness({"trained_at": trained_at}, params, now=now + 100 * 86_400)
    assert (old["status"], round(old["value"])) == ("alert", 100)


def test_the_score_is_the_lowest_section_and_only_evidence_that_ran_counts() -> None:
    passed = [Evidence(item.id, "tests/x.py::t", True, is_test=True) for item in ITEMS]
    rows = score_items(passed)
    assert [row.status for row in rows] == ["automated"] * 28
    assert min(section_scores(rows).values()) == 7
    failing = score_items([*passed, Evidence("D2", "accept: feature_benefit", False)])
    assert section_scores(failing) == {"Data": 6, "Model": 7, "Infrastructure": 7, "Monitoring": 7}
    missing = score_items([piece for piece in passed if piece.item != "Mo6"])
    assert next(row for row in missing if row.item.id == "Mo6").status == "missing"
    text = table(failing)
    assert "| D2 | All features are beneficial | failed |" in text
    assert "accept: feature_benefit FAILED" in text
    assert "**ML Test Score: 6 of 7**" in text
    assert not MANUAL or set(MANUAL) <= {item.id for item in ITEMS}


def test_a_verdict_on_another_model_is_no_evidence(service_root: Path) -> None:
    from mlops_runtime.scorecard import pipeline_evidence

    paths = Paths(service_root)
    write_verdict(paths.model, {"accepted": True, "checks": [{"item": "I6", "rule": "canary", "passed": True}]})
    assert [(piece.item, piece.passed) for piece in pipeline_evidence(paths)] == [("I6", True)]
    verdict = json.loads(paths.acceptance.read_text())
    paths.acceptance.write_text(json.dumps(verdict | {"model_sha256": "0" * 64}))
    assert [(piece.item, piece.passed) for piece in pipeline_evidence(paths)] == [("I4", False)]
