"""Monitoring: statistics equal SciPy's, verdicts do not depend on window size, each kind of change is told apart."""

import http.server
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from scipy import stats
from scipy.spatial import distance
from sklearn.metrics import accuracy_score, roc_auc_score
from typer.testing import CliRunner

from mlops_runtime import registry, tracking
from mlops_runtime.cli import app
from mlops_runtime.files import plain
from mlops_runtime.monitoring import checks, statistics
from mlops_runtime.monitoring.job import EXIT_ALERT, console_report
from mlops_runtime.monitoring.profile import build_profile
from mlops_runtime.monitoring.retrain import labelled_rows
from mlops_runtime.monitoring.simulate import Scenario, sample_base, traffic, write_to_log
from mlops_runtime.monitoring.window import Window, read_window
from mlops_runtime.objective import TuningData, fit_model
from mlops_runtime.params import MonitorParams, ProfileParams, load_params
from mlops_runtime.paths import Paths
from mlops_runtime.schema import Contract
from mlops_runtime.serving.config import ServingConfig
from mlops_runtime.serving.loader import LoadedModel, from_local
from mlops_runtime.stages.train import model_save_options
from mlops_runtime.testing import Project, log_traffic, records

MONITOR = MonitorParams()
UNCHANGED = Scenario()
DRIFT_CHECKS = ("drift:", "multivariate", "prediction_drift")


# ---------------------------------------------------------------- statistics against SciPy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_statistics_equal_scipys_reference_functions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, 700), rng.normal(0.3, 1.4, 1300)
    counts_a, counts_b = rng.integers(1, 100, 6), rng.integers(1, 100, 6)

    assert statistics.wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)
    assert statistics.ks_pvalue(a, b) == pytest.approx(stats.ks_2samp(a, b).pvalue, rel=1e-12)
    assert statistics.jensen_shannon(counts_a, counts_b) == pytest.approx(
        distance.jensenshannon(counts_a, counts_b, base=2), rel=1e-9
    )
    expected = counts_a / counts_a.sum() * counts_b.sum()
    assert statistics.chi_square_pvalue(counts_a, counts_b) == pytest.approx(
        stats.chisquare(counts_b, expected).pvalue, rel=1e-9
    )
    p, q = counts_a / counts_a.sum(), counts_b / counts_b.sum()
    assert statistics.psi(counts_a, counts_b) == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)


def test_quantile_bins_hold_equal_shares_and_count_every_finite_value() -> None:
    values = np.random.default_rng(0).normal(size=10_000)
    edges = statistics.quantile_edges(values, 10)
    counts = statistics.bin_counts(np.append(values, [np.nan, np.inf]), edges)
    assert len(edges) == 9
    assert counts.sum() == 10_000
    assert counts.min() >= 990


# ---------------------------------------------------------------- verdicts on simulated windows


@pytest.fixture(scope="module")
def reference(project: Project) -> dict[str, Any]:
    """A binary model trained on 5,000 rows of the project's sample data, its contract and its profile."""
    from mlops_runtime.inference import infer

    task = "binary_classification"
    train = project.sample(task, 5000, seed=100)
    contract = infer(train, project.target(task), task, max_categories=50, owner="tests").contract
    data = TuningData(contract, train, project.sample(task, 2000, seed=101), task, "roc_auc", project.models)
    model = fit_model(data, "linear", {}, seed=0, frame=train)
    profile = build_profile(model, contract, data.train, data.validation, task, ProfileParams())
    offline = {
        "roc_auc": float(
            roc_auc_score(
                data.validation[contract.target.name], model.predict_proba(contract.features_of(data.validation))[:, 1]
            )
        )
    }
    loaded = LoadedModel(model, task, "model", "1", "local")
    generate = project.module("sample_data").generate
    return {"task": task, "contract": contract, "model": loaded, "profile": profile, "offline": offline} | {
        "generate": generate
    }


