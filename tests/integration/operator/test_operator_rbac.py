"""The operator under exactly the RBAC the README lists for namespace scope, as a ServiceAccount with a Role and
nothing cluster-wide: a whole canary rollout, peering and deletion work, so the rules are enough."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from sqlalchemy.engine import Engine

from mlpipeline_operator.config import OperatorConfig
from tests.fixtures.operator_harness import Cluster, OperatorThread, log_predictions, model_deployment, wait_for
from tests.fixtures.operator_rbac import NAMESPACED_RULES
from tests.fixtures.services import KubeApiServer

pytestmark = pytest.mark.k8s


def service_account_kubeconfig(kube: KubeApiServer, api: client.ApiClient, namespace: str, path: Path) -> Path:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "operator"}})
    subject = [{"kind": "ServiceAccount", "name": "operator", "namespace": namespace}]
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "operator"}, "rules": NAMESPACED_RULES})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "operator"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "operator"},
            "subjects": subject,
        },
    )
    token = core.create_namespaced_service_account_token(
        "operator", namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": kube.server_url,
                    "certificate-authority-data": base64.b64encode(kube.ca_file.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "test", "user": "operator", "namespace": namespace}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_rollout_under_the_documented_rbac(
    cluster: Cluster, operator_config: OperatorConfig, engine: Engine, kube_apiserver: KubeApiServer, tmp_path
) -> None:
    kubeconfig = service_account_kubeconfig(kube_apiserver, cluster.api, cluster.namespace, tmp_path / "kubeconfig")
    client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        cluster.namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "mlpipeline-operator"}},
    )
    config = operator_config.model_copy(update={"kubeconfig": str(kubeconfig), "standalone": False})
    did = f"{cluster.namespace}/rb"
    running = OperatorThread(config, engine).start()
    try:
        body = model_deployment(
            "rb",
            "1",
            rollout={"interval": "1s", "steps": [50, 100], "analysis": {"minRequests": 20}},
            routing={"parentRef": {"name": "gw"}},
        )
        cluster.create(body)
        cluster.make_ready("rb")
        cluster.wait_phase("rb", "Succeeded")
        log_predictions(engine, did, "stable", "1", 100)
        cluster.patch("rb", {"spec": {"model": {"version": "2", "storageUri": "s3://models/sentiment/2"}}})
        cluster.wait_phase("rb", "Progressing")
        cluster.make_ready("rb-canary")
        log_predictions(engine, did, "canary", "2", 40)
        cluster.wait_phase("rb", "Promoting")
        cluster.make_ready("rb")
        cluster.wait_phase("rb", "Succeeded")
        assert wait_for(lambda: {r for r, _ in cluster.events("rb")} >= {"CanaryStarted", "Promoted"}, "events")
        cluster.delete("rb")
        wait_for(lambda: cluster.get("rb") is None, "ModelDeployment deleted")
        assert cluster.isvc_names() == []
    finally:
        running.stop()
