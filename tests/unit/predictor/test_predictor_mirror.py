"""predictor.mirror against a real loopback HTTP server: sampling, what is forwarded, and drops that never block."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from predictor.mirror import MIRROR_HEADER, MIRRORED, Mirror
from tests.fixtures.process import free_port

pytestmark = pytest.mark.unit


class Shadow:
    """A stand-in shadow predictor: records what reaches it; `delay_s` makes it slow."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.received: list[tuple[dict, dict]] = []
        self.delay_s = delay_s
        shadow = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                time.sleep(shadow.delay_s)
                shadow.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/models/sentiment:predict"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shadow() -> Iterator[Shadow]:
    running = Shadow()
    yield running
    running.stop()


def count(outcome: str) -> float:
    return MIRRORED.labels(outcome)._value.get()


def test_sampled_copies_reach_the_shadow_with_the_stable_request_id(shadow: Shadow) -> None:
    draws = iter([0.10, 0.70, 0.49, 0.99])
    mirror = Mirror(shadow.url, 50, draw=lambda: next(draws))
    mirror.start()
    sent_before = count("sent")
    assert [mirror.offer([f"text {i}"], f"req-{i}") for i in range(4)] == [True, False, True, False]
    mirror.close()
    assert count("sent") - sent_before == 2
    assert [(body, headers[MIRROR_HEADER], headers["x-request-id"]) for body, headers in shadow.received] == [
        ({"instances": ["text 0"]}, "req-0", "req-0"),
        ({"instances": ["text 2"]}, "req-2", "req-2"),
    ]


def test_a_slow_shadow_costs_drops_not_waiting() -> None:
    slow = Shadow(delay_s=0.5)
    try:
        mirror = Mirror(slow.url, 100, queue_size=2, timeout_s=5)
        mirror.start()
        dropped_before = count("dropped_queue_full")
        queued = [mirror.offer(["t"], f"r{i}") for i in range(20)]
        # offer() never waits for room: beyond the one in flight and the two queued, copies are dropped and counted.
        assert sum(queued) <= 3 and count("dropped_queue_full") - dropped_before == 20 - sum(queued)
        mirror.close(timeout=3)
    finally:
        slow.stop()


def test_a_shadow_that_is_down_is_counted_as_failed() -> None:
    mirror = Mirror(f"http://127.0.0.1:{free_port()}/v1/models/sentiment:predict", 100, timeout_s=1)
    mirror.start()
    failed_before = count("failed")
    assert mirror.offer(["t"], "r1")
    mirror.close()
    assert count("failed") - failed_before == 1


def test_percent_is_checked() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        Mirror("http://x", 101)