def window_of(reference: dict[str, Any], rows: int, seed: int, scenario: Scenario = UNCHANGED) -> Window:
    """Fresh traffic from the sample generator, changed by `scenario`, scored by the model, all labelled."""
    contract: Contract = reference["contract"]
    base, rest = sample_base(reference["generate"], reference["task"], contract, rows, seed, scenario)
    features, labels = traffic(contract, base, rows, rest, seed)
    answers = reference["model"].predict(contract.features_of(features))
    classes = [str(label) for label in contract.classes]
    served = pd.DataFrame(
        {
            "request_id": [str(i) for i in range(rows)],
            "created_at": np.linspace(0, 3600, rows),
            "model_version": "1",
            "latency_ms": 2.0,
            "prediction": [answer["prediction"] for answer in answers],
            "label": labels.to_numpy(dtype=object),
        }
    )
    probabilities = np.array([[answer["probabilities"][name] for name in classes] for answer in answers])
    return Window(0.0, 3600.0, contract.features_of(features), served, probabilities, classes, 0, None)


def drift_statuses(reference: dict[str, Any], window: Window) -> dict[str, str]:
    found = checks.feature_drift(window, reference["profile"], MONITOR)
    found.append(checks.multivariate_drift(window, reference["profile"], reference["contract"], MONITOR))
    found.append(checks.prediction_drift(window, reference["profile"], MONITOR))
    return {check["check"]: check["status"] for check in found}


@pytest.mark.slow
@pytest.mark.parametrize("rows", [500, 100_000])
def test_no_false_alarm_at_any_window_size(reference: dict[str, Any], rows: int) -> None:
    """Windows drawn from the reference distribution: healthy in at least 19 of 20, small or large."""
    healthy = sum(
        "alert" not in drift_statuses(reference, window_of(reference, rows, seed)).values() for seed in range(20)
    )
    assert healthy >= 19


@pytest.mark.slow
@pytest.mark.ml_test_score("Mo2")
def test_a_shift_in_three_features_flags_exactly_those(reference: dict[str, Any]) -> None:
    shifted = ("age", "tenure_months", "monthly_spend")
    window = window_of(reference, 5000, seed=1, scenario=Scenario("shift", shifted, 1.0))

    statuses = drift_statuses(reference, window)

    alerts = {
        name.removeprefix("drift:")
        for name, status in statuses.items()
        if name.startswith("drift:") and status == "alert"
    }
    assert alerts == set(shifted)


@pytest.mark.slow
def test_a_category_mix_change_flags_that_feature(reference: dict[str, Any]) -> None:
    window = window_of(reference, 5000, seed=2, scenario=Scenario("category_mix", ("plan",), 0.5))

    statuses = drift_statuses(reference, window)

    assert statuses["drift:plan"] == "alert"
    assert [name for name, status in statuses.items() if name.startswith("drift:") and status == "alert"] == [
        "drift:plan"
    ]


@pytest.mark.slow
def test_a_correlation_change_is_caught_by_the_multivariate_check_only(reference: dict[str, Any]) -> None:
    window = window_of(reference, 5000, seed=3, scenario=Scenario("correlation", ("age", "monthly_spend"), 1.0))

    statuses = drift_statuses(reference, window)

    assert statuses["multivariate"] == "alert"
    assert all(status != "alert" for name, status in statuses.items() if name.startswith("drift:"))


