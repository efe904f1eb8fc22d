"""The monitoring job: read a window of the prediction log, check each model version against its profile.

Writes reports/monitoring/<UTC timestamp>/summary.json and report.html, logs the figures to an
MLflow `monitoring` run, posts the summary to MONITOR_WEBHOOK_URL when it is set, and says
whether the served model is healthy: the CLI exits 0 when it is, EXIT_ALERT when a check alerts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..files import read_json, write_json
from ..metrics import is_classification
from ..schema import load_contract
from ..secrets import shown_url
from . import checks
from .shadow import compare, describe, read_shadow
from .window import monitored, read_window

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ..params import MonitorParams, Params
    from ..paths import Paths
    from ..schema import Contract
    from .window import Window

EXIT_ALERT = 3  # distinct from 1 (an error) and 2 (a usage error)
# A project's own check of a window: returns checks.result(name, value, thresholds) (ok, warn or alert by
# the thresholds) or checks.not_judged(name, why); it runs after the library's window checks.
WindowCheck = Callable[["Window", "MonitorParams"], dict[str, Any]]
"""A project's own check of a monitoring window (the project's monitoring.CHECKS): returns
`checks.result(name, value, thresholds)` or `checks.not_judged(name, why)`."""
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def window_bounds(
    params: Params, paths: Paths, since: str | None, until: str | None, now: float
) -> tuple[float, float]:
    """[start, end) in epoch seconds: --since TIME or 'last' (the end of the previous run), default the last N hours."""
    end = parse_time(until) if until else now
    if since == "last":
        state = read_json(paths.monitoring_state) if paths.monitoring_state.exists() else {}
        start = float(state.get("end", end - params.monitor.window_hours * 3600))
    elif since:
        start = parse_time(since)
    else:
        start = end - params.monitor.window_hours * 3600
    if start >= end:
        raise StageError(f"the window is empty: --since ({_iso(start)}) is not before --until ({_iso(end)}).")
    return start, end


def parse_time(text: str) -> float:
    """An ISO 8601 time (UTC unless it says otherwise) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise StageError(f"{text!r} is not a time: use ISO 8601 (2026-01-31T12:00) or epoch seconds.") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def run(
    params: Params, paths: Paths, log_url: str, start: float, end: float, own_checks: Sequence[WindowCheck] = ()
) -> dict[str, Any]:
    """Check the window (the library's checks, then the project's `own_checks`) and write its report; returns the
    summary (its `status` is ok, warn or alert)."""
    contract = monitored(load_contract(paths.schema))  # pii features are never logged: judge the others
    window = read_window(log_url, start, end, contract, params.task)
    versions: dict[str, Any] = {}
    for version in sorted(window.served["model_version"].unique()):
        versions[version] = check_version(window.version(version), version, params, paths, contract)
    profiles = _profiles(versions)
    window_checks = [checks.refusal_rate(window, params.monitor), checks.request_rate(window)]
    window_checks += [own_check(check, window, params.monitor) for check in own_checks]
    statuses = [check["status"] for entry in versions.values() for check in entry["checks"]]
    statuses += [check["status"] for check in window_checks]
    summary: dict[str, Any] = {
        "status": checks.worst(statuses),
        "window": {"start": _iso(start), "end": _iso(end), "rows": len(window.served), "corrupt_rows": window.corrupt},
        "log": shown_url(log_url),
        "checks": window_checks,
        "versions": versions,
        "created_at": _iso(time.time()),
    }
    shadow = read_shadow(log_url, start, end, contract.classes if is_classification(params.task) else [])
    if len(shadow.rows):  # a challenger in shadow mode: compared, not judged (promote decides)
        summary["shadow"] = compare(shadow, params.task, params.train.primary_metric, params.monitor)
    if window.served.empty:
        summary["note"] = "no predictions in the window: nothing to judge"
    out = paths.monitoring_dir / datetime.fromtimestamp(end, UTC).strftime("%Y%m%dT%H%M%SZ")
    write_json(out / "summary.json", summary)
    from .report import write_report

    write_report(out / "report.html", summary, window, profiles)
    write_json(paths.monitoring_state, {"end": end, "report": str(out), "status": summary["status"]})
    summary["report"] = str(out / "report.html")
    _log_to_mlflow(summary, params)
    _post_webhook(summary)
    return summary


