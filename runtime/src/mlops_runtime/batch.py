"""Batch prediction: score CSV or Parquet files of any size (a file or a glob), chunk by chunk.

The same model artifact and the same contract as the service: rows that break the
contract are written to an errors file (row number, reason) instead of failing the file.
The output keeps the caller's columns that are not features (an ID, a timestamp, the label)
beside the predictions, and names the model version that made them in a `model_version` column.
"""

from __future__ import annotations

import glob
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StageError
from .params import MISSING_MARKERS

if TYPE_CHECKING:
    from collections.abc import Generator, Sequence

    import pandas as pd

    from .schema import Contract
    from .serving.loader import LoadedModel


def source_files(source: Path) -> list[Path]:
    """The file, or the files a glob names (`data/part-*.parquet`, `**` for subfolders), sorted: row
    numbers run on from one file to the next in that order."""
    pattern = str(source)
    if any(character in pattern for character in "*?["):
        files = sorted(Path(name) for name in glob.glob(pattern, recursive=True) if Path(name).is_file())
        if not files:
            raise StageError(f"no file matches {pattern}.")
    elif source.exists():
        files = [source]
    else:
        raise StageError(f"{source} not found.")
    for path in files:
        if path.suffix.lower() not in (".parquet", ".csv"):
            raise StageError(f"{path}: batch prediction reads .csv or .parquet files.")
        if path.stat().st_size == 0:  # a failed export: neither a CSV header nor a Parquet footer to read
            raise StageError(f"{path} is empty (0 bytes), not even a header: export it again, or remove it.")
    return files


def read_chunks(
    files: Sequence[Path],
    chunk_rows: int,
    markers: Sequence[str] = MISSING_MARKERS,
) -> Generator[pd.DataFrame]:
    """The files, one after the other, in frames of at most `chunk_rows` rows, indexed by row number
    (from 0, continuing across files). Only one file is open, and one chunk in memory, at a time.

    A CSV is read as text, exactly as written: an ID keeps its leading zeros, "TRUE" stays "TRUE", a
    column cannot change type from one chunk to the next, and the `markers` are missing values.
    Close the generator (as `predict_file` does) to release the open file early.
    """
    import pandas as pd

    offset = 0
    for path in files:
        with closing(_file_chunks(path, chunk_rows, markers)) as frames:
            for frame in frames:
                frame.index = pd.RangeIndex(offset, offset + len(frame))
                offset += len(frame)
                yield frame


def _file_chunks(path: Path, chunk_rows: int, markers: Sequence[str] = MISSING_MARKERS) -> Generator[pd.DataFrame]:
    """A file's frames; the contract reads numbers, codes and dates from a CSV's text."""
    import pandas as pd
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".parquet":
        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
    else:
        with pd.read_csv(
            path, chunksize=chunk_rows, dtype=str, keep_default_na=False, na_values=list(markers)
        ) as reader:
            yield from reader


def prediction_frame(loaded: LoadedModel, features: pd.DataFrame) -> pd.DataFrame:
    """Predictions (and class probabilities) for valid rows, vectorised, same maths as the API."""
    import numpy as np
    import pandas as pd

    if not loaded.classes:
        return pd.DataFrame({"prediction": loaded.model.predict(features)}, index=features.index)
    proba = loaded.model.predict_proba(features)
    classes = np.asarray(loaded.classes, dtype=object)
    frame = pd.DataFrame(proba, index=features.index, columns=[f"probability_{label}" for label in loaded.classes])
    frame.insert(0, "prediction", classes[proba.argmax(axis=1)])
    return frame


def output_columns(loaded: LoadedModel) -> list[str]:
    """The columns batch prediction adds to the caller's: the row number first, the rest after theirs."""
    return ["row", "prediction", *(f"probability_{label}" for label in loaded.classes), "model_version"]


