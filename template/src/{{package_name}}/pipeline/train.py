"""Stage train: fit the whole model (features + estimator), log it to MLflow, save it to models/."""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..features import build_model
from ..files import read_parquet, write_json
from ..metrics import is_classification
from ..schema import load_contract
from ..tracking import lineage_tags, start_run

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from ..params import Params, TrainParams
    from ..paths import Paths
    from ..schema import Contract

# Linear models need scaled inputs; trees do not care.
SCALED_ESTIMATORS = {"linear"}


def make_estimator(task: str, train: TrainParams) -> Any:
    """The estimator named in params, seeded, with its hyperparameters."""
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    choices = {
        "hist_gradient_boosting": (HistGradientBoostingClassifier, HistGradientBoostingRegressor, True),
        "random_forest": (RandomForestClassifier, RandomForestRegressor, True),
        "linear": (LogisticRegression, Ridge, False),
    }
    classifier, regressor, seeded = choices[train.estimator]
    cls = classifier if is_classification(task) else regressor
    options = {"random_state": train.seed} if seeded else {}
    if cls is LogisticRegression:
        options["max_iter"] = 1000
    try:
        return cls(**(options | train.hyperparameters))
    except TypeError as error:
        raise StageError(f"train.hyperparameters do not fit {cls.__name__}: {error}") from None


def fit(contract: Contract, task: str, train: TrainParams, frame: Any) -> Pipeline:
    """Fit features and estimator together on the training split."""
    from sklearn.utils._param_validation import InvalidParameterError

    model = build_model(contract, make_estimator(task, train), scale=train.estimator in SCALED_ESTIMATORS)
    features, target = contract.split_xy(frame)
    try:
        return model.fit(features, target)
    except InvalidParameterError as error:
        raise StageError(f"train.hyperparameters are invalid: {error}") from None


def run(params: Params, paths: Paths) -> dict[str, Any]:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    contract = load_contract(paths.schema)
    frame = read_parquet(paths.split("train"))
    started = time.perf_counter()
    model = fit(contract, params.task, params.train, frame)
    fit_seconds = round(time.perf_counter() - started, 3)

    example = contract.split_xy(frame.head(20))[0]
    signature = infer_signature(example, model.predict(example))
    requirements = pinned_requirements()
    # The artifact comes only from this pipeline, and cloudpickle loads fastest (serving
    # start-up); skops would need every estimator's internal types listed as trusted.
    save_options = {"signature": signature, "pip_requirements": requirements, "serialization_format": "cloudpickle"}
    with start_run(params.mlflow.experiment, run_name=f"train-{params.train.estimator}") as active:
        mlflow.set_tags(lineage_tags(paths.root) | {"stage": "train", "task": params.task})
        mlflow.log_params(
            {"estimator": params.train.estimator, "seed": params.train.seed, "train_rows": len(frame)}
            | {f"hp.{key}": value for key, value in params.train.hyperparameters.items()}
        )
        mlflow.log_metric("fit_seconds", fit_seconds)
        info = mlflow.sklearn.log_model(model, name="model", **save_options)
        run_id = active.info.run_id

    shutil.rmtree(paths.model, ignore_errors=True)
    mlflow.sklearn.save_model(model, paths.model, **save_options)
    run_info = {"run_id": run_id, "model_uri": info.model_uri, "experiment": params.mlflow.experiment}
    write_json(paths.run_info, run_info)
    return {"estimator": params.train.estimator, "fit_seconds": fit_seconds, "mlflow_run": run_id}


def pinned_requirements() -> list[str]:
    """The model's runtime needs, given explicitly: MLflow's inference of them costs seconds."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "pandas", "numpy", "cloudpickle")]
