"""Stage extract: read the source (sample, file or SQL) into data/raw/ as Parquet."""

from __future__ import annotations

import glob
import os
from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..files import read_parquet, write_parquet

if TYPE_CHECKING:
    import pandas as pd

    from ..params import FileSource, Params, SqlSource
    from ..paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    import pandas as pd

    source = params.extract.source
    if source == "sample":
        from ..sample_data import generate

        sample = params.extract.sample
        assert sample is not None  # checked by Params
        frame = generate(params.task, sample.rows, sample.seed, sample.drift)
    elif source == "file":
        assert params.extract.file is not None
        frame = read_files(params.extract.file, paths)
    else:
        assert params.extract.sql is not None
        frame = read_sql(params.extract.sql)
    if frame.empty:
        raise StageError(f"the {source} source returned no rows.")
    labelled = read_parquet(paths.feedback_rows) if params.extract.feedback and paths.feedback_rows.exists() else None
    if labelled is not None:
        frame = pd.concat(
            [frame, labelled[[column for column in frame.columns if column in labelled]]], ignore_index=True
        )
    write_parquet(frame, paths.raw)
    added = 0 if labelled is None else len(labelled)
    return {"rows": len(frame), "columns": len(frame.columns), "feedback_rows": added, "output": str(paths.raw)}


def read_files(source: FileSource, paths: Paths) -> pd.DataFrame:
    """CSV or Parquet files (a path or a glob) through DuckDB, which streams large files."""
    import duckdb

    pattern = source.path if os.path.isabs(source.path) else str(paths.root / source.path)
    files = sorted(glob.glob(pattern))
    if not files:
        raise StageError(f"no file matches extract.file.path {source.path!r}.")
    reader = "read_parquet" if pattern.lower().endswith(".parquet") else "read_csv_auto"
    try:
        return duckdb.execute(f"SELECT * FROM {reader}(?)", [files]).df()
    except duckdb.Error as error:
        raise StageError(f"cannot read {source.path}: {error}") from None


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
