"""The chart on the single-node cluster of hack/cluster-up.sh, with the operator and predictor from their built
images and KServe's real controller (hack/kserve-up.sh, Standard mode): `helm install --wait` succeeds with the
operator pod Running and Ready; the operator, in its pod, reaches Postgres and migrates the schema; a ModelDeployment
of a version published to S3 becomes an InferenceService that KServe's CRD schema (v0.20.0) admits with the
operator's fields intact; KServe turns it into a Deployment and Service; the predictor pod fetches the version
itself (manifest-checked), becomes Ready, answers the v2 protocol through the Service, and logs the prediction to
Postgres with the deployment's identity; the ModelDeployment reports the version as serving.

Postgres and MinIO are the tests' own throwaway servers (loopback), reached by the pods through forwarders on the
node IP. Needs the cluster, KServe's controller, `ml-pipeline/{operator,predictor}:0.1.0` loaded into it and socat;
skips without them (fails under MLP_E2E_REQUIRED=1, as in .ci/run).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from tests.e2e.cluster_support import KUBECONFIG, NODE_IP, Kubectl, cluster_or_skip, unavailable
from tests.fixtures.models import publish_tiny_model
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.s3 import S3Server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "mlp-chart"
RELEASE = "ml-pipeline"
SECRET = "mlp-e2e-credentials"
DATABASE = "mlpipeline"
TAG = "0.1.0"
BUCKET = "mlpipeline"
MODEL_URI = f"s3://{BUCKET}/models/sentiment/1"
T = TypeVar("T")


@pytest.fixture(scope="module")
def kubectl() -> Kubectl:
    kube = cluster_or_skip(NAMESPACE)
    if shutil.which("socat") is None:
        unavailable("socat is needed to reach the test Postgres from pods (hack/docker-up.sh installs it)")
    return kube


@pytest.fixture(scope="module")
def kserve_controller(kubectl: Kubectl) -> None:
    """KServe's manager from hack/kserve-up.sh: without it an InferenceService is stored and never reconciled."""
    pid_file = KUBECONFIG.parent / "pids" / "kserve-manager"
    try:
        alive = Path("/proc", pid_file.read_text().strip()).is_dir()
    except OSError:
        alive = False
    if not alive:
        unavailable(f"KServe's controller is not running ({pid_file}): bash hack/kserve-up.sh")


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


@pytest.fixture(scope="module")
def database(postgres_server: PostgresServer) -> Iterator[tuple[str, int]]:
    postgres_server.create_database(DATABASE)
    try:
        with node_forwarder(postgres_server.port) as port:
            yield NODE_IP, port
    finally:
        postgres_server.drop_database(DATABASE)


