"""Stage train: tune every candidate family, keep the best, refit it, log and save the model.

The winner is the whole scikit-learn Pipeline (features + estimator): logged as an MLflow
model in the parent run, with one child run per tuning trial, and saved to models/model
with its reference profile (models/model/profile.json), which monitoring compares traffic with.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import tracking
from ..errors import StageError
from ..estimators import FAMILIES
from ..files import read_parquet, write_json
from ..metrics import HIGHER_IS_BETTER
from ..monitoring.profile import build_profile
from ..schema import load_contract
from ..tracking import lineage_tags, prepared_data_hash, start_run, tracking_enabled
from ..tuning import CandidateResult, TuningData, fit_model, tune

if TYPE_CHECKING:
    from ..params import Params
    from ..paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    unknown = sorted(set(params.train.candidates) - set(FAMILIES))
    if unknown:
        raise StageError(f"train.candidates has unknown families {unknown}; this project has {', '.join(FAMILIES)}.")
    data = TuningData(
        contract=load_contract(paths.schema),
        train=read_parquet(paths.split("train")),
        validation=read_parquet(paths.split("validation")),
        task=params.task,
        metric=params.train.primary_metric,
    )
    if tracking_enabled():
        with start_run(params.mlflow.experiment, run_name="train") as active:
            return train_and_log(params, paths, data, active.info.run_id)
    return train_and_log(params, paths, data, None)


def train_and_log(params: Params, paths: Paths, data: TuningData, run_id: str | None) -> dict[str, Any]:
    log_trial = child_run_logger(run_id) if run_id else None
    data_hash = prepared_data_hash(paths.root)[:8]
    results = []
    for family, space in params.train.candidates.items():
        print(f"Tuning {family} ({params.train.tuning.n_trials} trials, {data.metric}):", flush=True)
        study_name = f"{params.mlflow.experiment}-{family}-{data_hash}"
        results.append(tune(family, space, data, params.train, study_name, log_trial))
    leaderboard = rank(results, data.metric)
    winner = leaderboard[0]
    print(f"Winner: {winner.family} with {data.metric}={winner.best_score:.4f}", flush=True)

    started = time.perf_counter()
    model = fit_model(data, winner.family, winner.best_params, params.train.seed, data.train)
    fit_seconds = round(time.perf_counter() - started, 3)

    report = {
        "metric": data.metric,
        "winner": winner.summary(),
        "leaderboard": [result.summary() for result in leaderboard],
    }
    write_json(paths.leaderboard, report)
    save_model(model, data, paths)
    profile = build_profile(model, data.contract, data.train, data.validation, params.task, params.monitor.profile)
    write_json(paths.model_profile, profile)  # inside the model folder: it travels with the artifact
    run_info: dict[str, Any] = {"run_id": run_id, "experiment": params.mlflow.experiment, "family": winner.family}
    if run_id is not None:
        logged = LoggedWinner(report, leaderboard, fit_seconds, profile)
        run_info["model_uri"] = log_winner(model, data, params, paths, logged)
    write_json(paths.run_info, run_info)
    return {"winner": winner.family, data.metric: round(winner.best_score, 4), "mlflow_run": run_id}


def rank(results: list[CandidateResult], metric: str) -> list[CandidateResult]:
    """Best first by the primary metric; ties go to the family listed first in params."""
    sign = -1 if HIGHER_IS_BETTER[metric] else 1
    return sorted(results, key=lambda result: sign * result.best_score)


def model_save_options(data: TuningData) -> dict[str, Any]:
    """Signature and pinned requirements, shared by the local copy and the logged model."""
    from mlflow.models import infer_signature

    example = data.contract.split_xy(data.train.head(20))[0]
    # The artifact comes only from this pipeline, and cloudpickle loads fastest (serving
    # start-up); skops would need every estimator's internal types listed as trusted.
    return {
        "signature": infer_signature(example),
        "pip_requirements": pinned_requirements(),
        "serialization_format": "cloudpickle",
    }


def save_model(model: Any, data: TuningData, paths: Paths) -> None:
    import mlflow.sklearn

    shutil.rmtree(paths.model, ignore_errors=True)
    mlflow.sklearn.save_model(model, paths.model, **model_save_options(data))


@dataclass(frozen=True)
class LoggedWinner:
    """What the parent run records besides the model: the leaderboard, the fit time, the profile."""

    report: dict[str, Any]
    leaderboard: list[CandidateResult]
    fit_seconds: float
    profile: dict[str, Any]


def log_winner(model: Any, data: TuningData, params: Params, paths: Paths, logged: LoggedWinner) -> str:
    """Params, tuning results, lineage and the model itself, on the parent run."""
    import mlflow
    import mlflow.sklearn

    leaderboard, winner = logged.leaderboard, logged.leaderboard[0]
    mlflow.set_tags(lineage_tags(paths.root) | {"stage": "train", "task": params.task, "winner": winner.family})
    mlflow.log_params(
        {"winner": winner.family, "seed": params.train.seed, "train_rows": len(data.train)}
        | {f"tuning.{key}": value for key, value in params.train.tuning.model_dump().items()}
        | {f"hp.{key}": value for key, value in winner.best_params.items()}
    )
    mlflow.log_metrics(
        {f"tuning_best_{result.family}": result.best_score for result in leaderboard}
        | {f"tuning_seconds_{result.family}": result.seconds for result in leaderboard}
        | {"fit_seconds": logged.fit_seconds}
    )
    mlflow.log_dict(logged.report, "leaderboard.json")
    mlflow.log_dict(logged.profile, "profile.json")  # a registry version finds its profile through its run
    lock = paths.root / "uv.lock"
    if lock.exists():
        mlflow.log_artifact(str(lock), artifact_path="environment")
    info = mlflow.sklearn.log_model(model, name="model", **model_save_options(data))
    return info.model_uri


def child_run_logger(parent_run_id: str) -> Any:
    """Log each tuning trial as a child run, through the client: far cheaper than fluent runs."""
    from mlflow.entities import Metric, Param
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    client = tracking.client()
    experiment_id = client.get_run(parent_run_id).info.experiment_id

    def log_trial(family: str, number: int, trial_params: dict, metrics: dict[str, float], state: str) -> None:
        child = client.create_run(
            experiment_id,
            tags={MLFLOW_PARENT_RUN_ID: parent_run_id, MLFLOW_RUN_NAME: f"{family}-{number}", "family": family},
        )
        now = int(time.time() * 1000)
        client.log_batch(
            child.info.run_id,
            metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
            params=[
                Param(key, json.dumps(value) if not isinstance(value, str) else value)
                for key, value in trial_params.items()
            ]
            + [Param("family", family)],
        )
        client.set_terminated(child.info.run_id, status="FINISHED" if state == "complete" else "KILLED")

    return log_trial


def pinned_requirements() -> list[str]:
    """The model's runtime needs, given explicitly: MLflow's inference of them costs seconds."""
    from importlib.metadata import version

    from ..estimators import RUNTIME_PACKAGES

    return [
        f"{name}=={version(name)}" for name in ("scikit-learn", "pandas", "numpy", "cloudpickle", *RUNTIME_PACKAGES)
    ]
