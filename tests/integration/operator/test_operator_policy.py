"""The operator's policy against the real kube-apiserver + etcd: a ModelDeployment may not name images,
ServiceAccounts or Secrets outside the operator's allow-lists; predictor pods are hardened; a canary that never
becomes Ready is rolled back after the deadline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from mlpipeline_operator.config import OperatorConfig
from tests.fixtures.operator_harness import Cluster, OperatorThread, model_deployment, wait_for

pytestmark = pytest.mark.k8s


@pytest.fixture
def guarded(operator_config: OperatorConfig, engine: Engine) -> Iterator[OperatorThread]:
    config = operator_config.model_copy(
        update={
            "allowed_images": ["registry.example/team-a/*"],
            "allowed_service_accounts": ["predictor-*"],
            "allowed_secrets": ["team-a-*"],
            "canary_ready_deadline_s": 3.0,
        }
    )
    running = OperatorThread(config, engine).start()
    yield running
    running.stop()


def degraded(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "Degraded")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"predictor": {"image": "evil.example/miner:latest"}}, "image 'evil.example/miner:latest' is not allowed"),
        ({"predictor": {"serviceAccountName": "cluster-admin-sa"}}, "serviceAccountName 'cluster-admin-sa'"),
        ({"databaseSecretRef": {"name": "someone-elses-db"}}, "databaseSecretRef 'someone-elses-db'"),
        ({"storageSecretRef": {"name": "root-s3-keys"}}, "storageSecretRef 'root-s3-keys' is not allowed"),
    ],
)
def test_names_outside_the_allow_lists_are_refused(
    cluster: Cluster, guarded: OperatorThread, spec: dict, message: str
) -> None:
    cluster.create(model_deployment("r", "1", **spec))
    status = cluster.wait_phase("r", "Failed")
    assert message in status["message"] and "refused by the operator's policy" in status["message"]
    condition = degraded(status)
    assert condition["status"] == "True" and message in condition["message"]
    assert cluster.isvc_names() == []  # nothing was run


def test_allowed_names_run_with_a_hardened_predictor(cluster: Cluster, guarded: OperatorThread) -> None:
    spec = {
        "predictor": {"image": "registry.example/team-a/predictor:2", "serviceAccountName": "predictor-reader"},
        "databaseSecretRef": {"name": "team-a-db"},
    }
    cluster.create(model_deployment("ok", "1", **spec))
    isvc = wait_for(lambda: cluster.isvc("ok"), "InferenceService ok")
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["image"] == "registry.example/team-a/predictor:2"
    assert predictor["serviceAccountName"] == "predictor-reader"
    assert predictor["securityContext"]["runAsNonRoot"] is True
    assert predictor["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in predictor["volumes"]
    assert {"name": "cache", "mountPath": "/cache"} in container["volumeMounts"]  # where the version is downloaded


def test_a_canary_that_never_becomes_ready_is_rolled_back(cluster: Cluster, guarded: OperatorThread) -> None:
    rollout = {"interval": "1s", "steps": [50, 100], "analysis": {"minRequests": 20, "window": "10m"}}
    cluster.create(model_deployment("s", "1", rollout=rollout))
    cluster.make_ready("s")
    cluster.wait_phase("s", "Succeeded")
    cluster.patch("s", {"spec": {"model": {"version": "2", "storageUri": "s3://models/sentiment/2"}}})
    cluster.wait_phase("s", "Progressing")
    # KServe never reports the canary Ready (say its image cannot be pulled).
    status = cluster.wait_phase("s", "RolledBack", timeout=60)
    assert "not Ready" in status["message"] and "deadline 3s" in status["message"]
    assert status["stable"]["version"] == "1" and "canary" not in status
    wait_for(lambda: cluster.isvc_names() == ["s"], "canary InferenceService removed")
