"""The monitoring report: one self-contained HTML page (images inline), read at a glance.

The status table comes first; then, per model version, each feature's reference and current
distributions, the drift scores, and traffic, predictions, labelled performance and latency
over time within the window.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

from ..plots import pyplot

if TYPE_CHECKING:
    from pathlib import Path

    from .window import Window

COLOURS = {"ok": "#2e7d32", "warn": "#ef6c00", "alert": "#c62828", "n/a": "#757575"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222 }
table { border-collapse: collapse; margin-bottom: 1.5em } td, th { border: 1px solid #ccc; padding: 3px 8px }
th { background: #f4f4f4; text-align: left } .status { color: #fff; font-weight: bold; padding: 2px 8px }
img { max-width: 100%; display: block; margin: 0.5em 0 } h1 { margin-top: 0 }
"""


def write_report(
    path: Path,
    summary: dict[str, Any],
    window: Window,
    profiles: dict[str, dict[str, Any]],
) -> Path:
    sections = [_status_table(summary)]
    if summary.get("shadow"):
        sections.append(_shadow_table(summary["shadow"]))
    for version, profile in profiles.items():
        part = window.version(version)
        sections.append(f"<h2>Model version {html.escape(version)}: {len(part.served)} rows</h2>")
        sections.append(_image(_distributions(part, profile), f"feature distributions of version {version}"))
        sections.append(_image(_over_time(part), f"traffic over time for version {version}"))
    body = "\n".join(sections)
    status, window_text = summary["status"], summary["window"]
    page = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Monitoring: {status}</title>'
        f"<style>{STYLE}</style></head><body>\n"
        f"<h1>Monitoring {_badge(status)}</h1>\n<p>Window {window_text['start']} to {window_text['end']}: "
        f"{window_text['rows']} rows, {window_text['corrupt_rows']} unreadable.</p>\n{body}\n</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path


def _badge(status: str) -> str:
    return f'<span class="status" style="background:{COLOURS.get(status, "#757575")}">{html.escape(status)}</span>'


def _status_table(summary: dict[str, Any]) -> str:
    rows = []
    entries = [("all", check) for check in summary["checks"]]
    entries += [(version, check) for version, entry in summary["versions"].items() for check in entry["checks"]]
    order = {"alert": 0, "warn": 1, "n/a": 3, "ok": 2}
    for version, check in sorted(entries, key=lambda item: order.get(item[1]["status"], 4)):
        value = check.get("value", "")
        limits = f"{check['warn']} / {check['alert']}" if "warn" in check else ""
        detail = _detail(check)
        rows.append(
            f"<tr><td>{html.escape(version)}</td><td>{html.escape(check['check'])}</td><td>{_badge(check['status'])}</td>"
            f"<td>{value}</td><td>{limits}</td><td>{html.escape(detail)}</td></tr>"
        )
    header = "<tr><th>version</th><th>check</th><th>status</th><th>value</th><th>warn / alert</th><th>detail</th></tr>"
    return f'<table id="status">\n{header}\n' + "\n".join(rows) + "\n</table>"


def _shadow_table(entries: list[dict[str, Any]]) -> str:
    """Champion against challenger on the same requests (shadow mode): one row per role and challenger."""
    header = (
        "<tr><th>version</th><th>role</th><th>requests</th><th>labelled</th><th>agreement</th>"
        "<th>metric [95% interval]</th><th>p50 / p95 ms</th></tr>"
    )
    rows = []
    for entry in entries:
        metric = entry["metric"]
        agreement = (
            f"{entry['agreement']:.1%}" if "agreement" in entry else f"MAD {entry['mean_absolute_difference']:.4g}"
        )
        for role in ("champion", "challenger"):
            figure, latency = entry[f"{role}_{metric}"], entry[f"{role}_latency_ms"]
            scored = "n/a" if figure is None else "{:.4f} [{:.4f}, {:.4f}]".format(figure["value"], *figure["interval"])
            timing = "a request" if role == "champion" else "a model call"
            rows.append(
                f"<tr><td>{html.escape(entry[role])}</td><td>{role}</td><td>{entry['rows']}</td>"
                f"<td>{entry['labelled']}</td><td>{agreement}</td><td>{html.escape(metric)} {scored}</td>"
                f"<td>{latency['p50']:.2f} / {latency['p95']:.2f} ({timing})</td></tr>"
            )
    table = "\n".join([header, *rows])
    return f'<h2>Shadow: champion against challenger</h2>\n<table id="shadow">\n{table}\n</table>'


