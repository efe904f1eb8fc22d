"""The monitoring checks: each returns its status (ok, warn, alert or n/a), its value and its thresholds.

Drift decisions use effect sizes on the reference profile, so the same shift gives the same
verdict in a window of 500 rows or of a million; p-values are reported beside them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..metrics import HIGHER_IS_BETTER, improvement, score_predictions
from .statistics import (
    bin_counts,
    category_counts,
    chi_square_pvalue,
    expected_accuracy,
    expected_roc_auc,
    jensen_shannon,
    ks_pvalue,
    psi,
    wasserstein,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ..params import MonitorParams, Thresholds
    from ..schema import Contract
    from .window import Window

STATUSES = ("ok", "warn", "alert")
# Sample-based statistics (Wasserstein, Kolmogorov-Smirnov) read at most this many window rows,
# taken evenly across the window; PSI and Jensen-Shannon always read every row.
MAX_SAMPLE_ROWS = 100_000
MIN_LABELS = 30


def status_of(value: float, thresholds: Thresholds) -> str:
    return "alert" if value >= thresholds.alert else "warn" if value >= thresholds.warn else "ok"


def worst(statuses: list[str]) -> str:
    ranked = [status for status in statuses if status in STATUSES]
    return max(ranked, key=STATUSES.index) if ranked else "ok"


def result(check: str, value: float, thresholds: Thresholds, **detail: Any) -> dict[str, Any]:
    return {
        "check": check,
        "status": status_of(value, thresholds),
        "value": round(float(value), 6),
        "warn": thresholds.warn,
        "alert": thresholds.alert,
    } | detail


def not_judged(check: str, note: str, **detail: Any) -> dict[str, Any]:
    return {"check": check, "status": "n/a", "note": note} | detail


def feature_drift(window: Window, profile: dict[str, Any], params: MonitorParams) -> list[dict[str, Any]]:
    """One check per feature: PSI and an effect size decide; a p-value is reported beside them."""
    results = []
    for name, reference in profile["features"].items():
        values = window.features[name]
        if reference["kind"] == "categorical":
            results.append(_categorical_drift(f"drift:{name}", values, reference, params, name))
        else:  # numbers, and dates as the model sees them (epoch seconds), are binned alike
            results.append(_numeric_drift(f"drift:{name}", values.to_numpy("float64"), reference, params, name))
    return results


def _numeric_drift(
    check: str, values: np.ndarray, reference: dict[str, Any], params: MonitorParams, feature: str
) -> dict[str, Any]:
    import numpy as np

    edges, sample = np.asarray(reference["edges"]), np.asarray(reference["sample"])
    stability = psi(np.asarray(reference["counts"]), bin_counts(values, edges))
    subsample = values[:: max(1, -(-values.size // MAX_SAMPLE_ROWS))]  # evenly across the window
    effect = wasserstein(sample, subsample) / reference["std"] if reference["std"] > 0 else 0.0
    return _drift_result(
        check, feature, stability, effect, "normalised_wasserstein", ks_pvalue(sample, subsample), "ks", params
    )


def _categorical_drift(
    check: str, values: pd.Series, reference: dict[str, Any], params: MonitorParams, feature: str
) -> dict[str, Any]:
    import numpy as np

    expected, observed = np.asarray(reference["counts"]), category_counts(values, reference["categories"])
    return _drift_result(
        check,
        feature,
        psi(expected, observed),
        jensen_shannon(expected, observed),
        "jensen_shannon",
        chi_square_pvalue(expected, observed),
        "chi_square",
        params,
    )


def _drift_result(
    check: str,
    feature: str,
    stability: float,
    effect: float,
    effect_name: str,
    p_value: float,
    test: str,
    params: MonitorParams,
) -> dict[str, Any]:
    status = worst([status_of(stability, params.psi), status_of(effect, params.effect)])
    return {
        "check": check,
        "feature": feature,
        "status": status,
        "value": round(stability, 6),
        "statistic": "psi",
        "warn": params.psi.warn,
        "alert": params.psi.alert,
        "effect": round(effect, 6),
        "effect_statistic": effect_name,
        "effect_warn": params.effect.warn,
        "effect_alert": params.effect.alert,
        "p_value": p_value,
        "test": test,
    }


def prediction_drift(window: Window, profile: dict[str, Any], params: MonitorParams) -> dict[str, Any]:
    """The model's outputs against its outputs on validation: class shares and confidence, or values.

    A reference of fewer than `min_rows` validation rows is noise (47 rows of a 234-row data set make
    ten confidence bins of four or five): then the check is not judged.
    """
    import numpy as np

    reference = profile["prediction"]
    if reference.get("rows", params.min_rows) < params.min_rows:
        return not_judged(
            "prediction_drift", f"the reference has {reference['rows']} validation rows (fewer than {params.min_rows})"
        )
    predictions = window.served["prediction"].to_numpy()
    if reference["kind"] == "numeric":
        return _numeric_drift("prediction_drift", predictions.astype("float64"), reference, params, "prediction")
    classes = psi(np.asarray(reference["counts"]), category_counts(predictions, reference["categories"]))
    assert window.probabilities is not None
    confidence = np.nanmax(window.probabilities, axis=1) if len(window.probabilities) else np.array([])
    edges = np.asarray(reference["confidence_edges"])
    confident = psi(np.asarray(reference["confidence_counts"]), bin_counts(confidence, edges))
    return result(
        "prediction_drift", max(classes, confident), params.prediction_psi, class_psi=classes, confidence_psi=confident
    )


def multivariate_drift(
    window: Window, profile: dict[str, Any], contract: Contract, params: MonitorParams
) -> dict[str, Any]:
    """A domain classifier tells training rows from window rows: cross-validated ROC AUC near 0.5 means alike.

    It catches a change in how features move together when no single feature drifts.
    """
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    reference = pd.DataFrame(profile["reference_rows"])[contract.feature_names]
    current = window.features.sample(min(len(window.features), len(reference)), random_state=params.seed)
    frame = pd.concat([reference, current], ignore_index=True)
    for name in contract.categorical_features:  # category codes: the classifier's own categorical support
        codes = frame[name].astype("category").cat.codes
        frame[name] = codes.where(codes >= 0)  # missing stays missing
    target = np.r_[np.zeros(len(reference)), np.ones(len(current))]
    classifier = HistGradientBoostingClassifier(
        max_iter=100,
        max_depth=3,
        random_state=params.seed,
        categorical_features=[name in contract.categorical_features for name in contract.feature_names],
    )
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=params.seed)
    auc = float(np.mean(cross_val_score(classifier, frame.astype("float64"), target, cv=folds, scoring="roc_auc")))
    return result("multivariate", auc, params.multivariate_auc, method="domain classifier ROC AUC")


def missing_values(
    window: Window, profile: dict[str, Any], contract: Contract, params: MonitorParams
) -> list[dict[str, Any]]:
    """Missing rate per feature against training's; past the contract's own limit is an alert."""
    results = []
    for column in contract.features:
        rate = float(window.features[column.name].isna().mean()) if len(window.features) else 0.0
        training = profile["features"][column.name]["missing_rate"]
        entry = result(
            f"missing:{column.name}", max(0.0, rate - training), params.missing_increase, rate=rate, training=training
        )
        if rate > column.max_missing:
            entry |= {"status": "alert", "contract_max_missing": column.max_missing}
        results.append(entry)
    return results


def refusal_rate(window: Window, params: MonitorParams) -> dict[str, Any]:
    """Refused requests against all requests, and how often each field was at fault."""
    if window.refusals is None:
        return not_judged("refusals", "this prediction log records no refusals (written by an older service)")
    refused = len(window.refusals)
    total = refused + len(window.served)
    fields = window.refusals["fields"].str.split(",").explode().value_counts()
    reasons = window.refusals["reason"].value_counts()
    return result(
        "refusals",
        refused / total if total else 0.0,
        params.refusal_rate,
        refused=refused,
        by_field={str(key): int(value) for key, value in fields.items()},
        by_reason={str(key): int(value) for key, value in reasons.items()},
    )


def realised_performance(
    window: Window, task: str, classes: list[Any], metric: str, offline: dict[str, float], params: MonitorParams
) -> dict[str, Any]:
    """The primary metric on rows with feedback labels, a bootstrap interval, and the offline test figure.

    The verdict reads the interval's end nearest the offline figure, so a few unlucky labels
    do not raise an alert: only a drop the data are sure of does.
    """
    import numpy as np

    labelled = window.served["label"].notna().to_numpy()
    count = int(labelled.sum())
    if count < MIN_LABELS or metric not in offline:
        return not_judged("performance", f"{count} labelled rows (at least {MIN_LABELS} needed)", labelled=count)
    # Plain arrays (int64, float64 or text), never object arrays: scikit-learn cannot type those.
    y_true = np.array(window.served["label"].to_numpy()[labelled].tolist())
    predicted = np.array(window.served["prediction"].to_numpy()[labelled].tolist())
    proba = None if window.probabilities is None else window.probabilities[labelled]
    found = metric_interval(task, y_true, predicted, proba, classes, metric, params)
    if found is None:
        return not_judged("performance", f"{metric} is undefined on these labels", labelled=count)
    point, low, high = found
    nearest = high if HIGHER_IS_BETTER[metric] else low
    reference = offline[metric]
    drop = max(0.0, -improvement(metric, nearest, reference) / abs(reference)) if reference else 0.0
    return result(
        "performance",
        drop,
        params.performance_drop,
        metric=metric,
        realised=point,
        interval=[low, high],
        offline=reference,
        labelled=count,
    )


def metric_interval(
    task: str, y_true: Any, predicted: Any, proba: Any, classes: list[Any], metric: str, params: MonitorParams
) -> tuple[float, float, float] | None:
    """`metric` on labelled rows and its 95% bootstrap interval (params.bootstrap resamples, seeded); None when
    the metric is undefined on them (one class only, say)."""
    import numpy as np

    count = len(y_true)
    point = _metric_or_none(task, y_true, predicted, proba, classes, metric)
    rng = np.random.default_rng(params.seed)
    resampled = [
        _metric_or_none(task, y_true[index], predicted[index], None if proba is None else proba[index], classes, metric)
        for index in (rng.integers(0, count, count) for _ in range(params.bootstrap))
    ]
    values = np.array([value for value in resampled if value is not None])
    if point is None or values.size == 0:
        return None
    low, high = (float(v) for v in np.percentile(values, [2.5, 97.5]))
    return float(point), low, high


def _metric_or_none(
    task: str, y_true: Any, predicted: Any, proba: Any, classes: list[Any], metric: str
) -> float | None:
    try:
        return score_predictions(task, y_true, predicted, proba, classes).get(metric)
    except ValueError:  # e.g. one class only in a resample: ROC AUC is undefined
        return None


def estimated_performance(
    window: Window, task: str, offline: dict[str, float], params: MonitorParams
) -> dict[str, Any]:
    """Performance without labels from the model's own probabilities (confidence-based, like NannyML's CBPE).

    Valid while the model stays calibrated: it shows decay from data drift before labels arrive.
    `offline` is the same estimate on validation where the profile has it (a model that is not
    calibrated then does not alert on healthy traffic), else the offline test figures.
    """
    import numpy as np

    if window.probabilities is None or not len(window.probabilities):
        return not_judged("estimated_performance", "no class probabilities in the window")
    proba = np.nan_to_num(window.probabilities)
    estimates = {"accuracy": expected_accuracy(proba)}
    if task == "binary_classification":
        estimates["roc_auc"] = expected_roc_auc(proba[:, 1])
    drops = {
        name: max(0.0, (offline[name] - value) / offline[name])
        for name, value in estimates.items()
        if offline.get(name)
    }
    if not drops:
        return not_judged("estimated_performance", "no offline figure to compare with", estimated=estimates)
    return result(
        "estimated_performance",
        max(drops.values()),
        params.estimated_drop,
        estimated={key: round(value, 6) for key, value in estimates.items()},
        offline={key: offline[key] for key in drops},
    )


def latency(window: Window, profile: dict[str, Any], params: MonitorParams) -> dict[str, Any]:
    """Request latency p50/p99 from the log, against the model's one-row predict time measured in training."""
    import numpy as np

    reference = profile.get("latency", {}).get("one_row_ms")
    if not reference or window.served.empty:
        return not_judged("latency", "no latency reference or no rows")
    p50, p99 = (float(v) for v in np.percentile(window.served["latency_ms"], [50, 99]))
    return result("latency", p99 / reference, params.latency_factor, p50_ms=p50, p99_ms=p99, reference_ms=reference)


def staleness(profile: dict[str, Any], params: MonitorParams, now: float | None = None) -> dict[str, Any]:
    """How long ago the serving model was trained."""
    from datetime import datetime

    trained = datetime.fromisoformat(profile["trained_at"]).timestamp()
    age_days = ((now or time.time()) - trained) / 86_400
    return result("staleness", age_days, params.age_days, trained_at=profile["trained_at"])


def request_rate(window: Window) -> dict[str, Any]:
    """Rows served per hour over the window (information, no threshold)."""
    hours = max((window.end - window.start) / 3600, 1e-9)
    return {"check": "request_rate", "status": "ok", "value": round(len(window.served) / hours, 3), "unit": "rows/hour"}
