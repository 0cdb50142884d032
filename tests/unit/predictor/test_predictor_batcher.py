"""The micro-batcher groups concurrent requests, keeps each caller's rows, and never holds a lone request back.

Tests synchronise on events (a pass has started, requests are queued), never on sleeps."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from predictor.batcher import BatcherFullError, MicroBatcher

pytestmark = pytest.mark.unit


class RecordingRunner:
    """Returns one row per text ([len(text), index-in-batch]) and records every batch it was given; with a gate,
    each pass signals `started` and then waits for the gate."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.gate = gate
        self.started = threading.Event()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(texts))
        if any("boom" in t for t in texts):
            raise RuntimeError("tokenizer failed on boom")
        return np.array([[float(len(t)), float(i)] for i, t in enumerate(texts)])


async def pass_started(runner: RecordingRunner) -> None:
    assert await asyncio.to_thread(runner.started.wait, 10), "the first pass never started"


async def queued(batcher: MicroBatcher, count: int) -> None:
    """Yield to the loop until `count` requests wait in the batcher's queue (each task enqueues on its first step)."""
    for _ in range(1000):
        if batcher._queue is not None and batcher._queue.qsize() >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{count} requests never queued")


async def test_concurrent_requests_share_a_batch_and_get_their_own_rows() -> None:
    gate = threading.Event()
    runner = RecordingRunner(gate)
    batcher = MicroBatcher(runner, max_batch_size=32, max_wait_ms=0)
    first = asyncio.create_task(batcher.submit(["warm"]))
    await pass_started(runner)  # the first pass is now running (held by the gate) ...
    others = [asyncio.create_task(batcher.submit(["a" * n, "b" * n])) for n in range(1, 6)]
    await queued(batcher, 5)  # ... and the others queue up behind it
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
    await pass_started(runner)
    rest = [asyncio.create_task(batcher.submit(["t"] * 3)) for _ in range(3)]
    await queued(batcher, 3)
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


async def test_a_micro_batch_runs_in_passes_of_texts_sorted_by_length() -> None:
    runner = RecordingRunner()
    batcher = MicroBatcher(runner, max_batch_size=32, max_wait_ms=0, pass_rows=2)
    texts = ["ccc", "a", "eeeee", "bb", "dddd"]
    rows = await batcher.submit(texts)
    await batcher.close()
    assert runner.batches == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]  # similar lengths pad together
    assert list(rows[:, 0]) == [3, 1, 5, 2, 4]  # and each row is back where its text was


def test_pass_rows_is_bounded_by_the_batch() -> None:
    assert MicroBatcher(RecordingRunner(), max_batch_size=4, pass_rows=16).pass_rows == 4
    assert MicroBatcher(RecordingRunner(), max_batch_size=4).pass_rows == 4
    with pytest.raises(ValueError, match="pass_rows"):
        MicroBatcher(RecordingRunner(), pass_rows=0)


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


async def test_one_failing_request_does_not_fail_the_others_of_its_batch() -> None:
    gate = threading.Event()
    runner = RecordingRunner(gate)
    batcher = MicroBatcher(runner, max_batch_size=32, max_wait_ms=0)
    first = asyncio.create_task(batcher.submit(["warm"]))
    await pass_started(runner)
    tasks = [asyncio.create_task(batcher.submit(texts)) for texts in (["good"], ["a", "boom"], ["fine too"])]
    await queued(batcher, 3)
    gate.set()
    await first
    good, bad, fine = await asyncio.gather(*tasks, return_exceptions=True)
    await batcher.close()
    assert runner.batches[1] == ["good", "a", "boom", "fine too"]  # the shared pass failed ...
    assert runner.batches[2:] == [["good"], ["a", "boom"], ["fine too"]]  # ... so each ran alone
    assert isinstance(bad, RuntimeError) and "boom" in str(bad)
    assert list(good[:, 0]) == [4] and list(fine[:, 0]) == [8]


async def test_a_full_queue_refuses_at_once() -> None:
    gate = threading.Event()
    runner = RecordingRunner(gate)
    batcher = MicroBatcher(runner, max_batch_size=1, max_wait_ms=0, max_queued=2)
    running = asyncio.create_task(batcher.submit(["running"]))
    await pass_started(runner)
    waiting = [asyncio.create_task(batcher.submit([f"w{i}"])) for i in range(2)]
    await queued(batcher, 2)
    with pytest.raises(BatcherFullError, match="2 requests are already waiting"):
        await batcher.submit(["one too many"])
    gate.set()
    await asyncio.gather(running, *waiting)
    await batcher.close()
    assert len(runner.batches) == 3


def test_max_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MicroBatcher(RecordingRunner(), max_batch_size=0)
