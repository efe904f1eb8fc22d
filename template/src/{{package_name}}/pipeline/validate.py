"""Stage validate: check data/raw/ against the contract in schema.yaml; fail on violations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.stages import validate

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    return validate.run(params, paths)
