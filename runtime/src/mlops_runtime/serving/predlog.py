"""The prediction log: every prediction and every piece of feedback, for monitoring.

A request is answered once its rows are committed: one writer thread commits everything queued
at once (group commit) through SQLAlchemy (SQLite in WAL mode by default, any SQLAlchemy URL such
as PostgreSQL by configuration); while that database is down, rows go to a local journal
(journal.py) and back to the database when it returns.

Privacy: fields the contract flags `pii: true` are dropped from every logged input, so personal
data never reaches the log; `purge` (the CLI's `purge --older-than DAYS`) deletes what is past
its retention. `logged_prediction` reads one request back (the CLI's `explain`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Collection
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .journal import Entry, Journal, JournalFullError, orphans, read_entries

if TYPE_CHECKING:
    from pathlib import Path

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

# What the challenger answered to the requests the champion answered (shadow mode, SERVE_SHADOW): its
# version, its role, its output, and how long its model call took for the batch the request was in.
shadow_predictions = sa.Table(
    "shadow_predictions",
    metadata,
    sa.Column("request_id", sa.String(36), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("output", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
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
    """The log's engine; a URL SQLAlchemy cannot use (a typo, a driver not installed) is one clear error."""
    from ..errors import StageError
    from ..secrets import shown_url

    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as error:
        raise StageError(f"cannot use the prediction log URL {shown_url(url)!r}: {error}") from None
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            # WAL: readers (monitoring) never block the writer; several workers can share the file.
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed row (an answered prediction) survives a power loss too, not only a crash.
            cursor.execute("PRAGMA synchronous=FULL")
            # A write waits this long for a lock held elsewhere (another worker, purge), then goes to the journal.
            cursor.execute("PRAGMA busy_timeout=2000")
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

    database = sqlite_file(url)
    return database is None or Path(database).exists()


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
            if shadow_predictions.name in tables:  # nor one written before shadow mode
                deleted["shadow_predictions"] = connection.execute(
                    shadow_predictions.delete().where(shadow_predictions.c.created_at < before)
                )
        if sqlite:
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    except sa.exc.SQLAlchemyError as error:
        raise StageError(f"cannot purge the prediction log {url!r}: {error}") from None
    finally:
        engine.dispose()
    return {"refusals": 0, "shadow_predictions": 0} | {table: result.rowcount for table, result in deleted.items()}


class LogUnavailableError(Exception):
    """Neither the log's database nor the local journal can take a row: the request must not be answered."""


@dataclass(frozen=True)
class LogHealth:
    """Where log rows go now: the database, or the journal while the database is unreachable or refuses writes."""

    spooled_rows: int
    database_down_since: float | None  # epoch seconds; None while the database takes writes
    journal_full: bool

    def describe(self) -> str:
        if self.database_down_since is None and not self.spooled_rows:
            return "writing to its database"
        state = f"{self.spooled_rows} rows spooled to the local journal"
        if self.journal_full:
            state += " (full: predictions are refused until the database is back)"
        if self.database_down_since is not None:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.database_down_since))
            state += f"; the database refuses writes since {since} UTC"
        return state


@dataclass
class _Write:
    """Rows of one table to write, and the future their requests wait on (None: nobody waits)."""

    table: sa.Table
    rows: list[dict[str, Any]]
    done: asyncio.Future[None] | None = None


