"""Stage analyze: the exploratory report in reports/eda/ (index.html, plots, summary.json)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.files import read_parquet
from mlops_runtime.schema import load_contract
from mlops_runtime.stages import analyze

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    contract = load_contract(paths.schema)
    raw = read_parquet(paths.raw)
    rows = contract.coerce(raw)
    summary = analyze.Summary(
        rows=len(rows),
        reading=analyze.column_reading(raw, contract, params),
        possible_leaks=analyze.leak_warnings(raw, contract, params.task),
        columns=analyze.column_summary(rows, contract, params.analyze.max_categories),
        target=analyze.target_summary(rows[contract.target.name], params.task),
        association=analyze.feature_association(rows, contract, params.task),
    )
    return analyze.write_report(summary, rows, contract, params.task, paths.eda_dir)
