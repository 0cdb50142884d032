"""Shared by the tests that run on the single-node cluster of hack/cluster-up.sh: where it is, and kubectl/helm."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.fixtures.models import publish_tiny_model
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.s3 import S3Server

TOOLS = Path(os.environ.get("MLP_TOOLS_DIR", Path.home() / ".cache/ml-pipeline/tools")) / "bin"
KUBECONFIG = Path(
    os.environ.get("MLP_CLUSTER_KUBECONFIG", Path.home() / ".cache/ml-pipeline/cluster/run/admin.kubeconfig")
)
# The node IP is the gateway of the cluster's pod bridge (hack/cluster-env.sh): pods reach the host there.
NODE_IP = os.environ.get("MLP_NODE_IP", "10.217.0.1")
POD_PREFIX = os.environ.get("MLP_POD_PREFIX", "10.217.")
T = TypeVar("T")
# The database and bucket the product uses on the node (tests/e2e/conftest.py creates them on the test servers).
DATABASE = "mlpipeline"
BUCKET = "mlpipeline"


class Kubectl:
    """kubectl (and helm) against the cluster; a failure raises with stderr, and diagnostics() says why."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.argv = [str(TOOLS / "kubectl"), "--kubeconfig", str(kubeconfig)]

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 180, check: bool = True) -> str:
        return self._run([*self.argv, *args], stdin, timeout, check)

    def helm(self, *args: str, timeout: float = 600) -> str:
        return self._run([str(TOOLS / "helm"), "--kubeconfig", str(self.kubeconfig), *args], None, timeout, True)

    @staticmethod
    def _run(argv: list[str], stdin: str | None, timeout: float, check: bool) -> str:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv[:1] + argv[3:])} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """One object of the namespace, None when it does not exist."""
        out = self("get", kind, name, "-n", self.namespace, "-o", "json", check=False)
        return json.loads(out) if out.strip() else None

    def wait(self, what: str, probe: Callable[[], T | None], seconds: float = 420, every: float = 3) -> T:
        """Poll `probe` until it returns something; fail with the diagnostics when it never does."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = probe()
            if found is not None:
                return found
            time.sleep(every)
        raise AssertionError(f"{what} not within {seconds:.0f}s\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        """What a person would look at first when something is not Ready: objects, events, pods, their logs."""
        ns = ["-n", self.namespace]
        parts = [self("get", "all,events", *ns, "-o", "wide", check=False)]
        parts.append(self("describe", "pods", *ns, check=False))
        for pod in self("get", "pods", *ns, "-o", "name", check=False).split():
            parts.append(f"--- logs {pod}\n" + self("logs", *ns, pod, "--all-containers", "--tail=60", check=False))
        return "\n".join(parts)


def unavailable(reason: str) -> None:
    """Skip where the cluster is optional; fail where the caller brought it up for these tests (.ci/run sets
    MLP_E2E_REQUIRED=1), so a cluster stage can never pass by skipping everything."""
    if os.environ.get("MLP_E2E_REQUIRED") == "1":
        pytest.fail(f"the cluster e2e tests are required here: {reason}")
    pytest.skip(reason)


def cluster_or_skip(namespace: str, *, node_services: bool = False) -> Kubectl:
    """kubectl for `namespace` on the running cluster; `node_services`: the product's pods will reach the tests'
    Postgres and MinIO through socat forwarders on the node IP (node_forwarder), so socat is needed too."""
    if node_services and shutil.which("socat") is None:
        unavailable("socat is needed to reach the test Postgres from pods (hack/docker-up.sh installs it)")
    if not KUBECONFIG.is_file() or not (TOOLS / "kubectl").is_file():
        unavailable(f"no cluster from hack/cluster-up.sh ({KUBECONFIG} absent)")
    kube = Kubectl(KUBECONFIG, namespace)
    try:
        kube("get", "--raw", "/readyz", timeout=10)
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        unavailable(f"cluster at {KUBECONFIG} not answering: {exc}")
    return kube


def condition(body: dict[str, Any] | None, kind: str) -> str | None:
    """The status ("True"/"False"/"Unknown") of one condition of an object, None when it has none."""
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    return next((c.get("status") for c in conditions if c.get("type") == kind), None)


def post_json(url: str, body: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - an http:// URL the caller built from a Service
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def post_when_routed(url: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """post_json, or None while the Service refuses the connection: a pod reported Ready reaches kube-proxy's
    rules through the EndpointSlice controller a moment later, so the first requests can meet a Service with no
    endpoint yet (kube-proxy rejects those). Any other failure raises."""
    try:
        return post_json(url, body)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return None
        raise


@contextlib.contextmanager
def node_forwarder(loopback_port: int) -> Iterator[int]:
    """A port on NODE_IP (pods reach the node IP directly) forwarded by socat to a loopback-only test server."""
    with socket.socket() as sock:
        sock.bind((NODE_IP, 0))
        port = int(sock.getsockname()[1])
    forwarder = subprocess.Popen(
        ["socat", f"TCP-LISTEN:{port},bind={NODE_IP},fork,reuseaddr", f"TCP:127.0.0.1:{loopback_port}"]
    )
    try:
        yield port
    finally:
        forwarder.terminate()
        forwarder.wait(timeout=10)


@contextlib.contextmanager
def s3_environment(s3_server: S3Server) -> Iterator[None]:
    """The test MinIO as the core storage's S3 (publishing goes through mlcore, as the training job's does)."""
    env = {
        "S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_DEFAULT_REGION": s3_server.region,
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def publish(s3_server: S3Server, version: str) -> str:
    """A tiny model published as `version` (manifest last); its URI. Every version has the same seeded weights,
    so a healthy candidate predicts what the stable model does."""
    with s3_environment(s3_server):
        return publish_tiny_model(f"s3://{BUCKET}", "sentiment", version)


def site_values(
    kubectl: Kubectl,
    secret: str,
    database: tuple[str, int],
    object_store: str,
    postgres_server: PostgresServer,
    s3_server: S3Server,
) -> dict[str, Any]:
    """Point the chart at the tests' Postgres and MinIO: creates `secret` in kubectl's namespace (the predictors get
    it whole, envFrom) and returns the chart values that name it, as a site's values file would."""
    host, port = database
    kubectl(
        "create", "secret", "generic", secret, "-n", kubectl.namespace,
        f"--from-literal=DB_HOST={host}", f"--from-literal=DB_PORT={port}", f"--from-literal=DB_NAME={DATABASE}",
        f"--from-literal=DB_USER={postgres_server.user}", f"--from-literal=DB_PASSWORD={postgres_server.password}",
        f"--from-literal=S3_ENDPOINT_URL={object_store}", f"--from-literal=AWS_DEFAULT_REGION={s3_server.region}",
        f"--from-literal=AWS_ACCESS_KEY_ID={s3_server.access_key}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={s3_server.secret_key}",
    )  # fmt: skip
    return {
        "config": {
            "dbHost": host,
            "dbPort": port,
            "dbName": DATABASE,
            "dbUser": postgres_server.user,
            "s3EndpointUrl": object_store,
            "s3Bucket": BUCKET,
        },
        "database": {"existingSecret": secret},
        "s3": {"existingSecret": secret},
    }


