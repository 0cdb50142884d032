"""Operator benchmark: apply N ModelDeployments (default 50) to a real kube-apiserver + etcd and time how long
each takes until its InferenceService exists; report the operator's memory.

    .venv/bin/python benchmarks/operator.py            # 50 ModelDeployments
    .venv/bin/python benchmarks/operator.py --count 100

The operator runs as a child process (`python -m mlpipeline_operator`, cluster-wide, with kopf peering, the
liveness endpoint and /metrics on loopback ports), as its Deployment runs it, against a throwaway PostgreSQL.
Latency is measured from just before each create call to the ADDED event of its InferenceService on a watch
opened beforehand. The objects are created back to back (a burst), so the figures include queueing in the
operator. Goal: p95 at most 1 s. RSS is read from /proc for the operator process: idle before the burst, after it,
and its peak (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from kubernetes import client, watch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.operator_harness import install_crds, model_deployment, new_namespace, wait_for  # noqa: E402
from tests.fixtures.services import free_port, start_kube_apiserver, start_postgres  # noqa: E402


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()

    kube = start_kube_apiserver()
    postgres = start_postgres()
    operator: subprocess.Popen[bytes] | None = None
    log_path = Path(kube.workdir) / "operator.log"
    try:
        database_url = postgres.create_database("bench")
        api = kube.api_client()
        install_crds(api)
        client.CustomObjectsApi(api).create_cluster_custom_object(
            "kopf.dev",
            "v1",
            "clusterkopfpeerings",
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "mlpipeline-operator"}},
        )
        namespace = new_namespace(api, "bench")
        metrics_port, live_port = free_port(), free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kube.kubeconfig),
            "DATABASE_URL": database_url,
            "MLP_OPERATOR_MIGRATE_DATABASE": "true",
            "MLP_OPERATOR_METRICS_PORT": str(metrics_port),
            "MLP_OPERATOR_METRICS_ADDRESS": "127.0.0.1",
            "MLP_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{live_port}/healthz",
            "MLP_OPERATOR_TICK_SECONDS": "5",
        }
        with log_path.open("wb") as log:
            operator = subprocess.Popen(
                [sys.executable, "-m", "mlpipeline_operator"], env=env, stdout=log, stderr=subprocess.STDOUT
            )

        def live() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{live_port}/healthz", timeout=2) as resp:
                return resp.status == 200

        def alive_and_live() -> bool:
            if operator.poll() is not None:
                raise RuntimeError(f"operator exited; log:\n{log_path.read_text()[-3000:]}")
            try:
                return live()
            except OSError:
                return False

        wait_for(alive_and_live, "operator liveness endpoint", timeout=60)
        time.sleep(2)  # let the watch streams settle before measuring
        idle = rss_kib(operator.pid)

        objects = client.CustomObjectsApi(api)
        seen: dict[str, float] = {}
        listed = objects.list_namespaced_custom_object("serving.kserve.io", "v1beta1", namespace, "inferenceservices")
        stream = watch.Watch()

        def follow() -> None:
            for event in stream.stream(
                objects.list_namespaced_custom_object,
                "serving.kserve.io",
                "v1beta1",
                namespace,
                "inferenceservices",
                resource_version=listed["metadata"]["resourceVersion"],
                timeout_seconds=300,
            ):
                if event["type"] == "ADDED":
                    seen.setdefault(event["object"]["metadata"]["name"], time.perf_counter())
                    if len(seen) >= args.count:
                        stream.stop()

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        started: dict[str, float] = {}
        burst_start = time.perf_counter()
        for i in range(args.count):
            name = f"md-{i:03d}"
            started[name] = time.perf_counter()
            objects.create_namespaced_custom_object(
                "mlpipeline.io", "v1alpha1", namespace, "modeldeployments", model_deployment(name, "1")
            )
        create_s = time.perf_counter() - burst_start
        watcher.join(timeout=300)
        if len(seen) < args.count:
            raise RuntimeError(f"only {len(seen)} of {args.count} InferenceServices appeared")
        total_s = max(seen.values()) - burst_start
        latencies = [seen[name] - started[name] for name in started]
        time.sleep(1)
        after = rss_kib(operator.pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
            scraped = resp.read().decode()
        reconciles = sum(
            float(line.rsplit(" ", 1)[1])
            for line in scraped.splitlines()
            if line.startswith("mlpipeline_operator_reconciles_total{") and 'handler="create"' in line
        )
        result = {
            "count": args.count,
            "create_calls_s": round(create_s, 3),
            "all_inference_services_s": round(total_s, 3),
            "latency_p50_s": round(statistics.median(latencies), 3),
            "latency_p95_s": round(percentile(latencies, 95), 3),
            "latency_max_s": round(max(latencies), 3),
            "goal_p95_s": 1.0,
            "operator_rss_idle_mib": round(idle["VmRSS"] / 1024, 1),
            "operator_rss_after_mib": round(after["VmRSS"] / 1024, 1),
            "operator_rss_peak_mib": round(after["VmHWM"] / 1024, 1),
            "create_reconciles_scraped": reconciles,
            "cpu_count": os.cpu_count(),
        }
        print(json.dumps(result, indent=2))
        return 0 if result["latency_p95_s"] <= 1.0 else 1
    finally:
        if operator is not None and operator.poll() is None:
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
        postgres.close()
        kube.close()


if __name__ == "__main__":
    sys.exit(main())
