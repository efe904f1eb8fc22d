"""Stage prepare: clean the data and split it into train, validation and test (data/prepared/)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_runtime.stages import prepare

if TYPE_CHECKING:
    from mlops_runtime.params import Params
    from mlops_runtime.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    return prepare.run(params, paths)