def own_check(check: WindowCheck, window: Window, params: MonitorParams) -> dict[str, Any]:
    """A project check's result; one that fails, or answers in another shape, is reported as not judged (the
    other checks still count), with the reason."""
    name = getattr(check, "__name__", repr(check))
    try:
        found = check(window, params)
    except Exception as error:
        return checks.not_judged(name, f"the check failed: {type(error).__name__}: {error}")
    if not (isinstance(found, dict) and found.get("status") in (*checks.STATUSES, "n/a")):
        return checks.not_judged(
            name, f"the check must return checks.result(...) or checks.not_judged(...); got {found!r}"
        )
    return found


def check_version(window: Window, version: str, params: Params, paths: Paths, contract: Contract) -> dict[str, Any]:
    """Every check of one model version's rows against that version's own profile."""
    monitor = params.monitor
    try:
        profile, offline = reference_of(version, params, paths)
    except StageError as error:
        return {"rows": len(window.served), "checks": [checks.not_judged("profile", str(error))], "profile": None}
    # The profile describes every trained feature; the window holds only the monitored (non-pii) ones.
    profile = profile | {"features": {name: profile["features"][name] for name in contract.feature_names}}
    found: list[dict[str, Any]] = []
    if len(window.served) >= monitor.min_rows:
        found += checks.feature_drift(window, profile, monitor)
        found.append(checks.multivariate_drift(window, profile, contract, monitor))
        found.append(checks.prediction_drift(window, profile, monitor))
    else:
        found.append(checks.not_judged("drift", f"{len(window.served)} rows (at least {monitor.min_rows} needed)"))
    found += checks.missing_values(window, profile, contract, monitor)
    found.append(
        checks.realised_performance(
            window, params.task, contract.classes, params.train.primary_metric, offline, monitor
        )
    )
    if is_classification(params.task):
        # The label-free estimate against the same estimate on validation (profiles since it was saved),
        # so a model that is not calibrated does not alert on healthy traffic; else the offline figures.
        estimated_reference = profile.get("prediction", {}).get("estimated") or offline
        found.append(checks.estimated_performance(window, params.task, estimated_reference, monitor))
    found.append(checks.latency(window, profile, monitor))
    found.append(checks.staleness(profile, monitor))
    return {
        "rows": len(window.served),
        "labelled": int(window.served["label"].notna().sum()),
        "checks": found,
        "profile": profile,
    }


def reference_of(version: str, params: Params, paths: Paths) -> tuple[dict[str, Any], dict[str, float]]:
    """A version's profile and offline test metrics: from models/ for a local model, else from the registry."""
    if version.startswith("local-"):
        if not paths.model_profile.exists():
            raise StageError(
                f"no profile at {paths.model_profile} for {version}: retrain with this version of the project."
            )
        offline = read_json(paths.metrics)["model"]["test"] if paths.metrics.exists() else {}
        return read_json(paths.model_profile), offline
    return _registry_reference(params.mlflow.registered_model, version)


def _registry_reference(name: str, version: str) -> tuple[dict[str, Any], dict[str, float]]:
    import mlflow
    from mlflow.exceptions import MlflowException

    from ..tracking import client

    try:
        entry = client().get_model_version(name, version)
        with _no_progress_bars():
            path = mlflow.artifacts.download_artifacts(run_id=entry.tags["run_id"], artifact_path="profile.json")
    except (MlflowException, KeyError, OSError) as error:
        raise StageError(f"no profile for {name} version {version} in the registry: {error}") from None
    with open(path) as handle:
        profile = json.load(handle)
    return profile, json.loads(entry.tags.get("metrics", "{}"))


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """MLflow draws a progress bar for every artifact download (one small JSON file here): not in a report."""
    previous = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = previous


def console_report(summary: dict[str, Any]) -> list[str]:
    """What `monitor` prints: one line when every judged check is ok; else a headline, a table of the checks
    that are not ok (check, value, threshold, status; alerts first), the checks not judged, and the report."""
    window, report = summary["window"], summary.get("report", "(not written)")
    where = f"{window['rows']} rows from {window['start']} to {window['end']}"
    shadow = [describe(entry) for entry in summary.get("shadow", [])]
    if "note" in summary:
        return [f"monitor: {summary['status']}: {summary['note']} ({where}); report: {report}"]
    entries = [(str(check["check"]), check) for check in summary["checks"]]
    entries += [
        (f"{f'v{version}' if version.isdigit() else version} {check['check']}", check)
        for version, entry in summary["versions"].items()
        for check in entry["checks"]
    ]
    judged = [(name, check) for name, check in entries if check["status"] in checks.STATUSES]
    flagged = sorted(
        ((name, check) for name, check in judged if check["status"] != "ok"),
        key=lambda item: -checks.STATUSES.index(item[1]["status"]),
    )
    unjudged = [
        f"{name} ({check.get('note', '')})" for name, check in entries if check["status"] not in checks.STATUSES
    ]
    if not flagged:
        line = f"monitor: ok: all {len(judged)} checks ok on {where}"
        if unjudged:
            line += f"; not judged: {', '.join(unjudged)}"
        return [f"{line}; report: {report}", *shadow]
    rows = [("check", "value", "threshold", "status")]
    rows += [(name, *_reading(check), check["status"]) for name, check in flagged]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [f"monitor: {summary['status']}: {len(flagged)} of {len(judged)} checks not ok on {where}"]
    lines += [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + f"  {row[3]}"
        for row in rows
    ]
    lines += [f"not judged: {name}" for name in unjudged]
    return [*lines, *shadow, f"report: {report}"]


