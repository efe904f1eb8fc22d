"""The input contract for raw rows: one definition, read from schema.yaml.

Each column kind is one class that holds its rule and turns it into what every consumer
needs: the check `validate` runs (pandera), the type of an API field (pydantic), the
vectorised row check of batch prediction, valid example values, and the values the model
sees. Training, batch prediction and the service therefore accept exactly the same rows.
Adding a kind means adding one class here and registering it in `column_from_dict`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .errors import StageError
from .files import read_yaml

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pandera.pandas as pa
    from pydantic import BaseModel

Category = str | int


@dataclass(frozen=True, kw_only=True)
class Column(ABC):
    """One column of the contract: a name, the rule of its kind, how many values may be missing, and who answers for it.

    `owner` (the team or source that answers for the feature), `pii` (personal data: never
    written to the prediction log) and `sensitive` (a group the model must serve as well as
    the others: its slices get a maximum gap in `accept`) are the feature's meta-level facts.
    """

    name: str
    max_missing: float = 0.0
    owner: str = ""
    pii: bool = False
    sensitive: bool = False

    kind: ClassVar[str]  # its `type:` in schema.yaml
    check_name: ClassVar[str]  # the rule's name in validation reports
    model_dtype: ClassVar[Literal["float64", "object"]]  # how the model sees the values

    @abstractmethod
    def conform(self, raw: pd.Series) -> tuple[pd.Series, pd.Series]:
        """The values as the model sees them, and a mask of the present values that break the rule.

        Vectorised: batch prediction runs it on every chunk, and validation through pandera.
        A value of the wrong type counts once, as breaking the rule (never also as a type error).
        """

    @abstractmethod
    def rule(self) -> str:
        """The rule in words, for a rejected row: 'age: not a number in [18, 90]'."""

    def problems(self, values: pd.Series, bad: pd.Series) -> pd.Series:
        """Why each bad row breaks the rule (`values` as `conform` gave them): the rule, unless the kind says more."""
        import pandas as pd

        return pd.Series(self.rule(), index=bad[bad].index, dtype=object)

    @abstractmethod
    def annotation(self) -> Any:
        """The pydantic type of one valid value (an API field, a feedback label)."""

    @abstractmethod
    def examples(self) -> list[Any]:
        """Valid values that reach every edge of the rule."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """The kind's own keys in schema.yaml."""

    def to_dict(self) -> dict[str, Any]:
        data = {"type": self.kind, **self.spec()}
        if self.max_missing:
            data["max_missing"] = self.max_missing
        return data

    def meta(self) -> dict[str, Any]:
        """The feature's meta-level keys in schema.yaml."""
        return {"owner": self.owner, "pii": self.pii} | ({"sensitive": True} if self.sensitive else {})

    def field_annotation(self) -> Any:
        """The type of this column in a request: None is allowed where values may be missing."""
        annotation = self.annotation()
        return annotation | None if self.max_missing else annotation

    def request_array(self, values: list[Any]) -> np.ndarray:
        """Validated request values (None for missing) as the model sees them."""
        import numpy as np

        return np.array([np.nan if value is None else value for value in values], dtype=self.model_dtype)

    def model_values(self, values: pd.Series) -> np.ndarray:
        """Already valid values as the model sees them: float64, or objects with NaN for missing (never None)."""
        import numpy as np

        return values.astype(self.model_dtype).to_numpy(dtype=self.model_dtype, na_value=np.nan)

    def pandera_column(self) -> pa.Column:
        """The pandera column: present, the kind's rule on every value, and the missing-value limit."""
        import pandera.pandas as pa

        rule = pa.Check(lambda series: ~self.conform(series)[1], name=self.check_name)
        limit = self.max_missing
        missing = pa.Check(
            lambda series: bool(series.isna().mean() <= limit),
            ignore_na=False,
            name="max_missing",
            error=f"at most {limit:.0%} missing values",
        )
        # No dtype: `conform` judges the type, so one bad value is reported once.
        return pa.Column(checks=[rule, missing], nullable=limit > 0, required=True)


