"""The registry: the champion alias moves by promote and back by rollback, on a real MLflow store."""

from pathlib import Path
from typing import Any

import mlflow.sklearn
import pytest

from mlops_runtime import registry, tracking
from mlops_runtime.errors import StageError
from mlops_runtime.metrics import score
from mlops_runtime.objective import TuningData, fit_model
from mlops_runtime.params import parse_params
from mlops_runtime.paths import Paths
from mlops_runtime.stages.accept import (
    compare_with_champion,
    current_champion,
    log_staleness,
)
from mlops_runtime.stages.train import model_save_options

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("task", ["regression"])  # one task is enough: the registry does not look inside
@pytest.mark.ml_test_score("I7")
def test_promote_and_rollback_move_the_champion(
    tuning_data: TuningData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # MLflow writes artifacts relative to the working folder
    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    with tracking.start_run("tests"):
        uri = mlflow.sklearn.log_model(model, name="model", **model_save_options(tuning_data)).model_uri
    client = tracking.client()
    first = registry.register(client, "m", uri, {"metrics": "{}"})
    registry.set_champion(client, "m", first)
    second = registry.register(client, "m", uri, {"metrics": "{}"})

    assert registry.promote("m", second) == first
    assert registry.alias_version(client, "m", registry.CHAMPION) == second
    assert registry.rollback("m") == (second, first)
    assert registry.alias_version(client, "m", registry.CHAMPION) == first
    rows = registry.versions("m")
    assert [row["version"] for row in rows] == [second, first]
    assert rows[1]["aliases"] == [registry.CHAMPION]
    loaded, version = registry.load_champion("m")
    assert str(version.version) == first
    assert (
        loaded.predict(tuning_data.contract.features_of(tuning_data.validation))
        == model.predict(tuning_data.contract.features_of(tuning_data.validation))
    ).all()


def test_registry_mistakes_are_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(StageError, match="no registered model 'absent'"):
        registry.rollback("absent")
    with pytest.raises(StageError, match="has no version 9"):
        registry.promote("absent", "9")


@pytest.mark.ml_test_score("M4")
@pytest.mark.parametrize("task", ["regression"])
def test_a_retrain_records_the_champions_age_and_its_score_on_the_new_data(
    tuning_data: TuningData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, project_params: dict[str, Any]
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    with tracking.start_run("tests") as run:
        uri = mlflow.sklearn.log_model(model, name="model", **model_save_options(tuning_data)).model_uri
    client = tracking.client()
    registry.set_champion(client, "m", registry.register(client, "m", uri, {"metrics": "{}"}))
    params = parse_params(
        project_params
        | {"task": "regression", "mlflow": {"experiment": "tests", "registered_model": "m"}}
        | {"train": project_params["train"] | {"primary_metric": "rmse"}}
    )
    paths = Paths(tmp_path)
    paths.schema.write_text(tuning_data.contract.to_yaml())
    paths.prepared_dir.mkdir(parents=True)
    tuning_data.validation.to_parquet(paths.split("test"))

    champion = current_champion("m")
    assert champion is not None
    assert champion.version == "1"
    assert 0 <= champion.age_days < 1
    comparison = compare_with_champion(params, paths, champion, challenger_score=1.0)
    expected = score(model, "regression", *tuning_data.contract.split_xy(tuning_data.validation))["rmse"]
    assert comparison["champion"] == pytest.approx(expected)
    assert comparison["champion_age_days"] == round(champion.age_days, 4)
    log_staleness({"experiment": "tests", "run_id": run.info.run_id}, comparison)
    logged = client.get_run(run.info.run_id).data.metrics
    assert logged["champion_age_days"] == comparison["champion_age_days"]
    assert logged["champion_rmse"] == pytest.approx(expected)
    assert logged["challenger_rmse"] == 1.0


@pytest.mark.ml_test_score("M1")
@pytest.mark.parametrize("task", ["regression"])
def test_a_version_from_unreviewed_changes_needs_force_and_a_reason(
    tuning_data: TuningData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    with tracking.start_run("tests"):
        uri = mlflow.sklearn.log_model(model, name="model", **model_save_options(tuning_data)).model_uri
    client = tracking.client()
    reviewed = registry.register(client, "m", uri, {"metrics": "{}"})
    registry.set_champion(client, "m", reviewed)
    unreviewed = registry.register(client, "m", uri, {"metrics": "{}", registry.UNREVIEWED_TAG: "true"})

    with pytest.raises(StageError, match="uncommitted changes"):
        registry.promote("m", unreviewed)
    assert registry.alias_version(client, "m", registry.CHAMPION) == reviewed
    assert registry.promote("m", unreviewed, force_reason="hotfix reviewed in the incident call") == reviewed
    assert client.get_model_version("m", unreviewed).tags["forced_reason"] == "hotfix reviewed in the incident call"


@pytest.mark.ml_test_score("M1")
def test_uncommitted_changes_to_the_model_spec_mark_a_run_unreviewed(tmp_path: Path) -> None:
    import subprocess

    assert tracking.lineage_tags(tmp_path)["git_dirty"] == "unknown"  # not a git repository
    (tmp_path / "params.yaml").write_text("train: {seed: 1}\n")
    for command in (["init", "-q"], ["add", "params.yaml"], ["commit", "-q", "-m", "spec"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *command], cwd=tmp_path, check=True
        )
    assert tracking.lineage_tags(tmp_path)["git_dirty"] == "false"
    (tmp_path / "params.yaml").write_text("train: {seed: 2}\n")
    assert tracking.lineage_tags(tmp_path)["git_dirty"] == "true"
    (tmp_path / "notes.txt").write_text("not part of the model's spec\n")
    subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=tmp_path, check=True)
    assert tracking.lineage_tags(tmp_path)["git_dirty"] == "false"
