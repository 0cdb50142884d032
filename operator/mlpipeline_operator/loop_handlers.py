"""kopf handlers of the retraining loop (spec.retraining), one per concern, under the rollout handlers' lock.

Open alerts live in PostgreSQL (monitoring_alerts), not in Kubernetes: `start_retraining_on_alerts` reads them
every MLP_OPERATOR_ALERT_POLL_SECONDS with one indexed query per deployment that has spec.retraining and is idle
(a timer, not a notification from the drift job: the drift job runs as a CronJob every few minutes anyway, a
timer needs no listener, no credentials for one and no replay after a restart; see docs/rollouts/retraining.md).
The Jobs' ends come from a kopf index over the operator's Jobs (the watch), so `follow_retraining` reads the API
only when the index has not seen a Job it expects.

Every step applies in the handlers' fixed order: Jobs (create/delete) -> alerts -> model_deployments rows -> status
-> spec.model -> Event. Each is idempotent (the Job name is deterministic, a 409 adopts the Job when this
ModelDeployment owns it and fails the attempt when it does not; rows are upserted; an alert is resolved once), so
a restarted operator converges without a second Job or record.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from mlcore.errors import DatabaseError, DataValidationError
from mlpipeline_operator import GROUP, LABEL_MANAGED_BY, LABEL_ROLE, MANAGER, PLURAL, VERSION, decisions, loop, metrics
from mlpipeline_operator.config import OperatorConfig
from mlpipeline_operator.jobs import ROLE, job_seen, render_champion_job, render_job
from mlpipeline_operator.loop import JobSeen, LoopDecision
from mlpipeline_operator.loop_records import open_alerts, resolve_alerts, training_result
from mlpipeline_operator.records import record
from mlpipeline_operator.render import Owner
from mlpipeline_operator.runtime import Runtime, as_handler
from mlpipeline_operator.spec import ModelDeploymentSpec, parse_spec
from mlpipeline_operator.state import LoopPhase, Retraining, RolloutState, from_status, parse_time, to_status

log = logging.getLogger(__name__)

Jobs = kopf.Index[tuple[str, str], JobSeen]


def now() -> datetime:
    return datetime.now(UTC)


def retraining_jobs(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """Index: the end (or not) of each retraining Job the operator made, kept current by the watch."""
    return {(namespace, name): job_seen(dict(body))}


def _seen(runtime: Runtime, jobs: Jobs, namespace: str, name: str) -> JobSeen | None:
    for seen in jobs.get((namespace, name), ()):
        return seen
    found = runtime.kube.get_job(namespace, name)  # not (yet) in the index: ask once
    return job_seen(found) if found is not None else None


def _act(runtime: Runtime, namespace: str, name: str, handler: str, decide: Any) -> None:
    """Read, decide, apply, under the object's lock (the rollout handlers hold the same one)."""
    with runtime.locked(f"{namespace}/{name}"):
        body = runtime.kube.get_deployment(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        try:
            spec = parse_spec(body.get("spec") or {})
        except DataValidationError:
            return  # the rollout handlers record an invalid spec (phase Failed)
        if spec.retraining is None:
            return
        state = from_status(body.get("status"))
        retraining = state.retraining or Retraining()
        decision: LoopDecision = decide(state, retraining, spec, body)
        try:
            _commit(runtime, body, spec, state, decision)
        except DatabaseError as exc:
            metrics.RECONCILES.labels(handler, "database_error").inc()
            raise kopf.TemporaryError(f"{exc}; retrying", delay=5) from exc
        metrics.RECONCILES.labels(handler, "ok").inc()


def _commit(
    runtime: Runtime, body: dict[str, Any], spec: ModelDeploymentSpec, state: RolloutState, decision: LoopDecision
) -> None:
    """Job -> alerts -> rows -> status -> spec.model -> Event. What the status records as done (a resolved alert, a
    row) happens before it, so that a crash in between repeats it on the next tick (each is idempotent) instead of
    losing it; only the spec patch follows the status, which the model-change handler reads."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    owner = Owner(namespace, name, meta["uid"])
    r = decision.retraining
    if decision.delete_job and decision.delete_job != r.job_name:
        runtime.kube.delete_job(namespace, decision.delete_job)
    if decision.create_job and r.job_name:
        job = render_job(owner, spec, r.job_name, r.loop, runtime.defaults, runtime.config.training_image)
        if not runtime.kube.create_job(job):
            # A restarted operator finds its own Job; one it does not own is refused when the Job is followed.
            log.info("Job %s/%s exists already: followed if this ModelDeployment owns it", namespace, r.job_name)
    if decision.champion_job and r.job_name:
        champion = render_champion_job(
            owner, spec, decision.champion_job, r.job_name, r.loop, runtime.defaults, runtime.config.training_image
        )
        if not runtime.kube.create_job(champion):  # a re-run after a crash: made already
            log.info("Job %s/%s exists already", namespace, decision.champion_job)
    if decision.resolve is not None:
        rollout_id = state.stable.rollout_id if state.stable else None
        resolve_alerts(runtime.engine, owner.deployment_id, decision.resolve, rollout_id, r)
    if decision.records:
        record(runtime.engine, owner.deployment_id, namespace, spec.model.name, decision.records)
    if decision.changed or state.retraining is None:
        # The status before spec.model: the model-change handler reads status.retraining to roll the candidate out
        # under retraining.rollout (and status is what a restarted operator continues from).
        new_state = replace(state, retraining=r)
        new_state = replace(new_state, conditions=decisions.conditions(new_state, None, "", now()))
        runtime.kube.write_status(namespace, name, to_status(new_state))
    if decision.offer and r.candidate_version and spec.model.version != r.candidate_version:
        patch = {"spec": {"model": {"version": r.candidate_version, "storageUri": r.candidate_storage_uri}}}
        runtime.kube.objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
    if decision.changed:
        kopf.event(cast(Any, body), type=decision.event_type, reason=decision.reason, message=decision.message)
        metrics.DECISIONS.labels(decision.reason).inc()


def start_retraining_on_alerts(memo: kopf.Memo, namespace: str, name: str, spec: Any, **_: Any) -> None:
    """Idle: open matching alerts (or the schedule) start a loop; Waiting: the next attempt after the cooldown."""
    if not (spec or {}).get("retraining"):  # kopf's cached view: nothing to read for deployments without it
        return
    runtime: Runtime = memo["runtime"]

    def decide(state: RolloutState, r: Retraining, md: ModelDeploymentSpec, body: dict[str, Any]) -> LoopDecision:
        assert md.retraining is not None
        moment = now()
        if r.phase == LoopPhase.WAITING:
            return loop.retry_due(r, md.retraining, name, md.model.version, moment)
        alerts = open_alerts(runtime.engine, f"{namespace}/{name}")
        created = parse_time(body["metadata"].get("creationTimestamp")) or moment
        return loop.consider_start(r, md.retraining, name, state, alerts, moment, created)

    _act(runtime, namespace, name, "retraining_start", decide)


def follow_retraining(
    memo: kopf.Memo, namespace: str, name: str, spec: Any, status: Any, retraining_jobs: Jobs, **_: Any
) -> None:
    """Training: follow the Job (from the index); RollingOut: follow the candidate's rollout to its end."""
    phase = ((status or {}).get("retraining") or {}).get("phase")
    if not (spec or {}).get("retraining") or phase not in (LoopPhase.TRAINING, LoopPhase.ROLLING_OUT):
        return
    runtime: Runtime = memo["runtime"]

    def decide(state: RolloutState, r: Retraining, md: ModelDeploymentSpec, body: dict[str, Any]) -> LoopDecision:
        moment = now()
        if r.phase == LoopPhase.TRAINING and r.job_name:
            uid = body["metadata"]["uid"]
            job = _seen(runtime, retraining_jobs, namespace, r.job_name)
            result = None
            if job is not None and job.result == "succeeded" and job.owned_by(uid):  # a foreign Job's run is not ours
                result = training_result(runtime.engine, f"{namespace}/{r.job_name}")
            return loop.follow_job(r, md, job, result, moment, uid)
        return loop.follow_rollout(r, md, state, moment, name)

    _act(runtime, namespace, name, "retraining_follow", decide)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    resource = (GROUP, VERSION, PLURAL)
    kopf.index("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGER, LABEL_ROLE: ROLE}, registry=registry)(
        as_handler(retraining_jobs)
    )
    kopf.timer(*resource, interval=config.alert_poll_seconds, registry=registry)(as_handler(start_retraining_on_alerts))
    kopf.timer(*resource, interval=config.tick_seconds, registry=registry)(as_handler(follow_retraining))