@dataclass(frozen=True, kw_only=True)
class NumericColumn(Column):
    """A number in a closed range [minimum, maximum]."""

    minimum: float
    maximum: float

    kind = "numeric"
    check_name = "in_range"
    model_dtype = "float64"

    def conform(self, raw: pd.Series) -> tuple[pd.Series, pd.Series]:
        import pandas as pd

        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        return values, raw.notna() & (_booleans(raw) | ~values.between(self.minimum, self.maximum))

    def rule(self) -> str:
        return f"{self.name}: not a number in [{self.minimum:g}, {self.maximum:g}]"

    def problems(self, values: pd.Series, bad: pd.Series) -> pd.Series:
        """'age: not a number' for text, 'age: 85 is out of range [19, 79]' for a number past a bound."""
        import numpy as np
        import pandas as pd

        found = values[bad]
        outside = found.map(
            lambda value: f"{self.name}: {value:g} is out of range [{self.minimum:g}, {self.maximum:g}]"
        )
        reasons = np.where(found.isna() | ~np.isfinite(found.fillna(0)), f"{self.name}: not a number", outside)
        return pd.Series(reasons, index=found.index, dtype=object)

    def annotation(self) -> Any:
        from typing import Annotated

        from pydantic import Field

        # strict: JSON true/false and text are not numbers here, whatever Python thinks
        return Annotated[float, Field(ge=self.minimum, le=self.maximum, allow_inf_nan=False, strict=True)]

    def examples(self) -> list[Any]:
        return [self.minimum, self.maximum, (self.minimum + self.maximum) / 2]

    def spec(self) -> dict[str, Any]:
        return {"min": self.minimum, "max": self.maximum}


@dataclass(frozen=True, kw_only=True)
class CategoricalColumn(Column):
    """One of a list of text values."""

    categories: tuple[Category, ...]

    kind = "categorical"
    check_name = "isin"
    model_dtype = "object"

    def conform(self, raw: pd.Series) -> tuple[pd.Series, pd.Series]:
        import numpy as np

        absent = raw.isna()
        values = raw.astype(str).where(~absent, np.nan).astype(object)  # compared as text, missing kept missing
        return values, ~absent & ~values.isin([str(category) for category in self.categories])

    def rule(self) -> str:
        return f"{self.name}: not one of {list(self.categories)}"

    def annotation(self) -> Any:
        from typing import Literal

        return Literal[tuple(self.categories)]

    def examples(self) -> list[Any]:
        return list(self.categories)

    def spec(self) -> dict[str, Any]:
        return {"categories": list(self.categories)}


@dataclass(frozen=True, kw_only=True)
class IntegerCategoricalColumn(CategoricalColumn):
    """One of a list of integer codes (ratings, levels): the model sees 2, never "2" or True."""

    def conform(self, raw: pd.Series) -> tuple[pd.Series, pd.Series]:
        import pandas as pd

        absent = raw.isna()
        numbers = pd.to_numeric(raw, errors="coerce")
        valid = numbers.isin(self.categories) & ~_booleans(raw)
        values = numbers.where(valid).astype(object).map(lambda value: value if value != value else int(value))
        return values, ~absent & ~valid

    def annotation(self) -> Any:
        from typing import Annotated, Literal

        from pydantic import BeforeValidator

        # JSON true is not 1 here, although Python says True == 1.
        return Annotated[Literal[tuple(self.categories)], BeforeValidator(_not_a_boolean)]


@dataclass(frozen=True, kw_only=True)
class DatetimeColumn(Column):
    """A date or a timestamp: ISO 8601 text ("2024-05-31", "2024-05-31T14:05:00"), or a date value in a file.

    The model sees seconds since 1970-01-01 (UTC; a time without a zone is taken as UTC) and derives
    its calendar features from them inside the artifact (features.DateParts), so the service and batch
    prediction get them from the same Pipeline. Any real date is valid: monitoring watches for unusual ones.
    """

    kind = "datetime"
    check_name = "is_datetime"
    model_dtype = "float64"

    def conform(self, raw: pd.Series) -> tuple[pd.Series, pd.Series]:
        values = _epoch_seconds(raw)
        return values, raw.notna() & values.isna()

    def rule(self) -> str:
        return f"{self.name}: not a date or timestamp (write ISO 8601: 2024-05-31 or 2024-05-31T14:05:00)"

    def annotation(self) -> Any:
        from datetime import date, datetime

        return datetime | date

    def examples(self) -> list[Any]:
        return ["1970-01-01", "2024-02-29T23:59:59", "2099-12-31"]

    def spec(self) -> dict[str, Any]:
        return {}

    def request_array(self, values: list[Any]) -> np.ndarray:
        import pandas as pd

        return _epoch_seconds(pd.Series(values, dtype=object)).to_numpy(dtype="float64", na_value=float("nan"))


