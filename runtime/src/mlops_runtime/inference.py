"""A first contract inferred from the data: a kind and a reason for every column, for the user to review.

Each column is read as a data scientist would read it: numbers, categories (text, yes/no, true/false,
integer codes with few values), dates; or left out, with the reason: identifiers (row numbers,
unnamed index columns, IDs unique per row, UUID or hex strings), constants, free text, columns
with too many categories, mostly missing ones. The decisions are written into schema.yaml as
comments and shown on the EDA page; schema.yaml stays the one home of what is valid.

Ranges are the contract, not the training sample: a bound refuses only what is impossible, so
inferred bounds are widened past the observed range (see `widened_range`); monitoring watches
what is unusual.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import StageError
from .files import plain
from .schema import (
    CategoricalColumn,
    Category,
    Column,
    Contract,
    DatetimeColumn,
    NumericColumn,
    categorical_column,
)

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["numeric", "categorical", "datetime"]

MOSTLY_MISSING = 0.5  # a column missing more often than this is left out
# Integer columns of values from 1 to INTEGER_CODES, each seen CODE_REPEATS times on average, are codes
# (levels, ratings, occupations: categorical). Counts stay numbers, so a count one past the training
# maximum is still valid: those that start at 0, and those named as counts (a plural such as bedrooms
# or stories, n_..., num..., ...count). The values alone cannot tell bedrooms 1-6 from occupation codes
# 1-6; the name is what a person reads too, and the comment in schema.yaml says which way it went.
INTEGER_CODES = 10
CODE_REPEATS = 5
COUNT_NAME = re.compile(r"(n|nb|no|num|number|count|cnt)[_ .-].*|.*(count|number|_n)|.*[^su\W_]s", re.IGNORECASE)
CAMEL_COUNT = re.compile(r"(n|nb|num|count|cnt)[A-Z].*")  # nVisits, numChildren
FREE_TEXT_WORDS = 5  # text averaging this many words or more is free text, not a category
DATE_SHARE = 0.95  # text that parses as dates this often is a datetime column
NEARLY_UNIQUE = 0.95  # text with this share of distinct values is a name or a key, not a category
LEAK_R2 = 0.9  # one feature alone reaching this R² (regression) ...
LEAK_BALANCED_ACCURACY = 0.98  # ... or this balanced accuracy (classification) may leak the target
LEAK_ROWS = 5000  # rows the leak check fits on
UNNAMED = re.compile(r"(|column0+|unnamed: ?0|rownames|row\.?names|\.\.\.1|index|level_0)", re.IGNORECASE)
ID_NAME = re.compile(r"(.*[_ .-])?(id|uuid|guid)|.*(code|cod|key)", re.IGNORECASE)  # id, customer_id, zipcode
CAMEL_ID = re.compile(r".*[a-z](ID|Id)")  # customerID, CustomerId
HEX_ID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}|[0-9a-fA-F]{16,}")


@dataclass(frozen=True)
class Decision:
    """How one column was read: its kind (None: left out), the reason in one word, and the detail."""

    name: str
    kind: Kind | None
    reason: str
    detail: str

    @property
    def kept(self) -> bool:
        return self.kind is not None


@dataclass(frozen=True)
class Inference:
    """The inferred contract, every column's decision, and the features that may leak the target."""

    contract: Contract
    decisions: tuple[Decision, ...]
    leaks: tuple[tuple[str, str], ...]  # (feature, what it scores alone)

    @property
    def left_out(self) -> list[Decision]:
        return [decision for decision in self.decisions if not decision.kept]


def decide(name: str, series: pd.Series, max_categories: int) -> Decision:
    """The kind of one column and why, or why it is left out."""
    import pandas as pd

    present = series.dropna()
    if present.empty:
        return Decision(name, None, "mostly_missing", "no values")
    missing = 1.0 - len(present) / len(series)
    if missing > MOSTLY_MISSING:
        return Decision(name, None, "mostly_missing", f"{missing:.0%} missing")
    distinct = int(present.nunique())
    if distinct == 1:
        return Decision(name, None, "constant", f"always {plain(present.iloc[0])!r}")
    unique = distinct == len(series)
    if UNNAMED.fullmatch(name.strip()) and unique:
        return Decision(name, None, "identifier", "unnamed index column, unique per row")
    if pd.api.types.is_bool_dtype(series):
        return Decision(name, "categorical", "true/false", "two values")
    if pd.api.types.is_datetime64_any_dtype(series) or (series.dtype == object and _date_objects(present)):
        return Decision(name, "datetime", "dates", f"from {_day(present.min())} to {_day(present.max())}")
    if pd.api.types.is_numeric_dtype(series):
        return _decide_number(name, present, unique, len(series))
    return _decide_text(name, present.astype(str), unique, max_categories)


