"""Where and how tuning's trials run: Optuna storage, one seeded study per candidate family, worker processes.

What a trial computes (fit, score, cross-validate, prune) is objective.py. Every trial is an MLflow child
run of the training run.

Several processes (or machines) can tune one study: the process that creates a study also
queues its `n_trials` trials (WAITING), and every process claims queued trials until none
is left, so all of them together run exactly `n_trials`, however many join. Workers only
load studies, never create them: concurrent creation on an empty database races
(optuna/optuna#1092).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import StageError
from .metrics import HIGHER_IS_BETTER
from .objective import make_objective
from .secrets import shown_url

if TYPE_CHECKING:
    import optuna

    from .modelling import ProjectModels
    from .objective import TuningData
    from .params import Params, TrainParams, TuningParams

    LogTrial = Callable[[str, optuna.Study, optuna.trial.FrozenTrial], None]

STORAGE_ENV = "OPTUNA_STORAGE"  # overrides train.tuning.storage, so credentials stay out of params.yaml
JOURNAL_SCHEME = "journal:"  # journal:<file>: Optuna's journal file, shared by processes on one machine
QUEUED = "queued_trials"  # study user attribute, set once its trials are queued: workers may start
STUDY_UID = "uid"  # study user attribute: tells a study from an earlier one of the same name
# Thread pools of the estimators' native code, limited in local worker processes (see thread_limit).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# The library's modules whose code decides a trial's score (with the project's ProjectModels.code_files):
# a change to them starts a new study.
TRIAL_MODULES = ("metrics", "objective")


@dataclass
class CandidateResult:
    """The outcome of tuning one family."""

    family: str
    best_score: float
    best_params: dict[str, Any]
    trials: int
    pruned: int
    seconds: float = field(compare=False)
    study: str = field(compare=False, default="")  # the Optuna study the trials are in

    def summary(self) -> dict[str, Any]:
        """What goes to reports/: everything but the timing, so reruns give identical files."""
        return {
            "family": self.family,
            "best_score": round(self.best_score, 6),
            "best_params": self.best_params,
            "trials": self.trials,
            "pruned": self.pruned,
        }


def tune(
    family: str,
    space: dict[str, Any],
    data: TuningData,
    train_params: TrainParams,
    study_name: str,
    log_trial: LogTrial | None = None,
) -> CandidateResult:
    """Tune one family in this process, on `train.tuning.storage` (or OPTUNA_STORAGE; else in memory)."""
    url = storage_url(train_params.tuning.storage)
    storage = open_storage(url)
    study = create_study(study_name, storage, data.metric, train_params)
    started = time.perf_counter()
    objective = make_objective(family, space, data, train_params, threads_per_process(train_params.tuning.workers))
    run_queued(study, storage, objective, train_params.tuning, (family, data.metric), log_trial)
    seconds = time.perf_counter() - started
    if url is not None:  # a persistent study: other machines may still be running some of its trials
        wait_for_running(study, running_wait_seconds(train_params.tuning))
    return study_result(study, family, space, seconds)


def storage_url(configured: str | None) -> str | None:
    """OPTUNA_STORAGE, else `train.tuning.storage`; None means in memory."""
    url = os.environ.get(STORAGE_ENV, "").strip() or configured
    return normalise_url(url) if url else None


def normalise_url(url: str) -> str:
    """PostgreSQL through psycopg 3, the driver this project installs (a bare URL would ask for psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def open_storage(url: str | None, create_tables: bool = True) -> optuna.storages.BaseStorage:
    """The Optuna storage behind a URL: a database, a journal file (journal:<path>) or memory (None)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    if url is None:
        return optuna.storages.InMemoryStorage()
    if url.startswith(JOURNAL_SCHEME):
        from optuna.storages.journal import JournalFileBackend

        path = url.removeprefix(JOURNAL_SCHEME)
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(path))
        except OSError as error:
            raise StageError(f"cannot open the tuning journal {path}: {error.strerror}") from None
    try:
        return optuna.storages.RDBStorage(url, skip_table_creation=not create_tables)
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError, ImportError, ValueError) as error:
        raise StageError(f"cannot open the tuning storage {shown_url(url)}: {_first_line(error)}") from None


def refuse_sqlite(url: str) -> None:
    """SQLite has no row locks, so two processes can take the same queued trial: one process only."""
    if url.startswith("sqlite"):
        raise StageError(
            f"{shown_url(url)} cannot be shared by several tuning processes (SQLite cannot lock a trial to one of"
            " them): use PostgreSQL, or a journal file (journal:/path/to/studies.log) on one machine."
        )


def check_reachable(url: str) -> None:
    """Fail at once, with one line, when a database URL cannot be reached (a worker would wait in vain)."""
    if url.startswith(JOURNAL_SCHEME):
        directory = Path(url.removeprefix(JOURNAL_SCHEME)).parent
        if not directory.is_dir():
            raise StageError(f"cannot open the tuning journal {url}: {directory} is not a folder.")
        return
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except (SQLAlchemyError, ImportError, ValueError) as error:
        raise StageError(f"cannot reach the tuning storage {shown_url(url)}: {_first_line(error)}") from None


@contextmanager
def shared_storage(tuning: TuningParams) -> Iterator[str | None]:
    """The storage URL for this run: the configured one, or a journal file in a temporary folder
    when several local processes must share a study that would otherwise live in memory."""
    url = storage_url(tuning.storage)
    if url is not None and tuning.workers > 1:
        refuse_sqlite(url)
    if url is not None or tuning.workers == 1:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="optuna-") as folder:
        yield f"{JOURNAL_SCHEME}{Path(folder) / 'studies.log'}"


def code_version(contract_file: Path, models: ProjectModels) -> str:
    """What the trials run besides params and data: the project's model code, the scoring code, the
    contract, the libraries."""
    from importlib import import_module
    from importlib.metadata import version

    digest = hashlib.sha256(contract_file.read_bytes() if contract_file.exists() else b"")
    for code_file in models.code_files:
        digest.update(code_file.read_bytes())
    for name in TRIAL_MODULES:
        module_file = import_module(f".{name}", __package__).__file__
        digest.update(Path(module_file).read_bytes() if module_file else name.encode())
    for package in ("scikit-learn", *models.runtime_packages):
        digest.update(f"{package}=={version(package)}".encode())
    return digest.hexdigest()


def study_name(params: Params, family: str, data_version: str, code: str) -> str:
    """`<experiment>-<family>-<hash>`: the hash covers everything a trial's outcome depends on (the
    family's space, n_trials, cv_folds, metric, seed, task, data, code), so changing any of them starts a
    new study, while the same inputs resume or reuse the same one. Storage, workers and timeout are left
    out: they decide where and how fast the trials run, not what they find."""
    train = params.train
    space = {name: _plain_spec(spec) for name, spec in train.candidates[family].items()}
    identity = {
        "task": params.task,
        "family": family,
        "space": space,
        "n_trials": train.tuning.n_trials,
        "cv_folds": train.tuning.cv_folds,
        "metric": train.primary_metric,
        "seed": train.seed,
        "data": data_version,
        "code": code,
    }
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{params.mlflow.experiment}-{family}-{fingerprint}"


def sampler_and_pruner(seed: int | None) -> tuple[optuna.samplers.BaseSampler, optuna.pruners.BasePruner]:
    import optuna

    # constant_liar (on by default): a worker does not propose what another one is running.
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return sampler, optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)


def create_study(
    name: str, storage: optuna.storages.BaseStorage, metric: str, train_params: TrainParams
) -> optuna.Study:
    """Create (or load) the study and queue the trials it still lacks; done once, before workers start."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction: Literal["maximize", "minimize"] = "maximize" if HIGHER_IS_BETTER[metric] else "minimize"
    sampler, pruner = sampler_and_pruner(train_params.seed)
    study = optuna.create_study(
        study_name=name, storage=storage, load_if_exists=True, direction=direction, sampler=sampler, pruner=pruner
    )
    if QUEUED not in study.user_attrs:
        missing = train_params.tuning.n_trials - len(study.get_trials(deepcopy=False))
        for _ in range(missing):
            study.enqueue_trial({})  # no fixed values: the sampler proposes each trial's parameters
        study.set_user_attr(STUDY_UID, uuid.uuid4().hex)
        study.set_user_attr(QUEUED, train_params.tuning.n_trials)
    return study


def join_study(
    name: str, url: str, seed: int | None, wait_seconds: float, sleep: Callable[[float], None] = time.sleep
) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    """Load a study that train creates, waiting up to `wait_seconds` for it to appear."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    deadline = time.monotonic() + wait_seconds
    storage: optuna.storages.BaseStorage | None = None
    told = False
    while True:
        try:
            # Tables are train's to create (creating them from several processes races).
            storage = storage or open_storage(url, create_tables=False)
            sampler, pruner = sampler_and_pruner(seed)
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
            if QUEUED in study.user_attrs:
                return study, storage
        except (KeyError, SQLAlchemyError, optuna.exceptions.StorageInternalError, StageError):
            pass  # not created yet
        if time.monotonic() >= deadline:
            raise StageError(
                f"study {name} did not appear in {shown_url(url)} within {wait_seconds:g} s: run `train` with the"
                " same commit, params.yaml, data (dvc pull) and OPTUNA_STORAGE, or wait longer (--wait)."
            )
        if not told:
            print(f"Waiting up to {wait_seconds:g} s for train to create study {name} ...", flush=True)
            told = True
        sleep(1.0)


def run_queued(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    objective: Callable[[optuna.Trial], float],
    tuning: TuningParams,
    label: tuple[str, str],
    log_trial: LogTrial | None = None,
) -> int:
    """Run queued trials of the study until none is left (or the timeout passes); returns how many ran here.

    `label` is (family, metric), for the progress lines; `log_trial` records each trial as it finishes.
    """
    family, metric = label
    deadline = None if tuning.timeout is None else time.monotonic() + tuning.timeout
    study_id = storage.get_study_id_from_name(study.study_name)
    ran = 0
    while deadline is None or time.monotonic() < deadline:
        trial = _claim(study, storage, study_id)
        if trial is None:
            break
        finished = _run_trial(study, trial, objective)
        ran += 1
        _print_trial(study, finished, family, metric, tuning.n_trials)
        if log_trial is not None:
            log_trial(family, study, finished)
    return ran


def _claim(study: optuna.Study, storage: optuna.storages.BaseStorage, study_id: int) -> optuna.Trial | None:
    """Take a queued trial: the storage lets exactly one process move it from WAITING to RUNNING.
    (Study.ask would create a new trial when the queue is empty, so all workers would overshoot.)"""
    import optuna
    from optuna.trial import TrialState

    for waiting in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, waiting.number)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker took and finished it meanwhile
    return None


def _run_trial(
    study: optuna.Study, trial: optuna.Trial, objective: Callable[[optuna.Trial], float]
) -> optuna.trial.FrozenTrial:
    import optuna
    from optuna.trial import TrialState

    try:
        value = objective(trial)
    except optuna.TrialPruned:
        return study.tell(trial, state=TrialState.PRUNED)
    except BaseException:
        with suppress(ValueError, optuna.exceptions.UpdateFinishedTrialError):  # finished meanwhile: keep that
            study.tell(trial, state=TrialState.FAIL)  # interrupted or broken: never left RUNNING in a shared study
        raise
    return study.tell(trial, value)


def _print_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, family: str, metric: str, n_trials: int) -> None:
    state = trial.state.name.lower()
    value = f"{metric}={trial.value:.4f}" if trial.value is not None else state
    best = f"best {study.best_value:.4f}" if _has_complete(study) else "no complete trial yet"
    shown = ", ".join(f"{key}={_short(value)}" for key, value in trial.params.items())
    print(f"  [{family}] trial {trial.number + 1}/{n_trials}: {value} ({best}) {shown}", flush=True)


def running_wait_seconds(tuning: TuningParams) -> float:
    """How long train waits for other workers' last trials: the per-candidate cap, else ten minutes."""
    return tuning.timeout if tuning.timeout is not None else 600.0


def wait_for_running(study: optuna.Study, seconds: float, sleep: Callable[[float], None] = time.sleep) -> int:
    """Wait (bounded) for trials other workers are still running; returns how many never finished."""
    from optuna.trial import TrialState

    deadline = time.monotonic() + seconds
    told = False
    while running := len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))):
        if time.monotonic() >= deadline:
            print(f"  {running} trial(s) of {study.study_name} still running after {seconds:g} s: left out.")
            return running
        if not told:
            print(f"  waiting up to {seconds:g} s for {running} trial(s) other workers are running ...", flush=True)
            told = True
        sleep(0.5)
    return 0


