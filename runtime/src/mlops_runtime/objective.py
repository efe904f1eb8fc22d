"""What decides a trial's score: the data every trial sees, how a model is fitted, scored and cross-validated.

This is the ML half of tuning; where and how trials run (storage, studies, worker processes) is
tuning.py. A study's name covers this module's code (tuning.code_version): a change here starts new
studies, a change to the runner does not.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import StageError
from .metrics import is_classification, score

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from .modelling import ProjectModels
    from .params import Choices, Range, TrainParams
    from .schema import Contract


@dataclass
class TuningData:
    """What every trial needs: the contract, the splits, the task, its primary metric and the project's models."""

    contract: Contract
    train: pd.DataFrame
    validation: pd.DataFrame
    task: str
    metric: str
    models: ProjectModels


def fit_model(
    data: TuningData, family: str, hyperparameters: dict[str, Any], seed: int, frame: pd.DataFrame, threads: int = -1
) -> Pipeline:
    """Fit features and estimator together; invalid hyperparameters become a readable error.

    A forest grows its trees on `threads` threads (-1: every core), the same trees as on one; the
    fitted model keeps n_jobs=None, so it predicts on one thread.
    """
    from joblib import parallel_config

    model = data.models.make_model(family, data.task, hyperparameters, seed, data.contract)
    features, target = data.contract.split_xy(frame)
    try:
        with parallel_config(backend="threading", n_jobs=threads):
            return model.fit(features, target)
    except ValueError as error:
        raise StageError(f"{family} with {hyperparameters} cannot be fitted: {error}") from None


def suggest(trial: optuna.Trial, name: str, spec: Range | Choices | Any) -> Any:
    """One hyperparameter from its search space: a range, a list of choices, or a fixed value."""
    from .params import Choices, Range

    if isinstance(spec, Choices):
        return trial.suggest_categorical(name, spec.choices)
    if isinstance(spec, Range):
        if isinstance(spec.low, int) and isinstance(spec.high, int) and not isinstance(spec.step, float):
            return trial.suggest_int(name, spec.low, spec.high, log=spec.log, step=int(spec.step or 1))
        return trial.suggest_float(name, float(spec.low), float(spec.high), log=spec.log, step=spec.step)
    return spec


def make_objective(
    family: str, space: dict[str, Any], data: TuningData, train_params: TrainParams, threads: int = -1
) -> Callable[[optuna.Trial], float]:
    """A trial: suggest `family`'s hyperparameters from `space`, fit on `threads` threads, return the metric."""
    import socket

    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)
        hyperparameters = {name: suggest(trial, name, spec) for name, spec in space.items()}
        if train_params.tuning.cv_folds >= 2:
            metrics = cross_validate(trial, family, hyperparameters, data, train_params, threads)
        else:
            model = fit_model(data, family, hyperparameters, train_params.seed, data.train, threads)
            metrics = score(model, data.task, *data.contract.split_xy(data.validation))
        trial.set_user_attr("metrics", metrics)
        return metrics[data.metric]

    return objective


def cross_validate(
    trial: optuna.Trial,
    family: str,
    hyperparameters: dict[str, Any],
    data: TuningData,
    train_params: TrainParams,
    threads: int = -1,
) -> dict[str, float]:
    """k-fold scores on train (stratified for classification), pruned after each fold."""
    import optuna
    from sklearn.model_selection import KFold, StratifiedKFold

    folds = train_params.tuning.cv_folds
    splitter_cls = StratifiedKFold if is_classification(data.task) else KFold
    splitter = splitter_cls(n_splits=folds, shuffle=True, random_state=train_params.seed)
    target = data.train[data.contract.target.name]
    fold_metrics: list[dict[str, float]] = []
    for step, (fit_index, score_index) in enumerate(splitter.split(data.train, target)):
        model = fit_model(data, family, hyperparameters, train_params.seed, data.train.iloc[fit_index], threads)
        fold_metrics.append(score(model, data.task, *data.contract.split_xy(data.train.iloc[score_index])))
        trial.report(statistics.fmean(m[data.metric] for m in fold_metrics), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return {name: statistics.fmean(m[name] for m in fold_metrics) for name in fold_metrics[0]}
