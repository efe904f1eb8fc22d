"""A fitted model Pipeline called step by step on NumPy blocks: the service's fast path.

`direct_pipeline()` builds one only when it reproduces the Pipeline's output exactly on the
contract's examples, so a project's own features (any transformer) are always served correctly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ..schema import Contract

Columns = Mapping[str, "np.ndarray"]  # one array per feature: `Contract.columns()`


class DirectPipeline:
    """A fitted model Pipeline, called step by step on NumPy blocks: same objects, same output.

    For a small request, building a DataFrame and ColumnTransformer's bookkeeping (finding
    columns by name, checking feature names, dispatching through joblib, stacking) cost more
    than the transformers' own work. This takes the request's columns as arrays, calls each
    fitted transformer of the artifact on its own columns, then the estimator, so nothing is
    refitted or re-implemented; the service spends its CPU on requests instead.
    `direct_pipeline()` builds one only when it reproduces the Pipeline's output exactly.
    """

    def __init__(self, blocks: list[tuple[list[str], list[Any]]], steps: list[Any], estimator: Any) -> None:
        self.blocks = blocks  # (the columns, the fitted steps that transform them in turn)
        self.steps = steps
        self.estimator = estimator
        ignore_feature_name_warnings()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled in another process (shadow mode's scorer): the same warnings are ignored there."""
        self.__dict__.update(state)
        ignore_feature_name_warnings()

    @property
    def classes_(self) -> Any:
        return self.estimator.classes_

    def transform(self, features: Columns) -> Any:
        import numpy as np

        parts = []
        for columns, steps in self.blocks:
            block = np.column_stack([features[column] for column in columns])
            for step in steps:
                block = step.transform(block)
            parts.append(block)
        stacked = np.hstack(parts)
        for step in self.steps:
            stacked = step.transform(stacked)
        return stacked

    def predict(self, features: Columns) -> Any:
        return self.estimator.predict(self.transform(features))

    def predict_proba(self, features: Columns) -> Any:
        return self.estimator.predict_proba(self.transform(features))


def direct_pipeline(model: Any, contract: Contract) -> DirectPipeline | None:
    """`model`'s direct path, or None unless it has build_model's shape and matches it on the contract's
    examples exactly (the arrays a request brings against the Pipeline on their DataFrame)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not (isinstance(model, Pipeline) and isinstance(model.steps[0][1], ColumnTransformer)):
        return None
    features = model.steps[0][1]
    if features.sparse_output_:
        return None
    blocks = []
    for _name, transformer, columns in features.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if not (isinstance(columns, list) and all(isinstance(column, str) for column in columns)):
            return None  # columns chosen by position, slice or callable: leave it to the Pipeline
        if columns:
            blocks.append((columns, fitted_steps(transformer)))
    steps = [step for _name, middle in model.steps[1:-1] for step in fitted_steps(middle)]
    direct = DirectPipeline(blocks, steps, model.steps[-1][1])
    method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
    examples = contract.example_records()
    try:
        same = np.array_equal(
            getattr(direct, method)(contract.columns(examples)), getattr(model, method)(contract.frame(examples))
        )
    except Exception:  # a transformer that needs a DataFrame: the Pipeline serves
        return None
    return direct if same else None


def fitted_steps(transformer: Any) -> list[Any]:
    """The transformers `transformer` applies in turn: a Pipeline's own steps (its per-call checks are
    then skipped), none for "passthrough"."""
    from sklearn.pipeline import Pipeline

    if isinstance(transformer, Pipeline):
        return [step for _name, inner in transformer.steps for step in fitted_steps(inner)]
    if transformer is None or (isinstance(transformer, str) and transformer == "passthrough"):
        return []
    return [transformer]


def ignore_feature_name_warnings() -> None:
    """The transformers were fitted on named columns and see arrays here, on purpose: sklearn would warn on
    every call (and write to the service's log each time)."""
    import warnings

    warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
