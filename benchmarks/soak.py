"""Soak test: a real predictor on loopback logging to a real Postgres under c=32 for a bounded time.

    .venv/bin/python benchmarks/soak.py                       # 10 minutes (the issue's goal)
    .venv/bin/python benchmarks/soak.py --duration 120        # shortened

Prints, side by side: requests answered (200 / 400 / 5xx / transport errors), the predictor's RSS over time
(first sample after warm-up, last, max, last/first), and the prediction log rows that never reached the database
(every 200 must be one row per text; bad requests are mixed in to exercise the refusal paths). Goals: RSS flat
(last/first <= 1.10), 0 lost rows, 0 5xx. The model is the test suite's tiny one (tests/fixtures/models.py), so the
load is on the server, the batcher and the log writer rather than on a transformer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

from tests.fixtures.models import publish_tiny_model  # noqa: E402
from tests.fixtures.postgres import start_postgres  # noqa: E402
from tests.fixtures.predictor_server import (  # noqa: E402
    count_logged_predictions,
    fresh_database,
    start_predictor,
    wait_for,
)

GOAL_RSS_GROWTH = 1.10
BAD_SHARE = 0.05  # requests the predictor must refuse with 400 (NUL, over-long request id)


@dataclass
class Tally:
    ok_texts: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def count(self, key: str) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def client(base_url: str, stop_at: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        while time.monotonic() < stop_at:
            n = rng.randint(1, 4)
            texts = [f"soak review {uuid.uuid4()} " + "word " * rng.randint(1, 60) for _ in range(n)]
            headers = {"x-request-id": f"soak-{uuid.uuid4()}"}
            bad = rng.random() < BAD_SHARE
            if bad:
                if rng.random() < 0.5:
                    texts[0] += "\x00"
                else:
                    headers["x-request-id"] = "x" * 200
            body = {"inputs": [{"name": "text", "shape": [n], "datatype": "BYTES", "data": texts}]}
            try:
                response = await http.post("/v2/models/sentiment/infer", json=body, headers=headers)
            except httpx.HTTPError as exc:
                tally.count(f"transport:{type(exc).__name__}")
                continue
            code = response.status_code
            tally.count("5xx" if code >= 500 else str(code))
            if code == 200:
                tally.ok_texts += n


async def drive(base_url: str, pid: int, duration: float, concurrency: int, tally: Tally) -> list[tuple[float, int]]:
    start = time.monotonic()
    stop_at = start + duration
    tasks = [asyncio.create_task(client(base_url, stop_at, tally, seed)) for seed in range(concurrency)]
    samples: list[tuple[float, int]] = []
    while time.monotonic() < stop_at:
        samples.append((time.monotonic() - start, rss_kib(pid)))
        await asyncio.sleep(min(10.0, max(1.0, duration / 20)))
    await asyncio.gather(*tasks)
    samples.append((time.monotonic() - start, rss_kib(pid)))
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=0.2, help="share of the run before the first RSS sample")
    args = parser.parse_args()

    postgres = start_postgres()
    process = None
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
            model_uri = publish_tiny_model(Path(tmp, "store").as_uri(), "sentiment", "1")
            db_url = fresh_database(postgres)
            process = start_predictor(Path(tmp, "p"), ["--model_dir", model_uri.removeprefix("file://")], db_url)
            assert process._process is not None
            pid = process._process.pid
            tally = Tally()
            samples = asyncio.run(drive(process.base_url, pid, args.duration, args.concurrency, tally))
            with contextlib.suppress(AssertionError):  # a shortfall is reported below as lost rows
                wait_for(lambda: count_logged_predictions(db_url) >= tally.ok_texts, "the log rows", timeout=120)
            rows = count_logged_predictions(db_url)
            rejected = list(Path(tmp, "p", "spill").glob("rejected-*.jsonl"))
            process.stop()
    finally:
        if process is not None:
            process.stop()
        postgres.close()

    warm = [kib for at, kib in samples if at >= args.duration * args.warmup] or [samples[-1][1]]
    first, last, peak = warm[0], samples[-1][1], max(kib for _, kib in samples)
    requests = sum(tally.statuses.values())
    lost = tally.ok_texts - rows
    print(f"soak: c={args.concurrency}, {args.duration:.0f}s, {requests} requests ({requests / args.duration:.1f}/s)")
    print(f"  answers           {dict(sorted(tally.statuses.items()))}")
    print(f"  texts answered    {tally.ok_texts}   rows in prediction_logs {rows}   lost {lost}   (goal 0)")
    print(f"  rejected-*.jsonl  {len(rejected)} (bad rows never reach the writer: goal 0)")
    print(f"  predictor RSS MiB first {first / 1024:.1f}  last {last / 1024:.1f}  max {peak / 1024:.1f}")
    print(f"  RSS last/first    {last / first:.3f}   (goal <= {GOAL_RSS_GROWTH})")
    print("  RSS samples (s, MiB): " + ", ".join(f"{at:.0f}:{kib / 1024:.0f}" for at, kib in samples))
    ok = lost == 0 and "5xx" not in tally.statuses and last / first <= GOAL_RSS_GROWTH
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
