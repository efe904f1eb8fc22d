"""Batch prediction: chunked, same answers whatever the chunk size, bad rows reported not fatal."""

from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlops_runtime.batch import predict_file
from mlops_runtime.cli import app
from mlops_runtime.errors import StageError
from mlops_runtime.objective import TuningData, fit_model
from mlops_runtime.serving.loader import LoadedModel


@pytest.fixture
def loaded(tuning_data: TuningData) -> LoadedModel:
    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    return LoadedModel(model, tuning_data.task, "model", "test", "local")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.ml_test_score("Mo2")
def test_bad_rows_are_reported_and_the_rest_predicted(
    tuning_data: TuningData, loaded: LoadedModel, tmp_path: Path, suffix: str
) -> None:
    rows = tuning_data.contract.split_xy(tuning_data.validation)[0].reset_index(drop=True)
    numeric, categorical = tuning_data.contract.numeric_features[0], tuning_data.contract.categorical_features[0]
    rows[numeric] = rows[numeric].astype(object)
    rows.loc[3, numeric] = "not a number"
    rows.loc[5, categorical] = "never-seen"
    rows.loc[8, numeric] = 1e12
    source, target = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    if suffix == ".csv":
        rows.to_csv(source, index=False)
    else:
        rows.astype({numeric: str}).to_parquet(source)

    result = predict_file(source, target, loaded, tuning_data.contract, chunk_rows=64)

    assert result["rows"] == len(rows)
    assert result["rejected"] == 3
    errors = pd.read_csv(result["errors"])
    assert errors["row"].tolist() == [3, 5, 8]
    assert numeric in errors["reason"].iloc[0]
    assert categorical in errors["reason"].iloc[1]
    output = pd.read_parquet(target) if suffix == ".parquet" else pd.read_csv(target)
    assert len(output) == len(rows) - 3
    assert 3 not in output["row"].tolist()


