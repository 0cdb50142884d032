"""The retraining loop against the real kube-apiserver + etcd and PostgreSQL: alert -> Job -> version -> rollout
-> promotion; a worse challenger not offered; Job failure with retry and give-up; operator restarts at every
phase without a second Job or record; deletion mid-loop.

No kubelet or Job controller runs on the test server: the test plays the Job controller (the Job's status) and the
training job (its experiment_runs row, written by the training job's own RunRecorder and challenger.record_offer),
as the other operator tests play KServe and the predictor."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from mlcore.db import MonitoringAlert, session_scope
from mlcore.errors import DatabaseError
from mlpipeline_operator import loop_handlers
from mlpipeline_operator.config import OperatorConfig
from tests.fixtures.operator_harness import (
    Cluster,
    OperatorThread,
    deployment_rows,
    log_predictions,
    model_deployment,
    wait_for,
)
from tests.fixtures.retraining import publish_retraining_run

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
    publish_retraining_run(engine, f"{cluster.namespace}/{job_name}", version, offered, accuracy)


def raise_alert(
    engine: Engine, deployment_id: str, kind: str = "drift", severity: str = "warning", version: str | None = "1"
) -> int:
    with session_scope(engine) as session:
        alert = MonitoringAlert(
            deployment_id=deployment_id,
            model_version=version,
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


def deploy(cluster: Cluster, name: str, rollout: dict[str, Any] | None = None, **retraining_spec: Any) -> None:
    spec = {"job": {"args": ["--dataset", "s3://data/reviews.csv", "--quick"]}, "cooldown": "1h", **retraining_spec}
    cluster.create(model_deployment(name, "1", rollout={**ROLLOUT, **(rollout or {})}, retraining=spec))
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
        # Another alert during the loop starts nothing (it is answered by the promotion, below).
        during = raise_alert(engine, did, "performance", "critical")
        volume = raise_alert(engine, did, "volume", "critical")  # a kind the loop does not handle

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
        # spec.model moves just after the status says RollingOut (the model-change handler reads that status).
        moved = {"name": "sentiment", "version": "2", "storageUri": "s3://models/sentiment/2"}
        wait_for(lambda: cluster.get("loop")["spec"]["model"] == moved, "spec.model moved to the candidate")
        rollout = cluster.wait_phase("loop", "Progressing")
        assert (rollout["canary"]["version"], rollout["canary"]["strategy"]) == ("2", "Canary")

        running.stop()  # a restart mid-rollout
        running = OperatorThread(loop_config, engine).start()

        stage = time.monotonic()
        about_candidate = raise_alert(engine, did, "drift", "warning", version="2")  # seen in the canary's traffic
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
        # The promotion's one Job: the training image moves the MLflow alias champion to the candidate.
        assert jobs(cluster) == ["loop-retrain-1-1", "loop-retrain-1-champion"]
        champion = job(cluster, "loop-retrain-1-champion")
        assert champion.metadata.owner_references[0].uid == cluster.get("loop")["metadata"]["uid"]
        (moves,) = champion.spec.template.spec.containers
        assert moves.image == "registry.example/train:1"
        assert moves.args == ["--promote-champion", f"{cluster.namespace}/loop-retrain-1-1"]

        resolved = alert(engine, alert_id)
        assert resolved.resolved and resolved.resolved_at is not None
        assert resolved.details["resolvedBy"]["rolloutId"] == cluster.status("loop")["stable"]["rolloutId"]
        assert resolved.details["resolvedBy"]["version"] == "2"
        assert resolved.details["drift_share"] == 0.62  # the drift job's details stay
        assert resolved.details["resolvedBy"]["as"] == "trigger"
        # Raised while the loop ran, about the model it replaced: answered by the promotion too.
        answered = alert(engine, during)
        assert answered.resolved and answered.details["resolvedBy"]["as"] == "open at promotion"
        assert answered.details["resolvedBy"]["rolloutId"] == resolved.details["resolvedBy"]["rolloutId"]
        # About the candidate that now serves, or of a kind retraining does not answer: open.
        assert not alert(engine, about_candidate).resolved and not alert(engine, volume).resolved
        rows = loop_rows(engine, did)
        assert ("retrain-1-a1", "retraining", "1", False, 0, "trained") in rows
        assert ("retrain-1-candidate", "retraining", "2", False, 0, "promoted") in rows
        assert [r[:3] for r in rows].count(("retrain-1-a1", "retraining", "1")) == 1
        rollout_id = cluster.status("loop")["stable"]["rolloutId"]
        assert (rollout_id, "stable", "2", True, 100, "promoted") in rows
        reasons = {r for r, _ in cluster.events("loop")}
        assert {"RetrainingStarted", "CandidateOffered", "CanaryStarted", "Promoted", "RetrainingPromoted"} <= reasons
        # The finished Jobs stay for their logs; no second one of either.
        assert jobs(cluster) == ["loop-retrain-1-1", "loop-retrain-1-champion"]
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
    # A restart after giving up: nothing started, recorded or deleted again.
    gave_up, before = retraining(cluster, "flaky"), loop_rows(engine, did)
    loop_operator.stop()
    loop_operator.start()
    time.sleep(2.0)
    assert retraining(cluster, "flaky") == gave_up and loop_rows(engine, did) == before
    assert jobs(cluster) == ["flaky-retrain-1-2"]


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


def test_a_deletion_is_not_held_by_a_timer_busy_at_that_moment(
    cluster: Cluster, loop_operator: OperatorThread, engine: Engine
) -> None:
    """kopf keeps the finalizer until every timer of the object has exited, and re-checks a busy one only after
    settings.background.cancellation_polling (60 s by default): a ModelDeployment deleted while a tick was running
    stayed for a minute. Here a tick is held inside its alert query by a table lock while the deletion arrives."""
    deploy(cluster, "busy")
    with engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE monitoring_alerts IN ACCESS EXCLUSIVE MODE"))
        wait_for(lambda: _waiting_on_a_lock(engine), "a retraining tick blocked on monitoring_alerts")
        cluster.delete("busy")
        time.sleep(1.0)  # the deletion is seen while the tick still waits
        blocker.rollback()
    started = time.monotonic()
    wait_for(lambda: cluster.get("busy") is None, "ModelDeployment deleted", timeout=20)
    print(f"deleted {time.monotonic() - started:.1f} s after the busy tick was released")


def _waiting_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        waiting = conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE '%monitoring_alerts%' AND pid <> pg_backend_pid()"
            )
        )
        return bool(waiting)


def offer_candidate(cluster: Cluster, engine: Engine, name: str, alert_id: int) -> None:
    """The alert's loop up to the candidate's rollout: Job -> version 2 published, better -> canary Progressing."""
    wait_loop(cluster, name, "Training", triggerAlertIds=[alert_id])
    publish(engine, cluster, f"{name}-retrain-1-1", "2", offered=True, accuracy=0.91)
    finish_job(cluster, f"{name}-retrain-1-1", ok=True)
    wait_loop(cluster, name, "RollingOut", candidateVersion="2")
    cluster.wait_phase(name, "Progressing")


def row_keys(engine: Engine, deployment_id: str) -> list[tuple[str, str]]:
    """(rollout_id, deployment_type) of every row, sorted: a second record of a step would show here."""
    return sorted((rollout_id, kind) for rollout_id, kind, *_ in loop_rows(engine, deployment_id))


def restart(running: OperatorThread, cluster: Cluster, engine: Engine, name: str) -> dict[str, Any]:
    """Stop the operator, start it again and let it run a few ticks: it must start, record and resolve nothing new.
    Returns the status it left."""
    did = f"{cluster.namespace}/{name}"
    before = (retraining(cluster, name), jobs(cluster), row_keys(engine, did), _open_alerts(engine, did))
    running.stop()
    running.start()
    time.sleep(1.5)
    after = (retraining(cluster, name), jobs(cluster), row_keys(engine, did), _open_alerts(engine, did))
    assert after == before
    return cluster.status(name)


def _open_alerts(engine: Engine, deployment_id: str) -> list[int]:
    with session_scope(engine) as session:
        return sorted(
            session.scalars(
                select(MonitoringAlert.id).where(
                    MonitoringAlert.deployment_id == deployment_id, MonitoringAlert.resolved.is_(False)
                )
            )
        )


def test_restarts_while_the_candidate_rolls_out_and_while_it_is_promoted_repeat_nothing(
    cluster: Cluster, loop_config: OperatorConfig, engine: Engine
) -> None:
    """A restart at each stage of RollingOut: the canary at its first step, the candidate passed and held for the
    promote annotation, and the promotion rolling out. No second Job or record; the loop ends promoted."""
    did = f"{cluster.namespace}/roll"
    running = OperatorThread(loop_config, engine).start()
    try:
        deploy(cluster, "roll", rollout={"autoPromote": False})
        log_predictions(engine, did, "stable", "1", 100)
        alert_id = raise_alert(engine, did)
        offer_candidate(cluster, engine, "roll", alert_id)
        cluster.make_ready("roll-canary")
        at_first_step = restart(running, cluster, engine, "roll")  # ready, no canary traffic yet: inconclusive
        assert (at_first_step["canary"]["version"], at_first_step["canary"]["weight"]) == ("2", 50)

        log_predictions(engine, did, "canary", "2", 40)
        held = wait_for(
            lambda: (cluster.status("roll").get("canary") or {}).get("awaitingPromotion") and cluster.status("roll"),
            "the candidate passed at 100% and held for the promote annotation",
        )
        assert held["canary"]["weight"] == 100 and held["retraining"]["phase"] == "RollingOut"
        restart(running, cluster, engine, "roll")

        cluster.patch("roll", {"metadata": {"annotations": {"mlpipeline.io/promote": "true"}}})
        cluster.wait_phase("roll", "Promoting")
        promoting = restart(running, cluster, engine, "roll")  # the stable predictor still rolls version 2 out
        assert promoting["phase"] == "Promoting" and promoting["retraining"]["phase"] == "RollingOut"
        assert not alert(engine, alert_id).resolved

        cluster.make_ready("roll")
        cluster.wait_phase("roll", "Succeeded")
        final = wait_loop(cluster, "roll", "Idle", outcome="promoted")
        resolved_at = alert(engine, alert_id).resolved_at
        assert resolved_at is not None
        assert restart(running, cluster, engine, "roll")["retraining"] == final
        assert alert(engine, alert_id).resolved_at == resolved_at  # resolved once
        rollout_id = cluster.status("roll")["stable"]["rolloutId"]
        assert row_keys(engine, did) == sorted(
            [
                ("g1-v1", "stable"),
                (rollout_id, "canary"),
                (rollout_id, "stable"),
                ("retrain-1-a1", "retraining"),
                ("retrain-1-candidate", "retraining"),
            ]
        )
        assert ("retrain-1-candidate", "retraining", "2", False, 0, "promoted") in loop_rows(engine, did)
        assert jobs(cluster) == ["roll-retrain-1-1", "roll-retrain-1-champion"]
        reasons = [r for r, _ in cluster.events("roll")]
        assert reasons.count("RetrainingStarted") == 1 and reasons.count("RetrainingPromoted") == 1
    finally:
        running.stop()


def test_a_restart_while_waiting_keeps_the_cooldown_and_the_retry_runs_once(
    cluster: Cluster, loop_config: OperatorConfig, engine: Engine
) -> None:
    did = f"{cluster.namespace}/wait"
    running = OperatorThread(loop_config, engine).start()
    try:
        deploy(cluster, "wait", cooldown="8s", maxAttempts=2)
        raise_alert(engine, did)
        wait_loop(cluster, "wait", "Training", attempt=1)
        finish_job(cluster, "wait-retrain-1-1", ok=False)
        waiting = wait_loop(cluster, "wait", "Waiting")
        until = datetime.fromisoformat(waiting["cooldownUntil"].replace("Z", "+00:00"))

        # A restart in the cooldown: the restarted operator reads it from the status and waits it out.
        restart(running, cluster, engine, "wait")
        assert datetime.now(UTC) < until, "the cooldown ran out during the restart: lengthen it"
        retried = wait_loop(cluster, "wait", "Training", attempt=2, jobName="wait-retrain-1-2")
        assert datetime.now(UTC) >= until and "cooldownUntil" not in retried
        wait_for(lambda: jobs(cluster) == ["wait-retrain-1-2"], "the failed attempt's Job replaced by the retry's")

        restart(running, cluster, engine, "wait")  # right after the retry: no third Job, no second record
        publish(engine, cluster, "wait-retrain-1-2", "2", offered=False, accuracy=0.80)
        finish_job(cluster, "wait-retrain-1-2", ok=True)
        wait_loop(cluster, "wait", "Idle", outcome="not_offered", attempt=2)
        rows = loop_rows(engine, did)
        assert ("retrain-1-a1", "retraining", "1", False, 0, "failed") in rows
        assert ("retrain-1-a2", "retraining", "1", False, 0, "trained") in rows
        assert ("retrain-1-candidate", "retraining", "2", False, 0, "not_offered") in rows
        assert row_keys(engine, did) == sorted(
            [
                ("g1-v1", "stable"),
                ("retrain-1-a1", "retraining"),
                ("retrain-1-a2", "retraining"),
                ("retrain-1-candidate", "retraining"),
            ]
        )
        reasons = [r for r, _ in cluster.events("wait")]
        assert reasons.count("RetrainingFailed") == 1 and reasons.count("RetrainingRetried") == 1
    finally:
        running.stop()


def test_a_job_of_that_name_it_does_not_own_is_not_adopted(
    cluster: Cluster, loop_operator: OperatorThread, engine: Engine
) -> None:
    """A Job named as the first attempt will be, labelled like the operator's, owned by nothing (made by hand, or
    left behind by an older ModelDeployment of the same name), finished with a published, better version: the loop
    neither adopts nor rolls it out, nor deletes it; the attempt fails with the reason and the next one runs."""
    did = f"{cluster.namespace}/taken"
    deploy(cluster, "taken", cooldown="1s", maxAttempts=2)
    labels = {
        "app.kubernetes.io/managed-by": "mlpipeline-operator",
        "mlpipeline.io/deployment": "taken",
        "mlpipeline.io/role": "retraining",
    }
    pod = {"restartPolicy": "Never", "containers": [{"name": "train", "image": "registry.example/other:1"}]}
    foreign = {"metadata": {"name": "taken-retrain-1-1", "labels": labels}, "spec": {"template": {"spec": pod}}}
    client.BatchV1Api(cluster.api).create_namespaced_job(cluster.namespace, foreign)
    publish(engine, cluster, "taken-retrain-1-1", "9", offered=True, accuracy=0.99)
    finish_job(cluster, "taken-retrain-1-1", ok=True)

    raise_alert(engine, did)
    retried = wait_loop(cluster, "taken", "Training", attempt=2, jobName="taken-retrain-1-2")
    assert cluster.get("taken")["spec"]["model"]["version"] == "1" and "canary" not in cluster.status("taken")
    failed = [m for r, m in cluster.events("taken") if r == "RetrainingFailed"]
    assert len(failed) == 1, failed
    assert "a Job named taken-retrain-1-1 already exists and is not this ModelDeployment's (no owner)" in failed[0]
    assert "not adopted" in failed[0] and retried["loop"] == 1
    owner = job(cluster, "taken-retrain-1-2").metadata.owner_references[0]
    assert (owner.name, owner.uid) == ("taken", cluster.get("taken")["metadata"]["uid"])
    wait_for(lambda: jobs(cluster) == ["taken-retrain-1-1", "taken-retrain-1-2"], "both Jobs")
    time.sleep(1.0)
    assert jobs(cluster) == ["taken-retrain-1-1", "taken-retrain-1-2"]  # the foreign Job is never deleted
    metrics = dict(deployment_rows(engine, did, "rollout_id", "model_metrics"))
    assert "not this ModelDeployment's" in metrics["retrain-1-a1"]["reason"]

    publish(engine, cluster, "taken-retrain-1-2", "2", offered=False, accuracy=0.80)
    finish_job(cluster, "taken-retrain-1-2", ok=True)
    done = wait_loop(cluster, "taken", "Idle", outcome="not_offered")
    assert done["candidateVersion"] == "2"


def test_a_failure_while_the_promotion_is_recorded_is_repeated_not_lost(
    cluster: Cluster, loop_config: OperatorConfig, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails as the loop resolves the alerts of its promotion (as a crash there would): the status
    must not already say Idle/promoted, or the alerts would stay open and start the next loop after the cooldown."""
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> tuple[int, ...]:
        calls.append(1)
        if len(calls) == 1:
            raise DatabaseError("connection reset while resolving alerts")
        return real(*args, **kwargs)

    real = loop_handlers.resolve_alerts
    monkeypatch.setattr(loop_handlers, "resolve_alerts", flaky)
    did = f"{cluster.namespace}/flap"
    running = OperatorThread(loop_config, engine).start()
    try:
        deploy(cluster, "flap")
        log_predictions(engine, did, "stable", "1", 100)
        alert_id = raise_alert(engine, did)
        offer_candidate(cluster, engine, "flap", alert_id)
        cluster.make_ready("flap-canary")
        log_predictions(engine, did, "canary", "2", 40)
        cluster.wait_phase("flap", "Promoting")
        cluster.make_ready("flap")
        wait_loop(cluster, "flap", "Idle", outcome="promoted", timeout=30)
        assert len(calls) >= 2
        assert alert(engine, alert_id).resolved
        assert ("retrain-1-candidate", "retraining", "2", False, 0, "promoted") in loop_rows(engine, did)
        assert jobs(cluster) == ["flap-retrain-1-1", "flap-retrain-1-champion"]  # made once, though tried twice
    finally:
        running.stop()


def test_a_rolled_back_candidate_leaves_the_alerts_open_and_the_champion_where_it_was(
    cluster: Cluster, loop_operator: OperatorThread, engine: Engine
) -> None:
    did = f"{cluster.namespace}/back"
    deploy(cluster, "back")
    log_predictions(engine, did, "stable", "1", 100)
    alert_id = raise_alert(engine, did)
    offer_candidate(cluster, engine, "back", alert_id)
    cluster.make_ready("back-canary")
    log_predictions(engine, did, "canary", "2", 40, errors=20)  # 50% errors: fails maxErrorRate twice
    done = wait_loop(cluster, "back", "Idle", outcome="rolled_back")
    assert "alerts stay open" in done["message"] and cluster.status("back")["stable"]["version"] == "1"
    assert not alert(engine, alert_id).resolved
    assert ("retrain-1-candidate", "retraining", "2", False, 0, "rolled_back") in loop_rows(engine, did)
    time.sleep(1.0)
    assert jobs(cluster) == ["back-retrain-1-1"]  # no champion Job: MLflow's champion stays the serving version
