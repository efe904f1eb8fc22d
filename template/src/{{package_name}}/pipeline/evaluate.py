"""Stage evaluate: the task's metrics on validation and test, for the model and a baseline.

Writes reports/metrics.json (DVC metrics), plot data for `dvc plots show` and PNG copies,
and logs all of it to the training run in MLflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..files import read_json, read_parquet, write_json
from ..metrics import compute_metrics, is_classification
from ..schema import load_contract

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from ..params import Params
    from ..paths import Paths
    from ..schema import Contract

EVALUATED_SPLITS = ("validation", "test")


def run(params: Params, paths: Paths) -> dict[str, Any]:
    import mlflow
    import mlflow.sklearn

    from ..tracking import start_run

    contract = load_contract(paths.schema)
    model = mlflow.sklearn.load_model(str(paths.model))
    baseline = fit_baseline(params.task, contract, read_parquet(paths.split("train")))
    splits = {name: read_parquet(paths.split(name)) for name in EVALUATED_SPLITS}

    report: dict[str, Any] = {"model": {}, "baseline": {}}
    for name, frame in splits.items():
        report["model"][name] = score(model, params.task, contract, frame)
        report["baseline"][name] = score(baseline, params.task, contract, frame)
    write_json(paths.metrics, report)

    features, target = contract.split_xy(splits["test"])
    images = write_plots(params.task, model, features, target, paths.plots_dir, params.evaluate.max_curve_points)

    run_info = read_json(paths.run_info)
    with start_run(run_info["experiment"], run_id=run_info["run_id"], run_name="evaluate"):
        for owner, results in report.items():
            for split_name, values in results.items():
                prefix = split_name if owner == "model" else f"baseline_{split_name}"
                mlflow.log_metrics({f"{prefix}_{key}": value for key, value in values.items()})
        mlflow.log_artifact(str(paths.metrics))
        for image in images:
            mlflow.log_artifact(str(image), artifact_path="plots")
    return {"test": report["model"]["test"]}


def fit_baseline(task: str, contract: Contract, train: pd.DataFrame) -> Any:
    """The trivial model to beat: class priors, or the mean."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    features, target = contract.split_xy(train)
    baseline = DummyClassifier(strategy="prior") if is_classification(task) else DummyRegressor(strategy="mean")
    return baseline.fit(features, target)


def score(model: Any, task: str, contract: Contract, frame: pd.DataFrame) -> dict[str, float]:
    features, target = contract.split_xy(frame)
    proba = model.predict_proba(features) if is_classification(task) else None
    classes = list(model.classes_) if is_classification(task) else []
    values = compute_metrics(task, target, model.predict(features), proba, classes)
    return {key: round(value, 6) for key, value in values.items()}


def write_plots(
    task: str, model: Any, features: pd.DataFrame, target: pd.Series, out: Path, max_points: int
) -> list[Path]:
    """Plot data for DVC (JSON) and the same plots as PNG; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    predicted = model.predict(features)
    images: list[Path] = []

    def save(figure: Any, name: str) -> None:
        figure.tight_layout()
        figure.savefig(out / name, dpi=80)
        plt.close(figure)
        images.append(out / name)

    if is_classification(task):
        write_json(
            out / "confusion.json",
            [{"actual": str(a), "predicted": str(p)} for a, p in zip(target, predicted, strict=True)],
        )
        from sklearn.metrics import ConfusionMatrixDisplay

        figure, axis = plt.subplots(figsize=(5, 4))
        ConfusionMatrixDisplay.from_predictions(target, predicted, ax=axis, colorbar=False)
        save(figure, "confusion_matrix.png")
    if task == "binary_classification":
        from sklearn.metrics import precision_recall_curve, roc_curve

        positive = model.classes_[1]
        proba = model.predict_proba(features)[:, 1]
        fpr, tpr, _ = roc_curve(target == positive, proba)
        precision, recall, _ = precision_recall_curve(target == positive, proba)
        write_json(out / "roc.json", _curve("fpr", fpr, "tpr", tpr, max_points))
        write_json(out / "precision_recall.json", _curve("recall", recall, "precision", precision, max_points))
        for name, x, y, labels in (
            ("roc.png", fpr, tpr, ("false positive rate", "true positive rate")),
            ("precision_recall.png", recall, precision, ("recall", "precision")),
        ):
            figure, axis = plt.subplots(figsize=(5, 4))
            axis.plot(x, y)
            axis.set_xlabel(labels[0])
            axis.set_ylabel(labels[1])
            save(figure, name)
    if task == "regression":
        write_json(
            out / "predicted_vs_actual.json",
            [
                {"actual": round(float(a), 4), "predicted": round(float(p), 4)}
                for a, p in zip(target, predicted, strict=True)
            ],
        )
        figure, axis = plt.subplots(figsize=(5, 4))
        axis.scatter(target, predicted, s=6, alpha=0.5)
        low, high = float(min(target.min(), predicted.min())), float(max(target.max(), predicted.max()))
        axis.plot([low, high], [low, high], color="grey", linestyle="--")
        axis.set_xlabel("actual")
        axis.set_ylabel("predicted")
        save(figure, "predicted_vs_actual.png")
    return images


def _curve(x_name: str, x: np.ndarray, y_name: str, y: np.ndarray, max_points: int) -> list[dict[str, float]]:
    """At most `max_points` evenly spaced points of a curve, ends included."""
    import numpy as np

    index = np.unique(np.linspace(0, len(x) - 1, min(len(x), max_points)).round().astype(int))
    return [{x_name: round(float(x[i]), 6), y_name: round(float(y[i]), 6)} for i in index]
