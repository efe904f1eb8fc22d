"""Stage extract: read the source (sample, file or SQL) into data/raw/ as Parquet.

The file source never passes through pandas: DuckDB reads the files, applies `where` and the
sample inside its scan, appends the feedback rows and writes data/raw itself, within
`extract.file.memory_limit` (spilling to disk beyond it), so inputs larger than memory extract.

Values are read as they are written: the markers of `extract.missing_values` ("NA", "N/A",
"null", empty, ...) are missing, so a numeric column with them stays numeric, and text keeps
its spelling ("yes"/"no" stay text, never booleans).
"""

from __future__ import annotations

import glob
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_runtime.errors import StageError
from mlops_runtime.files import read_parquet, write_parquet

if TYPE_CHECKING:
    from collections.abc import Sequence

    import duckdb
    import pandas as pd
    from mlops_runtime.params import FileSource, Params, SqlSource
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    source = params.extract.source
    feedback = paths.feedback_rows if params.extract.feedback and paths.feedback_rows.exists() else None
    markers = params.extract.missing_values
    if source == "file":
        assert params.extract.file is not None  # checked by Params
        return extract_files(params.extract.file, paths, feedback, markers)
    if source == "sample":
        from ..sample_data import generate

        sample = params.extract.sample
        assert sample is not None  # checked by Params
        frame = generate(params.task, sample.rows, sample.seed, sample.drift)
    else:
        assert params.extract.sql is not None
        frame = as_written(read_sql(params.extract.sql), markers)
    return write_frame(frame, source, feedback, paths.raw)


def write_frame(frame: pd.DataFrame, source: str, feedback: Path | None, output: Path) -> dict[str, Any]:
    """The sample and sql sources: rows in memory, plus the labelled feedback rows (the source's columns only)."""
    import pandas as pd

    if frame.empty:
        raise StageError(f"the {source} source returned no rows.")
    labelled = read_parquet(feedback) if feedback is not None else None
    if labelled is not None:
        frame = pd.concat(
            [frame, labelled[[column for column in frame.columns if column in labelled]]], ignore_index=True
        )
    write_parquet(frame, output)
    added = 0 if labelled is None else len(labelled)
    return {"rows": len(frame), "columns": len(frame.columns), "feedback_rows": added, "output": str(output)}


def as_written(frame: pd.DataFrame, markers: Sequence[str]) -> pd.DataFrame:
    """Text cells that are missing-value markers become missing; a text column of numbers then becomes numeric."""
    import pandas as pd

    for name in frame.columns:
        if not pd.api.types.is_object_dtype(frame[name]) and not pd.api.types.is_string_dtype(frame[name]):
            continue
        text = frame[name].astype(object)
        present = text.notna()
        marked = present & text.astype(str).str.strip().isin(markers)
        cleaned = text.where(~marked)
        numbers = pd.to_numeric(cleaned, errors="coerce")
        if cleaned.notna().any() and numbers.notna().sum() == cleaned.notna().sum():
            frame[name] = numbers.astype("float64")
        elif marked.any():
            frame[name] = cleaned
    return frame