@pytest.mark.slow
@pytest.mark.ml_test_score("M2", "Mo7")
def test_a_concept_change_is_not_data_drift_but_realised_performance_catches_it(reference: dict[str, Any]) -> None:
    window = window_of(reference, 5000, seed=4, scenario=Scenario("concept", (), 0.4))

    statuses = drift_statuses(reference, window)
    performance = checks.realised_performance(
        window, reference["task"], reference["contract"].classes, "roc_auc", reference["offline"], MONITOR
    )

    assert "alert" not in statuses.values()
    assert performance["status"] == "alert"
    assert performance["realised"] < reference["offline"]["roc_auc"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.ml_test_score("M2", "Mo7")
def test_the_label_free_estimate_tracks_realised_performance_on_calibrated_traffic(seed: int) -> None:
    rng = np.random.default_rng(seed)
    positive = rng.beta(2.0, 2.0, 5000)
    labels = (rng.random(5000) < positive).astype(int)
    proba = np.column_stack([1 - positive, positive])

    assert checks.expected_accuracy(proba) == pytest.approx(accuracy_score(labels, proba.argmax(axis=1)), abs=0.03)
    assert checks.expected_roc_auc(positive) == pytest.approx(roc_auc_score(labels, positive), abs=0.03)


# ---------------------------------------------------------------- the job on a real prediction log


def monitor(*args: str) -> Any:
    return CliRunner().invoke(app, ["monitor", *args])


def test_an_empty_window_is_a_clear_message_and_exit_0(monitored: Path) -> None:
    result = monitor()
    assert result.exit_code == 0, result.output
    assert "no predictions in the window" in result.output
    assert "Traceback" not in result.output


def test_a_healthy_window_exits_0_and_writes_summary_and_report(
    monitored: Path, config: ServingConfig, tuning_data: TuningData
) -> None:
    log_traffic(config, tuning_data, 600)

    result = monitor()

    assert result.exit_code == 0, result.output
    (folder,) = (monitored / "reports" / "monitoring").glob("*Z")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["window"]["rows"] == 600
    assert summary["status"] in ("ok", "warn")
    html = (folder / "report.html").read_text()
    assert html.index('id="status"') < html.index("<img")  # the status table comes first
    assert 'src="data:image/png;base64,' in html  # self-contained


@pytest.mark.ml_test_score("Mo2")
def test_an_alert_exits_with_its_own_status_and_names_the_shifted_features(
    monitored: Path, config: ServingConfig, tuning_data: TuningData
) -> None:
    log_traffic(config, tuning_data, 600, Scenario("shift", (tuning_data.contract.numeric_features[0],), 2.0))

    result = monitor()

    assert result.exit_code == EXIT_ALERT, result.output
    lines = result.output.strip().splitlines()
    assert lines[1].split() == ["check", "value", "threshold", "status"]
    shifted = [line.split() for line in lines if f" drift:{tuning_data.contract.numeric_features[0]} " in line]
    assert shifted, result.output
    assert shifted[0][-1] == "alert"
    assert lines[-1].startswith("report: reports/monitoring/")
    assert lines[-1].endswith("/report.html")


def summary_of(window_checks: list[dict[str, Any]], version_checks: list[dict[str, Any]]) -> dict[str, Any]:
    """A summary as the job writes it, around real check results."""
    statuses = [check["status"] for check in [*window_checks, *version_checks]]
    return {
        "status": checks.worst(statuses),
        "window": {"start": "2030-01-01T00:00:00+00:00", "end": "2030-01-02T00:00:00+00:00", "rows": 900},
        "checks": window_checks,
        "versions": {"7": {"rows": 900, "checks": version_checks}},
        "report": "reports/monitoring/20300102T000000Z/report.html",
    }


def drift(feature: str, psi: float, effect: float) -> dict[str, Any]:
    return checks._drift_result(f"drift:{feature}", feature, psi, effect, "normalised_wasserstein", 0.5, "ks", MONITOR)


def test_a_healthy_window_is_one_line_with_the_report() -> None:
    summary = summary_of(
        [checks.result("refusals", 0.0, MONITOR.refusal_rate)],
        [drift("age", 0.01, 0.02), checks.result("latency", 2.0, MONITOR.latency_factor)],
    )
    summary["versions"]["7"]["checks"].append(checks.not_judged("performance", "3 labelled rows (at least 30 needed)"))

    (line,) = console_report(summary)

    assert line.startswith("monitor: ok: all 3 checks ok on 900 rows from 2030-01-01T00:00:00+00:00")
    assert "not judged: v7 performance (3 labelled rows (at least 30 needed))" in line
    assert line.endswith("; report: reports/monitoring/20300102T000000Z/report.html")


def test_checks_that_are_not_ok_are_a_table_alerts_first_with_the_threshold_reached() -> None:
    summary = summary_of(
        [checks.result("refusals", 0.03, MONITOR.refusal_rate)],
        [
            drift("age", 0.01, 0.02),
            drift("income", 0.4, 0.05),  # PSI decides
            drift("region", 0.02, 0.5),  # the effect size decides
            checks.result("latency", 2.0, MONITOR.latency_factor),
        ],
    )

    lines = console_report(summary)

    assert lines[0].startswith("monitor: alert: 3 of 5 checks not ok on 900 rows")
    table = [line.split() for line in lines[1:-1]]
    assert table[0] == ["check", "value", "threshold", "status"]
    assert table[1] == ["v7", "drift:income", "psi", "0.4", ">=", str(MONITOR.psi.alert), "alert"]
    assert table[2][:4] == ["v7", "drift:region", "normalised_wasserstein", "0.5"]
    assert table[2][-3:] == [">=", str(MONITOR.effect.alert), "alert"]
    assert table[3] == ["refusals", "refused", "3.0%", ">=", f"{MONITOR.refusal_rate.warn:.1%}", "warn"]
    assert len(table) == 4  # the ok checks are left out
    assert lines[-1] == "report: reports/monitoring/20300102T000000Z/report.html"


@pytest.mark.parametrize("task", ["binary_classification"])
def test_a_registry_version_is_judged_without_progress_bars(
    monitored: Path, config: ServingConfig, tuning_data: TuningData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profile of a registry version is downloaded from its run: MLflow's progress bar stays out of the output."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{monitored / 'mlflow.db'}")
    params = load_params()
    loaded = from_local(tuning_data.task, config.model_path, config.paths)
    with tracking.start_run(params.mlflow.experiment) as run:
        mlflow.log_dict(json.loads(Paths(monitored).model_profile.read_text()), "profile.json")
        uri = mlflow.sklearn.log_model(loaded.model, name="model", **model_save_options(tuning_data)).model_uri
    tags = {"run_id": run.info.run_id, "metrics": "{}"}
    version = registry.register(tracking.client(), params.mlflow.registered_model, uri, tags)
    features, labels = traffic(tuning_data.contract, tuning_data.validation, 300, UNCHANGED, seed=0)
    log = config.prediction_log_url
    write_to_log(log, replace(loaded, version=version), tuning_data.contract, features, labels, 0.5, seed=0)

    result = monitor()

    assert result.exit_code in (0, EXIT_ALERT), result.output
    assert "Downloading artifacts" not in result.output
    assert "it/s" not in result.output
    assert result.output.strip().splitlines()[-1].endswith("/report.html")


def test_corrupt_log_rows_are_skipped_and_counted(
    monitored: Path, config: ServingConfig, tuning_data: TuningData
) -> None:
    log_traffic(config, tuning_data, 300)
    engine = sa.create_engine(config.prediction_log_url)
    good = json.dumps(dict.fromkeys(tuning_data.contract.feature_names))
    broken = [("{not json", "{}"), ("[1, 2]", "{}"), (good, "{}"), (json.dumps({"age": "old"}), "{}")]
    with engine.begin() as connection:
        for i, (text_in, text_out) in enumerate(broken):
            connection.execute(
                sa.text("INSERT INTO predictions VALUES (:id, :at, '1', :input, :output, 1.0)"),
                {"id": f"broken-{i}", "at": pd.Timestamp.now().timestamp() - 10, "input": text_in, "output": text_out},
            )
    engine.dispose()

    window = read_window(
        config.prediction_log_url, 0, pd.Timestamp.now().timestamp() + 1, tuning_data.contract, tuning_data.task
    )

    assert len(window.served) == 300
    assert window.corrupt == 4


DATED_SCHEMA = """
target: {name: unemployed, type: numeric, min: 0.0, max: 100.0}
features:
  month: {type: datetime, owner: tests, pii: false}
  savings: {type: numeric, min: 0.0, max: 40.0, owner: tests, pii: false}
"""


def test_a_date_feature_goes_through_simulate_the_log_the_checks_and_the_report(tmp_path: Path) -> None:
    """As ggplot2's economics: simulate writes a date as a client does (ISO 8601), so the window reads back every
    row; drift and the report bin a date as a number (before: every simulated row unreadable, the report failed)."""
    from sklearn.dummy import DummyRegressor

    from mlops_runtime.monitoring.report import _distributions
    from mlops_runtime.monitoring.simulate import records
    from mlops_runtime.schema import load_contract

    (tmp_path / "schema.yaml").write_text(DATED_SCHEMA)
    contract = load_contract(tmp_path / "schema.yaml")
    rng = np.random.default_rng(0)
    months = pd.date_range("1967-07-01", periods=400, freq="MS", tz="UTC")
    split = pd.DataFrame(  # as the training split holds it: a date as the model sees it, seconds since 1970
        {"month": (months - pd.Timestamp(0, tz="UTC")).total_seconds(), "savings": rng.uniform(2, 17, 400)}
    )
    split["unemployed"] = rng.uniform(3, 10, 400)
    features, labels = contract.split_xy(split)
    model = DummyRegressor().fit(features, labels)
    loaded = LoadedModel(model, "regression", "dated", "1", "local")
    url = f"sqlite:///{tmp_path / 'log.db'}"

    assert records(features.head(1), contract)[0]["month"] == "1967-07-01T00:00:00+00:00"
    write_to_log(url, loaded, contract, features, labels, 0.0, seed=0)
    window = read_window(url, 0, pd.Timestamp.now().timestamp() + 1, contract, "regression")

    assert (len(window.served), window.corrupt) == (400, 0)
    assert sorted(window.features["month"]) == sorted(features["month"])
    profile = build_profile(model, contract, split, split, "regression", ProfileParams())
    drift = {check["check"]: check["status"] for check in checks.feature_drift(window, profile, MONITOR)}
    assert drift == {"drift:month": "ok", "drift:savings": "ok"}
    labels_shown = [tick.get_text() for tick in _distributions(window, profile).axes[0].get_xticklabels()]
    assert re.fullmatch(r"≤19\d\d-\d\d-\d\d", labels_shown[0]), labels_shown  # a date, not 8.2e+07


def test_labelled_rows_do_not_depend_on_the_order_requests_arrived_in(tuning_data: TuningData) -> None:
    """Concurrent clients reorder the log; the training rows `monitor --retrain` exports stay the same, each
    request with its latest label and an unreadable row left out."""
    contract, target = tuning_data.contract, tuning_data.contract.target.name
    rows = records(tuning_data, 40)
    labels = [json.dumps(plain(label)) for label in tuning_data.validation[target].head(40)]
    relabel = next(label for label in labels if label != labels[0])
    joined = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(40)] + ["r0", "broken"],
            "input": [json.dumps(row) for row in rows] + [json.dumps(rows[0]), "{not json"],
            "label": [*labels, relabel, labels[0]],
        }
    )
    in_order = joined.assign(id=range(42))
    # Another arrival order of the same requests: the log numbers rows as they arrive.
    reordered = pd.concat([joined.head(40).sample(frac=1.0, random_state=0), joined.tail(2)]).assign(id=range(42))

    exported = labelled_rows(in_order, contract)

    pd.testing.assert_frame_equal(labelled_rows(reordered, contract), exported)
    expected = sorted(json.loads(label) for label in [relabel, *labels[1:]])
    assert sorted(exported[target].tolist()) == expected


