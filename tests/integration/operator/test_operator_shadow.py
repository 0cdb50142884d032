"""Strategy Shadow on the real kube-apiserver + PostgreSQL: the shadow InferenceService and the stable predictor's
mirroring (or the HTTPRoute's RequestMirror), the agreement verdict (agreeing shadow promoted, disagreeing one rolled
back or kept, too few pairs left alone), manual control and restart. Tests play KServe and both predictors."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.engine import Engine

from mlpipeline_operator.config import OperatorConfig
from tests.fixtures.operator_harness import (
    Cluster,
    OperatorThread,
    deployment_rows,
    log_mirrored,
    model_deployment,
    wait_for,
)

pytestmark = pytest.mark.k8s

SHADOW = {
    "strategy": "Shadow",
    "interval": "1s",
    "maxFailedChecks": 2,
    "analysis": {"minRequests": 40, "window": "10m"},
    "shadow": {"mirrorPercent": 20, "minAgreement": 0.9},
}


def rows(engine: Engine, deployment_id: str) -> list[tuple]:
    return deployment_rows(
        engine, deployment_id, "rollout_id", "deployment_type", "is_active", "traffic_percent", "outcome"
    )


def env(isvc: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in isvc["spec"]["predictor"]["containers"][0]["env"]}


def start_shadow(cluster: Cluster, name: str, routing: dict | None = None, **shadow: object) -> None:
    rollout = {**SHADOW, "shadow": {**SHADOW["shadow"], **shadow}}
    extra = {"routing": routing} if routing else {}
    cluster.create(model_deployment(name, "1", rollout=rollout, **extra))
    cluster.make_ready(name)
    cluster.wait_phase(name, "Succeeded")
    cluster.patch(name, {"spec": {"model": {"version": "2", "storageUri": "s3://models/sentiment/2"}}})
    cluster.wait_phase(name, "Progressing")
    cluster.make_ready(f"{name}-shadow")
    # Mirroring by the predictor changes the stable predictor's environment: KServe rolls it out again.
    wait_for(lambda: cluster.isvc(name)["metadata"]["generation"] > 1 or shadow.get("mirrorBy") == "Gateway", "rollout")
    cluster.make_ready(name)


def test_agreeing_shadow_is_promoted(
    cluster: Cluster, operator: OperatorThread, engine: Engine, kube_apiserver
) -> None:
    did = f"{cluster.namespace}/sh"
    start_shadow(cluster, "sh")
    assert cluster.isvc_names() == ["sh", "sh-shadow"]
    stable, shadow = cluster.isvc("sh"), cluster.isvc("sh-shadow")
    assert env(stable)["PREDICTOR_MIRROR_URL"] == (
        f"http://sh-shadow-predictor.{cluster.namespace}.svc.cluster.local/v1/models/sentiment:predict"
    )
    assert env(stable)["PREDICTOR_MIRROR_PERCENT"] == "20"
    assert env(shadow)["DEPLOYMENT_ROLE"] == "shadow" and env(shadow)["MODEL_VERSION"] == "2"
    assert cluster.status("sh")["canary"]["weight"] == 0  # clients see the stable model only
    wait_for(lambda: "waiting for mirrored traffic" in cluster.status("sh").get("message", ""), "inconclusive")

    log_mirrored(engine, did, "1", "2", 50, disagree=2)
    status = cluster.wait_phase("sh", "Promoting")
    assert status["stable"]["version"] == "2" and "shadow agreed" in status["history"][-1]["message"]
    gate = status["analysis"]["gates"][0]
    assert (gate["name"], gate["figure"], gate["samples"]) == ("agreement", 0.96, {"pairs": 50})
    assert gate["ciLow"] < 0.96 < gate["ciHigh"]
    cluster.make_ready("sh")
    cluster.wait_phase("sh", "Succeeded")
    wait_for(lambda: cluster.isvc_names() == ["sh"], "shadow InferenceService removed")
    assert "PREDICTOR_MIRROR_URL" not in env(cluster.isvc("sh"))
    table = kube_apiserver.kubectl("get", "md", "sh", "-n", cluster.namespace).stdout.splitlines()
    assert "agree 96.0%" in table[1]
    assert rows(engine, did) == [
        ("g1-v1", "stable", False, 0, "superseded"),
        ("g2-v2", "shadow", False, 100, "promoted"),
        ("g2-v2", "stable", True, 100, "promoted"),
    ]


def test_disagreeing_shadow_is_rolled_back(cluster: Cluster, operator: OperatorThread, engine: Engine) -> None:
    did = f"{cluster.namespace}/dis"
    start_shadow(cluster, "dis")
    log_mirrored(engine, did, "1", "2", 50, disagree=20)
    status = cluster.wait_phase("dis", "RolledBack")
    assert "agreement 60.00%" in status["message"] and status["stable"]["version"] == "1"
    wait_for(lambda: cluster.isvc_names() == ["dis"], "shadow InferenceService removed")
    assert "PREDICTOR_MIRROR_URL" not in env(cluster.isvc("dis"))
    assert rows(engine, did) == [
        ("g1-v1", "stable", True, 100, "deployed"),
        ("g2-v2", "shadow", False, 0, "rolled_back"),
    ]


def test_kept_shadow_waits_for_a_person_and_too_few_pairs_decide_nothing(
    cluster: Cluster, operator: OperatorThread, engine: Engine
) -> None:
    did = f"{cluster.namespace}/keep"
    start_shadow(cluster, "keep", onFailure="Keep")
    log_mirrored(engine, did, "1", "2", 30, disagree=15)  # below minRequests: inconclusive, nothing counted
    wait_for(lambda: "30 of 40 mirrored" in cluster.status("keep").get("message", ""), "inconclusive")
    assert cluster.status("keep")["canary"]["checksFailed"] == 0
    log_mirrored(engine, did, "1", "2", 30, disagree=15)
    wait_for(lambda: "shadow kept" in cluster.status("keep").get("message", ""), "kept shadow")
    time.sleep(1.5)
    status = cluster.status("keep")
    assert status["phase"] == "Progressing" and status["canary"]["checksFailed"] == 2
    assert cluster.isvc_names() == ["keep", "keep-shadow"]
    cluster.patch("keep", {"metadata": {"annotations": {"mlpipeline.io/rollback": "true"}}})
    status = cluster.wait_phase("keep", "RolledBack")
    assert "manual rollback" in status["message"]


def test_gateway_mirroring_and_a_restarted_operator(
    cluster: Cluster, operator_config: OperatorConfig, engine: Engine
) -> None:
    did = f"{cluster.namespace}/gw"
    first = OperatorThread(operator_config, engine).start()
    try:
        start_shadow(cluster, "gw", routing={"parentRef": {"name": "gateway"}}, mirrorBy="Gateway")
        route = cluster.objects.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", cluster.namespace, "httproutes", "gw"
        )
        rule = route["spec"]["rules"][0]
        assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [("gw-predictor", 100)]
        assert rule["filters"] == [
            {
                "type": "RequestMirror",
                "requestMirror": {"backendRef": {"name": "gw-shadow-predictor", "port": 80}, "percent": 20},
            }
        ]
        assert "PREDICTOR_MIRROR_URL" not in env(cluster.isvc("gw"))
        log_mirrored(engine, did, "1", "2", 20)
        wait_for(lambda: "20 of 40 mirrored" in cluster.status("gw").get("message", ""), "mid-experiment")
    finally:
        first.stop()
    log_mirrored(engine, did, "1", "2", 30)
    second = OperatorThread(operator_config, engine).start()
    try:
        status = cluster.wait_phase("gw", "Promoting")
    finally:
        second.stop()
    assert status["analysis"]["gates"][0]["samples"] == {"pairs": 50}
    assert [r[:2] + r[-1:] for r in rows(engine, did)] == [
        ("g1-v1", "stable", "superseded"),
        ("g2-v2", "shadow", "promoted"),
        ("g2-v2", "stable", "promoted"),
    ]
