"""Shadow mode: a challenger scores what the champion answered, off the request path.

The champion answers every request; once its answer is logged, the request's rows are handed to
this scorer, which runs the challenger on a thread of its own and logs its answers (version, role,
output, model-call time) in the prediction log's `shadow_predictions`. Rows are gathered for a
moment and scored together: one model call costs about the same for one row as for dozens. The backlog is bounded: past
`max_rows` waiting rows, new rows are dropped and counted (GET /model shows it), never queued
without limit and never slowing an answer down.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..schema import Contract
    from .loader import LoadedModel
    from .predlog import PredictionLog

logger = logging.getLogger(__name__)

ROLE = "challenger"
CALL_ROWS = 512  # rows per model call at most: the scorer holds the GIL in bounded turns against the event loop
# After the first waiting row, the scorer waits this long for more: one model call costs about the same for one
# row as for dozens, and its time is taken from the event loop's (one GIL), so few large calls keep the
# champion's throughput. Nobody waits for a shadow answer.
GATHER_SECONDS = 0.05


class Shadow:
    """The challenger's scorer: `submit` takes answered rows, a thread scores and logs them."""

    def __init__(self, model: LoadedModel, contract: Contract, log: PredictionLog, max_rows: int = 10_000) -> None:
        self.model = model
        self.contract = contract
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
            "version": self.model.version,
            "role": ROLE,
            "scored": self.scored,
            "dropped": self.dropped,
            "failed": self.failed,
        }

    def close(self) -> None:
        """Score what waits, then stop."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        self._thread.join()

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
        started = time.perf_counter()
        try:
            answers = self.model.predict(self.contract.columns(rows))
        except Exception:  # a challenger that fails never touches the champion's answers: counted, logged once
            if not self.failed:
                logger.exception("shadow: the challenger (version %s) failed to score", self.model.version)
            self.failed += len(rows)
            return
        call_ms = (time.perf_counter() - started) * 1000
        now = time.time()
        self.log.record_shadow(
            [
                {
                    "request_id": request_id,
                    "created_at": now,
                    "model_version": self.model.version,
                    "role": ROLE,
                    "output": answer,
                    "latency_ms": call_ms,
                }
                for request_id, answer in zip(request_ids, answers, strict=True)
            ]
        )
        self.scored += len(rows)