@pytest.fixture(scope="module")
def object_store(s3_server: S3Server) -> Iterator[str]:
    """The test MinIO with a tiny model published at MODEL_URI (manifest last); yields the pods' endpoint URL."""
    s3_server.make_bucket(BUCKET)
    env = {
        "S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_DEFAULT_REGION": s3_server.region,
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        assert publish_tiny_model(f"s3://{BUCKET}", "sentiment", "1") == MODEL_URI
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    with node_forwarder(s3_server.port) as port:
        yield f"http://{NODE_IP}:{port}"


@pytest.fixture(scope="module")
def release(
    kubectl: Kubectl,
    kserve_controller: None,
    database: tuple[str, int],
    object_store: str,
    postgres_server: PostgresServer,
    s3_server: S3Server,
) -> Iterator[None]:
    # KServe's CRDs are hack/kserve-up.sh's (kserve_controller): the controller runs against them.
    kubectl("create", "namespace", NAMESPACE)
    try:
        host, port = database
        # The operator reads its settings from the chart; the predictors get this Secret whole (envFrom).
        kubectl(
            "create", "secret", "generic", SECRET, "-n", NAMESPACE,
            f"--from-literal=DB_HOST={host}", f"--from-literal=DB_PORT={port}", f"--from-literal=DB_NAME={DATABASE}",
            f"--from-literal=DB_USER={postgres_server.user}", f"--from-literal=DB_PASSWORD={postgres_server.password}",
            f"--from-literal=S3_ENDPOINT_URL={object_store}", f"--from-literal=AWS_DEFAULT_REGION={s3_server.region}",
            f"--from-literal=AWS_ACCESS_KEY_ID={s3_server.access_key}",
            f"--from-literal=AWS_SECRET_ACCESS_KEY={s3_server.secret_key}",
        )  # fmt: skip
        values = {
            "image.pullPolicy": "Never",
            "image.tag": TAG,
            "config.dbHost": host,
            "config.dbName": DATABASE,
            "config.dbUser": postgres_server.user,
            "database.existingSecret": SECRET,
            "s3.existingSecret": SECRET,
            "config.s3EndpointUrl": object_store,
            "config.s3Bucket": BUCKET,
            "operator.resources.limits.memory": "1Gi",
        }
        sets = [arg for key, value in values.items() for arg in ("--set-string", f"{key}={value}")]
        sets += ["--set", f"config.dbPort={port}"]  # an integer in the chart's schema
        try:
            kubectl.helm(
                "install", RELEASE, str(REPO / "charts/ml-pipeline"), "-n", NAMESPACE, "--wait", "--timeout", "6m",
                *sets, timeout=420,
            )  # fmt: skip
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{kubectl.diagnostics()}") from exc
        yield
    finally:
        kubectl("delete", "modeldeployments", "--all", "-n", NAMESPACE, "--wait=false", check=False)
        with contextlib.suppress(AssertionError):
            kubectl.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", timeout=180)
        kubectl("delete", "namespace", NAMESPACE, "--timeout=120s", check=False, timeout=150)


def test_operator_pod_is_ready_and_migrated_the_database(
    kubectl: Kubectl, release: None, postgres_server: PostgresServer
) -> None:
    selector = "app.kubernetes.io/component=operator"
    pods = json.loads(kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json"))
    assert len(pods["items"]) == 1, kubectl.diagnostics()
    pod = pods["items"][0]
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert pod["status"]["phase"] == "Running" and ready["Ready"] == "True", kubectl.diagnostics()
    assert pod["spec"]["containers"][0]["image"].endswith(f"ml-pipeline/operator:{TAG}")
    # The migrations ran from inside the pod, over the pod network to the host's Postgres.
    with psycopg.connect(postgres_server.libpq_url(DATABASE)) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"alembic_version", "prediction_logs"} <= tables, tables


def test_modeldeployment_becomes_an_inferenceservice_kserve_admits(kubectl: Kubectl, release: None) -> None:
    body = {
        "apiVersion": "mlpipeline.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "sentiment", "namespace": NAMESPACE},
        "spec": {
            "model": {"name": "sentiment", "version": "1", "storageUri": MODEL_URI},
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(body))
    deadline = time.monotonic() + 120
    isvc: dict[str, object] | None = None
    while time.monotonic() < deadline and isvc is None:
        out = kubectl("get", "inferenceservices.serving.kserve.io", "-n", NAMESPACE, "-o", "json")
        isvc = next(iter(json.loads(out)["items"]), None)
        if isvc is None:
            time.sleep(2)
    assert isvc is not None, f"the operator created no InferenceService\n{kubectl.diagnostics()}"
    predictor = isvc["spec"]["predictor"]  # type: ignore[index]
    # Stored under KServe's structural schema: an unknown field would have been pruned.
    assert predictor["containers"][0]["image"] == f"ml-pipeline/predictor:{TAG}", predictor
    assert predictor["labels"]["mlpipeline.io/role"] == "stable", predictor


def _wait(what: str, kubectl: Kubectl, probe: Callable[[], T | None], seconds: float = 420) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(3)
    raise AssertionError(f"{what} not within {seconds:.0f}s\n{kubectl.diagnostics()}")


def _get(kubectl: Kubectl, kind: str, name: str) -> dict[str, Any] | None:
    out = kubectl("get", kind, name, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out) if out.strip() else None


def _condition(body: dict[str, Any] | None, kind: str) -> str | None:
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    return next((c.get("status") for c in conditions if c.get("type") == kind), None)


def test_kserve_reconciles_it_into_a_predictor_that_serves_and_logs(
    kubectl: Kubectl, release: None, postgres_server: PostgresServer
) -> None:
    # Runs after the test above created the ModelDeployment (pytest keeps file order).
    deployment = _wait(
        "KServe's Deployment for the InferenceService",
        kubectl,
        lambda: _get(kubectl, "deployment", "sentiment-predictor"),
    )
    owners = {(o["kind"], o["name"]) for o in deployment["metadata"].get("ownerReferences", [])}
    assert ("InferenceService", "sentiment") in owners, deployment["metadata"]
    _wait(
        "the predictor Deployment available",
        kubectl,
        lambda: True if _condition(_get(kubectl, "deployment", "sentiment-predictor"), "Available") == "True" else None,
    )

    def isvc_ready() -> dict[str, Any] | None:
        body = _get(kubectl, "inferenceservices.serving.kserve.io", "sentiment")
        return body if _condition(body, "Ready") == "True" else None

    isvc = _wait("KServe reporting the InferenceService Ready", kubectl, isvc_ready, seconds=120)
    assert isvc["status"].get("components", {}).get("predictor") is not None, isvc["status"]

    # The v2 protocol through KServe's Service (kube-proxy routes the ClusterIP from the host too).
    service = _get(kubectl, "service", "sentiment-predictor")
    assert service is not None, kubectl.diagnostics()
    port = service["spec"]["ports"][0]["port"]
    url = f"http://{service['spec']['clusterIP']}:{port}/v2/models/sentiment/infer"
    request = {"id": "e2e-1", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["A fine film."]}]}
    reply = _post_json(url, request)
    assert reply["model_name"] == "sentiment" and reply["id"] == "e2e-1", reply
    outputs = {o["name"]: o for o in reply["outputs"]}
    assert outputs["label"]["data"][0] in ("negative", "positive"), reply

    # Logged off the request path, with the identity the operator gave the pod.
    def logged() -> tuple[str, str, str] | None:
        with psycopg.connect(postgres_server.libpq_url(DATABASE)) as conn:
            row = conn.execute(
                "SELECT deployment_id, role, model_version FROM prediction_logs WHERE request_id = %s",
                ("e2e-1",),
            ).fetchone()
        return (str(row[0]), str(row[1]), str(row[2])) if row else None

    assert _wait("the prediction's log row", kubectl, logged, seconds=60) == (f"{NAMESPACE}/sentiment", "stable", "1")

    def succeeded() -> dict[str, Any] | None:
        body = _get(kubectl, "modeldeployments", "sentiment")
        return body if body and (body.get("status") or {}).get("phase") == "Succeeded" else None

    md = _wait("the ModelDeployment to report version 1 serving", kubectl, succeeded, seconds=120)
    assert _condition(md, "Ready") == "True" and md["status"]["stable"]["version"] == "1", md["status"]


def _post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - an http:// URL this test built from the Service
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return dict(json.loads(response.read()))
