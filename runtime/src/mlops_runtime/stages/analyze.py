"""Stage analyze: an exploratory report of the raw data, as JSON, PNG plots and one HTML page."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..files import write_json
from ..inference import decide, possible_leaks
from ..metrics import is_classification
from ..plots import pyplot, save

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from ..params import Params
    from ..schema import Contract

ASSOCIATION_ROWS = 5000  # rows the feature-target association is estimated on

STYLE = (
    "body { font-family: sans-serif; margin: 2em } table { border-collapse: collapse }"
    " td, th { border: 1px solid #ccc; padding: 4px 8px } img { max-width: 100% }"
)


def leak_warnings(raw: pd.DataFrame, contract: Contract, task: str) -> list[dict[str, str]]:
    """Features that alone predict the target almost perfectly, each with what it does alone."""
    return [{"feature": name, "alone": what} for name, what in possible_leaks(raw, contract, task)]


@dataclass(frozen=True)
class Summary:
    """What the exploratory report says (reports/eda/summary.json), section by section."""

    rows: int
    reading: list[dict[str, str]]  # how each column reads, next to its kind in schema.yaml
    possible_leaks: list[dict[str, str]]
    columns: dict[str, dict[str, Any]]
    target: dict[str, Any]
    association: dict[str, float]  # each feature's association with the target


def write_report(report: Summary, frame: pd.DataFrame, contract: Contract, task: str, out: Path) -> dict[str, Any]:
    """reports/eda/: summary.json, plots and index.html showing both; returns the stage's summary line's values."""
    summary = asdict(report)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)
    images = draw_plots(frame, contract, summary, task, out)
    (out / "index.html").write_text(render_html(summary, images))
    return {"report": str(out / "index.html"), "plots": len(images)}


def column_reading(raw: pd.DataFrame, contract: Contract, params: Params) -> list[dict[str, str]]:
    """How each column of the data reads (inference.py) next to what schema.yaml makes of it, for review."""
    max_categories = params.infer_schema.max_categories if params.infer_schema else 50
    used = {column.name: column.kind for column in contract.features} | {contract.target.name: "target"}
    rows = []
    for name in raw.columns:
        decision = decide(str(name), raw[name], max_categories)
        rows.append(
            {
                "column": str(name),
                "reads_as": decision.kind or f"left out: {decision.reason}",
                "why": decision.detail if decision.kind is None else f"{decision.reason} ({decision.detail})",
                "in_schema": used.get(str(name), "not used"),
            }
        )
    return rows


def column_summary(frame: pd.DataFrame, contract: Contract, max_categories: int) -> dict[str, dict[str, Any]]:
    """Per column: its kind, missing values, distinct values, and its statistics (numbers) or top values."""
    summary: dict[str, dict[str, Any]] = {}
    for column in (*contract.features, contract.target):
        series = frame[column.name]
        info: dict[str, Any] = {
            "type": column.kind,
            "missing": int(series.isna().sum()),
            "missing_fraction": round(float(series.isna().mean()), 4),
            "unique": int(series.nunique()),
        }
        if column.model_dtype == "float64":  # numbers, and dates as seconds since 1970
            stats = series.describe()
            info |= {key: round(float(stats[key]), 4) for key in ("mean", "std", "min", "25%", "50%", "75%", "max")}
        else:
            counts = series.value_counts().head(max_categories)
            info["top"] = {str(key): int(value) for key, value in counts.items()}
        summary[column.name] = info
    return summary


def target_summary(target: pd.Series, task: str) -> dict[str, Any]:
    """The target's distribution: counts per class for classification, its description for regression."""
    if is_classification(task):
        counts = target.value_counts().sort_index()
        return {"classes": {str(key): int(value) for key, value in counts.items()}}
    return {str(key): round(float(value), 4) for key, value in target.describe().items()}


def feature_association(frame: pd.DataFrame, contract: Contract, task: str) -> dict[str, float]:
    """Mutual information between each feature and the target (0 means unrelated), on at most
    ASSOCIATION_ROWS rows: its nearest-neighbour estimate grows faster than the rows, and ranks alike on a sample."""
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression
    from sklearn.preprocessing import OrdinalEncoder

    frame = frame.sample(n=min(ASSOCIATION_ROWS, len(frame)), random_state=0)
    features = frame[contract.feature_names].copy()
    categorical = contract.categorical_features
    numeric = [name for name in contract.feature_names if name not in categorical]  # numbers and dates
    features[numeric] = features[numeric].fillna(features[numeric].median())
    if categorical:
        encoded = features[categorical].astype(object).fillna("__missing__").astype(str)
        features[categorical] = OrdinalEncoder().fit_transform(encoded)
    discrete = [name in categorical for name in contract.feature_names]
    estimate = mutual_info_classif if is_classification(task) else mutual_info_regression
    scores = estimate(
        features.to_numpy(dtype=float), frame[contract.target.name], discrete_features=discrete, random_state=0
    )
    ranked = sorted(zip(contract.feature_names, scores, strict=True), key=lambda item: -item[1])
    return {name: round(float(score), 4) for name, score in ranked}


