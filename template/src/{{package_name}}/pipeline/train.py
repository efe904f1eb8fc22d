"""Stage train: tune every candidate family of model.py, keep the best, refit it, log and save the model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.stages import train

from ..model import project_models

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    return train.run(params, paths, project_models())
