"""A fitted model Pipeline called step by step on NumPy blocks: the service's fast path.

`direct_pipeline()` builds one only when it reproduces the Pipeline's output exactly on the
contract's examples, so a project's own features (any transformer) are always served correctly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class DirectPipeline:
    """A fitted model Pipeline, called step by step on NumPy blocks: same objects, same output.

    For a small request, ColumnTransformer's bookkeeping (finding columns by name, checking
    feature names, dispatching through joblib, stacking) costs more than its transformers'
    own work. This calls each fitted
    transformer of the artifact on its own columns as an array, then the estimator, so
    nothing is refitted or re-implemented; the service spends its CPU on requests instead.
    `direct_pipeline()` builds one only when it reproduces the Pipeline's output exactly.
    """

    def __init__(self, blocks: list[tuple[Any, list[str]]], steps: list[Any], estimator: Any) -> None:
        self.blocks = blocks
        self.steps = steps
        self.estimator = estimator

    @property
    def classes_(self) -> Any:
        return self.estimator.classes_

    def transform(self, frame: pd.DataFrame) -> Any:
        import numpy as np

        parts = []
        for transformer, columns in self.blocks:
            block = np.column_stack([frame[column].to_numpy() for column in columns])
            parts.append(block if transformer == "passthrough" else transformer.transform(block))
        features = np.hstack(parts)
        for step in self.steps:
            features = step.transform(features)
        return features

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.estimator.predict(self.transform(frame))

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        return self.estimator.predict_proba(self.transform(frame))


def direct_pipeline(model: Any, examples: pd.DataFrame) -> DirectPipeline | None:
    """`model`'s direct path, or None unless it has build_model's shape and matches it on `examples` exactly."""
    import warnings

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
            blocks.append((transformer, columns))
    steps = [step for _name, step in model.steps[1:-1]]
    direct = DirectPipeline(blocks, steps, model.steps[-1][1])
    # The transformers were fitted on named columns and now see arrays, on purpose.
    warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
    method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
    try:
        same = np.array_equal(getattr(direct, method)(examples), getattr(model, method)(examples))
    except Exception:  # a transformer that needs a DataFrame: the Pipeline serves
        return None
    return direct if same else None
