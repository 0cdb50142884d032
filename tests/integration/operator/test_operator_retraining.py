"""The retraining loop against the real kube-apiserver + etcd and PostgreSQL: alert -> Job -> version -> rollout
-> promotion; a worse challenger not offered; Job failure with retry and give-up; operator restarts at every
phase without a second Job or record; deletion mid-loop.

No kubelet or Job controller runs on the test server: the test plays the Job controller (the Job's status) and the
training job (its experiment_runs row, written by the training job's own RunRecorder and challenger.record_offer),
as the other operator tests play KServe and the predictor."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from sqlalchemy import select
from sqlalchemy.engine import Engine

from mlcore.db import MonitoringAlert, session_scope
from mlpipeline_operator.config import OperatorConfig
from tests.fixtures.operator_harness import (
    Cluster,
    OperatorThread,
    deployment_rows,
    log_predictions,
    model_deployment,
    wait_for,
)
from training_job import challenger
from training_job.records import RunRecorder

pytestmark = pytest.mark.k8s

ROLLOUT = {"interval": "1s", "steps": [50, 100], "maxFailedChecks": 2, "analysis": {"minRequests": 20, "window": "10m"}}


@pytest.fixture
def loop_config(operator_config: OperatorConfig) -> OperatorConfig:
    return operator_config.model_copy(update={"alert_poll_seconds": 0.3, "training_image": "registry.example/train:1"})


@pytest.fixture
def loop_operator(loop_config: OperatorConfig, engine: Engine):
    running = OperatorThread(loop_config, engine).start()
    yield running
    running.stop()


def _iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def jobs(cluster: Cluster) -> list[str]:
    listed = client.BatchV1Api(cluster.api).list_namespaced_job(cluster.namespace)
    return sorted(j.metadata.name for j in listed.items if not j.metadata.deletion_timestamp)


def job(cluster: Cluster, name: str) -> Any:
    return wait_for(lambda: client.BatchV1Api(cluster.api).read_namespaced_job(name, cluster.namespace), f"Job {name}")


def finish_job(cluster: Cluster, name: str, ok: bool, reason: str = "BackoffLimitExceeded") -> None:
    """What the Job controller writes when the pod ends (the API server validates these transitions)."""
    job(cluster, name)
    now = _iso()
    if ok:
        status = {
            "startTime": now,
            "completionTime": now,
            "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now, "lastProbeTime": now},
                {"type": "Complete", "status": "True", "lastTransitionTime": now, "lastProbeTime": now},
            ],
        }
    else:
        status = {
            "startTime": now,
            "failed": 1,
            "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": reason, "lastTransitionTime": now},
                {"type": "Failed", "status": "True", "reason": reason, "lastTransitionTime": now},
            ],
        }
    client.BatchV1Api(cluster.api).patch_namespaced_job_status(name, cluster.namespace, {"status": status})


def publish(engine: Engine, cluster: Cluster, job_name: str, version: str, offered: bool, accuracy: float) -> None:
    """The training job's records of a finished run started by the operator's Job."""
    run_id = uuid.uuid4().hex
    extra = {"retraining_job": f"{cluster.namespace}/{job_name}"}
    recorder = RunRecorder(engine)
    recorder.start(
        run_id,
        experiment_name="sentiment-classification",
        run_name=f"sentiment-quick-{run_id[:8]}",
        params={"quick": True},
        registered_model_name="sentiment",
        dataset_hash="d" * 64,
        tags=challenger.run_tags(extra),
    )
    verdict = "better" if offered else "not better"
    decision = f"challenger {accuracy:.4f} {verdict} than champion v1 0.8800 (same test split)"
    recorder.finish(
        run_id,
        "FINISHED",
        metrics={"accuracy": accuracy},
        model_version=version,
        storage_uri=f"s3://models/sentiment/{version}",
        is_champion=offered,
        tags={"champion_decision": decision},
    )
    challenger.record_offer(engine, run_id, offered, decision, extra)


def raise_alert(engine: Engine, deployment_id: str, kind: str = "drift", severity: str = "warning") -> int:
    with session_scope(engine) as session:
        alert = MonitoringAlert(
            deployment_id=deployment_id,
            model_version="1",
            alert_type=kind,
            severity=severity,
            message="prediction drift share 0.62 > 0.5",
            details={"drift_share": 0.62},
        )
        session.add(alert)
        session.flush()
        return int(alert.id)


def alert(engine: Engine, alert_id: int) -> MonitoringAlert:
    with session_scope(engine) as session:
        found = session.scalar(select(MonitoringAlert).where(MonitoringAlert.id == alert_id))
        assert found is not None
        session.expunge(found)
        return found


def retraining(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict(cluster.status(name).get("retraining") or {})


def wait_loop(cluster: Cluster, name: str, phase: str, timeout: float = 60.0, **fields: Any) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        r = retraining(cluster, name)
        ok = r.get("phase") == phase and all(r.get(k) == v for k, v in fields.items())
        return r if ok else None

    try:
        return wait_for(probe, f"{name} retraining {phase} {fields}", timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status {cluster.status(name)}; events {cluster.events(name)}") from None


def loop_rows(engine: Engine, deployment_id: str) -> list[tuple]:
    cols = ("rollout_id", "deployment_type", "model_version", "is_active", "traffic_percent", "outcome")
    return deployment_rows(engine, deployment_id, *cols)


def deploy(cluster: Cluster, name: str, **retraining_spec: Any) -> None:
    spec = {"job": {"args": ["--dataset", "s3://data/reviews.csv", "--quick"]}, "cooldown": "1h", **retraining_spec}
    cluster.create(model_deployment(name, "1", rollout=ROLLOUT, retraining=spec))
    cluster.make_ready(name)
    cluster.wait_phase(name, "Succeeded")


def test_alert_to_job_to_candidate_to_rollout_to_promotion(
    cluster: Cluster, loop_config: OperatorConfig, engine: Engine
) -> None:
    did = f"{cluster.namespace}/loop"
    timings: dict[str, float] = {}
    running = OperatorThread(loop_config, engine).start()
    try:
        deploy(cluster, "loop", includeFeedback=True)
        log_predictions(engine, did, "stable", "1", 100)
        started = time.monotonic()
        alert_id = raise_alert(engine, did)
        status = wait_loop(cluster, "loop", "Training")
        timings["alert -> Job"] = time.monotonic() - started
        assert (status["loop"], status["attempt"], status["triggerAlertIds"]) == (1, 1, [alert_id])
        assert status["jobName"] == "loop-retrain-1-1" and status["trigger"] == "alerts"
        created = job(cluster, "loop-retrain-1-1")
        owner = created.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.controller) == ("ModelDeployment", "loop", True)
        container = created.spec.template.spec.containers[0]
        assert container.image == "registry.example/train:1"
        assert container.args[-5:] == [
            "--retraining-job",
            f"{cluster.namespace}/loop-retrain-1-1",
            "--include-feedback",
            "--feedback-deployment",
            did,
        ]
        # Another alert during the loop starts nothing.
        raise_alert(engine, did, "performance", "critical")

        # A restart while training: the same Job is adopted, no second one, no second record.
        running.stop()
        running = OperatorThread(loop_config, engine).start()
        time.sleep(1.5)
        assert jobs(cluster) == ["loop-retrain-1-1"]

        stage = time.monotonic()
        publish(engine, cluster, "loop-retrain-1-1", "2", offered=True, accuracy=0.91)
        finish_job(cluster, "loop-retrain-1-1", ok=True)
        status = wait_loop(cluster, "loop", "RollingOut", candidateVersion="2")
        timings["Job done -> candidate offered"] = time.monotonic() - stage
        md = cluster.get("loop")
        assert md["spec"]["model"] == {"name": "sentiment", "version": "2", "storageUri": "s3://models/sentiment/2"}
        rollout = cluster.wait_phase("loop", "Progressing")
        assert (rollout["canary"]["version"], rollout["canary"]["strategy"]) == ("2", "Canary")

        running.stop()  # a restart mid-rollout
        running = OperatorThread(loop_config, engine).start()

        stage = time.monotonic()
        cluster.make_ready("loop-canary")
        log_predictions(engine, did, "canary", "2", 40)
        cluster.wait_phase("loop", "Promoting")
        cluster.make_ready("loop")
        cluster.wait_phase("loop", "Succeeded")
        final = wait_loop(cluster, "loop", "Idle", outcome="promoted")
        timings["rollout -> promoted"] = time.monotonic() - stage
        timings["whole loop"] = time.monotonic() - started

        # A restart after the loop ended: nothing is started, recorded or resolved again.
        before = loop_rows(engine, did)
        running.stop()
        running = OperatorThread(loop_config, engine).start()
        time.sleep(1.5)
        assert loop_rows(engine, did) == before and retraining(cluster, "loop") == final
        assert jobs(cluster) == ["loop-retrain-1-1"]

        resolved = alert(engine, alert_id)
        assert resolved.resolved and resolved.resolved_at is not None
        assert resolved.details["resolvedBy"]["rolloutId"] == cluster.status("loop")["stable"]["rolloutId"]
        assert resolved.details["resolvedBy"]["version"] == "2"
        assert resolved.details["drift_share"] == 0.62  # the drift job's details stay
        rows = loop_rows(engine, did)
        assert ("retrain-1-a1", "retraining", "1", False, 0, "trained") in rows
        assert ("retrain-1-candidate", "retraining", "2", False, 0, "promoted") in rows
        assert [r[:3] for r in rows].count(("retrain-1-a1", "retraining", "1")) == 1
        rollout_id = cluster.status("loop")["stable"]["rolloutId"]
        assert (rollout_id, "stable", "2", True, 100, "promoted") in rows
        reasons = {r for r, _ in cluster.events("loop")}
        assert {"RetrainingStarted", "CandidateOffered", "CanaryStarted", "Promoted", "RetrainingPromoted"} <= reasons
        assert jobs(cluster) == ["loop-retrain-1-1"]  # the finished Job stays for its logs; no second one
        print("\nstatus.retraining:", final)
        print("model_deployments:", *rows, sep="\n  ")
        print("stage seconds:", {k: round(v, 1) for k, v in timings.items()})
    finally:
        running.stop()


def test_a_worse_challenger_is_recorded_and_not_rolled_out(
    cluster: Cluster, loop_operator: OperatorThread, engine: Engine
) -> None:
    did = f"{cluster.namespace}/worse"
    deploy(cluster, "worse")
    alert_id = raise_alert(engine, did)
    wait_loop(cluster, "worse", "Training")
    publish(engine, cluster, "worse-retrain-1-1", "2", offered=False, accuracy=0.80)
    finish_job(cluster, "worse-retrain-1-1", ok=True)
    status = wait_loop(cluster, "worse", "Idle", outcome="not_offered")
    assert status["candidateVersion"] == "2" and "not offered" in status["message"]
    md = cluster.get("worse")
    assert md["spec"]["model"]["version"] == "1" and "canary" not in md["status"]
    assert cluster.isvc_names() == ["worse"]
    assert not alert(engine, alert_id).resolved
    assert ("retrain-1-candidate", "retraining", "2", False, 0, "not_offered") in loop_rows(engine, did)
    assert "CandidateNotOffered" in {r for r, _ in cluster.events("worse")}
    time.sleep(1.0)  # the alert is still open, but the cooldown (1h) holds the next loop
    assert retraining(cluster, "worse")["loop"] == 1 and jobs(cluster) == ["worse-retrain-1-1"]


def test_a_failing_job_is_retried_after_the_cooldown_then_given_up(
    cluster: Cluster, loop_operator: OperatorThread, engine: Engine
) -> None:
    did = f"{cluster.namespace}/flaky"
    deploy(cluster, "flaky", cooldown="1s", maxAttempts=2)
    raise_alert(engine, did)
    wait_loop(cluster, "flaky", "Training", attempt=1)
    loop_operator.stop()  # the first attempt fails while no operator runs; a new one picks it up
    finish_job(cluster, "flaky-retrain-1-1", ok=False)
    loop_operator.start()
    wait_loop(cluster, "flaky", "Training", attempt=2, jobName="flaky-retrain-1-2")
    wait_for(lambda: jobs(cluster) == ["flaky-retrain-1-2"], "the failed attempt's Job deleted, one Job at a time")
    finish_job(cluster, "flaky-retrain-1-2", ok=False, reason="DeadlineExceeded")
    status = wait_loop(cluster, "flaky", "GaveUp")
    assert status["outcome"] == "gave_up" and "timed out" in status["message"]
    conditions = {c["type"]: c for c in cluster.status("flaky")["conditions"]}
    assert conditions["RetrainingFailed"]["status"] == "True"
    assert conditions["RetrainingFailed"]["reason"] == "MaxAttemptsReached"
    rows = loop_rows(engine, did)
    assert ("retrain-1-a1", "retraining", "1", False, 0, "failed") in rows
    assert ("retrain-1-a2", "retraining", "1", False, 0, "timed out") in rows
    reasons = [r for r, _ in cluster.events("flaky")]
    assert {"RetrainingFailed", "RetrainingRetried", "RetrainingGaveUp"} <= set(reasons)
    time.sleep(2.0)  # the same alert does not start another loop after giving up
    assert retraining(cluster, "flaky")["loop"] == 1


def test_deleting_the_deployment_mid_loop_removes_its_job(
    cluster: Cluster, loop_operator: OperatorThread, engine: Engine
) -> None:
    did = f"{cluster.namespace}/gone"
    deploy(cluster, "gone")
    raise_alert(engine, did)
    wait_loop(cluster, "gone", "Training")
    assert jobs(cluster) == ["gone-retrain-1-1"]
    cluster.delete("gone")
    wait_for(lambda: cluster.get("gone") is None, "ModelDeployment deleted")
    assert jobs(cluster) == []
    assert all(not active for *_, active, _, _ in loop_rows(engine, did))
