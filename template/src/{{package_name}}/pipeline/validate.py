"""Stage validate: check data/raw/ against the contract in schema.yaml; fail on violations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.files import read_parquet
from mlops_runtime.schema import load_contract
from mlops_runtime.stages import validate

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    raw = read_parquet(paths.raw)
    contract = load_contract(paths.schema)
    problems = validate.find_problems(raw, contract.pandera_schema(), params.validate_.max_examples)
    validate.stop_on_problems(problems, len(raw), paths)  # reports/validation.json
    return {"rows": len(raw), "valid": True}
