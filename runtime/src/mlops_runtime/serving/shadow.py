"""Shadow mode: a challenger scores what the champion answered, off the request path.

The champion answers every request; once its answer is logged, the request's rows are handed to
this scorer, which logs the challenger's answers (version, role, output, model-call time) in the
prediction log's `shadow_predictions`. The challenger runs in a process of its own, at the lowest
CPU priority: in the service's process its model calls held the GIL against the event loop, so a
challenger heavier than the champion (a 300-tree forest) cut the champion's throughput to 0.58 and
raised its p99 from 6 to 28 ms; in its own process, to 0.8 and 10 ms (benchmarks/serving.py
--shadow). A thread of the service gathers rows for a moment, sends them over together (one model
call costs about the same for one row as for dozens) and logs the answers. The backlog is bounded:
past `max_rows` waiting rows, new rows are dropped and counted (GET /model shows it), never queued
without limit and never slowing an answer down. A challenger that fails, or whose process dies,
costs the champion nothing: its rows are counted as failed. The scorer process ends with the
service: on `close`, or when the service dies and its end of the pipe closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import StageError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from ..schema import Contract
    from .loader import LoadedModel
    from .predlog import PredictionLog

logger = logging.getLogger(__name__)

ROLE = "challenger"
CALL_ROWS = 512  # rows per model call at most: bounds one message to the scorer and one write of its answers
# After the first waiting row, the scorer waits this long for more: one model call costs about the same for one
# row as for dozens, and each call costs the service's thread a hand-over and a log write, so few large calls
# keep the champion's throughput (10 ms and 16-row calls measured worse). Nobody waits for a shadow answer.
GATHER_SECONDS = 0.05


class Shadow:
    """The challenger's scorer: `submit` takes answered rows; a process scores them, a thread logs the answers."""

    def __init__(self, model: LoadedModel, contract: Contract, log: PredictionLog, max_rows: int = 10_000) -> None:
        self.version = model.version
        self.log = log
        self.max_rows = max_rows
        self.scored = 0
        self.dropped = 0
        self.failed = 0
        self._pending: list[tuple[list[str], list[dict[str, Any]]]] = []
        self._waiting_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._process, self._scorer = start_scorer(model, contract)
        self._thread = threading.Thread(target=self._score_forever, name="shadow", daemon=True)
        self._thread.start()

    def submit(self, request_ids: list[str], rows: list[dict[str, Any]]) -> None:
        """Queue rows the champion answered (never blocks); past the backlog's bound they are dropped, counted."""
        with self._lock:
            if self._waiting_rows + len(rows) > self.max_rows:
                self.dropped += len(rows)
                return
            self._pending.append((request_ids, rows))
            self._waiting_rows += len(rows)
        self._wake.set()

    def describe(self) -> dict[str, Any]:
        """For GET /model: which version scores in shadow, and what became of the rows handed to it."""
        return {
            "version": self.version,
            "role": ROLE,
            "scored": self.scored,
            "dropped": self.dropped,
            "failed": self.failed,
        }

    @property
    def scorer_pid(self) -> int | None:
        """The scorer process's id (in ps or top, its memory is the challenger's)."""
        return self._process.pid

    def close(self) -> None:
        """Score what waits, then stop the thread and the scorer process."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        self._thread.join()
        with contextlib.suppress(OSError):  # its process is gone already
            self._scorer.send(None)
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._scorer.close()

    def _score_forever(self) -> None:
        while True:
            self._wake.wait()
            if not self._stopping:
                time.sleep(GATHER_SECONDS)
            with self._lock:
                pending, self._pending, self._waiting_rows = self._pending, [], 0
                self._wake.clear()
                stopping = self._stopping
            request_ids = [request_id for ids, _ in pending for request_id in ids]
            rows = [row for _, batch in pending for row in batch]
            for start in range(0, len(rows), CALL_ROWS):
                self._score(request_ids[start : start + CALL_ROWS], rows[start : start + CALL_ROWS])
            if stopping:
                return

    def _score(self, request_ids: list[str], rows: list[dict[str, Any]]) -> None:
        try:
            self._scorer.send(rows)
            answers, call_ms, failure = self._scorer.recv()
        except (OSError, EOFError):  # the scorer process died (killed, out of memory)
            answers, call_ms, failure = [], 0.0, f"its process ended (exit code {self._process.exitcode})"
        if failure is not None:  # a challenger that fails never touches the champion's answers: counted, logged once
            if not self.failed:
                logger.error("shadow: the challenger (version %s) failed to score: %s", self.version, failure)
            self.failed += len(rows)
            return
        now = time.time()
        self.log.record_shadow(
            [
                {
                    "request_id": request_id,
                    "created_at": now,
                    "model_version": self.version,
                    "role": ROLE,
                    "output": answer,
                    "latency_ms": call_ms,
                }
                for request_id, answer in zip(request_ids, answers, strict=True)
            ]
        )
        self.scored += len(rows)


def start_scorer(model: LoadedModel, contract: Contract) -> tuple[multiprocessing.process.BaseProcess, Connection]:
    """The scorer process, given the challenger, and the service's end of the pipe to it."""
    # spawn, not fork: a fork would copy the service's threads' locks (the log writer's, this module's) mid-use
    context = multiprocessing.get_context("spawn")
    service_end, scorer_end = context.Pipe()
    process = context.Process(
        target=score_in_process, args=(scorer_end, model, contract), name="shadow-scorer", daemon=True
    )
    try:
        process.start()
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        service_end.close()
        raise StageError(
            f"the challenger (version {model.version}) cannot be handed to its scorer process: {error}"
        ) from None
    finally:
        scorer_end.close()  # the process holds its own copy: its exit is then EOF on the service's end
    return process, service_end


def score_in_process(requests: Connection, model: LoadedModel, contract: Contract) -> None:
    """The scorer process: answers each batch of rows it is sent, until None or until the service's end closes.

    Sends back (the answers as JSON text, model-call milliseconds, None), or ([], 0, the failure) when the model
    fails.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the service decides when to stop
    os.nice(19)  # the lowest CPU priority: the challenger takes what CPU the champion's requests leave
    while True:
        try:
            rows = requests.recv()
        except EOFError:  # the service is gone
            return
        if rows is None:
            return
        started = time.perf_counter()
        try:
            answers = model.predict(contract.columns(rows))
        except Exception as error:
            requests.send(([], 0.0, f"{type(error).__name__}: {error}"))
            continue
        call_ms = (time.perf_counter() - started) * 1000
        requests.send(([json.dumps(answer) for answer in answers], call_ms, None))  # as logged: less work there
