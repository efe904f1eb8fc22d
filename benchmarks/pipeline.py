"""Pipeline benchmark: render, install, full and no-op `dvc repro`, per-stage times.

Prints one JSON object. Per-stage times are measured side by side in one run: through DVC
(`dvc repro --force --single-item STAGE`), as the bare stage command, and for the stages
that talk to MLflow, the bare command with tracking off (MLFLOW_TRACKING=off), so the DVC
and MLflow overheads per stage show. `train` runs the default tuning budget.
Run: `uv run python benchmarks/pipeline.py [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ["extract", "validate", "analyze", "prepare", "train", "evaluate", "accept"]
TRACKED_STAGES = ["train", "evaluate", "accept"]


def env(project: Path | None = None) -> dict[str, str]:
    """The environment `uv run` would give inside the project: its .venv/bin first on PATH."""
    variables = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    if project is not None:
        variables["PATH"] = f"{project / '.venv' / 'bin'}{os.pathsep}{variables.get('PATH', '')}"
    variables.setdefault("GIT_AUTHOR_NAME", "bench")
    variables.setdefault("GIT_AUTHOR_EMAIL", "bench@example.com")
    variables.setdefault("GIT_COMMITTER_NAME", "bench")
    variables.setdefault("GIT_COMMITTER_EMAIL", "bench@example.com")
    return variables


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return round(time.perf_counter() - started, 3)


def sh(command: list[str], cwd: Path, **extra_env: str) -> None:
    variables = env(cwd) | extra_env
    completed = subprocess.run(command, cwd=cwd, env=variables, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}")


def median_time(action: Callable[[], object], repeat: int) -> float:
    return round(statistics.median(timed(action) for _ in range(repeat)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="render into this folder and keep it")
    parser.add_argument("--vcs-ref", default="HEAD", help="the template version to render (e.g. an older commit)")
    args = parser.parse_args()
    import copier

    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    root = (args.keep or workdir / "project").absolute()
    results: dict[str, object] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    results["template"] = args.vcs_ref

    results["render_seconds"] = timed(
        lambda: copier.run_copy(str(REPO), root, defaults=True, vcs_ref=args.vcs_ref, skip_tasks=True, quiet=True)
    )
    results["setup_tasks_seconds"] = timed(
        lambda: (
            sh(["git", "init", "-q"], root),
            sh(["uv", "lock", "-q"], root),
            sh(["git", "add", "-A"], root),
            sh(["git", "commit", "-qm", "init"], root),
        )
    )
    sync = ["uv", "sync", "--frozen", "-q", "--compile-bytecode"]
    results["uv_sync_warm_cache_seconds"] = timed(lambda: sh(sync, root))
    dvc = [str(root / ".venv" / "bin" / "dvc")]
    results["full_repro_seconds"] = timed(lambda: sh([*dvc, "repro"], root))
    results["noop_repro_seconds"] = median_time(lambda: sh([*dvc, "repro"], root), repeat=5)
    package = next(path.name for path in (root / "src").iterdir() if path.is_dir())
    script = str(root / ".venv" / "bin" / package)
    results["cli_startup_seconds"] = median_time(lambda: sh([script, "--help"], root), repeat=5)
    results["stage_seconds"] = {
        stage: {
            "dvc": timed(lambda stage=stage: sh([*dvc, "repro", "--force", "--single-item", stage], root)),
            "bare": timed(lambda stage=stage: sh([script, stage], root)),
        }
        for stage in STAGES
    }
    results["mlflow_overhead_seconds"] = {}
    for stage in TRACKED_STAGES:
        off = timed(lambda stage=stage: sh([script, stage], root, MLFLOW_TRACKING="off"))
        on = timed(lambda stage=stage: sh([script, stage], root))
        results["mlflow_overhead_seconds"][stage] = {"on": on, "off": off, "overhead": round(on - off, 3)}
    print(json.dumps(results, indent=2))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
