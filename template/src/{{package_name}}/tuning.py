"""Hyperparameter search with Optuna: one seeded study per candidate family.

Each trial fits the whole model (features + estimator) and scores it with the task's
primary metric, on the validation split or, with `cv_folds >= 2`, by k-fold
cross-validation on train, where the running mean is reported after each fold so that
unpromising trials are pruned early. Every trial is an MLflow child run of the training run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import StageError
from .estimators import NEEDS_SCALING, make_estimator
from .features import build_model
from .metrics import HIGHER_IS_BETTER, is_classification, score

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from .params import Choices, Range, TrainParams
    from .schema import Contract


@dataclass
class CandidateResult:
    """The outcome of tuning one family."""

    family: str
    best_score: float
    best_params: dict[str, Any]
    trials: int
    pruned: int
    seconds: float = field(compare=False)

    def summary(self) -> dict[str, Any]:
        """What goes to reports/: everything but the timing, so reruns give identical files."""
        return {
            "family": self.family,
            "best_score": round(self.best_score, 6),
            "best_params": self.best_params,
            "trials": self.trials,
            "pruned": self.pruned,
        }


@dataclass
class TuningData:
    """What every trial needs: the contract, the splits, the task and its primary metric."""

    contract: Contract
    train: pd.DataFrame
    validation: pd.DataFrame
    task: str
    metric: str


def fit_model(
    data: TuningData, family: str, hyperparameters: dict[str, Any], seed: int, frame: pd.DataFrame
) -> Pipeline:
    """Fit features and estimator together; invalid hyperparameters become a readable error."""
    estimator = make_estimator(family, data.task, hyperparameters, seed)
    model = build_model(data.contract, estimator, scale=family in NEEDS_SCALING)
    features, target = data.contract.split_xy(frame)
    try:
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


def tune(
    family: str,
    space: dict[str, Any],
    data: TuningData,
    train_params: TrainParams,
    study_name: str,
    log_trial: Any = None,
) -> CandidateResult:
    """Run one family's study; `log_trial(family, number, params, metrics, state)` records each trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuning = train_params.tuning
    direction: Literal["maximize", "minimize"] = "maximize" if HIGHER_IS_BETTER[data.metric] else "minimize"
    study = optuna.create_study(
        study_name=study_name,
        storage=tuning.storage,
        load_if_exists=tuning.storage is not None,
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=train_params.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )

    def objective(trial: optuna.Trial) -> float:
        hyperparameters = {name: suggest(trial, name, spec) for name, spec in space.items()}
        if tuning.cv_folds >= 2:
            metrics = cross_validate(trial, family, hyperparameters, data, train_params)
        else:
            model = fit_model(data, family, hyperparameters, train_params.seed, data.train)
            metrics = score(model, data.task, *data.contract.split_xy(data.validation))
        trial.set_user_attr("metrics", metrics)
        return metrics[data.metric]

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        state = trial.state.name.lower()
        value = f"{data.metric}={trial.value:.4f}" if trial.value is not None else state
        best = f"best {study.best_value:.4f}" if _has_complete(study) else "no complete trial yet"
        shown = ", ".join(f"{key}={_short(value)}" for key, value in trial.params.items())
        print(f"  [{family}] trial {trial.number + 1}/{tuning.n_trials}: {value} ({best}) {shown}", flush=True)
        if log_trial is not None:
            log_trial(family, trial.number, trial.params, trial.user_attrs.get("metrics", {}), state)

    started = time.perf_counter()
    study.optimize(objective, n_trials=tuning.n_trials, timeout=tuning.timeout, callbacks=[report])
    if not _has_complete(study):
        raise StageError(f"no trial of {family} completed; check train.candidates.{family}.")
    fixed = {name: spec for name, spec in space.items() if not _is_searched(spec)}
    return CandidateResult(
        family=family,
        best_score=float(study.best_value),
        best_params=fixed | study.best_params,
        trials=len(study.trials),
        pruned=sum(trial.state.name == "PRUNED" for trial in study.trials),
        seconds=round(time.perf_counter() - started, 3),
    )


def cross_validate(
    trial: optuna.Trial, family: str, hyperparameters: dict[str, Any], data: TuningData, train_params: TrainParams
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
        model = fit_model(data, family, hyperparameters, train_params.seed, data.train.iloc[fit_index])
        fold_metrics.append(score(model, data.task, *data.contract.split_xy(data.train.iloc[score_index])))
        trial.report(statistics.fmean(m[data.metric] for m in fold_metrics), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return {name: statistics.fmean(m[name] for m in fold_metrics) for name in fold_metrics[0]}


def _has_complete(study: optuna.Study) -> bool:
    return any(trial.state.name == "COMPLETE" for trial in study.trials)


def _is_searched(spec: Any) -> bool:
    from .params import Choices, Range

    return isinstance(spec, (Range, Choices))


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
