"""`copier update` between tagged versions of a temporary copy of this repository, as real projects meet it.

The copy (this checkout, its uncommitted work included) is tagged v1.0.0. v2.0.0 changes the template on
purpose: a new nox session, a wider sample contract, a changed line of params.yaml, the question
`description` renamed `summary` and prometheus/alerts.yml moved to prometheus/rules.yml, each carried over by
a `_migrations` entry (generator/migrate.py). v2.0.1 adds a line to the README. Projects rendered at v1.0.0
and edited by their users are updated with stock `copier update --trust --defaults` and `copier-mlops update`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, install, project_env, render, run
from .repo_copy import copy_repository, git

V1, V2, V3 = "v1.0.0", "v2.0.0", "v2.0.1"
DESCRIPTION = "Predicts which customers leave"
COPIER = str(Path(sys.executable).parent / "copier")
SAMPLE_CONTRACT = "{% if data_source == 'sample' %}schema.yaml{% endif %}.jinja"
MIGRATE = '["{{ _copier_python }}", "{{ _copier_conf.src_path }}/generator/migrate.py"'
MIGRATIONS = f"""
  # updates from a version older than v2.0.0 only
  - version: v2.0.0
    when: "{{{{ _stage == 'before' }}}}"
    command: {MIGRATE}, "rename-answer", "description", "summary"]
  - version: v2.0.0
    command: {MIGRATE}, "move-file", "prometheus/alerts.yml", "prometheus/rules.yml"]
