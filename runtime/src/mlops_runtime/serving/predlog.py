"""The prediction log: every prediction and every piece of feedback, for monitoring.

Requests only put encoded rows on an in-memory queue; one writer thread inserts them in batches
through SQLAlchemy (SQLite in WAL mode by default, any SQLAlchemy URL such as PostgreSQL by
configuration). `close()` drains the queue, so a clean shutdown loses nothing.

Privacy: fields the contract flags `pii: true` are dropped from every logged input, so personal
data never reaches the log; `purge` (the CLI's `purge --older-than DAYS`) deletes what is past
its retention. `logged_prediction` reads one request back (the CLI's `explain`).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

logger = logging.getLogger(__name__)

metadata = sa.MetaData()
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("request_id", sa.String(36), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("output", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
)
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(36), nullable=False, index=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Requests the service refused: the reason and the fields at fault, never the refused body.
refusals = sa.Table(
    "refusals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("fields", sa.Text, nullable=False),  # comma-separated
)

_STOP = object()


def make_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            # WAL: readers (monitoring) never block the writer; several workers can share the file.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def create_tables(engine: sa.Engine) -> None:
    """Create the log's tables if they are missing, also when several workers start at once."""
    try:
        metadata.create_all(engine)
    except sa.exc.DBAPIError:
        # Another worker created a table between our check and our CREATE: look again. An
        # error that is not that race fails again here, and propagates.
        metadata.create_all(engine)


def open_log_database(url: str) -> None:
    """Create the tables once before workers start; a bad URL or an unwritable path is one clear error."""
    from ..errors import StageError

    try:
        engine = make_engine(url)
        create_tables(engine)
        engine.dispose()
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise StageError(f"cannot open the prediction log {url!r}: {error}") from None


def log_exists(url: str) -> bool:
    """A SQLite log exists when its file does (reading must never create one); a server is asked."""
    from pathlib import Path

    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).exists()


def without_pii(row: dict[str, Any], pii: Collection[str]) -> dict[str, Any]:
    """The input as the log keeps it: the contract's pii fields dropped, never stored."""
    return {name: value for name, value in row.items() if name not in pii}


def logged_prediction(url: str, request_id: str) -> dict[str, Any] | None:
    """One logged prediction, input and output decoded; None when the log has no such request."""
    from ..errors import StageError

    if not log_exists(url):
        raise StageError(f"no prediction log at {url!r}: set SERVE_PREDICTION_LOG_URL to the service's log.")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(sa.select(predictions).where(predictions.c.request_id == request_id)).first()
    except sa.exc.SQLAlchemyError as error:
        raise StageError(f"cannot read the prediction log {url!r}: {error}") from None
    finally:
        engine.dispose()
    if row is None:
        return None
    try:
        decoded = {"input": json.loads(row.input), "output": json.loads(row.output)}
    except ValueError:
        decoded = {}
    if not all(isinstance(decoded.get(key), dict) for key in ("input", "output")):
        raise StageError(f"request {request_id} is in the log, but its input or output is not a JSON object.")
    return row._asdict() | decoded


def retention_cutoff(days: str, now: float) -> float:
    """The moment (epoch seconds) `days` before `now`; `days` must be a positive number."""
    from ..errors import StageError

    try:
        value = float(days)
    except ValueError:
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise StageError(f"--older-than takes a positive number of days, got {days!r}.")
    return now - value * 86_400


def purge(url: str, before: float) -> dict[str, int]:
    """Delete predictions older than `before` (epoch seconds) with their feedback, and older refusals.

    Returns how many rows it deleted from each table. On SQLite the freed pages are zeroed and
    the write-ahead log is emptied, so the deleted rows cannot be read back from the files.
    """
    from ..errors import StageError

    if not log_exists(url):
        raise StageError(f"no prediction log at {url!r}: set SERVE_PREDICTION_LOG_URL to the service's log.")
    engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.begin() as connection:
            tables = sa.inspect(connection).get_table_names()
            if predictions.name not in tables:
                raise StageError(f"{url!r} is not a prediction log: it has no {predictions.name!r} table.")
            if sqlite:
                connection.exec_driver_sql("PRAGMA secure_delete=ON")
            old = predictions.c.created_at < before
            deleted = {  # feedback first: it is found through the predictions it labels
                "feedback": connection.execute(
                    feedback.delete().where(feedback.c.request_id.in_(sa.select(predictions.c.request_id).where(old)))
                ),
                "predictions": connection.execute(predictions.delete().where(old)),
            }
            if refusals.name in tables:  # a log written before refusals were recorded has none
                deleted["refusals"] = connection.execute(refusals.delete().where(refusals.c.created_at < before))
        if sqlite:
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    except sa.exc.SQLAlchemyError as error:
        raise StageError(f"cannot purge the prediction log {url!r}: {error}") from None
    finally:
        engine.dispose()
    return {"refusals": 0} | {table: result.rowcount for table, result in deleted.items()}


