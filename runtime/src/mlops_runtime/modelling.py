"""The project's model, as the library's training, tuning and evaluation take it.

A project describes its candidate families and its features once (`<package>/model.py`
builds a `ProjectModels` from its estimators.py and features.py); the library never imports
project code by name, so the project stays free to organise that code as it likes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StageError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from .schema import Contract

MakeEstimator = Callable[[str, str, dict[str, Any], int], Any]  # family, task, hyperparameters, seed
BuildModel = Callable[..., "Pipeline"]  # (contract, estimator, scale=...) -> features + estimator


@dataclass(frozen=True)
class ProjectModels:
    """The candidate families a project tunes, and how one becomes a whole model (features + estimator)."""

    package: str  # the project's import name: tuning's worker processes run its CLI
    families: Sequence[str]
    make_estimator: MakeEstimator
    build_model: BuildModel
    needs_scaling: frozenset[str] = frozenset()  # families whose inputs are scaled
    runtime_packages: Sequence[str] = ()  # what a saved model needs besides scikit-learn (pip requirements)
    code_files: Sequence[Path] = ()  # the project files whose code decides a trial's score

    def make_model(
        self, family: str, task: str, hyperparameters: dict[str, Any], seed: int, contract: Contract
    ) -> Pipeline:
        """A fresh, unfitted model of `family`: the project's features around its estimator."""
        if family not in self.families:
            raise StageError(f"unknown model family {family!r}; this project has {', '.join(self.families)}.")
        estimator = self.make_estimator(family, task, hyperparameters, seed)
        return self.build_model(contract, estimator, scale=family in self.needs_scaling)