"""
DOCS_SESSION = '''

@nox.session(python=False)
def docs(session: nox.Session) -> None:
    """Build the docs."""
    uv_run(session, "python", "-c", "print(1)")
'''
MARKERS = "<<<<<<< before updating\n  validation_size: 0.3\n=======\n  validation_size: 0.25\n>>>>>>> after updating\n"


def edit(path: Path, old: str, new: str) -> None:
    """Replace text that must be there: if the template changes under this test, it fails here, loudly."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "--all")
    git(cwd, "commit", "--quiet", "--no-verify", "-m", message)


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary copy of this repository with three releases: v1.0.0 (as it is), v2.0.0 and v2.0.1."""
    repo = copy_repository(tmp_path_factory.mktemp("update") / "copier-mlops")
    git(repo, "tag", V1)
    template = repo / "template"
    (template / "noxfile.py.jinja").write_text((template / "noxfile.py.jinja").read_text() + DOCS_SESSION)
    edit(template / SAMPLE_CONTRACT, "min: 0.0, max: 120.0,", "min: 0.0, max: 240.0,")
    edit(template / "params.yaml.jinja", "  validation_size: 0.2\n", "  validation_size: 0.25\n")
    edit(repo / "copier.yml", "\ndescription:\n", "\nsummary:\n")
    git(repo, "mv", "template/prometheus/alerts.yml.jinja", "template/prometheus/rules.yml.jinja")
    edit(template / "prometheus" / "rules.yml.jinja", "90 * 86400", "60 * 86400")
    edit(template / "prometheus" / "alerts.test.yml", "- alerts.yml", "- rules.yml")
    renamed = 0
    for path in (path for path in template.rglob("*") if path.is_file()):
        text = path.read_text()
        new = text.replace("{{ description", "{{ summary").replace("prometheus/alerts.yml", "prometheus/rules.yml")
        if new != text:
            path.write_text(new)
            renamed += "{{ summary" in new
    assert renamed >= 2  # pyproject.toml and README.md use the renamed answer
    edit(repo / "copier.yml", "\n_migrations:\n", "\n_migrations:" + MIGRATIONS)
    commit_all(repo, "v2.0.0: a docs session, a wider tenure range, description -> summary, alerts.yml -> rules.yml")
    git(repo, "tag", V2)
    (template / "README.md.jinja").write_text((template / "README.md.jinja").read_text() + "\nRelease 2.0.1.\n")
    commit_all(repo, "v2.0.1: a README line")
    git(repo, "tag", V3)
    return repo


def new_project(template_repo: Path, dest: Path, **data: str) -> Path:
    """A project rendered at v1.0.0 and committed, as its user starts with it."""
    import copier

    copier.run_copy(
        str(template_repo), dest, data=data, defaults=True, vcs_ref=V1, unsafe=True, skip_tasks=True, quiet=True
    )
    git(dest, "init", "--quiet")
    commit_all(dest, "generated at v1.0.0")
    return dest


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "generator", *args],
        cwd=REPO,
        env=project_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def answers(project: Path) -> dict[str, str]:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def test_update_keeps_user_edits_brings_template_changes_and_migrates(template_repo: Path, tmp_path: Path) -> None:
    project = new_project(template_repo, tmp_path / "project", description=DESCRIPTION)
    params = project / "params.yaml"
    edit(params, "  importance_repeats: 5", "  importance_repeats: 9")
    (project / "NOTES.md").write_text("my own notes\n")
    contract = project / "schema.yaml"  # reviewed by the user: theirs from now on
    edit(contract, "min: 18.0, max: 90.0", "min: 16.0, max: 99.0")
    reviewed = contract.read_text()
    edit(project / "prometheus" / "alerts.yml", "for: 10m", "for: 20m")  # in the file that v2.0.0 moves
    commit_all(project, "user edits")

    update = run([COPIER, "update", "--trust", "--defaults", "--vcs-ref", V2], project)  # stock copier
    output = update.stdout + update.stderr
    assert "def docs(" in (project / "noxfile.py").read_text()  # the template's changes landed
    assert "  validation_size: 0.25\n" in params.read_text()
    assert "importance_repeats: 9" in params.read_text()  # the user's edits survived
    assert (project / "NOTES.md").read_text() == "my own notes\n"
    assert contract.read_text() == reviewed  # _skip_if_exists: the reviewed contract is never overwritten
    assert answers(project)["_commit"] == V2
    assert not git(project, "diff", "--name-only", "--diff-filter=U")  # no conflict
    # The migrations ran: the renamed question kept its answer, the moved file kept the user's edit.
    assert "migrate.py" in output
    assert answers(project)["summary"] == DESCRIPTION
    assert "description" not in answers(project)
    assert f'description = "{DESCRIPTION}"' in (project / "pyproject.toml").read_text()
    assert not (project / "prometheus" / "alerts.yml").exists()
    rules = (project / "prometheus" / "rules.yml").read_text()
    assert "for: 20m" in rules  # the user's edit ...
    assert "60 * 86400" in rules  # ... merged with the template's change to the moved file
    assert "<<<<<<<" not in rules
    commit_all(project, "update to v2.0.0")

    update = cli("update", str(project))  # to the newest release, v2.0.1: the v2.0.0 migrations do not run again
    assert update.returncode == 0, update.stderr
    assert "migrate.py" not in update.stdout + update.stderr
    assert answers(project)["_commit"] == V3
    assert answers(project)["summary"] == DESCRIPTION
    assert "Release 2.0.1." in (project / "README.md").read_text()
    assert "for: 20m" in (project / "prometheus" / "rules.yml").read_text()
    commit_all(project, "update to v2.0.1")

    update = cli("update", str(project), "--vcs-ref", ":current:", "--data", "license=Apache-2.0")  # an answer only
    assert update.returncode == 0, update.stderr
    assert answers(project)["_commit"] == V3
    assert "Apache License" in (project / "LICENSE").read_text()
    assert "importance_repeats: 9" in params.read_text()


def test_update_conflict_is_left_inline_and_listed(template_repo: Path, tmp_path: Path) -> None:
    project = new_project(template_repo, tmp_path / "project")
    params = project / "params.yaml"
    edit(params, "  validation_size: 0.2\n", "  validation_size: 0.3\n")  # the line v2.0.0 changes
    commit_all(project, "user edit")

    run([COPIER, "update", "--trust", "--defaults", "--vcs-ref", V2], project)  # stock copier: inline markers
    assert MARKERS in params.read_text()
    git(project, "reset", "--quiet", "--hard")
    git(project, "clean", "-fdq")

    update = cli("update", str(project), "--vcs-ref", V2)
    assert update.returncode == 1
    assert "Traceback" not in update.stderr
    lines = update.stderr.splitlines()
    (first,) = (line for line in lines if line.startswith("copier-mlops: error:"))
    how = lines[lines.index(first) + 1 :]
    assert first.startswith("copier-mlops: error: the update to template version v2.0.0 left 1 conflicted file(s)")
    assert first.endswith(": params.yaml")
    assert "    <<<<<<< before updating" in how
    assert any("`git add`" in line for line in how)
    assert MARKERS in params.read_text()  # both versions of the line: nothing is silently lost
    assert git(project, "diff", "--name-only", "--diff-filter=U").split() == ["params.yaml"]


@pytest.mark.e2e
def test_update_with_data_switches_the_library_and_the_project_still_runs(template_repo: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    source = ["--template", str(template_repo), "--vcs-ref", V1]
    new = cli("new", str(project), "--defaults", *source, "--data", f"description={DESCRIPTION}")
    assert new.returncode == 0, new.stderr  # setup tasks: git init, uv lock, first commit
    report = cli("check", "--quick", str(project))
    assert report.returncode == 0, report.stdout + report.stderr
    assert f"template            {V1} from {template_repo}; a newer release is available: {V3}" in report.stdout
    assert "uv.lock             ok" in report.stdout
    assert "dvc.yaml            ok" in report.stdout

    edit(project / "params.yaml", "    n_trials: 8 ", "    n_trials: 2 ")  # a quick pipeline
    edit(project / "params.yaml", "max_time_share: 0.9 ", "max_time_share: 1.0 ")  # a timed rule: off on a busy machine
    contract = project / "schema.yaml"
    edit(contract, "min: 18.0, max: 90.0", "min: 16.0, max: 99.0")
    reviewed = contract.read_text()
    commit_all(project, "user edits")
    # What the pipeline and the service leave, all outside git: an update touches none of it.
    owned = {"data/raw/data.parquet": "rows", "models/model/MLmodel": "a model", "mlflow.db": "runs"}
    owned["predictions.db"] = "the prediction log"
    for name, content in owned.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(content)

    update = cli("update", str(project), "--data", "model_library=lightgbm")
    assert update.returncode == 0, update.stdout + update.stderr
    assert re.search(r"^\$ \S*uv lock$", update.stdout, flags=re.MULTILINE)  # pyproject.toml changed: relocked
    for name, content in owned.items():
        assert (project / name).read_text() == content, name
    assert contract.read_text() == reviewed
    assert answers(project)["model_library"] == "lightgbm"
    assert answers(project)["summary"] == DESCRIPTION  # the v2.0.0 migration ran under copier-mlops too
    assert answers(project)["_commit"] == V3
    assert '"lightgbm>=' in (project / "pyproject.toml").read_text()  # the new library is a dependency
    assert 'name = "lightgbm"' in (project / "uv.lock").read_text()
    params = (project / "params.yaml").read_text()
    assert "    lightgbm:\n" in params
    assert "hist_gradient_boosting" not in params  # the old library's candidate is gone
    assert "    n_trials: 2 " in params  # the user's edit survived
    for name in ("data/raw", "models", "mlflow.db", "predictions.db"):
        path = project / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    commit_all(project, "update: lightgbm")

    run(["uv", "lock", "--check"], project)
    install(project)
    repro = run(["uv", "run", "--frozen", "dvc", "repro"], project)
    assert "[lightgbm] trial 2/2" in repro.stdout + repro.stderr

    report = cli("check", "--quick", str(project))
    assert report.returncode == 0, report.stdout + report.stderr
    assert f"template            {V3} from {template_repo}, the newest release" in report.stdout
    edit(project / "dvc.yaml", "stages:\n", "stages:\n  broken: [\n")
    edit(project / ".copier-answers.yml", "model_library:", "model_librari: xgboost\nmodel_library:")
    edit(project / "pyproject.toml", "dependencies = [\n", 'dependencies = [\n    "tomli-w>=1.0",\n')
    report = cli("check", "--quick", str(project))
    assert report.returncode == 1
    assert report.stderr.startswith(f"copier-mlops: error: {project}: .copier-answers.yml, uv.lock, dvc.yaml not in")
    assert "answers no question of its template version: model_librari" in report.stdout
    assert "run `uv lock`" in report.stdout
    assert "DVC cannot read the pipeline" in report.stdout


def test_update_mistakes_are_one_clear_error(tmp_path: Path) -> None:
    project = render(tmp_path / "p")
    git(project, "init", "-q")
    commit_all(project, "generated")
    for args, message in [
        (["-d", "modl_library=lightgbm"], "unknown answer modl_library"),  # copier would ignore it
        ([], "has uncommitted changes (params.yaml): commit or stash them"),  # after the edit below
    ]:
        completed = cli("update", str(project), *args)
        assert completed.returncode == 1
        errors = [line for line in completed.stderr.splitlines() if line.startswith("copier-mlops: error:")]
        assert len(errors) == 1, completed.stderr
        assert message in errors[0]
        assert "Traceback" not in completed.stderr
        (project / "params.yaml").write_text("task: regression\n")  # uncommitted


# The last commit before the machinery moved into the library mlops-runtime (the layout of v0.2.0).
COPIED_LAYOUT = "1479f46"
USER_ROUTE = """
    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

