"""Explain one logged prediction: replay its input, step by step, through the model that answered it.

`explain REQUEST_ID` (the CLI) reads the request from the prediction log and loads the artifact
that served it, by the logged model version: `local-...` is the project's models/model (and must
still be that version), a number is that version of the registered model in the MLflow registry.
The replay shows the logged input, the contract's model view of it (`Contract.frame`, exactly what
the service hands the model), the output of every feature step with its feature names, and the
estimator's answer, then compares that answer with the one the service logged. A request whose pii
fields were never logged cannot be replayed exactly, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .errors import StageError
from .files import plain

if TYPE_CHECKING:
    from .paths import Paths
    from .schema import Contract
    from .serving.config import ServingConfig

# Relative tolerance between logged and replayed numbers: the same arithmetic on the same floats
# gives the same bits, but a BLAS may order a sum differently on another machine.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Step:
    """One stage of the replay: its name, what computed it, and the values it gave (name -> value)."""

    name: str
    source: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Explanation:
    """A logged request replayed: every step, the logged and replayed answers, and where they differ."""

    request_id: str
    created_at: float
    model_version: str
    steps: list[Step]
    logged: dict[str, Any]
    replayed: dict[str, Any]
    differences: list[str]

    @property
    def matches(self) -> bool:
        return not self.differences


def explain(
    config: ServingConfig, task: str, registered_model: str, contract: Contract, request_id: str
) -> Explanation:
    """Read `request_id` from the prediction log, load the model version that answered it, replay and compare."""
    from .serving.predlog import logged_prediction

    logged = logged_prediction(config.prediction_log_url, request_id)
    if logged is None:
        raise StageError(f"no prediction with request id {request_id!r} in the prediction log.")
    require_replayable(contract, logged["input"], request_id)
    model = served_model(config, task, registered_model, logged["model_version"])
    steps, replayed = replay(model, contract, task, logged["input"])
    return Explanation(
        request_id,
        float(logged["created_at"]),
        logged["model_version"],
        steps,
        logged["output"],
        replayed,
        differences(logged["output"], replayed),
    )


def require_replayable(contract: Contract, row: dict[str, Any], request_id: str) -> None:
    """Refuse an input that lacks features: pii fields are never logged, and a contract can change."""
    absent = [name for name in contract.feature_names if name not in row]
    pii = [name for name in absent if name in contract.pii_features]
    if pii:
        raise StageError(
            f"request {request_id} cannot be replayed exactly: its pii field(s) {', '.join(pii)} are never"
            " written to the prediction log."
        )
    if absent:
        raise StageError(
            f"request {request_id} cannot be replayed: its logged input has no {', '.join(absent)}, which"
            " schema.yaml now requires (the contract changed since)."
        )


def served_model(config: ServingConfig, task: str, registered_model: str, version: str) -> Any:
    """The fitted Pipeline that answered as `version`: models/model for `local-...`, else that registry version."""
    if not version.startswith("local-"):
        return registry_version(registered_model, version, config.paths)
    from .serving.loader import load_model

    loaded = load_model(replace(config, model_source="local"), task, registered_model)
    if loaded.version != version:
        raise StageError(
            f"the request was answered by {version}, but {config.model_path} now holds {loaded.version}:"
            " restore that model (git checkout, then dvc checkout) to replay it."
        )
    return loaded.model


def registry_version(name: str, version: str, paths: Paths) -> Any:
    """Version `version` of the registered model `name`, as MLflow stored it (`models:/<name>/<version>`)."""
    from .tracking import client, store_exists, tracking_uri

    if not store_exists(paths.root):
        raise StageError(f"the request was answered by {name} version {version}; no MLflow store at {tracking_uri()}.")
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    try:
        client().get_model_version(name, version)
    except MlflowException:
        raise StageError(
            f"the request was answered by {name} version {version}, not in the registry at {tracking_uri()}."
        ) from None
    return mlflow.sklearn.load_model(f"models:/{name}/{version}")


def replay(model: Any, contract: Contract, task: str, row: dict[str, Any]) -> tuple[list[Step], dict[str, Any]]:
    """Every step of `model` on one logged input, and the answer in the service's form."""
    from .serving.loader import LoadedModel

    frame = contract.frame([row])
    steps = [
        Step("input", "the prediction log", dict(row)),
        Step("model view", "Contract.frame", {str(name): plain(value) for name, value in frame.iloc[0].items()}),
    ]
    transforms, estimator = pipeline_parts(model)
    data: Any = frame
    for index, name, transform in transforms:
        data = transform.transform(data)
        values = first_row(data)
        names = feature_names(model, index, len(values))
        steps.append(Step(name, type(transform).__name__, dict(zip(names, values, strict=True))))
    # The service's own answer code, here on the last step's output: the same form as the log.
    answer = LoadedModel(estimator, task, "", "", "").predict(data)[0]
    probabilities = {f"probability of {label}": value for label, value in answer.get("probabilities", {}).items()}
    steps.append(Step("estimator", type(estimator).__name__, {"prediction": answer["prediction"]} | probabilities))
    return steps, answer


def pipeline_parts(model: Any) -> tuple[list[tuple[int, str, Any]], Any]:
    """The transforming steps (position, name, step) before the estimator, and the estimator."""
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline):
        return [], model
    steps = [(index, name, step) for index, (name, step) in enumerate(model.steps[:-1])]
    return [(index, name, step) for index, name, step in steps if step not in (None, "passthrough")], model.steps[-1][1]


def feature_names(model: Any, index: int, width: int) -> list[str]:
    """The names of the columns step `index` puts out; x0, x1, ... where the steps cannot say."""
    try:
        names = [str(name) for name in model[: index + 1].get_feature_names_out()]
    except (AttributeError, TypeError, ValueError, NotImplementedError):
        names = []
    return names if len(names) == width else [f"x{position}" for position in range(width)]


def first_row(data: Any) -> list[Any]:
    """The first row of a step's output (array, sparse matrix or DataFrame) as plain values."""
    import numpy as np

    dense = data[:1].toarray() if hasattr(data, "toarray") else np.asarray(data)[:1]
    return [plain(value) for value in dense[0]]


def differences(logged: dict[str, Any], replayed: dict[str, Any]) -> list[str]:
    """Where the replayed answer departs from the logged one (empty when they match)."""
    found = []
    if not same(logged.get("prediction"), replayed.get("prediction")):
        found.append(f"prediction: logged {logged.get('prediction')!r}, replayed {replayed.get('prediction')!r}")
    logged_p, replayed_p = logged.get("probabilities") or {}, replayed.get("probabilities") or {}
    for label in sorted(set(logged_p) | set(replayed_p)):
        if not same(logged_p.get(label), replayed_p.get(label)):
            found.append(f"probability of {label}: logged {logged_p.get(label)!r}, replayed {replayed_p.get(label)!r}")
    return found


def same(logged: Any, replayed: Any) -> bool:
    """Numbers within TOLERANCE; anything else (class labels, missing values) exactly, type included."""
    numbers = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (logged, replayed))
    if numbers and (isinstance(logged, float) or isinstance(replayed, float)):
        return math.isclose(logged, replayed, rel_tol=TOLERANCE, abs_tol=1e-12)
    return type(logged) is type(replayed) and logged == replayed
