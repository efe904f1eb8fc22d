"""The ML Test Score (Breck et al., Google, 2017): 28 production-readiness tests, scored from what ran.

Each piece of evidence names its item. Tests carry `@pytest.mark.ml_test_score("D2")`, and
`pytest --ml-test-score-results FILE` writes their outcomes (the pytest plugin mlops_runtime.testing). Pipeline checks
carry an `item` key: reports/stability.json (evaluate), models/acceptance.json (accept, only when it
judged the model now in models/), and the validation report. An item scores 1 when evidence ran and
all of it passed, 0 when any of it failed or none ran, and 0.5 when it is done by hand (MANUAL says
why it cannot be automated). The system's score is the lowest of the four section sums, out of 7.
Nothing here is typed in: the table is computed from the evidence on every run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from .paths import Paths


@dataclass(frozen=True)
class Item:
    id: str
    section: str
    title: str


SECTIONS = ("Data", "Model", "Infrastructure", "Monitoring")
ITEMS = (
    Item("D1", "Data", "Feature expectations are captured in a schema"),
    Item("D2", "Data", "All features are beneficial"),
    Item("D3", "Data", "No feature's cost is too much"),
    Item("D4", "Data", "Features adhere to meta-level requirements"),
    Item("D5", "Data", "The data pipeline has appropriate privacy controls"),
    Item("D6", "Data", "New features can be added quickly"),
    Item("D7", "Data", "All input feature code is tested"),
    Item("M1", "Model", "Model specs are reviewed and submitted"),
    Item("M2", "Model", "Offline and online metrics correlate"),
    Item("M3", "Model", "All hyperparameters have been tuned"),
    Item("M4", "Model", "The impact of model staleness is known"),
    Item("M5", "Model", "A simpler model is not better"),
    Item("M6", "Model", "Model quality is sufficient on all important data slices"),
    Item("M7", "Model", "The model has been tested for considerations of inclusion"),
    Item("I1", "Infrastructure", "Training is reproducible"),
    Item("I2", "Infrastructure", "Model specs are unit tested"),
    Item("I3", "Infrastructure", "The ML pipeline is integration tested"),
    Item("I4", "Infrastructure", "Model quality is validated before serving"),
    Item("I5", "Infrastructure", "The model is debuggable"),
    Item("I6", "Infrastructure", "Models are canaried before serving"),
    Item("I7", "Infrastructure", "Serving models can be rolled back"),
    Item("Mo1", "Monitoring", "Dependency changes result in notification"),
    Item("Mo2", "Monitoring", "Data invariants hold for inputs"),
    Item("Mo3", "Monitoring", "Training and serving are not skewed"),
    Item("Mo4", "Monitoring", "Models are not too stale"),
    Item("Mo5", "Monitoring", "Models are numerically stable"),
    Item("Mo6", "Monitoring", "Computing performance has not regressed"),
    Item("Mo7", "Monitoring", "Prediction quality has not regressed"),
)
ITEM_IDS = {item.id for item in ITEMS}
# Items a template cannot automate honestly, with the reason; they score as done by hand (0.5).
MANUAL: dict[str, str] = {}


@dataclass(frozen=True)
class Evidence:
    item: str
    source: str  # a test's node id, or "<stage>: <rule>"
    passed: bool
    is_test: bool = False


@dataclass(frozen=True)
class Row:
    item: Item
    status: str  # automated, failed, manual or missing
    score: float
    evidence: list[Evidence]


def test_evidence(results: list[dict[str, Any]]) -> list[Evidence]:
    """Outcomes of marked tests; a skipped test is no evidence."""
    return [
        Evidence(item, result["test"], result["outcome"] == "passed", is_test=True)
        for result in results
        if result["outcome"] in ("passed", "failed")
        for item in result["items"]
    ]


def pipeline_evidence(paths: Paths) -> list[Evidence]:
    """The pipeline's own checks on the current data and model; a verdict on another model does not count."""
    from .verdict import model_digest

    evidence = []
    if paths.validation_report.exists():
        valid = bool(_read(paths.validation_report).get("valid"))
        evidence += [Evidence(item, "validate: schema.yaml on data/raw", valid) for item in ("D1", "Mo2")]
    if paths.stability.exists():
        evidence += _checks("evaluate", _read(paths.stability))
    if paths.acceptance.exists() and (paths.model / paths.model_file.name).exists():
        verdict = _read(paths.acceptance)
        if verdict.get("model_sha256") == model_digest(paths.model):
            evidence += _checks("accept", verdict)
        else:
            evidence.append(Evidence("I4", "accept: has not judged the model in models/", False))
    return evidence


