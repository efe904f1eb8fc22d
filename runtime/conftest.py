"""The library's checks, in this repository, run against the default project rendered from this checkout."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

from mlops_runtime.testing import Project

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The default answers' project (sample data, binary task), its package importable from its src folder."""
    import copier

    root = tmp_path_factory.mktemp("project") / "churn"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copier warns that the checkout has uncommitted work: it is rendered too
        copier.run_copy(str(REPO), root, defaults=True, vcs_ref="HEAD", unsafe=True, skip_tasks=True, quiet=True)
    sys.path.insert(0, str(root / "src"))
    return Project("churn_model", root).registered()
