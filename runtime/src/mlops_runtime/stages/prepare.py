"""Stage prepare: split the validated rows into train, validation and test.

Rows that repeat another row exactly (features and target) are kept and split like the others:
in coarse data they are real, independent observations (dropping them, or keeping each group
in one split, skews the splits: on Titanic data every passenger of unknown age ended up in
train), and labelled feedback may repeat a row seen before. The stage says how many there are;
where they are copies of one record, remove them at the source, since a copy on both sides of
the split flatters the test score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..files import read_parquet, write_parquet
from ..metrics import is_classification
from ..schema import load_contract

if TYPE_CHECKING:
    import pandas as pd

    from ..params import Params, PrepareParams
    from ..paths import Paths

SPLITS = ("train", "validation", "test")


def run(params: Params, paths: Paths) -> dict[str, Any]:
    """Clean data/raw/ by the contract and split it into train, validation and test (data/prepared/)."""
    contract = load_contract(paths.schema)
    frame = contract.coerce(read_parquet(paths.raw)).reset_index(drop=True)
    target = contract.target.name
    splits = split(frame, target if is_classification(params.task) else None, params.prepare)
    for name, part in splits.items():
        write_parquet(part, paths.split(name))
    repeats = int(frame.duplicated().sum())
    if repeats:
        print(
            f"prepare: {repeats} of {len(frame)} rows repeat another row exactly; kept and split like the others"
            " (remove them at the source if they are copies of one record)."
        )
    return {name: len(part) for name, part in splits.items()} | {"repeated_rows": repeats}


def split(frame: pd.DataFrame, stratify_by: str | None, params: PrepareParams) -> dict[str, pd.DataFrame]:
    """A reproducible split; stratified on the target for classification."""
    from sklearn.model_selection import train_test_split

    holdout = params.validation_size + params.test_size
    if holdout >= 0.8:
        raise StageError("prepare.validation_size + prepare.test_size must leave at least 20% for training.")
    try:
        train, rest = train_test_split(
            frame,
            test_size=holdout,
            random_state=params.seed,
            stratify=frame[stratify_by] if stratify_by else None,
        )
        validation, test = train_test_split(
            rest,
            test_size=params.test_size / holdout,
            random_state=params.seed,
            stratify=rest[stratify_by] if stratify_by else None,
        )
    except ValueError as error:  # too few rows of a class to stratify
        raise StageError(f"cannot split {len(frame)} rows: {error}") from None
    return {"train": train, "validation": validation, "test": test}