"""


@pytest.mark.e2e
def test_a_project_with_the_copied_machinery_moves_into_the_library_layout(tmp_path: Path) -> None:
    """v0.2.0 copied the machinery into each project; v0.3.0 imports it. The update removes the files the
    library now provides, keeps the user's edited ones under legacy/ with a note, keeps every other edit, and
    the project then runs its pipeline, serves (with the user's route, carried to serving.py) and monitors."""
    import copier

    from .test_e2e import FEEDBACK_TOKEN, free_port, http, serving, shifted_traffic

    repo = copy_repository(tmp_path / "copier-mlops")
    git(repo, "tag", "v0.2.0", COPIED_LAYOUT)
    git(repo, "tag", "v0.3.0")
    project = tmp_path / "churn"
    copier.run_copy(str(repo), project, defaults=True, vcs_ref="v0.2.0", unsafe=True, quiet=True)  # tasks: git, uv lock
    package = project / "src" / "churn_model"
    edit(package / "features.py", 'strategy="median"', 'strategy="mean"')  # the user's preprocessor
    edit(project / "params.yaml", "    n_trials: 8 ", "    n_trials: 2 ")
    edit(project / "params.yaml", "max_time_share: 0.9 ", "max_time_share: 1.0 ")  # a timed rule: off on a busy machine
    edit(package / "serving" / "app.py", "    return app\n", USER_ROUTE + "    return app\n")
    edited_app = (package / "serving" / "app.py").read_text()
    commit_all(project, "user edits")

    update = cli("update", str(project), "--vcs-ref", "v0.3.0")
    output = update.stdout + update.stderr
    assert update.returncode == 0, output
    assert "your versions are kept in legacy/ (src/churn_model/serving/app.py)" in output
    assert (project / "legacy" / "src" / "churn_model" / "serving" / "app.py").read_text() == edited_app
    assert "Carry each change to its place" in (project / "legacy" / "README.md").read_text()
    assert not (package / "serving").exists()  # the module serving.py takes its place
    assert not (package / "tuning.py").exists()
    assert not (project / "legacy" / "src" / "churn_model" / "tuning.py").exists()  # never edited: gone
    features = (package / "features.py").read_text()
    assert 'strategy="mean"' in features
    assert "class DirectPipeline" not in features  # the library's now
    assert "    n_trials: 2 " in (project / "params.yaml").read_text()
    assert answers(project)["_commit"] == "v0.3.0"

    # The user carries the route to the project's serving module.
    edit(package / "serving.py", "    return app\n", USER_ROUTE + "    return app\n")
    commit_all(project, "update to v0.3.0")
    install(project)
    repro = run(["uv", "run", "--frozen", "dvc", "repro"], project)
    assert "[random_forest] trial 2/2" in repro.stdout + repro.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = {"SERVE_URL": base, "SERVE_PREDICTION_LOG_URL": "sqlite:///served.db"}
    with serving(project, port, SERVE_FEEDBACK_TOKEN=FEEDBACK_TOKEN, **settings):
        assert http("GET", f"{base}/hello") == (200, {"hello": "world"})
        shifted_traffic(project, base, rows=600, labelled=0.5, seed=1)
        monitor = run(["uv", "run", "--frozen", "churn_model", "monitor"], project, check=False, env=settings)
    assert monitor.returncode in (0, 3), monitor.stdout + monitor.stderr  # 3: drift alerts, as the traffic shifted
    assert "Traceback" not in monitor.stderr
    assert sorted((project / "reports" / "monitoring").glob("*/summary.json"))
