"""Parallel tuning on a real PostgreSQL (tests/stack.py): `train` with two worker processes on one study per
family, every trial logged once in MLflow, the best parameters read back from the studies, and a changed
search space tuned in a new study rather than resumed from the old trials.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .conftest import install, render, run
from .stack import Stack
from .test_e2e import edit_params

pytestmark = [pytest.mark.e2e, pytest.mark.stack, pytest.mark.xdist_group("stack")]

TRIALS = 6

# Run inside the generated project (its own environment has Optuna and MLflow).
STUDIES = """
import json, os, optuna
url = os.environ["OPTUNA_STORAGE"]
studies = {}
for name in optuna.get_all_study_names(url):
    study = optuna.load_study(study_name=name, storage=url)
    studies[name] = {
        "trials": len(study.trials),
        "finished": sum(trial.state.is_finished() for trial in study.trials),
        "best_params": study.best_params,
    }
print(json.dumps(studies))
"""
CHILD_RUNS = """
import json, mlflow
client = mlflow.MlflowClient("sqlite:///mlflow.db")
experiment = client.get_experiment_by_name("churn-model")
runs = client.search_runs([experiment.experiment_id], max_results=5000)
print(json.dumps([[run.data.tags["optuna_study"], int(run.data.tags["optuna_trial"])]
                  for run in runs if "optuna_trial" in run.data.tags]))
"""


def in_project(root: Path, code: str, env: dict[str, str]) -> Any:
    completed = run(["uv", "run", "--frozen", "python", "-c", code], root, env=env)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def studies(root: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every study in the storage: its trial count, finished trials and best parameters."""
    return dict(in_project(root, STUDIES, env))


def child_runs(root: Path, env: dict[str, str]) -> Counter[tuple[str, int]]:
    """How many MLflow child runs each (study, trial number) has."""
    return Counter((study, int(number)) for study, number in in_project(root, CHILD_RUNS, env))


def leaderboard(root: Path) -> dict[str, dict]:
    report = json.loads((root / "reports" / "leaderboard.json").read_text())
    return {row["family"]: row for row in report["leaderboard"]}


def family_of(study_name: str) -> str:
    return study_name.removeprefix("churn-model-").rsplit("-", 1)[0]


def test_two_workers_tune_on_postgresql_and_a_changed_space_starts_a_new_study(tmp_path: Path, stack: Stack) -> None:
    env = {"OPTUNA_STORAGE": stack.postgres_url("optuna")}  # credentials stay out of params.yaml
    root = render(tmp_path / "churn", tasks=True)
    install(root)
    edit_params(root, {"train.tuning.workers": 2, "train.tuning.n_trials": TRIALS})

    run(["uv", "run", "--frozen", "dvc", "repro", "train"], root, env=env)

    first = studies(root, env)
    assert sorted(family_of(name) for name in first) == sorted(leaderboard(root))
    assert all(study["trials"] == study["finished"] == TRIALS for study in first.values())
    for name, study in first.items():
        assert leaderboard(root)[family_of(name)]["best_params"] == study["best_params"]
    assert child_runs(root, env) == Counter((name, number) for name in first for number in range(TRIALS))

    # A changed search space: a new study for that family (the old trials are not resumed); the
    # other families keep their studies, reused without running or logging anything again.
    edit_params(root, {"train.candidates.random_forest.max_depth": {"low": 3, "high": 6}})
    run(["uv", "run", "--frozen", "dvc", "repro", "train"], root, env=env)

    second = studies(root, env)
    (new,) = set(second) - set(first)
    assert family_of(new) == "random_forest"
    assert {name: second[name]["trials"] for name in first} == dict.fromkeys(first, TRIALS)
    assert second[new]["trials"] == second[new]["finished"] == TRIALS
    assert 3 <= second[new]["best_params"]["max_depth"] <= 6
    assert leaderboard(root)["random_forest"]["best_params"] == second[new]["best_params"]
    assert child_runs(root, env) == Counter((name, number) for name in second for number in range(TRIALS))
