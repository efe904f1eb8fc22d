"""The MLflow model registry: accepted models become versions; aliases say which one serves.

`champion` is the version in production, `challenger` the newest accepted one. The
registered model's tag `champion_history` keeps every champion in order, so a rollback
knows where to go back to.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import StageError
from .tracking import client, tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
UNREVIEWED_TAG = "unreviewed"  # on a version trained from uncommitted changes (see tracking.lineage_tags)


def register(registry: MlflowClient, name: str, model_uri: str, tags: dict[str, str]) -> str:
    """A new version of `name` from a logged model; returns its version number."""
    import mlflow

    version = mlflow.register_model(model_uri, name, tags=tags)
    registry.set_registered_model_alias(name, CHALLENGER, version.version)
    return str(version.version)


def load_champion(name: str) -> tuple[Any, ModelVersion]:
    """The champion's fitted Pipeline and its registry entry (tags: metrics, lineage)."""
    return load_alias(name, CHAMPION)


def load_alias(name: str, alias: str) -> tuple[Any, ModelVersion]:
    """The fitted Pipeline an alias points at (`champion`, `challenger`) and its registry entry."""
    import mlflow.sklearn

    version = client().get_model_version_by_alias(name, alias)
    return mlflow.sklearn.load_model(f"models:/{name}/{version.version}"), version


def exists(registry: MlflowClient, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        registry.get_registered_model(name)
    except MlflowException:
        return False
    return True


def alias_version(registry: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(registry.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def history(registry: MlflowClient, name: str) -> list[str]:
    tags = registry.get_registered_model(name).tags
    return list(json.loads(tags.get(HISTORY_TAG, "[]")))


def set_champion(registry: MlflowClient, name: str, version: str) -> None:
    """Point `champion` at `version` and append it to the history."""
    registry.set_registered_model_alias(name, CHAMPION, version)
    registry.set_model_version_tag(name, version, "promoted_at", datetime.now(UTC).isoformat(timespec="seconds"))
    past = history(registry, name)
    if not past or past[-1] != version:
        registry.set_registered_model_tag(name, HISTORY_TAG, json.dumps([*past, version]))


def promote(name: str, version: str, force_reason: str | None = None) -> str | None:
    """Make `version` the champion by hand; returns the previous champion.

    A version trained from uncommitted changes needs a reason (`--force REASON`), kept on the version.
    """
    from mlflow.exceptions import MlflowException

    registry = client()
    try:
        entry = registry.get_model_version(name, version)
    except MlflowException:
        raise StageError(f"model {name!r} has no version {version}; see `models`.") from None
    if entry.tags.get(UNREVIEWED_TAG) == "true":
        if not force_reason:
            raise StageError(
                f"version {version} of {name!r} was trained from uncommitted changes, which nobody reviewed;"
                " commit them and retrain, or promote it with --force REASON."
            )
        registry.set_model_version_tag(name, version, "forced_reason", force_reason)
    previous = alias_version(registry, name, CHAMPION)
    set_champion(registry, name, version)
    return previous


def rollback(name: str) -> tuple[str, str]:
    """Champion back to the previous champion; returns (from, to)."""
    registry = client()
    _require_model(registry, name)
    past = history(registry, name)
    if len(past) < 2:
        raise StageError(f"model {name!r} has no previous champion to roll back to (history: {past or 'empty'}).")
    current, previous = past[-1], past[-2]
    registry.set_registered_model_alias(name, CHAMPION, previous)
    registry.set_registered_model_tag(name, HISTORY_TAG, json.dumps(past[:-1]))
    registry.set_model_version_tag(name, current, "rolled_back_at", datetime.now(UTC).isoformat(timespec="seconds"))
    return current, previous


def versions(name: str) -> list[dict[str, Any]]:
    """Every version, newest first, with its aliases and the metrics it was accepted with."""
    registry = client()
    model = _require_model(registry, name)
    aliases: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for version in registry.search_model_versions(f"name = '{name}'"):
        rows.append(
            {
                "version": str(version.version),
                "aliases": sorted(aliases.get(str(version.version), [])),
                "created": datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).isoformat(timespec="seconds"),
                "family": version.tags.get("family", ""),
                "metrics": json.loads(version.tags.get("metrics", "{}")),
                "git_commit": version.tags.get("git_commit", "")[:10],
            }
        )
    return sorted(rows, key=lambda row: -int(row["version"]))


def _require_model(registry: MlflowClient, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return registry.get_registered_model(name)
    except MlflowException:
        raise StageError(f"no registered model {name!r} in {tracking_uri()}: run `dvc repro` first.") from None
