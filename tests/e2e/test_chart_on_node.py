"""The chart on the single-node cluster of hack/cluster-up.sh, with the operator from its built image:
`helm install --wait` succeeds with the operator pod Running and Ready; the operator, in its pod, reaches Postgres
and migrates the schema; a ModelDeployment becomes an InferenceService that KServe's real CRD schema (v0.20.0,
hack/fetch-kserve-crds.sh) admits with the operator's fields intact. KServe's controller is not running yet: the
InferenceService is stored, not reconciled.

Postgres is the tests' own throwaway server (loopback), reached by the pods through a forwarder on the node IP.
Needs the cluster, `ml-pipeline/operator:0.1.0` loaded into it, socat and Go (for the CRDs); skips without them.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.cluster_support import NODE_IP, Kubectl, cluster_or_skip, unavailable
from tests.fixtures.kserve import kserve_dir
from tests.fixtures.postgres import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "mlp-chart"
RELEASE = "ml-pipeline"
SECRET = "mlp-e2e-credentials"
DATABASE = "mlpipeline"
TAG = "0.1.0"


@pytest.fixture(scope="module")
def kubectl() -> Kubectl:
    kube = cluster_or_skip(NAMESPACE)
    if shutil.which("socat") is None:
        unavailable("socat is needed to reach the test Postgres from pods (hack/docker-up.sh installs it)")
    return kube


@pytest.fixture(scope="module")
def database(postgres_server: PostgresServer) -> Iterator[tuple[str, int]]:
    """The test Postgres on NODE_IP:<port> (pods reach the node IP directly): a socat forwarder to loopback."""
    postgres_server.create_database(DATABASE)
    with socket.socket() as sock:
        sock.bind((NODE_IP, 0))
        port = sock.getsockname()[1]
    forwarder = subprocess.Popen(
        ["socat", f"TCP-LISTEN:{port},bind={NODE_IP},fork,reuseaddr", f"TCP:127.0.0.1:{postgres_server.port}"]
    )
    try:
        yield NODE_IP, port
    finally:
        forwarder.terminate()
        forwarder.wait(timeout=10)
        postgres_server.drop_database(DATABASE)


@pytest.fixture(scope="module")
def release(kubectl: Kubectl, database: tuple[str, int], postgres_server: PostgresServer) -> Iterator[None]:
    kubectl("apply", "--server-side", "-f", str(kserve_dir() / "crds"))
    # Right after creation a CRD has no conditions yet, which `kubectl wait` reports as an error: retry briefly.
    for _ in range(30):
        established = kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=5s", check=False)
        if "condition met" in established:
            break
        time.sleep(1)
    kubectl("create", "namespace", NAMESPACE)
    try:
        kubectl(
            "create", "secret", "generic", SECRET, "-n", NAMESPACE,
            f"--from-literal=DB_PASSWORD={postgres_server.password}",
            "--from-literal=AWS_ACCESS_KEY_ID=unused-in-this-test",
            "--from-literal=AWS_SECRET_ACCESS_KEY=unused-in-this-test",
        )  # fmt: skip
        host, port = database
        values = {
            "image.pullPolicy": "Never",
            "image.tag": TAG,
            "config.dbHost": host,
            "config.dbName": DATABASE,
            "config.dbUser": postgres_server.user,
            "database.existingSecret": SECRET,
            "s3.existingSecret": SECRET,
            "operator.resources.limits.memory": "1Gi",
        }
        sets = [arg for key, value in values.items() for arg in ("--set-string", f"{key}={value}")]
        sets += ["--set", f"config.dbPort={port}"]  # an integer in the chart's schema
        # No model version is published for this test (no S3 here yet): it checks KServe's schema, not the storage.
        sets += ["--set", "operator.verifyModels=false"]
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
        "spec": {"model": {"name": "sentiment", "version": "1", "storageUri": "s3://mlpipeline/models/sentiment/1"}},
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
