"""Serving benchmark: this project's service against `mlflow models serve`, in one run.

Both serve the same trained model (models/model) on 127.0.0.1 and are loaded by the same
client (wrk: single-row POSTs, 8 connections). Reported for each: requests per second,
p50 and p99 latency, and the time from process start to the first good answer (this
service: the median of --rounds runs, 1 and 2 workers alternating, also at 32 connections
to show how throughput scales with workers when the client is on the same cores); plus the
in-process predict time (the floor) and batch prediction of 1 million rows against the
in-process predict time, with the batch process's peak memory. Prints one JSON object.

Run: `uv run python benchmarks/serving.py [--project DIR]` (wrk: `apt-get install wrk`).
Without --project a default project is rendered, installed and trained first.

`--log-durability` measures the prediction log instead: this service, which answers a prediction only once its
log row is committed (group commit), against the asynchronous log of `--baseline-ref` (the last release that
queued rows in memory), one worker, at 8 and 32 connections, its log in SQLite and in PostgreSQL 15 (started
as in tests/stack.py); and MLServer (its MLflow runtime, adaptive batching) serving the same model from its own
environment at its best measured setting (benchmarks/mlserver_peer.py), once in each round, as ours are: its median
run against ours. Prints one JSON object.

`--shadow` measures shadow mode: one worker serving the registry's champion, with and without a challenger
scoring every answered request in shadow (SERVE_SHADOW), at --connections: a challenger of the champion's cost
(the targets) and a heavier one (a 300-tree forest). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlserver_peer import MLServerPeer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from pipeline import env  # noqa: E402 - the same project environment as the pipeline benchmark

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body!r}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def load(url: str, body: str, duration: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(body=body))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name, url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, flags=re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": round(seconds(latency["50"]) * 1000, 3),
        "p99_ms": round(seconds(latency["99"]) * 1000, 3),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def machine_ticks() -> tuple[int, int]:
    """(busy, all) CPU ticks of the whole machine since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def tree_ticks(root: int) -> int:
    """CPU ticks (user + system) of a process and its descendants: uvicorn's workers are children."""
    parent_and_ticks = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            parent_and_ticks[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, (parent, _) in parent_and_ticks.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(parent_and_ticks[pid][1] for pid in tree if pid in parent_and_ticks)


def load_and_measure_cpu(url: str, body: str, duration: int, connections: int, server: int) -> dict[str, float]:
    """The load, plus how busy the machine was and what CPU the server spent per request."""
    busy, total, served = *machine_ticks(), tree_ticks(server)
    result = load(url, body, duration, connections)
    busy_after, total_after, served_after = *machine_ticks(), tree_ticks(server)
    server_seconds = (served_after - served) / os.sysconf("SC_CLK_TCK")
    return result | {
        "machine_busy": round((busy_after - busy) / (total_after - total), 3),
        "server_cpu_cores": round(server_seconds / duration, 2),
        "server_cpu_us_per_request": round(server_seconds * 1e6 / (result["requests_per_second"] * duration), 1),
    }


def serve_and_load(
    command: list[str],
    root: Path,
    path: str,
    body: str,
    args: argparse.Namespace,
    port: int,
    connections: list[int],
    settings: dict[str, str] | None = None,
) -> dict[int, dict[str, float]]:
    """Start a server (`settings` added to its environment), time its first good answer, load it at each
    concurrency, stop it."""
    started = time.perf_counter()
    server = subprocess.Popen(
        command, cwd=root, env=env(root) | (settings or {}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}{path}"
    try:
        while post(url, body.encode()) != 200:
            if server.poll() is not None:
                sys.exit(f"{' '.join(command)} exited: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            if time.perf_counter() - started > 120:
                sys.exit(f"{' '.join(command)} gave no good answer in 120 s")
            time.sleep(0.05)
        first_answer = time.perf_counter() - started
        post(url, body.encode())  # warm
        if (settings or {}).get("SERVE_SHADOW"):
            wait_for_shadow_scorer(f"http://127.0.0.1:{port}", url, body)
        results = {count: load_and_measure_cpu(url, body, args.duration, count, server.pid) for count in connections}
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return {count: {"start_to_first_answer_s": round(first_answer, 3), **result} for count, result in results.items()}


def wait_for_shadow_scorer(base: str, url: str, body: str) -> None:
    """Until the challenger's scorer process answers (it loads the model after the service starts): the load
    then measures shadow mode, not the scorer's start-up."""
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        post(url, body.encode())
        with urllib.request.urlopen(f"{base}/model", timeout=10) as answer:
            if json.load(answer)["shadow"]["scored"]:
                return
        time.sleep(0.2)
    sys.exit("the challenger in shadow scored nothing in 120 s")


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median throughput, so its latencies belong to it."""
    ordered = sorted(runs, key=lambda run: run["requests_per_second"])
    return ordered[len(ordered) // 2] | {
        "rounds_requests_per_second": [run["requests_per_second"] for run in runs],
        "rounds_p99_ms": [run["p99_ms"] for run in runs],
    }


def our_service(script: str, root: Path, row: str, args: argparse.Namespace) -> dict[int, dict[int, dict[str, float]]]:
    """Median runs by workers and connections; 1 and 2 workers alternate, so drift hits both alike."""
    connections = sorted({args.connections, *args.scaling_connections})
    runs: dict[int, dict[int, list[dict[str, float]]]] = {1: {}, 2: {}}
    for _ in range(args.rounds):
        for workers in (1, 2):
            port = free_port()
            command = [script, "serve", "--port", str(port), "--workers", str(workers), "--model-source", "local"]
            for count, result in serve_and_load(command, root, "/predict", row, args, port, connections).items():
                runs[workers].setdefault(count, []).append(result)
    return {workers: {count: median_run(found) for count, found in by.items()} for workers, by in runs.items()}


IN_PROCESS = """
import json, statistics, time
from {machinery}.paths import Paths
from {machinery}.schema import load_contract
from {machinery}.serving.loader import from_local
contract = load_contract()
loaded = from_local("{task}", Paths().model, Paths())
served = loaded.for_requests(contract)  # what the service calls: the Pipeline's steps, directly
row = json.loads({row!r})
frame = contract.frame([row])
def median_us(action, n=2000):
    times = []
    for _ in range(n):
        started = time.perf_counter(); action(); times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e6, 1)
print(json.dumps({{
    "served_columns_and_predict_us": median_us(lambda: served.predict(contract.columns([row]))),
    "pipeline_frame_and_predict_us": median_us(lambda: loaded.predict(contract.frame([row]))),
    "pipeline_predict_us": median_us(lambda: loaded.model.predict(frame)),
}}))
"""

BATCH_FLOOR = """
import json, resource, time
import pandas as pd
from {machinery}.paths import Paths
from {machinery}.schema import load_contract
from {machinery}.serving.loader import from_local
contract = load_contract()
loaded = from_local("{task}", Paths().model, Paths())
features = contract.features_of(pd.read_parquet({source!r}))
started = time.perf_counter()
loaded.model.predict_proba(features) if loaded.classes else loaded.model.predict(features)
print(json.dumps({{"in_process_predict_s": round(time.perf_counter() - started, 3),
                  "in_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}}))
"""

MEASURE_BATCH = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
out = subprocess.run([sys.argv[1], "predict", sys.argv[2], sys.argv[3], "--model-source", "local"],
                     capture_output=True, text=True, check=True).stdout
print(json.dumps({"command_s": round(time.perf_counter() - started, 3),
                  "result": {"seconds": float(out.strip().splitlines()[-1].rsplit(" in ", 1)[1].split()[0])},
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}))
"""

MAKE_ROWS = """
import sys
from {package}.sample_data import generate
generate("{task}", {rows}, seed=11).drop(columns=["{target}"]).to_parquet(sys.argv[1])
"""


def project_python(root: Path, code: str, *args: str) -> str:
    python = str(root / ".venv" / "bin" / "python")
    return subprocess.run(
        [python, "-c", code, *args], cwd=root, env=env(root), capture_output=True, text=True, check=True
    ).stdout


def machinery(root: Path) -> str:
    """Where a project's machinery lives: mlops-runtime, or (v0.2.0's layout) a copy in the project's package."""
    package = next(p.name for p in (root / "src").iterdir() if (p / "cli.py").exists())
    return package if (root / "src" / package / "schema.py").exists() else "mlops_runtime"


def batch(root: Path, package: str, task: str, target: str, rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as folder:
        source, output = Path(folder) / "rows.parquet", Path(folder) / "predictions.parquet"
        project_python(root, MAKE_ROWS.format(package=package, task=task, rows=rows, target=target), str(source))
        floor = json.loads(
            project_python(root, BATCH_FLOOR.format(machinery=machinery(root), task=task, source=str(source)))
        )
        script = str(root / ".venv" / "bin" / package)
        # A fresh parent whose only child is the batch run: its children's peak RSS is the batch's.
        measured = json.loads(project_python(root, MEASURE_BATCH, script, str(source), str(output)))
    in_command = measured["result"]["seconds"]
    return {
        "rows": rows,
        **floor,
        "batch_command_s": measured["command_s"],
        "batch_in_command_s": in_command,
        "batch_over_in_process": round(in_command / floor["in_process_predict_s"], 3),
        "batch_command_over_in_process": round(measured["command_s"] / floor["in_process_predict_s"], 3),
        "batch_peak_rss_mb": measured["peak_rss_mb"],
    }


def prepare_project(args: argparse.Namespace, vcs_ref: str = "HEAD") -> Path:
    if args.project and vcs_ref == "HEAD":
        return args.project.absolute()
    import copier

    root = Path(tempfile.mkdtemp(prefix="bench-serving-")) / "project"
    copier.run_copy(str(REPO), root, defaults=True, vcs_ref=vcs_ref, unsafe=True, quiet=True)
    subprocess.run(["uv", "sync", "--frozen", "-q"], cwd=root, env=env(root), check=True)
    subprocess.run([str(root / ".venv" / "bin" / "dvc"), "repro", "-q"], cwd=root, env=env(root), check=True)
    return root


def one_row(root: Path, target: str) -> str:
    """The first prepared test row, as the JSON object a client posts."""
    code = (
        "import pandas as pd, sys; f = pd.read_parquet('data/prepared/test.parquet').drop(columns=[sys.argv[1]]);"
        "print(f.head(1).to_json(orient='records')[1:-1])"
    )
    return project_python(root, code, target).strip()


def log_durability(
    args: argparse.Namespace, durable: Path, baseline: Path, peer: MLServerPeer
) -> tuple[dict[str, object], list[dict[str, float]]]:
    """Median runs of each service at each connection count, its log in SQLite and in PostgreSQL, and MLServer's
    runs; the services and MLServer alternate within a round, so drift hits all alike."""
    from contextlib import ExitStack

    sys.path.insert(0, str(REPO))
    from tests.stack import Stack, start_postgres

    row = one_row(durable, "churned")
    connections = [8, 32]
    services = {"asynchronous": baseline, "durable": durable}
    runs: dict[str, dict[str, dict[int, list[dict[str, float]]]]] = {}
    peer_runs: list[dict[str, float]] = []
    with ExitStack() as resources:
        workdir = Path(tempfile.mkdtemp(prefix="bench-log-"))
        workdir.chmod(0o755)  # PostgreSQL runs as `postgres`
        stack = Stack(workdir)
        start_postgres(stack, resources)
        for attempt in range(args.rounds):
            for backend in ("sqlite", "postgresql"):
                for name, root in services.items():
                    url = (
                        f"sqlite:///{tempfile.mkdtemp(prefix='bench-log-')}/predictions.db"
                        if backend == "sqlite"
                        else stack.postgres_url(f"log_{name}_{attempt}")
                    )
                    port = free_port()
                    package = next(p.name for p in (root / "src").iterdir() if (p / "cli.py").exists())
                    command = [str(root / ".venv" / "bin" / package), "serve", "--port", str(port)]
                    command += ["--model-source", "local"]
                    settings = {"SERVE_PREDICTION_LOG_URL": url, "SERVE_LOG_JOURNAL_DIR": str(workdir / name)}
                    measured = serve_and_load(command, root, "/predict", row, args, port, connections, settings)
                    for count, result in measured.items():
                        runs.setdefault(backend, {}).setdefault(name, {}).setdefault(count, []).append(result)
            peer_runs.append(peer.load())
    results: dict[str, object] = {}
    for backend, by_service in runs.items():
        for count in connections:
            old, new = (median_run(by_service[name][count]) for name in services)
            results[f"{backend}_{count}_connections"] = {
                "asynchronous": old,
                "durable": new,
                "throughput_durable_over_asynchronous": round(
                    new["requests_per_second"] / old["requests_per_second"], 3
                ),
                "p99_durable_over_asynchronous": round(new["p99_ms"] / old["p99_ms"], 3),
            }
    return results, peer_runs


def durability_report(args: argparse.Namespace) -> dict[str, object]:
    """The --log-durability run: both services trained from the same default answers, and MLServer serving the
    durable one's model, each run once per round."""
    from mlserver_peer import MLServerPeer

    durable = prepare_project(args)
    baseline = args.baseline_project.absolute() if args.baseline_project else prepare_project(args, args.baseline_ref)
    peer = MLServerPeer(durable, one_row(durable, "churned"), args)
    try:
        prediction_log, peer_runs = log_durability(args, durable, baseline, peer)
    finally:
        peer.close()
    report: dict[str, object] = {
        "machine": {"cpus": os.cpu_count()},
        "client": "wrk, 1 thread, single-row POSTs",
        "baseline": f"the asynchronous log of {args.baseline_ref}",
        "prediction_log": prediction_log,
    }
    peer_median = median_run(peer_runs)
    report["mlserver_8_connections"] = peer_median | {"setting": MLServerPeer.SETTING}
    ours = prediction_log["sqlite_8_connections"]["durable"]["requests_per_second"]  # type: ignore[index]
    report["durable_sqlite_over_mlserver_rps"] = round(ours / peer_median["requests_per_second"], 2)
    report["targets"] = {
        "throughput_durable_over_asynchronous": ">= 0.9",
        "p99_durable_over_asynchronous": "<= 1.5",
        "durable_sqlite_over_mlserver_rps": ">= 2.5",
    }
    return report


REGISTER_CHALLENGERS = """
import sys
import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier

client, name, target = MlflowClient(), sys.argv[1], sys.argv[2]
champion = client.get_model_version_by_alias(name, "champion")
copy = mlflow.register_model(champion.source, name)  # the same artifact again: a challenger of the same cost
client.set_registered_model_alias(name, "challenger", copy.version)
heavier = clone(mlflow.sklearn.load_model(champion.source))  # the champion's features, a 300-tree forest
heavier.steps[-1] = (heavier.steps[-1][0], RandomForestClassifier(n_estimators=300, random_state=0, n_jobs=1))
train = pd.read_parquet("data/prepared/train.parquet")
heavier.fit(train.drop(columns=[target]), train[target])
with mlflow.start_run(run_name="benchmark: a heavier challenger"):
    logged = mlflow.sklearn.log_model(heavier, name="model", serialization_format="cloudpickle")
forest = mlflow.register_model(logged.model_uri, name)
client.set_registered_model_alias(name, "heavier", forest.version)
print(champion.version, copy.version, forest.version)
"""
# Shadow mode off, then on with each registry alias in shadow.
SHADOW_MODES = {"off": "", "on": "challenger", "on_heavier": "heavier"}


def shadow_report(args: argparse.Namespace) -> dict[str, object]:
    """The --shadow run: one worker from the registry, shadow off against on, alternating within each round;
    SQLite log. On: the champion's artifact registered again as the challenger, so both models cost the same
    (the targets), and a heavier challenger (the champion's features, a 300-tree forest), as a challenger often
    is: how much of the champion's CPU a costlier model in shadow takes."""
    root = prepare_project(args)
    package = next(p.name for p in (root / "src").iterdir() if (p / "cli.py").exists())
    name = json.loads(
        project_python(root, "import json, yaml; print(json.dumps(yaml.safe_load(open('params.yaml'))))")
    )["mlflow"]["registered_model"]
    registered = project_python(root, REGISTER_CHALLENGERS, name, "churned")
    champion, challenger, heavier = registered.strip().splitlines()[-1].split()
    row = one_row(root, "churned")
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in SHADOW_MODES}
    for _ in range(args.rounds):
        for mode, alias in SHADOW_MODES.items():
            port = free_port()
            command = [str(root / ".venv" / "bin" / package), "serve", "--port", str(port)]
            command += ["--model-source", "registry"]
            settings = {
                "SERVE_PREDICTION_LOG_URL": f"sqlite:///{tempfile.mkdtemp(prefix='bench-shadow-')}/predictions.db",
                "SERVE_SHADOW": alias,
            }
            measured = serve_and_load(command, root, "/predict", row, args, port, [args.connections], settings)
            runs[mode].append(measured[args.connections])
    off, on, on_heavier = (median_run(runs[mode]) for mode in SHADOW_MODES)
    return {
        "machine": {"cpus": os.cpu_count()},
        "client": f"wrk, 1 thread, single-row POSTs, {args.connections} connections, 1 worker",
        "champion": champion,
        "challenger_in_shadow": challenger,
        "heavier_challenger_in_shadow": heavier,
        "shadow_off": off,
        "shadow_on": on,
        "shadow_on_heavier": on_heavier,
        "throughput_on_over_off": round(on["requests_per_second"] / off["requests_per_second"], 3),
        "p99_on_over_off": round(on["p99_ms"] / off["p99_ms"], 3),
        "throughput_heavier_over_off": round(on_heavier["requests_per_second"] / off["requests_per_second"], 3),
        "p99_heavier_over_off": round(on_heavier["p99_ms"] / off["p99_ms"], 3),
        "targets": {"throughput_on_over_off": ">= 0.85", "p99_on_over_off": "about 1 (within noise)"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, help="a generated project with a trained model")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per server")
    parser.add_argument("--connections", type=int, default=8, help="concurrency of the headline comparison")
    parser.add_argument(
        "--scaling-connections", type=int, nargs="*", default=[32], help="more concurrencies for workers scaling"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs per server setting; the median is reported")
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--log-durability", action="store_true", help="measure the prediction log (see above)")
    parser.add_argument("--baseline-ref", default="9c30a73", help="the template revision with the asynchronous log")
    parser.add_argument("--baseline-project", type=Path, help="a trained project rendered from --baseline-ref")
    parser.add_argument("--shadow", action="store_true", help="shadow mode on against off (see shadow_report)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed as the load client: apt-get install wrk")
    if args.log_durability:
        print(json.dumps(durability_report(args), indent=2))
        return
    if args.shadow:
        print(json.dumps(shadow_report(args), indent=2))
        return
    root = prepare_project(args)
    package = next(p.name for p in (root / "src").iterdir() if (p / "cli.py").exists())
    params = json.loads(
        project_python(root, "import json, yaml; print(json.dumps(yaml.safe_load(open('params.yaml'))))")
    )
    schema = json.loads(
        project_python(root, "import json, yaml; print(json.dumps(yaml.safe_load(open('schema.yaml'))))")
    )
    task, target = params["task"], schema["target"]["name"]
    row = one_row(root, target)
    script = str(root / ".venv" / "bin" / package)
    results: dict[str, object] = {"machine": {"cpus": os.cpu_count()}, "client": f"wrk, {args.connections} connections"}
    ours = our_service(script, root, row, args)
    for workers in (1, 2):
        results[f"this_service_{workers}_worker"] = ours[workers][args.connections]
    results["workers_scaling"] = {
        f"{count}_connections": {
            "1_worker_rps": ours[1][count]["requests_per_second"],
            "2_workers_rps": ours[2][count]["requests_per_second"],
            "ratio": round(ours[2][count]["requests_per_second"] / ours[1][count]["requests_per_second"], 2),
            "machine_busy": [ours[1][count]["machine_busy"], ours[2][count]["machine_busy"]],
            "server_cpu_us_per_request": [
                ours[1][count]["server_cpu_us_per_request"],
                ours[2][count]["server_cpu_us_per_request"],
            ],
        }
        for count in sorted(ours[1])
    }
    port = free_port()
    mlflow_command = [
        str(root / ".venv" / "bin" / "mlflow"),
        "models",
        "serve",
        "-m",
        "models/model",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    mlflow_body = json.dumps({"dataframe_records": [json.loads(row)]})
    results["mlflow_models_serve_1_worker"] = serve_and_load(
        mlflow_command, root, "/invocations", mlflow_body, args, port, [args.connections]
    )[args.connections]
    ours_one, theirs = results["this_service_1_worker"], results["mlflow_models_serve_1_worker"]
    results["throughput_ratio_vs_mlflow"] = round(ours_one["requests_per_second"] / theirs["requests_per_second"], 2)  # type: ignore[index]
    results["in_process"] = json.loads(
        project_python(root, IN_PROCESS.format(machinery=machinery(root), task=task, row=row))
    )
    results["batch"] = batch(root, package, task, target, args.batch_rows)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
