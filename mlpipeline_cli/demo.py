"""`mlpipeline demo`: the whole loop on one machine — SQLite, local MLflow store, local files, no cluster.

Stages: assets -> train (quick) -> serve -> send held-out reviews (and bad requests) -> drift -> summary.
Each stage prints one line when it starts and one when it ends; a failure names the stage and stops the rest.
Running it again reuses what is done: the offline assets are cached and a published model is reused
(unless --retrain).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcore.config import get_settings, process_environment
from mlcore.errors import MLPipelineException, StorageError
from mlpipeline_cli.assets import ensure_imdb_csv, ensure_minilm
from mlpipeline_cli.client import LoadResult, accuracy, send_reviews, show_bad_requests
from mlpipeline_cli.loop_demo import LOOP_STAGES, run_loop
from mlpipeline_cli.progress import progress
from mlpipeline_cli.stages import StageFailed, StageRunner
from predictor.settings import MAX_TEXT_CHARS

DEPLOYMENT_ID = "local/sentiment"


def add_demo_parser(commands: Any) -> None:
    demo = commands.add_parser("demo", help="run the whole loop on this machine (SQLite + local files)")
    demo.add_argument("--requests", type=int, default=300, help="held-out reviews to send (default 300)")
    demo.add_argument("--concurrency", type=int, default=4, help="parallel clients (default 4)")
    demo.add_argument("--retrain", action="store_true", help="train again even if a published model exists")
    demo.add_argument(
        "--train-args",
        default="--quick",
        help="arguments for the training job (default: --quick); e.g. '--quick --max-length 64'",
    )
    demo.add_argument("--drift-args", default="", help="extra arguments for the drift job")
    demo.add_argument("--startup-timeout", type=float, default=300, help="seconds to wait for the predictor")
    demo.add_argument(
        "--loop",
        action="store_true",
        help="then the closed loop: drifted traffic -> alert -> retraining Job -> candidate -> served if better",
    )
    demo.add_argument(
        "--loop-requests", type=int, default=200, help="short snippets sent as drifted traffic (default 200)"
    )


@dataclass
class DemoState:
    """What a previous run left that this one can reuse; lives in MLP_HOME."""

    path: Path
    model_uri: str | None = None
    model_version: str | None = None
    retraining: dict[str, Any] | None = None  # status.retraining of the last --loop: the next one continues it

    @classmethod
    def load(cls, path: Path) -> DemoState:
        if path.is_file():
            data = json.loads(path.read_text())
            return cls(path, data.get("model_uri"), data.get("model_version"), data.get("retraining"))
        return cls(path)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"model_uri": self.model_uri, "model_version": self.model_version, "retraining": self.retraining}
        self.path.write_text(json.dumps(payload, indent=2))


def run_demo(args: argparse.Namespace) -> int:
    settings = get_settings()
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    state = DemoState.load(home / "demo-state.json")
    runner = StageRunner(total=6 + (LOOP_STAGES if args.loop else 0))
    predictor: subprocess.Popen[bytes] | None = None
    summary: dict[str, Any] = {}
    try:
        runner.run("prepare offline data and model", _prepare_assets, done=lambda p: f"IMDB CSV {p}")
        model_uri, version = runner.run(
            "train a quick model",
            lambda: _train(args, state),
            done=lambda r: f"model {r[0]}",
        )
        summary["model_uri"] = model_uri
        predictor, base_url = runner.run(
            "start the predictor",
            lambda: _serve(model_uri, version, home, args.startup_timeout),
            done=lambda r: f"listening on {r[1]}",
        )
        load = runner.run(
            "send held-out reviews",
            lambda: _send_traffic(base_url, args),
            done=lambda r: f"{len(r[0].latencies_ms)} answered, {r[0].errors} failed, {len(r[1])} bad requests refused",
        )
        summary["load"], _refused, summary["accuracy_live"] = load
        stop(predictor)
        predictor = None
        summary["drift"] = runner.run("run the drift job", lambda: run_drift(args), done=lambda r: r["headline"])
        if args.loop:
            summary["loop"] = run_loop(runner, args, state)
        runner.run("summarise", lambda: _print_summary(summary, settings))
        _print_timings(runner.timings)
        return 1 if summary.get("loop") is not None and summary["loop"].failed else 0
    except StageFailed as failure:
        print(f"\nFAILED at {failure}", file=sys.stderr)
        print("Fix the cause and run the same command again: finished stages are reused.", file=sys.stderr)
        return 1
    finally:
        if predictor is not None:
            stop(predictor)


def _prepare_assets() -> Path:
    ensure_minilm()
    return ensure_imdb_csv()


def run_process(command: list[str], env: dict[str, str]) -> int:
    """A component as a child process with this environment plus `env`; its output goes to the terminal."""
    return subprocess.run(command, env={**os.environ, **env}, check=False).returncode


def _component(module: str, *args: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", module, *args]
    code = run_process(command, env or {})
    if code != 0:
        raise MLPipelineException(f"`{shlex.join(command)}` exited with {code} (its output is above)")


def _latest_published(storage_uri: str, name: str) -> tuple[str, str] | None:
    from mlcore.model_version import models_prefix, version_prefix
    from mlcore.storage import list_versions, open_storage

    try:
        storage = open_storage(storage_uri)
        versions = list_versions(storage, models_prefix(name))
    except StorageError:
        return None
    if not versions:
        return None
    return storage.uri_for(version_prefix(name, versions[-1])), versions[-1]


def _model_is_usable(uri: str | None) -> bool:
    if not uri:
        return False
    from mlcore.errors import ManifestError
    from mlcore.storage import open_version, verify_version

    try:
        storage, prefix = open_version(uri)
        verify_version(storage, prefix)
    except (ManifestError, StorageError):
        return False
    return True


def _train(args: argparse.Namespace, state: DemoState) -> tuple[str, str]:
    settings = get_settings()
    train_args = shlex.split(args.train_args)
    if not args.retrain and state.model_uri and state.model_version and _model_is_usable(state.model_uri):
        print(f"      reusing {state.model_uri} (pass --retrain to train again)", flush=True)
        return state.model_uri, state.model_version
    name = settings.registered_model_name
    _component("training_job", *train_args, "--output", settings.effective_storage_uri, "--model-name", name)
    latest = _latest_published(settings.effective_storage_uri, name)
    if latest is None:
        raise MLPipelineException(f"the training job finished but published no version of {name!r}")
    state.model_uri, state.model_version = latest
    state.save()
    return latest


def local_rollout_id(version: str) -> str:
    """The rollout id of the local deployment's stable row while `version` serves."""
    return f"local-{version}"


