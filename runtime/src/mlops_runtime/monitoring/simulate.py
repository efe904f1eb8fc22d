"""Production traffic on demand: rows like the training data, optionally changed by a scenario.

The rows come from the sample generator (sample source: fresh draws from the true
distribution) or from the training split (file and SQL sources: the distribution the model's
reference profile describes). Scenarios: none; shift (numeric
features move by `amount` standard deviations: the sample generator moves them before it draws
the labels, so labels follow the inputs; for other sources the rows' values move, within the
contract's ranges); category_mix (a share `amount` of rows is drawn from a feature's rarest
category); missing (a share `amount` of nullable features go missing); correlation (two numeric
features move together, their marginals unchanged); concept (inputs unchanged, a share `amount`
of the labels change). Rows go to a running service over HTTP, or straight into the
prediction log (fast, same model, same contract).
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..files import plain

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

    from ..schema import Contract
    from ..serving.loader import LoadedModel

SCENARIOS = ("none", "shift", "category_mix", "missing", "correlation", "concept")


@dataclass(frozen=True)
class Scenario:
    name: str = "none"
    features: tuple[str, ...] = ()  # empty: the scenario's default features
    amount: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise StageError(f"unknown scenario {self.name!r}; choose one of {', '.join(SCENARIOS)}.")
        if self.amount < 0:
            raise StageError(f"the scenario amount must be at least 0, got {self.amount}.")


def traffic(
    contract: Contract, base: pd.DataFrame, rows: int, scenario: Scenario, seed: int
) -> tuple[pd.DataFrame, pd.Series]:
    """`rows` feature rows (typed as the contract says) and their true labels, changed by `scenario`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chosen = scenario_features(contract, scenario)
    weights = _selection_weights(contract.features_of(base), scenario, chosen)
    drawn = base.sample(rows, replace=True, weights=weights, random_state=seed) if weights is not None else None
    if drawn is None:
        drawn = base.sample(rows, replace=len(base) < rows, random_state=seed)
    features, labels = contract.split_xy(drawn.reset_index(drop=True))
    features, labels = features.copy(), labels.copy()
    columns = {column.name: column for column in contract.features}
    if scenario.name == "shift":
        for name in chosen:
            limits = columns[name].spec()  # a numeric column: its min and max
            moved = features[name] + scenario.amount * features[name].std()
            features[name] = moved.clip(limits["min"], limits["max"])
    elif scenario.name == "missing":
        for name in chosen:
            hit = rng.random(len(features)) < scenario.amount
            features.loc[hit, name] = np.nan
    elif scenario.name == "correlation":
        first, second = chosen[:2]
        features[second] = _follow_ranks(features[first].to_numpy(), features[second].to_numpy(), scenario.amount, rng)
    elif scenario.name == "concept":
        labels = _change_labels(labels, contract, scenario.amount, rng)
    return features, labels


def _selection_weights(features: pd.DataFrame, scenario: Scenario, chosen: list[str]) -> np.ndarray | None:
    """Row weights that shift the drawn distribution while every row keeps its true label."""
    import numpy as np

    if scenario.name == "category_mix":  # a share `amount` of the rows comes from the rarest category
        weights = np.ones(len(features))
        for name in chosen:
            rare = (features[name] == features[name].value_counts().index[-1]).to_numpy()
            if rare.any() and scenario.amount < 1:
                weights = np.where(rare, scenario.amount / rare.mean(), (1 - scenario.amount) / (1 - rare.mean()))
            elif rare.any():
                weights = rare.astype("float64")
        return weights
    return None


def sample_base(
    generate: Callable[..., pd.DataFrame], task: str, contract: Contract, rows: int, seed: int, scenario: Scenario
) -> tuple[pd.DataFrame, Scenario]:
    """Fresh rows from the project's sample generator (`generate(task, rows, seed, shift=...)`), and what is
    left of the scenario: a shift is drawn by the generator itself."""
    if scenario.name != "shift":
        return generate(task, rows, seed), scenario
    features = scenario_features(contract, scenario)
    return generate(task, rows, seed, shift=dict.fromkeys(features, scenario.amount)), Scenario()


def scenario_features(contract: Contract, scenario: Scenario) -> list[str]:
    """The features the scenario changes: those named (each must be in the contract) or its defaults."""
    chosen = list(scenario.features) or _default_features(contract, scenario.name)
    unknown = sorted(set(chosen) - set(contract.feature_names))
    if unknown:
        raise StageError(f"scenario features {unknown} are not in the contract: {', '.join(contract.feature_names)}.")
    kinds = {"shift": contract.numeric_features, "correlation": contract.numeric_features}
    kinds["category_mix"] = contract.categorical_features
    wrong = sorted(set(chosen) - set(kinds.get(scenario.name, chosen)))
    if wrong:
        allowed = ", ".join(kinds[scenario.name]) or "none"
        raise StageError(f"the {scenario.name} scenario cannot change {wrong}; it takes: {allowed}.")
    return chosen


def _default_features(contract: Contract, scenario: str) -> list[str]:
    numeric, categorical = contract.numeric_features, contract.categorical_features
    if scenario == "shift":
        return numeric[:3]
    if scenario == "category_mix":
        return categorical[:1]
    if scenario == "missing":
        return [column.name for column in contract.features if column.max_missing]
    if scenario == "correlation":
        if len(numeric) < 2:
            raise StageError("the correlation scenario needs two numeric features.")
        return numeric[:2]
    return []


