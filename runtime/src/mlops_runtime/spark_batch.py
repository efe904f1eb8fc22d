"""Batch prediction on Spark (`predict --engine spark`): the same checks, answers and errors file as `batch`.

Spark reads the files where they are (CSV as text, exactly as `batch` reads it; Parquet typed), and
each partition is checked and scored by this library in pandas (`mapInPandas`): the model reaches
the executors once, as a broadcast, and the contract turns every column into what the model was
trained on, so a missing category is NaN there too, never the `pd.NA` some engines hand a model.

Why not `mlflow.pyfunc.spark_udf`: a scikit-learn pyfunc answers `predict` only (no class
probabilities), and it skips the contract, so bad rows would fail the job instead of being listed.

Row numbers are the in-process ones: the position in the sorted files, running on from file to file.
The output is Spark's: TARGET is a folder of part files (CSV or Parquet by its suffix), in no
particular order (`row` says where each came from); the refused rows go to TARGET.errors.csv.
"""

from __future__ import annotations

import os
import re
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from .batch import kept_columns, source_files
from .errors import StageError
from .params import MISSING_MARKERS

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from .schema import Contract
    from .serving.loader import LoadedModel

# Columns of our own, beside the caller's while a file is scored: named so that no export has them.
FILE, POSITION, REASON = "__mlops_file", "__mlops_position", "__mlops_reason"
COLUMN = "__mlops_column_"  # the caller's columns by position: mapInPandas cannot take a name with a "." (Solar.R)
NEVER = "\u0000never\u0000"  # Spark's CSV null marker, set to a value no file holds: the markers decide
LOGGING = Path(__file__).with_name("spark-log4j2.properties")  # errors only: the output is one line
INSTALL_HINT = "the spark engine needs pyspark (the extra mlops-runtime[spark]) and Java 17 or newer"


def spark_session(master: str, batch_rows: int) -> SparkSession:
    """A session on `master` (local[N], spark://, k8s://, yarn), quiet, its Python workers this interpreter."""
    try:
        from pyspark.errors import PySparkException
        from pyspark.sql import SparkSession
    except ImportError:
        raise StageError(f"{INSTALL_HINT}: uv add 'mlops-runtime[spark]'.") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the executors need the project's packages
    # Proven equal to the in-process engine on pandas 3 (tests/test_spark.py): the warning says nothing here.
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    builder = (
        SparkSession.builder.master(master)
        .appName("mlops-runtime predict")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOGGING.as_uri()}")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))  # bounds a task's memory
        .config("spark.ui.showConsoleProgress", "false")
    )
    try:
        session = builder.getOrCreate()
    except (PySparkException, OSError) as error:
        raise StageError(f"Spark did not start on {master} ({INSTALL_HINT}): {first_line(error)}") from None
    session.sparkContext.setLogLevel("ERROR")
    return session


def first_line(error: BaseException) -> str:
    """The message of a Spark or Py4J error without the JVM's stack: a Python worker's own error when there is one."""
    lines = str(error).strip().splitlines()
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    return (raised[-1] if raised else lines[0] if lines else type(error).__name__)[:500]


def file_format(files: Sequence[Path]) -> str:
    """ "csv" or "parquet": Spark reads one format per job."""
    formats = {path.suffix.lower().lstrip(".") for path in files}
    if len(formats) > 1:
        raise StageError("the spark engine reads one format per run: the files mix .csv and .parquet.")
    return formats.pop()


def csv_header(files: Sequence[Path]) -> list[str]:
    """The CSV files' column names as the in-process engine reads them: pandas names R's unnamed row-names
    column "Unnamed: 0", where Spark's own header check fails on it. Spark reads the columns by position,
    so every file must have the same header."""
    import pandas as pd

    headers = {path: list(pd.read_csv(path, nrows=0).columns) for path in files}
    first = headers[files[0]]
    for path, names in headers.items():
        if names != first:
            raise StageError(
                f"the spark engine reads CSV files with one header: {path.name} has {', '.join(names)}, "
                f"{files[0].name} has {', '.join(first)}."
            )
    return first