def test_a_log_from_an_older_service_still_reads(tmp_path: Path, tuning_data: TuningData) -> None:
    """Written before refusals were recorded: no refusals table; the refusal check says so."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TABLE predictions (request_id VARCHAR(36) PRIMARY KEY, created_at FLOAT, model_version"
                " VARCHAR(64), input TEXT, output TEXT, latency_ms FLOAT)"
            )
        )
        connection.execute(
            sa.text(
                "CREATE TABLE feedback (id INTEGER PRIMARY KEY, request_id VARCHAR(36), label TEXT, created_at FLOAT)"
            )
        )
    engine.dispose()

    window = read_window(url, 0, 1e12, tuning_data.contract, tuning_data.task)

    assert window.refusals is None
    assert checks.refusal_rate(window, MONITOR)["status"] == "n/a"


class Webhook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Webhook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Webhook.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_the_webhook_receives_the_summary(
    monitored: Path, config: ServingConfig, tuning_data: TuningData, webhook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_traffic(config, tuning_data, 300)
    monkeypatch.setenv("MONITOR_WEBHOOK_URL", webhook)

    result = monitor()

    assert result.exit_code == 0, result.output
    (summary,) = Webhook.received
    assert summary["window"]["rows"] == 300
    assert summary["status"] in ("ok", "warn")


def test_the_service_records_refusals_by_field_without_the_body(config: ServingConfig, tuning_data: TuningData) -> None:
    from fastapi.testclient import TestClient

    from mlops_runtime.serving.app import create_app

    numeric = tuning_data.contract.numeric_features[0]
    with TestClient(create_app(config)) as client:
        assert client.post("/predict", json={numeric: "secret-value"}).status_code == 422
    engine = sa.create_engine(config.prediction_log_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT reason, fields FROM refusals")).all()
    engine.dispose()

    ((reason, fields),) = rows
    assert reason == "contract"
    assert numeric in fields.split(",")
    assert "secret-value" not in fields


@pytest.mark.ml_test_score("Mo2")
def test_the_window_flags_missing_values_past_the_contract(tuning_data: TuningData) -> None:
    nullable = [column for column in tuning_data.contract.features if column.max_missing]
    features = tuning_data.contract.features_of(tuning_data.validation).reset_index(drop=True)
    features[nullable[0].name] = np.nan
    served = pd.DataFrame({"prediction": [0] * len(features), "latency_ms": 1.0, "label": None})
    window = Window(0, 1, features, served, None, [], 0, None)
    profile = {"features": {name: {"missing_rate": 0.0} for name in tuning_data.contract.feature_names}}

    found = {check["check"]: check for check in checks.missing_values(window, profile, tuning_data.contract, MONITOR)}

    assert found[f"missing:{nullable[0].name}"]["status"] == "alert"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["monitor", "--since", "yesterday"], "is not a time"),
        (["monitor", "--since", "2030-01-02T00:00", "--until", "2030-01-01T00:00"], "the window is empty"),
        (["simulate", "--scenario", "earthquake"], "unknown scenario 'earthquake'"),
        (["simulate", "--scenario", "shift", "--features", "shoe_size"], "not in the contract"),
        (["simulate", "--amount", "-1"], "amount must be at least 0"),
        (["simulate", "--scenario", "shift", "--features", "plan"], "the shift scenario cannot change ['plan']"),
    ],
)
def test_bad_monitoring_arguments_are_one_clear_error(monitored: Path, arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_unreadable_prediction_log_is_one_clear_error(monitored: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (monitored / "not-a-database.db").write_text("this is not SQLite")
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", f"sqlite:///{monitored / 'not-a-database.db'}")
    result = monitor()
    assert result.exit_code == 1, result.output
    assert "cannot read the prediction log" in result.output
    assert "Traceback" not in result.output