def _epoch_seconds(raw: pd.Series) -> pd.Series:
    """Seconds since 1970-01-01 UTC of dates, timestamps or ISO 8601 text; NaN where missing or not a date."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw.astype("float64")  # already seconds (the model's view, as batch checks see it again)
    if pd.api.types.is_datetime64_any_dtype(raw):
        stamps = raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw.dt.tz_convert("UTC")
        return (stamps - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(seconds=1)
    text = raw.map(lambda value: value.isoformat() if hasattr(value, "isoformat") else value)
    stamps = pd.to_datetime(
        text.where(text.map(lambda value: isinstance(value, str))), errors="coerce", utc=True, format="ISO8601"
    )
    seconds = (stamps - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(seconds=1)
    return pd.Series(np.asarray(seconds, dtype="float64"), index=raw.index)


def _booleans(raw: pd.Series) -> pd.Series:
    """Where `raw` holds True or False: never a number or a code here, although Python says True == 1."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(raw):
        return raw.notna()
    if raw.dtype != object:
        return pd.Series(False, index=raw.index)
    return raw.map(lambda value: isinstance(value, (bool, np.bool_))).astype(bool)


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean is not one of the allowed values")
    return value


def categorical_column(name: str, categories: tuple[Category, ...], **keys: Any) -> CategoricalColumn:
    """The categorical kind that fits the values: integer codes stay integers."""
    integers = all(isinstance(category, int) and not isinstance(category, bool) for category in categories)
    kind = IntegerCategoricalColumn if integers else CategoricalColumn
    return kind(name=name, categories=categories, **keys)


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
        return [column.name for column in self.features if isinstance(column, NumericColumn)]

    @property
    def categorical_features(self) -> list[str]:
        return [column.name for column in self.features if isinstance(column, CategoricalColumn)]

    @property
    def datetime_features(self) -> list[str]:
        return [column.name for column in self.features if isinstance(column, DatetimeColumn)]

    @property
    def pii_features(self) -> list[str]:
        return [column.name for column in self.features if column.pii]

    @property
    def sensitive_features(self) -> list[str]:
        return [column.name for column in self.features if column.sensitive]

    @property
    def classes(self) -> list[Category]:
        return list(self.target.categories) if isinstance(self.target, CategoricalColumn) else []

    def pandera_schema(self) -> pa.DataFrameSchema:
        """The pandera schema `validate` runs: every column present, every value within its kind's rule."""
        import pandera.pandas as pa

        columns = {column.name: column.pandera_column() for column in (*self.features, self.target)}
        return pa.DataFrameSchema(columns, strict=False, name="raw rows")

    def coerce(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The contract's columns, in order, typed as the contract says; the rows must be valid."""
        import pandas as pd

        columns = {}
        for column in (*self.features, self.target):
            values, bad = column.conform(frame[column.name])
            if bad.any():
                raise StageError(f"column {column.name!r} breaks the contract: run `validate` for the report.")
            columns[column.name] = values
        return pd.DataFrame(columns, index=frame.index)

    def split_xy(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        return self.features_of(frame), frame[self.target.name]

    def features_of(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of valid rows in contract order, as the model always sees them.

        Training, batch prediction and the API all pass through here, `frame()` or
        `check_rows()`, so the fitted pipeline only ever sees one representation.
        """
        import pandas as pd

        columns = {column.name: column.model_values(frame[column.name]) for column in self.features}
        return pd.DataFrame(columns, index=frame.index)

    def columns(self, records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Validated request records as the model sees them, one array per feature (the request path's form)."""
        return {
            column.name: column.request_array([record.get(column.name) for record in records])
            for column in self.features
        }

    def frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        """Validated request records as the model sees them, as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.columns(records))

    def example_records(self) -> list[dict[str, Any]]:
        """Valid feature records that reach every edge of every rule and, where allowed, missing values."""
        choices = {column.name: column.examples() + [None] * bool(column.max_missing) for column in self.features}
        count = max(len(values) for values in choices.values())
        return [{name: values[i % len(values)] for name, values in choices.items()} for i in range(count)]

    def examples(self) -> pd.DataFrame:
        """`example_records()` as the model sees them."""
        return self.frame(self.example_records())

    def check_rows(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        """Vectorised row checks for batch prediction: valid rows as the model sees them, and a reason per bad row."""
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
            values, bad = column.conform(raw)
            absent = raw.isna()
            if not column.max_missing and absent.any():
                reasons[absent] = reasons[absent] + f"{column.name}: missing; "
            if bad.any():
                reasons[bad] = reasons[bad] + column.problems(values, bad) + "; "
            typed[column.name] = values
        valid = reasons == ""
        clean = pd.DataFrame(typed, index=frame.index)[valid]
        return self.features_of(clean), reasons[~valid].str.rstrip("; ")

    def record_model(self) -> type[BaseModel]:
        """The API's request model for one row: every feature required, typed and bounded as the contract says."""
        from pydantic import ConfigDict, Field, create_model

        # Python names for the fields, the contract's column names on the wire.
        fields: dict[str, Any] = {
            f"feature_{index}": (column.field_annotation(), Field(alias=column.name))
            for index, column in enumerate(self.features)
        }
        return create_model("Record", __config__=ConfigDict(extra="forbid", title="Record"), **fields)

    def to_yaml(self, header: str = "", notes: dict[str, str] | None = None) -> str:
        """schema.yaml's text: the header, the target, then each feature with its note (a comment) above it."""
        import yaml

        def dump(data: dict[str, Any]) -> str:
            return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=1_000_000, allow_unicode=True)

        lines = [header + dump({"target": {"name": self.target.name, **self.target.to_dict()}}).rstrip(), "features:"]
        for column in self.features:
            if notes and column.name in notes:
                lines.append(f"  # {notes[column.name]}")
            lines += ["  " + line for line in dump({column.name: column.to_dict() | column.meta()}).splitlines()]
        return "\n".join(lines) + "\n"


def column_from_dict(name: str, data: Any, source: Path, meta: dict[str, Any] | None = None) -> Column:
    """One column from its schema.yaml entry; every mistake is one readable line."""
    if not isinstance(data, dict) or data.get("type") not in ("numeric", "categorical", "datetime"):
        raise StageError(f"{source}: column {name!r} needs 'type:' numeric, categorical or datetime.")
    max_missing = float(data.get("max_missing", 0.0))
    if not 0.0 <= max_missing <= 1.0:
        raise StageError(f"{source}: column {name!r} has max_missing {max_missing}, not in [0, 1].")
    keys = {"max_missing": max_missing, **(meta or {})}
    if data["type"] == "numeric":
        try:
            minimum, maximum = float(data["min"]), float(data["max"])
        except (KeyError, TypeError, ValueError):
            raise StageError(f"{source}: numeric column {name!r} needs numbers 'min' and 'max'.") from None
        if minimum > maximum:
            raise StageError(f"{source}: column {name!r} has min {minimum} above max {maximum}.")
        return NumericColumn(name=name, minimum=minimum, maximum=maximum, **keys)
    if data["type"] == "datetime":
        return DatetimeColumn(name=name, **keys)
    categories = data.get("categories")
    if not isinstance(categories, list) or not categories:
        raise StageError(f"{source}: categorical column {name!r} needs a non-empty list 'categories'.")
    return categorical_column(name, tuple(categories), **keys)


def feature_meta(name: str, data: Any, source: Path) -> dict[str, Any]:
    """A feature's meta-level facts; a feature without an owner or a `pii` answer is refused."""
    entry = data if isinstance(data, dict) else {}
    owner, pii, sensitive = entry.get("owner"), entry.get("pii"), entry.get("sensitive", False)
    if not isinstance(owner, str) or not owner.strip():
        raise StageError(f"{source}: feature {name!r} needs an 'owner' (the team or source that answers for it).")
    if not isinstance(pii, bool):
        raise StageError(f"{source}: feature {name!r} needs 'pii: true' or 'pii: false' (is it personal data?).")
    if not isinstance(sensitive, bool):
        raise StageError(f"{source}: feature {name!r} has 'sensitive: {sensitive}'; it must be true or false.")
    return {"owner": owner.strip(), "pii": pii, "sensitive": sensitive}


def load_contract(path: Path = Path("schema.yaml")) -> Contract:
    """Read schema.yaml; every mistake in it becomes one readable line."""
    data = read_yaml(path, "it is the input contract (dvc repro writes one from the data).")
    if not isinstance(data, dict) or not isinstance(data.get("features"), dict):
        raise StageError(f"{path} needs a 'target' mapping and a 'features' mapping.")
    target_data = dict(data.get("target") or {})
    target_name = target_data.pop("name", None)
    if not target_name:
        raise StageError(f"{path}: target needs a 'name'.")
    target = column_from_dict(str(target_name), target_data, path)
    if target.max_missing:
        raise StageError(f"{path}: the target may not have missing values (max_missing must be 0).")
    features = tuple(
        column_from_dict(str(name), spec, path, feature_meta(str(name), spec, path))
        for name, spec in data["features"].items()
    )
    if not features:
        raise StageError(f"{path}: 'features' is empty; the model needs at least one feature.")
    if target.name in {column.name for column in features}:
        raise StageError(f"{path}: {target.name!r} is both the target and a feature.")
    return Contract(features=features, target=target)
