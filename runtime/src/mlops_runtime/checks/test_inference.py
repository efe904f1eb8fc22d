"""Reading real files: missing-value markers, spellings kept, and a kind with a reason for every column."""

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_runtime.inference import decide, infer, widened_range
from mlops_runtime.paths import Paths
from mlops_runtime.schema import (
    NumericColumn,
    load_contract,
)
from mlops_runtime.testing import Project


@pytest.mark.parametrize(
    ("values", "kind", "reason"),
    [
        (list(range(1, 201)), None, "identifier"),  # row numbers
        ([float(i % 2) + 1 for i in range(200)], "categorical", "two values"),  # sex as 1.0 / 2.0
        ([i % 5 + 1 for i in range(200)], "categorical", "integer codes"),  # a rating
        ([i % 5 for i in range(200)], "numeric", "numbers"),  # a count: from 0, may go past what was seen
        ([i * 1.5 for i in range(200)], "numeric", "numbers"),
        (["true", "false"] * 100, "categorical", "text"),  # as written, never booleans
        ([uuid.UUID(int=i * 7919).hex for i in range(200)], None, "identifier"),
        ([f"city {i % 80}" for i in range(200)], None, "many_categories"),
        ([None] * 150 + [1.0] * 25 + [2.0] * 25, None, "mostly_missing"),
        ([f"2023-{i % 12 + 1:02d}-{i % 28 + 1:02d}" for i in range(200)], "datetime", "dates"),
    ],
)
def test_decisions(values: list[object], kind: str | None, reason: str) -> None:
    decision = decide("column", pd.Series(values), max_categories=50)
    assert (decision.kind, decision.reason) == (kind, reason), decision


@pytest.mark.parametrize(
    ("name", "kind"),
    [("occupation", "categorical"), ("religious", "categorical"), ("bedrooms", "numeric"), ("n_visits", "numeric")],
)
def test_small_integers_from_1_are_codes_unless_named_as_counts(name: str, kind: str) -> None:
    assert decide(name, pd.Series([i % 6 + 1 for i in range(300)]), 50).kind == kind


def test_an_id_column_unique_per_row_is_an_identifier() -> None:
    ids = pd.Series(np.random.default_rng(0).permutation(200) + 1000)
    assert decide("customer_id", ids, 50).reason == "identifier"
    assert decide("customerID", ids, 50).reason == "identifier"
    assert decide("paid", ids, 50).kind == "numeric"  # "id" inside a word is not an ID


@pytest.mark.parametrize(
    ("observed", "inside", "outside"),
    [((19.0, 79.0), [0.0, 80.0, 120.0], [-1.0, 1000.0]), ((-40.0, -2.0), [-70.0, 0.0], [1.0, -200.0])],
)
def test_bounds_refuse_the_impossible_not_the_unusual(
    observed: tuple[float, float], inside: list[float], outside: list[float]
) -> None:
    low, high = widened_range(*observed)
    assert all(low <= value <= high for value in inside)
    assert not any(low <= value <= high for value in outside)


def test_a_feature_that_gives_the_target_away_is_flagged_not_dropped() -> None:
    rng = np.random.default_rng(1)
    amount = rng.normal(100, 20, 500)
    frame = pd.DataFrame({"x": rng.normal(size=500), "amount_in_cents": amount * 100, "amount": amount})

    inference = infer(frame, "amount", "regression", 50, "t")

    assert [name for name, _ in inference.leaks] == ["amount_in_cents"]
    assert "amount_in_cents" in inference.contract.feature_names


def test_a_row_error_says_whether_a_value_is_not_a_number_or_out_of_range() -> None:
    from mlops_runtime.schema import Contract

    age = NumericColumn(name="age", minimum=19, maximum=79)
    contract = Contract(features=(age,), target=age)
    rows = pd.DataFrame({"age": pd.Series([30, "old", 85, 19], dtype=object)})

    valid, reasons = contract.check_rows(rows)

    assert valid.index.tolist() == [0, 3]
    assert reasons.to_dict() == {1: "age: not a number", 2: "age: 85 is out of range [19, 79]"}


