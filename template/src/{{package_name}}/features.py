"""The feature pipeline, fitted inside the model artifact.

Training, batch prediction and serving all call the same fitted Pipeline, so there is
no second copy of this code to drift out of step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from .schema import Contract


def build_preprocessor(contract: Contract, scale: bool = True) -> ColumnTransformer:
    """Impute (with missing-value indicators) and scale numeric columns; one-hot encode categorical ones.

    The encoder gives missing values a column of their own and ignores categories it never
    saw, so serving never fails on them; the contract decides what is allowed in.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median", add_indicator=True))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    categorical = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    return ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), contract.numeric_features),
            ("categorical", categorical, contract.categorical_features),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def build_model(contract: Contract, estimator: Any, scale: bool = True) -> Pipeline:
    """The whole model: features + estimator, one object to fit, log, load and serve."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("features", build_preprocessor(contract, scale=scale)), ("estimator", estimator)])
