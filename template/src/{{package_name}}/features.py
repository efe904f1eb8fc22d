"""The feature pipeline, fitted inside the model artifact.

Training, batch prediction and serving all call the same fitted Pipeline, so there is
no second copy of this code to drift out of step. Edit `build_preprocessor` to derive your
own features: the service calls the fitted steps directly only when that gives the same output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The model's own transformer (DateParts) needs scikit-learn's base classes; this module is only
# imported where a model is built, loaded or served, which import scikit-learn anyway.
from sklearn.base import BaseEstimator, TransformerMixin

if TYPE_CHECKING:
    from mlops_runtime.schema import Contract
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline


SECONDS_PER_DAY = 86400.0
DATE_PARTS = ("year", "month", "day_of_week", "day_of_year", "hour", "days_since")


class DateParts(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Calendar features of dates given as seconds since 1970 (the contract's view of a datetime column).

    Per column: year, month, day of week (0 = Monday), day of year, hour (only when the training
    dates had times of day) and days since the earliest training date. A scikit-learn transformer
    on NumPy arrays, fitted inside the model, so serving and batch derive exactly what training did.
    Missing dates stay missing in every part (the imputer after it fills them).
    """

    def fit(self, x: Any, y: Any = None) -> DateParts:
        import numpy as np

        seconds = np.asarray(x, dtype="float64")
        self.n_features_in_ = seconds.shape[1]
        self.reference_ = np.nanmin(seconds, axis=0) if seconds.size else np.zeros(seconds.shape[1])
        self.reference_ = np.where(np.isfinite(self.reference_), self.reference_, 0.0)
        self.hours_ = [
            bool(np.nanmax(np.mod(column[np.isfinite(column)], SECONDS_PER_DAY), initial=0) > 0) for column in seconds.T
        ]
        return self

    def transform(self, x: Any) -> Any:
        import numpy as np

        seconds = np.asarray(x, dtype="float64")
        parts = []
        for index, column in enumerate(seconds.T):
            missing = ~np.isfinite(column)
            stamps = np.where(missing, 0, column).astype("int64").astype("datetime64[s]")
            days = stamps.astype("datetime64[D]")
            years = days.astype("datetime64[Y]")
            months = days.astype("datetime64[M]")
            values = {
                "year": years.astype("int64") + 1970,
                "month": (months - years).astype("int64") + 1,
                "day_of_week": (days.astype("int64") + 3) % 7,  # 1970-01-01 was a Thursday
                "day_of_year": (days - years).astype("int64") + 1,
                "hour": np.mod(column, SECONDS_PER_DAY) // 3600,
                "days_since": (column - self.reference_[index]) / SECONDS_PER_DAY,
            }
            for part in self._parts(index):
                parts.append(np.where(missing, np.nan, np.asarray(values[part], dtype="float64")))
        return np.column_stack(parts) if parts else np.empty((len(seconds), 0))

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        import numpy as np

        names = list(input_features) if input_features is not None else [f"x{i}" for i in range(self.n_features_in_)]
        return np.array([f"{name}_{part}" for index, name in enumerate(names) for part in self._parts(index)])

    def _parts(self, index: int) -> list[str]:
        return [part for part in DATE_PARTS if part != "hour" or self.hours_[index]]


def build_preprocessor(contract: Contract, scale: bool = True) -> ColumnTransformer:
    """Impute (with missing-value indicators) and scale numeric columns; one-hot encode categorical ones;
    dates become calendar features (DateParts), then are imputed and scaled like numbers.

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
    dates = Pipeline([("parts", DateParts()), *numeric_steps])
    return ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), contract.numeric_features),
            ("categorical", categorical, contract.categorical_features),
            ("datetime", dates, contract.datetime_features),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def build_model(contract: Contract, estimator: Any, scale: bool = True) -> Pipeline:
    """The whole model: features + estimator, one object to fit, log, load and serve."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("features", build_preprocessor(contract, scale=scale)), ("estimator", estimator)])
