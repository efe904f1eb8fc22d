"""The task's metrics, computed the same way for the model and its baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    import pandas as pd

    from .schema import Contract

# Direction of each metric: True when higher is better.
HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "f1": True,
    "f1_macro": True,
    "accuracy": True,
    "r2": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
}
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary_classification": ("roc_auc", "f1", "accuracy", "log_loss"),
    "multiclass_classification": ("f1_macro", "accuracy", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}


@dataclass(frozen=True)
class Metric:
    """A project's own metric: `compute(y_true, predicted, proba, classes)` on a split's rows, for `tasks`.

    `proba` holds the class probabilities in `classes` order (None for regression). Once registered, it is
    scored everywhere the built-in metrics are (reports/metrics.json, tuning, the gate, monitoring) and can
    be `train.primary_metric`.
    """

    name: str
    tasks: tuple[str, ...]
    higher_is_better: bool
    compute: Callable[[Any, Any, np.ndarray | None, list[Any]], float]


_PROJECT_METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> None:
    """Add a project's metric to the tasks it names (the project's metrics.py registers its METRICS)."""
    if metric.name in HIGHER_IS_BETTER and metric.name not in _PROJECT_METRICS:
        raise ValueError(f"{metric.name!r} is a built-in metric: give yours another name")
    unknown = sorted(set(metric.tasks) - set(TASK_METRICS))
    if unknown:
        raise ValueError(f"metric {metric.name!r} names unknown tasks {unknown}; tasks are {', '.join(TASK_METRICS)}")
    _PROJECT_METRICS[metric.name] = metric
    HIGHER_IS_BETTER[metric.name] = metric.higher_is_better
    for task in metric.tasks:
        if metric.name not in TASK_METRICS[task]:
            TASK_METRICS[task] = (*TASK_METRICS[task], metric.name)


def register_project_metrics(package: str) -> None:
    """Import the project's own metrics module (`<package>.metrics`, which registers its METRICS), if it has one."""
    from importlib import import_module
    from importlib.util import find_spec

    if find_spec(f"{package}.metrics") is not None:
        import_module(f"{package}.metrics")


def is_classification(task: str) -> bool:
    """Whether `task` (params.yaml's `task`) predicts classes: binary or multiclass classification."""
    return task != "regression"


def score(model: Any, task: str, features: pd.DataFrame, target: pd.Series) -> dict[str, float]:
    """Every metric of the task for a fitted model (or baseline) on one frame: the one way anything is scored.

    Rounded to 6 digits, so that reports are identical across reruns and platforms.
    """
    said = Predictions.of(model, task, features)
    return score_predictions(task, target, said.predicted, said.proba, said.classes)


def score_predictions(
    task: str, y_true: Any, predicted: Any, proba: np.ndarray | None, classes: list[Any]
) -> dict[str, float]:
    """The same metrics from predictions already made (the prediction log): `proba` in `classes` order."""
    values = _metrics(task, y_true, predicted, proba, classes)
    return {key: round(value, 6) for key, value in values.items()}


def improvement(metric: str, value: float, reference: float) -> float:
    """How much better `value` is than `reference`, positive when better."""
    return value - reference if HIGHER_IS_BETTER[metric] else reference - value


@dataclass(frozen=True)
class Predictions:
    """What one model said about the rows of a split: labels, class probabilities (in `classes` order)."""

    predicted: np.ndarray
    proba: np.ndarray | None
    classes: list[Any]

    @classmethod
    def of(cls, model: Any, task: str, features: pd.DataFrame) -> Predictions:
        import numpy as np

        classify = is_classification(task)
        proba = model.predict_proba(features) if classify else None
        return cls(np.asarray(model.predict(features)), proba, list(model.classes_) if classify else [])

    def value(self, metric: str, y_true: np.ndarray, rows: np.ndarray) -> float:
        """`metric` on the given rows (indices, repeats allowed)."""
        proba = None if self.proba is None else self.proba[rows]
        return metric_value(metric, y_true[rows], self.predicted[rows], proba, self.classes)


