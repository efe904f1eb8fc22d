"""Batch prediction: score CSV or Parquet files of any size (a file or a glob), chunk by chunk.

The same model artifact and the same contract as the service: rows that break the
contract are written to an errors file (row number, reason) instead of failing the file.
"""

from __future__ import annotations

import glob
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StageError

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
    return files


def read_chunks(files: Sequence[Path], chunk_rows: int) -> Generator[pd.DataFrame]:
    """The files, one after the other, in frames of at most `chunk_rows` rows, indexed by row number
    (from 0, continuing across files). Only one file is open, and one chunk in memory, at a time.

    Close the generator (as `predict_file` does) to release the open file early.
    """
    import pandas as pd

    offset = 0
    for path in files:
        with closing(_file_chunks(path, chunk_rows)) as frames:
            for frame in frames:
                frame.index = pd.RangeIndex(offset, offset + len(frame))
                offset += len(frame)
                yield frame


def _file_chunks(path: Path, chunk_rows: int) -> Generator[pd.DataFrame]:
    import pandas as pd
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".parquet":
        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
    else:
        with pd.read_csv(path, chunksize=chunk_rows) as reader:
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

    def close(self) -> None:
        import pandas as pd

        if self._parquet is not None:
            self._parquet.close()
        elif not self._rows:  # no valid row: still leave a well-formed, empty file
            empty = pd.DataFrame({"row": pd.Series(dtype="int64"), "prediction": pd.Series(dtype=object)})
            if self.path.suffix.lower() == ".csv":
                empty.to_csv(self.path, index=False)
            else:
                empty.to_parquet(self.path, index=False)


def predict_file(
    source: Path, target: Path, loaded: LoadedModel, contract: Contract, chunk_rows: int
) -> dict[str, Any]:
    """Score `source` (a file or a glob) into `target`; bad rows go to `<target>.errors.csv`. Returns counts."""
    files = source_files(source)
    started = time.perf_counter()
    errors_path = target.with_name(target.name + ".errors.csv")
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = OutputWriter(target)
    total = rejected = 0
    errors_written = False
    try:
        with closing(read_chunks(files, chunk_rows)) as chunks:
            for chunk in chunks:
                total += len(chunk)
                features, reasons = contract.check_rows(chunk)
                if len(features):
                    writer.write(prediction_frame(loaded, features))
                if len(reasons):
                    rejected += len(reasons)
                    reasons.rename("reason").rename_axis("row").to_frame().to_csv(
                        errors_path, mode="a" if errors_written else "w", header=not errors_written
                    )
                    errors_written = True
    finally:
        writer.close()
    if not errors_written:
        errors_path.unlink(missing_ok=True)
    return {
        "rows": total,
        "predicted": total - rejected,
        "rejected": rejected,
        "output": str(target),
        "errors": str(errors_path) if errors_written else None,
        "seconds": round(time.perf_counter() - started, 3),
    }
