"""Stage accept: the model acceptance test. Minimum metrics and a margin over the baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..files import read_json, write_json
from ..metrics import HIGHER_IS_BETTER, improvement

if TYPE_CHECKING:
    from ..params import AcceptParams, Params
    from ..paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    checks = check_model(read_json(paths.metrics), params.accept)
    failed = [check for check in checks if not check["passed"]]
    write_json(paths.acceptance, {"accepted": not failed, "split": params.accept.split, "checks": checks})
    if failed:
        raise StageError(
            f"the model is not accepted ({len(failed)} of {len(checks)} rules failed, see {paths.acceptance}):\n"
            + "\n".join(f"  - {check['message']}" for check in failed)
        )
    return {"accepted": True, "rules": len(checks)}


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
