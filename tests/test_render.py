"""Render tests: every answer combination renders to parseable, lint-clean files (no installs)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, render
from .debian import debian_tool

TASKS = ["binary_classification", "multiclass_classification", "regression"]
SOURCES = ["sample", "file", "sql"]
PYTHONS = ["3.11", "3.12", "3.13"]
LICENSES = ["MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"]
LIBRARIES = ["sklearn", "lightgbm", "xgboost"]
REMOTES = ["local", "s3", "gs", "azure"]

# Every task with every source and every model library; Python versions, licenses and DVC
# remotes rotate through the combinations.
MATRIX = [
    {
        "task": task,
        "data_source": source,
        "model_library": library,
        "python_version": PYTHONS[i % len(PYTHONS)],
        "license": LICENSES[i % len(LICENSES)],
        "dvc_remote": REMOTES[i % len(REMOTES)],
    }
    for i, (task, source, library) in enumerate((t, s, lib) for t in TASKS for s in SOURCES for lib in LIBRARIES)
]


def matrix_id(answers: dict[str, str]) -> str:
    return "-".join(answers.values())


@pytest.fixture(scope="module", params=MATRIX, ids=matrix_id)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    answers = dict(request.param)
    return render(tmp_path_factory.mktemp("render") / "project", **answers), answers


def project_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file() and ".git" not in path.parts)


def test_every_file_parses(rendered: tuple[Path, dict[str, str]]) -> None:
    root, _ = rendered
    for path in project_files(root):
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            yaml.safe_load(text)
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".py":
            ast.parse(text, filename=str(path))


def test_no_jinja_leftovers(rendered: tuple[Path, dict[str, str]]) -> None:
    root, _ = rendered
    for path in project_files(root):
        text = path.read_text().replace("${{", "")  # GitHub Actions expressions are not Jinja
        assert "{{" not in text, f"Jinja left in {path.relative_to(root)}"
        assert "{%" not in text, f"Jinja left in {path.relative_to(root)}"
        assert ".jinja" not in path.name


def test_generated_code_is_lint_clean(rendered: tuple[Path, dict[str, str]]) -> None:
    root, _ = rendered
    for command in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        completed = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=root, capture_output=True, text=True, check=False
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


def test_dockerfile_passes_hadolint(rendered: tuple[Path, dict[str, str]]) -> None:
    root, _ = rendered
    hadolint = Path(sys.executable).parent / "hadolint"
    completed = subprocess.run(
        [str(hadolint), "--failure-threshold", "warning", str(root / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_file_set_matches_the_answers(rendered: tuple[Path, dict[str, str]]) -> None:
    root, answers = rendered
    names = {str(path.relative_to(root)) for path in project_files(root)}
    expected = {"pyproject.toml", "params.yaml", "dvc.yaml", ".dvc/config", ".copier-answers.yml", "README.md"}
    assert expected | {"Dockerfile", ".dockerignore", "src/churn_model/serving/app.py"} <= names
    assert {".github/workflows/ci.yml", ".github/workflows/train.yml", ".github/workflows/monitor.yml"} <= names
    assert {"prometheus/alerts.yml", "prometheus/alerts.test.yml", "data/feedback/README.md"} <= names
    ci = yaml.safe_load((root / ".github" / "workflows" / "ci.yml").read_text())
    scripts = " ".join(step.get("run", "") for step in ci["jobs"]["checks"]["steps"])
    assert ("nox -s ml_test_score" in scripts) == (answers["data_source"] == "sample")  # the pipeline on sample data
    assert ("comment" in ci["jobs"]) == (answers["data_source"] == "sample")  # its model report on pull requests
    assert ("LICENSE" in names) == (answers["license"] != "Proprietary")
    assert ("schema.yaml" in names) == (answers["data_source"] == "sample")
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    assert ("infer_schema" in dvc["stages"]) == (answers["data_source"] != "sample")
    expected = ["extract", "validate", "analyze", "prepare", "train", "evaluate", "accept"]
    assert [stage for stage in dvc["stages"] if stage != "infer_schema"] == expected


def test_answers_reach_the_project(rendered: tuple[Path, dict[str, str]]) -> None:
    root, answers = rendered
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    params = yaml.safe_load((root / "params.yaml").read_text())
    stored = yaml.safe_load((root / ".copier-answers.yml").read_text())
    assert pyproject["project"]["requires-python"] == f">={answers['python_version']}"
    assert pyproject["project"]["scripts"] == {"churn_model": "churn_model.cli:main"}
    assert params["task"] == answers["task"]
    assert params["extract"]["source"] == answers["data_source"]
    assert set(params["extract"]) == {"source", "feedback", answers["data_source"]}
    assert stored["task"] == answers["task"]
    assert "_commit" in stored
    assert "_src_path" in stored
    assert (root / "src" / "churn_model" / "pipeline" / "train.py").exists()


def test_dvc_yaml_lists_exactly_the_modules_each_stage_imports(rendered: tuple[Path, dict[str, str]]) -> None:
    """The generated project's own check (stdlib and PyYAML only), run on every answer combination.

    Its conftest and its warning filters name packages this environment does not have: both are left out.
    """
    root, _ = rendered
    options = ["--noconftest", "-p", "no:cacheprovider", "-o", "filterwarnings=error"]
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *options, "tests/test_dvc_yaml.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert " passed" in completed.stdout


def test_computed_values_are_not_stored_in_the_answers_file(rendered: tuple[Path, dict[str, str]]) -> None:
    root, _ = rendered
    stored = yaml.safe_load((root / ".copier-answers.yml").read_text())
    assert not {"boosting_family", "boosting_label", "python_keywords", "reserved_package_names"} & set(stored)


def test_only_the_chosen_model_library_is_rendered(rendered: tuple[Path, dict[str, str]]) -> None:
    root, answers = rendered
    dependencies = " ".join(tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"])
    code = (root / "src" / "churn_model" / "estimators.py").read_text()
    candidates = yaml.safe_load((root / "params.yaml").read_text())["train"]["candidates"]
    boosting = {"sklearn": "hist_gradient_boosting"}.get(answers["model_library"], answers["model_library"])
    assert list(candidates) == ["linear", "random_forest", boosting]
    for library in ("lightgbm", "xgboost"):
        chosen = library == answers["model_library"]
        assert (library in dependencies) == chosen
        assert (f"from {library} import" in code) == chosen


def test_sql_answers_are_quoted_safely(tmp_path: Path) -> None:
    query = "SELECT a, b AS \"label: x\" FROM t WHERE c = 'y' # not a comment"
    root = render(tmp_path / "p", data_source="sql", query=query, database_url="sqlite:///db.sqlite")
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params["extract"]["sql"] == {"url": "sqlite:///db.sqlite", "query": query}


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"package_name": "class"}, "is a Python keyword"),
        ({"package_name": "mlflow"}, "would shadow a dependency"),
        ({"package_name": "tests"}, "would shadow a dependency"),
        ({"package_name": "2fast"}, "valid Python identifier"),
        ({"project_slug": "My Project"}, "project_slug must start with a letter"),
        ({"author_email": "not-an-email"}, "author_email must look like"),
        ({"task": "clustering"}, "Invalid choice"),
        ({"python_version": "3.9"}, "Invalid choice"),
        ({"data_source": "file", "data_path": "data.xlsx"}, "data_path must name a .csv or .parquet"),
        ({"data_source": "sql", "database_url": "localhost/db"}, "database_url must be a SQLAlchemy URL"),
        ({"data_source": "sql", "query": "DROP TABLE x"}, "query must be a single SELECT"),
        ({"project_name": "  "}, "must not be empty"),
        ({"dvc_remote": "s3", "dvc_remote_url": "gs://bucket/x"}, "dvc_remote_url must start with s3://"),
        ({"dvc_remote": "azure", "dvc_remote_url": "azure://"}, "name a bucket or container"),
        ({"dvc_remote": "ftp"}, "Invalid choice"),
    ],
)
def test_invalid_answers_are_refused_with_their_message(tmp_path: Path, answers: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(tmp_path / "p", **answers)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("remote", ["local", "s3", "gs", "azure"])
def test_the_dvc_remote_answer_sets_the_remote_and_its_client(tmp_path: Path, remote: str) -> None:
    answers = {} if remote == "local" else {"dvc_remote": remote, "dvc_remote_url": f"{remote}://team-bucket/churn"}
    root = render(tmp_path / "p", **answers)
    config = (root / ".dvc" / "config").read_text()
    dependencies = tomllib.loads((root / "pyproject.toml").read_text())["dependency-groups"]["train"]
    dvc = next(dependency for dependency in dependencies if dependency.startswith("dvc"))
    readme = (root / "README.md").read_text()
    if remote == "local":
        assert "remote = local" in config
        assert "url = ../../churn-model-dvc-storage" in config
        assert dvc == "dvc>=3.50"
    else:
        assert f"remote = {remote}" in config
        assert f"url = {remote}://team-bucket/churn" in config
        assert dvc == f"dvc[{remote}]>=3.50"
        assert f"The DVC remote is `{remote}://team-bucket/churn`" in readme
    assert "secret" not in config.lower()


def test_slug_and_package_derive_from_the_name(tmp_path: Path) -> None:
    root = render(tmp_path / "p", project_name="  Fraud Detector 2!  ")
    stored = yaml.safe_load((root / ".copier-answers.yml").read_text())
    assert stored["project_slug"] == "fraud-detector-2"
    assert stored["package_name"] == "fraud_detector_2"
    assert (root / "src" / "fraud_detector_2" / "cli.py").exists()


def copier_cli(*args: str) -> subprocess.CompletedProcess[str]:
    copier = Path(sys.executable).parent / "copier"
    return subprocess.run([str(copier), *args], capture_output=True, text=True, check=False, timeout=300)


def test_stock_copier_without_trust_renders_and_says_what_to_run(tmp_path: Path) -> None:
    dest = tmp_path / "p"
    completed = copier_cli("copy", "--defaults", "--skip-tasks", "--vcs-ref", "HEAD", str(REPO), str(dest))
    assert completed.returncode == 0, completed.stderr
    assert (dest / "dvc.yaml").exists()
    assert not (dest / ".git").exists()
    message = completed.stdout + completed.stderr
    assert "Setup tasks did not run (they need --trust)" in message
    assert "git init --initial-branch=main && uv lock" in message
    assert "uv run dvc repro" in message


def test_prometheus_alert_rules_pass_promtool(tmp_path: Path) -> None:
    """The rules file is valid and each rule fires on its failure and not before (prometheus/alerts.test.yml)."""
    promtool = debian_tool("promtool", "prometheus")
    root = render(tmp_path / "p")
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        completed = subprocess.run(
            [promtool, *command], cwd=root / "prometheus", capture_output=True, text=True, check=False
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
