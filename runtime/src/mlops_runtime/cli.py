"""A project's command line: one subcommand per pipeline stage (`dvc repro` calls these), and the tools.

The project's own cli.py calls `project_app("<package>")`: its stages are `<package>.pipeline.<stage>.run`,
its model candidates `<package>.model.project_models()`, its sample generator `<package>.sample_data.generate`.

Only light modules load here. Each stage imports pandas, scikit-learn or MLflow itself,
because every DVC stage is a new process and start-up time adds up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import pandas as pd

    from .explain import Explanation
    from .monitoring.simulate import Scenario
    from .params import Params
    from .schema import Contract
    from .serving.config import ServingConfig

app = typer.Typer(
    help="Pipeline stages and tools of this project. Run `dvc repro` to run the whole pipeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

STAGES = {
    "extract": "Extract the source data into data/raw/ (Parquet).",
    "infer_schema": "Write schema.yaml from the data, once, for review (file and SQL sources).",
    "validate": "Check data/raw/ against the contract in schema.yaml; fail on violations.",
    "analyze": "Write the exploratory report to reports/eda/ (index.html, plots, summary.json).",
    "prepare": "Clean the data and split it into train, validation and test (data/prepared/).",
    "train": "Fit the model pipeline, log it to MLflow and save it to models/.",
    "evaluate": "Score model and baseline on validation and test; write metrics and plots.",
    "accept": "Apply the acceptance rules of params.yaml; fail when the model falls short.",
}

MODEL_SOURCE_HELP = (
    "auto (the registry's champion, else models/), registry or local [default: SERVE_MODEL_SOURCE, else auto]"
)


class _Project:
    """The project this process runs (one per process: the CLI is its entry point)."""

    package = ""


def project_app(package: str) -> typer.Typer:
    """The command line of the project whose import name is `package`; its own metrics (`<package>.metrics`,
    if it has one) are registered first, so that params.yaml may name them."""
    from .metrics import register_project_metrics
    from .secrets import mask_log_records

    _Project.package = package
    register_project_metrics(package)
    mask_log_records()
    return app


def project_module(name: str) -> Any:
    """The project's module `name` (e.g. "pipeline.train"), imported now: the CLI loads only what a command needs."""
    if not _Project.package:
        raise RuntimeError("mlops_runtime.cli: call project_app(<package>) first")
    return import_module(f"{_Project.package}.{name}")


class ModelSourceOption(StrEnum):
    auto = "auto"
    registry = "registry"
    local = "local"


class Engine(StrEnum):
    local = "local"  # in this process, streamed chunk by chunk
    spark = "spark"  # on a Spark master, as a Spark job


