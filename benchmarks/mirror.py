"""Shadow mirroring benchmark: does mirroring cost the stable predictor latency? Three real stable predictor processes
(tiny model, Postgres logging), one per mode, measured in one run, side by side:

    .venv/bin/python benchmarks/mirror.py                # 300 requests per mode
    .venv/bin/python benchmarks/mirror.py --requests 1000

  off   no mirroring
  slow  every request mirrored (100%) to a stand-in shadow that takes 200 ms per copy (the queue fills, copies drop)
  down  every request mirrored to a port nobody listens on (every copy fails)

The three run at once and get one sequential single-text request each in turn (keep-alive HTTP), so a busy machine
slows every mode alike. Also
printed: the cost of one Mirror.offer() call, and the mirror counters of each mode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from predictor.mirror import Mirror  # noqa: E402
from tests.fixtures.models import publish_tiny_model  # noqa: E402
from tests.fixtures.predictor_server import PredictorProcess, fresh_database, start_predictor  # noqa: E402
from tests.fixtures.process import free_port  # noqa: E402
from tests.fixtures.services import start_postgres  # noqa: E402


class SlowShadow(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        time.sleep(0.2)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * q / 100))]


def mirror_counters(base_url: str) -> dict[str, float]:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return {
        line.split('outcome="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mlp_mirror_requests_total{")
    }


def start_mode(tmp: Path, model_dir: str, db_url: str, mirror_url: str | None) -> PredictorProcess:
    env = {"DEPLOYMENT_ROLE": "stable", "MODEL_VERSION": "1", "PREDICTOR_MIRROR_QUEUE_SIZE": "100"}
    if mirror_url:
        env |= {
            "PREDICTOR_MIRROR_URL": mirror_url,
            "PREDICTOR_MIRROR_PERCENT": "100",
            "PREDICTOR_MIRROR_TIMEOUT_S": "1",
        }
    return start_predictor(tmp, ["--model_dir", model_dir], db_url, env)


def measure(processes: dict[str, PredictorProcess], requests: int) -> dict[str, dict[str, object]]:
    """Round-robin over the modes, one request each in turn, so a busy machine slows every mode alike."""
    clients = {mode: httpx.Client(base_url=p.base_url, timeout=30) for mode, p in processes.items()}
    latencies: dict[str, list[float]] = {mode: [] for mode in processes}
    try:
        for i in range(20 + requests):
            for mode, client in clients.items():
                started = time.perf_counter()
                response = client.post("/v1/models/sentiment:predict", json={"instances": [f"a review {i}"]})
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if i >= 20:  # after a warm-up
                    latencies[mode].append(elapsed)
    finally:
        for client in clients.values():
            client.close()
    return {
        mode: {
            "p50": statistics.median(values),
            "p95": percentile(values, 95),
            "mirror": mirror_counters(processes[mode].base_url),
        }
        for mode, values in latencies.items()
    }


def offer_cost_us(calls: int = 100_000) -> float:
    mirror = Mirror("http://127.0.0.1:9/", 100, queue_size=10)  # never started: the queue is full after 10
    started = time.perf_counter()
    for i in range(calls):
        mirror.offer(["text"], str(i))
    return (time.perf_counter() - started) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowShadow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    slow_url = f"http://127.0.0.1:{server.server_port}/v1/models/sentiment:predict"
    down_url = f"http://127.0.0.1:{free_port()}/v1/models/sentiment:predict"
    postgres = start_postgres()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = publish_tiny_model(Path(tmp).as_uri() + "/store", "sentiment", "1").removeprefix("file://")
            db_url = fresh_database(postgres)
            modes = {"off": None, "slow": slow_url, "down": down_url}
            processes: dict[str, PredictorProcess] = {}
            try:
                for mode, url in modes.items():
                    processes[mode] = start_mode(Path(tmp) / mode, model_dir, db_url, url)
                results = measure(processes, args.requests)
            finally:
                for process in processes.values():
                    process.stop()
    finally:
        postgres.close()
        server.shutdown()

    base = results["off"]
    print(f"stable predictor latency, {args.requests} sequential single-text requests per mode")
    print(f"{'mode':<5} {'p50 ms':>8} {'p95 ms':>8} {'p50/off':>8} {'p95/off':>8}  mirror counters")
    for mode, row in results.items():
        print(
            f"{mode:<5} {row['p50']:>8.2f} {row['p95']:>8.2f} {row['p50'] / base['p50']:>8.2f}"
            f" {row['p95'] / base['p95']:>8.2f}  {row['mirror']}"
        )
    print(f"Mirror.offer() on a full queue: {offer_cost_us():.2f} us per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
