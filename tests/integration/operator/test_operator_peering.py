"""Two operator replicas with kopf peering: only the higher priority one acts; the other takes over when it stops."""

from __future__ import annotations

import pytest
from kubernetes import client
from sqlalchemy.engine import Engine

from mlpipeline_operator.config import OperatorConfig
from tests.fixtures.operator_harness import Cluster, OperatorThread, model_deployment, wait_for

pytestmark = pytest.mark.k8s


def test_only_one_replica_acts_and_the_other_takes_over(
    cluster: Cluster, operator_config: OperatorConfig, engine: Engine
) -> None:
    client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        cluster.namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "mlpipeline-operator"}},
    )
    leader_config = operator_config.model_copy(update={"standalone": False, "priority": 200})
    standby_config = operator_config.model_copy(update={"standalone": False, "priority": 100})
    standby = OperatorThread(standby_config, engine).start()
    leader = OperatorThread(leader_config, engine).start()
    try:
        peering = lambda: client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(  # noqa: E731
            "kopf.dev", "v1", cluster.namespace, "kopfpeerings", "mlpipeline-operator"
        )
        wait_for(lambda: len(peering().get("status") or {}) == 2, "both replicas announced")
        cluster.create(model_deployment("one", "1"))
        wait_for(lambda: cluster.isvc("one"), "InferenceService one")
        cluster.make_ready("one")
        cluster.wait_phase("one", "Succeeded")
        deploying = [m for r, m in cluster.events("one") if r == "Deploying"]
        assert len(deploying) == 1
    finally:
        leader.stop()
    try:
        cluster.create(model_deployment("two", "1"))
        wait_for(lambda: cluster.isvc("two"), "InferenceService two, handled by the standby", timeout=120)
    finally:
        standby.stop()