def read_source(spark: SparkSession, files: Sequence[Path], header: list[str] | None) -> DataFrame:
    """The files as one DataFrame with each row's file; Parquet rows (no `header`) also with their position in it.

    A CSV is read as text, its columns named by `header`, and never split across tasks (`multiLine`, which
    quoted line breaks in free text need anyway), so its rows reach one task in file order: `number_csv_rows`
    numbers them there.
    """
    from pyspark.sql import functions as sf
    from pyspark.sql.types import StringType, StructField, StructType

    paths = [str(path.resolve()) for path in files]  # the JVM's working folder may not be ours
    if header is not None:
        text = StructType([StructField(name, StringType()) for name in header])
        reader = spark.read.schema(text).options(
            header=True, multiLine=True, escape='"', nullValue=NEVER, emptyValue=""
        )
        return reader.csv(paths).select("*", sf.col("_metadata.file_path").alias(FILE))
    frame = spark.read.parquet(*paths)
    return frame.select("*", sf.col("_metadata.file_path").alias(FILE), sf.col("_metadata.row_index").alias(POSITION))


def number_csv_rows(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Each row's position in its file, counted on in the one task that reads the file."""
    seen: dict[str, int] = {}
    for batch in batches:
        before = batch[FILE].map(lambda name: seen.get(name, 0))
        batch[POSITION] = before + batch.groupby(FILE, sort=False).cumcount()
        for name, count in batch[FILE].value_counts(sort=False).items():
            seen[str(name)] = seen.get(str(name), 0) + int(count)
        yield batch


def score_batches(
    batches: Iterator[pd.DataFrame],
    model: Any,
    contract: Contract,
    names: list[str],
    kept: list[str],
    markers: Sequence[str],
) -> Iterator[pd.DataFrame]:
    """Every row with its file, position and kept columns; valid rows scored as `batch` scores them, refused
    rows with their reason instead."""
    import pandas as pd

    from .batch import prediction_frame

    loaded: LoadedModel = model.value
    for batch in batches:
        chunk = batch.drop(columns=[FILE, POSITION]).set_axis(names, axis=1)  # the caller's names again
        text = [name for name in chunk.columns if pd.api.types.is_string_dtype(chunk[name])]
        chunk[text] = chunk[text].mask(chunk[text].isin(list(markers)))  # as read_csv's na_values
        features, reasons = contract.check_rows(chunk)
        answers = prediction_frame(loaded, features).assign(model_version=loaded.version)
        yield batch[[FILE, POSITION, *kept]].join(answers).assign(**{REASON: reasons})


def output_schema(loaded: LoadedModel, contract: Contract, source: StructType, kept: list[str]) -> StructType:
    """The scored rows' Spark schema: file, position, the kept columns as read, the model's columns, the reason."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    from .batch import prediction_frame

    answers = prediction_frame(loaded, contract.examples()).assign(model_version=loaded.version)
    arrow = pa.Schema.from_pandas(answers, preserve_index=False)
    fields = [StructField(FILE, StringType()), StructField(POSITION, LongType())]
    fields += [source[name] for name in kept]
    fields += [StructField(item.name, from_arrow_type(item.type)) for item in arrow]
    return StructType([*fields, StructField(REASON, StringType())])


def local_path(uri: str) -> Path:
    """Spark's `file:/a%20b/c.csv` as the path `source_files` listed."""
    parsed = urlparse(uri)
    return Path(unquote(parsed.path) if parsed.scheme in ("", "file") else uri).resolve()


def file_offsets(counts: dict[str, int], files: Sequence[Path]) -> dict[str, int]:
    """The first row number of each file Spark read (by its URI): rows run on across the sorted files."""
    order = {path.resolve(): index for index, path in enumerate(files)}
    offsets, start = {}, 0
    for uri in sorted(counts, key=lambda name: order.get(local_path(name), len(order))):
        offsets[uri] = start
        start += counts[uri]
    return offsets


def predict_spark(
    source: Path,
    target: Path,
    loaded: LoadedModel,
    contract: Contract,
    master: str,
    batch_rows: int,
    markers: Sequence[str] = MISSING_MARKERS,
) -> dict[str, Any]:
    """Score `source` (a file or a glob) on Spark into the folder `target`; bad rows go to `<target>.errors.csv`.

    Returns what `batch.predict_file` returns, so `predict` says the same one line.
    """
    files = source_files(source)
    header = csv_header(files) if file_format(files) == "csv" else None
    if target.suffix.lower() not in (".parquet", ".csv"):
        raise StageError(f"{target}: batch prediction writes .csv or .parquet files.")
    started = time.perf_counter()
    spark = spark_session(master, batch_rows)
    try:
        return _run(spark, files, header, target, replace(loaded, direct=None), contract, markers, started)
    except StageError:
        raise
    except Exception as error:  # a Spark job failed: its first line, not the JVM's stack
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        if isinstance(error, PySparkException | Py4JError):
            raise StageError(f"the Spark job failed: {first_line(error)}") from None
        raise


def _run(
    spark: SparkSession,
    files: Sequence[Path],
    header: list[str] | None,
    target: Path,
    loaded: LoadedModel,
    contract: Contract,
    markers: Sequence[str],
    started: float,
) -> dict[str, Any]:
    import pandas as pd
    from pyspark.sql import functions as sf
    from pyspark.sql.types import LongType, StructField, StructType

    frame = read_source(spark, files, header)
    caller = [name for name in frame.columns if name not in (FILE, POSITION)]
    kept = kept_columns(pd.DataFrame(columns=caller), contract, loaded)
    frame = frame.toDF(*[f"{COLUMN}{i}" for i in range(len(caller))], *frame.columns[len(caller) :])
    kept_by_position = [f"{COLUMN}{caller.index(name)}" for name in kept]
    if header is not None:
        numbered = StructType([*frame.schema.fields, StructField(POSITION, LongType())])
        frame = frame.mapInPandas(number_csv_rows, numbered)
    cores = spark.sparkContext.defaultParallelism
    if frame.rdd.getNumPartitions() < cores:  # one small file is one task: spread it over the cores
        frame = frame.repartition(cores)
    schema = output_schema(loaded, contract, frame.schema, kept_by_position)
    model = spark.sparkContext.broadcast(loaded)
    columns = schema.fieldNames()
    scored = frame.mapInPandas(
        lambda batches: score_batches(batches, model, contract, caller, kept_by_position, markers), schema
    )
    scored = scored.persist()  # counted, then written: scored once
    try:
        counts = {str(row[FILE]): int(row["count"]) for row in scored.groupBy(FILE).count().collect()}
        first_rows = list(file_offsets(counts, files).items())  # none for files with a header only
        offsets = spark.createDataFrame(first_rows, f"{FILE} string, __mlops_offset long")
        rows = scored.join(sf.broadcast(offsets), FILE).withColumn("row", sf.col(POSITION) + sf.col("__mlops_offset"))
        refused = rows.where(sf.col(REASON).isNotNull()).select("row", sf.col(REASON).alias("reason")).orderBy("row")
        errors = refused.toPandas()
        answers = [name for name in columns if name not in (FILE, POSITION, REASON, *kept_by_position)]
        named = [sf.col(column).alias(name) for column, name in zip(kept_by_position, kept, strict=True)]
        named += [sf.col(f"`{name.replace('`', '``')}`") for name in answers]  # a "." is no struct field
        predicted = rows.where(sf.col(REASON).isNull()).select("row", *named)
        writer = predicted.write.mode("overwrite")
        if target.suffix.lower() == ".csv":
            # Spark trims the spaces around values unless told not to: kept columns are written as read.
            untrimmed = {"ignoreLeadingWhiteSpace": False, "ignoreTrailingWhiteSpace": False}
            writer.options(header=True, escape='"', **untrimmed).csv(str(target.resolve()))
        else:
            writer.parquet(str(target.resolve()))
    finally:
        scored.unpersist()
        model.destroy()
    errors_path = target.with_name(target.name + ".errors.csv")
    if len(errors):
        errors.to_csv(errors_path, index=False)
    else:
        errors_path.unlink(missing_ok=True)
    total = sum(counts.values())
    return {
        "rows": total,
        "predicted": total - len(errors),
        "rejected": len(errors),
        "output": str(target),
        "errors": str(errors_path) if len(errors) else None,
        "kept_columns": kept,
        "model": loaded.name,
        "model_version": loaded.version,
        "model_source": loaded.source,
        "seconds": round(time.perf_counter() - started, 3),
    }