def test_chunk_size_does_not_change_the_answers(tuning_data: TuningData, loaded: LoadedModel, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    tuning_data.contract.split_xy(tuning_data.validation)[0].to_parquet(source)
    outputs = []
    for chunk_rows in (7, 1000):
        target = tmp_path / f"out-{chunk_rows}.parquet"
        predict_file(source, target, loaded, tuning_data.contract, chunk_rows=chunk_rows)
        outputs.append(pd.read_parquet(target))
    pd.testing.assert_frame_equal(outputs[0], outputs[1])


def test_a_missing_column_is_one_clear_error(tuning_data: TuningData, loaded: LoadedModel, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    tuning_data.validation.drop(columns=[tuning_data.contract.feature_names[0]]).to_csv(source, index=False)
    with pytest.raises(StageError, match="has no column"):
        predict_file(source, tmp_path / "out.csv", loaded, tuning_data.contract, chunk_rows=100)


def test_a_glob_streams_file_after_file_with_row_numbers_running_on(
    tuning_data: TuningData, loaded: LoadedModel, tmp_path: Path
) -> None:
    rows = tuning_data.contract.split_xy(tuning_data.validation)[0].reset_index(drop=True)
    rows.to_parquet(tmp_path / "whole.parquet")
    categorical = tuning_data.contract.categorical_features[0]
    bounds = [0, 37, 38, len(rows) // 2, len(rows)]  # uneven parts, one of a single row
    (tmp_path / "parts").mkdir()
    for part, (start, stop) in enumerate(pairwise(bounds)):
        piece = rows.iloc[start:stop].copy()
        if part == 3:
            piece.loc[piece.index[1], categorical] = "never-seen"  # global row number bounds[3] + 1
        piece.to_parquet(tmp_path / "parts" / f"part-{part}.parquet")

    result = predict_file(
        tmp_path / "parts" / "part-*.parquet", tmp_path / "out.parquet", loaded, tuning_data.contract, chunk_rows=16
    )
    predict_file(tmp_path / "whole.parquet", tmp_path / "whole-out.parquet", loaded, tuning_data.contract, 16)

    assert result["rows"] == len(rows)
    assert pd.read_csv(result["errors"])["row"].tolist() == [bounds[3] + 1]
    output, whole = pd.read_parquet(tmp_path / "out.parquet"), pd.read_parquet(tmp_path / "whole-out.parquet")
    pd.testing.assert_frame_equal(output, whole[whole["row"] != bounds[3] + 1].reset_index(drop=True))


def test_a_glob_that_matches_nothing_is_one_clear_error(
    tuning_data: TuningData, loaded: LoadedModel, tmp_path: Path
) -> None:
    with pytest.raises(StageError, match="no file matches"):
        predict_file(tmp_path / "part-*.parquet", tmp_path / "out.parquet", loaded, tuning_data.contract, 100)
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_empty_file_in_a_glob_is_one_clear_error(
    tuning_data: TuningData, loaded: LoadedModel, tmp_path: Path, suffix: str
) -> None:
    """A failed export leaves 0 bytes: no header to read (before: pandas' or pyarrow's traceback)."""
    rows = tuning_data.contract.split_xy(tuning_data.validation)[0]
    if suffix == ".csv":
        rows.to_csv(tmp_path / "part-0.csv", index=False)
    else:
        rows.to_parquet(tmp_path / "part-0.parquet")
    (tmp_path / f"part-1{suffix}").touch()
    with pytest.raises(StageError, match=r"part-1\S* is empty \(0 bytes\), not even a header"):
        predict_file(tmp_path / f"part-*{suffix}", tmp_path / "out.csv", loaded, tuning_data.contract, chunk_rows=64)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_the_callers_other_columns_and_the_model_version_come_out_with_each_prediction(
    tuning_data: TuningData, loaded: LoadedModel, tmp_path: Path, suffix: str
) -> None:
    contract = tuning_data.contract
    rows = tuning_data.validation.reset_index(drop=True)  # features and the label
    rows.insert(0, "customer_id", [f"{number:05d}" for number in range(len(rows))])  # leading zeros: text
    rows.loc[3, contract.categorical_features[0]] = "never-seen"
    source, target = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    rows.to_csv(source, index=False) if suffix == ".csv" else rows.to_parquet(source)

    result = predict_file(source, target, loaded, contract, chunk_rows=64)

    output = pd.read_parquet(target) if suffix == ".parquet" else pd.read_csv(target, dtype={"customer_id": str})
    probabilities = [f"probability_{label}" for label in loaded.classes]
    columns = ["row", "customer_id", contract.target.name, "prediction", *probabilities, "model_version"]
    assert output.columns.tolist() == columns
    assert output["customer_id"].tolist() == [f"{number:05d}" for number in output["row"]]
    assert 3 not in output["row"].tolist()
    assert set(output["model_version"]) == {loaded.version}
    assert (result["model_version"], result["kept_columns"]) == (loaded.version, ["customer_id", contract.target.name])


def test_a_column_the_output_would_overwrite_is_refused(
    tuning_data: TuningData, loaded: LoadedModel, tmp_path: Path
) -> None:
    rows = tuning_data.contract.split_xy(tuning_data.validation)[0].assign(prediction="mine")
    rows.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(StageError, match="has column prediction, which batch prediction writes"):
        predict_file(tmp_path / "in.parquet", tmp_path / "out.parquet", loaded, tuning_data.contract, 100)


def test_no_valid_row_still_leaves_every_output_column(
    tuning_data: TuningData, loaded: LoadedModel, tmp_path: Path
) -> None:
    rows = tuning_data.contract.split_xy(tuning_data.validation.head(5))[0].assign(customer_id="c")
    rows[tuning_data.contract.categorical_features[0]] = "never-seen"
    rows.to_csv(tmp_path / "in.csv", index=False)
    result = predict_file(tmp_path / "in.csv", tmp_path / "out.csv", loaded, tuning_data.contract, 100)
    assert result["predicted"] == 0
    columns = pd.read_csv(tmp_path / "out.csv").columns.tolist()
    assert columns[:2] == ["row", "customer_id"]
    assert columns[-1] == "model_version"


def test_predict_says_which_model_version_predicted_in_one_line(
    service_root: Path, tuning_data: TuningData, monkeypatch: pytest.MonkeyPatch
) -> None:
    tuning_data.validation.to_csv(service_root / "in.csv", index=False)
    monkeypatch.chdir(service_root)

    result = CliRunner().invoke(app, ["predict", "in.csv", "out.csv", "--model-source", "local"])

    assert result.exit_code == 0, result.output
    (version,) = set(pd.read_csv(service_root / "out.csv")["model_version"])
    (line,) = result.output.strip().splitlines()
    rows = len(tuning_data.validation)
    assert line.startswith(f"predict: {rows} of {rows} rows predicted by model version {version} (local) into out.csv")
    assert f"beside your columns {tuning_data.contract.target.name}" in line
