"""Stage infer_schema: write schema.yaml from the data, once, for review."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.stages import infer_schema

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    return infer_schema.run(params, paths)
