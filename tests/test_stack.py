"""The team stack, end to end with real services (tests/stack.py): one project whose data comes from PostgreSQL,
whose runs, registry and model artifacts live on the MLflow server (PostgreSQL + S3), whose DVC remote is S3, and
whose two service replicas write one prediction log in PostgreSQL that the monitoring job reads.
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from .conftest import install, render, run
from .stack import ADMIN_PASSWORD, PASSWORD, SECRET_KEY, SERVING_PASSWORD, Stack, credentials
from .test_e2e import accepted, cli, edit_params, http, prepared_test_rows, serving, stages_run

pytestmark = [pytest.mark.e2e, pytest.mark.stack, pytest.mark.xdist_group("stack")]

REQUESTS = 1000
RELOAD_TOKEN, FEEDBACK_TOKEN = "stack-reload-token", "stack-feedback-token"
# Every secret the environment holds: none may appear in what the project writes or prints.
SECRETS = (PASSWORD, SECRET_KEY, ADMIN_PASSWORD, SERVING_PASSWORD, RELOAD_TOKEN, FEEDBACK_TOKEN)


def tracked(stack: Stack, environment: dict[str, str]) -> dict[str, str]:
    """How a team member's shell is set up: the shared server and its admin's credentials, the data source, the
    S3 keys (for DVC)."""
    return environment | stack.s3_environment() | {"MLFLOW_TRACKING_URI": stack.mlflow_uri} | stack.as_admin()


def load_customers(root: Path, database_url: str) -> None:
    """The project's own sample generator, written to a PostgreSQL table: the sql source's upstream."""
    code = (
        "import os, sqlalchemy; from churn_model.sample_data import generate;"
        "generate('binary_classification', 3000, 7).to_sql("
        "'customers', sqlalchemy.create_engine(os.environ['DATABASE_URL']), index=False)"
    )
    run(["uv", "run", "--frozen", "python", "-c", code], root, env={"DATABASE_URL": database_url})


def mlflow_client(stack: Stack):  # type: ignore[no-untyped-def]
    import mlflow

    return mlflow.MlflowClient(stack.mlflow_uri)


def champion(stack: Stack) -> str:
    with credentials(stack.as_admin()):
        return str(mlflow_client(stack).get_model_version_by_alias("churn-model", "champion").version)


def test_a_team_project_on_the_shared_stack(tmp_path: Path, stack: Stack) -> None:
    database_url = stack.postgres_url("warehouse")
    log_url = stack.postgres_url("predictions")
    root = render(
        tmp_path / "churn",
        tasks=True,
        data_source="sql",
        database_url="sqlite:///unused.db",  # the team's URL (with its password) comes from DATABASE_URL
        query="SELECT * FROM customers",
        target_column="churned",
        dvc_remote="s3",
        dvc_remote_url="s3://dvc/churn-model",
    )
    env = tracked(stack, {"DATABASE_URL": database_url})
    install(root)
    load_customers(root, database_url)
    edit_params(root, {"train.tuning.n_trials": 3})

    # dvc repro against the server: the sql source reads PostgreSQL; runs, trials, model and registry on the server.
    repro = run(["uv", "run", "--frozen", "dvc", "repro"], root, env=env)
    printed = [repro.stdout + repro.stderr]
    output = repro.stdout
    assert {"extract", "train", "accept"} <= set(stages_run(output))
    assert accepted(root)["registry"]["champion"] == "1"
    assert not any((root / name).exists() for name in ("mlflow.db", "mlruns", "mlartifacts")), "wrote locally"
    with credentials(stack.as_admin()):
        client = mlflow_client(stack)
        experiment = client.get_experiment_by_name("churn-model")
        runs = client.search_runs([experiment.experiment_id], max_results=500)
        version = client.get_model_version("churn-model", "1")
    train_runs = [r for r in runs if r.data.tags.get("mlflow.runName") == "train"]
    assert len(train_runs) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == train_runs[0].info.run_id]
    families = json.loads((root / "reports" / "leaderboard.json").read_text())["leaderboard"]
    assert len(children) == 3 * len(families)
    rows = stack.query("warehouse", "SELECT count(*) FROM customers")[0][0]
    assert rows == 3000
    assert int(train_runs[0].data.params["train_rows"]) > 1000
    assert version.run_id == train_runs[0].info.run_id
    stored = stack.s3_keys("mlflow", f"artifacts/{experiment.experiment_id}/")
    assert any(key.endswith("/MLmodel") for key in stored), stored[:20]
    assert any(key.endswith("/model.pkl") for key in stored), stored[:20]
    assert champion(stack) == "1"

    # A changed params key: a second version on the server; promote and rollback there.
    edit_params(root, {"train.tuning.n_trials": 4})
    repro = run(["uv", "run", "--frozen", "dvc", "repro"], root, env=env)
    printed.append(repro.stdout + repro.stderr)
    output = repro.stdout
    assert "train" in stages_run(output)
    registry = accepted(root)["registry"]
    assert registry["version"] == "2"
    if champion(stack) == "2":
        assert "rolled back from v2 to v1" in cli(root, "rollback", env=env)
        assert champion(stack) == "1"
        assert "champion is now v2 (was v1)" in cli(root, "promote", "2", env=env)
    else:
        assert "champion is now v2 (was v1)" in cli(root, "promote", "2", env=env)
        assert champion(stack) == "2"
        assert "rolled back from v2 to v1" in cli(root, "rollback", env=env)
        assert "champion is now v2 (was v1)" in cli(root, "promote", "2", env=env)
    assert champion(stack) == "2"

    check_only_credentials_change_the_registry(stack)
    serving_env = env | stack.as_service() | {"SERVE_PREDICTION_LOG_URL": log_url}
    serving_env |= {"SERVE_RELOAD_TOKEN": RELOAD_TOKEN, "SERVE_FEEDBACK_TOKEN": FEEDBACK_TOKEN}
    printed.append(check_two_replicas_log_every_request_once_in_postgresql(root, serving_env, stack))
    check_dvc_on_s3_round_trips(root, tmp_path / "clone", env, stack)
    # A user's mistake (a log database that does not exist): the error names the URL, without its password.
    absent = log_url.rsplit("/", 1)[0] + "/no_such_log"
    mistake = run(
        ["uv", "run", "--frozen", "churn_model", "purge", "--older-than", "30"],
        root,
        check=False,
        env=env | {"SERVE_PREDICTION_LOG_URL": absent},
    )
    assert mistake.returncode == 1, mistake.stdout + mistake.stderr
    assert "mlops:***@" in mistake.stderr, mistake.stderr
    printed.append(mistake.stdout + mistake.stderr)
    check_no_secret_in_what_the_project_wrote(tmp_path, printed, stack)


def check_only_credentials_change_the_registry(stack: Stack) -> None:
    """Anonymous clients can neither register a model nor move an alias; the service's read-only user cannot add a
    version of the project's model or move its aliases (MLflow lets any user create models of their own), and
    loads the champion."""
    from mlflow.exceptions import MlflowException

    with credentials({"MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""}):
        anonymous = mlflow_client(stack)
        with pytest.raises(MlflowException, match="401"):
            anonymous.create_registered_model("registered-anonymously")
        with pytest.raises(MlflowException, match="401"):
            anonymous.set_registered_model_alias("churn-model", "champion", "1")
    with credentials(stack.as_service()):
        service = mlflow_client(stack)
        with pytest.raises(MlflowException, match="403"):
            service.set_registered_model_alias("churn-model", "champion", "1")
        source = service.get_model_version("churn-model", "1").source
        with pytest.raises(MlflowException, match="403"):
            service.create_model_version("churn-model", source)
        assert service.get_model_version_by_alias("churn-model", "champion").version == "2"
    assert champion(stack) == "2"


def check_two_replicas_log_every_request_once_in_postgresql(root: Path, env: dict[str, str], stack: Stack) -> str:
    """Two separate service processes, the champion from the server, one log in PostgreSQL, which stops for 30 s
    under load: every request is answered, spooled to each replica's journal and written back when PostgreSQL
    returns, each once. The monitoring job then reads the log; what it printed is returned."""
    rows = prepared_test_rows(root)
    replica = env | {"SERVE_MODEL_SOURCE": "registry", "SERVE_LOG_JOURNAL_DIR": str(root / "journal")}
    with ExitStack() as replicas:
        bases = [replicas.enter_context(serving(root, free, **replica)) for free in (free_port(), free_port())]
        for base in bases:
            status, info = http("GET", f"{base}/model")
            assert status == 200
            assert (info["source"], info["version"]) == ("registry", "2")
        answers = load_through_an_outage(bases, rows, stack)
        for base in bases:
            wait_for_the_log_to_be_written_back(base)
    assert [status for status, _ in answers].count(200) == len(answers)
    request_ids = {answer["predictions"][0]["request_id"] for _, answer in answers}  # type: ignore[index]
    assert len(request_ids) == len(answers) > REQUESTS
    logged = stack.query("predictions", "SELECT count(*), count(DISTINCT request_id) FROM predictions")[0]
    assert logged == (len(answers), len(answers))
    print(f"outage: {len(answers)} requests answered 200 over 2 replicas, {logged[0]} logged, {logged[1]} distinct")
    assert {row[0] for row in stack.query("predictions", "SELECT request_id FROM predictions")} == request_ids
    assert not list((root / "journal").glob("*.jsonl")) or all(
        path.stat().st_size == 0 for path in (root / "journal").glob("*.jsonl")
    )

    # The monitoring job records its run in MLflow: it runs as the pipeline does, not as the service.
    monitoring = env | stack.as_admin()
    completed = run(["uv", "run", "--frozen", "churn_model", "monitor"], root, check=False, env=monitoring)
    assert completed.returncode in (0, 3), completed.stdout + completed.stderr
    last_run = json.loads((root / "reports" / "monitoring" / "last_run.json").read_text())
    summary = json.loads((root / last_run["report"] / "summary.json").read_text())
    assert summary["window"]["rows"] == len(answers)
    assert summary["window"]["corrupt_rows"] == 0
    assert list(summary["versions"]) == ["2"]
    version_checks = summary["versions"]["2"]["checks"]
    assert not any(check["check"] == "profile" for check in version_checks), version_checks  # fetched via the server
    assert sum(check["status"] != "n/a" for check in version_checks) > 3, version_checks
    return completed.stdout + completed.stderr


def check_no_secret_in_what_the_project_wrote(folder: Path, printed: list[str], stack: Stack) -> None:
    """With every secret in the environment (database and S3 passwords, MLflow credentials, service tokens), none is
    in a file the pipeline, the services (serve-*.log: what they printed) or the monitoring job wrote (outside the
    installed environments and git's objects), in what they printed, or in an MLflow param, tag or artifact."""
    found = [f"printed: {secret}" for text in printed for secret in SECRETS if secret in text]
    files = [path for path in folder.rglob("*") if path.is_file() and not {".venv", ".git"} & set(path.parts)]
    assert any(path.name.startswith("serve-") for path in files), "no service log to look in"
    for path in files:
        data = path.read_bytes()
        found += [f"{path.relative_to(folder)}: {secret}" for secret in SECRETS if secret.encode() in data]
    with credentials(stack.as_admin()):
        client = mlflow_client(stack)
        experiments = [experiment.experiment_id for experiment in client.search_experiments()]
        for found_run in client.search_runs(experiments, max_results=1000):
            text = json.dumps([found_run.data.params, found_run.data.tags])
            found += [f"run {found_run.info.run_id}: {secret}" for secret in SECRETS if secret in text]
        for version in client.search_model_versions("name = 'churn-model'"):
            found += [f"version {version.version} tags: {secret}" for secret in SECRETS if secret in str(version.tags)]
    s3 = stack.s3_client()
    for key in stack.s3_keys("mlflow", "artifacts/"):
        data = s3.get_object(Bucket="mlflow", Key=key)["Body"].read()
        found += [f"s3://mlflow/{key}: {secret}" for secret in SECRETS if secret.encode() in data]
    assert not found, found


OUTAGE_SECONDS = 30


def load_through_an_outage(bases: list[str], rows: list[dict[str, object]], stack: Stack) -> list[tuple[int, object]]:
    """8 connections over both replicas; PostgreSQL stops for OUTAGE_SECONDS in the middle. While it is down, each
    replica says so (/ready, and the spooled-rows gauge of /metrics)."""
    answers: list[tuple[int, object]] = []
    stop = threading.Event()

    def client(number: int) -> None:
        sent = 0
        while not stop.is_set() or sent < REQUESTS // 8:
            answers.append(http("POST", f"{bases[number % 2]}/predict", rows[(number + sent * 8) % len(rows)]))
            sent += 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        clients = [pool.submit(client, number) for number in range(8)]
        time.sleep(3)
        stack.stop_postgres()
        try:
            time.sleep(OUTAGE_SECONDS)
            for base in bases:
                ready = http("GET", f"{base}/ready")[1]
                assert "spooled to the local journal" in ready["prediction_log"], ready  # type: ignore[index]
                exposition = str(http("GET", f"{base}/metrics")[1])
                spooled = re.search(r"^prediction_log_spooled_rows (\S+)$", exposition, re.M)
                assert spooled, "no spooled-rows gauge"
                assert float(spooled.group(1)) > 0, "the spooled-rows gauge shows nothing"
                print(f"{base}: {float(spooled.group(1)):.0f} rows spooled after {OUTAGE_SECONDS} s without PostgreSQL")
        finally:
            stack.start_postgres()
        time.sleep(3)
        stop.set()
        for running in clients:
            running.result()
    return answers


def wait_for_the_log_to_be_written_back(base: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while (state := http("GET", f"{base}/ready")[1]["prediction_log"]) != "writing to its database":  # type: ignore[index]
        assert time.monotonic() < deadline, f"the journal was not written back: {state}"
        time.sleep(0.5)


def check_dvc_on_s3_round_trips(root: Path, clone: Path, env: dict[str, str], stack: Stack) -> None:
    """`dvc push` to S3, a fresh clone, `dvc pull`: the same model; repro re-reads only the external source."""
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "pipeline run"], root)
    run(["uv", "run", "--frozen", "dvc", "push"], root, env=env)
    assert stack.s3_keys("dvc", "churn-model/"), "dvc push stored nothing in the S3 remote"
    run(["git", "clone", "-q", str(root), str(clone)], clone.parent)
    install(clone)
    run(["uv", "run", "--frozen", "dvc", "pull"], clone, env=env)
    model = Path("models") / "model" / "model.pkl"
    assert (clone / model).read_bytes() == (root / model).read_bytes()
    output = run(["uv", "run", "--frozen", "dvc", "repro"], clone, env=env).stdout
    assert stages_run(output) == ["extract"]  # always_changed: the database is outside DVC; the rows are the same
    assert run(["git", "status", "--porcelain"], clone).stdout == ""


def free_port() -> int:
    from .stack import free_port as any_free_port

    return any_free_port()


def test_wrong_s3_keys_are_refused(stack: Stack) -> None:
    """The S3 endpoint enforces credentials, as the compose stack's does: a wrong key is refused, not ignored."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        aws_access_key_id=stack.s3_environment()["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key="not-the-key",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError, match=r"SignatureDoesNotMatch|AccessDenied"):
        client.list_objects_v2(Bucket="mlflow")
