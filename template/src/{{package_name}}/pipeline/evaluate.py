"""Stage evaluate: score model and baseline on validation and test; slices, stability, cost, plots."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.stages import evaluate

from ..model import project_models

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    return evaluate.run(params, paths, project_models())
