"""The input contract: valid rows pass, every kind of bad row is named."""

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from pydantic import TypeAdapter, ValidationError

from mlops_runtime.errors import StageError
from mlops_runtime.schema import (
    CategoricalColumn,
    Column,
    Contract,
    IntegerCategoricalColumn,
    NumericColumn,
    load_contract,
)
from mlops_runtime.stages.validate import find_problems


@pytest.mark.ml_test_score("D1")
def test_generated_data_satisfies_its_contract(sample: pd.DataFrame, contract: Contract) -> None:
    assert find_problems(sample, contract.pandera_schema(), max_examples=3) == []


@pytest.mark.ml_test_score("D1")
def test_violations_are_reported_by_column_and_rule(sample: pd.DataFrame, contract: Contract) -> None:
    bad = sample.copy()
    bad.loc[0:2, "age"] = 150.0
    bad.loc[3, "plan"] = "platinum"
    bad["income"] = np.nan
    bad = bad.drop(columns=["support_calls"])

    problems = {(p["column"], p["rule"].split("(")[0]): p for p in find_problems(bad, contract.pandera_schema(), 5)}

    assert problems[("age", "in_range")]["count"] == 3
    assert problems[("age", "in_range")]["examples"] == [150.0]
    assert problems[("plan", "isin")]["examples"] == ["platinum"]
    assert ("support_calls", "column present") in problems
    assert any(column == "income" and rule.startswith("at most") for column, rule in problems)


@pytest.mark.ml_test_score("D1")
def test_one_bad_value_is_one_violation(sample: pd.DataFrame, contract: Contract) -> None:
    """Text in a numeric column breaks the column's rule once: no separate type or comparison errors."""
    bad = sample.copy()
    bad["age"] = bad["age"].astype(object)
    bad.loc[4, "age"] = "forty"

    problems = find_problems(bad, contract.pandera_schema(), max_examples=5)

    assert problems == [{"column": "age", "rule": "in_range", "count": 1, "examples": ["forty"]}]


KINDS: list[tuple[Column, list[object], list[object]]] = [
    (NumericColumn(name="x", minimum=0.0, maximum=10.0), [0, 2.5, "7", 10.0], ["forty", -1.0, 10.5, True]),
    (CategoricalColumn(name="x", categories=("a", "b")), ["a", "b"], ["c", "A", 1]),
    (IntegerCategoricalColumn(name="x", categories=(1, 2, 3)), [1, 2.0, "3"], [4, 1.5, "two", True]),
]


@pytest.mark.parametrize(("column", "good", "bad"), KINDS, ids=lambda value: getattr(value, "kind", ""))
@pytest.mark.ml_test_score("D1", "Mo2")
def test_each_kind_applies_one_rule_everywhere(column: Column, good: list[object], bad: list[object]) -> None:
    """Pandera (validate), the row check (batch) and the request type (API) agree on what a valid value is."""
    values = pd.Series([*good, *bad, None], dtype=object)

    _, broken = column.conform(values)
    failures = find_problems(pd.DataFrame({"x": values}), pa.DataFrameSchema({"x": column.pandera_column()}), 10)

    assert broken.tolist() == [False] * len(good) + [True] * len(bad) + [False]
    assert [problem["count"] for problem in failures if problem["rule"] == column.check_name] == [len(bad)]
    request = TypeAdapter(column.annotation())
    for value in column.examples():
        request.validate_python(value)
    for value in bad:
        with pytest.raises(ValidationError):
            request.validate_python(value)


def test_examples_are_valid_requests_covering_every_category_and_range_end(contract: Contract) -> None:
    examples = contract.examples()
    request = contract.record_model()
    for row in examples.astype(object).where(examples.notna(), None).to_dict("records"):
        request.model_validate(row)
    for column in contract.features:
        values = examples[column.name]
        if isinstance(column, NumericColumn):
            assert (values.min(), values.max()) == (column.minimum, column.maximum)
        else:
            assert isinstance(column, CategoricalColumn)
            assert set(values.dropna()) == set(column.categories)
        assert values.isna().any() == bool(column.max_missing)


def test_integer_categories_reach_the_model_as_integers_on_every_path(tmp_path: Path) -> None:
    """Training, the API and batch prediction hand the model the same values: 2, never "2"."""
    path = tmp_path / "schema.yaml"
    path.write_text(
        "target: {name: y, type: numeric, min: 0, max: 1}\n"
        "features:\n  rating: {type: categorical, categories: [1, 2, 3], owner: t, pii: false}\n"
        "  x: {type: numeric, min: 0, max: 1, owner: t, pii: false}\n"
    )
    contract = load_contract(path)
    raw = pd.DataFrame({"rating": [2, 3], "x": [0.5, 0.25], "y": [0.0, 1.0]})
    training = contract.features_of(contract.coerce(raw))["rating"].tolist()
    request = contract.record_model()
    rows = raw.drop(columns="y").to_dict("records")
    served = contract.frame([request.model_validate(row).model_dump(by_alias=True) for row in rows])
    batch = contract.check_rows(raw.drop(columns="y"))[0]

    assert training == served["rating"].tolist() == batch["rating"].tolist() == [2, 3]
    for sent in ("2", True):
        with pytest.raises(ValueError, match="rating"):
            request.model_validate({"rating": sent, "x": 0.5})


def test_contract_round_trips_through_yaml(contract: Contract, tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(contract.to_yaml("# header\n"))
    assert load_contract(path) == contract


TARGET = "target: {name: y, type: numeric, min: 0, max: 1}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("features: []", "needs a 'target' mapping"),
        ("target: {name: y, type: numeric, min: 0, max: 1}\nfeatures: {}", "features' is empty"),
        ("target: {name: y, type: numeric, min: 2, max: 1}\nfeatures: {x: {type: numeric}}", "above max"),
        ("target: {name: y, type: categorical}\nfeatures: {x: {type: numeric, min: 0, max: 1}}", "categories"),
        (TARGET + "\nfeatures: {y: {type: numeric, min: 0, max: 1, owner: t, pii: false}}", "both"),
        ("target: [", "not valid YAML"),
    ],
)
def test_bad_contract_files_get_one_readable_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    with pytest.raises(StageError, match=message):
        load_contract(path)


@pytest.mark.ml_test_score("D4")
@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("pii: false", "needs an 'owner'"),
        ("owner: '  ', pii: false", "needs an 'owner'"),
        ("owner: growth-team", "needs 'pii: true' or 'pii: false'"),
        ("owner: growth-team, pii: maybe", "needs 'pii: true' or 'pii: false'"),
        ("owner: growth-team, pii: false, sensitive: 1", "sensitive"),
    ],
)
def test_a_feature_without_its_meta_level_facts_is_refused(tmp_path: Path, meta: str, message: str) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(TARGET + "\nfeatures: {x: {type: numeric, min: 0, max: 1, " + meta + "}}\n")
    with pytest.raises(StageError, match=message):
        load_contract(path)