def draw_plots(frame: pd.DataFrame, contract: Contract, summary: dict[str, Any], task: str, out: Path) -> list[str]:
    plt = pyplot()
    images: list[str] = []

    def keep(figure: Any, name: str) -> None:
        images.append(save(figure, out / name).name)

    figure, axis = plt.subplots(figsize=(6, 3.5))
    target = frame[contract.target.name]
    if is_classification(task):
        target.astype(str).value_counts().sort_index().plot.bar(ax=axis, color="#4c72b0")
    else:
        target.plot.hist(ax=axis, bins=40, color="#4c72b0")
    axis.set_title(f"Target: {contract.target.name}")
    keep(figure, "target_distribution.png")

    missing = {name: info["missing_fraction"] for name, info in summary["columns"].items()}
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.barh(list(missing), list(missing.values()), color="#dd8452")
    axis.set_xlabel("fraction missing")
    axis.set_title("Missing values")
    keep(figure, "missing_values.png")

    association = summary["association"]
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.barh(list(association)[::-1], list(association.values())[::-1], color="#55a868")
    axis.set_xlabel("mutual information with the target")
    axis.set_title("Feature-target association")
    keep(figure, "feature_association.png")

    columns = contract.feature_names
    cols = 3
    rows = -(-len(columns) // cols)
    figure, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    # Shapes, not counts: no y ticks and few x ticks, as tick labels are most of the drawing time on wide data.
    for axis, name in zip(axes.flat, columns, strict=False):
        series = frame[name]
        if name in contract.datetime_features:
            axis.hist(series.dropna().to_numpy(), bins=30, color="#8172b3")
        elif name not in contract.categorical_features:
            axis.hist(series.dropna().to_numpy(dtype="float64"), bins=30, color="#8172b3")
            axis.locator_params(axis="x", nbins=4)
        else:
            counts = series.astype(object).fillna("(missing)").value_counts().head(15)
            axis.bar(range(len(counts)), counts.to_numpy(), color="#8172b3")
            labels = [_short_label(value) for value in counts.index]
            axis.set_xticks(range(len(counts)), labels, rotation=90, fontsize=7)
        axis.set_yticks([])
        axis.set_title(name)
    for axis in axes.flat[len(columns) :]:
        axis.set_visible(False)
    keep(figure, "feature_distributions.png")
    return images


def _short_label(value: object, width: int = 14) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_html(summary: dict[str, Any], images: list[str]) -> str:
    rows = "\n".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(name),
            info["type"],
            info["missing"],
            info["unique"],
            html.escape(_describe(info)),
        )
        for name, info in summary["columns"].items()
    )
    figures = "\n".join(f'<figure><img src="{name}" alt="{name}"></figure>' for name in images)
    leaks = (
        "Features that alone predict the target almost perfectly (often computed from it, or recorded"
        " after it): "
        + ", ".join(
            f"{html.escape(leak['feature'])} ({html.escape(leak['alone'])})" for leak in summary["possible_leaks"]
        )
        if summary["possible_leaks"]
        else "None: no feature alone predicts the target almost perfectly."
    )
    reading = "\n".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            *(html.escape(row[key]) for key in ("column", "reads_as", "why", "in_schema"))
        )
        for row in summary["reading"]
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Exploratory data analysis</title><style>{STYLE}</style></head>\n"
        f"<body><h1>Exploratory data analysis</h1>\n<p>{summary['rows']} rows.</p>\n"
        "<h2>How each column reads</h2>\n<p>What the data looks like (inference.py), next to the kind"
        " schema.yaml gives it: review the differences.</p>\n<table><tr><th>column</th><th>reads as</th>"
        f"<th>why</th><th>in schema.yaml</th></tr>\n{reading}\n</table>\n"
        f"<h2>Possible target leaks</h2>\n<p>{leaks}</p>\n"
        "<h2>Columns</h2>\n<table><tr><th>column</th><th>type</th><th>missing</th><th>unique</th>"
        f"<th>summary</th></tr>\n{rows}\n</table>\n<h2>Plots</h2>\n{figures}\n</body></html>\n"
    )


def _describe(info: dict[str, Any]) -> str:
    if "mean" in info:
        return f"mean {info['mean']:g}, std {info['std']:g}, range [{info['min']:g}, {info['max']:g}]"
    return ", ".join(f"{key}: {value}" for key, value in info["top"].items())
