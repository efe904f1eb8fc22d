"""Stage evaluate: how good the model is, and where.

First the model must give finite outputs on the test split and on the contract's extreme
rows (reports/stability.json; the stage fails otherwise). Then it writes the task's metrics on
validation and test for the model and a trivial baseline (reports/metrics.json), metrics per
slice of the chosen and the sensitive features (reports/slices.json), what each feature costs
and gains, by refitting the winner without it (reports/feature_cost.json), and plots as DVC
plot data plus PNG: ROC and precision-recall or predicted-vs-actual, confusion matrix,
calibration or residuals, permutation feature importance. All of it is also logged to the
training run in MLflow. `accept` judges these reports.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..files import read_json, write_json
from ..metrics import (
    HIGHER_IS_BETTER,
    Predictions,
    fit_baseline,
    improvement,
    metric_value,
    predict_seconds,
    score,
)
from ..objective import fit_model
from ..plots import pyplot, save
from ..schema import CategoricalColumn, DatetimeColumn
from ..tracking import start_run, tracking_enabled

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from ..objective import TuningData
    from ..params import EvaluateParams, Params
    from ..paths import Paths
    from ..schema import Column, Contract

MIN_SLICE_ROWS = 30  # a metric on fewer rows is noise: such a slice is reported as not judged
IMPORTANCE_ROW_SHUFFLES = 20_000  # rows x repeats of permutation importance, at least (capped at MAX_REPEATS)
MAX_IMPORTANCE_REPEATS = 50
COST_TIMING_ROWS = 2_000  # rows per timed prediction of a refit: a share of predict time shows on fewer than accept's


def trained_model(paths: Paths) -> Any:
    """The model train saved (models/model): the whole Pipeline, features and estimator."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(str(paths.model))


def scores(model: Any, data: TuningData, test: pd.DataFrame) -> dict[str, Any]:
    """The task's metrics of the model and of a trivial baseline (fitted on train), on validation and test."""
    baseline = fit_baseline(data.task, data.contract, data.train)
    report: dict[str, Any] = {"model": {}, "baseline": {}}
    for name, frame in (("validation", data.validation), ("test", test)):
        features, target = data.contract.split_xy(frame)
        report["model"][name] = score(model, data.task, features, target)
        report["baseline"][name] = score(baseline, data.task, features, target)
    return report


def log_to_training_run(report: dict[str, Any], paths: Paths) -> None:
    """The metrics, reports and plots, on the MLflow run train opened (nothing when tracking is off)."""
    import mlflow

    run_info = read_json(paths.run_info)
    if not (tracking_enabled() and run_info.get("run_id")):
        return
    with start_run(run_info["experiment"], run_id=run_info["run_id"], run_name="evaluate"):
        for owner, results in report.items():
            for split_name, values in results.items():
                prefix = split_name if owner == "model" else f"baseline_{split_name}"
                mlflow.log_metrics({f"{prefix}_{key}": value for key, value in values.items()})
        for path in (paths.metrics, paths.slices, paths.feature_cost, paths.stability):
            mlflow.log_artifact(str(path))
        for path in sorted(paths.plots_dir.iterdir()):
            mlflow.log_artifact(str(path), artifact_path="plots")


def require_stable(model: Any, task: str, contract: Contract, test: pd.DataFrame, paths: Paths) -> None:
    """Numerical stability: finite outputs on every test row and on the contract's extreme rows."""
    check = finite_outputs(model, task, contract, test)
    write_json(paths.stability, {"checks": [check]})
    if not check["passed"]:
        raise StageError(f"{check['message']} (see {paths.stability}).")


def finite_outputs(model: Any, task: str, contract: Contract, test: pd.DataFrame) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    rows = pd.concat([contract.features_of(test), contract.examples()], ignore_index=True)
    outputs = np.asarray(model.predict(rows) if task == "regression" else model.predict_proba(rows), dtype=float)
    bad = ~np.isfinite(outputs.reshape(len(rows), -1)).all(axis=1)
    count = int(bad.sum())
    return {
        "item": "Mo5",
        "rule": "finite_outputs",
        "rows": len(rows),
        "non_finite": count,
        "passed": count == 0,
        "message": f"the model gives {count} non-finite outputs on {len(rows)} test and extreme rows"
        if count
        else f"finite outputs on {len(rows)} test and extreme rows",
    }


