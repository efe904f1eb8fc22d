"""Stage accept: the model acceptance gate, then the registry.

A model passes when it meets the minimum metrics of params.yaml, beats the baseline by the
required margin, every feature earns its place (benefit and cost), every slice is good enough
and no slice of a sensitive group falls behind, it answers correctly through the real service
(the canary), and it is not much slower than the champion. Each rule names the ML Test Score
item it is evidence for. The verdict goes next to the model (models/acceptance.json): serving
refuses a model without an accepting verdict. A passing model is registered as a new version
with the alias `challenger`, and becomes `champion` when it is not worse than the current
champion on the same data (within `accept.champion_tolerance`). A failing model never touches
the registry.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..files import read_json, read_parquet
from ..metrics import (
    HIGHER_IS_BETTER,
    TIMING_ROWS,
    Predictions,
    fit_baseline,
    improvement,
    improvement_lower_bound,
    predict_seconds,
    score,
)
from ..schema import load_contract
from ..tracking import lineage_tags, start_run, tracking_enabled
from ..verdict import write_verdict

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

    from ..params import AcceptParams, FeatureRules, Params, SliceRules
    from ..paths import Paths
    from ..schema import Contract

TIMING_REPEATS = 7  # timed predictions per model, in turns; the fastest counts


@dataclass(frozen=True)
class Candidate:
    """What a project's own gate rule judges: the trained model, its contract, its evaluation report
    (reports/metrics.json) and the feature rows of the split accept judges on."""

    model: Any
    contract: Contract
    report: dict[str, Any]
    rows: pd.DataFrame
    params: Params


# A project's own rule: returns {"rule": its name, "passed": bool, "message": what it found}; any failing
# rule refuses the model, and the message reaches the verdict and the user as the built-in rules' do.
GateRule = Callable[[Candidate], dict[str, Any]]
"""A project's own acceptance rule (the project's pipeline/accept.py RULES): returns {"passed": bool,
"message": what it found}; one failing rule refuses the model."""


@dataclass(frozen=True)
class Champion:
    """The model serving now, as the challenger is judged against it."""

    version: str
    model: Any
    age_days: float


def load_candidate(params: Params, paths: Paths) -> Candidate:
    """The trained model (models/model), its evaluation (reports/metrics.json) and the rows of accept.split."""
    import mlflow.sklearn

    contract = load_contract(paths.schema)
    model = mlflow.sklearn.load_model(str(paths.model))
    rows = contract.features_of(read_parquet(paths.split(params.accept.split)))
    return Candidate(model, contract, read_json(paths.metrics), rows, params)


def serving_champion(params: Params) -> Champion | None:
    """The registry's champion the candidate is compared with; None when there is none or tracking is off."""
    return current_champion(params.mlflow.registered_model) if tracking_enabled() else None


def params_rules(candidate: Candidate, champion: Champion | None, paths: Paths) -> list[dict[str, Any]]:
    """The rules of params.yaml's accept section: metrics and margin, features, slices, the canary, speed."""
    params, settings = candidate.params, candidate.params.accept
    bounds = margin_lower_bounds(params, paths, candidate.contract, candidate.model)
    return [
        *check_model(candidate.report, settings, bounds),
        *check_features(
            read_json(paths.plots_dir / "feature_importance.json"), read_json(paths.feature_cost), settings.features
        ),
        *check_slices(read_json(paths.slices), settings.slices),
        canary(paths, params.task, candidate.contract, candidate.model, candidate.rows),
        check_speed(candidate.model, champion, candidate.rows, settings.max_slowdown, settings.split),
    ]


def decide(
    checks: list[dict[str, Any]], candidate: Candidate, champion: Champion | None, paths: Paths
) -> dict[str, Any]:
    """The verdict (models/acceptance.json): a failing rule refuses the model (a StageError listing them);
    a model that passes every rule is registered, and becomes champion unless worse than `champion`."""
    params = candidate.params
    failed = [check for check in checks if not check["passed"]]
    for finding in [check["finding"] for check in checks if check.get("finding")]:
        print(f"Finding (not refusing the model): {finding}")
    result: dict[str, Any] = {"accepted": not failed, "split": params.accept.split, "checks": checks}
    if failed:
        result["registry"] = {"registered": False, "reason": "the model did not pass acceptance"}
        write_verdict(paths.model, result)
        raise StageError(
            f"the model is not accepted ({len(failed)} of {len(checks)} rules failed, see {paths.acceptance}):\n"
            + "\n".join(f"  - {check['message']}" for check in failed)
        )
    if tracking_enabled():
        test_metrics = candidate.report["model"][params.accept.split]
        result["registry"] = register_and_compare(params, paths, test_metrics, champion)
    else:
        result["registry"] = {"registered": False, "reason": "tracking is off (MLFLOW_TRACKING=off)"}
    write_verdict(paths.model, result)
    return {"accepted": True, "rules": len(checks)} | {
        key: result["registry"].get(key) for key in ("version", "champion") if key in result["registry"]
    }


