"""params.yaml parses, and mistakes in it name the key."""

from pathlib import Path

import pytest

from mlops_runtime.errors import StageError
from mlops_runtime.params import load_params, parse_params
from mlops_runtime.testing import Project
from mlops_runtime.tuning import STORAGE_ENV, storage_url, study_name


def test_project_params_are_valid(project: Project, project_params: dict) -> None:
    assert load_params(project.root / "params.yaml").task == project_params["task"]


def test_an_unknown_key_is_named(project_params: dict) -> None:
    project_params["train"]["seeed"] = 1
    with pytest.raises(StageError, match=r"train\.seeed: Extra inputs are not permitted"):
        parse_params(project_params)


def test_a_bad_value_is_named(project_params: dict) -> None:
    project_params["prepare"]["test_size"] = 2
    with pytest.raises(StageError, match=r"prepare\.test_size"):
        parse_params(project_params)


def test_a_missing_file_says_where_to_run(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="project root"):
        load_params(tmp_path / "params.yaml")


def _study(raw: dict, data: str = "data-1", code: str = "code-1") -> str:
    return study_name(parse_params(raw), "random_forest", data, code)


def _changed(raw: dict, dotted: str, value: object) -> dict:
    """A deep copy of params with one dotted key set."""
    import copy

    changed = copy.deepcopy(raw)
    *parents, last = dotted.split(".")
    section = changed
    for key in parents:
        section = section.setdefault(key, {})
    section[last] = value
    return changed


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("train.candidates.random_forest.max_depth", {"low": 3, "high": 10}),
        ("train.candidates.random_forest.n_estimators", 30),
        ("train.tuning.n_trials", 9),
        ("train.tuning.cv_folds", 3),
        ("train.seed", 7),
        ("train.primary_metric", "another of the task's metrics"),
    ],
)
def test_the_study_name_changes_with_what_decides_the_trials(project_params: dict, key: str, value: object) -> None:
    """A persistent study is never resumed with trials of another search."""
    if key == "train.primary_metric":
        value = "r2" if project_params["task"] == "regression" else "accuracy"
    assert _study(_changed(project_params, key, value)) != _study(project_params)


def test_the_study_name_changes_with_the_data_the_code_and_the_task(project_params: dict) -> None:
    base = _study(project_params)
    assert _study(project_params, data="data-2") != base
    assert _study(project_params, code="code-2") != base
    other_task = {"binary_classification": "multiclass_classification"}.get(
        project_params["task"], "binary_classification"
    )
    metric = "r2" if project_params["task"] == "regression" else "accuracy"  # one both tasks have
    retasked = _changed(_changed(project_params, "task", other_task), "train.primary_metric", "accuracy")
    if project_params["task"] != "regression":
        assert _study(retasked) != _study(_changed(project_params, "train.primary_metric", metric))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("train.tuning.workers", 4),
        ("train.tuning.timeout", 5),
        ("train.tuning.storage", "sqlite:///optuna.db"),
        ("train.candidates.linear", {}),
    ],
)
def test_the_same_search_keeps_its_study(project_params: dict, key: str, value: object) -> None:
    """Where and how fast trials run (and other families) do not change a family's study: it is resumed."""
    assert _study(_changed(project_params, key, value)) == _study(project_params)
    assert _study(project_params).startswith(f"{project_params['mlflow']['experiment']}-random_forest-")


def test_optuna_storage_overrides_the_params_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert storage_url(None) is None
    assert storage_url("sqlite:///optuna.db") == "sqlite:///optuna.db"
    monkeypatch.setenv(STORAGE_ENV, "postgresql+psycopg://tuner:secret@db:5432/optuna")
    assert storage_url("sqlite:///optuna.db") == "postgresql+psycopg://tuner:secret@db:5432/optuna"
    monkeypatch.setenv(STORAGE_ENV, " ")
    assert storage_url("sqlite:///optuna.db") == "sqlite:///optuna.db"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_plain_postgresql_url_uses_the_installed_driver(monkeypatch: pytest.MonkeyPatch, scheme: str) -> None:
    """The project installs psycopg 3; a bare postgresql:// URL would make SQLAlchemy look for psycopg2."""
    monkeypatch.setenv(STORAGE_ENV, f"{scheme}://tuner:secret@db/optuna")
    assert storage_url(None) == "postgresql+psycopg://tuner:secret@db/optuna"


def test_workers_are_checked(project_params: dict) -> None:
    with pytest.raises(StageError, match=r"train\.tuning\.workers"):
        parse_params(_changed(project_params, "train.tuning.workers", 0))


def test_dvc_reruns_train_for_every_train_key_but_where_trials_run(project: Project) -> None:
    """dvc.yaml lists train's keys one by one, leaving out tuning.workers and tuning.storage: a new
    key under train must be listed there too, or changing it would not re-run the stage."""
    import yaml

    from mlops_runtime.params import TrainParams, TuningParams

    listed = set(yaml.safe_load((project.root / "dvc.yaml").read_text())["stages"]["train"]["params"])
    keys = {f"train.{name}" for name in TrainParams.model_fields if name != "tuning"}
    keys |= {f"train.tuning.{name}" for name in TuningParams.model_fields if name not in ("workers", "storage")}
    assert keys <= listed
    assert not {"train", "train.tuning", "train.tuning.workers", "train.tuning.storage"} & listed
