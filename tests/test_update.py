"""`copier update`: a project rendered at v1 and edited by its user moves to v2 of the template."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import REPO, project_env, render

IGNORED = shutil.ignore_patterns(".git", ".venv", ".nox", ".pytest_cache", ".ruff_cache", "__pycache__", "*.pyc")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=project_env(), capture_output=True, text=True, check=True).stdout


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "--all")
    git(cwd, "commit", "-q", "-m", message)


def test_update_keeps_user_edits_and_brings_template_changes(tmp_path: Path) -> None:
    template = tmp_path / "template-repo"
    shutil.copytree(REPO, template, ignore=IGNORED)
    git(template, "init", "-q")
    commit_all(template, "v1")
    git(template, "tag", "v1")

    project = tmp_path / "project"
    render_at(template, project, "v1")
    git(project, "init", "-q")
    commit_all(project, "generated at v1")
    params_file = project / "params.yaml"
    params_file.write_text(params_file.read_text().replace("  importance_repeats: 5", "  importance_repeats: 9"))
    (project / "NOTES.md").write_text("my own notes\n")
    contract = project / "schema.yaml"  # reviewed by the user: theirs from now on
    reviewed = contract.read_text().replace("min: 18.0, max: 90.0", "min: 16.0, max: 99.0")
    contract.write_text(reviewed)
    commit_all(project, "user edits")

    template_contract = template / "template" / "{% if data_source == 'sample' %}schema.yaml{% endif %}.jinja"
    template_contract.write_text(template_contract.read_text().replace("max: 120.0}", "max: 240.0}"))
    noxfile = template / "template" / "noxfile.py.jinja"
    noxfile.write_text(
        noxfile.read_text()
        + '\n\n@nox.session(python=False)\ndef docs(session: nox.Session) -> None:\n    """Build the docs."""\n'
        + '    uv_run(session, "python", "-c", "print(1)")\n'
    )
    commit_all(template, "v2: a docs session, a wider tenure range")
    git(template, "tag", "v2")

    completed = subprocess.run(
        [sys.executable, "-m", "generator", "update", str(project), "--vcs-ref", "v2"],
        cwd=REPO,
        env=project_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr

    assert "def docs(" in (project / "noxfile.py").read_text()  # the template's change landed
    assert "importance_repeats: 9" in params_file.read_text()  # the user's edit survived
    assert (project / "NOTES.md").read_text() == "my own notes\n"
    assert contract.read_text() == reviewed  # _skip_if_exists: the reviewed contract is never overwritten
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v2"
    assert "<<<<<<<" not in params_file.read_text()


def render_at(template: Path, project: Path, ref: str) -> None:
    import copier

    copier.run_copy(str(template), project, defaults=True, vcs_ref=ref, unsafe=True, skip_tasks=True, quiet=True)


def test_update_of_a_dirty_project_is_one_clear_error(tmp_path: Path) -> None:
    project = render(tmp_path / "p")
    git(project, "init", "-q")
    commit_all(project, "generated")
    (project / "params.yaml").write_text("task: regression\n")  # uncommitted
    completed = subprocess.run(
        [sys.executable, "-m", "generator", "update", str(project)],
        cwd=REPO,
        env=project_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith("copier-mlops: error:")
    assert "Traceback" not in completed.stderr