def _follow_ranks(leader: np.ndarray, follower: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """`follower`'s own values, reordered so that a share of rows follows `leader`'s ranks: same marginal."""
    import numpy as np

    result = follower.copy()
    rows = np.flatnonzero(rng.random(len(follower)) < share)
    result[rows[np.argsort(leader[rows])]] = np.sort(follower[rows])
    return result


def _change_labels(labels: pd.Series, contract: Contract, share: float, rng: np.random.Generator) -> pd.Series:
    """Labels move while inputs stay: another class for a share of rows, or a shifted value."""
    import numpy as np

    changed = labels.copy()
    hit = rng.random(len(labels)) < share
    if contract.classes:
        classes = np.asarray(contract.classes, dtype=object)
        current = labels.to_numpy(dtype=object)
        others = [classes[classes != value] for value in current[hit]]
        changed.loc[hit] = [choices[rng.integers(len(choices))] for choices in others]
        return changed
    changed.loc[hit] = labels[hit] + labels.std()
    return changed


def records(features: pd.DataFrame, contract: Contract) -> list[dict[str, Any]]:
    """Request bodies as a client writes them: None for missing values, plain Python numbers and text, and dates
    in ISO 8601, as the service logs them (the training split holds seconds since 1970, the model's view, which
    monitoring cannot read back from the log as a date)."""
    import pandas as pd

    written = features.copy()
    for name in contract.datetime_features:
        stamps = pd.to_datetime(written[name], unit="s", utc=True)
        written[name] = stamps.map(lambda stamp: None if pd.isna(stamp) else stamp.isoformat())
    rows = written.astype(object).where(written.notna(), None).to_dict("records")
    return [{str(key): plain(value) for key, value in row.items()} for row in rows]


def send_over_http(
    url: str,
    contract: Contract,
    features: pd.DataFrame,
    labels: pd.Series,
    feedback_share: float,
    seed: int,
    feedback_token: str | None = None,
    concurrency: int = 8,
) -> dict[str, Any]:
    """One POST /predict per row, `concurrency` at a time; then POST /feedback for a share of them, with the
    service's feedback token (a refused token stops here, before any row is sent)."""
    import numpy as np

    if feedback_share > 0 and not feedback_token:
        raise StageError(
            "posting feedback needs the service's feedback token: set SERVE_FEEDBACK_TOKEN (or use --feedback 0)."
        )
    base = url.rstrip("/")
    authorization = {"authorization": f"Bearer {feedback_token}"} if feedback_token else {}
    if feedback_share > 0:
        _post(f"{base}/feedback", {"request_id": "0" * 32, "label": plain(labels.iloc[0])}, authorization)
    bodies = records(features, contract)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(lambda body: _post(f"{base}/predict", body), bodies))
    ids = [answer["predictions"][0]["request_id"] if answer else None for answer in answers]
    rng = np.random.default_rng(seed)
    chosen = [i for i in range(len(ids)) if ids[i] and rng.random() < feedback_share]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        sent = list(
            pool.map(
                lambda i: _post(
                    f"{base}/feedback", {"request_id": ids[i], "label": plain(labels.iloc[i])}, authorization
                ),
                chosen,
            )
        )
    return {"rows": len(bodies), "predicted": sum(1 for i in ids if i), "feedback": sum(1 for answer in sent if answer)}


def write_to_log(
    log_url: str,
    loaded: LoadedModel,
    contract: Contract,
    features: pd.DataFrame,
    labels: pd.Series,
    feedback_share: float,
    seed: int,
    span_seconds: float = 3600.0,
) -> dict[str, Any]:
    """The rows the service would log, written straight into the prediction log over the last `span_seconds`."""
    import numpy as np
    import sqlalchemy as sa

    from ..serving.predlog import create_tables, feedback, make_engine, predictions, without_pii

    started = time.perf_counter()
    bodies = records(features, contract)
    answers = loaded.predict(contract.frame(bodies))
    per_row_ms = (time.perf_counter() - started) * 1000 / max(len(answers), 1)
    rng = np.random.default_rng(seed)
    now = time.time()
    moments = np.sort(now - span_seconds * rng.random(len(answers)))
    rows, labelled = [], []
    for body, answer, moment, label in zip(bodies, answers, moments, labels, strict=True):
        request_id = uuid.uuid4().hex
        rows.append(
            {
                "request_id": request_id,
                "created_at": float(moment),
                "model_version": loaded.version,
                "input": json.dumps(without_pii(body, contract.pii_features)),  # as the service logs it
                "output": json.dumps(answer),
                "latency_ms": per_row_ms,
            }
        )
        if rng.random() < feedback_share:
            labelled.append({"request_id": request_id, "label": json.dumps(plain(label)), "created_at": now})
    engine = make_engine(log_url)
    try:
        create_tables(engine)
        with engine.begin() as connection:
            connection.execute(predictions.insert(), rows)
            if labelled:
                connection.execute(feedback.insert(), labelled)
    except sa.exc.SQLAlchemyError as error:
        raise StageError(f"cannot write to the prediction log {log_url!r}: {error}") from None
    finally:
        engine.dispose()
    return {"rows": len(rows), "predicted": len(rows), "feedback": len(labelled), "model_version": loaded.version}


def _post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The JSON answer, or None when the request failed; a refused token (401, 403) stops the simulation."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"} | (headers or {}),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise StageError(f"{url} refused the request ({error.code}): {_detail(error)}") from None
        return None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _detail(error: Any) -> str:
    try:
        return str(json.loads(error.read())["detail"])
    except (ValueError, KeyError, TypeError):
        return str(error.reason)
