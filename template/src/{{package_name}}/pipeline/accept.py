"""Stage accept: the acceptance gate of params.yaml, then the registry; add your own rules to RULES.

A rule takes the candidate (`candidate.model`, `.contract`, `.report`: reports/metrics.json, `.rows`: the
features of the split accept judges on, `.params`) and returns {"passed": bool, "message": what it found}.
One failing rule refuses the model, and its message reaches the verdict. For example:

    def fast_enough_on_one_row(candidate: Candidate) -> dict[str, Any]:
        seconds = ...  # time candidate.model.predict(candidate.rows.head(1))
        return {"passed": seconds < 0.05, "message": f"one row in {seconds * 1000:.1f} ms (allowed 50 ms)"}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.stages import accept
from mlops_runtime.stages.accept import GateRule

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths

RULES: list[GateRule] = []


def run(params: Params, paths: Paths) -> dict[str, Any]:
    candidate = accept.load_candidate(params, paths)  # the model, its reports, the rows judged
    champion = accept.serving_champion(params)  # the registry's champion, if any
    checks = accept.params_rules(candidate, champion, paths) + [accept.own_rule(rule, candidate) for rule in RULES]
    return accept.decide(checks, candidate, champion, paths)  # models/acceptance.json; registers a passing model
