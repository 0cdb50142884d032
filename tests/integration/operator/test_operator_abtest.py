"""Strategy ABTest on the real kube-apiserver + PostgreSQL: the sticky weighted route, live figures, and the verdict
on feedback-labelled predictions (winner promoted, loser rolled back, no difference: stable stays), manual control and
restart. Tests play KServe (InferenceService status) and the predictor (prediction_logs rows with feedback)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from mlcore.db import ModelDeployment, session_scope
from mlpipeline_operator.config import OperatorConfig
from tests.fixtures.operator_harness import (
    Cluster,
    OperatorThread,
    deployment_rows,
    log_predictions,
    model_deployment,
    wait_for,
)

pytestmark = pytest.mark.k8s

AB = {
    "strategy": "ABTest",
    "interval": "1s",
    "abTest": {"weights": {"stable": 60, "candidate": 40}, "stickiness": {"header": "x-user-id"}, "minSamples": 50},
}
ROUTING = {"parentRef": {"name": "gateway", "namespace": "infra"}}


def rows(engine: Engine, deployment_id: str) -> list[tuple]:
    return deployment_rows(
        engine, deployment_id, "rollout_id", "deployment_type", "is_active", "traffic_percent", "outcome"
    )


def canary_metrics(engine: Engine, deployment_id: str) -> dict:
    with session_scope(engine) as session:
        row = session.execute(
            select(ModelDeployment).where(
                ModelDeployment.deployment_id == deployment_id, ModelDeployment.deployment_type == "canary"
            )
        ).scalar_one()
        return dict(row.model_metrics or {})


def start_ab(cluster: Cluster, name: str, **ab: object) -> None:
    rollout = {**AB, "abTest": {**AB["abTest"], **ab}}
    cluster.create(model_deployment(name, "1", rollout=rollout, routing=ROUTING))
    cluster.make_ready(name)
    cluster.wait_phase(name, "Succeeded")
    cluster.patch(name, {"spec": {"model": {"version": "2", "storageUri": "s3://models/sentiment/2"}}})
    cluster.wait_phase(name, "Progressing")
    cluster.make_ready(f"{name}-canary")


def route(cluster: Cluster, name: str) -> dict:
    return cluster.objects.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", cluster.namespace, "httproutes", name
    )


def test_better_arm_is_promoted(cluster: Cluster, operator: OperatorThread, engine: Engine, kube_apiserver) -> None:
    did = f"{cluster.namespace}/ab"
    start_ab(cluster, "ab")
    rule = route(cluster, "ab")["spec"]["rules"][0]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [
        ("ab-predictor", 60),
        ("ab-canary-predictor", 40),
    ]
    assert rule["sessionPersistence"] == {"sessionName": "x-user-id", "type": "Header"}
    # Too few labelled predictions: live figures, nothing decided.
    log_predictions(engine, did, "stable", "1", 30, labelled=20, correct=14)
    log_predictions(engine, did, "canary", "2", 30, labelled=20, correct=19)
    wait_for(lambda: "20/50 labelled per arm" in cluster.status("ab").get("message", ""), "live figures")
    table = kube_apiserver.kubectl("get", "md", "ab", "-n", cluster.namespace).stdout.splitlines()
    assert table[1].split()[1:5] == ["Progressing", "1", "2", "ABTest"] and "n=20" in table[1]

    log_predictions(engine, did, "stable", "1", 80, labelled=80, correct=50)
    log_predictions(engine, did, "canary", "2", 80, labelled=80, correct=75)
    status = cluster.wait_phase("ab", "Promoting")
    assert status["stable"]["version"] == "2" and "A/B test won" in status["history"][-1]["message"]
    analysis = status["analysis"]
    assert (analysis["final"], analysis["winner"], analysis["verdict"]) == (True, "canary", "pass")
    gate = analysis["gates"][0]
    assert gate["samples"] == {"canary": 100, "stable": 100} and gate["pValue"] < 0.05 and gate["ciLow"] > 0
    cluster.make_ready("ab")
    cluster.wait_phase("ab", "Succeeded")
    wait_for(lambda: cluster.isvc_names() == ["ab"], "candidate InferenceService removed")
    assert "sessionPersistence" not in route(cluster, "ab")["spec"]["rules"][0]
    assert canary_metrics(engine, did)["winner"] == "canary"
    assert rows(engine, did) == [
        ("g1-v1", "stable", False, 0, "superseded"),
        ("g2-v2", "canary", False, 100, "promoted"),
        ("g2-v2", "stable", True, 100, "promoted"),
    ]


def test_worse_arm_is_rolled_back(cluster: Cluster, operator: OperatorThread, engine: Engine) -> None:
    did = f"{cluster.namespace}/lose"
    start_ab(cluster, "lose")
    log_predictions(engine, did, "stable", "1", 60, labelled=60, correct=55)
    log_predictions(engine, did, "canary", "2", 60, labelled=60, correct=35)
    status = cluster.wait_phase("lose", "RolledBack")
    assert status["stable"]["version"] == "1" and "A/B test lost" in status["message"]
    assert status["analysis"]["winner"] == "stable"
    wait_for(lambda: cluster.isvc_names() == ["lose"], "candidate InferenceService removed")
    assert rows(engine, did) == [
        ("g1-v1", "stable", True, 100, "deployed"),
        ("g2-v2", "canary", False, 40, "rolled_back"),
    ]


def test_no_significant_difference_keeps_the_stable_model(
    cluster: Cluster, operator: OperatorThread, engine: Engine
) -> None:
    did = f"{cluster.namespace}/same"
    start_ab(cluster, "same")
    log_predictions(engine, did, "stable", "1", 60, labelled=60, correct=45)
    log_predictions(engine, did, "canary", "2", 60, labelled=60, correct=47)
    status = cluster.wait_phase("same", "Succeeded")
    assert status["stable"]["version"] == "1" and "canary" not in status
    assert "no significant difference" in status["message"]
    assert (status["analysis"]["final"], status["analysis"]["verdict"]) == (True, "inconclusive")
    assert status["history"][-1]["outcome"] == "inconclusive"
    assert rows(engine, did) == [
        ("g1-v1", "stable", True, 100, "deployed"),
        ("g2-v2", "canary", False, 40, "inconclusive"),
    ]
    assert any(r == "ExperimentInconclusive" for r, _ in cluster.events("same"))


def test_manual_pause_and_rollback_during_an_ab_test(
    cluster: Cluster, operator: OperatorThread, engine: Engine
) -> None:
    did = f"{cluster.namespace}/man"
    start_ab(cluster, "man")
    cluster.patch("man", {"metadata": {"annotations": {"mlpipeline.io/paused": "true"}}})
    cluster.wait_phase("man", "Paused")
    log_predictions(engine, did, "stable", "1", 60, labelled=60, correct=55)
    log_predictions(engine, did, "canary", "2", 60, labelled=60, correct=35)
    time.sleep(2)  # a paused test decides nothing
    assert cluster.status("man")["phase"] == "Paused"
    cluster.patch("man", {"metadata": {"annotations": {"mlpipeline.io/rollback": "true"}}})
    status = cluster.wait_phase("man", "RolledBack")
    assert "manual rollback" in status["message"]


def test_restarted_operator_finishes_the_experiment(
    cluster: Cluster, operator_config: OperatorConfig, engine: Engine
) -> None:
    did = f"{cluster.namespace}/rs"
    first = OperatorThread(operator_config, engine).start()
    try:
        start_ab(cluster, "rs")
        log_predictions(engine, did, "stable", "1", 30, labelled=30, correct=20)
        log_predictions(engine, did, "canary", "2", 30, labelled=30, correct=29)
        wait_for(lambda: "30/50 labelled" in cluster.status("rs").get("message", ""), "running experiment")
    finally:
        first.stop()
    log_predictions(engine, did, "stable", "1", 40, labelled=40, correct=25)
    log_predictions(engine, did, "canary", "2", 40, labelled=40, correct=38)
    second = OperatorThread(operator_config, engine).start()
    try:
        status = cluster.wait_phase("rs", "Promoting")
    finally:
        second.stop()
    assert status["analysis"]["gates"][0]["samples"] == {"canary": 70, "stable": 70}
    assert [r[:2] + r[-1:] for r in rows(engine, did)] == [
        ("g1-v1", "stable", "superseded"),
        ("g2-v2", "canary", "promoted"),
        ("g2-v2", "stable", "promoted"),
    ]