def _detail(check: dict[str, Any]) -> str:
    if "note" in check:
        return str(check["note"])
    if "effect" in check:
        return f"{check['effect_statistic']} {check['effect']:.4f}; {check['test']} p={check['p_value']:.3g}"
    if check["check"] == "performance":
        low, high = check["interval"]
        return f"{check['metric']} {check['realised']:.4f} [{low:.4f}, {high:.4f}] vs offline {check['offline']:.4f}"
    keys = ("estimated", "p99_ms", "rate", "by_field", "unit", "trained_at")
    return "; ".join(f"{key} {check[key]}" for key in keys if key in check)


def _distributions(window: Window, profile: dict[str, Any]) -> Any:
    """Reference and current shares per bin or category, one small chart per feature."""
    import numpy as np

    from .statistics import bin_counts, category_counts, shares

    plt = pyplot()
    names = list(profile["features"])
    columns = 3
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.6 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        reference = profile["features"][name]
        values = window.features[name].to_numpy()
        if reference["kind"] == "categorical":
            current = category_counts(values, reference["categories"])
            labels = reference["categories"]
        else:
            edges = np.asarray(reference["edges"])
            current = bin_counts(values.astype("float64"), edges)
            labels = bin_labels(edges, reference["kind"])
        positions = np.arange(len(labels))
        axis.bar(positions - 0.2, shares(np.asarray(reference["counts"])), 0.4, label="training", color="#90a4ae")
        axis.bar(positions + 0.2, shares(current), 0.4, label="window", color="#1e88e5")
        axis.set_xticks(positions, labels, rotation=45, ha="right", fontsize=7)
        axis.set_title(name, fontsize=9)
    axes.flat[0].legend(fontsize=7)
    for axis in axes.flat[len(names) :]:
        axis.set_visible(False)
    return figure


def bin_labels(edges: Any, kind: str) -> list[str]:
    """A label per bin: its upper edge, then the last edge's overflow; a date feature's edges as dates."""
    from datetime import UTC, datetime

    def shown(edge: float) -> str:
        return datetime.fromtimestamp(edge, UTC).date().isoformat() if kind == "datetime" else f"{edge:.3g}"

    return [f"≤{shown(edge)}" for edge in edges] + [f">{shown(edges[-1])}" if len(edges) else "all"]


def _over_time(window: Window) -> Any:
    """Rows, labelled accuracy or error, and p99 latency per time bucket of the window."""
    import pandas as pd

    plt = pyplot()
    served = window.served.copy()
    buckets = max(1, min(24, len(served) // 50 or 1))
    served["bucket"] = pd.cut(served["created_at"], bins=buckets, labels=False) if len(served) else []
    grouped = served.groupby("bucket")
    figure, axes = plt.subplots(1, 3, figsize=(13, 3))
    axes[0].plot(grouped.size().index, grouped.size().to_numpy(), marker="o")
    axes[0].set_title("rows per bucket", fontsize=9)
    labelled = served[served["label"].notna()]
    if len(labelled):
        if window.classes:
            hits = (labelled["prediction"].astype(str) == labelled["label"].astype(str)).groupby(labelled["bucket"])
            axes[1].plot(hits.mean().index, hits.mean().to_numpy(), marker="o")
            axes[1].set_title("accuracy on labelled rows", fontsize=9)
        else:
            errors = (labelled["prediction"].astype(float) - labelled["label"].astype(float)).abs()
            axes[1].plot(errors.groupby(labelled["bucket"]).mean(), marker="o")
            axes[1].set_title("mean absolute error on labelled rows", fontsize=9)
    else:
        axes[1].set_title("no labelled rows yet", fontsize=9)
    p99 = grouped["latency_ms"].quantile(0.99) if len(served) else pd.Series(dtype=float)
    axes[2].plot(p99.index, p99.to_numpy(), marker="o", color="#c62828")
    axes[2].set_title("p99 latency (ms)", fontsize=9)
    for axis in axes:
        axis.set_xlabel("time bucket (oldest first)", fontsize=8)
    return figure


def _image(figure: Any, alt: str) -> str:
    """A figure as an inline PNG, so the page needs no other file."""
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=72)
    pyplot().close(figure)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