def extract_files(
    source: FileSource, paths: Paths, feedback: Path | None, markers: Sequence[str] = ()
) -> dict[str, Any]:
    """CSV or Parquet files (a path or a glob) to data/raw, DuckDB end to end, in bounded memory."""
    import duckdb

    files = matching_files(source, paths.root)
    paths.raw.parent.mkdir(parents=True, exist_ok=True)
    # Spill files and the partial output live next to data/raw (not in /tmp, often a RAM disk);
    # data/raw is replaced only once the whole extract has succeeded.
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=paths.raw.parent) as scratch:
        # Insertion order kept (DuckDB's default, stated because it matters): the same files give the same
        # data/raw byte for byte, so DVC re-runs nothing downstream when the rows have not changed.
        # The in_clause optimizer turns the missing-value markers' list into a join, which loses the order.
        connection = duckdb.connect(
            config={
                "memory_limit": source.memory_limit,
                "temp_directory": scratch,
                "preserve_insertion_order": True,
                "disabled_optimizers": "in_clause",
            }
        )
        with connection:
            scan_source = reader(files, markers)
            columns = source_columns(connection, scan_source, source.path)
            scan = f"FROM {scan_source} AS source_row" + (f" WHERE ({source.where})" if source.where else "")
            check_where(connection, scan, source.where)
            partial = Path(scratch) / paths.raw.name
            try:
                matching = count(connection, f"SELECT count(*) {scan}")  # from the footers alone without `where`
                if not matching:
                    condition = f" where {source.where}" if source.where else ""
                    raise StageError(f"the file source returned no rows{condition} (extract.file).")
                query = source_query(columns, scan, source, matching, markers)
                added = 0
                if feedback is not None:
                    query, added = with_feedback(connection, query, columns, feedback)
                rows = count(connection, f"COPY ({query}) TO {quoted(str(partial))} (FORMAT parquet)")
            except duckdb.Error as error:
                raise StageError(f"cannot extract {source.path}: {first_line(error)}") from None
        os.replace(partial, paths.raw)
    return {
        "rows": rows,
        "columns": len(columns),
        "source_rows": matching,  # rows that pass `where`, before the sample
        "feedback_rows": added,
        "output": str(paths.raw),
    }


def matching_files(source: FileSource, root: Path) -> list[str]:
    """The files `extract.file` names, sorted (a fixed order keeps the output identical between runs).

    `path` is a file, or a folder whose files matching `pattern` are read; a glob in `path` (as
    projects rendered before `pattern` wrote it) still works.
    """
    base = Path(source.path) if os.path.isabs(source.path) else root / source.path
    named = f"extract.file.path {source.path!r}"
    if source.pattern is not None:
        if not base.is_dir():
            raise StageError(f"{named} is not a folder (with extract.file.pattern {source.pattern!r}).")
        named += f" and pattern {source.pattern!r}"
        base = base / source.pattern
    files = sorted(name for name in glob.glob(str(base), recursive=True) if os.path.isfile(name))
    if not files:
        raise StageError(f"no file matches {named}: put your data there, or change extract.file in params.yaml.")
    return files


def source_columns(connection: duckdb.DuckDBPyConnection, scan_source: str, path: str) -> dict[str, str]:
    """Column name -> DuckDB type of the source, read from the files' headers or footers only."""
    import duckdb

    try:
        described = connection.execute(f"DESCRIBE SELECT * FROM {scan_source}").fetchall()
    except duckdb.Error as error:
        raise StageError(f"cannot read extract.file.path {path!r}: {first_line(error)}") from None
    return {str(name): str(kind) for name, kind, *_ in described}


# Types DuckDB may give a CSV column. No BOOLEAN: "yes"/"no" and "True"/"False" stay as the file spells them.
CSV_TYPES = ("BIGINT", "DOUBLE", "DATE", "TIMESTAMP", "VARCHAR")


def reader(files: list[str], markers: Sequence[str] = ()) -> str:
    """The DuckDB table function that reads `files`; in CSVs the `markers` are missing values."""
    names = f"[{', '.join(quoted(name) for name in files)}]"
    if all(name.lower().endswith(".parquet") for name in files):
        return f"read_parquet({names})"
    options = [
        f"auto_type_candidates = [{', '.join(quoted(kind) for kind in CSV_TYPES)}]",
        "union_by_name = true",  # every file's header and types count, not only the first file's
    ]
    if markers:
        options.append(f"nullstr = [{', '.join(quoted(marker) for marker in markers)}]")
    return f"read_csv({names}, {', '.join(options)})"


def source_column(name: str, kind: str, markers: Sequence[str]) -> str:
    """One column of the SELECT: decimals as floats (as pandas and the pipeline expect numbers), markers in
    text columns (of Parquet files: CSVs had them removed as they were read) as missing."""
    column = identifier(name)
    if kind.startswith("DECIMAL"):
        return f"CAST({column} AS DOUBLE) AS {column}"
    if kind == "VARCHAR" and markers:
        listed = ", ".join(quoted(marker) for marker in markers)
        return f"CASE WHEN trim({column}) IN ({listed}) THEN NULL ELSE {column} END AS {column}"
    return column