def own_rule(rule: GateRule, candidate: Candidate) -> dict[str, Any]:
    """A project rule's check; a rule that fails to judge, or answers in another shape, is a readable error."""
    name = getattr(rule, "__name__", repr(rule))
    try:
        check = rule(candidate)
    except Exception as error:
        raise StageError(f"the gate rule {name} failed to judge the model: {type(error).__name__}: {error}") from None
    if not (
        isinstance(check, dict) and isinstance(check.get("passed"), bool) and isinstance(check.get("message"), str)
    ):
        shape = "a dict with passed (bool) and message (str)"
        raise StageError(f"the gate rule {name} must return {shape}; got {check!r}")
    return {"rule": name, **check}


def current_champion(name: str) -> Champion | None:
    """The registry's champion, loaded once: the challenger's score, speed and staleness are measured against it."""
    from .. import registry

    client = registry.client()
    if not registry.exists(client, name) or registry.alias_version(client, name, registry.CHAMPION) is None:
        return None
    model, entry = registry.load_champion(name)
    age_days = (time.time() - entry.creation_timestamp / 1000) / 86400
    return Champion(str(entry.version), model, age_days)


def register_and_compare(
    params: Params, paths: Paths, metrics: dict[str, float], champion: Champion | None
) -> dict[str, Any]:
    """Register the accepted model as challenger; promote it when it is not worse than the champion."""
    from .. import registry

    run_info = read_json(paths.run_info)
    name = params.mlflow.registered_model
    client = registry.client()
    tags = lineage_tags(paths.root) | {
        "family": run_info["family"],
        "run_id": run_info["run_id"],
        "metrics": json.dumps(metrics, sort_keys=True),
        "params": json.dumps(params.train.model_dump(), sort_keys=True, default=str)[:4900],
    }
    unreviewed = tags["git_dirty"] == "true"
    if unreviewed:
        tags[registry.UNREVIEWED_TAG] = "true"
    version = registry.register(client, name, run_info["model_uri"], tags)
    comparison = compare_with_champion(params, paths, champion, metrics[params.train.primary_metric])
    if unreviewed and comparison["promoted"]:
        comparison |= {
            "promoted": False,
            "reason": "trained from uncommitted changes (not reviewed): registered as challenger only;"
            f" commit them and retrain, or `promote {version} --force REASON`. " + comparison["reason"],
        }
    if comparison["promoted"]:
        registry.set_champion(client, name, version)
    if champion is not None and run_info.get("run_id"):
        log_staleness(run_info, comparison)
    return {
        "registered": True,
        "model": name,
        "version": version,
        "champion_before": champion.version if champion else None,
        "champion": version if comparison["promoted"] else (champion.version if champion else None),
        "comparison": comparison,
    }


def compare_with_champion(
    params: Params, paths: Paths, champion: Champion | None, challenger_score: float
) -> dict[str, Any]:
    """Score the current champion on the same split as the challenger, within a tolerance.

    The champion's age and its score on the new data, next to the challenger's, are what a
    retrain learns about staleness: how much a model of that age has lost.
    """
    metric = params.train.primary_metric
    tolerance = params.accept.champion_tolerance
    if champion is None:
        return {"metric": metric, "challenger": challenger_score, "promoted": True, "reason": "first accepted model"}
    contract = load_contract(paths.schema)
    frame = read_parquet(paths.split(params.accept.split))
    champion_score = score(champion.model, params.task, *contract.split_xy(frame))[metric]
    gain = improvement(metric, challenger_score, champion_score)
    promoted = gain >= -tolerance
    return {
        "metric": metric,
        "challenger": challenger_score,
        "champion": champion_score,
        "champion_version": champion.version,
        "champion_age_days": round(champion.age_days, 4),
        "tolerance": tolerance,
        "promoted": promoted,
        "reason": (
            f"challenger {metric} {challenger_score:.4f} vs champion v{champion.version} {champion_score:.4f}"
            f" (difference {gain:+.4f}, tolerance {tolerance}); the champion is {champion.age_days:.1f} days old"
        ),
    }


