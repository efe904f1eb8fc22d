"""Service settings from the environment (SERVE_*), so every uvicorn worker gets the same ones."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import StageError

ModelSource = Literal["auto", "registry", "local"]


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise StageError(f"{name} must be an integer, got {value!r}.") from None


@dataclass(frozen=True)
class ServingConfig:
    """Where the model comes from, request limits, the prediction log and the reload token."""

    model_source: ModelSource = "auto"
    model_path: Path = Path("models/model")
    root: Path = Path()
    max_records: int = 1000
    max_body_bytes: int = 1_000_000
    prediction_log_url: str = "sqlite:///predictions.db"
    reload_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> ServingConfig:
        source = os.environ.get("SERVE_MODEL_SOURCE", "auto")
        if source not in ("auto", "registry", "local"):
            raise StageError(f"SERVE_MODEL_SOURCE must be auto, registry or local, got {source!r}.")
        return cls(
            model_source=source,  # type: ignore[arg-type]
            model_path=Path(os.environ.get("SERVE_MODEL_PATH", "models/model")),
            root=Path(os.environ.get("SERVE_ROOT", ".")),
            max_records=_int("SERVE_MAX_RECORDS", 1000),
            max_body_bytes=_int("SERVE_MAX_BODY_BYTES", 1_000_000),
            prediction_log_url=os.environ.get("SERVE_PREDICTION_LOG_URL", "sqlite:///predictions.db"),
            reload_token=os.environ.get("SERVE_RELOAD_TOKEN") or None,
        )