def _decide_number(name: str, present: pd.Series, unique: bool, rows: int) -> Decision:
    import numpy as np

    values = present.to_numpy(dtype="float64")
    integers = bool(np.all(np.mod(values, 1) == 0))
    distinct = len(np.unique(values))
    if integers and unique and _row_numbers(values):
        return Decision(name, None, "identifier", f"row numbers ({values[0]:g}, {values[1]:g}, ...)")
    if integers and unique and (ID_NAME.fullmatch(name) or CAMEL_ID.fullmatch(name)):
        return Decision(name, None, "identifier", "an ID, unique per row")
    if distinct == 2:
        return Decision(name, "categorical", "two values", f"{_listed(np.unique(values))}")
    if integers and distinct <= INTEGER_CODES and len(values) >= CODE_REPEATS * distinct:
        small = values.min() >= 1 and values.max() <= INTEGER_CODES
        if small and not (COUNT_NAME.fullmatch(name) or CAMEL_COUNT.fullmatch(name)):
            return Decision(name, "categorical", "integer codes", f"{distinct} distinct values from {values.min():g}")
        detail = f"{distinct} distinct integers from {values.min():g}: a count (if they are codes, make it categorical)"
        return Decision(name, "numeric", "numbers", detail)
    return Decision(name, "numeric", "numbers", f"{distinct} distinct values from {values.min():g} to {values.max():g}")


def _decide_text(name: str, text: pd.Series, unique: bool, max_categories: int) -> Decision:
    if _dates(text):
        return Decision(name, "datetime", "dates", f"text dates from {text.min()} to {text.max()}")
    if text.str.fullmatch(HEX_ID).mean() >= DATE_SHARE:
        return Decision(name, None, "identifier", "UUID or hex strings")
    words = float(text.head(5000).str.count(r"\S+").mean())
    if words >= FREE_TEXT_WORDS:
        return Decision(name, None, "free_text", f"{words:.1f} words per value on average")
    if unique or text.nunique() >= NEARLY_UNIQUE * len(text) > 20:
        return Decision(name, None, "identifier", f"text unique per row ({text.nunique()} distinct in {len(text)})")
    distinct = int(text.nunique())
    if distinct > max_categories:
        detail = f"{distinct} distinct values, more than infer_schema.max_categories ({max_categories})"
        return Decision(name, None, "many_categories", detail)
    return Decision(name, "categorical", "text", f"{distinct} distinct values")


def _row_numbers(values: Any) -> bool:
    """1, 2, 3, ... (or 0, 1, 2, ...) in row order, perhaps with gaps left by a filter: a row index."""
    import numpy as np

    steps = np.diff(values)
    return len(values) > 2 and values[0] in (0, 1) and bool(np.all(steps >= 1)) and float(np.mean(steps == 1)) >= 0.9


def _date_objects(present: pd.Series) -> bool:
    """Date values (a file's DATE column reads as Python dates)."""
    import datetime

    return bool(present.head(2000).map(lambda value: isinstance(value, datetime.date)).all())


def _dates(present: pd.Series) -> bool:
    """Text that reads as dates (ISO 8601, as exports and DuckDB write them) at least DATE_SHARE of the time."""
    import pandas as pd

    sample = present.head(2000)
    if not sample.str.contains(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}", regex=True).all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="ISO8601")
    return bool(parsed.notna().mean() >= DATE_SHARE)


def _day(value: Any) -> str:
    return str(value)[:10]


def _listed(values: Any) -> str:
    return ", ".join(f"{float(value):g}" for value in values)


def widened_range(minimum: float, maximum: float) -> tuple[float, float]:
    """The contract's bounds for a numeric column observed in [minimum, maximum]: the observed range widened
    by its own width on each side, never across zero (counts, prices and ages stay >= 0; values that
    were all negative stay <= 0), rounded outwards to two significant digits.

    So a value just past the training range (age 80 when training saw 79) is valid, and a value far
    outside it (age 1,000, a negative count) is refused; monitoring reports the unusual ones.
    """
    width = maximum - minimum or abs(maximum) or 1.0
    low, high = minimum - width, maximum + width
    if minimum >= 0:
        low = max(low, 0.0)
    if maximum <= 0:
        high = min(high, 0.0)
    return _round(low, math.floor), _round(high, math.ceil)


def _round(value: float, direction: Any) -> float:
    if value == 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(abs(value))) - 1)
    return float(direction(value / scale) * scale)