def infer_url(kubectl: Kubectl, isvc: str) -> str:
    """The v2 infer URL of an InferenceService's predictor Service (kube-proxy routes its ClusterIP from the host)."""
    service = kubectl.get("service", f"{isvc}-predictor")
    assert service is not None, kubectl.diagnostics()
    return f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}/v2/models/sentiment/infer"


def infer_request(request_id: str, text: str) -> dict[str, Any]:
    return {"id": request_id, "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}


def ready_inference_service(kubectl: Kubectl, isvc: str) -> dict[str, Any] | None:
    body = kubectl.get("inferenceservices.serving.kserve.io", isvc)
    return body if condition(body, "Ready") == "True" else None


@contextlib.contextmanager
def release_namespace(kubectl: Kubectl, uninstall: Callable[[], object]) -> Iterator[None]:
    """kubectl's namespace, created for one release of the chart. On the way out the ModelDeployments are deleted
    first (the operator must still run to release their finalizers), then the release (`uninstall`, best effort),
    then the namespace."""
    kubectl("create", "namespace", kubectl.namespace)
    try:
        yield
    finally:
        kubectl("delete", "modeldeployments", "--all", "-n", kubectl.namespace, "--wait=false", check=False)
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            uninstall()
        kubectl("delete", "namespace", kubectl.namespace, "--timeout=120s", check=False, timeout=150)
