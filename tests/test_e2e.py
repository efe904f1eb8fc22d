"""End to end: render, `uv sync`, the real `dvc repro` with a real MLflow store, the project's own tests."""

from __future__ import annotations

import csv
import json
import random
import re
import sqlite3
from pathlib import Path

import pytest
import yaml

from .conftest import render, run

pytestmark = pytest.mark.e2e


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([a-z_]+)'", output)


def install(root: Path) -> None:
    run(["uv", "sync", "--frozen", "--quiet"], root)


def repro(root: Path, *args: str, check: bool = True) -> str:
    completed = run(["uv", "run", "--frozen", "dvc", "repro", *args], root, check=check)
    return completed.stdout + completed.stderr


def accepted(root: Path) -> dict:
    acceptance = json.loads((root / "reports" / "acceptance.json").read_text())
    assert acceptance["accepted"] is True, acceptance
    return acceptance


def test_sample_binary_project_end_to_end(tmp_path: Path) -> None:
    """The default project, as a user meets it: each step below depends on the one before."""
    root = render(tmp_path / "churn", tasks=True)
    install(root)
    check_first_repro_trains_and_accepts(root)
    check_second_repro_runs_nothing(root)
    check_a_params_change_reruns_only_downstream_stages(root)
    check_metrics_and_plots_are_dvc_readable(root)
    check_mlflow_run_has_model_metrics_and_lineage(root)
    check_generated_project_tests_and_lint_pass(root)


def check_first_repro_trains_and_accepts(root: Path) -> None:
    output = repro(root)
    assert stages_run(output) == ["extract", "validate", "analyze", "prepare", "train", "evaluate", "accept"]
    accepted(root)
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert set(metrics["model"]["test"]) == {"roc_auc", "f1", "accuracy", "log_loss"}
    assert metrics["model"]["test"]["roc_auc"] > metrics["baseline"]["test"]["roc_auc"] + 0.05
    for path in ("data/raw/data.parquet", "models/model/MLmodel", "reports/eda/index.html", "mlflow.db"):
        assert (root / path).exists(), path
    for plot in ("roc.json", "precision_recall.json", "confusion.json", "roc.png", "confusion_matrix.png"):
        assert (root / "reports" / "plots" / plot).exists(), plot


def check_second_repro_runs_nothing(root: Path) -> None:
    assert stages_run(repro(root)) == []
    assert "up to date" in run(["uv", "run", "--frozen", "dvc", "status"], root).stdout


def check_a_params_change_reruns_only_downstream_stages(root: Path) -> None:
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["train"]["hyperparameters"]["learning_rate"] = 0.08
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    assert stages_run(repro(root)) == ["train", "evaluate", "accept"]
    accepted(root)


def check_metrics_and_plots_are_dvc_readable(root: Path) -> None:
    shown = json.loads(run(["uv", "run", "--frozen", "dvc", "metrics", "show", "--json"], root).stdout)
    values = next(iter(shown.values()))["data"]["reports/metrics.json"]["data"]
    assert 0.5 < values["model"]["test"]["roc_auc"] <= 1.0
    plots = run(["uv", "run", "--frozen", "dvc", "plots", "show", "--json"], root).stdout
    assert "ROC curve" in plots
    assert "Confusion matrix" in plots


def check_mlflow_run_has_model_metrics_and_lineage(root: Path) -> None:
    code = (
        "import json, mlflow; mlflow.set_tracking_uri('sqlite:///mlflow.db');"
        "run = mlflow.get_run(json.load(open('models/run.json'))['run_id']);"
        "print(json.dumps({'metrics': run.data.metrics, 'tags': run.data.tags, 'params': run.data.params}))"
    )
    logged = json.loads(run(["uv", "run", "--frozen", "python", "-c", code], root).stdout.strip().splitlines()[-1])
    assert logged["metrics"]["test_roc_auc"] > 0.75
    assert "baseline_test_roc_auc" in logged["metrics"]
    assert len(logged["tags"]["git_commit"]) == 40
    assert logged["tags"]["data_version"] != "unknown"
    assert logged["params"]["estimator"] == "hist_gradient_boosting"


