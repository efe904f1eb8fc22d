"""The pytest plugin of mlops-runtime (loaded wherever the library is installed: entry point pytest11).

- The ML Test Score's test evidence: the marker `ml_test_score(*items)`, and each marked test's outcome
  written where `--ml-test-score-results FILE` says (`<package> scorecard` reads it; see scorecard.py).
- The project under test: the ini option `mlops_project` (its import name; the project's pyproject.toml
  sets it) and its root folder, as the fixture `project`.
- Fixtures built from that project for the library's checks (`pytest --pyargs mlops_runtime.checks`) and
  the project's own tests: a task's sample data, its contract, a quick model, a service folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import pandas as pd

    from .modelling import ProjectModels
    from .monitoring.simulate import Scenario
    from .objective import TuningData
    from .schema import Contract
    from .serving.config import ServingConfig
    from .serving.loader import LoadedModel

SCORE_OPTION = "--ml-test-score-results"
PROJECT_OPTION = "mlops_project"
TASKS = ("binary_classification", "multiclass_classification", "regression")
PRIMARY = {"binary_classification": "roc_auc", "multiclass_classification": "f1_macro", "regression": "rmse"}
MAX_RECORDS = 50
RELOAD_TOKEN, FEEDBACK_TOKEN = "s3cret", "l4bels"  # the `config` fixture's tokens: two, as in production
FEEDBACK_AUTH = {"authorization": f"Bearer {FEEDBACK_TOKEN}"}  # the header a test's POST /feedback sends

# Each test marked `ml_test_score(ITEM, ...)` and its outcome, by test id.
_SCORED: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class Project:
    """A generated project under test: its import name and its root folder (params.yaml, schema.yaml, ...)."""

    package: str
    root: Path

    def module(self, name: str) -> Any:
        return import_module(f"{self.package}.{name}")

    def registered(self) -> Project:
        """This project, its own metrics registered (`<package>.metrics`, if it has one), as its CLI does."""
        from .metrics import register_project_metrics

        register_project_metrics(self.package)
        return self

    @cached_property
    def models(self) -> ProjectModels:
        models: ProjectModels = self.module("model").project_models()
        return models

    def sample(self, task: str, rows: int, seed: int, **options: Any) -> pd.DataFrame:
        """Rows of the project's sample generator (sample_data.generate)."""
        frame: pd.DataFrame = self.module("sample_data").generate(task, rows, seed, **options)
        return frame

    def target(self, task: str) -> str:
        target: str = self.module("sample_data").TARGETS[task]
        return target

    @property
    def app(self) -> Any:
        """The project's command line (a Typer app)."""
        return self.module("cli").app


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(SCORE_OPTION, metavar="FILE", help="write the outcome of each ml_test_score test to FILE (JSON)")
    parser.addini(PROJECT_OPTION, "the import name of the project under test (mlops-runtime's checks)", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ml_test_score(*items): evidence for these ML Test Score items (ids in mlops_runtime.scorecard)"
    )
    config.addinivalue_line("markers", "slow: runs real pipeline stages or services (seconds each)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from .scorecard import ITEM_IDS

    for item in items:
        ids = [str(arg) for marker in item.iter_markers("ml_test_score") for arg in marker.args]
        unknown = sorted(set(ids) - ITEM_IDS)
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: unknown ML Test Score items {unknown}; see scorecard.ITEMS")
        if ids:
            _SCORED[item.nodeid] = {"test": item.nodeid, "items": ids, "outcome": "not run"}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _SCORED.get(report.nodeid)
    if entry is None or entry["outcome"] == "failed":
        return
    if report.failed:
        entry["outcome"] = "failed"
    elif report.skipped:
        entry["outcome"] = "skipped"
    elif report.when == "call":
        entry["outcome"] = "passed"


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = session.config.getoption(SCORE_OPTION)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps(list(_SCORED.values()), indent=2) + "\n")


@pytest.fixture(scope="session")
def project(pytestconfig: pytest.Config) -> Project:
    """The project under test: `mlops_project` of the pytest settings, rooted where pytest runs."""
    package = str(pytestconfig.getini(PROJECT_OPTION))
    if not package:
        raise pytest.UsageError(f"set {PROJECT_OPTION} (the project's import name) in [tool.pytest.ini_options]")
    return Project(package, pytestconfig.rootpath).registered()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "task" in metafunc.fixturenames and not names_task(metafunc.definition):
        metafunc.parametrize(
            "task", tasks_under_test(metafunc.module.__name__, metafunc.config.rootpath), indirect=True
        )


def names_task(test: pytest.Function) -> bool:
    """Whether the test chooses its task itself (`@pytest.mark.parametrize("task", [...])`)."""
    for marker in test.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if "task" in ([name.strip() for name in names.split(",")] if isinstance(names, str) else names):
            return True
    return False


