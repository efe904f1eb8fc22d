"""The task's metrics, computed the same way for the model and its baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pandas as pd

# Direction of each metric: True when higher is better.
HIGHER_IS_BETTER = {
    "roc_auc": True,
    "f1": True,
    "f1_macro": True,
    "accuracy": True,
    "r2": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
}
TASK_METRICS = {
    "binary_classification": ("roc_auc", "f1", "accuracy", "log_loss"),
    "multiclass_classification": ("f1_macro", "accuracy", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}


def is_classification(task: str) -> bool:
    return task != "regression"


def score(model: Any, task: str, features: pd.DataFrame, target: pd.Series) -> dict[str, float]:
    """Every metric of the task for a fitted model (or baseline) on one frame: the one way anything is scored.

    Rounded to 6 digits, so that reports are identical across reruns and platforms.
    """
    classify = is_classification(task)
    proba = model.predict_proba(features) if classify else None
    classes = list(model.classes_) if classify else []
    return score_predictions(task, target, model.predict(features), proba, classes)


def score_predictions(
    task: str, y_true: Any, predicted: Any, proba: np.ndarray | None, classes: list[Any]
) -> dict[str, float]:
    """The same metrics from predictions already made (the prediction log): `proba` in `classes` order."""
    values = _metrics(task, y_true, predicted, proba, classes)
    return {key: round(value, 6) for key, value in values.items()}


def improvement(metric: str, value: float, reference: float) -> float:
    """How much better `value` is than `reference`, positive when better."""
    return value - reference if HIGHER_IS_BETTER[metric] else reference - value


def _metrics(task: str, y_true: Any, predicted: Any, proba: np.ndarray | None, classes: list[Any]) -> dict[str, float]:
    """Metrics for one split. `proba` has one column per class, in `classes` order."""
    from sklearn import metrics

    if task == "regression":
        return {
            "rmse": float(metrics.root_mean_squared_error(y_true, predicted)),
            "mae": float(metrics.mean_absolute_error(y_true, predicted)),
            "r2": float(metrics.r2_score(y_true, predicted)),
        }
    assert proba is not None, "classifiers must give probabilities"
    scores = {
        "accuracy": float(metrics.accuracy_score(y_true, predicted)),
        "log_loss": float(metrics.log_loss(y_true, proba, labels=classes)),
    }
    if task == "binary_classification":
        positive = classes[1]
        scores["roc_auc"] = float(metrics.roc_auc_score(y_true == positive, proba[:, 1]))
        scores["f1"] = float(metrics.f1_score(y_true, predicted, pos_label=positive, zero_division=0))
    else:
        scores["f1_macro"] = float(metrics.f1_score(y_true, predicted, average="macro", zero_division=0))
    return scores


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
