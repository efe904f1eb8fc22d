"""Real public data sets through a generated project: inference, the first `dvc repro`, the verdict,
serving one row, healthy traffic and monitoring.

The data sets and what a careful data scientist makes of them are in tests/corpus/<name>.yaml and
tests/corpus.py. The ones marked `ci: true` (a handful across the three tasks and the formats r_csv,
parquet_nullable, csv_glob; the sql source runs in test_e2e) run in the default test command; all of them run with
`CORPUS=all`, which `uv run nox -s corpus` sets. Each data set reports every problem it meets
(inference mismatches name the column, the kind expected and the decision made), not only the first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import install, render, run
from .corpus import Expectation, answers, expectations, inference_mismatches, write
from .test_e2e import free_port, http, serving

pytestmark = [pytest.mark.e2e, pytest.mark.corpus]

PACKAGE = "churn_model"  # the default answers' package name
ALL = os.environ.get("CORPUS", "") == "all"
CORPUS = expectations()
CHOSEN = [name for name, expectation in CORPUS.items() if ALL or expectation.ci]
HEALTHY_ROWS = 2000  # simulated requests, simulate's default: well above the monitor's min_rows (200)


def uv(root: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    completed = run(["uv", "run", "--frozen", *args], root, check=check, env=env)
    return completed.stdout + completed.stderr


def test_the_corpus_covers_the_tasks_formats_and_shapes_it_promises() -> None:
    """At least 12 data sets; every task and format; one with dates, one with 50 or more columns; the CI
    handful covers the three tasks and the r_csv, parquet_nullable and csv_glob formats."""
    from .corpus import FORMATS, TASKS, columns_written

    assert len(CORPUS) >= 12
    assert {e.task for e in CORPUS.values()} == set(TASKS)
    assert {e.format for e in CORPUS.values()} == set(FORMATS)
    assert any(e.features["datetime"] for e in CORPUS.values())
    assert max(len(columns_written(e)) for e in CORPUS.values()) >= 50
    handful = [e for e in CORPUS.values() if e.ci]
    assert {e.task for e in handful} == set(TASKS)
    assert {"r_csv", "parquet_nullable", "csv_glob"} <= {e.format for e in handful}
    assert any(not e.beats_baseline for e in CORPUS.values())


@pytest.mark.parametrize("name", CHOSEN)
def test_real_data_set_end_to_end(tmp_path: Path, name: str) -> None:
    expectation = CORPUS[name]
    root = render(tmp_path / name, tasks=True, **answers(expectation))
    write(expectation, root)
    install(root)
    problems: list[str] = []

    # Inference first: extract and infer_schema alone, so a wrong contract is reported before training.
    uv(root, "dvc", "repro", "infer_schema")
    problems += [f"inference: {line}" for line in inference_mismatches(expectation, (root / "schema.yaml").read_text())]

    completed = run(["uv", "run", "--frozen", "dvc", "repro"], root, check=False)
    output = completed.stdout + completed.stderr
    acceptance_file = root / "models" / "acceptance.json"
    if not acceptance_file.exists():
        problems.append(f"dvc repro exited {completed.returncode} before the gate:\n{output[-6000:]}")
        pytest.fail(report(expectation, problems))
    acceptance = json.loads(acceptance_file.read_text())
    problems += verdict_problems(expectation, acceptance, completed.returncode)

    if acceptance["accepted"]:
        problems += serving_and_monitoring_problems(root, expectation)
    if problems:
        pytest.fail(report(expectation, problems))


def verdict_problems(expectation: Expectation, acceptance: dict, exit_code: int) -> list[str]:
    """Accepted where the model should beat the baseline; else refused for the margin over it."""
    failed = [check for check in acceptance["checks"] if not check["passed"]]
    messages = "; ".join(str(check.get("message")) for check in failed)
    if expectation.beats_baseline and not acceptance["accepted"]:
        return [f"verdict: expected an accepted model, the gate refused it (exit {exit_code}): {messages}"]
    if not expectation.beats_baseline:
        if acceptance["accepted"]:
            return [f"verdict: expected no model to beat the baseline ({expectation.why}), but one was accepted"]
        if not any(check.get("rule") == "margin_over_baseline" for check in failed):
            return [f"verdict: refused, but not for the margin over the baseline: {messages}"]
    return []


def serving_and_monitoring_problems(root: Path, expectation: Expectation) -> list[str]:
    """Serve the champion and predict one test row; then healthy traffic, and `monitor` must exit 0."""
    row = one_test_row(root)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = {"SERVE_URL": base, "SERVE_PREDICTION_LOG_URL": "sqlite:///corpus-predictions.db"}
    problems = []
    with serving(root, port, **settings):
        status, answer = http("POST", f"{base}/predict", row)
        if status != 200 or len(answer.get("predictions", [])) != 1:  # type: ignore[union-attr]
            problems.append(f"serving: POST /predict of one test row answered {status}: {answer}\nrow: {row}")
    # Healthy traffic straight into the same log (the same model and contract as the service): its latency
    # is then the model's own, not that of a machine busy with other tests, which the latency check would judge.
    simulated = run(
        ["uv", "run", "--frozen", PACKAGE, "simulate", "--rows", str(HEALTHY_ROWS), "--seed", "1"],
        root,
        check=False,
        env=settings,
    )
    if simulated.returncode != 0:
        problems.append(f"simulate exited {simulated.returncode}:\n{(simulated.stdout + simulated.stderr)[-4000:]}")
    monitored = run(["uv", "run", "--frozen", PACKAGE, "monitor"], root, check=False, env=settings)
    if monitored.returncode != 0:
        problems.append(
            f"monitor on healthy traffic exited {monitored.returncode} (0 expected):\n"
            f"{(monitored.stdout + monitored.stderr)[-4000:]}"
        )
    return problems


def one_test_row(root: Path) -> dict[str, object]:
    """The first row of the test split, its features only, as JSON (dates in ISO 8601, missing as null)."""
    code = (
        "import pandas as pd; from mlops_runtime.schema import load_contract; c = load_contract();"
        "f = c.features_of(pd.read_parquet('data/prepared/test.parquet')).head(1);"
        "print(f.to_json(orient='records', date_format='iso'))"
    )
    output = run(["uv", "run", "--frozen", "python", "-c", code], root).stdout
    return json.loads(output.strip().splitlines()[-1])[0]


def report(expectation: Expectation, problems: list[str]) -> str:
    header = f"{expectation.name} ({expectation.source}, {expectation.task}, {expectation.format}):"
    return "\n".join([header, *(f"  - {problem}" for problem in problems)])
