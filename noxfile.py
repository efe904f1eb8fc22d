"""Sessions of copier-mlops. Run with `uv run nox -s NAME`; each uses this project's uv environment."""

import nox

nox.options.sessions = ["lint", "tests"]


def uv_run(session: nox.Session, *args: str) -> None:
    session.run("uv", "run", "--frozen", *args, external=True)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """Ruff on this repository; the render tests lint every rendered combination."""
    uv_run(session, "ruff", "check", ".")
    uv_run(session, "ruff", "format", "--check", ".")
    uv_run(session, "pytest", "-q", "tests/test_render.py", "-k", "lint")


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Fast tests: render matrix, CLI, repository checks."""
    uv_run(session, "pytest", "-q", "-m", "not e2e", *session.posargs)


@nox.session(python=False)
def e2e(session: nox.Session) -> None:
    """End-to-end tests: install generated projects and run their pipelines."""
    uv_run(session, "pytest", "-q", "-n", "2", "-m", "e2e", *session.posargs)


@nox.session(python=False)
def update(session: nox.Session) -> None:
    """Template update tests (copier update from one version to the next)."""
    uv_run(session, "pytest", "-q", "-k", "update", *session.posargs)


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: JSON figures on stdout."""
    uv_run(session, "python", "benchmarks/pipeline.py", *session.posargs)


@nox.session(python=False)
def demo(session: nox.Session) -> None:
    """The Quickstart's main job."""
    uv_run(session, "copier-mlops", "demo", *(session.posargs or ["/tmp/mlops-demo"]))
