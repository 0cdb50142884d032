"""A small Open Inference Protocol v2 client for the demo: real reviews in, labels and latencies out."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from predictor.feedback import FEEDBACK_PATH
from predictor.settings import MAX_TEXT_CHARS


@dataclass
class LoadResult:
    labels: list[str]
    latencies_ms: list[float]
    errors: int
    prediction_ids: list[str] = field(default_factory=list)  # "" where the request failed

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]


def v2_payload(texts: Sequence[str], **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": list(texts)}]
    }
    if parameters:
        body["parameters"] = parameters
    return body


def output(response: dict[str, Any], name: str) -> list[Any]:
    for item in response.get("outputs", []):
        if item.get("name") == name:
            return list(item.get("data", []))
    raise KeyError(f"response has no output named {name!r}")


def send_reviews(
    base_url: str, model: str, texts: Sequence[str], *, concurrency: int = 4, progress: Any = None
) -> LoadResult:
    """One request per review, `concurrency` at a time, as independent clients would send them."""
    url = f"{base_url}/v2/models/{model}/infer"
    labels: list[str] = [""] * len(texts)
    ids: list[str] = [""] * len(texts)
    latencies: list[float] = []
    errors = 0

    with httpx.Client(timeout=60) as client:

        def one(index: int) -> None:
            nonlocal errors
            started = time.perf_counter()
            response = client.post(url, json=v2_payload([texts[index]]))
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == 200:
                body = response.json()
                labels[index] = str(output(body, "label")[0])
                ids[index] = str(output(body, "prediction_id")[0])
                latencies.append(elapsed)
            else:
                errors += 1
            if progress is not None:
                progress.update(1)

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, range(len(texts))))
    return LoadResult(labels=labels, latencies_ms=latencies, errors=errors, prediction_ids=ids)


def accuracy(got: Sequence[str], want: Sequence[str]) -> float:
    """Share of answers equal to the true labels (a failed request, "", counts as wrong)."""
    return sum(1 for g, w in zip(got, want, strict=True) if g == w) / max(1, len(want))


def send_feedback(base_url: str, prediction_ids: Sequence[str], labels: Sequence[str]) -> tuple[int, int]:
    """The true label of each answered prediction (POST /v1/feedback), as a labelling tool would send it.
    Returns (accepted, refused)."""
    accepted = refused = 0
    with httpx.Client(timeout=30) as client:
        for prediction_id, label in zip(prediction_ids, labels, strict=True):
            if not prediction_id:
                continue
            response = client.post(f"{base_url}{FEEDBACK_PATH}", json={"prediction_id": prediction_id, "label": label})
            if response.status_code == 200:
                accepted += 1
            else:
                refused += 1
    return accepted, refused


BAD_REQUESTS: list[tuple[str, Any]] = [
    ("empty text", v2_payload([""])),
    (f"text over {MAX_TEXT_CHARS} characters", v2_payload(["x" * (MAX_TEXT_CHARS + 1)])),
    ("wrong tensor name", {"inputs": [{"name": "review", "datatype": "BYTES", "shape": [1], "data": ["ok"]}]}),
    ("wrong datatype", {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}),
    ("malformed JSON", b"{not json"),
]


def show_bad_requests(base_url: str, model: str) -> list[tuple[str, int, str]]:
    """Send requests a careless client would send; the predictor must answer each with a clear 400."""
    seen = []
    with httpx.Client(timeout=30) as client:
        for what, body in BAD_REQUESTS:
            url = f"{base_url}/v2/models/{model}/infer"
            if isinstance(body, bytes):
                response = client.post(url, content=body, headers={"content-type": "application/json"})
            else:
                response = client.post(url, json=body)
            try:
                message = str(response.json().get("error", response.text))
            except ValueError:
                message = response.text
            seen.append((what, response.status_code, message[:120]))
    return seen