def source_query(
    columns: dict[str, str], scan: str, source: FileSource, matching: int, markers: Sequence[str] = ()
) -> str:
    """One SELECT over the scan (`where` included), sampled when `sample_rows` asks for fewer than `matching` rows.

    The sample keeps the `sample_rows` rows with the smallest hash of (row, seed): unlike DuckDB's
    reservoir sample, repeatable with any number of threads (DVC needs identical outputs), and a row
    stays in or out when files are added, renamed or reordered. Identical rows share their fate.
    """
    selected = ", ".join(source_column(name, kind, markers) for name, kind in columns.items())
    query = f"SELECT {selected} {scan}"
    wanted = source.sample_rows
    if wanted is None or wanted >= matching:
        return query
    key = f"hash(source_row, {int(source.seed)})"
    # Only rows whose key falls in the lowest share of the hash range reach the sort, a share sized so
    # that at least `wanted` rows pass but for a 1-in-10^15 chance: the sort stays small (and in memory)
    # however many rows the scan reads. Ties (hash collisions) are broken by the row itself.
    threshold = key_threshold(wanted, matching)
    where = "AND" if source.where else "WHERE"
    return f"{query} {where} {key} <= {threshold} ORDER BY {key}, source_row LIMIT {int(wanted)}"


def key_threshold(wanted: int, matching: int) -> int:
    """The largest 64-bit hash kept so that about `wanted` + 8 standard deviations of `matching` rows pass."""
    share = min(1.0, (wanted + 8 * math.sqrt(wanted) + 50) / matching)
    return min(2**64 - 1, int(share * 2**64))


def count(connection: duckdb.DuckDBPyConnection, statement: str) -> int:
    """The number a COUNT or a COPY statement returns."""
    row = connection.execute(statement).fetchone()
    return int(row[0]) if row else 0


def check_where(connection: duckdb.DuckDBPyConnection, scan: str, where: str | None) -> None:
    """A bad `where` is reported as such, before any row is read."""
    import duckdb

    if where is None:
        return
    query = f"SELECT * {scan}"
    try:
        if len(duckdb.extract_statements(query)) != 1:
            raise StageError(f"extract.file.where must be one SQL condition, not {where!r}.")
        connection.execute(f"DESCRIBE {query}")
    except duckdb.Error as error:
        problem = first_line(error)
        raise StageError(f"extract.file.where {where!r} is not a condition on the source: {problem}") from None


def with_feedback(
    connection: duckdb.DuckDBPyConnection, query: str, columns: dict[str, str], feedback: Path
) -> tuple[str, int]:
    """The query plus the labelled feedback rows, on the source's columns (missing ones left empty), and their count."""
    labelled = f"read_parquet({quoted(str(feedback))})"
    present = {str(row[0]) for row in connection.execute(f"DESCRIBE SELECT * FROM {labelled}").fetchall()}
    shared = [identifier(name) for name in columns if name in present]
    added = count(connection, f"SELECT count(*) FROM {labelled}")
    if not shared or not added:
        return query, 0
    return f"({query}) UNION ALL BY NAME (SELECT {', '.join(shared)} FROM {labelled})", added


def quoted(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def identifier(name: str) -> str:
    """An SQL identifier, whatever characters the column name has."""
    return '"' + name.replace('"', '""') + '"'


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def read_sql(source: SqlSource) -> pd.DataFrame:
    """The query's rows through SQLAlchemy. DATABASE_URL overrides the URL (keeps secrets out of git)."""
    import pandas as pd
    import sqlalchemy

    url = os.environ.get("DATABASE_URL") or source.url
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as connection:
            return pd.read_sql_query(sqlalchemy.text(source.query), connection)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
        raise StageError(f"the SQL source failed: {error}") from None
