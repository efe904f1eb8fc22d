"""Shared helpers: render the template from this git checkout, run commands in a project."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .stack import Stack, running_stack

REPO = Path(__file__).resolve().parents[1]

# Commits made by copier tasks and by DVC need an identity; CI machines may have none.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "copier-mlops tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "copier-mlops tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first: the test marked `longest`, then the end-to-end tests, then the rest (a stable sort).

    xdist hands tests to its workers in this order, each taking the next when it is nearly done; long
    tests started last would keep one worker busy alone while the other has nothing left to run.
    """
    items.sort(key=start_rank)


def start_rank(item: pytest.Item) -> int:
    if item.get_closest_marker("longest"):
        return 0
    return 1 if item.get_closest_marker("e2e") else 2


@pytest.fixture(autouse=True, scope="session")
def _git_identity() -> None:
    for key, value in GIT_IDENTITY.items():
        os.environ.setdefault(key, value)


@functools.cache
def template_source() -> Path:
    """A git copy of this checkout, its uncommitted work committed: what the tests render.

    A project depends on mlops-runtime at the commit it was rendered from (a uv git source); copier's commit
    of a dirty checkout's work exists only in copier's own temporary clone, so a project rendered from it
    could not install the library.
    """
    from .repo_copy import copy_repository

    folder = Path(tempfile.mkdtemp(prefix="copier-mlops-source-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return copy_repository(folder / "copier-mlops")


def render(dest: Path, tasks: bool = False, **data: Any) -> Path:
    """Render this checkout (HEAD plus any uncommitted work) with the given answers."""
    import copier

    copier.run_copy(
        str(template_source()),
        dest,
        data=data,
        defaults=True,
        vcs_ref="HEAD",
        unsafe=True,
        skip_tasks=not tasks,
        quiet=True,
    )
    return dest


def project_env() -> dict[str, str]:
    """The environment for commands inside a generated project: its own uv venv, not ours."""
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    env.update(GIT_IDENTITY)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    # Each xdist worker's share of the cores. OpenMP code (histogram boosting) on every core in two projects at
    # once spins against itself: an evaluate stage took 58 s beside another, 18 s with one thread each.
    for variable in THREAD_VARIABLES:
        env.setdefault(variable, str(cores_per_worker()))
    return env


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cores_per_worker() -> int:
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


# A hung command fails its test instead of CI's 90 minutes; several times the slowest quiet figure (a project's
# whole `nox`, about 7 minutes), so a busy machine is not a failure.
RUN_TIMEOUT = 2700


def run(
    command: list[str], cwd: Path, check: bool = True, timeout: int = RUN_TIMEOUT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command in a generated project (`env` added to its environment); on failure show its whole output."""
    completed = subprocess.run(
        command, cwd=cwd, env=project_env() | (env or {}), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and completed.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {completed.returncode}\n--- stdout\n{completed.stdout}\n"
            f"--- stderr\n{completed.stderr}"
        )
    return completed


def install(root: Path) -> None:
    """`uv sync` in a generated project, without compiling every module ahead: a test imports a small part of
    what it installs (compiling all 13,000 files took 17 s a project; the sample end to end does it, as the
    README says)."""
    run(["uv", "sync", "--frozen", "--quiet"], root)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """PostgreSQL, S3 and the MLflow server, started once (tests that use it share the xdist group "stack")."""
    with running_stack() as services:
        yield services
