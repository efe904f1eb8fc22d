"""Service settings: one object, read from the environment (SERVE_*) by the CLI and passed to the app."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from ..errors import StageError
from ..paths import Paths

ModelSource = Literal["auto", "registry", "local"]
MODEL_SOURCES: tuple[ModelSource, ...] = ("auto", "registry", "local")


@dataclass(frozen=True)
class ServingConfig:
    """Where the model comes from, request limits, the prediction log, and the tokens of /reload and /feedback."""

    paths: Paths = field(default_factory=Paths)
    model_source: ModelSource = "auto"
    model_dir: Path | None = None  # a model folder other than the pipeline's models/model
    max_records: int = 1000
    max_body_bytes: int = 1_000_000
    prediction_log_url: str = f"sqlite:///{Paths().prediction_log}"
    # Where log rows wait while the log's database is down (None: beside a SQLite log, else ./prediction-journal),
    # and how many it holds before predictions are refused (503): an answer is never given without its log row.
    log_journal_dir: Path | None = None
    log_journal_max_rows: int = 100_000
    reload_token: str | None = field(default=None, repr=False)
    # Labels train the next model (`monitor --retrain`): only a client holding this token may post them.
    feedback_token: str | None = field(default=None, repr=False)
    require_acceptance: bool = True  # a local model must carry an accepting verdict; off only for accept's canary
    # Shadow mode: the registry alias (`challenger`) whose model scores every answered request off the request
    # path, its answers logged beside the champion's; None: off.
    shadow_alias: str | None = None

    @property
    def model_path(self) -> Path:
        return self.model_dir or self.paths.model

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServingConfig:
        """The settings a user or container gives through SERVE_* variables; the rest default."""
        source = environ.get("SERVE_MODEL_SOURCE", "auto")
        if source not in MODEL_SOURCES:
            raise StageError(f"SERVE_MODEL_SOURCE must be auto, registry or local, got {source!r}.")
        model_dir = environ.get("SERVE_MODEL_PATH")
        return cls(
            paths=Paths(Path(environ.get("SERVE_ROOT", "."))),
            model_source=cast("ModelSource", source),
            model_dir=Path(model_dir) if model_dir else None,
            max_records=_positive_int(environ, "SERVE_MAX_RECORDS", cls.max_records),
            max_body_bytes=_positive_int(environ, "SERVE_MAX_BODY_BYTES", cls.max_body_bytes),
            prediction_log_url=environ.get("SERVE_PREDICTION_LOG_URL", cls.prediction_log_url),
            log_journal_dir=Path(environ["SERVE_LOG_JOURNAL_DIR"]) if environ.get("SERVE_LOG_JOURNAL_DIR") else None,
            log_journal_max_rows=_positive_int(environ, "SERVE_LOG_JOURNAL_MAX_ROWS", cls.log_journal_max_rows),
            reload_token=environ.get("SERVE_RELOAD_TOKEN") or None,
            feedback_token=environ.get("SERVE_FEEDBACK_TOKEN") or None,
            shadow_alias=_shadow_alias(environ.get("SERVE_SHADOW", "")),
        )


def _shadow_alias(value: str) -> str | None:
    """SERVE_SHADOW: empty (off) or the registry alias to score in shadow, usually `challenger`."""
    alias = value.strip()
    if not alias:
        return None
    if alias == "champion" or not alias.replace("-", "").replace("_", "").isalnum():
        raise StageError(
            f"SERVE_SHADOW names the registry alias to score in shadow (challenger), got {value!r}:"
            " the champion already answers every request."
        )
    return alias


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name)
    if value is None:
        return default
    if not value.strip().isdigit() or int(value) < 1:
        raise StageError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)