def record_local_deployment(model_uri: str, version: str) -> None:
    """What the operator records on a cluster: which version the local deployment serves (the drift job reads it)."""
    from sqlalchemy import update

    from mlcore.db import ModelDeployment, create_db_engine, session_scope, upgrade_to_head

    engine = create_db_engine()
    upgrade_to_head(engine)
    rollout_id = local_rollout_id(version)
    with session_scope(engine) as session:
        session.execute(
            update(ModelDeployment)
            .where(
                ModelDeployment.deployment_id == DEPLOYMENT_ID,
                ModelDeployment.deployment_type == "stable",
                ModelDeployment.rollout_id != rollout_id,
            )
            .values(is_active=False, outcome="replaced")
        )
        exists = session.query(ModelDeployment).filter_by(deployment_id=DEPLOYMENT_ID, rollout_id=rollout_id).first()
        if exists is None:
            session.add(
                ModelDeployment(
                    deployment_id=DEPLOYMENT_ID,
                    namespace="local",
                    rollout_id=rollout_id,
                    deployment_type="stable",
                    model_name=get_settings().registered_model_name,
                    model_version=version,
                    storage_uri=model_uri,
                    is_active=True,
                    traffic_percent=100,
                    outcome="serving",
                )
            )
    engine.dispose()


