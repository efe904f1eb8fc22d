"""Stage train: tune every candidate family, keep the best, refit it, log and save the model.

The winner is the whole scikit-learn Pipeline (features + estimator): logged as an MLflow
model in the parent run, with one child run per tuning trial, and saved to models/model
with its reference profile (models/model/profile.json), which monitoring compares traffic with.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import tracking
from ..errors import StageError
from ..files import read_parquet, write_json
from ..metrics import HIGHER_IS_BETTER
from ..monitoring.profile import build_profile
from ..objective import TuningData, fit_model, make_objective
from ..schema import load_contract
from ..secrets import masked
from ..tracking import lineage_tags, start_run, tracking_enabled
from ..tuning import (
    STUDY_UID,
    CandidateResult,
    check_reachable,
    code_version,
    create_study,
    join_study,
    open_storage,
    refuse_sqlite,
    run_queued,
    running_wait_seconds,
    shared_storage,
    storage_url,
    study_name,
    study_result,
    thread_limit,
    wait_for_running,
    worker_processes,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from ..modelling import ProjectModels
    from ..params import Params
    from ..paths import Paths


@contextmanager
def training_run(params: Params) -> Iterator[str | None]:
    """The MLflow run that tuning, the winner and evaluate log to (its id); None when tracking is off."""
    if not tracking_enabled():
        yield None
        return
    with start_run(params.mlflow.experiment, run_name="train") as active:
        yield active.info.run_id


def tuning_data(params: Params, paths: Paths, models: ProjectModels) -> TuningData:
    """What every trial needs, as train and every tune-worker read it."""
    unknown = sorted(set(params.train.candidates) - set(models.families))
    if unknown:
        raise StageError(
            f"train.candidates has unknown families {unknown}; this project has {', '.join(models.families)}."
        )
    return TuningData(
        contract=load_contract(paths.schema),
        train=read_parquet(paths.split("train")),
        validation=read_parquet(paths.split("validation")),
        task=params.task,
        metric=params.train.primary_metric,
        models=models,
    )


def data_version(paths: Paths) -> str:
    """A hash of the splits trials read: what tuning saw, even when prepare ran outside DVC."""
    digest = hashlib.sha256()
    for name in ("train", "validation"):
        with paths.split(name).open("rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def study_names(params: Params, paths: Paths, models: ProjectModels) -> dict[str, str]:
    """One study per family; train and every worker derive the same names from the same checkout."""
    data, code = data_version(paths), code_version(paths.schema, models)
    return {family: study_name(params, family, data, code) for family in params.train.candidates}


def tune_candidates(
    params: Params, paths: Paths, data: TuningData, logger: TrialLogger | None
) -> list[CandidateResult]:
    """Tune every family: studies created here first, then `workers - 1` tune-worker processes join
    while this process tunes too. Trials other processes ran are logged at the end, each once."""
    tuning = params.train.tuning
    names = study_names(params, paths, data.models)
    log_trial = logger.log if logger is not None else None
    with shared_storage(tuning) as url:
        storage = open_storage(url)
        studies = {family: create_study(names[family], storage, data.metric, params.train) for family in names}
        seconds: dict[str, float] = {}
        started_all = time.perf_counter()  # worker start-up included: what a user waits for
        with (
            worker_processes(tuning.workers - 1, url, params, paths.root, data.models.package),
            thread_limit(tuning.workers),
        ):
            for family, space in params.train.candidates.items():
                print(f"Tuning {family} ({tuning.n_trials} trials, {data.metric}, study {names[family]}):", flush=True)
                started = time.perf_counter()
                objective = make_objective(family, space, data, params.train)
                run_queued(studies[family], storage, objective, tuning, (family, data.metric), log_trial)
                seconds[family] = time.perf_counter() - started
        print(
            f"Tuned {tuning.n_trials * len(names)} trials in {time.perf_counter() - started_all:.2f} s"
            f" ({tuning.workers} worker process{'es' if tuning.workers > 1 else ''}).",
            flush=True,
        )
        results = []
        for family, space in params.train.candidates.items():
            if url is not None:  # trials of workers on other machines may still be running
                wait_for_running(studies[family], running_wait_seconds(tuning))
            results.append(study_result(studies[family], family, space, seconds[family]))
            if logger is not None:
                logger.log_rest(family, studies[family], persistent=storage_url(tuning.storage) is not None)
    return results


def work(
    params: Params, paths: Paths, models: ProjectModels, worker_id: int | None = None, wait_seconds: float = 600.0
) -> dict[str, Any]:
    """A tune-worker: join train's studies (same checkout and data) and run trials until each holds n_trials."""
    url = storage_url(params.train.tuning.storage)
    if url is None:
        raise StageError(
            "a tune-worker needs the storage train uses: set OPTUNA_STORAGE (or train.tuning.storage) to its URL."
        )
    data = tuning_data(params, paths, models)
    refuse_sqlite(url)
    check_reachable(url)
    seed = None if worker_id is None else params.train.seed + worker_id  # workers must not propose alike
    ran: dict[str, int] = {}
    for family, name in study_names(params, paths, models).items():
        study, storage = join_study(name, url, seed, wait_seconds)
        objective = make_objective(family, params.train.candidates[family], data, params.train)
        ran[family] = run_queued(study, storage, objective, params.train.tuning, (family, data.metric))
    return {"trials": ran}


def tune(params: Params, paths: Paths, data: TuningData, run_id: str | None) -> list[CandidateResult]:
    """Tune every candidate family of params.yaml (a child run per trial under `run_id`); best first."""
    results = tune_candidates(params, paths, data, TrialLogger(run_id) if run_id else None)
    leaderboard = rank(results, data.metric)
    print(f"Winner: {leaderboard[0].family} with {data.metric}={leaderboard[0].best_score:.4f}", flush=True)
    return leaderboard


