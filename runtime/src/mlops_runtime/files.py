"""Reading and writing the files that stages exchange, and plain values for JSON and YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StageError

if TYPE_CHECKING:
    import pandas as pd


def write_json(path: Path, data: Any) -> None:
    """Write JSON with sorted keys, so that reruns give identical files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    """A JSON file an earlier stage wrote; a missing one is a StageError naming it."""
    if not path.exists():
        raise StageError(f"{path} is missing: run the stage that writes it first (dvc repro).")
    return json.loads(path.read_text())


def read_yaml(path: Path, missing: str) -> Any:
    """The YAML document at `path`; a missing or malformed file is one readable error (`missing` says what to do)."""
    import yaml

    if not path.exists():
        raise StageError(f"{path} not found: {missing}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StageError(f"{path} is not valid YAML: {error}") from None


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file or a folder of them as one frame; a missing one is a StageError naming the stage to run."""
    import pandas as pd

    if not path.exists():
        raise StageError(f"{path} is missing: run the stage that writes it first (dvc repro).")
    return pd.read_parquet(path)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` without its index, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def plain(value: Any) -> Any:
    """A value as JSON and YAML write it: NumPy scalars become Python ones, anything else unusual text."""
    if hasattr(value, "item"):
        value = value.item()
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