@pytest.mark.ml_test_score("Mo3")
def test_column_names_as_real_exports_write_them_work_on_every_path(project: Project, tmp_path: Path) -> None:
    """Spaces, parentheses, slashes, dots and non-ASCII letters: contract, model, API, OpenAPI, metrics."""
    import mlflow.sklearn
    import yaml
    from fastapi.testclient import TestClient

    from mlops_runtime.objective import TuningData, fit_model
    from mlops_runtime.serving.app import create_app
    from mlops_runtime.serving.config import ServingConfig
    from mlops_runtime.stages.train import model_save_options
    from mlops_runtime.verdict import write_verdict

    rng = np.random.default_rng(3)
    names = ["Age (years)", "weight/kg", "Solar.R", "région", "signed up"]
    frame = pd.DataFrame(
        {
            names[0]: rng.integers(18, 90, 600),
            names[1]: rng.normal(70, 10, 600).round(1),
            names[2]: rng.normal(180, 60, 600).round(0),
            names[3]: rng.choice(["Île-de-France", "Bretagne", "Occitanie"], 600),
            names[4]: pd.date_range("2021-01-01", periods=600, freq="D").strftime("%Y-%m-%d"),
        }
    )
    frame["bought"] = np.where(frame[names[1]] + rng.normal(0, 5, 600) > 70, "yes", "no")
    contract = infer(frame, "bought", "binary_classification", 50, "tests").contract
    assert contract.feature_names == names
    typed = contract.coerce(frame)
    data = TuningData(contract, typed.iloc[:400], typed.iloc[400:], "binary_classification", "roc_auc", project.models)
    model = fit_model(data, "linear", {}, seed=0, frame=data.train)
    mlflow.sklearn.save_model(model, tmp_path / "models" / "model", **model_save_options(data))
    write_verdict(tmp_path / "models" / "model", {"accepted": True, "checks": []})
    (tmp_path / "schema.yaml").write_text(contract.to_yaml())
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    binary = {"task": "binary_classification", "train": params["train"] | {"primary_metric": "roc_auc"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params | binary))
    config = ServingConfig(
        paths=Paths(tmp_path), model_source="local", prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}"
    )

    with TestClient(create_app(config)) as client:
        record = {names[0]: 40, names[1]: 81.5, names[2]: 200.0, names[3]: "Île-de-France", names[4]: "2022-03-01"}
        answer = client.post("/predict", json=record)
        document = client.get("/openapi.json").json()
        metrics = client.get("/metrics")

    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["prediction"] in ("yes", "no")
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(property_names(body)) == set(names)
    assert metrics.status_code == 200
    assert load_contract(tmp_path / "schema.yaml").feature_names == names


def property_names(schema: object) -> list[str]:
    """Every property name anywhere in a JSON schema."""
    if isinstance(schema, dict):
        own = list(schema.get("properties", {}))
        return own + [name for value in schema.values() for name in property_names(value)]
    if isinstance(schema, list):
        return [name for value in schema for name in property_names(value)]
    return []


def test_batch_files_are_read_as_extract_reads_them(tmp_path: Path) -> None:
    from mlops_runtime.batch import read_chunks
    from mlops_runtime.schema import CategoricalColumn, Contract

    age = NumericColumn(name="age", minimum=0, maximum=120, max_missing=0.5)
    flag = CategoricalColumn(name="flag", categories=("FALSE", "TRUE"))
    contract = Contract(features=(age, flag), target=age)
    (tmp_path / "in.csv").write_text('"id","age","flag"\n"007",41,"TRUE"\n"008",NA,"FALSE"\n"009",.,"TRUE"\n')

    [chunk] = list(read_chunks([tmp_path / "in.csv"], chunk_rows=10))
    valid, reasons = contract.check_rows(chunk)

    assert reasons.empty  # NA and "." are missing, "TRUE" is one of the categories as written
    assert valid["age"].isna().tolist() == [False, True, True]
    assert chunk["id"].tolist() == ["007", "008", "009"]
