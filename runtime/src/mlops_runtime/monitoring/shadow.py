"""Champion against challenger on the same production requests (shadow mode, serving/shadow.py).

Each challenger answer in the log's `shadow_predictions` is paired with the champion's answer to
the same request and with its feedback label when there is one. `compare` says, per challenger
version: how often the two agree, the primary metric of each on the labelled rows with a bootstrap
interval, and their latency; `monitor` reports it and `promote` can require it (params `promote`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..metrics import improvement, is_classification
from .checks import metric_interval
from .window import json_or_none, latest_labels, probability_matrix

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ..params import MonitorParams, PromoteParams


@dataclass(frozen=True)
class ShadowPairs:
    """Requests answered by the champion and scored in shadow: one row each, both answers, the label if known."""

    rows: pd.DataFrame  # request_id, champion, challenger (versions), *_prediction, *_latency_ms, label
    champion_probabilities: np.ndarray | None  # classifiers: one column per class, `classes` order
    challenger_probabilities: np.ndarray | None
    classes: list[Any]  # the contract's classes, as the labels are typed; [] for regression


def read_shadow(url: str, start: float, end: float, classes: list[Any]) -> ShadowPairs:
    """The pairs whose shadow answer was logged in [start, end); none when the log has no shadow table."""
    import pandas as pd
    import sqlalchemy as sa

    from ..serving.predlog import feedback, log_exists, make_engine, predictions, shadow_predictions

    columns = [
        shadow_predictions.c.request_id,
        predictions.c.model_version.label("champion"),
        shadow_predictions.c.model_version.label("challenger"),
        predictions.c.output.label("champion_output"),
        shadow_predictions.c.output.label("challenger_output"),
        predictions.c.latency_ms.label("champion_latency_ms"),
        shadow_predictions.c.latency_ms.label("challenger_latency_ms"),
    ]
    in_window = (shadow_predictions.c.created_at >= start) & (shadow_predictions.c.created_at < end)
    query = sa.select(*columns).join(predictions, predictions.c.request_id == shadow_predictions.c.request_id)
    raw = pd.DataFrame(columns=[column.name for column in columns])
    labels = pd.DataFrame(columns=["request_id", "label", "id"])
    if log_exists(url):
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                if sa.inspect(connection).has_table(shadow_predictions.name):
                    raw = pd.read_sql(query.where(in_window).order_by(shadow_predictions.c.created_at), connection)
                    labelled = sa.select(feedback.c.request_id, feedback.c.label, feedback.c.id).where(
                        feedback.c.request_id.in_(sa.select(shadow_predictions.c.request_id).where(in_window))
                    )
                    labels = pd.read_sql(labelled, connection)
        except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as error:
            raise StageError(f"cannot read the prediction log {url!r}: {error}") from None
        finally:
            engine.dispose()
    return pairs_of(raw, labels, classes)


def pairs_of(raw: pd.DataFrame, labels: pd.DataFrame, classes: list[Any]) -> ShadowPairs:
    """Decoded pairs; a row whose answers are not readable JSON objects is left out, as the window does."""
    import pandas as pd

    decoded = [(_object(a), _object(b)) for a, b in zip(raw["champion_output"], raw["challenger_output"], strict=True)]
    readable = [a is not None and b is not None for a, b in decoded]
    kept = raw[pd.Series(readable, index=raw.index, dtype=bool)].reset_index(drop=True)  # [] would pick columns
    champion = [a for a, b in decoded if a is not None and b is not None]
    challenger = [b for a, b in decoded if a is not None and b is not None]
    label_of = latest_labels(labels)
    rows = pd.DataFrame(
        {
            "request_id": kept["request_id"],
            "champion": kept["champion"].astype(str),
            "challenger": kept["challenger"].astype(str),
            "champion_prediction": [answer.get("prediction") for answer in champion],
            "challenger_prediction": [answer.get("prediction") for answer in challenger],
            "champion_latency_ms": kept["champion_latency_ms"].astype(float),
            "challenger_latency_ms": kept["challenger_latency_ms"].astype(float),
            "label": kept["request_id"].map(label_of),
        }
    )
    if not classes:
        return ShadowPairs(rows, None, None, classes)
    names = [str(label) for label in classes]  # the answers' probabilities are keyed by the class as text
    return ShadowPairs(rows, probability_matrix(champion, names), probability_matrix(challenger, names), classes)


def compare(pairs: ShadowPairs, task: str, metric: str, params: MonitorParams) -> list[dict[str, Any]]:
    """Per challenger version: rows, agreement, the metric of each on the labelled rows (with intervals), latency."""
    import numpy as np

    found = []
    for version in sorted(pairs.rows["challenger"].unique()):
        keep = (pairs.rows["challenger"] == version).to_numpy()
        rows = pairs.rows[keep]
        labelled = rows["label"].notna().to_numpy()
        entry: dict[str, Any] = {
            "challenger": version,
            "champion": ", ".join(sorted(rows["champion"].unique())),
            "rows": len(rows),
            "labelled": int(labelled.sum()),
            "metric": metric,
        }
        ours, theirs = rows["champion_prediction"].to_numpy(), rows["challenger_prediction"].to_numpy()
        if is_classification(task):
            entry["agreement"] = float(np.mean(ours == theirs))
        else:
            entry["mean_absolute_difference"] = float(np.mean(np.abs(ours.astype(float) - theirs.astype(float))))
        y_true = np.array(rows["label"].to_numpy()[labelled].tolist())
        for role, predictions, probabilities in (
            ("champion", ours, pairs.champion_probabilities),
            ("challenger", theirs, pairs.challenger_probabilities),
        ):
            proba = None if probabilities is None else probabilities[keep][labelled]
            scored = metric_interval(
                task, y_true, np.array(predictions[labelled].tolist()), proba, pairs.classes, metric, params
            )
            entry[f"{role}_{metric}"] = None if scored is None else {"value": scored[0], "interval": list(scored[1:])}
            latencies = rows[f"{role}_latency_ms"].to_numpy()
            entry[f"{role}_latency_ms"] = {
                "p50": float(np.percentile(latencies, 50)),
                "p95": float(np.percentile(latencies, 95)),
            }
        found.append(entry)
    return found


def describe(entry: dict[str, Any]) -> str:
    """One line for a person: the challenger against the champion on the same requests."""
    metric = entry["metric"]
    line = f"shadow: v{entry['challenger']} against champion v{entry['champion']} on {entry['rows']} requests"
    line += f" ({entry['labelled']} labelled)"
    if "agreement" in entry:
        line += f": agree on {entry['agreement']:.1%}"
    else:
        line += f": mean absolute difference {entry['mean_absolute_difference']:.4g}"
    challenger, champion = entry[f"challenger_{metric}"], entry[f"champion_{metric}"]
    if challenger and champion:
        line += f"; {metric} {_scored(challenger)} against {_scored(champion)}"
    latency = entry["challenger_latency_ms"], entry["champion_latency_ms"]
    line += f"; p95 {latency[0]['p95']:.2f} ms a model call against {latency[1]['p95']:.2f} ms a request"
    return line


def promotion_refusal(entry: dict[str, Any] | None, version: str, params: PromoteParams) -> str | None:
    """Why `version` may not become champion on its shadow record (params.promote), or None when it may."""
    needed = params.shadow_min_rows
    if not needed:
        return None
    if entry is None or entry["labelled"] < needed:
        return (
            f"version {version} has {0 if entry is None else entry['labelled']} labelled requests in shadow;"
            f" promote.shadow_min_rows asks for {needed}: serve it in shadow longer (SERVE_SHADOW=challenger),"
            " or set promote.shadow_min_rows to 0."
        )
    labelled, metric = entry["labelled"], entry["metric"]
    challenger, champion = entry[f"challenger_{metric}"], entry[f"champion_{metric}"]
    if challenger is None or champion is None:
        return f"{metric} is undefined on the {labelled} labelled shadow requests of version {version}."
    if improvement(metric, challenger["value"], champion["value"]) < -params.shadow_tolerance:
        return (
            f"version {version} is worse than the champion on the same {labelled} labelled requests: {metric}"
            f" {_scored(challenger)} against {_scored(champion)} (promote.shadow_tolerance {params.shadow_tolerance})."
        )
    return None


def _scored(figure: dict[str, Any]) -> str:
    low, high = figure["interval"]
    return f"{figure['value']:.4g} [{low:.4g}, {high:.4g}]"


def _object(text: Any) -> dict[str, Any] | None:
    value = json_or_none(text)
    return value if isinstance(value, dict) else None
