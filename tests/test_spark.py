"""`predict --engine spark` on a real local Spark (pyspark from PyPI, the machine's Java): every answer, row
number and refused row the same as the in-process engine's, CSV exports with "NA" and free text included."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlops_runtime.batch import predict_file
from mlops_runtime.cli import app
from mlops_runtime.errors import StageError
from mlops_runtime.objective import TuningData, fit_model
from mlops_runtime.schema import Contract
from mlops_runtime.serving.loader import LoadedModel
from mlops_runtime.spark_batch import predict_spark
from mlops_runtime.testing import Project
from typer.testing import CliRunner

from .conftest import render
from .debian import debian_tool

pytestmark = pytest.mark.xdist_group("spark")  # one worker: one JVM and one rendered project
MASTER = "local[2]"
REFUSED = {3, 5, 8}  # the rows `export` breaks
# Free text, named as R names it ("." where a space was): quotes, a comma, a line break and a space at each end.
NOTE, NOTE_COLUMN = ' said "no", twice,\nthen left ', "note.text"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The default project, whose sample data and model families the library's fixtures use."""
    root = render(tmp_path_factory.mktemp("project") / "churn")
    sys.path.insert(0, str(root / "src"))
    return Project("churn_model", root).registered()


@pytest.fixture(scope="module", autouse=True)
def spark(project: Project) -> Iterator[None]:
    """One local Spark for the module (Java from Debian when the machine has none), stopped at the end.

    Its Python workers import the project's package, as an installed project's would (uv sync installs it).
    """
    debian_tool("java", "default-jre-headless")
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(project.root / "src"), os.environ.get("PYTHONPATH", "")]))
        yield
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


@pytest.fixture
def loaded(tuning_data: TuningData) -> LoadedModel:
    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    return LoadedModel(model, tuning_data.task, "model", "7", "local")


@pytest.fixture
def allowing_missing(tuning_data: TuningData) -> Contract:
    """The contract with missing values allowed in its first numeric and first categorical feature."""
    contract = tuning_data.contract
    names = {contract.numeric_features[0], contract.categorical_features[0]}
    features = tuple(
        replace(column, max_missing=0.2) if column.name in names else column for column in contract.features
    )
    return replace(contract, features=features)


def export(tuning_data: TuningData, seed: int) -> pd.DataFrame:
    """Validation rows as a user's export: an ID with leading zeros, free text in a column whose name holds a ".",
    missing values, and three rows the contract refuses (text in a number, an unseen category, a value far out
    of range)."""
    rng = np.random.default_rng(seed)
    contract = tuning_data.contract
    rows = tuning_data.validation.reset_index(drop=True)
    numeric, categorical = contract.numeric_features[0], contract.categorical_features[0]
    rows[numeric] = rows[numeric].astype(object)
    missing = rng.choice(len(rows), size=20, replace=False)
    rows.loc[missing[:10], numeric] = np.nan
    rows.loc[missing[10:], categorical] = np.nan
    rows.loc[3, numeric] = "not a number"
    rows.loc[5, categorical] = "never-seen"
    rows.loc[8, numeric] = 1e12
    rows.insert(0, "customer_id", [f"{number:05d}" for number in range(len(rows))])
    rows[NOTE_COLUMN] = [NOTE if number % 7 == 0 else "" for number in range(len(rows))]
    return rows


def write_parts(rows: pd.DataFrame, folder: Path, suffix: str, parts: int) -> Path:
    """`rows` in `parts` files named so that they sort in order, as exports write them: a CSV as R's write.csv
    does, "NA" for missing and the row names first, in a column with an empty name."""
    folder.mkdir()
    bounds = np.linspace(0, len(rows), parts + 1).astype(int)
    for number, (start, stop) in enumerate(pairwise(bounds)):
        piece = rows.iloc[start:stop]
        path = folder / f"part-{number:03d}{suffix}"
        if suffix == ".csv":
            piece.set_axis(piece.index + 1).to_csv(path, index_label="", na_rep="NA")
        else:
            piece.astype({column: str for column in rows.columns if rows[column].dtype == object}).to_parquet(path)
    return folder / f"part-*{suffix}"


def read_output(target: Path) -> pd.DataFrame:
    """A file or Spark's folder of part files, in row order; CSV read as text, as a user's next step would."""
    if target.suffix == ".parquet":
        frame = pd.read_parquet(target)
    else:
        files = sorted(target.glob("part-*.csv")) if target.is_dir() else [target]
        frame = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False) for path in files])
        # Java and Python write some doubles with different digits (0.4085080891465629, 0.408508089146563):
        # the same number, compared as one.
        numbers = [name for name in frame.columns if name.startswith("probability_")]
        frame[numbers] = frame[numbers].astype(float)
        with contextlib.suppress(ValueError):  # a regression's answers; class labels stay as written
            frame["prediction"] = frame["prediction"].astype(float)
    return frame.sort_values("row", key=lambda rows: rows.astype(int)).reset_index(drop=True)


