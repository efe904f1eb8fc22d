"""Team-stack benchmark: the shared services against the embedded defaults, side by side in one run.

Starts the stack of tests/stack.py (PostgreSQL 15, SeaweedFS's S3, the MLflow server on both) and measures, on
one rendered default project:
- a full `dvc repro --force` tracked in the embedded SQLite store and on the MLflow server (the ratio);
- tuning the default study with 1 and 2 worker processes, on PostgreSQL and with the local default storage
  (trials per second; `train` with MLFLOW_TRACKING=off, so only tuning and the refit are timed);
- service throughput with the prediction log in SQLite and in PostgreSQL (wrk, 8 connections);
- the extract of a 10,000,000-row Parquet glob (seconds, peak memory; benchmarks/stack_extract.py).
Prints one JSON object. Run: `uv run python benchmarks/stack.py [--rounds N]` (wrk: `apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from pipeline import env, timed  # noqa: E402 - the same project environment as the other benchmarks
from serving import free_port, one_row, serve_and_load  # noqa: E402
from stack_extract import extract_10m  # noqa: E402

from tests.bigdata import set_params  # noqa: E402 - the same params editing as the e2e tests
from tests.stack import Stack, running_stack  # noqa: E402

TARGETS = {
    "repro_server_over_sqlite": "<= 1.25",
    "tuning_2_over_1_workers_postgresql (default study)": ">= 1.6",
    "log_postgresql_over_sqlite_rps": ">= 0.8",
    "extract_10m_peak_rss_mb": "< 2048",
}


def sh(command: list[str], root: Path, **extra: str) -> str:
    completed = subprocess.run(command, cwd=root, env=env(root) | extra, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return completed.stdout


def project(workdir: Path) -> Path:
    import copier

    root = workdir / "project"
    copier.run_copy(str(REPO), root, defaults=True, vcs_ref="HEAD", unsafe=True, quiet=True)
    sh(["uv", "sync", "--frozen", "-q"], root)
    return root


def repro(root: Path, stack: Stack, rounds: int) -> dict[str, object]:
    """Full repro, embedded store and server alternating, so machine drift hits both alike; medians."""
    dvc = str(root / ".venv" / "bin" / "dvc")
    server = {"MLFLOW_TRACKING_URI": stack.mlflow_uri}
    sh([dvc, "repro", "-q"], root)  # warm caches (imports, the DVC cache of the sample data)
    times: dict[str, list[float]] = {"sqlite": [], "server": []}
    for _ in range(rounds):
        times["sqlite"].append(timed(lambda: sh([dvc, "repro", "--force", "-q"], root)))
        times["server"].append(timed(lambda: sh([dvc, "repro", "--force", "-q"], root, **server)))
    medians = {name: round(statistics.median(found), 2) for name, found in times.items()}
    return {
        "sqlite_s": medians["sqlite"],
        "server_s": medians["server"],
        "rounds": times,
        "server_over_sqlite": round(medians["server"] / medians["sqlite"], 3),
    }


def tuning(root: Path, stack: Stack, rounds: int) -> dict[str, object]:
    """`train` alone (tracking off) on 1 or 2 worker processes: the default study, locally and on PostgreSQL,
    then a study whose trials dominate (random forests only, single-threaded, 24 trials) on PostgreSQL.
    params.yaml and models/ are put back afterwards, so the model the service benchmark serves is the accepted one.
    """
    saved_params = (root / "params.yaml").read_text()
    shutil.copytree(root / "models", root.parent / "models-saved", dirs_exist_ok=True)
    try:
        results: dict[str, object] = {"default_study": tuning_runs(root, stack, rounds, ("local", "postgresql"))}
        set_params(root, {"train.candidates": {"random_forest": RANDOM_FOREST}, "train.tuning.n_trials": 24})
        results["random_forest_study"] = tuning_runs(root, stack, rounds, ("postgresql",))
    finally:
        (root / "params.yaml").write_text(saved_params)
        shutil.rmtree(root / "models")
        shutil.copytree(root.parent / "models-saved", root / "models")
    return results


RANDOM_FOREST = {"n_estimators": {"low": 100, "high": 200}, "max_depth": {"low": 6, "high": 12}}


def tuning_runs(root: Path, stack: Stack, rounds: int, storages: tuple[str, ...]) -> dict[str, object]:
    package = next(path.name for path in (root / "src").iterdir() if (path / "cli.py").exists())
    script = str(root / ".venv" / "bin" / package)
    params = json.loads(sh([str(root / ".venv" / "bin" / "python"), "-c", READ_PARAMS], root))
    trials = params["train"]["tuning"]["n_trials"] * len(params["train"]["candidates"])
    results: dict[str, object] = {"trials": trials}
    for storage in storages:
        runs: dict[int, list[float]] = {1: [], 2: []}
        for attempt in range(rounds):
            for workers in (1, 2):  # alternating, so machine drift hits both alike
                set_params(root, {"train.tuning.workers": workers})
                extra = {"MLFLOW_TRACKING": "off"}
                if storage == "postgresql":  # a fresh database per run: no study is reused
                    extra["OPTUNA_STORAGE"] = stack.postgres_url(f"optuna_{trials}_{workers}_{attempt}")
                runs[workers].append(tuning_seconds(sh([script, "train"], root, **extra)))
        for workers, found in runs.items():
            seconds = statistics.median(found)
            results[f"{storage}_{workers}_workers"] = {
                "tuning_s": round(seconds, 2),
                "trials_per_s": round(trials / seconds, 3),
            }
        one, two = (statistics.median(runs[count]) for count in (1, 2))
        results[f"{storage}_2_over_1"] = round(one / two, 3)
    set_params(root, {"train.tuning.workers": 1})
    return results


READ_PARAMS = "import json, yaml; print(json.dumps(yaml.safe_load(open('params.yaml'))))"


def tuning_seconds(output: str) -> float:
    """Tuning's wall time as train prints it, worker start-up included ("Tuned N trials in S s ...")."""
    found = re.search(r"Tuned \d+ trials in ([\d.]+) s", output)
    if found is None:
        sys.exit(f"train printed no tuning time:\n{output[-2000:]}")
    return float(found.group(1))


