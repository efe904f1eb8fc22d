"""Micro-batching: concurrent /predict calls share one model call.

A scikit-learn Pipeline costs about the same for one row as for dozens (the fixed cost of
each transformer's input checks dominates). Requests that arrive while the model is busy
wait for the next call, which takes them all at once: no timer, so a lone request is never
delayed, and under load the cost per request drops with the batch size.

Before each call the drainer yields to the event loop a few times: requests whose bytes
have already arrived then get through parsing and validation (a handful of awaits each)
and join the batch: under load, more requests share each call for a lower tail latency,
while a lone request pays only a few microseconds.

The model runs on the event loop's own thread. A worker thread would add no parallelism
(scikit-learn's per-call work holds the GIL) but two thread switches per batch and GIL
contention with the loop. A model call on a batch is short, so the loop is never held for
long; scale out with `serve --workers` (benchmarks/serving.py in copier-mlops measures it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Rows = list[dict[str, Any]]
GATHER_YIELDS = 6  # event-loop turns given to in-flight requests before each model call


class MicroBatcher:
    """Coalesces pending requests into calls of `predict(rows) -> (tag, answers)`."""

    def __init__(self, predict: Callable[[Rows], tuple[Any, list[Any]]], max_rows: int = 1024) -> None:
        self._predict = predict
        self._max_rows = max_rows
        self._pending: list[tuple[Rows, asyncio.Future[tuple[Any, list[Any]]]]] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None  # kept: the loop holds tasks only weakly

    async def submit(self, rows: Rows) -> tuple[Any, list[Any]]:
        """The answers for `rows`, in order, and the tag (model) that produced them."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, list[Any]]] = loop.create_future()
        self._pending.append((rows, future))
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        return await future

    def _take(self) -> list[tuple[Rows, asyncio.Future[tuple[Any, list[Any]]]]]:
        taken: list[tuple[Rows, asyncio.Future[tuple[Any, list[Any]]]]] = []
        size = 0
        while self._pending and (not taken or size + len(self._pending[0][0]) <= self._max_rows):
            item = self._pending.pop(0)
            taken.append(item)
            size += len(item[0])
        return taken

    async def _drain(self) -> None:
        try:
            while self._pending:
                for _ in range(GATHER_YIELDS):
                    await asyncio.sleep(0)
                batch = self._take()
                rows = [row for request_rows, _ in batch for row in request_rows]
                try:
                    tag, answers = self._predict(rows)
                except Exception as error:  # every waiting request learns of it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                start = 0
                for request_rows, future in batch:
                    if not future.done():
                        future.set_result((tag, answers[start : start + len(request_rows)]))
                    start += len(request_rows)
        finally:
            self._draining = False