def log_staleness(run_info: dict[str, Any], comparison: dict[str, Any]) -> None:
    """On the challenger's training run: the champion's age and both scores on the same new data."""
    import mlflow

    metric = comparison["metric"]
    with start_run(run_info["experiment"], run_id=run_info["run_id"], run_name="accept"):
        mlflow.log_metrics(
            {
                "champion_age_days": comparison["champion_age_days"],
                f"champion_{metric}": comparison["champion"],
                f"challenger_{metric}": comparison["challenger"],
            }
        )


def check_model(
    report: dict[str, Any], accept: AcceptParams, bounds: Mapping[str, float | None] | None = None
) -> list[dict[str, Any]]:
    """One result per rule: thresholds on the model's metrics, margins over the baseline's.

    `bounds` (margin_lower_bounds) holds, per margin metric, the gain the sampling noise of the split
    leaves; the margin is judged on it where there is one.
    """
    model = report["model"][accept.split]
    baseline = report["baseline"][accept.split]
    checks = []
    for metric, threshold in accept.thresholds.items():
        value = _metric(model, metric)
        higher = HIGHER_IS_BETTER[metric]
        shortfall = -improvement(metric, value, threshold)
        bound = "at least" if higher else "at most"
        checks.append(
            {
                "item": "I4",
                "rule": "threshold",
                "metric": metric,
                "value": value,
                "required": threshold,
                "passed": shortfall <= 0,
                "message": f"{metric} on {accept.split} is {value:.4f}; required {bound} {threshold:.4f}"
                + (f" (short by {shortfall:.4f})" if shortfall > 0 else ""),
            }
        )
    for metric, margin in accept.margin_over_baseline.items():
        value, reference = _metric(model, metric), _metric(baseline, metric)
        gain = improvement(metric, value, reference)
        lower = (bounds or {}).get(metric)
        judged = gain if lower is None else min(gain, lower)
        shown = f"{gain:.4f}" if lower is None else f"{gain:.4f} (at least {lower:.4f} in 95% of resamples)"
        checks.append(
            {
                "item": "M5",
                "rule": "margin_over_baseline",
                "metric": metric,
                "value": value,
                "baseline": reference,
                "gain_lower_bound": lower,
                "required": margin,
                "passed": judged >= margin,
                "message": f"{metric} on {accept.split} beats the baseline ({reference:.4f}) by {shown};"
                f" required {margin:.4f}" + (f" (short by {margin - judged:.4f})" if judged < margin else ""),
            }
        )
    return checks


def margin_lower_bounds(params: Params, paths: Paths, contract: Contract, model: Any) -> dict[str, float | None]:
    """Per margin metric, the model's gain over the baseline on the accept split in all but the worst 5% of
    bootstrap resamples: on a few hundred rows, a model without signal can show the margin by luck."""
    frame = read_parquet(paths.split(params.accept.split))
    features, target = contract.split_xy(frame)
    baseline = fit_baseline(params.task, contract, read_parquet(paths.split("train")))
    ours, theirs = Predictions.of(model, params.task, features), Predictions.of(baseline, params.task, features)
    return {
        metric: improvement_lower_bound(metric, target, ours, theirs, params.train.seed)
        for metric in params.accept.margin_over_baseline
    }


def _metric(values: dict[str, float], metric: str) -> float:
    if metric not in values:
        raise StageError(
            f"accept names metric {metric!r}, which evaluate does not report; it has: {', '.join(values)}."
        )
    return float(values[metric])


NOISE_SPREADS = 3.0  # a feature's mean importance must exceed this many spreads of one shuffle


def not_beneficial(row: dict[str, Any]) -> bool:
    """Permutation importance not shown above noise: the mean drop is within NOISE_SPREADS standard
    deviations of one shuffle.

    The spread of one shuffle, not the standard error of the mean: the unshuffled score is itself one
    draw, so more repeats do not make a noise feature look useful. Repeats (sized by evaluate to the
    held-out rows) make both figures precise, so the same data gives the same finding on every run; a
    feature of pure noise falls within 3 spreads about 999 times in 1,000, a useful one far outside.
    """
    return float(row["importance"]) <= NOISE_SPREADS * float(row["std"])


