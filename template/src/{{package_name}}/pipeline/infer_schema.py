"""Stage infer_schema: write a first schema.yaml from the data, once, for review.

The template cannot know the columns of a file or SQL source. The first run writes the
contract it observes; the user reviews it (ranges, categories, missing-value limits) and
commits it. Later runs keep the file as it is, and validate against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..files import read_parquet
from ..schema import infer_contract, load_contract

if TYPE_CHECKING:
    from ..params import Params
    from ..paths import Paths

HEADER = """\
# The input contract: every raw row, in training and in serving, must satisfy it.
# Inferred from {rows} rows of {source} data. Review it, widen ranges where real data may
# go further, then commit it: `validate` checks data against this file on every run.
# Every feature needs an owner (who answers for it) and a pii answer (personal data is never
# written to the prediction log); mark a group the model must serve equally `sensitive: true`.
# Left out (identifiers, free text or dates): {ignored}
"""


def run(params: Params, paths: Paths) -> dict[str, Any]:
    if paths.schema.exists():
        contract = load_contract(paths.schema)
        return {"schema": str(paths.schema), "features": len(contract.features), "inferred": False}
    assert params.infer_schema is not None, "params.yaml needs an infer_schema section"
    frame = read_parquet(paths.raw)
    contract, ignored = infer_contract(
        frame,
        params.infer_schema.target,
        params.task,
        params.infer_schema.max_categories,
        owner=f"{params.extract.source} source",
    )
    header = HEADER.format(rows=len(frame), source=params.extract.source, ignored=", ".join(ignored) or "none")
    paths.schema.write_text(contract.to_yaml(header))
    print(f"Wrote {paths.schema} from the data: review it and commit it (git add {paths.schema.name}).")
    return {"schema": str(paths.schema), "features": len(contract.features), "inferred": True}