def study_result(study: optuna.Study, family: str, space: dict[str, Any], seconds: float) -> CandidateResult:
    """The family's outcome, from every finished trial of the study, whichever worker ran it."""
    finished = [trial for trial in study.get_trials(deepcopy=False) if trial.state.is_finished()]
    if not any(trial.state.name == "COMPLETE" for trial in finished):
        raise StageError(f"no trial of {family} completed; check train.candidates.{family}.")
    fixed = {name: spec for name, spec in space.items() if not _is_searched(spec)}
    return CandidateResult(
        family=family,
        best_score=float(study.best_value),
        best_params=fixed | study.best_params,
        trials=len(finished),
        pruned=sum(trial.state.name == "PRUNED" for trial in finished),
        seconds=round(seconds, 3),
        study=study.study_name,
    )


@contextmanager
def worker_processes(count: int, url: str | None, params: Params, root: Path, package: str) -> Iterator[list[Any]]:
    """Start `count` local `tune-worker` processes (the command other machines run) on the studies.

    They get this run's params in a file (the same study names, even when params did not come from
    params.yaml) and the storage in OPTUNA_STORAGE. If train fails meanwhile, they are interrupted
    (their running trial is marked failed) rather than left to finish.
    """
    import subprocess

    import yaml

    if count == 0 or url is None:
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="tune-worker-") as folder:
        params_file = Path(folder) / "params.yaml"
        params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), sort_keys=False))
        program = f"from {package}.cli import main; main()"  # the project's CLI
        threads = str(threads_per_process(count + 1))
        env = os.environ | {STORAGE_ENV: url} | dict.fromkeys(THREAD_VARIABLES, threads)
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", program, "tune-worker", "--params", str(params_file), "--worker-id", str(index)],
                cwd=root,
                env=env,
            )
            for index in range(1, count + 1)
        ]
        try:
            yield processes
        except BaseException:
            _interrupt(processes)
            raise
        failed = _join(processes, running_wait_seconds(params.train.tuning) + 60)
        if failed:
            raise StageError(f"{failed} tune-worker process(es) failed; their messages are above.")


