"""Metrics point the right way, and the acceptance gate says which rule failed by how much."""

import numpy as np
import pandas as pd
import pytest

from mlops_runtime.errors import StageError
from mlops_runtime.metrics import Predictions, improvement, improvement_lower_bound
from mlops_runtime.params import AcceptParams
from mlops_runtime.stages.accept import check_model

REPORT = {
    "model": {"test": {"roc_auc": 0.80, "log_loss": 0.45}},
    "baseline": {"test": {"roc_auc": 0.50, "log_loss": 0.69}},
}


def test_improvement_respects_the_metric_direction() -> None:
    assert improvement("roc_auc", 0.8, 0.5) == pytest.approx(0.3)
    assert improvement("rmse", 10.0, 12.0) == pytest.approx(2.0)


@pytest.mark.ml_test_score("I4", "M5")
def test_a_model_that_meets_every_rule_passes() -> None:
    accept = AcceptParams(thresholds={"roc_auc": 0.75, "log_loss": 0.5}, margin_over_baseline={"roc_auc": 0.1})
    assert all(check["passed"] for check in check_model(REPORT, accept))


@pytest.mark.ml_test_score("I4", "M5")
def test_failed_rules_say_by_how_much() -> None:
    accept = AcceptParams(thresholds={"roc_auc": 0.85}, margin_over_baseline={"log_loss": 0.3})
    failed = [check for check in check_model(REPORT, accept) if not check["passed"]]
    assert [check["metric"] for check in failed] == ["roc_auc", "log_loss"]
    assert "short by 0.0500" in failed[0]["message"]
    assert "short by 0.0600" in failed[1]["message"]


def test_an_unknown_metric_is_a_clear_error() -> None:
    with pytest.raises(StageError, match="does not report"):
        check_model(REPORT, AcceptParams(thresholds={"recall": 0.5}))


@pytest.mark.ml_test_score("M5")
def test_a_gain_the_sampling_noise_explains_does_not_meet_the_margin() -> None:
    accept = AcceptParams(margin_over_baseline={"roc_auc": 0.1})
    [lucky] = check_model(REPORT, accept, bounds={"roc_auc": 0.02})
    assert not lucky["passed"]
    assert "by 0.3000 (at least 0.0200 in 95% of resamples)" in lucky["message"]
    assert "short by 0.0800" in lucky["message"]
    assert check_model(REPORT, accept, bounds={"roc_auc": 0.25})[0]["passed"]


def guesses(rows: int, seed: int) -> tuple[pd.Series, Predictions, Predictions]:
    """Labels, a model with no signal (random scores) and the constant baseline, on `rows` rows."""
    generator = np.random.default_rng(seed)
    target = pd.Series(generator.integers(0, 2, rows))
    scores = generator.random(rows)
    model = Predictions((scores > 0.5).astype(int), np.column_stack([1 - scores, scores]), [0, 1])
    prior = float(target.mean())
    baseline = Predictions(np.full(rows, int(prior > 0.5)), np.tile([1 - prior, prior], (rows, 1)), [0, 1])
    return target, model, baseline


def test_a_model_without_signal_that_shows_the_margin_by_luck_does_not_show_it_on_its_bound() -> None:
    lucky = []
    for seed in range(30):
        target, model, baseline = guesses(60, seed)
        gain = improvement("roc_auc", model.value("roc_auc", target.to_numpy(), np.arange(len(target))), 0.5)
        if gain >= 0.05:
            lucky.append((target, model, baseline))
    assert len(lucky) >= 3  # on 60 rows, a model without signal often shows the margin
    for target, model, baseline in lucky:
        bound = improvement_lower_bound("roc_auc", target, model, baseline, seed=0)
        assert bound is not None
        assert bound < 0.05


def test_a_model_with_signal_keeps_its_gain_on_the_bound() -> None:
    target, _, baseline = guesses(500, seed=1)
    perfect = Predictions(target.to_numpy(), np.column_stack([1 - target, target]).astype(float), [0, 1])
    assert improvement_lower_bound("roc_auc", target, perfect, baseline, seed=0) == pytest.approx(0.5)
    assert improvement_lower_bound("accuracy", target, baseline, baseline, seed=0) == 0