def run_stage(name: str) -> dict[str, object]:
    """Run one stage with params.yaml from the current folder; user errors exit with status 1."""
    from .errors import StageError
    from .params import load_params
    from .paths import Paths
    from .secrets import mask

    stage = project_module(f"pipeline.{name}")
    try:
        result: dict[str, object] = stage.run(load_params(), Paths())
    except StageError as error:
        typer.secho(f"{name} failed: {mask(str(error))}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    typer.echo(summary_line(name, result))
    return result


def summary_line(name: str, result: dict[str, object]) -> str:
    """A stage's result as one line a person reads in `dvc repro`'s output: `extract: rows 234; columns 11; ...`."""
    return f"{name}: " + "; ".join(f"{key.replace('_', ' ')} {_plain(value)}" for key, value in result.items())


def _plain(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{key} {_plain(item)}" for key, item in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(item) for item in value) or "none"
    return str(value)


def _stage_command(name: str) -> Callable[[], None]:
    def command() -> None:
        run_stage(name)

    command.__doc__ = STAGES[name]
    return command


for _name in STAGES:
    app.command(name=_name.replace("_", "-"))(_stage_command(_name))


@app.command(name="tune-worker")
def tune_worker(
    worker_id: Annotated[
        int | None, typer.Option(min=1, help="seeds this worker's sampler with train.seed + ID [default: unseeded]")
    ] = None,
    wait: Annotated[float, typer.Option(min=0, help="seconds to wait for train to create each study")] = 600.0,
    params_file: Annotated[Path, typer.Option("--params", help="the params file")] = Path("params.yaml"),
) -> None:
    """Run trials of train's tuning studies from another process or machine.

    Start `train` (with train.tuning.workers or not) and, on each extra machine: the same commit,
    `dvc pull` done, OPTUNA_STORAGE set to the same database; then run this command. It waits for
    train to create the studies, runs queued trials until each study holds n_trials, and exits.
    """

    def run() -> None:
        from .params import load_params
        from .paths import Paths
        from .stages.train import work

        models = project_module("model").project_models()
        result = work(load_params(params_file), Paths(), models, worker_id=worker_id, wait_seconds=wait)
        typer.echo(summary_line("tune-worker", result))

    _user_errors_exit_1(run)


def _registered_model() -> str:
    from .params import load_params

    return load_params().mlflow.registered_model


def _user_errors_exit_1(action: Callable[[], None]) -> None:
    from .errors import StageError
    from .secrets import mask

    try:
        action()
    except StageError as error:
        typer.secho(f"error: {mask(str(error))}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


@app.command()
def models() -> None:
    """List the registered model's versions: aliases, metrics, code version."""

    def show() -> None:
        from .registry import versions

        name = _registered_model()
        typer.echo(f"{name}:")
        for row in versions(name):
            aliases = ",".join(row["aliases"]) or "-"
            metrics = " ".join(f"{key}={value:.4f}" for key, value in sorted(row["metrics"].items()))
            typer.echo(
                f"  v{row['version']:<4} {aliases:<21} {row['family']:<24} {metrics}  {row['created']}"
                f" {row['git_commit']}"
            )

    _user_errors_exit_1(show)


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="the version to make champion")],
    force: Annotated[
        str | None,
        typer.Option(metavar="REASON", help="promote a version trained from uncommitted changes; the reason is kept"),
    ] = None,
) -> None:
    """Make VERSION the champion (the model that serves); with promote.shadow_min_rows set, only after it scored
    that many labelled requests in shadow and was not worse than the champion on them."""

    def run() -> None:
        from .params import load_params
        from .registry import promote as promote_version

        params = load_params()
        name = params.mlflow.registered_model
        if params.promote.shadow_min_rows:
            typer.echo(shadow_record(params, version))
        previous = promote_version(name, version, force_reason=force)
        typer.echo(f"{name}: champion is now v{version} (was {f'v{previous}' if previous else 'none'}).")

    _user_errors_exit_1(run)


def shadow_record(params: Params, version: str) -> str:
    """`version`'s record in shadow mode (the whole prediction log), as one line; raises when it may not be promoted."""
    import time

    from .errors import StageError
    from .metrics import is_classification
    from .monitoring.shadow import compare, describe, promotion_refusal, read_shadow
    from .schema import load_contract

    config = _serving_config(None)
    contract = load_contract(config.paths.schema)
    classes = contract.classes if is_classification(params.task) else []
    pairs = read_shadow(config.prediction_log_url, 0.0, time.time() + 1, classes)
    found = compare(pairs, params.task, params.train.primary_metric, params.monitor)
    entry = next((entry for entry in found if entry["challenger"] == version), None)
    refusal = promotion_refusal(entry, version, params.promote)
    if refusal is not None or entry is None:  # no record is refused too: shadow_min_rows is above 0 here
        raise StageError(f"not promoted: {refusal}")
    return describe(entry)


