"""The checks run the CLI of the project under test (the fixture `project` of mlops_runtime.testing)."""

import pytest

from mlops_runtime.cli import project_app
from mlops_runtime.testing import Project


@pytest.fixture(autouse=True, scope="session")
def _cli_of_the_project(project: Project) -> None:
    project_app(project.package)