def slice_columns(contract: Contract, params: EvaluateParams) -> list[str]:
    """The features to slice by: those params name (else the first categorical one), then the sensitive ones."""
    chosen = params.slice_by or contract.categorical_features[:1]
    unknown = [name for name in chosen if name not in contract.feature_names]
    if unknown:
        raise StageError(
            f"evaluate.slice_by names {', '.join(unknown)}, not features of schema.yaml;"
            f" choose from: {', '.join(contract.feature_names)}."
        )
    return list(dict.fromkeys([*chosen, *contract.sensitive_features]))


def slice_labels(column: Any, values: pd.Series, bins: int) -> pd.Series:
    """Each row's slice: its category, or its quantile bin of a number ('q1 (17.9, 31.0]', which sorts
    low to high); missing values are a slice of their own."""
    import pandas as pd

    if column.model_dtype == "float64":  # numbers and dates: quantile bins
        binned = pd.qcut(values, q=bins, duplicates="drop")
        names = {interval: f"q{index + 1} {interval}" for index, interval in enumerate(binned.cat.categories)}
        labels = binned.map(names).astype(object)
    else:
        labels = values.astype(object)
    return labels.where(values.notna(), "(missing)").astype(str)


def slice_metrics(model: Any, task: str, contract: Contract, frame: pd.DataFrame, params: EvaluateParams) -> dict:
    """Metrics per slice of each slicing feature; slices too small or one-class get a note instead."""
    columns = {column.name: column for column in contract.features}
    by = slice_columns(contract, params)
    report: dict[str, Any] = {"by": by, "sensitive": contract.sensitive_features, "slices": {}}
    for name in by:
        groups = slice_labels(columns[name], frame[name], params.slice_bins)
        slices: dict[str, Any] = {}
        for label in sorted(groups.unique()):
            part = frame[groups == label]
            entry: dict[str, Any] = {"rows": len(part)}
            if len(part) >= MIN_SLICE_ROWS:
                try:
                    entry |= score(model, task, *contract.split_xy(part))
                except ValueError:  # e.g. one class only in this slice: ROC AUC is undefined
                    entry["note"] = "metrics undefined on this slice"
            else:
                entry["note"] = f"fewer than {MIN_SLICE_ROWS} rows"
            slices[label] = entry
        report["slices"][name] = slices
    return report


def feature_cost(
    model: Any, data: TuningData, winner: dict[str, Any], test: pd.DataFrame, params: Params
) -> dict[str, Any]:
    """Leave one feature out: refit the winner without it, and compare score and predict time on test.

    `gain` is how much the feature improves the primary metric; `time_share` how much of the
    model's predict time goes away without it. Refits stop at the budget; the rest are not measured.
    The budget goes first to the features likeliest to cost: dates, then categories by their count.
    """
    metric, settings = data.metric, params.evaluate.feature_cost
    full_score = score(model, data.task, *data.contract.split_xy(test))[metric]
    rows = data.contract.features_of(test)
    [full_seconds] = predict_seconds([model], rows, settings.timing_repeats, COST_TIMING_ROWS)
    deadline = time.monotonic() + settings.budget_seconds
    features: dict[str, Any] = {}
    for column in sorted(data.contract.features, key=likely_cost, reverse=True):
        if time.monotonic() > deadline or len(data.contract.features) == 1:
            features[column.name] = {"measured": False}
            continue
        reduced = replace(data.contract, features=tuple(c for c in data.contract.features if c is not column))
        refit = fit_model(
            replace(data, contract=reduced), winner["family"], winner["best_params"], params.train.seed, data.train
        )
        # Both in turns on the same rows (the full model sees the feature too, unused by `refit`).
        seconds, full = predict_seconds([refit, model], rows, settings.timing_repeats, COST_TIMING_ROWS)
        features[column.name] = {
            "measured": True,
            "gain": round(improvement(metric, full_score, score(refit, data.task, *reduced.split_xy(test))[metric]), 6),
            "time_share": round(max(0.0, 1.0 - seconds / full), 4),
        }
    return {
        "metric": metric,
        "family": winner["family"],
        "predict_seconds": round(full_seconds, 6),
        "features": {column.name: features[column.name] for column in data.contract.features},
    }