def _reading(check: dict[str, Any]) -> tuple[str, str]:
    """A flagged check's value and the threshold it reached, each with its unit or statistic."""
    status, value, kind = check["status"], check["value"], str(check["check"]).partition(":")[0]
    threshold = check[status]
    if "contract_max_missing" in check and check["rate"] > check["contract_max_missing"]:
        return f"missing {check['rate']:.1%}", f"> {check['contract_max_missing']:.1%} (schema.yaml)"
    if "effect" in check and _level(check["effect"], check["effect_warn"], check["effect_alert"]) > _level(
        value, check["warn"], check["alert"]
    ):  # drift decided by the effect size, not by PSI
        return f"{check['effect_statistic']} {check['effect']:.4g}", f">= {check[f'effect_{status}']:.4g}"
    if kind == "missing":
        return f"missing {check['rate']:.1%} (training {check['training']:.1%})", f"+{threshold:.1%} over training"
    if kind in ("performance", "estimated_performance", "refusals"):
        what = {"performance": f"{check.get('metric')} drop", "estimated_performance": "estimated drop"}
        return f"{what.get(kind, 'refused')} {value:.1%}", f">= {threshold:.1%}"
    units = {
        "latency": ("p99 ", "x"),
        "staleness": ("", " days"),
        "multivariate": ("domain AUC ", ""),
        "prediction_drift": ("psi ", ""),
    }
    prefix, unit = units.get(kind, (f"{check['statistic']} " if "statistic" in check else "", ""))
    if unit == "x":
        return f"{prefix}{value:.3g}x one-row predict time", f">= {threshold:.3g}x"
    return f"{prefix}{value:.4g}{unit}", f">= {threshold:.4g}{unit}"


def _level(value: float, warn: float, alert: float) -> int:
    return 2 if value >= alert else 1 if value >= warn else 0


def _profiles(versions: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Profiles by version, taken out of the summary (the report draws them; summary.json stays small)."""
    return {version: entry.pop("profile") for version, entry in versions.items() if entry.get("profile")}


def _log_to_mlflow(summary: dict[str, Any], params: Params) -> None:
    """One `monitoring` run per job, one metric per check, so the MLflow UI charts drift over time."""
    from ..tracking import start_run, tracking_enabled

    if not tracking_enabled():
        return
    import mlflow

    metrics: dict[str, float] = {}
    for version, entry in summary["versions"].items():
        for check in entry["checks"]:
            if "value" in check:
                metrics[f"v{version}/{check['check'].replace(':', '/')}"] = float(check["value"])
            if "effect" in check:
                metrics[f"v{version}/{check['check'].replace(':', '/')}/effect"] = float(check["effect"])
    for check in summary["checks"]:
        if "value" in check:
            metrics[check["check"]] = float(check["value"])
    with start_run(params.mlflow.experiment, run_name="monitoring"):
        mlflow.set_tags({"stage": "monitoring", "status": summary["status"], "window_end": summary["window"]["end"]})
        mlflow.log_metrics(metrics | {"rows": summary["window"]["rows"]})
        mlflow.log_dict(summary, "summary.json")


def _post_webhook(summary: dict[str, Any]) -> None:
    """POST the summary as JSON to MONITOR_WEBHOOK_URL; a failing webhook is reported, not fatal."""
    import urllib.error
    import urllib.request

    url = os.environ.get("MONITOR_WEBHOOK_URL")
    if not url:
        return
    body = json.dumps(summary, default=str).encode()
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10):
            summary["webhook"] = "sent"
    except (urllib.error.URLError, OSError) as error:
        summary["webhook"] = f"failed: {error}"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