class PredictionLog:
    """Durable, group-committed writes of prediction rows; synchronous feedback.

    `await commit(rows)` returns once the rows are committed: in the log's database (concurrent requests
    share one transaction: one writer thread takes everything queued at once), or, while the database is
    unreachable or refuses writes, appended and fsync'd to the local journal (journal.py), whose rows go
    to the database when it is back, each once. A request is answered only after its commit, so an
    answered prediction survives a crash of the service. When the journal is full too, it raises
    LogUnavailableError and the request gets a 503. A commit survives a power loss too (SQLite: WAL with
    synchronous=FULL).

    `pii` names the input fields never to store (the contract's pii features).
    """

    def __init__(
        self,
        url: str,
        pii: Collection[str] = (),
        journal_dir: Path | None = None,
        journal_max_rows: int = 100_000,
        retry_seconds: float = 2.0,
    ) -> None:
        self.engine = make_engine(url)
        create_tables(self.engine)
        self.pii = frozenset(pii)
        self.retry_seconds = retry_seconds  # between attempts to write the journal back while the database is down
        self.journal = Journal(journal_dir or default_journal_dir(url), journal_max_rows)
        self.down_since: float | None = None
        self._last_attempt = 0.0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._connection: sa.Connection | None = None  # the writer thread's own
        self._gathered: list[_Write] = []  # this event-loop turn's writes (commit)
        self._gathering = threading.Lock()
        self._writer = threading.Thread(target=self._write_forever, name="prediction-log", daemon=True)
        self._writer.start()

    async def commit(self, rows: list[dict[str, Any]]) -> None:
        """Log rows (request_id, created_at, model_version, input, output, latency_ms); return once committed.

        The requests one event-loop turn answers (one micro-batch of the model) reach the writer as one item,
        so they share one commit, and the loop learns of the commit in one wake-up: handed over one by one,
        the writer woke for the first and committed it alone. Input and output are encoded here, a few
        microseconds a row (in the writer, that work held the GIL against the loop in bursts); the input's
        pii fields are dropped first, so they never reach the queue or the database."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        with self._gathering:
            self._gathered.append(_Write(predictions, self._encoded(rows), done))
            first = len(self._gathered) == 1
        if first:
            loop.call_soon(self._hand_over)  # after every request this turn resumes
        await done

    def _hand_over(self) -> None:
        with self._gathering:
            gathered, self._gathered = self._gathered, []
        self._queue.put(gathered)

    def _encoded(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        pii = self.pii
        return [
            row
            | {
                "input": json.dumps(without_pii(row["input"], pii) if pii else row["input"], default=iso_date),
                "output": json.dumps(row["output"]),
            }
            for row in rows
        ]

    def record_shadow(self, rows: list[dict[str, Any]]) -> None:
        """Queue the challenger's answers (request_id, created_at, model_version, role, output as JSON text,
        latency_ms): written with the next commit, and nobody waits for them."""
        self._queue.put(_Write(shadow_predictions, rows))

    def record_refusal(self, reason: str, fields: list[str]) -> None:
        """Queue a refused request: its reason (contract, too_large, not_json) and each field at fault."""
        self._queue.put(_Write(refusals, [{"created_at": time.time(), "reason": reason, "fields": ",".join(fields)}]))

    def health(self) -> LogHealth:
        full = self.journal.rows >= self.journal.max_rows
        return LogHealth(self.journal.rows, self.down_since, full)

    def flush(self) -> None:
        """Wait until everything queued so far is committed (to the database or the journal)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._writer.join()
        if self._connection is not None:
            self._connection.close()
        self.journal.close()
        self.engine.dispose()

    def add_feedback(self, request_id: str, label: Any) -> bool:
        """Store the true label of a logged prediction; False when the request id is unknown.

        Raises sqlalchemy's errors when the database is unreachable: a label is never spooled, the
        client is told to retry.
        """
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
        self._write_back()  # journals of processes that died before their database came back
        stop = False
        while not stop:
            try:  # while rows wait in the journal, wake up to try the database again
                item = self._queue.get(timeout=self.retry_seconds if self.journal.rows else None)
            except queue.Empty:
                self._write_back()
                continue
            writes: list[_Write] = []
            waiting: list[threading.Event] = []
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiting.append(item)
                elif isinstance(item, list):
                    writes.extend(item)
                else:
                    writes.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if writes:
                self._commit(writes)
            for event in waiting:
                event.set()
            if self.journal.rows and time.monotonic() - self._last_attempt >= self.retry_seconds:
                self._write_back()

    def _commit(self, writes: list[_Write]) -> None:
        """One transaction for every queued write; the journal while the database is down; then answer."""
        failure: Exception | None = None
        try:
            if self.down_since is not None:  # down: straight to the journal, the database is retried on a timer
                raise _DatabaseDownError
            # The writer keeps its connection: a checkout from the pool and its reset on return cost a round
            # trip and ~100 us of Python per commit, and at 8 connections a commit holds ~8 requests.
            self._connection = self._connection or self.engine.connect()
            with self._connection.begin():
                for table, rows in _by_table(writes).items():
                    self._connection.execute(table.insert(), rows)
        except (sa.exc.SQLAlchemyError, _DatabaseDownError) as error:
            if not isinstance(error, _DatabaseDownError):
                self._drop_connection()
            if self.down_since is None:
                logger.warning(  # the first line: the rest is the statement and its rows (predictions, not for logs)
                    "prediction log: the database refused a write, spooling to %s: %s",
                    self.journal.folder,
                    str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__,
                )
                self.down_since = time.time()
                self._last_attempt = time.monotonic()
            try:
                self.journal.append([Entry(w.table.name, row) for w in writes for row in w.rows])
            except (JournalFullError, OSError) as full:
                failure = LogUnavailableError(f"the prediction log's database and its journal refuse writes: {full}")
        settle([write.done for write in writes if write.done is not None], failure)

    def _write_back(self) -> None:
        """The journal's rows (this process's, and those of dead processes) into the database, each once."""
        self._last_attempt = time.monotonic()
        try:
            if self.journal.rows:
                insert_entries(self.engine, self.journal.entries())
                self.journal.clear()
            for path, _locked in orphans(self.journal.folder, self.journal.path):
                insert_entries(self.engine, read_entries(path))
                path.unlink()
        except sa.exc.SQLAlchemyError:
            return  # still down: the rows stay in the journal
        if self.down_since is not None:
            logger.warning("prediction log: the database takes writes again; the journal is written back")
            self._drop_connection()  # opened before the outage: a restarted server has closed it
        self.down_since = None

    def _drop_connection(self) -> None:
        """Never reuse the writer's connection after a failure: the next commit opens a new one."""
        if self._connection is not None:
            self._connection.invalidate()
            self._connection.close()
            self._connection = None