def likely_cost(column: Column) -> tuple[int, int]:
    """What a feature may cost to predict, to order the refits: dates (several derived parts), then
    categories by their count (one column each), then numbers (one column)."""
    if isinstance(column, DatetimeColumn):
        return (2, 0)
    if isinstance(column, CategoricalColumn):
        return (1, len(column.categories))
    return (0, 0)


def importance_repeats(rows: int, minimum: int) -> int:
    """Shuffles per feature: enough that rows x repeats reaches IMPORTANCE_ROW_SHUFFLES, so the verdict on a
    feature holds from run to run on small data too (the noise of the mean falls with the repeats)."""
    return max(minimum, min(MAX_IMPORTANCE_REPEATS, -(-IMPORTANCE_ROW_SHUFFLES // max(rows, 1))))


def importance_rows(
    model: Any, task: str, metric: str, features: pd.DataFrame, target: pd.Series, min_repeats: int, seed: int
) -> list[dict[str, Any]]:
    """Permutation importance per feature, highest first: how much `metric` drops when the feature is shuffled,
    with its spread, the rows and the repeats (accept's feature-benefit finding reads them)."""
    from sklearn.inspection import permutation_importance

    repeats = importance_repeats(len(features), min_repeats)
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0

    def scorer(estimator: Any, x: pd.DataFrame, y: pd.Series) -> float:  # the one metric, not all of the task's
        said = Predictions.of(estimator, task, x)
        return sign * metric_value(metric, y.to_numpy(), said.predicted, said.proba, said.classes)

    result = permutation_importance(
        model, features, target, scoring=scorer, n_repeats=repeats, random_state=seed, n_jobs=1
    )
    ranked = sorted(
        zip(features.columns, result.importances_mean, result.importances_std, strict=True), key=lambda item: -item[1]
    )
    return [
        {
            "feature": name,
            "importance": round(float(mean), 6),
            "std": round(float(std), 6),
            "rows": len(features),
            "repeats": repeats,
        }
        for name, mean, std in ranked
    ]


def write_importance(model: Any, params: Params, contract: Contract, held_out: pd.DataFrame, out: Path) -> Path:
    """Permutation importance on the held-out rows (validation and test), as DVC plot data and a PNG."""
    features, target = contract.split_xy(held_out)
    metric = params.train.primary_metric
    rows = importance_rows(
        model, params.task, metric, features, target, params.evaluate.importance_repeats, params.train.seed
    )
    write_json(out / "feature_importance.json", rows)
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 0.4 * len(rows) + 1.2))
    axis.barh([row["feature"] for row in rows][::-1], [row["importance"] for row in rows][::-1], color="#4c72b0")
    axis.set_xlabel(f"drop in {metric} when shuffled")
    axis.set_title(f"Permutation feature importance ({len(features)} held-out rows)")
    return save(figure, out / "feature_importance.png")


def write_plots(
    model: Any, task: str, contract: Contract, test: pd.DataFrame, out: Path, params: EvaluateParams
) -> list[Path]:
    """Plot data for DVC (JSON) and the same plots as PNG in `out`, on the test split; returns the PNG paths."""
    features, target = contract.split_xy(test)
    out.mkdir(parents=True, exist_ok=True)
    predicted = model.predict(features)
    if task == "regression":
        return write_regression_plots(target, predicted, out, params)
    proba = model.predict_proba(features)
    images = [write_confusion(target, predicted, out)]
    if task == "binary_classification":
        images += write_binary_curves(target == model.classes_[1], proba[:, 1], out, params)
    else:
        # Top-label calibration: is the model right as often as its confidence says?
        images.append(write_calibration(predicted == target.to_numpy(), proba.max(axis=1), out, params, "top label"))
    return images


def write_confusion(target: pd.Series, predicted: np.ndarray, out: Path) -> Path:
    from sklearn.metrics import ConfusionMatrixDisplay

    rows = [{"actual": str(a), "predicted": str(p)} for a, p in zip(target, predicted, strict=True)]
    write_json(out / "confusion.json", rows)
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5, 4))
    ConfusionMatrixDisplay.from_predictions(target.astype(str), predicted.astype(str), ax=axis, colorbar=False)
    return save(figure, out / "confusion_matrix.png")


