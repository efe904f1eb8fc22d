"""Monitoring benchmark: drift on 1,000,000 x 20, this project against Evidently and NannyML, in one run.

The data: a reference and a current set of 1,000,000 rows and 20 features (15 numeric, 5
categorical); 3 numeric features of the current set are shifted by half a standard deviation,
the rest is drawn from the reference distribution. Both sets are written once to Parquet; each
engine reads them in its own process, so wall time and peak memory (max RSS) are its own:
- this project: the reference side as `train` saves it in the profile (its own process, timed
  apart), then the drift checks on the current side with the profile (PSI, effect size,
  p-value per feature), as the monitoring job runs them;
- Evidently's DataDriftPreset, in its own environment (Evidently does not import with pandas 3);
- NannyML's univariate drift (Jensen-Shannon and Kolmogorov-Smirnov), in its own environment.
Each reports the features it flags. Then the whole `monitor` job on a prediction log of
1,000,000 rows. Prints one JSON object. Needs PyPI for the peer environments.

Run: `uv run python benchmarks/monitoring.py [--project DIR] [--rows N] [--skip-peers]`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from pipeline import env  # noqa: E402 - the same project environment as the pipeline benchmark

SHIFTED = ["n0", "n1", "n2"]
MAKE_DATA = """
import sys, numpy as np, pandas as pd
rows, out = int(sys.argv[1]), sys.argv[2]
def frame(seed, shift):
    rng = np.random.default_rng(seed)
    data = {f"n{i}": rng.normal(10 + i, 2 + i / 5, rows) + (shift * (2 + i / 5) if i < 3 else 0) for i in range(15)}
    for i in range(5):
        data[f"c{i}"] = rng.choice([f"v{j}" for j in range(4 + i)], rows)
    return pd.DataFrame(data)
frame(1, 0.0).to_parquet(f"{out}/reference.parquet"); frame(2, 0.5).to_parquet(f"{out}/current.parquet")
"""
# The reference side as `train` computes it once and saves it in the model's profile.
PROFILE = """
import json, resource, sys, time
import numpy as np, pandas as pd
from {machinery}.monitoring.profile import numeric_profile
from {machinery}.monitoring.statistics import category_counts
from {machinery}.params import ProfileParams
folder = sys.argv[1]
reference = pd.read_parquet(f"{{folder}}/reference.parquet")
started = time.perf_counter()
rng, params = np.random.default_rng(0), ProfileParams()
features = {{}}
for name in reference.columns:
    if name.startswith("n"):
        features[name] = {{"kind": "numeric"}} | numeric_profile(reference[name].to_numpy(), params, rng)
    else:
        categories = sorted(reference[name].unique())
        counts = category_counts(reference[name].to_numpy(), categories).tolist()
        features[name] = {{"kind": "categorical", "categories": categories, "counts": counts}}
seconds = time.perf_counter() - started
with open(f"{{folder}}/profile.json", "w") as handle:
    json.dump({{"features": features}}, handle)
