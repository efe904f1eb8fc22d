"""Stage prepare: split the validated rows into train, validation and test.

Rows that repeat another row exactly (features and target) are kept: they are real observations
(coarse data repeats often, and labelled feedback may repeat a row already seen), and dropping
them would change the class balance. Each stays in the split of its first copy, so no row is
both trained on and judged on. The stage says how many there are.
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
    contract = load_contract(paths.schema)
    frame = contract.coerce(read_parquet(paths.raw)).reset_index(drop=True)
    target = contract.target.name
    splits = split(frame, target if is_classification(params.task) else None, params.prepare)
    for name, part in splits.items():
        write_parquet(part, paths.split(name))
    repeats = int(row_keys(frame).duplicated().sum())
    if repeats:
        print(
            f"prepare: {repeats} of {len(frame)} rows repeat another row exactly; kept, each in the split of its"
            " first copy (so none is both trained on and tested on)."
        )
    return {name: len(part) for name, part in splits.items()} | {"repeated_rows": repeats}


def row_keys(frame: pd.DataFrame) -> pd.Series:
    """A hash of each row's values: equal rows, equal keys."""
    import pandas as pd

    return pd.util.hash_pandas_object(frame, index=False)


def split(frame: pd.DataFrame, stratify_by: str | None, params: PrepareParams) -> dict[str, pd.DataFrame]:
    """A reproducible split of the distinct rows, stratified on the target for classification; a repeated
    row goes where its first copy went."""
    keys = row_keys(frame)
    distinct = split_distinct(frame[~keys.duplicated()], stratify_by, params)
    home = {key: name for name, part in distinct.items() for key in keys[part.index]}
    order = {key: position for part in distinct.values() for position, key in enumerate(keys[part.index])}
    assigned, position = keys.map(home), keys.map(order)
    # In the order of the distinct split (unchanged where nothing repeats), each repeat after its first copy.
    return {name: frame.loc[position[assigned == name].sort_values(kind="stable").index] for name in distinct}


def split_distinct(frame: pd.DataFrame, stratify_by: str | None, params: PrepareParams) -> dict[str, pd.DataFrame]:
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