def write_binary_curves(positive: pd.Series, proba: np.ndarray, out: Path, params: EvaluateParams) -> list[Path]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(positive, proba)
    precision, recall, _ = precision_recall_curve(positive, proba)
    write_json(out / "roc.json", _curve("fpr", fpr, "tpr", tpr, params.max_curve_points))
    write_json(out / "precision_recall.json", _curve("recall", recall, "precision", precision, params.max_curve_points))
    images = [
        _line_plot(fpr, tpr, ("false positive rate", "true positive rate"), "ROC curve (test)", out / "roc.png"),
        _line_plot(recall, precision, ("recall", "precision"), "Precision-recall (test)", out / "precision_recall.png"),
    ]
    images.append(write_calibration(positive.to_numpy(), proba, out, params, "positive class"))
    return images


def write_calibration(outcome: np.ndarray, proba: np.ndarray, out: Path, params: EvaluateParams, label: str) -> Path:
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(outcome, proba, n_bins=params.calibration_bins, strategy="uniform")
    rows = [
        {"mean_predicted": round(float(p), 6), "fraction_positive": round(float(o), 6)}
        for p, o in zip(predicted, observed, strict=True)
    ]
    write_json(out / "calibration.json", rows)
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    axis.plot(predicted, observed, marker="o", label="model")
    axis.set_xlabel(f"predicted probability ({label})")
    axis.set_ylabel("observed frequency")
    axis.legend()
    axis.set_title("Calibration (test)")
    return save(figure, out / "calibration.png")


def write_regression_plots(target: pd.Series, predicted: np.ndarray, out: Path, params: EvaluateParams) -> list[Path]:
    actual = target.to_numpy(dtype=float)
    residual = actual - predicted
    write_json(
        out / "predicted_vs_actual.json",
        [
            {"actual": round(float(a), 4), "predicted": round(float(p), 4)}
            for a, p in zip(actual, predicted, strict=True)
        ],
    )
    write_json(
        out / "residuals.json",
        [
            {"predicted": round(float(p), 4), "residual": round(float(r), 4)}
            for p, r in zip(predicted, residual, strict=True)
        ],
    )
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.scatter(actual, predicted, s=6, alpha=0.5)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    axis.plot([low, high], [low, high], color="grey", linestyle="--")
    axis.set_xlabel("actual")
    axis.set_ylabel("predicted")
    axis.set_title("Predicted vs actual (test)")
    first = save(figure, out / "predicted_vs_actual.png")
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.scatter(predicted, residual, s=6, alpha=0.5)
    axis.axhline(0, color="grey", linestyle="--")
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual - predicted")
    axis.set_title("Residuals (test)")
    return [first, save(figure, out / "residuals.png")]


def _line_plot(x: np.ndarray, y: np.ndarray, labels: tuple[str, str], title: str, path: Path) -> Path:
    figure, axis = pyplot().subplots(figsize=(5, 4))
    axis.plot(x, y)
    axis.set_xlabel(labels[0])
    axis.set_ylabel(labels[1])
    axis.set_title(title)
    return save(figure, path)


def _curve(x_name: str, x: np.ndarray, y_name: str, y: np.ndarray, max_points: int) -> list[dict[str, float]]:
    """At most `max_points` evenly spaced points of a curve, ends included."""
    import numpy as np

    index = np.unique(np.linspace(0, len(x) - 1, min(len(x), max_points)).round().astype(int))
    return [{x_name: round(float(x[i]), 6), y_name: round(float(y[i]), 6)} for i in index]
