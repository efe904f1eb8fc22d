"""Stage infer_schema: write a first schema.yaml from the data, once, for review.

The template cannot know the columns of a file or SQL source. The first run writes the
contract it infers (inference.py), with the kind of every column and why, the columns left
out and why, and the features that may leak the target; the user reviews it and commits it.
Later runs keep the file as it is, and validate against it.
"""

from __future__ import annotations

from string import Template
from typing import TYPE_CHECKING, Any

from ..errors import StageError

if TYPE_CHECKING:
    from ..inference import Inference
    from ..params import InferSchemaParams, Params
    from ..paths import Paths

HEADER = Template("""\
# The input contract: every raw row, in training and in serving, must satisfy it.
# Inferred from $rows rows of $source data. Review it, then commit it: `validate` checks the
# data against this file on every run, and the service's requests are checked against it.
# Each feature's comment says how it was read; change its `type:` where you know better:
#   numeric:      {type: numeric, min: 0, max: 150}  a number in [min, max]; the inferred bounds are the
#                 observed range widened by its width on each side (never across 0): they refuse the
#                 impossible, while monitoring reports the unusual
#   categorical:  {type: categorical, categories: [no, yes]}  one of the listed values (text as written,
#                 or integer codes: [1, 2, 3])
#   datetime:     {type: datetime}  a date or timestamp (ISO 8601: 2024-05-31, 2024-05-31T14:05:00); the
#                 model derives year, month, day of week, day of year, hour and days since the first date
#   every kind:   max_missing: 0.1 (the share that may be missing), owner: who answers for it,
#                 pii: personal data (never written to the prediction log), sensitive: true (a group the
#                 model must serve as well as the others: its slices are compared in `accept`)
# To use a column that was left out, add it under features: with its type.
# Left out:$left_out
# Possible leak (a feature that alone predicts the target almost perfectly: make sure it is known
# before the target is, or remove it):$leaks
""")


def inference_params(params: Params) -> InferSchemaParams:
    """params.yaml's infer_schema section; a clear error where the project has none."""
    if params.infer_schema is None:
        raise StageError("params.yaml needs an infer_schema section (target, max_categories) to infer schema.yaml.")
    return params.infer_schema


def write_for_review(inference: Inference, rows: int, source: str, paths: Paths) -> dict[str, Any]:
    """Write schema.yaml with a reason for every column, say what to review, and return the stage's summary."""
    paths.schema.write_text(schema_text(inference, rows, source))
    print(f"Wrote {paths.schema} from the data: review it and commit it (git add {paths.schema.name}).")
    for name, score in inference.leaks:
        print(f"Possible target leak: {name} ({score}); see {paths.schema.name}.")
    return {
        "schema": str(paths.schema),
        "features": len(inference.contract.features),
        "left_out": len(inference.left_out),
        "possible_leaks": [name for name, _ in inference.leaks],
        "inferred": True,
    }


def schema_text(inference: Inference, rows: int, source: str) -> str:
    """schema.yaml with the decisions as comments: each feature's kind and reason, the columns left out, leaks."""
    left_out = "".join(f"\n#   {d.name}: {d.reason} ({d.detail})" for d in inference.left_out) or " none"
    leaks = "".join(f"\n#   {name}: {score}" for name, score in inference.leaks) or " none found"
    header = HEADER.substitute(rows=rows, source=source, left_out=left_out, leaks=leaks)
    notes = {d.name: f"{d.kind}: {d.reason} ({d.detail})" for d in inference.decisions if d.kept}
    return inference.contract.to_yaml(header, notes)
