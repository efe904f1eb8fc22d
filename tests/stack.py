"""The team stack of the generated compose.yaml, as real processes: PostgreSQL 15, SeaweedFS's S3 endpoint
(credentials enforced) and the MLflow tracking server on both. Docker is not available here, so the tests start
the same programs. The `stack` fixture (tests/conftest.py) starts them once per session; every test that uses it
is in the xdist group "stack", so one pytest-xdist worker owns the services.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .debian import debian_tool

USER, PASSWORD = "mlops", "stack-password"
ACCESS_KEY, SECRET_KEY = "stackaccess", "stack-secret-key"
# The MLflow server's users, as compose.yaml makes them: the admin (people, CI, the pipeline) and the service's
# read-only user.
ADMIN_PASSWORD, SERVING_PASSWORD = "stack-admin-password", "stack-serving-password"
BUCKETS = ("mlflow", "dvc")
POSTGRES_PACKAGE = "postgresql-15"


def free_port(also_free: int = 0) -> int:
    """A free port on 127.0.0.1; with `also_free`, one whose port + also_free is free as well (SeaweedFS's gRPC)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not also_free:
            return port
        if port + also_free < 65536:
            with socket.socket() as other:
                try:
                    other.bind(("127.0.0.1", port + also_free))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, log: Path, seconds: int) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what} did not start (exit {process.poll()}):\n{log.read_text()[-4000:]}")
        time.sleep(0.3)


