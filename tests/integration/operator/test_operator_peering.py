"""Two operator replicas with kopf peering: only the higher priority one acts; the other takes over when it stops."""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from typing import Any

import pytest
from kubernetes import client
from sqlalchemy.engine import Engine

from mlpipeline_operator.config import OperatorConfig
from tests.fixtures.operator_harness import Cluster, OperatorThread, model_deployment, wait_for

pytestmark = pytest.mark.k8s

PEERING = ("kopf.dev", "v1")
# kopf's peering log lines (kopf._core.engines.peering). A replica with mandatory peering starts paused and logs
# RESUMED once it sees no peer above it; only a replica that had resumed logs PAUSED when a higher priority appears.
RESUMED = "Resuming operations after the pause"
PAUSED = "Pausing operations in favour of"


def kopf_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.name.startswith("kopf")]


def logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in line for line in kopf_lines(caplog))


def explain(cluster: Cluster, caplog: pytest.LogCaptureFixture, peering: dict[str, Any], name: str) -> str:
    """What a failure needs to be read: the peers as the API holds them, the object's status and kopf's log."""
    body = cluster.objects.get_namespaced_custom_object(
        "mlpipeline.io", "v1alpha1", cluster.namespace, "modeldeployments", name
    )
    peering_lines = [line for line in kopf_lines(caplog) if "peering" in line or "operations" in line]
    return "\n".join(
        [
            f"peers: {json.dumps(peering.get('status'))}",
            f"{name}: status {json.dumps(body.get('status'))}",
            f"{name}: annotations {json.dumps(body['metadata'].get('annotations'))}",
            *peering_lines[-40:],
        ]
    )


def test_only_one_replica_acts_and_the_other_takes_over(
    cluster: Cluster, operator_config: OperatorConfig, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kopf")
    peerings = client.CustomObjectsApi(cluster.api)
    peerings.create_namespaced_custom_object(
        *PEERING,
        cluster.namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "mlpipeline-operator"}},
    )

    def peering() -> dict[str, Any]:
        return dict(
            peerings.get_namespaced_custom_object(*PEERING, cluster.namespace, "kopfpeerings", "mlpipeline-operator")
        )

    def wait_for_isvc(name: str, what: str, **wait: float) -> None:
        """wait_for the InferenceService; on a timeout, say what the peers and the object looked like."""
        try:
            wait_for(lambda: cluster.isvc(name), what, **wait)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{explain(cluster, caplog, peering(), name)}") from exc

    leader_config = operator_config.model_copy(update={"standalone": False, "priority": 200})
    standby_config = operator_config.model_copy(update={"standalone": False, "priority": 100})
    with ExitStack() as running:  # both replicas stop whatever fails, so no operator thread outlives the test
        # The standby first, until it acts alone; then the leader, until the standby has paused in its favour and
        # the leader has resumed: from then on "only one acts" holds. (Started together, the standby may never
        # resume, and then never log its pause, which left nothing to wait for.)
        standby = OperatorThread(standby_config, engine).start()
        running.callback(standby.stop)
        wait_for(lambda: logged(caplog, RESUMED) == 1, "the standby acting alone")
        leader = OperatorThread(leader_config, engine).start()
        running.callback(leader.stop)
        wait_for(lambda: len(peering().get("status") or {}) == 2, "both replicas announced")
        wait_for(lambda: logged(caplog, PAUSED) == 1, "the standby paused for the leader")
        wait_for(lambda: logged(caplog, RESUMED) == 2, "the leader acting")

        cluster.create(model_deployment("one", "1"))
        wait_for_isvc("one", "InferenceService one")
        cluster.make_ready("one")
        cluster.wait_phase("one", "Succeeded")
        deploying = [m for r, m in cluster.events("one") if r == "Deploying"]
        assert len(deploying) == 1

        leader.stop()  # stopping twice is harmless: the exit callback then finds no thread
        cluster.create(model_deployment("two", "1"))
        wait_for_isvc("two", "InferenceService two, handled by the standby", timeout=120)
