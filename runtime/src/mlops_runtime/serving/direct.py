"""A fitted model Pipeline called step by step on NumPy blocks: the service's fast path.

`direct_pipeline()` builds one only when it reproduces the Pipeline's output exactly on the
contract's examples, so a project's own features (any transformer) are always served correctly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
        answer_dataframe_checks_of_arrays()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled in another process (shadow mode's scorer): the same settings hold there."""
        self.__dict__.update(state)
        ignore_feature_name_warnings()
        answer_dataframe_checks_of_arrays()

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


# scikit-learn's helpers that ask narwhals whether an input is a DataFrame or a Series, and their answer for a
# plain NumPy array (not a frame; no feature names).
ARRAY_ANSWERS = {"_nw_into_df_or_series": False, "_get_feature_names": None}


def answer_dataframe_checks_of_arrays() -> None:
    """Answer scikit-learn's "is this a DataFrame?" at once for plain NumPy arrays, the direct path's input.

    scikit-learn (1.9 here) asks narwhals, on every transform, whether its input is a DataFrame or a Series,
    and for an array narwhals says no only after ~20 us of `inspect.getattr_static`: the default model asks
    about 20 times per call, a third of its time on a small batch (benchmarks/serving.py in copier-mlops).
    For a plain array the answer never changes, so it is given without asking; any other input is asked as
    before. Done once per process; a scikit-learn without these helpers is left as it is.
    """
    from sklearn.utils import validation

    for name, answer in ARRAY_ANSWERS.items():
        check = getattr(validation, name, None)
        if check is not None and not hasattr(check, "asks_for_other_inputs"):
            setattr(validation, name, answering_arrays(check, answer))


def answering_arrays(check: Callable[[Any], Any], answer: Any) -> Callable[[Any], Any]:
    """`check`, answering `answer` for a plain NumPy array without calling it."""
    import numpy as np

    def answered(value: Any) -> Any:
        return answer if type(value) is np.ndarray else check(value)

    answered.asks_for_other_inputs = check  # type: ignore[attr-defined]  # marks it: never wrapped twice
    return answered