def _checks(stage: str, report: dict[str, Any]) -> list[Evidence]:
    return [
        # A finding (feature benefit, cost) does not refuse the model unless enforced, but its item is not met.
        Evidence(
            check["item"],
            f"{stage}: {check['rule']}" + (f" (finding: {check['finding']})" if check.get("finding") else ""),
            bool(check["passed"]) and not check.get("finding"),
        )
        for check in report.get("checks", [])
        if check.get("item") in ITEM_IDS
    ]


def _read(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def score_items(evidence: list[Evidence]) -> list[Row]:
    rows = []
    for item in ITEMS:
        found = [piece for piece in evidence if piece.item == item.id]
        if item.id in MANUAL:
            rows.append(Row(item, "manual", 0.5, found))
        elif not found:
            rows.append(Row(item, "missing", 0.0, found))
        elif all(piece.passed for piece in found):
            rows.append(Row(item, "automated", 1.0, found))
        else:
            rows.append(Row(item, "failed", 0.0, found))
    return rows


def section_scores(rows: list[Row]) -> dict[str, float]:
    return {section: sum(row.score for row in rows if row.item.section == section) for section in SECTIONS}


def summarise(found: list[Evidence]) -> str:
    """'4 tests passed; accept: canary passed' - failures named one by one."""
    tests = [piece for piece in found if piece.is_test]
    checks = [piece for piece in found if not piece.is_test]
    parts = []
    if tests:
        failed = [piece.source for piece in tests if not piece.passed]
        parts.append(
            f"{len(tests) - len(failed)}/{len(tests)} tests passed"
            + (f" (failed: {', '.join(failed)})" if failed else "")
        )
    for source in dict.fromkeys(piece.source for piece in checks):
        outcomes = [piece.passed for piece in checks if piece.source == source]
        parts.append(f"{source} {'passed' if all(outcomes) else 'FAILED'}")
    return "; ".join(parts) or "nothing ran"


def table(rows: list[Row]) -> str:
    """The scorecard as a Markdown table, with the section sums and the final score."""
    lines = ["| Item | Test | Status | Evidence | Score |", "|---|---|---|---|---|"]
    for row in rows:
        evidence = MANUAL.get(row.item.id) or summarise(row.evidence)
        lines.append(f"| {row.item.id} | {row.item.title} | {row.status} | {evidence} | {row.score:g} |")
    sums = section_scores(rows)
    lines.append("")
    lines.append(" · ".join(f"{section} {value:g}/7" for section, value in sums.items()))
    lines.append(f"**ML Test Score: {min(sums.values()):g} of 7** (the lowest section)")
    return "\n".join(lines) + "\n"


def run_marked_tests(paths: Paths, pytest_args: list[str]) -> list[dict[str, Any]]:
    """Run the tests marked ml_test_score, the library's and the project's (a failing test is evidence too), and
    read their outcomes."""
    import subprocess
    import sys

    paths.scorecard_tests.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "ml_test_score",
        f"--ml-test-score-results={paths.scorecard_tests}",
        # The library's checks, run against this project (mlops_runtime.testing), and the project's own tests.
        "--pyargs",
        "mlops_runtime.checks",
        "tests",
    ]
    subprocess.run([*command, *pytest_args], cwd=paths.root, check=False)
    if not paths.scorecard_tests.exists():
        from .errors import StageError

        raise StageError("pytest wrote no ML Test Score results: it could not collect the tests (see its output).")
    return list(json.loads(paths.scorecard_tests.read_text()))


def run(paths: Paths, pytest_args: list[str], run_tests: bool = True) -> int:
    """Run the marked tests, score them with the pipeline's checks, print and save the table.

    Returns 1 when any automated check failed or an item has no evidence, else 0.
    """
    results = run_marked_tests(paths, pytest_args) if run_tests else []
    rows = score_items(test_evidence(results) + pipeline_evidence(paths))
    text = table(rows)
    paths.scorecard.parent.mkdir(parents=True, exist_ok=True)
    paths.scorecard.write_text(text)
    print(text, end="")
    return 1 if any(row.status in ("failed", "missing") for row in rows) else 0