@app.command()
def rollback() -> None:
    """Put the previous champion back."""

    def run() -> None:
        from .registry import rollback as rollback_champion

        name = _registered_model()
        current, previous = rollback_champion(name)
        typer.echo(f"{name}: champion rolled back from v{current} to v{previous}.")

    _user_errors_exit_1(run)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on (0.0.0.0 in a container)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    model_source: Annotated[ModelSourceOption | None, typer.Option(help=MODEL_SOURCE_HELP)] = None,
) -> None:
    """Serve the champion model over HTTP (see /docs)."""

    def check_then_serve() -> None:
        from .params import load_params
        from .serving.loader import load_model
        from .serving.predlog import open_log_database
        from .serving.server import run_server

        config = _serving_config(model_source)
        create_app = project_module("serving").create_app  # the project's app: the library's, plus its routes
        create_app(config)  # contract and params load, or a readable error now
        params = load_params(config.paths.params)
        loaded = load_model(config, params.task, params.mlflow.registered_model)
        open_log_database(config.prediction_log_url)  # before the workers, which would race to create it
        typer.echo(f"Serving {loaded.name} version {loaded.version} ({loaded.source}) on http://{host}:{port}")
        for route, setting in (("feedback", "SERVE_FEEDBACK_TOKEN"), ("reload", "SERVE_RELOAD_TOKEN")):
            if getattr(config, f"{route}_token") is None:
                typer.echo(f"POST /{route} is disabled: set {setting} to enable it.")
        run_server(create_app, config, host, port, workers)

    _user_errors_exit_1(check_then_serve)


@app.command(name="check-model")
def check_model() -> None:
    """Refuse a local model that `accept` refused or never judged (the serving image runs this at build time)."""

    def run() -> None:
        from .verdict import require_accepted

        model_path = _serving_config(None).model_path
        require_accepted(model_path)
        typer.echo(f"{model_path}: accepted by the acceptance gate.")

    _user_errors_exit_1(run)


@app.command()
def predict(
    source: Annotated[Path, typer.Argument(help="CSV or Parquet file of raw rows, or a quoted glob of them")],
    target: Annotated[Path, typer.Argument(help="CSV or Parquet file to write predictions to")],
    chunk_rows: Annotated[int, typer.Option(min=1, help="rows per chunk (bounds memory)")] = 100_000,
    model_source: Annotated[ModelSourceOption | None, typer.Option(help=MODEL_SOURCE_HELP)] = None,
    engine: Annotated[Engine, typer.Option(help="local: in this process; spark: a Spark job, TARGET a folder")] = (
        Engine.local
    ),
    spark_master: Annotated[
        str, typer.Option(envvar="SPARK_MASTER", help="the spark engine's master: local[N], spark://, k8s://, yarn")
    ] = "local[*]",
) -> None:
    """Batch prediction with the served model, streamed chunk by chunk over one file or a glob (row numbers run on
    across files); rows that break the contract go to TARGET.errors.csv."""

    def run() -> None:
        from .batch import predict_file
        from .params import load_params
        from .schema import load_contract
        from .serving.loader import load_model

        config = _serving_config(model_source)
        params = load_params(config.paths.params)
        loaded = load_model(config, params.task, params.mlflow.registered_model)
        contract = load_contract(config.paths.schema)
        markers = params.extract.missing_values
        if engine == Engine.spark:
            from .spark_batch import predict_spark

            result = predict_spark(source, target, loaded, contract, spark_master, chunk_rows, markers)
        else:
            result = predict_file(source, target, loaded, contract, chunk_rows, markers)
        typer.echo(predict_summary(result))

    _user_errors_exit_1(run)


def predict_summary(result: dict[str, Any]) -> str:
    """One line: how many rows, by which model version, into which file, what was kept and what refused."""
    line = (
        f"predict: {result['predicted']} of {result['rows']} rows predicted by {result['model']} version"
        f" {result['model_version']} ({result['model_source']}) into {result['output']}"
    )
    if result["kept_columns"]:
        line += f", beside your columns {', '.join(result['kept_columns'])}"
    if result["rejected"]:
        line += f"; {result['rejected']} refused (reasons in {result['errors']})"
    return line + f" in {result['seconds']:.1f} s."