def check_features(importance: list[dict[str, Any]], cost: dict[str, Any], rules: FeatureRules) -> list[dict[str, Any]]:
    """Every feature is beneficial (permutation importance above its noise) and none costs too much.

    Findings, reported with what to do; they refuse the model only with `accept.features.enforce`.
    """
    kept = set(rules.keep)
    unknown = sorted(kept - {row["feature"] for row in importance})
    if unknown:
        raise StageError(f"accept.features.keep names {', '.join(unknown)}, which the model does not use.")
    useless = [row for row in importance if not_beneficial(row) and row["feature"] not in kept]
    measured = {name: entry for name, entry in cost["features"].items() if entry["measured"]}
    costly = {name: entry for name, entry in measured.items() if entry["time_share"] > rules.max_time_share}
    unmeasured = sorted(set(cost["features"]) - set(measured))
    measure = importance[0] if importance else {}
    rows = f" on {measure['rows']} held-out rows x {measure['repeats']} shuffles" if "rows" in measure else ""
    benefit = (
        f"not shown beneficial{rows} (mean importance within {NOISE_SPREADS:g} spreads of one shuffle): "
        + ", ".join(f"{row['feature']} {row['importance']:.4g} ± {row['std']:.2g}" for row in useless)
        + "; remove them from schema.yaml, or keep them knowingly in accept.features.keep"
        if useless
        else ""
    )
    cost_finding = (
        f"costing more than {rules.max_time_share:.0%} of predict time: "
        + ", ".join(
            f"{name} {entry['time_share']:.0%} for a gain of {entry['gain']:.4g}" for name, entry in costly.items()
        )
        + "; consider a cheaper form of them (reports/feature_cost.json)"
        if costly
        else ""
    )
    enforced = " (enforced: accept.features.enforce)" if rules.enforce else ""
    return [
        {
            "item": "D2",
            "rule": "feature_benefit",
            "passed": not (useless and rules.enforce),
            "enforced": rules.enforce,
            "features": [row["feature"] for row in useless],
            "finding": benefit,
            "message": benefit + enforced
            if useless
            else f"all {len(importance)} features beneficial{rows}"
            f" (kept on purpose: {', '.join(sorted(kept)) or 'none'})",
        },
        {
            "item": "D3",
            "rule": "feature_cost",
            "passed": not (costly and rules.enforce),
            "enforced": rules.enforce,
            "features": sorted(costly),
            "finding": cost_finding,
            "message": cost_finding + enforced
            if costly
            else f"no feature costs more than {rules.max_time_share:.0%} of predict time ({len(measured)} measured"
            + (f"; over the time budget, not measured: {', '.join(unmeasured)})" if unmeasured else ")"),
        },
    ]


def check_slices(report: dict[str, Any], rules: SliceRules) -> list[dict[str, Any]]:
    """The worst slice of every slicing feature meets the minimum; the gap between slices stays small.

    Gaps on features marked sensitive answer to their own bound (inclusion).
    """
    sensitive = set(report.get("sensitive", []))
    small = [
        f"{name}={label} ({entry['rows']} rows)"
        for name, slices in report["slices"].items()
        for label, entry in slices.items()
        if "note" in entry
    ]
    judged = ", ".join(report["slices"]) or "no feature (evaluate.slice_by is empty and no feature is categorical)"
    not_judged = f"; not judged (too few rows or one class): {', '.join(small)}" if small else ""
    checks = []
    for metric, bound in rules.minimum.items():
        worst = [
            (name, label, value)
            for name, slices in report["slices"].items()
            for label, value in _slice_values(slices, metric).items()
            if improvement(metric, value, bound) < 0
        ]
        checks.append(
            {
                "item": "M6",
                "rule": "slice_minimum",
                "metric": metric,
                "required": bound,
                "passed": not worst,
                "message": (
                    f"slices below the {metric} bound {bound}: "
                    + ", ".join(f"{name}={label} {value:.4f}" for name, label, value in worst)
                    if worst
                    else f"every slice of {judged} meets {metric} {bound}"
                )
                + not_judged,
            }
        )
    for item, gaps, names in (
        ("M6", rules.max_gap, [name for name in report["slices"] if name not in sensitive]),
        ("M7", rules.max_gap_sensitive, [name for name in report["slices"] if name in sensitive]),
    ):
        for metric, allowed in gaps.items():
            for name in names:
                values = _slice_values(report["slices"][name], metric)
                gap = max(values.values()) - min(values.values()) if len(values) > 1 else 0.0
                checks.append(
                    {
                        "item": item,
                        "rule": "slice_gap",
                        "feature": name,
                        "metric": metric,
                        "value": gap,
                        "required": allowed,
                        "passed": gap <= allowed,
                        "message": f"{metric} gap between slices of {name}{' (sensitive)' if item == 'M7' else ''}"
                        f" is {gap:.4f}; allowed {allowed}",
                    }
                )
    return checks


def _slice_values(slices: dict[str, Any], metric: str) -> dict[str, float]:
    """The metric per slice, for slices large enough to have it."""
    return {label: float(entry[metric]) for label, entry in slices.items() if metric in entry}


