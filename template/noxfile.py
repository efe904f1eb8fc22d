"""Project sessions. Each runs inside the project's uv environment: `uv run nox -s NAME`."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


def uv_run(session: nox.Session, *args: str) -> None:
    session.run("uv", "run", "--frozen", *args, external=True)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    uv_run(session, "ruff", "check", ".")
    uv_run(session, "ruff", "format", "--check", ".")


@nox.session(python=False)
def typecheck(session: nox.Session) -> None:
    """mypy on the package."""
    uv_run(session, "mypy", "src")


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The test suite; extra arguments go to pytest."""
    uv_run(session, "pytest", *session.posargs)


@nox.session(python=False)
def pipeline(session: nox.Session) -> None:
    """Run the DVC pipeline (only the stages whose inputs changed)."""
    uv_run(session, "dvc", "repro", *session.posargs)
