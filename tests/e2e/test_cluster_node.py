"""The single-node cluster of hack/cluster-up.sh does real work: a pod from a locally built image is scheduled,
started by kubelet through containerd with the CNI bridge, becomes Ready by its probe, is reachable through a
Service (kube-proxy), reaches the API server through the `kubernetes` Service, answers exec and logs (API server to
kubelet), is replaced by its ReplicaSet when deleted, and resolves Services by name (CoreDNS).

Runs where that cluster is up (`.ci/run` brings it up and sets MLP_CLUSTER_KUBECONFIG); skips otherwise:
    bash hack/cluster-up.sh && bash hack/cluster-load-images.sh ml-pipeline/operator:0.1.0
    pytest -m e2e tests/e2e/test_cluster_node.py
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.cluster_support import POD_PREFIX, Kubectl, cluster_or_skip

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

IMAGE = os.environ.get("MLP_CHECK_IMAGE", "ml-pipeline/operator:0.1.0")
NAMESPACE = "mlp-node-check"
APP = "web"


@pytest.fixture(scope="module")
def kubectl() -> Iterator[Kubectl]:
    kube = cluster_or_skip(NAMESPACE)
    kube("create", "namespace", NAMESPACE)
    try:
        yield kube
    finally:
        kube("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def _workload() -> str:
    # The operator image only as a small, locally built image with Python: a static file server on 8000, run the
    # way the chart runs the product (uid 10001, read-only root, writable /tmp from an emptyDir).
    container: dict[str, Any] = {
        "name": APP,
        "image": IMAGE,
        "imagePullPolicy": "Never",
        "command": ["python", "-m", "http.server", "8000", "--directory", "/tmp"],
        "ports": [{"containerPort": 8000}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 2},
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {"containers": [container], "volumes": [{"name": "tmp", "emptyDir": {}}]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": APP, "namespace": NAMESPACE},
        "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": 8000}]},
    }
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment, service]})


def _rolled_out(kubectl: Kubectl) -> None:
    try:
        kubectl("rollout", "status", "-n", NAMESPACE, f"deploy/{APP}", "--timeout=180s", timeout=200)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{kubectl.diagnostics()}") from exc


def _get_through_service(cluster_ip: str) -> int:
    # From the host, through kube-proxy's rules: retried briefly while the endpoints propagate.
    last: Exception | None = None
    for _ in range(30):
        try:
            with urllib.request.urlopen(f"http://{cluster_ip}/", timeout=5) as response:
                return int(response.status)
        except OSError as exc:
            last = exc
            time.sleep(1)
    raise AssertionError(f"service {cluster_ip}:80 unreachable: {last}")


def test_pod_from_local_image_runs_and_serves_through_a_service(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=_workload())
    _rolled_out(kubectl)
    pod = json.loads(kubectl("get", "pods", "-n", NAMESPACE, "-l", f"app={APP}", "-o", "json"))["items"][0]
    assert pod["status"]["podIP"].startswith(POD_PREFIX), pod["status"]["podIP"]

    cluster_ip = json.loads(kubectl("get", "service", "-n", NAMESPACE, APP, "-o", "json"))["spec"]["clusterIP"]
    assert _get_through_service(cluster_ip) == 200

    # exec and logs go from the API server to kubelet on the node IP.
    assert kubectl("exec", "-n", NAMESPACE, pod["metadata"]["name"], "--", "id", "-u").strip() == "10001"
    assert "GET / " in kubectl("logs", "-n", NAMESPACE, pod["metadata"]["name"])
    # A pod reaches the API server the way the operator does: the `kubernetes` Service from its environment.
    probe = (
        "import os, socket; socket.create_connection("
        "(os.environ['KUBERNETES_SERVICE_HOST'], int(os.environ['KUBERNETES_SERVICE_PORT'])), 5).close(); print('ok')"
    )
    assert kubectl("exec", "-n", NAMESPACE, pod["metadata"]["name"], "--", "python", "-c", probe).strip() == "ok"

    # The ReplicaSet replaces a deleted pod, and the Service follows it.
    kubectl("delete", "pod", "-n", NAMESPACE, pod["metadata"]["name"], "--wait=true", timeout=120)
    _rolled_out(kubectl)
    replacement = json.loads(kubectl("get", "pods", "-n", NAMESPACE, "-l", f"app={APP}", "-o", "json"))["items"]
    assert [p["metadata"]["name"] for p in replacement] != [pod["metadata"]["name"]]
    assert _get_through_service(cluster_ip) == 200


def test_pods_resolve_services_by_name(kubectl: Kubectl) -> None:
    # Runs after the test above: its Deployment and Service are up. CoreDNS (hack/cluster-up.sh) answers for
    # cluster.local, kubelet writes it and the namespace's search path into each pod's resolv.conf.
    kubectl("apply", "-f", "-", stdin=_workload())
    _rolled_out(kubectl)
    pod = json.loads(kubectl("get", "pods", "-n", NAMESPACE, "-l", f"app={APP}", "-o", "json"))["items"][0]
    web_ip = json.loads(kubectl("get", "service", "-n", NAMESPACE, APP, "-o", "json"))["spec"]["clusterIP"]
    api_ip = json.loads(kubectl("get", "service", "-n", "default", "kubernetes", "-o", "json"))["spec"]["clusterIP"]
    probe = (
        "import socket, urllib.request; "
        "print(socket.gethostbyname('kubernetes.default.svc.cluster.local')); "
        f"print(socket.gethostbyname('{APP}')); "
        f"print(urllib.request.urlopen('http://{APP}.{NAMESPACE}.svc/', timeout=10).status)"
    )
    out = kubectl("exec", "-n", NAMESPACE, pod["metadata"]["name"], "--", "python", "-c", probe)
    assert out.split() == [api_ip, web_ip, "200"], out
