"""The demo's request progress: a bar on a terminal, plain periodic lines elsewhere."""

from __future__ import annotations

import io
import threading

import pytest

from mlpipeline_cli.progress import LineProgress, progress

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_every_few_seconds_and_one_at_the_end() -> None:
    out, clock = io.StringIO(), FakeClock()
    with LineProgress(100, "reviews", "req", every_seconds=10, out=out, clock=clock) as bar:
        for _ in range(100):
            clock.now += 0.5  # 2 requests a second: a line every 20 requests
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 5  # after 20, 40, 60 and 80 requests, then the closing line
    assert lines[0] == "reviews: 20/100 req (20%), 2.0 req/s, elapsed 0m10s, eta 0m40s"
    assert lines[-1].startswith("reviews: 100/100 req (100%)")


def test_updates_from_threads_are_all_counted() -> None:
    bar = LineProgress(400, "reviews", every_seconds=1e9, out=io.StringIO())
    workers = [threading.Thread(target=lambda: [bar.update() for _ in range(100)]) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert bar.n == 400


def test_the_choice_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from tqdm import tqdm

    monkeypatch.delenv("MLP_PROGRESS", raising=False)
    assert isinstance(progress(3, "reviews", out=io.StringIO()), LineProgress)  # captured stdout: no terminal
    bar = progress(3, "reviews", bars=True)
    assert isinstance(bar, tqdm)
    bar.close()