@dataclass(frozen=True)
class Refit:
    """The winning family refitted on the train split with its best parameters."""

    model: Any
    family: str
    seconds: float


def refit(winner: CandidateResult, data: TuningData, params: Params) -> Refit:
    """Fit the winning family's best parameters on the train split: the model every later stage judges."""
    started = time.perf_counter()
    model = fit_model(data, winner.family, winner.best_params, params.train.seed, data.train)
    return Refit(model, winner.family, round(time.perf_counter() - started, 3))


def save_and_log(
    winner: Refit,
    leaderboard: list[CandidateResult],
    data: TuningData,
    params: Params,
    paths: Paths,
    run_id: str | None,
) -> dict[str, Any]:
    """The leaderboard, the model and its reference profile under models/, and all of it on the MLflow run."""
    report = {
        "metric": data.metric,
        "winner": leaderboard[0].summary(),
        "leaderboard": [result.summary() for result in leaderboard],
    }
    write_json(paths.leaderboard, report)
    save_model(winner.model, data, paths)
    profile = build_profile(
        winner.model, data.contract, data.train, data.validation, params.task, params.monitor.profile
    )
    write_json(paths.model_profile, profile)  # inside the model folder: it travels with the artifact
    run_info: dict[str, Any] = {"run_id": run_id, "experiment": params.mlflow.experiment, "family": winner.family}
    if run_id is not None:
        logged = LoggedWinner(report, leaderboard, winner.seconds, profile)
        run_info["model_uri"] = log_winner(winner.model, data, params, paths, logged)
    write_json(paths.run_info, run_info)
    return {"winner": winner.family, data.metric: round(leaderboard[0].best_score, 4), "mlflow_run": run_id}


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
        "pip_requirements": pinned_requirements(data.models.runtime_packages),
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
    studies = {f"optuna_study_{result.family}": result.study for result in leaderboard if result.study}
    mlflow.set_tags(
        masked(lineage_tags(paths.root) | studies | {"stage": "train", "task": params.task, "winner": winner.family})
    )
    mlflow.log_params(
        masked(
            {"winner": winner.family, "seed": params.train.seed, "train_rows": len(data.train)}
            | {f"tuning.{key}": value for key, value in params.train.tuning.model_dump().items()}
            | {f"hp.{key}": value for key, value in winner.best_params.items()}
        )
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


class TrialLogger:
    """Each tuning trial as one MLflow child run of the training run, whichever worker ran it.

    Trials this process runs are logged as they finish; the others after all workers are done.
    Children carry the study's name and uid, so a study reused from a persistent storage is
    not logged twice: its trials already have their child runs, under the run that tuned them.
    Through the client: far cheaper than fluent runs.
    """

    def __init__(self, parent_run_id: str) -> None:
        self.client = tracking.client()
        self.parent_run_id = parent_run_id
        self.experiment_id = self.client.get_run(parent_run_id).info.experiment_id
        self.logged: set[tuple[str, int]] = set()

    def log(self, family: str, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from mlflow.entities import Metric, Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        uid = str(study.user_attrs.get(STUDY_UID, study.study_name))
        if (uid, trial.number) in self.logged:
            return
        started, ended = (_millis(moment) for moment in (trial.datetime_start, trial.datetime_complete))
        tags = {
            MLFLOW_PARENT_RUN_ID: self.parent_run_id,
            MLFLOW_RUN_NAME: f"{family}-{trial.number}",
            "family": family,
            "optuna_study": study.study_name,
            "optuna_study_uid": uid,
            "optuna_trial": str(trial.number),
            "tuning_worker": str(trial.user_attrs.get("worker", "")),
        }
        child = self.client.create_run(self.experiment_id, start_time=started, tags=tags)
        metrics = trial.user_attrs.get("metrics", {})
        self.client.log_batch(
            child.info.run_id,
            metrics=[Metric(key, float(value), ended or started or 0, 0) for key, value in metrics.items()],
            params=[
                Param(key, json.dumps(value) if not isinstance(value, str) else value)
                for key, value in trial.params.items()
            ]
            + [Param("family", family)],
        )
        status = "FINISHED" if trial.state.name == "COMPLETE" else "KILLED"
        self.client.set_terminated(child.info.run_id, status=status, end_time=ended)
        self.logged.add((uid, trial.number))

    def log_rest(self, family: str, study: optuna.Study, persistent: bool) -> None:
        """Log the finished trials not logged yet (run by other workers, or before, in a resumed study)."""
        uid = str(study.user_attrs.get(STUDY_UID, study.study_name))
        if persistent:
            self.logged |= {(uid, number) for number in self._numbers_in_store(uid)}
        for trial in study.get_trials(deepcopy=False):
            if trial.state.is_finished():
                self.log(family, study, trial)

    def _numbers_in_store(self, uid: str) -> set[int]:
        """Trial numbers of a study that already have child runs in the tracking store."""
        numbers: set[int] = set()
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], f"tags.optuna_study_uid = '{uid}'", max_results=1000, page_token=token
            )
            numbers |= {int(run.data.tags["optuna_trial"]) for run in page if "optuna_trial" in run.data.tags}
            token = page.token
            if not token:
                return numbers


def _millis(moment: Any) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def pinned_requirements(runtime_packages: Sequence[str]) -> list[str]:
    """The model's runtime needs, given explicitly: MLflow's inference of them costs seconds."""
    from importlib.metadata import version

    return [
        f"{name}=={version(name)}" for name in ("scikit-learn", "pandas", "numpy", "cloudpickle", *runtime_packages)
    ]
