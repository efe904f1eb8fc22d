"""Stage prepare: split the validated rows into train, validation and test.

Rows that repeat another row exactly (features and target) are kept and split like the others:
in coarse data they are real, independent observations (dropping them, or keeping each group
in one split, skews the splits: on Titanic data every passenger of unknown age ended up in
train), and labelled feedback may repeat a row seen before. The stage says how many there are;
where they are copies of one record, remove them at the source, since a copy on both sides of
the split flatters the test score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import StageError
from ..metrics import is_classification

if TYPE_CHECKING:
    import pandas as pd

    from ..params import PrepareParams
    from ..schema import Contract

SPLITS = ("train", "validation", "test")


def stratify_by(contract: Contract, task: str) -> str | None:
    """The column the splits keep the proportions of: the target for classification, none for regression."""
    return contract.target.name if is_classification(task) else None


def count_repeats(frame: pd.DataFrame) -> int:
    """Rows that repeat another row exactly, said once (kept and split like the others: see above)."""
    repeats = int(frame.duplicated().sum())
    if repeats:
        print(
            f"prepare: {repeats} of {len(frame)} rows repeat another row exactly; kept and split like the others"
            " (remove them at the source if they are copies of one record)."
        )
    return repeats


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
