"""Stage evaluate: score model and baseline on validation and test; slices, stability, cost, plots."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from mlops_runtime.files import read_json, read_parquet, write_json
from mlops_runtime.stages import evaluate, train

from ..model import project_models

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    data = train.tuning_data(params, paths, project_models())  # the contract, the train and validation splits
    contract, test = data.contract, read_parquet(paths.split("test"))
    model = evaluate.trained_model(paths)
    evaluate.require_stable(model, params.task, contract, test, paths)  # finite outputs, or the stage stops
    report = evaluate.scores(model, data, test)
    write_json(paths.metrics, report)
    write_json(paths.slices, evaluate.slice_metrics(model, params.task, contract, test, params.evaluate))
    winner = read_json(paths.leaderboard)["winner"]  # the family and parameters train chose
    write_json(paths.feature_cost, evaluate.feature_cost(model, data, winner, test, params))
    evaluate.write_plots(model, params.task, contract, test, paths.plots_dir, params.evaluate)
    held_out = pd.concat([data.validation, test], ignore_index=True)
    evaluate.write_importance(model, params, contract, held_out, paths.plots_dir)
    evaluate.log_to_training_run(report, paths)
    return {"test": report["model"]["test"]}