@app.command()
def monitor(
    since: Annotated[
        str | None,
        typer.Option(help="window start: ISO time, epoch seconds, or 'last' (where the last run ended)"),
    ] = None,
    until: Annotated[str | None, typer.Option(help="window end: ISO time or epoch seconds [default: now]")] = None,
    retrain: Annotated[
        bool, typer.Option(help="on an alert: train on labelled production rows too, and reload a new champion")
    ] = False,
) -> None:
    """Check the served model on a window of the prediction log (default: the last monitor.window_hours).

    Prints one line when every check is ok, else a table of the checks that are not ok; the full report is HTML.
    Exit status: 0 healthy (ok or warn), 3 when a check alerts, 1 on an error.
    """

    def run() -> None:
        import time

        from .monitoring import job
        from .params import load_params
        from .paths import Paths

        params, paths = load_params(), Paths()
        log_url = _serving_config(None).prediction_log_url
        start, end = job.window_bounds(params, paths, since, until, time.time())
        summary = job.run(params, paths, log_url, start, end, project_module("monitoring").CHECKS)
        for line in job.console_report(summary):
            typer.echo(line)
        if summary["status"] == "alert" and retrain:
            from .monitoring.retrain import retrain as retrain_now
            from .schema import load_contract

            typer.echo(_retrain_line(retrain_now(log_url, paths, load_contract(paths.schema))))
        if summary["status"] == "alert":
            raise typer.Exit(job.EXIT_ALERT)

    _user_errors_exit_1(run)


def _retrain_line(outcome: dict[str, Any]) -> str:
    """What the retrain did, in one line: rows added, the gate's verdict, the new champion and the reload."""
    line = f"retrain: {outcome['labelled_rows']} labelled production rows added to the training data; "
    if outcome["repro_exit_code"] != 0:
        return line + f"`dvc repro` exited {outcome['repro_exit_code']}: {outcome.get('note', '')}"
    if not outcome["promoted"]:
        verdict = "accepted" if outcome["accepted"] else "refused"
        return line + f"the new model was {verdict} but not made champion; the champion keeps serving"
    return line + f"version {outcome['version']} is the new champion; service {outcome.get('reload', 'not reloaded')}"


@app.command()
def simulate(
    rows: Annotated[int, typer.Option(min=1, help="rows of traffic")] = 2000,
    scenario: Annotated[str, typer.Option(help="none, shift, category_mix, missing, correlation or concept")] = "none",
    features: Annotated[str, typer.Option(help="comma-separated features the scenario changes")] = "",
    amount: Annotated[float, typer.Option(help="how much the scenario changes (see the README)")] = 1.0,
    feedback: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of rows whose true label is posted")] = 0.5,
    url: Annotated[str, typer.Option(help="a running service to send to [default: write into the log]")] = "",
    seed: Annotated[int, typer.Option(help="random seed (rows, scenario, feedback)")] = 0,
) -> None:
    """Generate production traffic, with a drift scenario, to a service or straight into the prediction log."""

    def run() -> None:
        from .monitoring.simulate import Scenario, send_over_http, traffic, write_to_log

        chosen = Scenario(scenario, tuple(name for name in features.split(",") if name), amount)
        params, contract, base, chosen = _simulation_base(seed, chosen)
        frame, labels = traffic(contract, base, rows, chosen, seed)
        if url:
            token = os.environ.get("SERVE_FEEDBACK_TOKEN") or None  # the service's: labels need it
            result = send_over_http(url, contract, frame, labels, feedback, seed, feedback_token=token)
        else:
            from .serving.loader import load_model

            config = _serving_config(None)
            loaded = load_model(config, params.task, params.mlflow.registered_model)
            result = write_to_log(config.prediction_log_url, loaded, contract, frame, labels, feedback, seed)
        typer.echo(simulated_line(result, url))

    _user_errors_exit_1(run)


def simulated_line(result: dict[str, Any], url: str) -> str:
    """simulate's one summary line: where the traffic went, how much of it was answered and labelled."""
    target = url or "the prediction log"
    version = f" by model version {result['model_version']}" if "model_version" in result else ""
    return (
        f"simulate: {result['predicted']} of {result['rows']} rows predicted{version} into {target}; "
        f"{result['feedback']} with feedback"
    )


def _simulation_base(seed: int, scenario: Scenario) -> tuple[Params, Contract, pd.DataFrame, Scenario]:
    """Rows to draw traffic from, and the part of the scenario still to apply to them: fresh sample data for
    the sample source; else the training split, the distribution the model's reference profile describes
    (a test split of a small data set, resampled into thousands of rows, looks drifted by itself)."""
    from .files import read_parquet
    from .monitoring.simulate import sample_base, scenario_features
    from .params import load_params
    from .paths import Paths
    from .schema import load_contract

    params, paths = load_params(), Paths()
    contract = load_contract(paths.schema)
    scenario_features(contract, scenario)  # a wrong argument is reported before any data is read
    if params.extract.source == "sample":
        return (
            params,
            contract,
            *sample_base(project_module("sample_data").generate, params.task, contract, 20_000, seed + 1, scenario),
        )
    return params, contract, read_parquet(paths.split("train")), scenario