def prediction_log(root: Path, stack: Stack, rounds: int, duration: int) -> dict[str, object]:
    """Throughput of one service process at 8 connections, its log in SQLite or in PostgreSQL (alternating)."""
    package = next(path.name for path in (root / "src").iterdir() if (path / "cli.py").exists())
    script = str(root / ".venv" / "bin" / package)
    row = one_row(root, "churned")
    settings = argparse.Namespace(duration=duration)
    runs: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": []}
    for attempt in range(rounds):
        for name in runs:
            url = (
                f"sqlite:///{tempfile.mkdtemp(prefix='bench-log-')}/predictions.db"
                if name == "sqlite"
                else stack.postgres_url(f"predictions_{attempt}")
            )
            os.environ["SERVE_PREDICTION_LOG_URL"] = url  # env() copies the environment into the server's
            port = free_port()
            command = [script, "serve", "--port", str(port), "--model-source", "local"]
            runs[name].append(serve_and_load(command, root, "/predict", row, settings, port, [8])[8])
    os.environ.pop("SERVE_PREDICTION_LOG_URL", None)
    medians = {name: statistics.median(run["requests_per_second"] for run in found) for name, found in runs.items()}
    return {
        "connections": 8,
        "sqlite_rps": round(medians["sqlite"], 1),
        "postgresql_rps": round(medians["postgresql"], 1),
        "rounds_rps": {name: [run["requests_per_second"] for run in found] for name, found in runs.items()},
        "postgresql_over_sqlite": round(medians["postgresql"] / medians["sqlite"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="runs per setting; medians are reported")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per service run")
    parser.add_argument("--skip-extract", action="store_true", help="leave out the 10M-row extract")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed as the load client: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    results: dict[str, object] = {"machine": {"cpus": os.cpu_count()}, "targets": TARGETS}
    try:
        with running_stack() as stack:
            root = project(workdir)
            results["repro"] = repro(root, stack, args.rounds)
            results["tuning"] = tuning(root, stack, args.rounds)
            results["prediction_log"] = prediction_log(root, stack, args.rounds, args.duration)
        if not args.skip_extract:
            results["extract_10m"] = extract_10m(workdir / "extract")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
