"""Stage accept: the model acceptance test, then the registry.

A model passes when it meets the minimum metrics of params.yaml and beats the baseline by
the required margin. A passing model is registered as a new version with the alias
`challenger`, and becomes `champion` when it is not worse than the current champion on the
same data (within `accept.champion_tolerance`). A failing model never touches the registry.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..files import read_json, read_parquet, write_json
from ..metrics import HIGHER_IS_BETTER, improvement, score
from ..schema import load_contract
from ..tracking import lineage_tags, tracking_enabled

if TYPE_CHECKING:
    from ..params import AcceptParams, Params
    from ..paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    report = read_json(paths.metrics)
    checks = check_model(report, params.accept)
    failed = [check for check in checks if not check["passed"]]
    result: dict[str, Any] = {"accepted": not failed, "split": params.accept.split, "checks": checks}
    if failed:
        result["registry"] = {"registered": False, "reason": "the model did not pass acceptance"}
        write_json(paths.acceptance, result)
        raise StageError(
            f"the model is not accepted ({len(failed)} of {len(checks)} rules failed, see {paths.acceptance}):\n"
            + "\n".join(f"  - {check['message']}" for check in failed)
        )
    if tracking_enabled():
        result["registry"] = register_and_compare(params, paths, report["model"][params.accept.split])
    else:
        result["registry"] = {"registered": False, "reason": "tracking is off (MLFLOW_TRACKING=off)"}
    write_json(paths.acceptance, result)
    return {"accepted": True, "rules": len(checks)} | {
        key: result["registry"].get(key) for key in ("version", "champion") if key in result["registry"]
    }


def register_and_compare(params: Params, paths: Paths, metrics: dict[str, float]) -> dict[str, Any]:
    """Register the accepted model as challenger; promote it when it is not worse than the champion."""
    from .. import registry

    run_info = read_json(paths.run_info)
    name = params.mlflow.registered_model
    metric = params.train.primary_metric
    client = registry.client()
    champion_before = registry.alias_version(client, name, registry.CHAMPION) if registry.exists(client, name) else None
    tags = lineage_tags(paths.root) | {
        "family": run_info["family"],
        "run_id": run_info["run_id"],
        "metrics": json.dumps(metrics, sort_keys=True),
        "params": json.dumps(params.train.model_dump(), sort_keys=True, default=str)[:4900],
    }
    version = registry.register(client, name, run_info["model_uri"], tags)
    comparison = compare_with_champion(params, paths, name, champion_before, metrics[metric])
    if comparison["promoted"]:
        registry.set_champion(client, name, version)
    return {
        "registered": True,
        "model": name,
        "version": version,
        "champion_before": champion_before,
        "champion": version if comparison["promoted"] else champion_before,
        "comparison": comparison,
    }


def compare_with_champion(
    params: Params, paths: Paths, name: str, champion: str | None, challenger_score: float
) -> dict[str, Any]:
    """Score the current champion on the same split as the challenger, within a tolerance."""
    metric = params.train.primary_metric
    tolerance = params.accept.champion_tolerance
    if champion is None:
        return {"metric": metric, "challenger": challenger_score, "promoted": True, "reason": "first accepted model"}
    from ..registry import load_champion

    contract = load_contract(paths.schema)
    champion_model, _ = load_champion(name)
    frame = read_parquet(paths.split(params.accept.split))
    champion_score = score(champion_model, params.task, *contract.split_xy(frame))[metric]
    gain = improvement(metric, challenger_score, champion_score)
    promoted = gain >= -tolerance
    return {
        "metric": metric,
        "challenger": challenger_score,
        "champion": champion_score,
        "tolerance": tolerance,
        "promoted": promoted,
        "reason": (
            f"challenger {metric} {challenger_score:.4f} vs champion v{champion} {champion_score:.4f}"
            f" (difference {gain:+.4f}, tolerance {tolerance})"
        ),
    }


def check_model(report: dict[str, Any], accept: AcceptParams) -> list[dict[str, Any]]:
    """One result per rule: thresholds on the model's metrics, margins over the baseline's."""
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
        checks.append(
            {
                "rule": "margin_over_baseline",
                "metric": metric,
                "value": value,
                "baseline": reference,
                "required": margin,
                "passed": gain >= margin,
                "message": f"{metric} on {accept.split} beats the baseline ({reference:.4f}) by {gain:.4f};"
                f" required {margin:.4f}" + (f" (short by {margin - gain:.4f})" if gain < margin else ""),
            }
        )
    return checks


def _metric(values: dict[str, float], metric: str) -> float:
    if metric not in values:
        raise StageError(
            f"accept names metric {metric!r}, which evaluate does not report; it has: {', '.join(values)}."
        )
    return float(values[metric])
