"""Load the model to serve: the registry's champion when a registry is reachable, else models/."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..files import plain
from ..metrics import is_classification
from ..tracking import store_exists, tracking_uri
from ..verdict import require_accepted

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from ..paths import Paths
    from ..schema import Contract
    from .config import ServingConfig
    from .direct import Columns, DirectPipeline


@dataclass(frozen=True)
class LoadedModel:
    """The fitted Pipeline and what the service says about it."""

    model: Any
    task: str
    name: str
    version: str
    source: str
    metrics: dict[str, Any] = field(default_factory=dict)
    trained_at: float | None = None  # epoch seconds: the model's age, for alerts on stale models
    direct: DirectPipeline | None = None  # the Pipeline's steps called directly: same output, faster

    @property
    def classes(self) -> list[Any]:
        return [plain(value) for value in self.model.classes_] if is_classification(self.task) else []

    def for_requests(self, contract: Contract) -> LoadedModel:
        """This model, calling its steps directly when that reproduces the Pipeline on the contract's examples."""
        from .direct import direct_pipeline

        return replace(self, direct=direct_pipeline(self.model, contract))

    def predict(self, features: pd.DataFrame | Columns) -> list[dict[str, Any]]:
        """One answer per row of `features` (a DataFrame, or `Contract.columns()`): the prediction, and class
        probabilities for classifiers."""
        if self.direct is not None:
            scorer: Any = self.direct
        else:
            import pandas as pd

            scorer, features = self.model, pd.DataFrame(features)
        if not is_classification(self.task):
            return [{"prediction": float(value)} for value in scorer.predict(features)]
        proba = scorer.predict_proba(features)
        classes = self.classes
        names = [str(label) for label in classes]
        return [
            {"prediction": classes[int(row.argmax())], "probabilities": dict(zip(names, row.tolist(), strict=True))}
            for row in proba
        ]


def load_model(config: ServingConfig, task: str, registered_model: str) -> LoadedModel:
    """Registry first (source auto or registry), then the local artifact (auto or local)."""
    if config.model_source in ("auto", "registry"):
        try:
            return from_registry(task, registered_model, config.paths)
        except Exception as error:  # any registry failure means: fall back, or report it
            if config.model_source == "registry":
                raise StageError(f"cannot load the champion of {registered_model!r}: {error}") from None
    return from_local(task, config.model_path, config.paths, config.require_acceptance)


def load_shadow(config: ServingConfig, task: str, registered_model: str, serving: LoadedModel) -> LoadedModel | None:
    """The model SERVE_SHADOW's alias points at, to score beside `serving`; None when shadow mode is off or
    the alias is unset or points at the served version (after a promote: nothing to compare)."""
    if config.shadow_alias is None:
        return None
    if serving.source != "registry":
        raise StageError(
            f"shadow mode (SERVE_SHADOW={config.shadow_alias}) needs the model registry, but the served model is"
            f" {serving.source} ({serving.version}): serve from the registry (--model-source registry)."
        )
    from ..registry import alias_version
    from ..tracking import client

    version = alias_version(client(), registered_model, config.shadow_alias)
    if version is None or version == serving.version:
        return None
    return from_registry(task, registered_model, config.paths, config.shadow_alias)


def from_registry(task: str, name: str, paths: Paths, alias: str = "champion") -> LoadedModel:
    if not store_exists(paths.root):
        raise StageError(f"no MLflow store at {tracking_uri()}")
    from ..registry import load_alias

    model, version = load_alias(name, alias)
    metrics = json.loads(version.tags.get("metrics", "{}"))
    registered = version.creation_timestamp / 1000
    return LoadedModel(model, task, name, str(version.version), "registry", metrics, registered)


def from_local(task: str, model_dir: Path, paths: Paths, require_acceptance: bool = True) -> LoadedModel:
    """The pipeline's own artifact (models/model, written by `train`), loaded without MLflow.

    Only an accepted model is loaded: `accept`'s verdict next to it must name this very artifact.
    """
    import cloudpickle

    artifact = model_dir / paths.model_file.name
    if not artifact.exists():
        raise StageError(f"no model at {artifact}: run `dvc repro` (or point SERVE_MODEL_PATH at a model).")
    if require_acceptance:
        require_accepted(model_dir)
    with artifact.open("rb") as handle:
        model = cloudpickle.load(handle)
    run_id = json.loads(paths.run_info.read_text()).get("run_id") if paths.run_info.exists() else None
    metrics = json.loads(paths.metrics.read_text())["model"]["test"] if paths.metrics.exists() else {}
    version = f"local-{(run_id or 'unknown')[:8]}"
    return LoadedModel(model, task, model_dir.name, version, "local", metrics, artifact.stat().st_mtime)
