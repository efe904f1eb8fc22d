"""The gate judges the model: findings measured on enough rows, a canary the service accepts, slices too
small to judge said so."""

import json

import numpy as np
import pandas as pd
import pytest

from mlops_runtime.inference import infer
from mlops_runtime.objective import TuningData, fit_model
from mlops_runtime.params import SliceRules
from mlops_runtime.stages.accept import check_slices, not_beneficial, request_batches
from mlops_runtime.stages.evaluate import importance_rows
from mlops_runtime.testing import Project


def small_data(seed: int, rows: int) -> pd.DataFrame:
    """A few hundred rows, as real data sets often are: one clear signal, one weak one, one of pure noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(size=rows) for name in ("signal", "weak", "noise")})
    frame["y"] = 2.0 * frame["signal"] + 0.5 * frame["weak"] + rng.normal(0, 1, rows)
    return frame


@pytest.mark.ml_test_score("D2")
@pytest.mark.parametrize("family", ["linear", "random_forest"])
@pytest.mark.parametrize("seed", range(5))
def test_pure_noise_is_always_named_and_a_useful_feature_never(project: Project, family: str, seed: int) -> None:
    """The same verdict on every data set of this shape: 442 rows, as in scikit-learn's diabetes data."""
    frame = small_data(seed, 442)
    contract = infer(frame, "y", "regression", 50, "tests").contract
    train, held_out = frame.iloc[:265], frame.iloc[265:]
    data = TuningData(contract, train, held_out, "regression", "rmse", project.models)
    model = fit_model(data, family, {"n_estimators": 50} if family == "random_forest" else {}, seed=0, frame=train)

    rows = importance_rows(model, "regression", "rmse", *contract.split_xy(held_out), min_repeats=5, seed=seed)

    named = {row["feature"] for row in rows if not_beneficial(row)}
    assert "noise" in named
    assert "signal" not in named
    assert rows[0]["rows"] == 177
    assert rows[0]["repeats"] >= 50  # small data: more shuffles


def test_canary_requests_stay_within_the_service_limits_whatever_the_width() -> None:
    wide = {f"column_{index}": 1234.5678 for index in range(60)}
    records = [wide] * 2050

    batches = request_batches(records, max_records=1000, max_bytes=100_000)

    assert sum(len(batch) for _, batch in batches) == 2050
    assert [start for start, _ in batches] == list(np.cumsum([0] + [len(batch) for _, batch in batches[:-1]]))
    assert all(len(json.dumps(batch)) <= 100_000 for _, batch in batches)
    assert all(len(batch) <= 1000 for _, batch in batches)
    assert len(request_batches([{"x": 1}] * 2050, max_records=1000, max_bytes=1_000_000)) == 3


def test_slices_too_small_to_judge_are_said_so() -> None:
    report = {
        "by": ["plan"],
        "sensitive": [],
        "slices": {
            "plan": {
                "basic": {"rows": 120, "r2": 0.61},
                "premium": {"rows": 12, "note": "fewer than 30 rows"},
            }
        },
    }

    [minimum] = check_slices(report, SliceRules(minimum={"r2": 0.5}))

    assert minimum["passed"]
    assert "not judged (too few rows or one class): plan=premium (12 rows)" in minimum["message"]
    [nothing] = check_slices({"by": [], "sensitive": [], "slices": {}}, SliceRules(minimum={"r2": 0.5}))
    assert "no feature" in nothing["message"]


def test_prediction_drift_is_not_judged_against_a_reference_too_small_to_mean_anything() -> None:
    from mlops_runtime.monitoring import checks
    from mlops_runtime.params import MonitorParams

    profile = {"prediction": {"kind": "categorical", "rows": 47, "categories": ["a", "b"], "counts": [20, 27]}}

    verdict = checks.prediction_drift(None, profile, MonitorParams())  # type: ignore[arg-type]

    assert verdict["status"] == "n/a"
    assert "47 validation rows" in verdict["note"]
