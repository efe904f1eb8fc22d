"""Bigger-than-memory benchmark: the file source over a 10,000,000-row Parquet glob, on one machine.

Renders and installs a file-source project (or reuses one in WORKDIR/project), writes the glob (10 files),
and measures, each command in its own process: the full extract (seconds, peak RSS), the extract with
`extract.file.sample_rows` (DuckDB still reads every row), and batch prediction over the whole glob with
a model trained on the sample. Target: the 10M-row extract stays under 2 GB of memory.
Prints one JSON object. Run: `uv run python benchmarks/stack_extract.py [--keep DIR] [--no-predict]`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from pipeline import env  # noqa: E402 - the same project environment as the other benchmarks

from tests.bigdata import measure, set_params, write_glob  # noqa: E402 - the e2e test measures the same way

ROWS = 10_000_000
FILES = 10
PACKAGE = "churn_model"


def sh(command: list[str], cwd: Path) -> None:
    completed = subprocess.run(command, cwd=cwd, env=env(cwd), capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}")


def file_project(root: Path) -> Path:
    """A binary-classification project on data/source/*.parquet, installed; reused when already there."""
    import copier

    if not (root / ".venv").exists():
        answers = {
            "task": "binary_classification",
            "data_source": "file",
            "data_path": "data/source/*.parquet",
            "target_column": "label",
        }
        copier.run_copy(str(REPO), root, data=answers, defaults=True, vcs_ref="HEAD", skip_tasks=True, quiet=True)
        for command in (["git", "init", "-q"], ["uv", "lock", "-q"], ["uv", "sync", "--frozen", "-q"]):
            sh(command, root)
        sh(["git", "add", "-A"], root)
        sh(["git", "commit", "-qm", "init"], root)
    return root


def figures(command: list[str], root: Path) -> dict[str, object]:
    measured = measure(command, root, env(root))
    if measured.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{measured.output}")
    summary = measured.last_json()
    return {"rows": summary["rows"], "seconds": measured.seconds, "peak_rss_mb": measured.peak_rss_mb}


def extract_10m(workdir: Path, predict: bool = True) -> dict[str, object]:
    """{"rows", "seconds", "peak_rss_mb"} of the full 10M-row extract, plus "sampled" and "batch_predict" figures."""
    root = file_project(workdir.absolute() / "project")
    if len(list((root / "data" / "source").glob("part-*.parquet"))) != FILES:
        write_glob(root, root / "data" / "source", ROWS, FILES)
    script = str(root / ".venv" / "bin" / PACKAGE)

    set_params(root, {"extract.file.sample_rows": None})
    results = figures([script, "extract"], root)
    set_params(root, {"extract.file.sample_rows": 20_000, "train.tuning.n_trials": 2})
    results["sampled"] = figures([script, "extract"], root)
    if predict:
        sh(["git", "commit", "-q", "--allow-empty", "-m", "sample", "--", "params.yaml"], root)
        sh([str(root / ".venv" / "bin" / "dvc"), "repro"], root)  # a model to score with (not measured)
        results["batch_predict"] = figures([script, "predict", "data/source/*.parquet", "predictions.parquet"], root)
    results["target"] = "peak_rss_mb < 2048"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (reused on the next run)")
    parser.add_argument("--no-predict", action="store_true", help="leave out training and batch prediction")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-extract-"))
    try:
        print(json.dumps(extract_10m(workdir, predict=not args.no_predict), indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
