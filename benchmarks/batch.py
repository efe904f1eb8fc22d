"""Batch scoring benchmark: the in-process engine against Spark, and Spark through MLflow's spark_udf, in one run.

The data: the project's raw rows resampled to each size (1,000,000 and 10,000,000 by default), written
once as 8 Parquet files. Each engine scores them in its own process tree; wall time and peak memory
(the whole tree's resident set, sampled every 0.2 s: Spark's JVM and its Python workers included):
- local: `predict` in process, streamed chunk by chunk (the default engine);
- spark: `predict --engine spark` on `local[2]`: contract checks, answers and errors file as local;
- spark_udf: the peer's way (Databricks mlops-stacks): `mlflow.pyfunc.spark_udf` on `local[2]`, the
  prediction column only (no contract checks, no probabilities, no errors file).
pyspark is installed into the project's environment first (the extra mlops-runtime[spark]); Java 17
or newer must be on the machine. Prints one JSON object.

Run: `uv run python benchmarks/batch.py [--project DIR] [--rows 1000000 10000000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from monitoring import project_package, trained_project  # noqa: E402 - the same demo project
from pipeline import env  # noqa: E402 - the same project environment as the pipeline benchmark

MASTER = "local[2]"
FILES = 8
MAKE_DATA = f"""
import sys
from pathlib import Path
import numpy as np, pandas as pd
rows, folder = int(sys.argv[1]), Path(sys.argv[2])
raw = pd.read_parquet("data/raw/data.parquet")
picked = np.random.default_rng(0).integers(0, len(raw), rows)
folder.mkdir(parents=True)
for number, part in enumerate(np.array_split(picked, {FILES})):
    raw.iloc[part].to_parquet(folder / f"part-{{number:03d}}.parquet", index=False, row_group_size=100_000)
"""
SPARK_UDF = """
import sys
import mlflow.pyfunc
from pyspark.sql import SparkSession, functions as sf
source, target, master = sys.argv[1:4]
spark = SparkSession.builder.master(master).config("spark.ui.showConsoleProgress", "false").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
predict = mlflow.pyfunc.spark_udf(spark, "models/model", env_manager="local")
frame = spark.read.parquet(source)
features = [name for name in frame.columns if name != sys.argv[4]]
frame.withColumn("prediction", predict(sf.struct(*features))).write.mode("overwrite").parquet(target)
spark.stop()
"""


def tree_rss_mb(pid: int) -> float:
    """The resident memory of a process and all its descendants (Linux /proc), in MB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return total / 1e6


def measured(command: list[str], cwd: Path, variables: dict[str, str]) -> dict:
    """Wall seconds and peak memory of the whole process tree; the command's last line when it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=variables, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_mb(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output, _ = process.communicate()
    done.set()
    sampler.join()
    result = {"seconds": round(time.perf_counter() - started, 1), "peak_memory_mb": round(peak)}
    if process.returncode != 0:
        result["error"] = output.decode(errors="replace").strip().splitlines()[-3:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, help="a generated project with a trained model (models/model)")
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        scratch = Path(temporary)
        project = args.project.resolve() if args.project else trained_project(scratch)
        python = project / ".venv" / "bin" / "python"
        subprocess.run(["uv", "pip", "install", "-q", "--python", str(python), "pyspark>=4.0"], check=True)
        package = project_package(project)
        cli = str(project / ".venv" / "bin" / package)
        variables = env(project) | {"MLFLOW_TRACKING": "off", "SPARK_MASTER": MASTER}
        target_column = json.loads(
            subprocess.run(
                [str(python), "-c", "import yaml,json;print(json.dumps(yaml.safe_load(open('schema.yaml'))))"],
                cwd=project,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )["target"]["name"]
        results: dict = {"machine_cores": os.cpu_count(), "spark_master": MASTER, "files": FILES, "sizes": []}
        for rows in args.rows:
            data = scratch / f"data-{rows}"
            subprocess.run([str(python), "-c", MAKE_DATA, str(rows), str(data)], cwd=project, check=True)
            source = str(data / "part-*.parquet")
            size = {"rows": rows}
            size["local"] = measured(
                [cli, "predict", source, str(scratch / "local.parquet"), "--model-source", "local"], project, variables
            )
            spark = [cli, "predict", source, str(scratch / "spark.parquet"), "--model-source", "local"]
            size["spark"] = measured([*spark, "--engine", "spark"], project, variables)
            size["spark_udf"] = measured(
                [str(python), "-c", SPARK_UDF, str(data), str(scratch / "udf.parquet"), MASTER, target_column],
                project,
                variables,
            )
            for engine in ("spark", "spark_udf"):
                if "error" not in size[engine] and "error" not in size["local"]:
                    size[f"{engine}_over_local_seconds"] = round(size[engine]["seconds"] / size["local"]["seconds"], 2)
            results["sizes"].append(size)
            print(json.dumps(size), file=sys.stderr)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