class PredictionLog:
    """Asynchronous, batched writes of prediction rows; synchronous feedback.

    `pii` names the input fields never to store (the contract's pii features).
    """

    def __init__(self, url: str, batch_size: int = 2000, interval: float = 0.2, pii: Collection[str] = ()) -> None:
        self.engine = make_engine(url)
        create_tables(self.engine)
        self.pii = frozenset(pii)
        self.batch_size = batch_size
        self.interval = interval  # seconds between writes under load: fewer, larger transactions
        self.dropped = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pause = threading.Event()
        self._writer = threading.Thread(target=self._write_forever, name="prediction-log", daemon=True)
        self._writer.start()

    def record(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows (request_id, created_at, model_version, input, output, latency_ms); never blocks.

        Input and output are encoded here, a few microseconds a row: done in the writer, the
        same work came in bursts that held the GIL against the event loop, and showed as tail latency.
        The input's pii fields are dropped first: they never reach the queue or the database.
        """
        pii = self.pii
        self._queue.put(
            [
                row
                | {
                    "input": json.dumps(without_pii(row["input"], pii) if pii else row["input"], default=iso_date),
                    "output": json.dumps(row["output"]),
                }
                for row in rows
            ]
        )

    def record_refusal(self, reason: str, fields: list[str]) -> None:
        """Queue a refused request: its reason (contract, too_large, not_json) and each field at fault."""
        self._queue.put((refusals, [{"created_at": time.time(), "reason": reason, "fields": ",".join(fields)}]))

    def flush(self) -> None:
        """Wait until everything queued so far is in the database."""
        done = threading.Event()
        self._queue.put(done)
        self._pause.set()
        done.wait()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._pause.set()
        self._writer.join()
        self.engine.dispose()

    def add_feedback(self, request_id: str, label: Any) -> bool:
        """Store the true label of a logged prediction; False when the request id is unknown."""
        self.flush()
        with self.engine.begin() as connection:
            known = connection.execute(
                sa.select(predictions.c.request_id).where(predictions.c.request_id == request_id)
            ).first()
            if known is None:
                return False
            connection.execute(
                feedback.insert().values(request_id=request_id, label=json.dumps(label), created_at=time.time())
            )
        return True

    def count(self) -> int:
        """Logged predictions, everything queued included."""
        return self._count(predictions)

    def feedback_count(self) -> int:
        """Stored feedback labels."""
        return self._count(feedback)

    def _count(self, table: sa.Table) -> int:
        self.flush()
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def _write_forever(self) -> None:
        pending: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        waiting: list[threading.Event] = []
        stop = False
        while not stop:
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiting.append(item)
                elif isinstance(item, tuple):
                    refused.extend(item[1])
                else:
                    pending.extend(item)
                if stop or len(pending) >= self.batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            started = time.monotonic() if pending or refused else None
            if pending:
                self._insert(predictions, pending)
                pending = []
            if refused:
                self._insert(refusals, refused)
                refused = []
            for event in waiting:
                event.set()
            waiting = []
            if started is not None and not stop:
                # Let rows gather while requests are flowing; flush() and close() cut the wait short.
                self._pause.wait(max(0.0, self.interval - (time.monotonic() - started)))
                self._pause.clear()

    def _insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        for attempt in range(3):
            try:
                with self.engine.begin() as connection:
                    connection.execute(table.insert(), rows)
                return
            except sa.exc.SQLAlchemyError:
                logger.exception("prediction log write failed (attempt %d of 3)", attempt + 1)
                time.sleep(0.2 * (attempt + 1))
        self.dropped += len(rows)


def iso_date(value: Any) -> str:
    """A date or timestamp of a request (a datetime feature) as ISO 8601 text, as the contract reads it back."""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"cannot write {type(value).__name__} to the prediction log")