def canary(paths: Paths, task: str, contract: Contract, model: Any, rows: pd.DataFrame) -> dict[str, Any]:
    """The candidate answers through the real service, in process: every row 200, finite and equal to the model's.

    Rows: the accept split and the contract's extreme examples. The service's own path (request
    model, direct inference, JSON) is what is tested, so a skew between it and the artifact shows here.
    """
    import pandas as pd
    from fastapi.testclient import TestClient

    from ..serving.app import create_app
    from ..serving.config import ServingConfig

    frame = pd.concat([rows, contract.examples()], ignore_index=True)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    expected = model.predict(frame) if task == "regression" else model.predict_proba(frame)
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        config = ServingConfig(
            paths=paths,
            model_source="local",
            prediction_log_url=f"sqlite:///{Path(scratch) / 'canary.db'}",
            require_acceptance=False,
        )
        with TestClient(create_app(config)) as client:
            for start, batch in request_batches(records, config.max_records, config.max_body_bytes):
                response = client.post("/predict", json=batch)
                if response.status_code != 200:
                    problems.append(f"rows {start}-{start + len(batch) - 1}: HTTP {response.status_code}")
                    continue
                for offset, answer in enumerate(response.json()["predictions"]):
                    problem = _disagreement(answer, expected[start + offset], model)
                    if problem:
                        problems.append(f"row {start + offset}: {problem}")
    return {
        "item": "I6",
        "rule": "canary",
        "rows": len(records),
        "passed": not problems,
        "failures": problems[:10],
        "message": f"the service answered {len(records)} rows like the model"
        if not problems
        else f"the service failed the canary on {len(problems)} of {len(records)} rows: {'; '.join(problems[:3])}",
    }


def request_batches(
    records: Sequence[Mapping[Any, Any]], max_records: int, max_bytes: int
) -> list[tuple[int, list[Mapping[Any, Any]]]]:
    """The records in requests the service accepts: at most `max_records` each, and bodies within `max_bytes`
    (with a tenth to spare), however wide the rows. Each batch comes with the index of its first record."""
    budget = int(max_bytes * 0.9)
    batches: list[tuple[int, list[Mapping[Any, Any]]]] = []
    start, size = 0, 2
    for index, record in enumerate(records):
        length = len(json.dumps(record, default=str)) + 1
        if index > start and (index - start >= max_records or size + length > budget):
            batches.append((start, list(records[start:index])))
            start, size = index, 2
        size += length
    if start < len(records):
        batches.append((start, list(records[start:])))
    return batches


def _disagreement(answer: dict[str, Any], expected: Any, model: Any) -> str | None:
    """Why the service's answer differs from the model's output, or None."""
    import numpy as np

    if "probabilities" not in answer or answer["probabilities"] is None:
        value = answer["prediction"]
        if not isinstance(value, int | float) or not math.isfinite(value):
            return f"non-finite prediction {value!r}"
        return None if math.isclose(value, float(expected), rel_tol=1e-9, abs_tol=1e-9) else f"{value} != {expected}"
    served = np.array([answer["probabilities"][str(label)] for label in model.classes_], dtype=float)
    if not np.isfinite(served).all():
        return "non-finite probabilities"
    return None if np.allclose(served, expected, rtol=1e-9, atol=1e-9) else f"probabilities {served} != {expected}"


def check_speed(
    model: Any, champion: Champion | None, rows: pd.DataFrame, max_slowdown: float, split: str = "test"
) -> dict[str, Any]:
    """Computing performance: predicting the same rows may take at most `max_slowdown` times the champion's time."""
    if champion is None:
        [seconds] = predict_seconds([model], rows, TIMING_REPEATS)
        return {
            "item": "Mo6",
            "rule": "speed",
            "rows": len(rows),
            "seconds": round(seconds, 6),
            "passed": True,
            "message": f"predicts the {split} split (repeated to {TIMING_ROWS:,}+ rows) in {seconds * 1000:.1f} ms"
            " (no champion to compare with)",
        }
    seconds, reference = predict_seconds([model, champion.model], rows, TIMING_REPEATS)
    ratio = seconds / reference
    return {
        "item": "Mo6",
        "rule": "speed",
        "rows": len(rows),
        "seconds": round(seconds, 6),
        "champion_seconds": round(reference, 6),
        "value": round(ratio, 3),
        "required": max_slowdown,
        "passed": ratio <= max_slowdown,
        "message": f"predicts the {split} split (repeated to {TIMING_ROWS:,}+ rows) in {seconds * 1000:.1f} ms,"
        f" {ratio:.2f}x the champion"
        f" v{champion.version} ({reference * 1000:.1f} ms); allowed {max_slowdown}x",
    }
