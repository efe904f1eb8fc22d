"""Batch prediction: score a CSV or Parquet file of any size, chunk by chunk.

The same model artifact and the same contract as the service: rows that break the
contract are written to an errors file (row number, reason) instead of failing the file.
"""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StageError

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator

    import pandas as pd

    from .schema import Contract
    from .serving.loader import LoadedModel


def read_chunks(path: Path, chunk_rows: int) -> Generator[pd.DataFrame]:
    """The file in frames of at most `chunk_rows` rows, indexed by row number (from 0).

    The file stays open while the generator runs: close the generator (as `predict_file` does)
    to release it early.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        with pq.ParquetFile(path) as parquet:
            yield from _numbered(batch.to_pandas() for batch in parquet.iter_batches(batch_size=chunk_rows))
    elif suffix == ".csv":
        with pd.read_csv(path, chunksize=chunk_rows) as reader:
            yield from _numbered(reader)
    else:
        raise StageError(f"{path}: batch prediction reads .csv or .parquet files.")


def _numbered(frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    import pandas as pd

    offset = 0
    for frame in frames:
        frame.index = pd.RangeIndex(offset, offset + len(frame))
        offset += len(frame)
        yield frame


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
    """Score `source` into `target`; bad rows go to `<target>.errors.csv`. Returns counts."""
    if not source.exists():
        raise StageError(f"{source} not found.")
    started = time.perf_counter()
    errors_path = target.with_name(target.name + ".errors.csv")
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = OutputWriter(target)
    total = rejected = 0
    errors_written = False
    try:
        with closing(read_chunks(source, chunk_rows)) as chunks:
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
