"""Shadow mirroring without a service mesh: the stable predictor forwards a sampled copy of its requests' texts to
the shadow predictor, off the request path.

`offer()` is all the request path pays: one random draw and a non-blocking put on a bounded queue. A daemon thread
posts the copies (v1 protocol) with the stable prediction's request id in `x-mirrored-request-id`; the shadow logs
its rows with role shadow and that id, which the operator's agreement analysis joins on. A full queue (shadow slow
or down) drops the copy, and so does a failed post: both are counted, never retried, never waited for.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
from collections.abc import Callable

import httpx
from prometheus_client import Counter

log = logging.getLogger(__name__)

MIRROR_HEADER = "x-mirrored-request-id"

MIRRORED = Counter(
    "mlp_mirror_requests_total",
    "Requests offered to the shadow predictor, by outcome: sent, dropped_queue_full, failed.",
    ["outcome"],
)
for _outcome in ("sent", "dropped_queue_full", "failed"):
    MIRRORED.labels(_outcome)


class Mirror:
    def __init__(
        self,
        url: str,
        percent: float,
        *,
        queue_size: int = 1000,
        timeout_s: float = 2.0,
        draw: Callable[[], float] = random.random,
        client: httpx.Client | None = None,
    ) -> None:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"mirror percent must be within 0..100, got {percent}")
        self.url = url
        self.percent = percent
        self._draw = draw
        self._queue: queue.Queue[tuple[list[str], str] | None] = queue.Queue(maxsize=queue_size)
        self._client = client or httpx.Client(timeout=timeout_s)
        self._thread: threading.Thread | None = None

    def offer(self, texts: list[str], request_id: str) -> bool:
        """Queue a copy of this request for the shadow (sampled at `percent`); never blocks. True when queued."""
        if self._draw() * 100.0 >= self.percent:
            return False
        try:
            self._queue.put_nowait((list(texts), request_id))
        except queue.Full:
            MIRRORED.labels("dropped_queue_full").inc()
            return False
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shadow-mirror", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the copies already queued (or when `timeout` runs out: the rest are dropped)."""
        if self._thread is not None:
            with contextlib.suppress(queue.Full):  # full even after the timeout: the daemon thread dies with us
                self._queue.put(None, timeout=timeout)
            self._thread.join(timeout)
            self._thread = None
        self._client.close()

    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            texts, request_id = item
            try:
                response = self._client.post(
                    self.url,
                    json={"instances": texts},
                    headers={"x-request-id": request_id, MIRROR_HEADER: request_id},
                )
                response.raise_for_status()
                MIRRORED.labels("sent").inc()
            except httpx.HTTPError as exc:
                MIRRORED.labels("failed").inc()
                log.debug("mirror to %s failed: %s", self.url, exc)
