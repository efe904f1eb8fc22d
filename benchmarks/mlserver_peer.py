"""The peer of the serving benchmark: MLServer with its MLflow runtime and adaptive batching, in its own environment.

It serves the project's own MLflow model (models/model) at its best measured setting on 2 cores: max_batch_size 8,
max_batch_time 2 ms, metrics and gzip off, one process (parallel_workers 0), uvloop 0.21 and httptools. Its
environment has the project's versions of MLflow, scikit-learn, pandas and numpy, mlops-runtime from this
checkout and the project's src (the pickled Pipeline imports both). mlserver-mlflow needs the MLmodel's output
signature, which the project does not write: a copy of the model gets it from one prediction.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from serving import free_port, serve_and_load

REPO = Path(__file__).resolve().parents[1]
MLSERVER = ["mlserver==1.7.1", "mlserver-mlflow==1.7.1", "uvloop==0.21.*", "httptools", "pyarrow"]
SHARED = ("mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle", "scipy")  # at the project's versions
V2_TYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL"}

PREPARE_MODEL = """
import json, sys
import mlflow.pyfunc, pandas as pd
from mlflow.models import Model, ModelSignature, infer_signature
path, row = sys.argv[1], json.loads(sys.argv[2])
model = Model.load(f"{path}/MLmodel")
frame = pd.DataFrame([row])
outputs = infer_signature(frame, mlflow.pyfunc.load_model(path).predict(frame)).outputs
model.signature = ModelSignature(inputs=model.signature.inputs, outputs=outputs)
model.save(f"{path}/MLmodel")
print(json.dumps([[column.name, column.type.name] for column in model.signature.inputs.inputs]))
"""


def project_versions(root: Path) -> list[str]:
    """`name==version` of the packages the pickled model needs, as the project has them."""
    frozen = subprocess.run(
        ["uv", "pip", "freeze", "--python", str(root / ".venv" / "bin" / "python")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [line for line in frozen if line.split("==")[0].lower() in SHARED]


def environment(root: Path, folder: Path) -> Path:
    """MLServer's own virtual environment; its python."""
    subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(folder / ".venv")], check=True)
    python = folder / ".venv" / "bin" / "python"
    install = ["uv", "pip", "install", "-q", "--python", str(python)]
    subprocess.run([*install, *MLSERVER, *project_versions(root), str(REPO / "runtime")], check=True)
    site = next((folder / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "project_src.pth").write_text(str(root / "src") + "\n")
    return python


def request_body(columns: list[list[str]], row: dict[str, object]) -> str:
    """The V2 inference request of one row, each column typed by the signature (a null keeps its column's type)."""
    inputs = [
        {"name": name, "shape": [1, 1], "datatype": V2_TYPES.get(kind, "BYTES"), "data": [row.get(name)]}
        for name, kind in columns
    ]
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs})


class MLServerPeer:
    """MLServer serving root's models/model from its own environment, built once; `load()` starts it, loads it
    with wrk at 8 connections and stops it, once per round of the benchmark, alternating with this service."""

    SETTING = "max_batch_size 8, max_batch_time 2 ms, metrics and gzip off, 1 process"

    def __init__(self, root: Path, row: str, args: argparse.Namespace) -> None:
        self.args = args
        self.folder = Path(tempfile.mkdtemp(prefix="bench-mlserver-"))
        python = environment(root, self.folder)
        model = self.folder / "model"
        shutil.copytree(root / "models" / "model", model)
        prepared = subprocess.run(
            [str(python), "-c", PREPARE_MODEL, str(model), row], capture_output=True, text=True, check=True
        )
        self.body = request_body(json.loads(prepared.stdout.strip().splitlines()[-1]), json.loads(row))
        self.repository = self.folder / "repository"
        (self.repository / "model").mkdir(parents=True)
        model_settings = {"name": "model", "implementation": "mlserver_mlflow.MLflowRuntime"}
        model_settings |= {"max_batch_size": 8, "max_batch_time": 0.002, "parameters": {"uri": str(model)}}
        (self.repository / "model" / "model-settings.json").write_text(json.dumps(model_settings))

    def load(self) -> dict[str, float]:
        port = free_port()
        settings = {"debug": False, "host": "127.0.0.1", "http_port": port, "grpc_port": free_port()}
        settings |= {"metrics_endpoint": None, "gzip_enabled": False, "parallel_workers": 0}
        (self.repository / "settings.json").write_text(json.dumps(settings))
        command = [str(self.folder / ".venv" / "bin" / "mlserver"), "start", str(self.repository)]
        path = "/v2/models/model/infer"
        return serve_and_load(command, self.repository, path, self.body, self.args, port, [8])[8]

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
