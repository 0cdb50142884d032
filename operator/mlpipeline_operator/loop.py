"""The retraining loop's state machine (spec.retraining): pure transitions of status.retraining.

Idle --(open matching alerts or the schedule, no rollout running, cooldown over)--> Training (one Job, named
<md>-retrain-<loop>-<attempt>: a restarted operator computes the same name and adopts the Job it finds)
Training --Job failed--> Waiting (cooldown) --> Training (attempt + 1) ... --> GaveUp after maxAttempts
Training --Job succeeded, challenger worse than the champion--> Idle (outcome not_offered, cooldown)
Training --Job succeeded, candidate offered--> RollingOut (spec.model moved to the candidate) --> Idle with outcome
promoted (the alerts it answers resolved: see `Resolution`; a Job moves the MLflow alias champion to it) or
rolled_back (alerts stay open, the champion stays, cooldown).
Training --a Job of that name exists that this ModelDeployment does not own--> a failed attempt (never adopted).
Alerts arriving while a loop runs start nothing: only Idle starts a loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from mlpipeline_operator.decisions import EventType, Record
from mlpipeline_operator.spec import ModelDeploymentSpec, RetrainingSpec
from mlpipeline_operator.state import LoopPhase, Phase, Retraining, RolloutState

_JOB_NAME_MAX = 63  # a Job's name becomes its pods' job-name label: at most 63 characters
BUSY = (Phase.DEPLOYING, Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING)


@dataclass(frozen=True)
class Alert:
    id: int
    kind: str
    severity: str


@dataclass(frozen=True)
class JobSeen:
    """A training Job as the watch (or a GET) saw it; `owners`: its ownerReferences as (kind, name, uid)."""

    name: str
    result: Literal["running", "succeeded", "failed"]
    reason: str = ""
    owners: tuple[tuple[str, str, str], ...] = ()

    def owned_by(self, uid: str) -> bool:
        return any(owner_uid == uid for _, _, owner_uid in self.owners)

    def owner_text(self) -> str:
        return ", ".join(f"{kind} {name} (uid {uid})" for kind, name, uid in self.owners) or "no owner"


@dataclass(frozen=True)
class TrainingResult:
    """What the Job's run published (experiment_runs): the version and the champion/challenger verdict."""

    version: str
    storage_uri: str
    offered: bool
    reason: str
    accuracy: float | None = None


@dataclass(frozen=True)
class Resolution:
    """The open alerts a promotion answers: the trigger alerts, and every other open alert of the deployment of a
    kind the loop handles, raised before the loop saw the promotion complete (`before`), that does not name the
    promoted version. Those raised while the loop ran are about the model it replaced, which no longer serves: the
    drift job checks serving versions only, so left open they would never clear and would start the next loop.
    One about the candidate itself (raised during its canary) stays open: it is about the model that now serves,
    and the drift job resolves it when it clears."""

    trigger_ids: tuple[int, ...]
    kinds: tuple[str, ...]
    promoted_version: str
    before: datetime


@dataclass(frozen=True)
class LoopDecision:
    retraining: Retraining
    reason: str
    message: str
    event_type: EventType = "Normal"
    changed: bool = True
    create_job: bool = False  # create the Job retraining.job_name (409: already there, adopted)
    delete_job: str | None = None  # the previous attempt's Job
    champion_job: str | None = None  # create this Job: the promoted candidate becomes the MLflow champion
    offer: bool = False  # move spec.model to the candidate
    resolve: Resolution | None = None
    records: tuple[Record, ...] = field(default_factory=tuple)


def job_name(deployment: str, loop: int, attempt: int) -> str:
    return _named(deployment, f"-retrain-{loop}-{attempt}")


def champion_job_name(deployment: str, loop: int) -> str:
    """The Job that makes a promoted candidate the MLflow champion (training_job --promote-champion)."""
    return _named(deployment, f"-retrain-{loop}-champion")


def _named(deployment: str, suffix: str) -> str:
    return deployment[: _JOB_NAME_MAX - len(suffix)].rstrip("-.") + suffix


def loop_id(r: Retraining) -> str:
    return f"retrain-{r.loop}"


def _unchanged(r: Retraining, message: str) -> LoopDecision:
    return LoopDecision(r, "NoChange", message, changed=False)


def _job_record(r: Retraining, stable: str, outcome: str, ended: bool = False, reason: str = "") -> Record:
    metrics: dict[str, object] = {"job": r.job_name, "attempt": r.attempt, "trigger": r.trigger}
    metrics["alertIds"] = list(r.alert_ids)
    if reason:
        metrics["reason"] = reason
    return Record(
        f"{loop_id(r)}-a{r.attempt}",
        "retraining",
        stable,
        "",
        not ended,
        0,
        outcome,
        metrics,
        ended,
    )


def _candidate_record(
    r: Retraining, result: TrainingResult, outcome: str, ended: bool = False, champion_job: str | None = None
) -> Record:
    metrics = {"job": r.job_name, "offered": result.offered, "reason": result.reason, "accuracy": result.accuracy}
    if champion_job:
        metrics["championJob"] = champion_job
    return Record(
        f"{loop_id(r)}-candidate",
        "retraining",
        result.version,
        result.storage_uri,
        not ended,
        0,
        outcome,
        metrics,
        ended,
    )