def kept_columns(chunk: pd.DataFrame, contract: Contract, loaded: LoadedModel) -> list[str]:
    """The caller's columns that are not features, kept beside the predictions; refused if one would be overwritten."""
    kept = [str(name) for name in chunk.columns if name not in contract.feature_names]
    clash = [name for name in kept if name in output_columns(loaded)]
    if clash:
        raise StageError(
            f"the input has column {', '.join(clash)}, which batch prediction writes: rename it in the input."
        )
    return kept


def output_frame(loaded: LoadedModel, chunk: pd.DataFrame, features: pd.DataFrame, kept: list[str]) -> pd.DataFrame:
    """Valid rows: the caller's kept columns, then the predictions and the model version that made them."""
    import pandas as pd

    predictions = prediction_frame(loaded, features)
    frame = pd.concat([chunk.loc[features.index, kept], predictions], axis=1)
    frame["model_version"] = loaded.version
    return frame


class OutputWriter:
    """Appends prediction frames to a Parquet or CSV file."""

    def __init__(self, path: Path) -> None:
        if path.suffix.lower() not in (".parquet", ".csv"):
            raise StageError(f"{path}: batch prediction writes .csv or .parquet files.")
        self.path = path
        self._parquet: Any = None
        self._rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = frame.rename_axis("row").reset_index()
        if self.path.suffix.lower() == ".csv":
            frame.to_csv(self.path, mode="a" if self._rows else "w", header=not self._rows, index=False)
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self._rows += len(frame)

    def close(self, columns: Sequence[str] = ("row", "prediction")) -> None:
        """Finish the file; with no valid row, still leave a well-formed, empty one with `columns`."""
        import pandas as pd

        if self._parquet is not None:
            self._parquet.close()
        elif not self._rows:
            empty = pd.DataFrame({name: pd.Series(dtype="int64" if name == "row" else object) for name in columns})
            if self.path.suffix.lower() == ".csv":
                empty.to_csv(self.path, index=False)
            else:
                empty.to_parquet(self.path, index=False)


def predict_file(
    source: Path,
    target: Path,
    loaded: LoadedModel,
    contract: Contract,
    chunk_rows: int,
    markers: Sequence[str] = MISSING_MARKERS,
) -> dict[str, Any]:
    """Score `source` (a file or a glob) into `target`; bad rows go to `<target>.errors.csv`.

    Returns counts, the files written, the caller's columns kept and the model version that predicted.
    """
    files = source_files(source)
    started = time.perf_counter()
    errors_path = target.with_name(target.name + ".errors.csv")
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = OutputWriter(target)
    total = rejected = 0
    errors_written = False
    kept: list[str] | None = None
    try:
        with closing(read_chunks(files, chunk_rows, markers)) as chunks:
            for chunk in chunks:
                if kept is None:  # the first file's columns decide; a later file lacking one is refused below
                    kept = kept_columns(chunk, contract, loaded)
                missing = [name for name in kept if name not in chunk.columns]
                if missing:
                    raise StageError(
                        f"from row {chunk.index[0]} on, the input has no column {', '.join(missing)}, which its first"
                        " rows have: give every file the same columns."
                    )
                total += len(chunk)
                features, reasons = contract.check_rows(chunk)
                if len(features):
                    writer.write(output_frame(loaded, chunk, features, kept))
                if len(reasons):
                    rejected += len(reasons)
                    reasons.rename("reason").rename_axis("row").to_frame().to_csv(
                        errors_path, mode="a" if errors_written else "w", header=not errors_written
                    )
                    errors_written = True
    finally:
        columns = output_columns(loaded)
        writer.close([columns[0], *(kept or []), *columns[1:]])
    if not errors_written:
        errors_path.unlink(missing_ok=True)
    return {
        "rows": total,
        "predicted": total - rejected,
        "rejected": rejected,
        "output": str(target),
        "errors": str(errors_path) if errors_written else None,
        "kept_columns": kept or [],
        "model": loaded.name,
        "model_version": loaded.version,
        "model_source": loaded.source,
        "seconds": round(time.perf_counter() - started, 3),
    }
