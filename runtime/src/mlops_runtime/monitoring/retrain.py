"""The closed loop: labelled production rows join the training data, the pipeline runs, the gate decides.

A refused model never serves: only when `accept` sets a new champion is the running service
asked to reload it (SERVE_URL and SERVE_RELOAD_TOKEN), and the service itself keeps the old
model if the new one fails to load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..files import read_json, write_parquet

if TYPE_CHECKING:
    import pandas as pd

    from ..paths import Paths
    from ..schema import Contract


def export_labelled(log_url: str, paths: Paths, contract: Contract) -> int:
    """Every logged prediction with a feedback label, as contract rows (features and target), DVC-tracked."""
    import pandas as pd
    import sqlalchemy as sa

    if contract.pii_features:
        raise StageError(
            f"the prediction log never keeps pii features ({', '.join(contract.pii_features)}), so logged"
            " rows cannot become training rows: label rows in the source data instead."
        )

    from ..serving.predlog import feedback, make_engine, predictions

    engine = make_engine(log_url)
    query = sa.select(predictions.c.request_id, predictions.c.input, feedback.c.label, feedback.c.id).join(
        feedback, feedback.c.request_id == predictions.c.request_id
    )
    try:
        with engine.connect() as connection:
            joined = pd.read_sql(query, connection)
    except sa.exc.SQLAlchemyError as error:
        raise StageError(f"cannot read the prediction log {log_url!r}: {error}") from None
    finally:
        engine.dispose()
    frame = labelled_rows(joined, contract)
    if frame.empty:
        return 0
    write_parquet(contract.coerce(frame), paths.feedback_rows)
    _dvc("add", str(paths.feedback_rows), cwd=paths)
    return len(frame)


def labelled_rows(joined: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Each request's features with its latest label, in one order whatever order the requests arrived in.

    Concurrent clients make arrival order the scheduler's, and the split is a seeded shuffle of row order:
    ordered by content, the same log always gives the same training rows, so the same model.
    """
    import pandas as pd

    latest = joined.sort_values("id").drop_duplicates("request_id", keep="last")
    rows = []
    pairs = zip(latest["input"], latest["label"], strict=True)
    for text, label in sorted(pairs, key=lambda pair: (str(pair[0]), str(pair[1]))):
        try:
            rows.append(json.loads(text) | {contract.target.name: json.loads(label)})
        except (TypeError, ValueError):
            continue  # an unreadable row is left out, as the monitoring job does
    return pd.DataFrame.from_records(rows, columns=[*contract.feature_names, contract.target.name])


def retrain(log_url: str, paths: Paths, contract: Contract) -> dict[str, Any]:
    """Export labelled rows, run `dvc repro`, and reload the service when a new champion was set."""
    exported = export_labelled(log_url, paths, contract)
    before = read_json(paths.acceptance) if paths.acceptance.exists() else {}
    completed = _dvc("repro", cwd=paths, check=False)
    outcome: dict[str, Any] = {"labelled_rows": exported, "repro_exit_code": completed.returncode}
    acceptance = read_json(paths.acceptance) if paths.acceptance.exists() else {}
    registry = acceptance.get("registry", {}) if acceptance != before else {}  # unchanged: accept did not run
    promoted = bool(registry.get("registered") and registry.get("champion") == registry.get("version"))
    outcome |= {"accepted": acceptance.get("accepted"), "version": registry.get("version"), "promoted": promoted}
    if completed.returncode != 0:
        outcome["note"] = "the pipeline stopped (the acceptance gate or an earlier stage): the champion keeps serving"
    elif promoted:
        outcome["reload"] = reload_service()
    return outcome


def reload_service() -> str:
    """POST /reload to the running service, when SERVE_URL and SERVE_RELOAD_TOKEN say where and how."""
    url, token = os.environ.get("SERVE_URL"), os.environ.get("SERVE_RELOAD_TOKEN")
    if not url or not token:
        return "not asked (set SERVE_URL and SERVE_RELOAD_TOKEN to reload a running service)"
    request = urllib.request.Request(
        f"{url.rstrip('/')}/reload", method="POST", headers={"authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return f"reloaded: {json.loads(response.read())}"
    except urllib.error.HTTPError as error:
        return f"refused ({error.code}): {error.read().decode()[:500]}"
    except (urllib.error.URLError, OSError) as error:
        return f"failed: {error}"


def _dvc(*args: str, cwd: Paths, check: bool = True) -> subprocess.CompletedProcess[str]:
    dvc = shutil.which("dvc")
    if dvc is None:
        raise StageError("dvc is not installed here: retraining needs the training environment (uv sync).")
    completed = subprocess.run([dvc, *args], cwd=cwd.root, capture_output=True, text=True, check=False)
    print(completed.stdout + completed.stderr, end="", flush=True)
    if check and completed.returncode != 0:
        raise StageError(f"`dvc {' '.join(args)}` failed with exit code {completed.returncode}.")
    return completed