def tasks_under_test(module: str, root: Path) -> tuple[str, ...]:
    """The library's checks run on every task; a project's own tests on the project's task (params.yaml's `task`)."""
    import yaml

    params_file = root / "params.yaml"
    if module.startswith("mlops_runtime.checks") or not params_file.exists():
        return TASKS
    task = (yaml.safe_load(params_file.read_text()) or {}).get("task")
    return (task,) if task in TASKS else TASKS


@pytest.fixture
def task(request: pytest.FixtureRequest) -> str:
    """A task the test runs on (tasks_under_test): parametrized, one test per task."""
    return str(request.param)


@pytest.fixture
def sample(project: Project, task: str) -> pd.DataFrame:
    return project.sample(task, rows=600, seed=7)


@pytest.fixture
def contract(project: Project, sample: pd.DataFrame, task: str) -> Contract:
    from .inference import infer

    return infer(sample, project.target(task), task, max_categories=50, owner="tests").contract


@pytest.fixture
def tuning_data(project: Project, sample: pd.DataFrame, contract: Contract, task: str) -> TuningData:
    """400 rows to fit on, 200 to score on."""
    from .objective import TuningData

    return TuningData(contract, sample.iloc[:400], sample.iloc[400:], task, PRIMARY[task], project.models)


@pytest.fixture
def project_params(project: Project) -> dict[str, Any]:
    import yaml

    params: dict[str, Any] = yaml.safe_load((project.root / "params.yaml").read_text())
    return params


@pytest.fixture
def service_root(tmp_path: Path, task: str, tuning_data: TuningData, project_params: dict[str, Any]) -> Path:
    """A project folder with a trained model, its contract and params, as `dvc repro` leaves it."""
    import mlflow.sklearn
    import yaml

    from .objective import fit_model
    from .stages.train import model_save_options
    from .verdict import write_verdict

    model = fit_model(tuning_data, "linear", {}, seed=0, frame=tuning_data.train)
    mlflow.sklearn.save_model(model, tmp_path / "models" / "model", **model_save_options(tuning_data))
    write_verdict(tmp_path / "models" / "model", {"accepted": True, "checks": []})  # as `accept` leaves it
    (tmp_path / "schema.yaml").write_text(tuning_data.contract.to_yaml())
    params = project_params | {"task": task, "train": project_params["train"] | {"primary_metric": PRIMARY[task]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


@pytest.fixture
def config(service_root: Path) -> ServingConfig:
    from .paths import Paths
    from .serving.config import ServingConfig

    return ServingConfig(
        paths=Paths(service_root),
        model_source="local",
        prediction_log_url=f"sqlite:///{service_root / 'predictions.db'}",
        reload_token=RELOAD_TOKEN,
        feedback_token=FEEDBACK_TOKEN,
        max_records=MAX_RECORDS,
        max_body_bytes=50_000,
    )


def records(tuning_data: TuningData, count: int) -> list[dict[str, Any]]:
    """The first `count` validation rows as JSON request records (missing values as null)."""
    features = tuning_data.contract.split_xy(tuning_data.validation.head(count))[0]
    rows = features.astype(object).where(features.notna(), None).to_dict("records")
    return [
        {str(key): (None if isinstance(v, float) and math.isnan(v) else v) for key, v in row.items()} for row in rows
    ]


def assert_serve_refuses(app: Any, message: str) -> None:
    """`serve` (of the CLI `app`) in the current folder exits with status 1 and `message`, never a traceback."""
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["serve", "--model-source", "local"])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def monitored(
    service_root: Path, config: ServingConfig, tuning_data: TuningData, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A served project: its model with a profile, params, contract; tracking off; run from its folder."""
    from .files import write_json
    from .monitoring.profile import build_profile
    from .params import ProfileParams
    from .paths import Paths
    from .serving.loader import from_local

    paths = Paths(service_root)
    loaded = from_local(tuning_data.task, config.model_path, paths)
    profile = build_profile(
        loaded.model, tuning_data.contract, tuning_data.train, tuning_data.validation, tuning_data.task, ProfileParams()
    )
    write_json(paths.model_profile, profile)
    monkeypatch.chdir(service_root)
    monkeypatch.setenv("MLFLOW_TRACKING", "off")
    monkeypatch.setenv("SERVE_PREDICTION_LOG_URL", config.prediction_log_url)
    monkeypatch.delenv("MONITOR_WEBHOOK_URL", raising=False)
    return service_root


def log_traffic(
    config: ServingConfig, tuning_data: TuningData, rows: int, scenario: Scenario | None = None
) -> LoadedModel:
    """`rows` rows of traffic drawn from the validation split (changed by `scenario`), answered by the model in
    the service folder and written to its prediction log, half of them labelled."""
    import pandas as pd

    from .monitoring.simulate import Scenario, traffic, write_to_log
    from .serving.loader import from_local

    scenario = scenario or Scenario()
    loaded = from_local(tuning_data.task, config.model_path, config.paths)
    base = pd.concat([tuning_data.validation] * 3, ignore_index=True)
    features, labels = traffic(tuning_data.contract, base, rows, scenario, seed=0)
    write_to_log(config.prediction_log_url, loaded, tuning_data.contract, features, labels, 0.5, seed=0)
    return loaded
