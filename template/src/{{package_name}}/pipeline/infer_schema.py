"""Stage infer_schema: write schema.yaml from the data, once, for review; a reviewed one is kept as it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.files import read_parquet
from mlops_runtime.inference import infer
from mlops_runtime.schema import load_contract
from mlops_runtime.stages import infer_schema

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    if paths.schema.exists():
        contract = load_contract(paths.schema)
        return {"schema": str(paths.schema), "features": len(contract.features), "inferred": False}
    raw = read_parquet(paths.raw)
    wanted = infer_schema.inference_params(params)
    owner = f"{params.extract.source} source"
    inference = infer(raw, wanted.target, params.task, wanted.max_categories, owner=owner)
    return infer_schema.write_for_review(inference, len(raw), params.extract.source, paths)