def threads_per_process(processes: int) -> int:
    """Cores per tuning process: OpenMP estimators (histogram boosting, LightGBM, XGBoost) take every
    core by default, and several processes doing so on the same cores slow each other down many times."""
    return max(1, (os.cpu_count() or 1) // processes)


@contextmanager
def thread_limit(processes: int) -> Iterator[None]:
    """This process's share of the cores while `processes` tune side by side."""
    if processes <= 1:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads_per_process(processes)):
        yield


def _join(processes: list[Any], seconds: float) -> int:
    """Wait for the workers (bounded); returns how many failed or had to be stopped."""
    import subprocess

    deadline = time.monotonic() + seconds
    failed = 0
    for process in processes:
        try:
            failed += process.wait(timeout=max(deadline - time.monotonic(), 0.1)) != 0
        except subprocess.TimeoutExpired:
            _interrupt([process])
            failed += 1
    return failed


def _interrupt(processes: list[Any]) -> None:
    import signal
    import subprocess

    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _plain_spec(spec: Any) -> Any:
    return spec.model_dump() if hasattr(spec, "model_dump") else spec


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _has_complete(study: optuna.Study) -> bool:
    return any(trial.state.name == "COMPLETE" for trial in study.trials)


def _is_searched(spec: Any) -> bool:
    from .params import Choices, Range

    return isinstance(spec, (Range, Choices))


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
