"""The micro-batcher groups concurrent requests, keeps each caller's rows, and never holds a lone request back."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from predictor.batcher import MicroBatcher

pytestmark = pytest.mark.unit


class RecordingRunner:
    """Returns one row per text ([index-in-batch, len(text)]) and records every batch it was given."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.gate = gate

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(texts))
        return np.array([[float(len(t)), float(i)] for i, t in enumerate(texts)])


async def test_concurrent_requests_share_a_batch_and_get_their_own_rows() -> None:
    gate = threading.Event()
    runner = RecordingRunner(gate)
    batcher = MicroBatcher(runner, max_batch_size=32, max_wait_ms=0)
    first = asyncio.create_task(batcher.submit(["warm"]))
    await asyncio.sleep(0.05)  # the first pass is now running (held by the gate) ...
    others = [asyncio.create_task(batcher.submit(["a" * n, "b" * n])) for n in range(1, 6)]
    await asyncio.sleep(0.05)  # ... and the others queue up behind it
    gate.set()
    await first
    results = await asyncio.gather(*others)
    await batcher.close()
    assert runner.batches[0] == ["warm"]
    assert len(runner.batches) == 2 and len(runner.batches[1]) == 10  # all five requests in one pass
    for n, rows in zip(range(1, 6), results, strict=True):
        assert rows.shape == (2, 2)
        assert list(rows[:, 0]) == [n, n]  # each caller gets exactly its own texts back, in order


async def test_batches_never_exceed_max_batch_size() -> None:
    gate = threading.Event()
    runner = RecordingRunner(gate)
    batcher = MicroBatcher(runner, max_batch_size=4, max_wait_ms=0)
    first = asyncio.create_task(batcher.submit(["x"]))
    await asyncio.sleep(0.05)
    rest = [asyncio.create_task(batcher.submit(["t"] * 3)) for _ in range(3)]
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(first, *rest)
    await batcher.close()
    assert all(len(b) <= 4 for b in runner.batches)
    assert sum(len(b) for b in runner.batches) == 10


async def test_a_request_larger_than_the_batch_runs_in_chunks() -> None:
    runner = RecordingRunner()
    batcher = MicroBatcher(runner, max_batch_size=2, max_wait_ms=0)
    rows = await batcher.submit(["a", "bb", "ccc", "dddd", "eeeee"])
    await batcher.close()
    assert [len(b) for b in runner.batches] == [2, 2, 1]
    assert list(rows[:, 0]) == [1, 2, 3, 4, 5]


async def test_a_lone_request_is_not_held_for_max_wait() -> None:
    runner = RecordingRunner()
    # A huge max_wait: if the batcher waited for company, this test would hang instead of finishing.
    batcher = MicroBatcher(runner, max_batch_size=32, max_wait_ms=60_000)
    for _ in range(3):
        await asyncio.wait_for(batcher.submit(["alone"]), timeout=30)
    await batcher.close()
    assert runner.batches == [["alone"]] * 3


async def test_inference_errors_reach_every_caller_of_the_batch() -> None:
    def broken(_texts: list[str]) -> np.ndarray:
        raise RuntimeError("out of memory")

    batcher = MicroBatcher(broken, max_batch_size=8, max_wait_ms=0)
    results = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True)
    # The batcher survives and serves the next request.
    batcher._run_batch = RecordingRunner()
    after = await batcher.submit(["c"])
    await batcher.close()
    assert all(isinstance(r, RuntimeError) and "out of memory" in str(r) for r in results)
    assert after.shape == (1, 2)


def test_max_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MicroBatcher(RecordingRunner(), max_batch_size=0)