print(json.dumps({{"profile_seconds": round(seconds, 3),
    "profile_peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}}))
"""
# What the monitoring job does: the profile and the current window, nothing of the training data.
OURS = """
import json, resource, sys, time
import pandas as pd
from {machinery}.monitoring import checks
from {machinery}.monitoring.window import Window
from {machinery}.params import MonitorParams
folder = sys.argv[1]
current = pd.read_parquet(f"{{folder}}/current.parquet")
with open(f"{{folder}}/profile.json") as handle:
    profile = json.load(handle)
window = Window(0, 1, current, pd.DataFrame(), None, [], 0, None)
started = time.perf_counter()
found = checks.feature_drift(window, profile, MonitorParams())
seconds = time.perf_counter() - started
print(json.dumps({{"drift_seconds": round(seconds, 3),
    "flagged": sorted(check["feature"] for check in found if check["status"] == "alert"),
    "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}}))
"""
EVIDENTLY = """
import json, resource, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
folder = sys.argv[1]
reference, current = pd.read_parquet(f"{folder}/reference.parquet"), pd.read_parquet(f"{folder}/current.parquet")
started = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
seconds = time.perf_counter() - started
flagged = []
for metric in snapshot.dict()["metrics"]:
    config = metric.get("config", {})
    if config.get("type", "").endswith("ValueDrift"):
        by_p_value = "p_value" in config["method"]  # small samples: a test decides; large ones a distance
        value, threshold = metric["value"], config["threshold"]
        if (value < threshold) if by_p_value else (value >= threshold):
            flagged.append(config["column"])
print(json.dumps({"drift_seconds": round(seconds, 3), "flagged": sorted(flagged),
    "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""
NANNYML = """
import json, os, resource, sys, time
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
import pandas as pd, nannyml as nml
folder = sys.argv[1]
reference, current = pd.read_parquet(f"{folder}/reference.parquet"), pd.read_parquet(f"{folder}/current.parquet")
started = time.perf_counter()
calculator = nml.UnivariateDriftCalculator(
    column_names=list(reference.columns), continuous_methods=["jensen_shannon"],
    categorical_methods=["jensen_shannon"], chunk_number=10)  # thresholds come from the reference chunks' spread
calculator.fit(reference)
results = calculator.calculate(current).filter(period="analysis").to_df()
seconds = time.perf_counter() - started
flagged = sorted({column for column in reference.columns
    if bool(results[(column, "jensen_shannon", "alert")].any())})
print(json.dumps({"drift_seconds": round(seconds, 3), "flagged": flagged,
    "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""
PEERS = {
    "evidently": (["evidently==0.7.23", "pandas<3", "pyarrow"], EVIDENTLY),
    "nannyml": (["nannyml", "statsmodels", "pandas<3", "pyarrow"], NANNYML),
}


def run_json(command: list[str], cwd: Path | None = None, timeout: int = 3600) -> dict:
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if completed.returncode != 0:
        return {"error": (completed.stderr or completed.stdout)[-1500:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def peer(name: str, folder: Path, scratch: Path) -> dict:
    """A peer library in a fresh environment of its own (the versions it supports), then its drift run."""
    packages, code = PEERS[name]
    venv = scratch / f"{name}-env"
    python = venv / "bin" / "python"
    setup = subprocess.run(
        ["uv", "venv", "-q", "--python", sys.executable, str(venv)], capture_output=True, text=True, check=False
    )
    install = subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(python), *packages], capture_output=True, text=True, check=False
    )
    if setup.returncode or install.returncode:
        return {"error": f"does not install here: {(setup.stderr + install.stderr)[-1000:]}"}
    return run_json([str(python), "-c", code, str(folder)])


def monitor_job(project: Path, rows: int, scratch: Path) -> dict:
    """The whole `monitor` job on a prediction log of `rows` rows written by `simulate`."""
    log = scratch / "log.db"
    variables = env(project) | {"SERVE_PREDICTION_LOG_URL": f"sqlite:///{log}", "MLFLOW_TRACKING": "off"}
    command = [str(project / ".venv" / "bin" / project_package(project))]
    subprocess.run(
        [*command, "simulate", "--rows", str(rows), "--feedback", "0.1"],
        cwd=project,
        env=variables,
        capture_output=True,
        text=True,
        check=True,
    )
    started = time.perf_counter()
    completed = subprocess.run(
        [*command, "monitor"], cwd=project, env=variables, capture_output=True, text=True, check=False
    )
    return {"rows": rows, "seconds": round(time.perf_counter() - started, 3), "exit_code": completed.returncode}


def project_package(project: Path) -> str:
    import yaml

    return str(yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"])


def trained_project(scratch: Path) -> Path:
    project = scratch / "project"
    subprocess.run(
        [sys.executable, "-m", "generator", "demo", str(project)], cwd=REPO, env=env(), check=True, capture_output=True
    )
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, help="a generated project with a trained model")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-peers", action="store_true", help="only this project (no peer environments)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        scratch = Path(temporary)
        project = args.project.resolve() if args.project else trained_project(scratch)
        python = str(project / ".venv" / "bin" / "python")
        started = time.perf_counter()
        subprocess.run([python, "-c", MAKE_DATA, str(args.rows), str(scratch)], check=True)
        results: dict = {
            "rows": args.rows,
            "features": 20,
            "shifted": SHIFTED,
            "data_seconds": round(time.perf_counter() - started, 1),
        }
        package = project_package(project)
        copied = (project / "src" / package / "schema.py").exists()  # v0.2.0's layout: the machinery in the project
        machinery = package if copied else "mlops_runtime"
        profile = run_json([python, "-c", PROFILE.format(machinery=machinery), str(scratch)], cwd=project)
        results["this_project"] = profile | run_json(
            [python, "-c", OURS.format(machinery=machinery), str(scratch)], cwd=project
        )
        for name in () if args.skip_peers else PEERS:
            results[name] = peer(name, scratch, scratch)
        mine = results["this_project"]
        other = results.get("evidently", {})
        if "drift_seconds" in mine and "drift_seconds" in other:
            results["speedup_vs_evidently"] = round(other["drift_seconds"] / mine["drift_seconds"], 1)
            results["memory_share_of_evidently"] = round(mine["peak_memory_mb"] / other["peak_memory_mb"], 2)
        results["monitor_job"] = monitor_job(project, args.rows, scratch)
        shutil.rmtree(scratch / "evidently-env", ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