def _serve(model_uri: str, version: str, home: Path, timeout: float) -> tuple[subprocess.Popen[bytes], str]:
    record_local_deployment(model_uri, version)
    return start_predictor(model_uri, version, home, timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_predictor(model_uri: str, version: str, home: Path, timeout: float) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    http_port, grpc_port = _free_port(), _free_port()
    log_path = home / "predictor.log"
    env = {
        **os.environ,
        "DEPLOYMENT_ID": DEPLOYMENT_ID,
        "DEPLOYMENT_ROLE": "stable",
        "MODEL_VERSION": version,
        "PREDICTOR_ALLOW_EMBEDDED_DB": "true",  # the demo's predictor logs into the embedded SQLite on purpose
    }
    command = [
        sys.executable, "-m", "predictor",
        "--model_name", "sentiment",
        "--storage_uri", model_uri,
        "--http_port", str(http_port),
        "--grpc_port", str(grpc_port),
    ]  # fmt: skip
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child; closed with it
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            raise MLPipelineException("the predictor exited during start-up:\n" + "\n".join(tail))
        try:
            if httpx.get(f"{base_url}/v2/models/sentiment/ready", timeout=2).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(process)
    raise MLPipelineException(f"the predictor was not ready after {timeout:.0f}s; see {log_path}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # graceful: the predictor flushes its log queue
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _held_out_reviews(count: int) -> tuple[list[str], list[str]]:
    """Reviews (and their labels) from the test split the training job holds out: never seen in training."""
    from training_job.cleaning import LABEL_NAMES, prepare
    from training_job.data import load_raw
    from training_job.splitting import split_dataset, stable_subset

    frame, _report = prepare(load_raw(str(ensure_imdb_csv())))
    test = split_dataset(frame).test
    # The predictor refuses texts over its limit (a 400 by design); a client would split such a review first.
    test = stable_subset(test[test["text"].str.len() <= MAX_TEXT_CHARS], count)
    return list(test["text"]), [LABEL_NAMES[int(label)] for label in test["label"]]


def _send_traffic(base_url: str, args: argparse.Namespace) -> tuple[LoadResult, list[tuple[str, int, str]], float]:
    texts, labels = _held_out_reviews(args.requests)
    with progress(len(texts), "      reviews", unit="req") as bar:
        result = send_reviews(base_url, "sentiment", texts, concurrency=args.concurrency, progress=bar)
    refused = show_bad_requests(base_url, "sentiment")
    for what, status, message in refused:
        print(f"      bad request ({what}): HTTP {status} {message}", flush=True)
    not_400 = [what for what, status, _ in refused if status != 400]
    if not_400:
        raise MLPipelineException(f"bad requests not answered with 400: {not_400}")
    return result, refused, accuracy(result.labels, labels)


def run_drift(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import func, select

    from mlcore.db import DriftRun, MonitoringAlert, PredictionLog, create_db_engine, session_scope

    # The window may end now: the predictor was stopped gracefully, so every log row has landed.
    _component(
        "drift_cronjob", "--deployment", DEPLOYMENT_ID, *shlex.split(args.drift_args), env={"DRIFT_WINDOW_DELAY_S": "0"}
    )
    engine = create_db_engine()
    with session_scope(engine) as session:
        rows = session.execute(
            select(func.count()).select_from(PredictionLog).where(PredictionLog.deployment_id == DEPLOYMENT_ID)
        ).scalar_one()
        run = (
            session.execute(
                select(DriftRun).where(DriftRun.deployment_id == DEPLOYMENT_ID).order_by(DriftRun.started_at.desc())
            )
            .scalars()
            .first()
        )
        alerts = session.execute(
            select(MonitoringAlert.alert_type, MonitoringAlert.message).where(
                MonitoringAlert.deployment_id == DEPLOYMENT_ID, MonitoringAlert.resolved.is_(False)
            )
        ).all()
    engine.dispose()
    if run is None:
        raise MLPipelineException("the drift job recorded no run")
    share = f"{run.drift_share:.0%} of columns drifted" if run.drift_share is not None else "no drift share"
    headline = f"{run.status}: {share}, {len(alerts)} open alerts" + (f" ({run.reason})" if run.reason else "")
    return {
        "rows_logged": rows,
        "status": run.status,
        "drift_share": run.drift_share,
        "report_uri": run.report_uri,
        "alerts": [f"{kind}: {message}" for kind, message in alerts],
        "headline": headline,
    }


def setup_timings(value: str | None) -> dict[str, float]:
    """`make run` passes how long its own steps took: MLP_SETUP_TIMINGS="venv + dependencies=12,offline assets=3"."""
    timings: dict[str, float] = {}
    for item in (value or "").split(","):
        name, _, seconds = item.rpartition("=")
        try:
            timings[name.strip()] = float(seconds)
        except ValueError:
            continue
    return {name: seconds for name, seconds in timings.items() if name}


def _print_timings(stages: dict[str, float], out: Any = None) -> None:
    """How long each stage took (the `make run` steps before the demo included), for the README's first-run figures."""
    rows = {**setup_timings(process_environment().mlp_setup_timings), **stages}
    width = max(len(name) for name in rows)
    lines = ["", "== time per stage =="]
    lines += [f"{name:<{width}}  {seconds:7.1f} s" for name, seconds in rows.items()]
    lines.append(f"{'total':<{width}}  {sum(rows.values()):7.1f} s")
    print("\n".join(lines), file=out or sys.stdout, flush=True)


def _print_summary(summary: dict[str, Any], settings: Any) -> None:
    from mlcore.model_version import read_card
    from mlcore.storage import open_version

    load: LoadResult = summary["load"]
    storage, prefix = open_version(summary["model_uri"])
    metrics = read_card(storage, prefix).metrics  # manifest-checked, like every reader of a version
    drift = summary["drift"]
    lines = [
        "",
        "== ml-pipeline demo summary ==",
        f"model                {summary['model_uri']}",
        f"local copy           {Path('models/final').resolve()}",
        f"test accuracy        {metrics.get('accuracy', float('nan')):.4f} (model card)",
        f"live accuracy        {summary['accuracy_live']:.4f} on {len(load.labels)} held-out reviews",
        f"client latency       p50 {load.percentile(50):.1f} ms, p95 {load.percentile(95):.1f} ms",
        f"rows logged          {drift['rows_logged']}",
        f"drift                {drift['headline']}",
        f"drift report         {drift['report_uri']}",
        f"database             {settings.sqlalchemy_url.render_as_string(hide_password=True)}",
        f"MLflow store         {settings.effective_tracking_uri}",
        "",
        "next:",
        f"  MLflow UI          .venv/bin/mlflow ui --backend-store-uri {settings.effective_tracking_uri}",
        "  Kubernetes         see docs/deploy-kubernetes.md (helm install / skaffold dev on kind)",
    ]
    for alert in drift["alerts"]:
        lines.insert(-4, f"open alert           {alert}")
    if summary.get("loop") is not None:
        lines[-4:-4] = summary["loop"].summary_lines()
    print("\n".join(lines), flush=True)
