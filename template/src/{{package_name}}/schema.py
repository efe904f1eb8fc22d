"""The input contract for raw rows: one definition, read from schema.yaml.

Validation in the pipeline, the feature pipeline and every later consumer of raw rows
derive from this contract, so training and serving accept exactly the same inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from .errors import StageError

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa
    from pydantic import BaseModel

Category = str | int


@dataclass(frozen=True)
class Column:
    """One column of the contract: numeric with a range, or categorical with its values."""

    name: str
    kind: Literal["numeric", "categorical"]
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[Category, ...] = ()
    max_missing: float = 0.0

    @property
    def integer_categories(self) -> bool:
        return bool(self.categories) and all(isinstance(c, int) for c in self.categories)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind}
        if self.kind == "numeric":
            data |= {"min": self.minimum, "max": self.maximum}
        else:
            data["categories"] = list(self.categories)
        if self.max_missing:
            data["max_missing"] = self.max_missing
        return data


@dataclass(frozen=True)
class Contract:
    """The features a model takes and the target it learns."""

    features: tuple[Column, ...]
    target: Column

    @property
    def feature_names(self) -> list[str]:
        return [column.name for column in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [column.name for column in self.features if column.kind == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [column.name for column in self.features if column.kind == "categorical"]

    @property
    def classes(self) -> list[Category]:
        return list(self.target.categories)

    def pandera_schema(self) -> pa.DataFrameSchema:
        """The pandera schema that checks types, ranges, categories and missing values."""
        import pandera.pandas as pa

        columns = {column.name: _pandera_column(column) for column in (*self.features, self.target)}
        return pa.DataFrameSchema(columns, coerce=True, strict=False, name="raw rows")

    def coerce(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The contract's columns, in order, with the contract's types (rows must be valid)."""
        selected = frame[[*self.feature_names, self.target.name]]
        return self.pandera_schema().validate(selected, lazy=True)

    def split_xy(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        return self.features_of(frame), frame[self.target.name]

    def features_of(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns in contract order, typed as the model always sees them.

        Numeric columns as float64, categorical ones as Python objects with NaN for missing
        values (never None or pandas' NA): training, batch prediction and the API all pass
        through here or `frame()`, so the fitted pipeline only ever sees one representation.
        """
        import numpy as np
        import pandas as pd

        columns = {}
        for column in self.features:
            values = frame[column.name]
            if column.kind == "numeric":
                columns[column.name] = values.to_numpy(dtype="float64", na_value=np.nan)
            else:
                columns[column.name] = values.astype(object).to_numpy(dtype=object, na_value=np.nan)
        return pd.DataFrame(columns, index=frame.index)

    def frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        """Feature rows as the model expects them: contract order and types (numeric float, categorical text).

        Built column by column from NumPy arrays: several times faster than a frame of records
        plus a type cast, which matters on the request path.
        """
        import numpy as np
        import pandas as pd

        columns = {}
        for column in self.features:
            values = [np.nan if record.get(column.name) is None else record[column.name] for record in records]
            columns[column.name] = np.array(values, dtype="float64" if column.kind == "numeric" else object)
        return pd.DataFrame(columns)

    def examples(self) -> pd.DataFrame:
        """Valid feature rows that reach every category, both ends of every range and, where allowed, missing values."""
        choices = {}
        for column in self.features:
            if column.kind == "numeric":
                low, high = column.minimum or 0.0, column.maximum or 0.0
                values: list[Any] = [low, high, (low + high) / 2]
            else:
                values = list(column.categories)
            choices[column.name] = values + [None] * bool(column.max_missing)
        count = max(len(values) for values in choices.values())
        return self.frame([{name: values[i % len(values)] for name, values in choices.items()} for i in range(count)])

    def check_rows(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        """Vectorised row checks for batch prediction: the valid rows, typed, and a reason per bad row.

        The same rules as the pandera schema, per row rather than per column: a missing
        column, a value of the wrong type, out of range, not an allowed category, or missing
        where the contract allows no missing value.
        """
        import numpy as np
        import pandas as pd

        missing = [name for name in self.feature_names if name not in frame.columns]
        if missing:
            raise StageError(
                f"input has no column {', '.join(missing)}; the contract needs: {', '.join(self.feature_names)}."
            )
        reasons = pd.Series("", index=frame.index, dtype=object)
        typed = {}
        for column in self.features:
            raw = frame[column.name]
            absent = raw.isna()
            if column.kind == "numeric":
                values = pd.to_numeric(raw, errors="coerce").astype("float64")
                wrong = values.isna() & ~absent
                bad = wrong | ~(values.between(column.minimum, column.maximum) | values.isna())
                rule = f"{column.name}: not a number in [{column.minimum:g}, {column.maximum:g}]"
            else:
                # Vectorised: compare as text, keep missing values missing.
                values = raw.astype(str).where(~absent, np.nan)
                bad = ~(values.isin([str(category) for category in column.categories]) | absent)
                rule = f"{column.name}: not one of {list(column.categories)}"
                if column.integer_categories:  # back to integers, as the model saw them in training
                    values = values.map({str(category): category for category in column.categories})
            if not column.max_missing and absent.any():
                reasons[absent] = reasons[absent] + f"{column.name}: missing; "
            if bad.any():
                reasons[bad] = reasons[bad] + rule + "; "
            typed[column.name] = values
        valid = reasons == ""
        clean = self.features_of(pd.DataFrame(typed, index=frame.index)[valid])
        return clean, reasons[~valid].str.rstrip("; ")

    def record_model(self) -> type[BaseModel]:
        """The API's request model for one row: every feature required, typed and bounded as the contract says."""
        from typing import Annotated, Literal

        from pydantic import BeforeValidator, ConfigDict, Field, create_model

        fields: dict[str, Any] = {}
        for index, column in enumerate(self.features):
            if column.kind == "numeric":
                annotation: Any = float
                # strict: JSON true/false is not a number here, whatever Python thinks
                constraint = Field(
                    alias=column.name, ge=column.minimum, le=column.maximum, allow_inf_nan=False, strict=True
                )
            elif column.integer_categories:
                # Integers stay integers, as the model saw them in training; JSON true is not 1.
                annotation = Annotated[Literal[tuple(column.categories)], BeforeValidator(_not_a_boolean)]
                constraint = Field(alias=column.name)
            else:
                annotation = Literal[tuple(str(category) for category in column.categories)]
                constraint = Field(alias=column.name)
            if column.max_missing:
                annotation = annotation | None
            # Python names for the fields, the contract's column names on the wire.
            fields[f"feature_{index}"] = (annotation, constraint)
        return create_model("Record", __config__=ConfigDict(extra="forbid", title="Record"), **fields)

    def target_annotation(self) -> Any:
        """The pydantic type of a valid target value (feedback labels are checked against it)."""
        from typing import Annotated, Literal

        from pydantic import BeforeValidator, Field

        if self.target.kind == "numeric":
            bounds = Field(ge=self.target.minimum, le=self.target.maximum, allow_inf_nan=False, strict=True)
            return Annotated[float, bounds]
        # JSON true/false must not pass for the classes 1/0.
        return Annotated[Literal[tuple(self.target.categories)], BeforeValidator(_not_a_boolean)]

    def to_yaml(self, header: str = "") -> str:
        body = {
            "target": {"name": self.target.name, **self.target.to_dict()},
            "features": {column.name: column.to_dict() for column in self.features},
        }
        return header + yaml.safe_dump(body, sort_keys=False, default_flow_style=None)


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean is not one of the allowed values")
    return value


def _pandera_column(column: Column) -> pa.Column:
    import pandera.pandas as pa

    checks = [_max_missing_check(column.max_missing)]
    if column.kind == "numeric":
        checks.append(pa.Check.in_range(column.minimum, column.maximum))
        dtype: Any = "float64"
    else:
        checks.append(pa.Check.isin(list(column.categories)))
        dtype = "int64" if column.integer_categories else str
    return pa.Column(dtype, checks, nullable=column.max_missing > 0, coerce=True, required=True)


def _max_missing_check(limit: float) -> pa.Check:
    import pandera.pandas as pa

    return pa.Check(
        lambda series: bool(series.isna().mean() <= limit),
        ignore_na=False,
        name="max_missing",
        error=f"at most {limit:.0%} missing values",
    )


def _column_from_dict(name: str, data: Any, source: Path) -> Column:
    if not isinstance(data, dict) or data.get("type") not in ("numeric", "categorical"):
        raise StageError(f"{source}: column {name!r} needs 'type: numeric' or 'type: categorical'.")
    max_missing = float(data.get("max_missing", 0.0))
    if not 0.0 <= max_missing <= 1.0:
        raise StageError(f"{source}: column {name!r} has max_missing {max_missing}, not in [0, 1].")
    if data["type"] == "numeric":
        try:
            minimum, maximum = float(data["min"]), float(data["max"])
        except (KeyError, TypeError, ValueError):
            raise StageError(f"{source}: numeric column {name!r} needs numbers 'min' and 'max'.") from None
        if minimum > maximum:
            raise StageError(f"{source}: column {name!r} has min {minimum} above max {maximum}.")
        return Column(name, "numeric", minimum=minimum, maximum=maximum, max_missing=max_missing)
    categories = data.get("categories")
    if not isinstance(categories, list) or not categories:
        raise StageError(f"{source}: categorical column {name!r} needs a non-empty list 'categories'.")
    return Column(name, "categorical", categories=tuple(categories), max_missing=max_missing)


def load_contract(path: Path = Path("schema.yaml")) -> Contract:
    """Read schema.yaml; every mistake in it becomes one readable line."""
    if not path.exists():
        raise StageError(f"{path} not found: it is the input contract (dvc repro writes one from the data).")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StageError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("features"), dict):
        raise StageError(f"{path} needs a 'target' mapping and a 'features' mapping.")
    target_data = dict(data.get("target") or {})
    target_name = target_data.pop("name", None)
    if not target_name:
        raise StageError(f"{path}: target needs a 'name'.")
    target = _column_from_dict(str(target_name), target_data, path)
    if target.max_missing:
        raise StageError(f"{path}: the target may not have missing values (max_missing must be 0).")
    features = tuple(_column_from_dict(str(name), spec, path) for name, spec in data["features"].items())
    if not features:
        raise StageError(f"{path}: 'features' is empty; the model needs at least one feature.")
    if target.name in {column.name for column in features}:
        raise StageError(f"{path}: {target.name!r} is both the target and a feature.")
    return Contract(features=features, target=target)


def infer_contract(frame: pd.DataFrame, target: str, task: str, max_categories: int) -> tuple[Contract, list[str]]:
    """A first contract from the data: observed ranges, categories and missing rates.

    Returns the contract and the columns it leaves out (identifiers, free text, dates).
    """
    import pandas as pd

    if target not in frame.columns:
        raise StageError(f"target column {target!r} is not in the data; columns are: {', '.join(frame.columns)}.")
    target_values = frame[target]
    if target_values.isna().any():
        raise StageError(f"target column {target!r} has {int(target_values.isna().sum())} missing values.")
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(target_values):
            raise StageError(f"task is regression but target {target!r} is not numeric ({target_values.dtype}).")
        target_column = _numeric_column(target, target_values, max_missing=0.0)
    else:
        classes = sorted(_plain(value) for value in target_values.unique())
        if task == "binary_classification" and len(classes) != 2:
            raise StageError(
                f"binary classification needs 2 classes in {target!r}, found {len(classes)}: {classes[:10]}."
            )
        if len(classes) < 2:
            raise StageError(f"classification needs at least 2 classes in {target!r}, found {classes}.")
        target_column = Column(target, "categorical", categories=tuple(classes))

    features: list[Column] = []
    ignored: list[str] = []
    for name in frame.columns:
        if name == target:
            continue
        series = frame[name]
        max_missing = _missing_allowance(series)
        if pd.api.types.is_bool_dtype(series):
            features.append(Column(name, "categorical", categories=("False", "True"), max_missing=max_missing))
        elif pd.api.types.is_numeric_dtype(series) and series.notna().any():
            features.append(_numeric_column(name, series, max_missing))
        elif _is_text(series) and 0 < series.nunique() <= max_categories:
            categories = tuple(sorted(str(value) for value in series.dropna().unique()))
            features.append(Column(name, "categorical", categories=categories, max_missing=max_missing))
        else:
            ignored.append(name)
    if not features:
        raise StageError(f"no usable feature column found; left out: {', '.join(ignored) or 'none'}.")
    return Contract(features=tuple(features), target=target_column), ignored


def _numeric_column(name: str, series: pd.Series, max_missing: float) -> Column:
    return Column(name, "numeric", float(series.min()), float(series.max()), max_missing=max_missing)


def _missing_allowance(series: pd.Series) -> float:
    """Observed missing rate plus five points of slack, rounded up to whole percent."""
    observed = float(series.isna().mean())
    return 0.0 if observed == 0 else min(1.0, math.ceil((observed + 0.05) * 100) / 100)


def _is_text(series: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_string_dtype(series) or isinstance(series.dtype, pd.CategoricalDtype))


def _plain(value: Any) -> Category:
    """numpy scalars to plain int or str, so the YAML stays readable."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else str(value)