def settle(futures: list[asyncio.Future[None]], failure: Exception | None) -> None:
    """Complete the futures of one commit, in one call per event loop (the writer is another thread)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for future in futures:
        by_loop.setdefault(future.get_loop(), []).append(future)
    for loop, waiting in by_loop.items():
        with suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(_complete_all, waiting, failure)


def _complete_all(futures: list[asyncio.Future[None]], failure: Exception | None) -> None:
    for future in futures:
        if future.done():  # a request cancelled meanwhile (its client left)
            continue
        if failure is None:
            future.set_result(None)
        else:
            future.set_exception(failure)


class _DatabaseDownError(Exception):
    """The database refused the last write: rows go to the journal until a write-back succeeds."""


def _by_table(writes: list[_Write]) -> dict[sa.Table, list[dict[str, Any]]]:
    grouped: dict[sa.Table, list[dict[str, Any]]] = {}
    for write in writes:
        grouped.setdefault(write.table, []).extend(write.rows)
    return grouped


def insert_entries(engine: sa.Engine, entries: list[Entry]) -> None:
    """Journal entries into their tables in one transaction; a prediction already there is skipped (a write-back
    cut short by a crash is done again, and no request is logged twice)."""
    tables = {table.name: table for table in (predictions, shadow_predictions, refusals)}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        grouped.setdefault(entry.table, []).append(entry.row)
    with engine.begin() as connection:
        for name, rows in grouped.items():
            connection.execute(insert_ignoring_duplicates(engine, tables[name]), rows)


def insert_ignoring_duplicates(engine: sa.Engine, table: sa.Table) -> Any:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table).on_conflict_do_nothing()
    if engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    return table.insert().prefix_with("IGNORE")  # MySQL and MariaDB


def default_journal_dir(url: str) -> Path:
    """Beside a SQLite log's file; else the folder the service runs in (SERVE_LOG_JOURNAL_DIR moves it)."""
    from pathlib import Path

    database = sqlite_file(url)
    return Path(database).parent / "prediction-journal" if database else Path("prediction-journal")


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite log; None for a server, an in-memory database or what is not a URL (make_engine
    then says why)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def iso_date(value: Any) -> str:
    """A date or timestamp of a request (a datetime feature) as ISO 8601 text, as the contract reads it back."""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"cannot write {type(value).__name__} to the prediction log")