def _serving_config(model_source: ModelSourceOption | None) -> ServingConfig:
    """The SERVE_* settings of the environment, with the command line's choices on top."""
    from .serving.config import ServingConfig

    config = ServingConfig.from_env()
    return replace(config, model_source=model_source.value) if model_source else config


@app.command()
def explain(
    request_id: Annotated[
        str, typer.Argument(metavar="REQUEST_ID", help="a request id from a /predict answer or the prediction log")
    ],
) -> None:
    """Replay a logged prediction step by step through the model version that answered it, and compare.

    Exit status: 0 when the replay gives the logged answer, 1 when it does not or the request cannot be replayed.
    """

    def run() -> None:
        from .explain import explain as explain_request
        from .params import load_params
        from .schema import load_contract

        config = _serving_config(None)
        params = load_params(config.paths.params)
        contract = load_contract(config.paths.schema)
        explanation = explain_request(config, params.task, params.mlflow.registered_model, contract, request_id)
        _print_explanation(explanation)
        if not explanation.matches:
            raise typer.Exit(1)

    _user_errors_exit_1(run)


def _print_explanation(explanation: Explanation) -> None:
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(explanation.created_at, UTC).isoformat(timespec="seconds")
    typer.echo(f"request {explanation.request_id}: answered at {moment} by model version {explanation.model_version}")
    for number, step in enumerate(explanation.steps, 1):
        typer.echo(f"{number}. {step.name} ({step.source})")
        for name, value in step.values.items():
            typer.echo(f"     {name} = {json.dumps(value, default=str)}")
    typer.echo(f"logged:   {json.dumps(explanation.logged, sort_keys=True)}")
    typer.echo(f"replayed: {json.dumps(explanation.replayed, sort_keys=True)}")
    if explanation.matches:
        typer.echo("match: the replay gives the logged answer.")
        return
    typer.secho("mismatch: the replay does not give the logged answer:", err=True, fg=typer.colors.RED)
    for difference in explanation.differences:
        typer.secho(f"  {difference}", err=True, fg=typer.colors.RED)


@app.command()
def purge(
    older_than: Annotated[
        str, typer.Option(metavar="DAYS", help="delete what is older than this many days (a positive number)")
    ],
) -> None:
    """Delete predictions (with their feedback) and refusals older than DAYS from the prediction log."""

    def run() -> None:
        import time
        from datetime import UTC, datetime

        from .serving.predlog import purge as purge_log
        from .serving.predlog import retention_cutoff

        cutoff = retention_cutoff(older_than, time.time())
        deleted = purge_log(_serving_config(None).prediction_log_url, cutoff)
        moment = datetime.fromtimestamp(cutoff, UTC).isoformat(timespec="seconds")
        shadow = deleted["shadow_predictions"]
        typer.echo(
            f"purge: deleted {deleted['predictions']} predictions, {deleted['feedback']} feedback rows and"
            f" {deleted['refusals']} refusals from before {moment}"
            + (f", and {shadow} answers of a challenger in shadow" if shadow else "")
        )

    _user_errors_exit_1(run)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def scorecard(
    context: typer.Context,
    tests: Annotated[
        bool, typer.Option(help="run the tests marked ml_test_score (--no-tests: score the pipeline's checks only)")
    ] = True,
) -> None:
    """The ML Test Score: its 28 items scored from the tests and pipeline checks that ran (`nox -s ml_test_score`).

    Extra arguments go to pytest. Exit status 1 when a check failed or an item has no evidence.
    """

    def run() -> None:
        from . import scorecard as score
        from .paths import Paths

        status = score.run(Paths(), list(context.args), run_tests=tests)
        if status:
            raise typer.Exit(status)

    _user_errors_exit_1(run)