def consider_start(
    r: Retraining,
    spec: RetrainingSpec,
    name: str,
    state: RolloutState,
    alerts: list[Alert],
    now: datetime,
    created_at: datetime,
) -> LoopDecision:
    """Idle (or given up): start a loop on open matching alerts or when the schedule is due."""
    if r.phase not in (LoopPhase.IDLE, LoopPhase.GAVE_UP):
        return _unchanged(r, f"loop {r.loop} is {r.phase}")
    if r.cooldown_until and now < r.cooldown_until:
        return _unchanged(r, "cooling down")
    if state.stable is None or state.phase in BUSY:
        return _unchanged(r, f"a rollout is running (phase {state.phase})")
    matching = [a for a in alerts if spec.on_alerts is not None and spec.on_alerts.matches(a.kind, a.severity)]
    if r.phase == LoopPhase.GAVE_UP:  # only alerts the given-up loop did not already try to fix
        matching = [a for a in matching if a.id not in r.alert_ids]
    trigger, ids = "", tuple(sorted(a.id for a in matching))
    if ids:
        trigger = "alerts"
    elif spec.schedule_delta is not None and now - (r.started_at or created_at) >= spec.schedule_delta:
        trigger = "schedule"
    if not trigger:
        return _unchanged(r, "no trigger")
    loop = r.loop + 1
    started = Retraining(
        phase=LoopPhase.TRAINING,
        loop=loop,
        attempt=1,
        trigger=trigger,
        alert_ids=ids,
        job_name=job_name(name, loop, 1),
        started_at=now,
    )
    why = f"alerts {', '.join(str(i) for i in ids)}" if ids else f"schedule {spec.schedule}"
    message = f"retraining loop {loop} started by {why}: Job {started.job_name}"
    started = replace(started, message=message)
    return LoopDecision(
        started,
        "RetrainingStarted",
        message,
        create_job=True,
        records=(_job_record(started, state.stable.version, "training"),),
    )


def retry_due(r: Retraining, spec: RetrainingSpec, name: str, stable: str, now: datetime) -> LoopDecision:
    """Waiting: after the cooldown, the next attempt of the same loop (the failed Job is deleted)."""
    if r.phase != LoopPhase.WAITING:
        return _unchanged(r, "no retry pending")
    if r.cooldown_until and now < r.cooldown_until:
        return _unchanged(r, "cooling down before the next attempt")
    attempt = r.attempt + 1
    nxt = replace(r, phase=LoopPhase.TRAINING, attempt=attempt, job_name=job_name(name, r.loop, attempt))
    message = f"retraining loop {r.loop} attempt {attempt}/{spec.max_attempts}: Job {nxt.job_name}"
    nxt = replace(nxt, message=message, cooldown_until=None)
    return LoopDecision(
        nxt,
        "RetrainingRetried",
        message,
        create_job=True,
        delete_job=r.job_name,
        records=(_job_record(nxt, stable, "training"),),
    )


def follow_job(
    r: Retraining,
    spec: ModelDeploymentSpec,
    job: JobSeen | None,
    result: TrainingResult | None,
    now: datetime,
    uid: str,
) -> LoopDecision:
    """Training: the Job is (re)created while missing; its end decides the next step. `uid`: the ModelDeployment's;
    a Job of the expected name that it does not own (left by another object, or made by hand) is never adopted."""
    loop = spec.retraining
    assert loop is not None
    stable = spec.model.version
    if r.phase != LoopPhase.TRAINING:
        return _unchanged(r, "not training")
    if job is None:
        return LoopDecision(r, "RetrainingJobCreated", f"Job {r.job_name} created", changed=False, create_job=True)
    if not job.owned_by(uid):
        why = f"a Job named {job.name} already exists and is not this ModelDeployment's ({job.owner_text()})"
        return _attempt_failed(r, loop, stable, job.name, "failed", f"{why}: not adopted", now, foreign=True)
    if job.result == "running":
        return _unchanged(r, f"Job {job.name} running")
    if job.result == "succeeded" and result is not None:
        if not result.offered:
            message = f"candidate version {result.version} not offered: {result.reason}"
            done = _ended(r, loop, now, "not_offered", message, candidate=result)
            return LoopDecision(
                done,
                "CandidateNotOffered",
                message,
                "Warning",
                records=(
                    _job_record(r, stable, "trained", ended=True),
                    _candidate_record(r, result, "not_offered", True),
                ),
            )
        if loop.rollout == "None":
            message = f"candidate version {result.version} published ({result.reason}); retraining.rollout is None"
            done = _ended(r, loop, now, "published", message, candidate=result)
            return LoopDecision(
                done,
                "CandidatePublished",
                message,
                records=(
                    _job_record(r, stable, "trained", ended=True),
                    _candidate_record(r, result, "published", True),
                ),
            )
        message = f"candidate version {result.version} offered ({result.reason}): {loop.rollout} rollout"
        rolling = replace(
            r,
            phase=LoopPhase.ROLLING_OUT,
            candidate_version=result.version,
            candidate_storage_uri=result.storage_uri,
            message=message,
        )
        return LoopDecision(
            rolling,
            "CandidateOffered",
            message,
            offer=True,
            records=(_job_record(r, stable, "trained", ended=True), _candidate_record(r, result, "offered")),
        )
    why = job.reason or "no published version recorded for the Job"
    failed_how = "timed out" if job.reason == "DeadlineExceeded" else "failed"
    return _attempt_failed(r, loop, stable, job.name, failed_how, f"Job {job.name} {failed_how} ({why})", now)


