"""A window of the prediction log: the rows served, their labels, and the requests refused.

Rows that cannot be read (broken JSON, inputs that no longer fit the contract) are skipped
and counted, never fatal. Logs written before refusals were recorded still read. Features
the contract marks pii are never logged (serving/predlog.py): monitoring judges the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import StageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ..schema import Contract


@dataclass
class Window:
    """Served rows (features, outputs, latency, label when known) of one period, and its refusals."""

    start: float
    end: float
    features: pd.DataFrame  # contract columns, typed as the model sees them
    served: pd.DataFrame  # request_id, created_at, model_version, latency_ms, prediction, label
    probabilities: np.ndarray | None  # one column per class (classes order), classifiers only
    classes: list[str]
    corrupt: int
    refusals: pd.DataFrame | None  # created_at, reason, fields; None when the log has no refusals table

    def version(self, name: str) -> Window:
        """The part of this window served by one model version."""
        keep = (self.served["model_version"] == name).to_numpy()
        return Window(
            self.start,
            self.end,
            self.features[keep],
            self.served[keep],
            None if self.probabilities is None else self.probabilities[keep],
            self.classes,
            0,
            None,
        )


def monitored(contract: Contract) -> Contract:
    """The contract without its pii features, which the log never holds: the features monitoring can judge."""
    return replace(contract, features=tuple(column for column in contract.features if not column.pii))


def read_window(url: str, start: float, end: float, contract: Contract, task: str) -> Window:
    """The log's rows with created_at in [start, end), parsed against the contract's monitored features."""
    import pandas as pd
    import sqlalchemy as sa

    from ..metrics import is_classification
    from ..serving.predlog import feedback, log_exists, make_engine, predictions, refusals

    contract = monitored(contract)
    if not log_exists(url):
        return empty_window(start, end, contract, task)
    try:
        engine = make_engine(url)
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(predictions.name):
                return empty_window(start, end, contract, task)
            in_window = predictions.c.created_at.between(start, end) & (predictions.c.created_at < end)
            raw = pd.read_sql(sa.select(predictions).where(in_window).order_by(predictions.c.created_at), connection)
            labels = pd.read_sql(sa.select(feedback.c.request_id, feedback.c.label, feedback.c.id), connection)
            has_refusals = sa.inspect(connection).has_table(refusals.name)
            refused = (
                pd.read_sql(sa.select(refusals).where(refusals.c.created_at.between(start, end)), connection)
                if has_refusals
                else None
            )
        engine.dispose()
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as error:
        raise StageError(f"cannot read the prediction log {url!r}: {error}") from None
    inputs, outputs, corrupt = _decode(raw)
    rows = raw[corrupt == ""].reset_index(drop=True)
    features, reasons = contract.check_rows(pd.DataFrame.from_records(inputs, columns=contract.feature_names))
    rows = rows.loc[features.index].reset_index(drop=True)
    kept_outputs = [outputs[i] for i in features.index]
    label_of = latest_labels(labels)
    served = pd.DataFrame(
        {
            "request_id": rows["request_id"],
            "created_at": rows["created_at"].astype(float),
            "model_version": rows["model_version"].astype(str),
            "latency_ms": rows["latency_ms"].astype(float),
            "prediction": [output.get("prediction") for output in kept_outputs],
            "label": rows["request_id"].map(label_of),
        }
    )
    classes = [str(label) for label in contract.classes] if is_classification(task) else []
    probabilities = probability_matrix(kept_outputs, classes) if classes else None
    return Window(
        start,
        end,
        features.reset_index(drop=True),
        served,
        probabilities,
        classes,
        int((corrupt != "").sum()) + len(reasons),
        refused,
    )


def empty_window(start: float, end: float, contract: Contract, task: str) -> Window:
    """No log yet, or no predictions table in it: nothing served."""
    import pandas as pd

    from ..metrics import is_classification

    served = pd.DataFrame(columns=["request_id", "created_at", "model_version", "latency_ms", "prediction", "label"])
    features = pd.DataFrame({column.name: pd.Series(dtype=column.model_dtype) for column in contract.features})
    classes = [str(label) for label in contract.classes] if is_classification(task) else []
    return Window(start, end, features, served, None, classes, 0, None)


def _decode(raw: pd.DataFrame) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    """Inputs and outputs of the readable rows, and a reason (empty when fine) for every row."""
    import numpy as np

    inputs, outputs, reasons = [], [], []
    for text_in, text_out in zip(raw["input"], raw["output"], strict=True):
        try:
            row, output = json.loads(text_in), json.loads(text_out)
        except (TypeError, ValueError):
            reasons.append("not JSON")
            continue
        if not isinstance(row, dict) or not isinstance(output, dict):
            reasons.append("not an object")
            continue
        inputs.append(row)
        outputs.append(output)
        reasons.append("")
    return inputs, outputs, np.asarray(reasons, dtype=object)


def probability_matrix(outputs: list[dict[str, Any]], classes: list[str]) -> np.ndarray:
    """Logged answers' class probabilities, one column per class in `classes` order (NaN where one is missing)."""
    import numpy as np

    matrix = np.full((len(outputs), len(classes)), np.nan)
    for i, output in enumerate(outputs):
        probabilities = output.get("probabilities") or {}
        for j, name in enumerate(classes):
            value = probabilities.get(name)
            if isinstance(value, (int, float)):
                matrix[i, j] = value
    return matrix


def latest_labels(labels: pd.DataFrame) -> dict[str, Any]:
    """Each request's label (feedback rows: request_id, label, id): the last one posted, decoded."""
    latest = labels.sort_values("id").drop_duplicates("request_id", keep="last")
    return dict(zip(latest["request_id"], latest["label"].map(json_or_none), strict=True))


def json_or_none(text: Any) -> Any:
    """A logged JSON value, or None when it is not JSON."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None
