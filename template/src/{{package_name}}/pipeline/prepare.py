"""Stage prepare: clean the data and split it into train, validation and test (data/prepared/)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.files import read_parquet, write_parquet
from mlops_runtime.schema import load_contract
from mlops_runtime.stages import prepare

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    contract = load_contract(paths.schema)
    rows = contract.coerce(read_parquet(paths.raw)).reset_index(drop=True)  # typed as the contract says
    splits = prepare.split(rows, prepare.stratify_by(contract, params.task), params.prepare)
    for name, part in splits.items():
        write_parquet(part, paths.split(name))
    return {name: len(part) for name, part in splits.items()} | {"repeated_rows": prepare.count_repeats(rows)}
