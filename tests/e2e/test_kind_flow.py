"""End to end on a real kind cluster with KServe: skaffold run -> training Job -> ModelDeployment -> v2 inference ->
canary -> promotion -> drift CronJob run.

Prerequisites (docs/deploy-kubernetes.md, "kind" section, has the exact commands):
- docker, kind, kubectl, helm and skaffold (v2.16+) on PATH;
- a kind cluster whose context is current (`kind create cluster --name ml-pipeline` -> context kind-ml-pipeline),
  or MLP_E2E_CONTEXT naming another kind-* context;
- KServe (>= 0.15, RawDeployment mode is enough) and cert-manager installed in it.
It skips when no such cluster is reachable (fails instead under MLP_E2E_REQUIRED=1, like the node tests). `.ci/run`
does not run it: no kind node image can be pulled or built offline there, so CI runs the same flow on its single-node
cluster instead (test_chart_on_node.py, test_skaffold_on_node.py), less the training Job. Run it by hand on kind:
`pytest -m e2e tests/e2e/test_kind_flow.py`. It takes 20-40 minutes: two quick training runs on the cluster's CPUs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster_support import unavailable

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "ml-pipeline"
RELEASE = "ml-pipeline"
MODEL = "sentiment"
TOOLS = ("docker", "kind", "kubectl", "helm", "skaffold")


def _context() -> str | None:
    if shutil.which("kubectl") is None:
        return None
    wanted = os.environ.get("MLP_E2E_CONTEXT")
    if wanted:
        return wanted
    current = subprocess.run(["kubectl", "config", "current-context"], capture_output=True, text=True, check=False)
    name = current.stdout.strip()
    return name if current.returncode == 0 and name.startswith("kind-") else None


def _skip_reason() -> str | None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"e2e needs {', '.join(missing)} on PATH"
    context = _context()
    if context is None:
        return "no kind-* kube context is current (set MLP_E2E_CONTEXT to use another)"
    probe = subprocess.run(
        ["kubectl", "--context", context, "get", "crd", "inferenceservices.serving.kserve.io", "-o", "name"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"cluster {context} unreachable or without KServe: {probe.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="module")
def kube() -> Iterator[Any]:
    reason = _skip_reason()
    if reason:
        unavailable(reason)
    context = _context()
    assert context

    def kubectl(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["kubectl", "--context", context, "-n", NAMESPACE, *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            pytest.fail(f"`{' '.join(argv)}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    yield kubectl


def _step(name: str) -> None:
    print(f"\n=== e2e: {name} ({time.strftime('%H:%M:%S')})", flush=True)


def _wait_for(kubectl: Any, what: str, check: Any, timeout: float, interval: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    events = kubectl("get", "events", "--sort-by=.lastTimestamp", check=False).stdout[-3000:]
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last={last!r}\nevents:\n{events}")


def _modeldeployment(kubectl: Any) -> dict[str, Any]:
    return json.loads(kubectl("get", "modeldeployment", MODEL, "-o", "json").stdout)


def _apply_modeldeployment(kubectl: Any, version: str) -> None:
    body = {
        "apiVersion": "mlpipeline.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": MODEL, "namespace": NAMESPACE},
        "spec": {
            "model": {"name": MODEL, "version": version, "storageUri": f"s3://mlpipeline/models/{MODEL}/{version}"},
            "deploymentMode": "RawDeployment",
            "predictor": {"resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "3Gi"}}},
            "rollout": {
                "strategy": "Canary",
                "steps": [50, 100],
                "interval": "30s",
                "maxFailedChecks": 3,
                "analysis": {"window": "2m", "minRequests": 20, "maxErrorRate": 0.2, "maxLatencyP95Ms": 5000},
            },
        },
    }
    argv = ["kubectl", "--context", _context() or "", "apply", "-f", "-"]
    subprocess.run(argv, input=json.dumps(body), text=True, check=True, capture_output=True, timeout=60)


@contextmanager
def _port_forward(service: str, port: int = 80) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
    argv = [
        "kubectl",
        "--context",
        _context() or "",
        "-n",
        NAMESPACE,
        "port-forward",
        f"svc/{service}",
        f"{local}:{port}",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{local}"
        for _ in range(60):
            try:
                urllib.request.urlopen(f"{base}/v2/health/live", timeout=2)  # noqa: S310 (loopback only)
                break
            except OSError:
                time.sleep(1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _infer(base: str, texts: list[str]) -> dict[str, Any]:
    body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
    request = urllib.request.Request(  # noqa: S310 (loopback only)
        f"{base}/v2/models/{MODEL}/infer",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (loopback only)
        return json.loads(response.read())


REVIEWS = [
    "An absolute delight from start to finish, the cast is wonderful.",
    "Dull, predictable and far too long. I walked out.",
    "A moving story with a brilliant soundtrack.",
    "The worst script I have seen in years.",
]


def _send_traffic(service: str, batches: int) -> None:
    with _port_forward(service) as base:
        for _ in range(batches):
            result = _infer(base, REVIEWS)
            outputs = {o["name"]: o for o in result["outputs"]}
            assert set(outputs["label"]["data"]) <= {"positive", "negative"}


def _train(kubectl: Any, run_id: str) -> None:
    _step(f"training run {run_id}")
    if run_id != "1":
        subprocess.run(
            ["helm", "--kube-context", _context() or "", "upgrade", RELEASE, str(REPO / "charts" / "ml-pipeline"),
             "-n", NAMESPACE, "--reuse-values", "--set", f"training.runId={run_id}"],
            check=True, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    job = f"job/{RELEASE}-train-{run_id}"
    kubectl("wait", "--for=condition=complete", job, "--timeout=1800s", timeout=1900)


def test_kind_end_to_end(kube: Any) -> None:
    kubectl = kube
    _step("skaffold run -p kind (build 4 images, load into kind, helm install with dev dependencies)")
    subprocess.run(
        ["skaffold", "run", "-p", "kind", "--kube-context", _context() or "", "--status-check=true"],
        cwd=REPO, check=True, timeout=3600,
    )  # fmt: skip
    _train(kubectl, "1")

    _step("ModelDeployment version 1 -> stable InferenceService")
    _apply_modeldeployment(kubectl, "1")
    _wait_for(
        kubectl,
        "stable version 1",
        lambda: _modeldeployment(kubectl)["status"].get("stable", {}).get("version") == "1",
        900,
    )
    kubectl("wait", "--for=condition=Ready", f"inferenceservice/{MODEL}", "--timeout=900s", timeout=960)

    _step("v2 inference through the predictor Service")
    _send_traffic(f"{MODEL}-predictor", batches=5)

    _train(kubectl, "2")
    _step("canary: version 2 at 50% while both roles get traffic")
    _apply_modeldeployment(kubectl, "2")
    _wait_for(
        kubectl,
        "a canary",
        lambda: (_modeldeployment(kubectl)["status"].get("canary") or {}).get("version") == "2",
        900,
    )
    kubectl("wait", "--for=condition=Ready", f"inferenceservice/{MODEL}-canary", "--timeout=900s", timeout=960)

    def promoted() -> bool:
        _send_traffic(f"{MODEL}-predictor", batches=5)
        _send_traffic(f"{MODEL}-canary-predictor", batches=5)
        status = _modeldeployment(kubectl)["status"]
        assert status.get("phase") not in {"RolledBack", "Failed"}, status
        return status.get("stable", {}).get("version") == "2" and not status.get("canary")

    _step("analysis -> promotion")
    _wait_for(kubectl, "promotion of version 2", promoted, 1800, interval=15)

    _step("drift CronJob run")
    kubectl("create", "job", "--from=cronjob/ml-pipeline-drift", "drift-e2e")
    kubectl("wait", "--for=condition=complete", "job/drift-e2e", "--timeout=900s", timeout=960)
    logs = kubectl("logs", "job/drift-e2e").stdout
    assert logs.strip(), "the drift job printed nothing"