def fit_baseline(task: str, contract: Contract, train: pd.DataFrame) -> Any:
    """The trivial model to beat: class priors, or the mean."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    features, target = contract.split_xy(train)
    baseline = DummyClassifier(strategy="prior") if is_classification(task) else DummyRegressor(strategy="mean")
    return baseline.fit(features, target)


BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_QUANTILE = 0.05  # the gain is at least the bound in 95% of resamples


def improvement_lower_bound(
    metric: str, target: pd.Series, model: Predictions, baseline: Predictions, seed: int
) -> float | None:
    """How much the model beats the baseline on `metric` in all but the worst 5% of bootstrap resamples of
    the rows: on a small split a lucky draw shows a gain that this bound of the sampling noise does not.
    None when the metric is undefined on most resamples (one class only)."""
    import numpy as np

    y_true = np.asarray(target)
    generator = np.random.default_rng(seed)
    gains = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        rows = generator.integers(0, len(y_true), len(y_true))
        try:
            gains.append(improvement(metric, model.value(metric, y_true, rows), baseline.value(metric, y_true, rows)))
        except ValueError:  # a resample the metric is undefined on: it does not count
            continue
    if len(gains) < BOOTSTRAP_RESAMPLES // 2:
        return None
    return round(float(np.quantile(gains, BOOTSTRAP_QUANTILE)), 6)


def _metrics(task: str, y_true: Any, predicted: Any, proba: np.ndarray | None, classes: list[Any]) -> dict[str, float]:
    """Metrics for one split. `proba` has one column per class, in `classes` order."""
    assert task == "regression" or proba is not None, "classifiers must give probabilities"
    return {metric: metric_value(metric, y_true, predicted, proba, classes) for metric in TASK_METRICS[task]}


def metric_value(metric: str, y_true: Any, predicted: Any, proba: np.ndarray | None, classes: list[Any]) -> float:
    """One metric: the one definition of each. Binary metrics take `classes[1]` as the positive class."""
    from sklearn import metrics

    if metric in _PROJECT_METRICS:
        return float(_PROJECT_METRICS[metric].compute(y_true, predicted, proba, classes))
    if metric == "rmse":
        return float(metrics.root_mean_squared_error(y_true, predicted))
    if metric == "mae":
        return float(metrics.mean_absolute_error(y_true, predicted))
    if metric == "r2":
        return float(metrics.r2_score(y_true, predicted))
    if metric == "accuracy":
        return float(metrics.accuracy_score(y_true, predicted))
    if metric == "f1_macro":
        return float(metrics.f1_score(y_true, predicted, average="macro", zero_division=0))
    if metric == "f1":
        return float(metrics.f1_score(y_true, predicted, pos_label=classes[1], zero_division=0))
    assert proba is not None, f"{metric} needs class probabilities"
    if metric == "log_loss":
        return float(metrics.log_loss(y_true, proba, labels=classes))
    if metric == "roc_auc":
        return float(metrics.roc_auc_score(y_true == classes[1], proba[:, 1]))
    raise ValueError(f"unknown metric {metric!r}")


TIMING_ROWS = 10_000  # a timed call predicts at least this many rows: long enough to rise above the noise


def predict_seconds(
    models: Sequence[Any], features: pd.DataFrame, repeats: int, rows: int = TIMING_ROWS
) -> list[float]:
    """Each model's fastest of `repeats` predictions of the same batch, in CPU seconds.

    CPU time, not wall time: a prediction preempted by other work on a busy machine (CI runs tests
    in parallel) is not charged for the wait. The batch repeats `features` up to `rows` rows,
    and the models take turns, so what noise remains falls on all of them alike.
    """
    import math
    import time

    import pandas as pd

    batch = pd.concat([features] * math.ceil(rows / max(len(features), 1)), ignore_index=True)
    timings: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for model, times in zip(models, timings, strict=True):
            started = time.process_time()
            model.predict(batch)
            times.append(time.process_time() - started)
    return [min(times) for times in timings]
