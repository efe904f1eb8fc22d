"""Bigger-than-memory data on one machine: a large Parquet glob written fast, and a command's peak memory.

Shared by tests/test_bigdata.py and benchmarks/stack_extract.py, so the test and the benchmark measure
the same thing the same way. Nothing here imports pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Run in the generated project's Python (DuckDB is a project dependency, not ours). Rows are pseudo-random
# but fixed (DuckDB's hash of the row number), and the label depends on x1, x2 and color plus noise, so a
# model learns something and every feature earns its place; customer_id is an identifier, left out.
WRITE_GLOB = """
import sys
import duckdb

folder, rows, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for part in range(files):
    start, stop = part * rows // files, (part + 1) * rows // files
    duckdb.execute(f'''COPY (
        SELECT 'c' || i AS customer_id, x1, x2, color,
               (x1 + 0.3 * x2 + CASE color WHEN 'red' THEN 15 WHEN 'blue' THEN -15 ELSE 0 END + noise > 80)::INTEGER
                   AS label
        FROM (SELECT i, (hash(i, 1) % 10000) / 100.0 AS x1, (hash(i, 2) % 1000) / 10.0 AS x2,
                     ['red', 'green', 'blue'][(hash(i, 3) % 3)::INTEGER + 1] AS color,
                     (hash(i, 4) % 4000) / 100.0 AS noise
              FROM range({start}, {stop}) AS t(i))
    ) TO '{folder}/part-{part:03d}.parquet' (FORMAT parquet)''')
"""

# A fresh process runs the command and reports the command's own peak RSS: RUSAGE_CHILDREN holds the
# largest waited-for child, and this wrapper has waited for nothing else (a long-lived test process has).
PEAK = """
import json, resource, subprocess, sys, time

started = time.perf_counter()
code = subprocess.call(sys.argv[1:])
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kilobytes on Linux
print(json.dumps({"code": code, "seconds": round(time.perf_counter() - started, 2), "peak_rss_mb": round(peak_mb)}))
"""


@dataclass(frozen=True)
class Measured:
    returncode: int
    seconds: float
    peak_rss_mb: int
    output: str  # the command's stdout and stderr

    def summary(self, stage: str) -> dict[str, str]:
        """The stage's one summary line (`extract: rows 234; columns 11; ...`) as {name: value}."""
        for line in reversed(self.output.splitlines()):
            if line.startswith(f"{stage}: "):
                summary = {}
                for part in line.removeprefix(f"{stage}: ").split("; "):
                    name, value = part.rsplit(" ", 1)
                    summary[name] = value
                return summary
        raise ValueError(f"no {stage} summary line in:\n{self.output}")


def python(root: Path) -> Path:
    return root / ".venv" / "bin" / "python"


def write_glob(root: Path, folder: Path, rows: int, files: int) -> list[Path]:
    """`rows` rows in `files` Parquet files `folder/part-NNN.parquet`, through the project's DuckDB."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([python(root), "-c", WRITE_GLOB, str(folder), str(rows), str(files)], check=True, cwd=root)
    return sorted(folder.glob("part-*.parquet"))


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> Measured:
    """Run `command` in its own wrapper process; its seconds and peak resident memory."""
    completed = subprocess.run(
        [sys.executable, "-c", PEAK, *command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    lines = completed.stdout.splitlines()
    if completed.returncode or not lines:  # the wrapper itself failed
        raise RuntimeError(f"measuring {' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}")
    figures = json.loads(lines[-1])
    output = "\n".join(lines[:-1]) + "\n" + completed.stderr
    return Measured(figures["code"], figures["seconds"], figures["peak_rss_mb"], output)


def parquet_rows(root: Path, path: str) -> tuple[int, int]:
    """(row count, largest `row` value) of a Parquet output, read by the project's DuckDB."""
    script = "import duckdb, sys; print(*duckdb.execute(sys.argv[1], [sys.argv[2]]).fetchone())"
    query = "SELECT count(*), max(row) FROM read_parquet(?)"
    completed = subprocess.run(
        [python(root), "-c", script, query, path], check=True, cwd=root, capture_output=True, text=True
    )
    count, largest = completed.stdout.split()
    return int(count), int(largest)


def set_params(root: Path, change: dict[str, Any]) -> None:
    """Set dotted keys of params.yaml (comments are not kept: fine for a test or benchmark project)."""
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        section = params
        for parent in parents:
            section = section[parent]
        section[key] = value
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