def infer(frame: pd.DataFrame, target: str, task: str, max_categories: int, owner: str) -> Inference:
    """A first contract from the data, every column's decision, and the features that may leak the target.

    Every feature gets `owner` (the data source, until someone answers for it) and `pii: false` (to review).
    """
    if target not in frame.columns:
        raise StageError(f"target column {target!r} is not in the data; columns are: {', '.join(frame.columns)}.")
    target_column = infer_target(frame[target], target, task)
    decisions = tuple(decide(name, frame[name], max_categories) for name in frame.columns if name != target)
    features = tuple(column_of(decision, frame[decision.name], owner) for decision in decisions if decision.kept)
    if not features:
        left = ", ".join(f"{d.name} ({d.reason})" for d in decisions)
        raise StageError(f"no usable feature column found; left out: {left or 'none'}.")
    contract = Contract(features=features, target=target_column)
    return Inference(contract, decisions, tuple(possible_leaks(frame, contract, task)))


def infer_target(values: pd.Series, target: str, task: str) -> Column:
    import pandas as pd

    if values.isna().any():
        raise StageError(
            f"target column {target!r} has {int(values.isna().sum())} missing values: drop those rows at the source"
            ' (extract.file.where, e.g. "{target} IS NOT NULL", or the SQL query) or choose another target.'
        )
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise StageError(f"task is regression but target {target!r} is not numeric ({values.dtype}).")
        return NumericColumn(name=target, minimum=float(values.min()), maximum=float(values.max()))
    classes = sorted({category(value) for value in values.unique()}, key=_order)
    if task == "binary_classification" and len(classes) != 2:
        raise StageError(f"binary classification needs 2 classes in {target!r}, found {len(classes)}: {classes[:10]}.")
    if len(classes) < 2:
        raise StageError(f"classification needs at least 2 classes in {target!r}, found {classes}.")
    return categorical_column(target, tuple(classes))


def column_of(decision: Decision, series: pd.Series, owner: str) -> Column:
    """The contract column for a kept decision."""
    keys: dict[str, Any] = {"max_missing": missing_allowance(series), "owner": owner, "pii": False}
    if decision.kind == "datetime":
        return DatetimeColumn(name=decision.name, **keys)
    if decision.kind == "numeric":
        low, high = widened_range(float(series.min()), float(series.max()))
        return NumericColumn(name=decision.name, minimum=low, maximum=high, **keys)
    if decision.reason == "true/false":
        return CategoricalColumn(name=decision.name, categories=("False", "True"), **keys)
    categories = tuple(sorted({category(value) for value in series.dropna().unique()}, key=_order))
    return categorical_column(decision.name, categories, **keys)


def _order(label: Category) -> tuple[int, float, str]:
    """Integer codes in numeric order, before text in alphabetical order."""
    return (0, float(label), "") if isinstance(label, int) else (1, 0.0, str(label))


def missing_allowance(series: pd.Series) -> float:
    """Observed missing rate plus five points of slack, rounded up to whole percent."""
    observed = float(series.isna().mean())
    return 0.0 if observed == 0 else min(1.0, math.ceil((observed + 0.05) * 100) / 100)


def category(value: Any) -> Category:
    """A category as schema.yaml spells it: integer codes as int (also when read as 1.0), the rest as text."""
    value = plain(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else str(value)


def possible_leaks(frame: pd.DataFrame, contract: Contract, task: str) -> list[tuple[str, str]]:
    """Features that alone predict the target almost perfectly (a shallow tree, 3-fold CV): often a column
    computed from the target or recorded after it. Flagged for review, never dropped."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    rows = contract.coerce(frame).sample(n=min(LEAK_ROWS, len(frame)), random_state=0)
    target = rows[contract.target.name]
    regression = task == "regression"
    if regression:
        model: Any = DecisionTreeRegressor(max_depth=4, random_state=0)
        folds: Any = KFold(3, shuffle=True, random_state=0)
        scoring, bound, metric = "r2", LEAK_R2, "R²"
    else:
        if int(target.astype(str).value_counts().min()) < 3:
            return []
        target = target.astype(str)
        model = DecisionTreeClassifier(max_depth=4, random_state=0)
        folds = StratifiedKFold(3, shuffle=True, random_state=0)
        scoring, bound, metric = "balanced_accuracy", LEAK_BALANCED_ACCURACY, "balanced accuracy"
    leaks = []
    for column in contract.features:
        values = rows[column.name]
        if isinstance(column, CategoricalColumn):
            codes = values.astype(str).astype("category").cat.codes.to_numpy(dtype="float64")
            values_array = np.where(values.isna(), -1.0, codes)
        else:
            values_array = np.nan_to_num(values.to_numpy(dtype="float64"), nan=-1e18)
        scores = cross_val_score(model, values_array.reshape(-1, 1), target, cv=folds, scoring=scoring)
        if float(scores.mean()) >= bound:
            leaks.append((column.name, f"{metric} {scores.mean():.3f} on its own"))
    return leaks
