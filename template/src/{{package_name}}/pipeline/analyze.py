"""Stage analyze: the exploratory report in reports/eda/ (index.html, plots, summary.json)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.stages import analyze

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    return analyze.run(params, paths)
