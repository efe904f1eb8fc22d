"""The reference profile: what the model saw in training, saved with the model.

Per feature: quantile bin edges and counts (numeric) or category counts, the missing rate,
and a small sorted sample (for Wasserstein and Kolmogorov-Smirnov); the prediction
distribution on the validation split; a sample of training rows (the multivariate check);
validation metrics; a latency reference. The monitoring job compares each model version's
traffic with that version's own profile, so it needs neither the training data nor DVC.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..metrics import is_classification, score
from ..schema import CategoricalColumn
from .statistics import bin_counts, category_counts, expected_accuracy, expected_roc_auc, quantile_edges

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

    from ..params import ProfileParams
    from ..schema import Contract

PREDICTION_BINS = 10  # probabilities: fixed equal-width bins over [0, 1]


def build_profile(
    model: Any, contract: Contract, train: pd.DataFrame, validation: pd.DataFrame, task: str, params: ProfileParams
) -> dict[str, Any]:
    """The profile of a fitted model: its training split, its outputs on validation, its speed."""
    import numpy as np

    rng = np.random.default_rng(params.seed)
    features, _ = contract.split_xy(train)
    profile_features = {
        column.name: _feature_profile(features[column.name], column, params, rng) for column in contract.features
    }
    reference_rows = features.sample(min(params.reference_rows, len(features)), random_state=params.seed)
    x_validation, y_validation = contract.split_xy(validation)
    return {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": task,
        "features": profile_features,
        "prediction": prediction_profile(model, x_validation, task, params, rng),
        "reference_rows": {name: _plain_list(values) for name, values in reference_rows.items()},
        "validation_metrics": score(model, task, x_validation, y_validation),
        "latency": latency_reference(model, x_validation, task),
    }


def _feature_profile(values: pd.Series, column: Any, params: ProfileParams, rng: np.random.Generator) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": column.kind, "missing_rate": round(float(values.isna().mean()), 6)}
    if isinstance(column, CategoricalColumn):
        categories = [str(category) for category in column.categories]
        return entry | {"categories": categories, "counts": category_counts(values.to_numpy(), categories).tolist()}
    return entry | numeric_profile(values.to_numpy(dtype="float64"), params, rng)


def numeric_profile(values: NDArray[np.float64], params: ProfileParams, rng: np.random.Generator) -> dict[str, Any]:
    """Bins, counts, spread and a sorted sample of one numeric distribution."""
    import numpy as np

    finite = values[np.isfinite(values)]
    edges = quantile_edges(finite, params.bins)
    sample = np.sort(rng.choice(finite, size=min(params.sample_size, finite.size), replace=False))
    return {
        "edges": edges.tolist(),
        "counts": bin_counts(finite, edges).tolist(),
        "std": float(finite.std()) if finite.size else 0.0,
        "sample": sample.tolist(),
    }


def prediction_profile(
    model: Any, features: pd.DataFrame, task: str, params: ProfileParams, rng: np.random.Generator
) -> dict[str, Any]:
    """The model's outputs on validation: class shares and confidence bins, or the value distribution."""
    import numpy as np

    if not is_classification(task):
        return {"kind": "numeric", "rows": len(features)} | numeric_profile(
            np.asarray(model.predict(features), dtype="float64"), params, rng
        )
    proba = model.predict_proba(features)
    classes = [str(label) for label in model.classes_]
    predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    edges = np.linspace(0.0, 1.0, PREDICTION_BINS + 1)[1:-1]
    # What the label-free estimate says on validation: monitoring compares the window's estimate with it.
    estimated = {"accuracy": round(expected_accuracy(proba), 6)}
    if task == "binary_classification":
        estimated["roc_auc"] = round(expected_roc_auc(proba[:, 1]), 6)
    return {
        "kind": "categorical",
        "rows": len(features),
        "estimated": estimated,
        "categories": classes,
        "counts": category_counts(predicted, classes).tolist(),
        "confidence_edges": edges.tolist(),
        "confidence_counts": bin_counts(proba.max(axis=1), edges).tolist(),
    }


def latency_reference(model: Any, features: pd.DataFrame, task: str, repeats: int = 7) -> dict[str, float]:
    """Median wall time of one-row and 100-row predictions through the Pipeline, in milliseconds."""
    import statistics

    predict = model.predict_proba if is_classification(task) else model.predict
    timings: dict[str, float] = {}
    for name, rows in (("one_row_ms", features.head(1)), ("batch_100_ms", features.head(100))):
        predict(rows)  # warm
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            predict(rows)
            runs.append((time.perf_counter() - started) * 1000)
        timings[name] = round(statistics.median(runs), 4)
    return timings


def _plain_list(values: pd.Series) -> list[Any]:
    """JSON-ready values: NaN becomes None."""
    return [None if value != value else value for value in values.tolist()]
