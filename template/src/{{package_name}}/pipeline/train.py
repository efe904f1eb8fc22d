"""Stage train: tune every candidate family of model.py, keep the best, refit it, log and save the model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.stages import train

from ..model import project_models

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    data = train.tuning_data(params, paths, project_models())  # the contract, the train and validation splits
    with train.training_run(params) as run_id:  # MLflow's run; None when tracking is off
        leaderboard = train.tune(params, paths, data, run_id)  # one Optuna study per family, best first
        winner = train.refit(leaderboard[0], data, params)
        return train.save_and_log(winner, leaderboard, data, params, paths, run_id)  # models/model, the run