@pytest.mark.parametrize(("suffix", "parts"), [(".csv", 3), (".parquet", 3)])
def test_spark_answers_every_row_as_the_in_process_engine_does(
    tuning_data: TuningData,
    allowing_missing: Contract,
    loaded: LoadedModel,
    tmp_path: Path,
    suffix: str,
    parts: int,
) -> None:
    rows = export(tuning_data, seed=parts)
    source = write_parts(rows, tmp_path / "in", suffix, parts)
    local, distributed = tmp_path / f"local{suffix}", tmp_path / f"spark{suffix}"

    expected = predict_file(source, local, loaded, allowing_missing, chunk_rows=64)
    result = predict_spark(source, distributed, loaded, allowing_missing, MASTER, batch_rows=64)

    assert distributed.is_dir()
    output = read_output(distributed)
    # Labels exactly; numbers to 1e-12: BLAS adds in another order when rows are batched otherwise (last bit).
    pd.testing.assert_frame_equal(output, read_output(local), check_dtype=suffix == ".csv", rtol=1e-12)
    with_missing = rows.index[rows[allowing_missing.feature_names].isna().any(axis=1)]
    assert set(with_missing) - REFUSED <= set(output["row"].astype(int))  # predicted, not refused
    assert pd.read_csv(result["errors"]).equals(pd.read_csv(expected["errors"]))
    assert set(pd.read_csv(result["errors"])["row"]) == REFUSED
    for key in ("rows", "predicted", "rejected", "kept_columns", "model_version"):
        assert result[key] == expected[key], key
    assert ("Unnamed: 0" in result["kept_columns"]) == (suffix == ".csv")  # R's row names, named as pandas does


@pytest.mark.parametrize("task", ["binary_classification"])  # the engine's plumbing: one task is enough
def test_predict_engine_spark_says_the_same_one_line(
    service_root: Path, tuning_data: TuningData, monkeypatch: pytest.MonkeyPatch
) -> None:
    tuning_data.validation.to_csv(service_root / "in.csv", index=False)
    monkeypatch.chdir(service_root)
    monkeypatch.setenv("SPARK_MASTER", MASTER)

    result = CliRunner().invoke(app, ["predict", "in.csv", "out.csv", "--model-source", "local", "--engine", "spark"])

    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    rows = len(tuning_data.validation)
    assert line.startswith(f"predict: {rows} of {rows} rows predicted by model version")
    assert "into out.csv" in line
    assert len(read_output(service_root / "out.csv")) == rows


def write_second_file(rows: pd.DataFrame, folder: Path, kind: str) -> None:
    """b.parquet beside a.csv, or b.csv with the same columns in another order."""
    if kind == "parquet":
        rows.to_parquet(folder / "b.parquet")
    else:
        rows[rows.columns[::-1]].to_csv(folder / "b.csv", index=False)


@pytest.mark.parametrize("task", ["binary_classification"])  # the engine's plumbing: one task is enough
@pytest.mark.parametrize(
    ("second", "message"),
    [("parquet", r"mix \.csv and \.parquet"), ("reordered_csv", r"one header: b\.csv has ")],
)
def test_files_spark_cannot_read_together_are_one_clear_error(
    tuning_data: TuningData, loaded: LoadedModel, tmp_path: Path, second: str, message: str
) -> None:
    """One format per run; CSV columns are read by position, so a file with its columns in another order is
    refused, not misread."""
    rows = tuning_data.contract.split_xy(tuning_data.validation)[0]
    rows.to_csv(tmp_path / "a.csv", index=False)
    write_second_file(rows, tmp_path, second)
    with pytest.raises(StageError, match=message):
        predict_spark(tmp_path / "[ab].*", tmp_path / "out.parquet", loaded, tuning_data.contract, MASTER, 64)


@pytest.mark.parametrize("task", ["binary_classification"])  # the engine's plumbing: one task is enough
def test_a_file_with_a_header_only_scores_no_row_and_says_so(
    tuning_data: TuningData, loaded: LoadedModel, tmp_path: Path
) -> None:
    tuning_data.validation.head(0).to_csv(tmp_path / "empty.csv", index=False)
    result = predict_spark(tmp_path / "empty.csv", tmp_path / "out.parquet", loaded, tuning_data.contract, MASTER, 64)
    assert (result["rows"], result["predicted"], result["errors"]) == (0, 0, None)