def listening(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    return check


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    return check


def postgres_bin() -> Path:
    """Debian's PostgreSQL programs, installing the package first where this machine can."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        debian_tool("pg_ctlcluster", POSTGRES_PACKAGE)
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail(f"the Debian package {POSTGRES_PACKAGE} installed no initdb")
    return found[-1].parent


@dataclass
class Stack:
    """Where the running services are, and how to reach them."""

    workdir: Path
    postgres_port: int = 0
    s3_port: int = 0
    mlflow_port: int = 0
    _databases: set[str] = field(default_factory=set)
    _pg_ctl: list[str] = field(default_factory=list)  # pg_ctl, as the cluster's owner, for this cluster

    def stop_postgres(self) -> None:
        """An outage: PostgreSQL stops at once (connections cut, as in a crash); start_postgres() brings it back."""
        subprocess.run([*self._pg_ctl, "-m", "immediate", "stop"], capture_output=True, check=True)

    def start_postgres(self) -> None:
        subprocess.run([*self._pg_ctl, "-w", "start"], capture_output=True, check=True)

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def as_admin(self) -> dict[str, str]:
        """The MLflow credentials of people, CI and the pipeline (compose.yaml's admin)."""
        return {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}

    def as_service(self) -> dict[str, str]:
        """The MLflow credentials of the service: a user with the server's default permission, READ."""
        return {"MLFLOW_TRACKING_USERNAME": "serving", "MLFLOW_TRACKING_PASSWORD": SERVING_PASSWORD}

    def postgres_url(self, database: str) -> str:
        """A `postgresql+psycopg://` URL to `database`, created (empty) on first use."""
        import psycopg

        if database not in self._databases:
            with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                connection.execute(f'CREATE DATABASE "{database}" OWNER {USER}')
            self._databases.add(database)
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.postgres_port}/{database}"

    def query(self, database: str, sql: str) -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self._dsn(database)) as connection:
            return list(connection.execute(sql).fetchall())

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.postgres_port} user={USER} password={PASSWORD} dbname={database}"

    def s3_environment(self) -> dict[str, str]:
        """What the MLflow server and DVC's S3 remote read (boto3 and s3fs take the standard variables)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
        }

    def s3_client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def s3_keys(self, bucket: str, prefix: str = "") -> list[str]:
        client = self.s3_client()
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys


def start_postgres(stack: Stack, resources: ExitStack) -> None:
    """initdb refuses root: as root the cluster belongs to Debian's `postgres` user."""
    binaries = postgres_bin()
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = stack.workdir / "postgres"  # the cluster, its log and its password file: all the owner's
    home.mkdir()
    data, log, password_file = home / "data", home / "log", home / "password"
    password_file.write_text(PASSWORD + "\n")
    if as_owner:
        shutil.chown(home, "postgres")
        shutil.chown(password_file, "postgres")
    init = subprocess.run(
        [
            *as_owner,
            *(str(binaries / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={password_file}"),
            *("--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--no-sync"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        pytest.fail(f"initdb failed:\n{init.stdout}{init.stderr}")
    stack.postgres_port = free_port()
    options = f"-p {stack.postgres_port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    stack._pg_ctl = [*as_owner, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options]
    started = subprocess.run([*stack._pg_ctl, "-w", "start"], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        tail = log.read_text()[-3000:] if log.exists() else ""
        pytest.fail(f"PostgreSQL did not start:\n{started.stdout}{started.stderr}\n{tail}")
    stop = [*as_owner, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
    resources.callback(subprocess.run, stop, capture_output=True, check=False)


def start_s3(stack: Stack, resources: ExitStack) -> None:
    """SeaweedFS in one process (`weed mini`), its S3 API on a free port, keys from an identities file."""
    config = stack.workdir / "s3.json"
    identity = {"name": "stack", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    config.write_text(json.dumps({"identities": [identity | {"actions": ["Admin", "Read", "Write", "List"]}]}))
    ports = {name: free_port(also_free=10000) for name in ("master", "volume", "filer", "s3")}
    stack.s3_port = ports["s3"]
    log = stack.workdir / "s3.log"
    command = [
        str(Path(sys.executable).parent / "weed"),
        "mini",
        f"-dir={stack.workdir / 's3-data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config}",
        f"-bucket={','.join(BUCKETS)}",
        "-admin.ui=false",
        f"-admin.port={free_port(also_free=10000)}",
        f"-webdav.port={free_port()}",
        f"-debug.port={free_port()}",
        *(f"-{name}.port={port}" for name, port in ports.items()),
    ]
    (stack.workdir / "s3-data").mkdir()
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    resources.callback(_stop, process)
    wait_until(lambda: _buckets_ready(stack), process, "SeaweedFS", log, 120)


def _buckets_ready(stack: Stack) -> bool:
    try:
        for bucket in BUCKETS:
            stack.s3_keys(bucket)
    except Exception:  # not listening yet, or buckets not created yet
        return False
    return True


def start_mlflow(stack: Stack, resources: ExitStack) -> None:
    """The tracking server as compose.yaml runs it: runs and registry in PostgreSQL, artifacts in S3 through the
    server's proxy, MLflow's basic-auth app (users in the same database, READ by default); then the service's
    read-only user, as compose's one-shot mlflow-users makes it."""
    from mlflow.server.auth.client import AuthServiceClient

    stack.mlflow_port = free_port()
    log = stack.workdir / "mlflow.log"
    auth_config = stack.workdir / "mlflow-auth.ini"
    auth_config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = {stack.postgres_url('mlflow')}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        stack.postgres_url("mlflow"),
        "--artifacts-destination",
        "s3://mlflow/artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(stack.mlflow_port),
        "--workers",
        "2",
        "--app-name",
        "basic-auth",
    ]
    environment = os.environ | stack.s3_environment() | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    environment |= {
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "stack-session-key",
    }
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=environment)
    resources.callback(_stop, process)
    wait_until(http_ok(f"{stack.mlflow_uri}/health"), process, "the MLflow server", log, 240)
    with credentials(stack.as_admin()):
        AuthServiceClient(stack.mlflow_uri).create_user("serving", SERVING_PASSWORD)


@contextmanager
def credentials(settings: dict[str, str]) -> Iterator[None]:
    """MLflow's client in this process signs in with `settings` (it reads them from the environment), then not."""
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@contextmanager
def running_stack() -> Iterator[Stack]:
    """Start everything in a folder every user can enter (PostgreSQL runs as `postgres`), stop it all after."""
    workdir = Path(tempfile.mkdtemp(prefix="copier-mlops-stack-"))
    workdir.chmod(0o755)
    with ExitStack() as resources:
        resources.callback(shutil.rmtree, workdir, ignore_errors=True)
        stack = Stack(workdir)
        start_postgres(stack, resources)
        start_s3(stack, resources)
        start_mlflow(stack, resources)
        yield stack
