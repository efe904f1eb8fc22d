"""Micro-batching: concurrent requests share model calls and each gets its own answers back."""

import asyncio

import pytest

from mlops_runtime.serving.batching import MicroBatcher


def test_concurrent_requests_share_calls_and_keep_their_answers() -> None:
    calls: list[int] = []

    def predict(rows: list[dict]) -> tuple[str, list[int]]:
        calls.append(len(rows))
        return "v1", [row["x"] * 10 for row in rows]

    async def scenario() -> list[tuple[str, list[int]]]:
        batcher = MicroBatcher(predict)
        first = await batcher.submit([{"x": 0}])  # alone: answered at once, not held for company
        together = [batcher.submit([{"x": i}, {"x": i + 100}]) for i in range(1, 6)]
        return [first, *await asyncio.gather(*together)]

    results = asyncio.run(scenario())

    assert results[0] == ("v1", [0])
    assert results[1:] == [("v1", [i * 10, (i + 100) * 10]) for i in range(1, 6)]
    assert calls == [1, 10]  # the five concurrent requests went in one call


def test_a_call_never_takes_more_than_max_rows_unless_one_request_does() -> None:
    calls: list[int] = []

    def predict(rows: list[dict]) -> tuple[str, list[int]]:
        calls.append(len(rows))
        return "v1", [row["x"] for row in rows]

    async def scenario() -> list[tuple[str, list[int]]]:
        batcher = MicroBatcher(predict, max_rows=4)
        sizes = (3, 3, 6, 1)
        return await asyncio.gather(*(batcher.submit([{"x": size}] * size) for size in sizes))

    results = asyncio.run(scenario())

    assert [answers for _, answers in results] == [[3] * 3, [3] * 3, [6] * 6, [1]]
    assert calls == [3, 3, 6, 1]


def test_a_failing_model_call_fails_every_waiting_request() -> None:
    def predict(rows: list[dict]) -> tuple[str, list[int]]:
        raise RuntimeError("model exploded")

    async def scenario() -> None:
        batcher = MicroBatcher(predict)
        await asyncio.gather(batcher.submit([{"x": 1}]), batcher.submit([{"x": 2}]))

    with pytest.raises(RuntimeError, match="model exploded"):
        asyncio.run(scenario())