def check_generated_project_tests_and_lint_pass(root: Path) -> None:
    run(["uv", "run", "--frozen", "pytest", "-q", "-p", "no:cacheprovider"], root)
    run(["uv", "run", "--frozen", "ruff", "check", "."], root)


@pytest.mark.parametrize("task", ["multiclass_classification", "regression"])
def test_sample_pipeline_for_other_tasks(tmp_path: Path, task: str) -> None:
    root = render(tmp_path / "p", tasks=True, task=task)
    install(root)
    repro(root)
    accepted(root)
    metrics = json.loads((root / "reports" / "metrics.json").read_text())["model"]["test"]
    expected = {"multiclass_classification": {"f1_macro", "accuracy", "log_loss"}, "regression": {"rmse", "mae", "r2"}}
    assert set(metrics) == expected[task]


def synthetic_rows(count: int, seed: int) -> list[dict[str, object]]:
    """Small data with a learnable signal, written by the test itself (no numpy needed)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        x1, x2 = rng.uniform(0, 10), rng.gauss(50, 10)
        color = rng.choice(["red", "green", "blue"])
        score = x1 + 0.1 * (x2 - 50) + {"red": 2.0, "green": 0.0, "blue": -2.0}[color] + rng.gauss(0, 1)
        rows.append(
            {
                "customer_id": f"c{rng.randrange(10**9)}",
                "x1": round(x1, 3),
                "x2": round(x2, 3) if rng.random() > 0.05 else "",
                "color": color,
                "label": "high" if score > 7 else ("mid" if score > 3 else "low"),
                "amount": round(10 * score + rng.gauss(0, 3), 2),
                "flag": int(score > 5),
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_file_source_infers_the_contract_then_stops_bad_rows(tmp_path: Path) -> None:
    root = render(
        tmp_path / "p",
        tasks=True,
        task="regression",
        data_source="file",
        data_path="data/source/*.csv",
        target_column="amount",
    )
    rows = synthetic_rows(1500, seed=1)
    for row in rows:
        del row["label"], row["flag"]
    write_csv(root / "data" / "source" / "part-1.csv", rows)
    install(root)

    output = repro(root)
    assert "review it and commit it" in output
    accepted(root)
    contract = yaml.safe_load((root / "schema.yaml").read_text())
    assert contract["target"]["name"] == "amount"
    assert set(contract["features"]) == {"x1", "x2", "color"}  # customer_id left out as an identifier
    assert contract["features"]["color"]["categories"] == ["blue", "green", "red"]
    model_before = (root / "models" / "model" / "model.pkl").read_bytes()

    bad = synthetic_rows(20, seed=2)
    for row in bad:
        del row["label"], row["flag"]
    bad[0]["color"] = "purple"
    bad[1]["x1"] = 99.0
    write_csv(root / "data" / "source" / "part-2.csv", bad)
    completed = run(["uv", "run", "--frozen", "dvc", "repro"], root, check=False)
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "validate failed" in output
    assert "color: isin" in output
    assert "x1: in_range" in output
    assert "train" not in stages_run(output)
    report = json.loads((root / "reports" / "validation.json").read_text())
    assert report["valid"] is False
    assert {problem["column"] for problem in report["problems"]} == {"color", "x1"}
    assert (root / "models" / "model" / "model.pkl").read_bytes() == model_before


def test_sql_source_runs_the_query(tmp_path: Path) -> None:
    root = render(
        tmp_path / "p",
        tasks=True,
        task="binary_classification",
        data_source="sql",
        database_url="sqlite:///data/source/source.db",
        query="SELECT x1, x2, color, flag FROM examples WHERE x1 IS NOT NULL",
        target_column="flag",
    )
    (root / "data" / "source").mkdir(parents=True)
    with sqlite3.connect(root / "data" / "source" / "source.db") as connection:
        connection.execute("CREATE TABLE examples (x1 REAL, x2 REAL, color TEXT, flag INTEGER)")
        connection.executemany(
            "INSERT INTO examples VALUES (?, ?, ?, ?)",
            [(r["x1"], r["x2"] or None, r["color"], r["flag"]) for r in synthetic_rows(1500, seed=3)],
        )
    install(root)
    repro(root)
    accepted(root)
    assert yaml.safe_load((root / "schema.yaml").read_text())["target"]["categories"] == [0, 1]
    run(["uv", "run", "--frozen", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"], root)
