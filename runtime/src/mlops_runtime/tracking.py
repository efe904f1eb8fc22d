"""The one home of MLflow set-up: tracking URI, client, experiment and run context, run lineage.

Every module that talks to MLflow (stages, registry, serving) goes through here, so the
store it writes to is decided in one place: `MLFLOW_TRACKING_URI`, else the embedded SQLite file.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import read_yaml
from .paths import Paths

if TYPE_CHECKING:
    from mlflow import ActiveRun, MlflowClient

# Embedded default; an MLflow server (or PostgreSQL URL) is one environment variable away.
DEFAULT_TRACKING_URI = f"sqlite:///{Paths().mlflow_store}"

# Warnings we have answered on purpose: the model is saved with cloudpickle (see train.py),
# its requirements are pinned explicitly, and uv environments have no pip to report.
for _logger in ("mlflow.sklearn", "mlflow.utils.environment", "mlflow.utils.uv_utils"):
    logging.getLogger(_logger).setLevel(logging.ERROR)


def tracking_enabled() -> bool:
    """MLFLOW_TRACKING=off skips tracking and the registry (the models/ copy is still saved)."""
    return os.environ.get("MLFLOW_TRACKING", "on").strip().lower() not in ("off", "0", "false", "no")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def store_exists(root: Path = Path()) -> bool:
    """A server URL counts as existing; a SQLite store only when its file does (looking never creates one)."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        return (path if path.is_absolute() else root / path).exists()
    return True


def client() -> MlflowClient:
    """A client of the tracking store and registry; fluent calls (mlflow.*) use the same store."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow.MlflowClient(tracking_uri())


def start_run(experiment: str, run_id: str | None = None, run_name: str | None = None) -> ActiveRun:
    """Start (or resume, when `run_id` still exists in the store) an MLflow run."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client()
    mlflow.set_experiment(experiment)
    if run_id is not None:
        try:
            return mlflow.start_run(run_id=run_id)
        except MlflowException:
            # The store was reset or moved since training: keep going in a fresh run.
            pass
    return mlflow.start_run(run_name=run_name)


def lineage_tags(root: Path = Path()) -> dict[str, str]:
    """Code version, data version and environment, recorded on every training run."""
    import sklearn

    return {
        "git_commit": _git_commit(root),
        "git_dirty": _git_dirty(root),
        "data_version": prepared_data_hash(root),
        "python_version": platform.python_version(),
        "sklearn_version": sklearn.__version__,
    }


def _git_commit(root: Path) -> str:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip()


# What specifies a model: code, parameters, contract, pipeline and environment. Changes to
# them that are not committed (as in everyday `dvc exp run`) have not been reviewed.
MODEL_SPEC = ("src", "params.yaml", "schema.yaml", "dvc.yaml", "pyproject.toml", "uv.lock")


def _git_dirty(root: Path) -> str:
    """'true' when the model's specification differs from the commit, 'false' when not, 'unknown' outside git."""
    try:
        completed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *MODEL_SPEC],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return "true" if completed.stdout.strip() else "false"


def prepared_data_hash(root: Path = Path()) -> str:
    """The DVC hash of data/prepared as recorded in dvc.lock by the prepare stage."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return "unknown"
    stages: dict[str, Any] = (read_yaml(lock, "") or {}).get("stages", {})
    for out in stages.get("prepare", {}).get("outs", []):
        if out.get("path") == "data/prepared":
            return str(out.get("md5", "unknown"))
    return "unknown"