def _attempt_failed(
    r: Retraining,
    loop: RetrainingSpec,
    stable: str,
    job: str,
    failed_how: str,
    what: str,
    now: datetime,
    foreign: bool = False,
) -> LoopDecision:
    """One attempt failed: the next one after the cooldown, or give up after maxAttempts. A foreign Job is
    forgotten (jobName unset), so that the retry never deletes it."""
    record = _job_record(r, stable, failed_how, True, reason=what)
    if foreign:
        r = replace(r, job_name=None)
    if r.attempt >= loop.max_attempts:
        message = f"retraining gave up: {what}, attempt {r.attempt}/{loop.max_attempts}"
        gave_up = replace(_ended(r, loop, now, "gave_up", message), phase=LoopPhase.GAVE_UP)
        return LoopDecision(gave_up, "RetrainingGaveUp", message, "Warning", records=(record,))
    message = f"{what}: attempt {r.attempt + 1}/{loop.max_attempts} after the cooldown ({loop.cooldown})"
    waiting = replace(r, phase=LoopPhase.WAITING, message=message, cooldown_until=now + loop.cooldown_delta)
    return LoopDecision(waiting, "RetrainingFailed", message, "Warning", records=(record,))


def follow_rollout(
    r: Retraining, spec: ModelDeploymentSpec, state: RolloutState, now: datetime, name: str
) -> LoopDecision:
    """RollingOut: spec.model names the candidate (moved again if a crash came between); the rollout's end ends
    the loop: promoted resolves the alerts it answers (`Resolution`) and makes the candidate the MLflow champion
    (a Job of the training image: the training run left the alias where it was), anything else leaves both."""
    loop = spec.retraining
    assert loop is not None
    if r.phase != LoopPhase.ROLLING_OUT or r.candidate_version is None:
        return _unchanged(r, "not rolling out")
    version, uri = r.candidate_version, r.candidate_storage_uri or ""
    result = TrainingResult(version, uri, True, r.message)
    if state.stable and state.stable.version == version and state.phase == Phase.SUCCEEDED:
        rollout = state.stable.rollout_id
        champion = champion_job_name(name, r.loop)
        message = (
            f"candidate version {version} promoted (rollout {rollout}); alerts resolved; "
            f"Job {champion} makes it the MLflow champion"
        )
        done = _ended(r, loop, now, "promoted", message)
        kinds = loop.on_alerts.kinds if loop.on_alerts is not None else ()
        return LoopDecision(
            done,
            "RetrainingPromoted",
            message,
            champion_job=champion,
            resolve=Resolution(r.alert_ids, tuple(kinds), version, now),
            records=(_candidate_record(r, result, "promoted", ended=True, champion_job=champion),),
        )
    ended = next((h for h in reversed(state.history) if h.get("version") == version), None)
    if ended is not None and ended.get("outcome") != "promoted" and state.phase not in BUSY:
        outcome = str(ended.get("outcome"))
        message = (
            f"candidate version {version} {outcome.replace('_', ' ')}: {ended.get('message', '')}; alerts stay open"
        )
        done = _ended(r, loop, now, "rolled_back", message)
        return LoopDecision(
            done,
            "RetrainingRolledBack",
            message,
            "Warning",
            records=(_candidate_record(r, result, "rolled_back", ended=True),),
        )
    if state.phase == Phase.FAILED and spec.model.version == version:
        message = f"candidate version {version} failed: {state.message}; alerts stay open"
        done = _ended(r, loop, now, "failed", message)
        return LoopDecision(
            done, "RetrainingRolledBack", message, "Warning", records=(_candidate_record(r, result, "failed", True),)
        )
    if spec.model.version != version:
        return LoopDecision(r, "CandidateOffered", f"spec.model moved to {version}", changed=False, offer=True)
    return _unchanged(r, f"candidate {version} rolling out")


def _ended(
    r: Retraining,
    loop: RetrainingSpec,
    now: datetime,
    outcome: str,
    message: str,
    candidate: TrainingResult | None = None,
) -> Retraining:
    return replace(
        r,
        phase=LoopPhase.IDLE,
        outcome=outcome,
        message=message,
        cooldown_until=now + loop.cooldown_delta,
        candidate_version=candidate.version if candidate else r.candidate_version,
        candidate_storage_uri=candidate.storage_uri if candidate else r.candidate_storage_uri,
    )
