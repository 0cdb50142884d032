"""The rollout state machine: pure transitions from one RolloutState to the next.

Each transition returns a Decision: the new state, the model_deployments rows to record (upserted by key, so
re-running a transition after a crash records nothing twice) and the event that explains it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from mlpipeline_operator.analysis import AnalysisResult
from mlpipeline_operator.spec import ModelDeploymentSpec
from mlpipeline_operator.state import Canary, LoopPhase, Phase, RolloutState, Stable, iso

EventType = Literal["Normal", "Warning"]


class Reason(StrEnum):
    """Why a decision was taken: the Event's reason and the label of mlpipeline_operator_decisions_total."""

    NO_CHANGE = "NoChange"
    DEPLOYING = "Deploying"
    RECONCILED = "Reconciled"
    SERVING_UPDATED = "ServingUpdated"
    MODEL_REFUSED = "ModelRefused"
    CANARY_STARTED = "CanaryStarted"
    READY = "Ready"
    ANALYSIS_WAITING = "AnalysisWaiting"
    ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
    ANALYSIS_FAILED = "AnalysisFailed"
    SHADOW_KEPT = "ShadowKept"
    CANARY_ADVANCED = "CanaryAdvanced"
    AWAITING_PROMOTION = "AwaitingPromotion"
    EXPERIMENT_RUNNING = "ExperimentRunning"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    CANARY_CANCELLED = "CanaryCancelled"
    EXPERIMENT_INCONCLUSIVE = "ExperimentInconclusive"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    FAILED = "Failed"
    RECREATED = "Recreated"


class Outcome(StrEnum):
    """How a rollout ended (mlpipeline_operator_rollouts_total{outcome}; model_deployments.outcome)."""

    DEPLOYED = "deployed"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Record:
    """One model_deployments row, keyed by (deployment, rollout_id, deployment_type)."""

    rollout_id: str
    deployment_type: Literal["stable", "canary", "shadow", "retraining"]
    version: str
    storage_uri: str
    is_active: bool
    traffic_percent: int
    outcome: str | None
    metrics: dict[str, Any] | None = None
    ended: bool = False


@dataclass(frozen=True)
class Decision:
    """A transition's result. `children`: the InferenceServices / HTTPRoute are re-rendered from the new state
    (False: only figures in the status change). `outcome`: the rollout ended so (counted once, when it happens).
    `ready`: KServe's readiness as observed for this decision (None: not looked at, the Ready condition stays)."""

    state: RolloutState
    reason: Reason
    message: str
    event_type: EventType = "Normal"
    records: tuple[Record, ...] = field(default_factory=tuple)
    changed: bool = True
    children: bool = False
    outcome: Outcome | None = None
    ready: bool | None = None
    ready_message: str = ""


def rollout_id(generation: int, version: str) -> str:
    """Deterministic: the same spec generation always yields the same id, so a re-run upserts the same rows."""
    return f"g{generation}-v{version}"


def nothing(state: RolloutState, message: str) -> Decision:
    return Decision(state, Reason.NO_CHANGE, message, changed=False)


def deploy(state: RolloutState, spec: ModelDeploymentSpec, generation: int, now: datetime) -> Decision:
    """First deployment (or Immediate strategy): the spec's model becomes the stable model at once."""
    rid = rollout_id(generation, spec.model.version)
    records: list[Record] = []
    new = state
    if state.canary:
        records.append(_canary_record(state.canary, "superseded", ended=True))
        new = new.with_history(state.canary.rollout_id, state.canary.version, "superseded", now, "model replaced")
    if state.stable and state.stable.rollout_id != rid:
        records.append(_stable_record(state.stable, 0, "superseded", active=False, ended=True))
    records.append(Record(rid, "stable", spec.model.version, spec.model.storage_uri, True, 100, "deployed"))
    message = f"deploying model {spec.model.name} version {spec.model.version}"
    new = replace(
        new,
        phase=Phase.DEPLOYING,
        message=message,
        stable=Stable(spec.model.version, spec.model.storage_uri, rid),
        canary=None,
        rollout_id=rid,
        observed_generation=generation,
    ).with_history(rid, spec.model.version, Outcome.DEPLOYED.value, now, message)
    return Decision(new, Reason.DEPLOYING, message, records=tuple(records), children=True)


def change_model(state: RolloutState, spec: ModelDeploymentSpec, generation: int, now: datetime) -> Decision:
    """spec.model changed: start a canary, replace the model, or cancel a canary when the stable one is back."""
    model = spec.model
    if state.stable is None:
        return deploy(state, spec, generation, now)
    same_as_stable = (model.version, model.storage_uri) == (state.stable.version, state.stable.storage_uri)
    if state.canary and (model.version, model.storage_uri) == (state.canary.version, state.canary.storage_uri):
        return nothing(replace(state, observed_generation=generation), "canary already serves this model")
    if same_as_stable:
        if state.canary is None:
            return nothing(replace(state, observed_generation=generation), "stable already serves this model")
        return roll_back(
            replace(state, observed_generation=generation),
            now,
            "canary cancelled: spec.model is the stable model again",
            outcome=Outcome.CANCELLED,
        )
    if spec.rollout.strategy == "Immediate":
        return deploy(state, spec, generation, now)

    rid = rollout_id(generation, model.version)
    strategy = spec.rollout.strategy
    weight = initial_weight(spec)
    records: list[Record] = []
    new = state
    if state.canary:
        records.append(_canary_record(state.canary, "superseded", ended=True))
        new = new.with_history(state.canary.rollout_id, state.canary.version, "superseded", now, "newer model")
    canary = Canary(model.version, model.storage_uri, rid, weight, 0, now, now, strategy=strategy)
    records.append(_canary_record(canary, "progressing"))
    records.append(_stable_record(state.stable, 100 - weight, None, active=True))
    message = f"{_STARTED[strategy]} of version {model.version} started at {weight}% (stable {state.stable.version})"
    new = replace(
        new,
        phase=Phase.PROGRESSING,
        message=message,
        canary=canary,
        rollout_id=rid,
        observed_generation=generation,
        analysis=None,
    )
    return Decision(new, Reason.CANARY_STARTED, message, records=tuple(records), children=True)


_STARTED = {"Canary": "canary", "ABTest": "A/B test", "Shadow": "shadow"}


def initial_weight(spec: ModelDeploymentSpec) -> int:
    """The candidate's share of the client traffic when it starts: the first step, the A/B weight, or none."""
    if spec.rollout.strategy == "ABTest":
        return spec.rollout.ab_test.weights.candidate
    if spec.rollout.strategy == "Shadow":
        return 0
    return spec.rollout.steps[0]


def became_ready(state: RolloutState) -> Decision:
    """Deploying/Promoting and KServe reports Ready: the rollout is done."""
    if state.phase not in (Phase.DEPLOYING, Phase.PROMOTING) or state.stable is None:
        return nothing(state, "not waiting for readiness")
    message = f"version {state.stable.version} is serving"
    # A first deployment (or Immediate replacement) ends here; a promotion was counted when it was decided.
    deployed = Outcome.DEPLOYED if state.history and state.history[-1].get("outcome") == Outcome.DEPLOYED else None
    # The children are re-rendered: after a promotion the old canary, kept while the stable one rolled out, goes.
    return Decision(
        replace(state, phase=Phase.SUCCEEDED, message=message), Reason.READY, message, children=True, outcome=deployed
    )


def analysis_due(state: RolloutState, spec: ModelDeploymentSpec, now: datetime) -> bool:
    canary = state.canary
    if state.phase != Phase.PROGRESSING or canary is None or canary.awaiting_promotion:
        return False
    last = canary.last_analysis_at or canary.step_started_at
    return now - last >= spec.rollout.interval_delta


def analysis_window_start(state: RolloutState, spec: ModelDeploymentSpec, now: datetime) -> datetime:
    """The window never reaches before the canary started: older rows belong to another rollout.
    An A/B test is judged on everything since it started."""
    assert state.canary is not None
    if state.canary.strategy == "ABTest":
        return state.canary.started_at
    return max(now - spec.rollout.analysis.window_delta, state.canary.started_at)


def judge(
    state: RolloutState,
    spec: ModelDeploymentSpec,
    result: AnalysisResult,
    now: datetime,
    window_start: datetime | None = None,
) -> Decision:
    """One analysis: pass -> next step (or promotion), fail -> count it (roll back at maxFailedChecks)."""
    canary = state.canary
    assert canary is not None and state.stable is not None
    figures = {**result.as_status(), "at": iso(now)}
    if window_start is not None:
        figures["windowStart"] = iso(window_start)
    canary = replace(canary, last_analysis_at=now)
    state = replace(state, analysis=figures)
    assert state.stable is not None
    if canary.strategy == "ABTest":
        return _judge_ab(replace(state, canary=canary), spec, result, now, figures)
    if canary.strategy == "Shadow" and result.verdict == "pass":
        return _shadow_agrees(replace(state, canary=canary), spec, result, now, figures)
    steps = spec.rollout.steps
    if result.verdict == "inconclusive":
        message = f"analysis at {canary.weight}%: {'; '.join(result.reasons)}"
        return Decision(replace(state, canary=canary, message=message), Reason.ANALYSIS_INCONCLUSIVE, message)
    if result.verdict == "fail":
        canary = replace(canary, checks_failed=canary.checks_failed + 1)
        limit = spec.rollout.max_failed_checks
        message = f"analysis failed ({canary.checks_failed}/{limit}) at {canary.weight}%: {'; '.join(result.reasons)}"
        failed = replace(state, canary=canary, message=message)
        if canary.checks_failed >= limit and canary.strategy == "Shadow" and spec.rollout.shadow.on_failure == "Keep":
            # Kept for inspection: no more judging; the annotations decide (promote or rollback).
            canary = replace(canary, awaiting_promotion=True)
            message = (
                f"shadow kept after {canary.checks_failed} failed checks ({'; '.join(result.reasons)}): annotate "
                "mlpipeline.io/rollback=true to remove it or mlpipeline.io/promote=true to promote it anyway"
            )
            return Decision(
                replace(failed, canary=canary, message=message),
                Reason.SHADOW_KEPT,
                message,
                "Warning",
                records=(_canary_record(canary, "progressing", metrics=figures),),
            )
        if canary.checks_failed >= limit:
            return roll_back(
                failed,
                now,
                f"rolled back after {canary.checks_failed} failed checks: " + "; ".join(result.reasons),
                metrics=figures,
            )
        return Decision(
            failed,
            Reason.ANALYSIS_FAILED,
            message,
            "Warning",
            records=(_canary_record(canary, "progressing", metrics=figures),),
        )
    canary = replace(canary, checks_passed=canary.checks_passed + 1)
    if canary.step_index + 1 < len(steps):
        weight = steps[canary.step_index + 1]
        canary = replace(canary, step_index=canary.step_index + 1, weight=weight, step_started_at=now)
        message = f"analysis passed: canary {canary.version} advanced to {weight}%"
        new = replace(state, canary=canary, message=message)
        records = (
            _canary_record(canary, "progressing", metrics=figures),
            _stable_record(state.stable, 100 - weight, None, active=True),
        )
        return Decision(new, Reason.CANARY_ADVANCED, message, records=records, children=True)
    return _promote_or_await(
        replace(state, canary=canary),
        spec,
        now,
        figures,
        reason="analysis passed at 100%",
        waiting=f"analysis passed at 100%: annotate mlpipeline.io/promote=true to promote version {canary.version}",
    )


def _promote_or_await(
    state: RolloutState,
    spec: ModelDeploymentSpec,
    now: datetime,
    figures: dict[str, Any],
    *,
    reason: str,
    waiting: str,
) -> Decision:
    """A candidate that passed: promoted now with autoPromote, else held until the promote annotation."""
    canary = state.canary
    assert canary is not None
    if spec.rollout.auto_promote:
        return promote(state, now, reason, metrics=figures)
    canary = replace(canary, awaiting_promotion=True)
    return Decision(
        replace(state, canary=canary, message=waiting),
        Reason.AWAITING_PROMOTION,
        waiting,
        records=(_canary_record(canary, "progressing", metrics=figures),),
    )


def _shadow_agrees(
    state: RolloutState, spec: ModelDeploymentSpec, result: AnalysisResult, now: datetime, figures: dict[str, Any]
) -> Decision:
    canary = state.canary
    assert canary is not None
    canary = replace(canary, checks_passed=canary.checks_passed + 1)
    return _promote_or_await(
        replace(state, canary=canary),
        spec,
        now,
        figures,
        reason=f"shadow agreed: {result.summary}",
        waiting=f"shadow agreed ({result.summary}): annotate mlpipeline.io/promote=true to promote it",
    )


def _judge_ab(
    state: RolloutState, spec: ModelDeploymentSpec, result: AnalysisResult, now: datetime, figures: dict[str, Any]
) -> Decision:
    """Live figures until the experiment ends; then the winner is promoted, a losing candidate rolled back, and an
    inconclusive one removed with the stable model kept."""
    canary = state.canary
    assert canary is not None
    why = "; ".join(g.message for g in result.gates)
    if not result.final:
        message = f"A/B test of version {canary.version}: {why}"
        return Decision(replace(state, message=message), Reason.EXPERIMENT_RUNNING, message)
    if result.winner == "canary":
        return _promote_or_await(
            state,
            spec,
            now,
            figures,
            reason=f"A/B test won: {why}",
            waiting=f"A/B test won ({why}): annotate mlpipeline.io/promote=true to promote version {canary.version}",
        )
    if result.winner == "stable":
        return roll_back(state, now, f"A/B test lost: {why}", metrics=figures)
    return roll_back(state, now, f"A/B test inconclusive: {why}", metrics=figures, outcome=Outcome.INCONCLUSIVE)


def promote(state: RolloutState, now: datetime, why: str, metrics: dict[str, Any] | None = None) -> Decision:
    """The canary becomes the stable model; the old stable model is retired."""
    canary, stable = state.canary, state.stable
    if canary is None or stable is None:
        return nothing(state, "no canary to promote")
    metrics = metrics if metrics is not None else state.analysis
    message = f"version {canary.version} promoted ({why}); version {stable.version} retired"
    records = (
        _canary_record(replace(canary, weight=100), "promoted", metrics=metrics, active=False, ended=True),
        Record(canary.rollout_id, "stable", canary.version, canary.storage_uri, True, 100, "promoted", metrics),
        _stable_record(stable, 0, "superseded", active=False, ended=True),
    )
    new = replace(
        state,
        phase=Phase.PROMOTING,
        message=message,
        stable=Stable(canary.version, canary.storage_uri, canary.rollout_id),
        canary=None,
        rollout_id=canary.rollout_id,
    ).with_history(canary.rollout_id, canary.version, Outcome.PROMOTED.value, now, why)
    return Decision(new, Reason.PROMOTED, message, records=records, children=True, outcome=Outcome.PROMOTED)


def roll_back(
    state: RolloutState,
    now: datetime,
    why: str,
    metrics: dict[str, Any] | None = None,
    outcome: Outcome = Outcome.ROLLED_BACK,
) -> Decision:
    """The canary is removed; all traffic goes back to the stable model."""
    canary, stable = state.canary, state.stable
    if canary is None or stable is None:
        return nothing(state, "no canary to roll back")
    metrics = metrics if metrics is not None else state.analysis
    records = (
        _canary_record(canary, outcome, metrics=metrics, active=False, ended=True),
        _stable_record(stable, 100, None, active=True),
    )
    phase = Phase.ROLLED_BACK if outcome == Outcome.ROLLED_BACK else Phase.SUCCEEDED
    ended = outcome.value.replace("_", " ")
    message = f"version {canary.version} {ended}: {why}; version {stable.version} serves all traffic"
    new = replace(state, phase=phase, message=message, canary=None).with_history(
        canary.rollout_id, canary.version, outcome.value, now, why
    )
    return Decision(new, _ENDED[outcome], message, "Warning", records, children=True, outcome=outcome)


_ENDED = {
    Outcome.ROLLED_BACK: Reason.ROLLED_BACK,
    Outcome.CANCELLED: Reason.CANARY_CANCELLED,
    Outcome.INCONCLUSIVE: Reason.EXPERIMENT_INCONCLUSIVE,
}


def pause(state: RolloutState) -> Decision:
    if state.phase != Phase.PROGRESSING:
        return nothing(state, f"nothing to pause in phase {state.phase}")
    message = "rollout paused (annotation mlpipeline.io/paused)"
    return Decision(replace(state, phase=Phase.PAUSED, message=message), Reason.PAUSED, message)


def resume(state: RolloutState, now: datetime) -> Decision:
    if state.phase != Phase.PAUSED:
        return nothing(state, f"nothing to resume in phase {state.phase}")
    if state.canary is None:
        return Decision(replace(state, phase=Phase.SUCCEEDED, message="resumed"), Reason.RESUMED, "resumed")
    # A paused step does not count as observed time: analysis restarts its clock.
    canary = replace(state.canary, step_started_at=now, last_analysis_at=None)
    message = f"rollout resumed at {canary.weight}%"
    return Decision(replace(state, phase=Phase.PROGRESSING, canary=canary, message=message), Reason.RESUMED, message)


def fail(state: RolloutState, why: str) -> Decision:
    """An invalid spec (or one the API server refuses): phase Failed. Said once: a timer that meets the same
    problem on every tick changes nothing more."""
    if state.phase == Phase.FAILED and state.message == why:
        return nothing(state, why)
    return Decision(replace(state, phase=Phase.FAILED, message=why), Reason.FAILED, why, "Warning")


def refuse_model(state: RolloutState, spec: ModelDeploymentSpec, problem: str) -> Decision:
    """A model version that is not completely published never reaches a predictor; what serves keeps serving."""
    message = f"model version {spec.model.version} refused: {problem}"
    return Decision(
        replace(state, phase=Phase.FAILED, message=message), Reason.MODEL_REFUSED, message, "Warning", children=True
    )


def reconcile_created(state: RolloutState, spec: ModelDeploymentSpec, generation: int, now: datetime) -> Decision:
    """The create event: deploy the model; for a restarted operator finishing an interrupted create (something is
    already stable), the model change it may have missed, else the children re-applied."""
    if state.stable is None:
        return deploy(state, spec, generation, now)
    decision = change_model(state, spec, generation, now)
    if not decision.changed:
        return Decision(state, Reason.RECONCILED, "children re-applied", children=True)
    return decision


def serving_changed(state: RolloutState) -> Decision:
    """Predictor, mode, routing or secrets changed: the children are re-rendered for the models already served."""
    if state.stable is None:
        return nothing(state, "nothing deployed yet")
    return Decision(
        state, Reason.SERVING_UPDATED, "predictor settings re-applied to the InferenceServices", children=True
    )


def observe_readiness(state: RolloutState, ready: bool, message: str) -> Decision:
    """KServe's verdict on the served InferenceServices: a deployment or promotion finishes when they are Ready;
    either way the verdict goes into the Ready condition."""
    decision = became_ready(state) if ready else nothing(state, message)
    return replace(decision, ready=ready, ready_message=message)


def recreate(state: RolloutState, name: str) -> Decision:
    """The stable InferenceService is gone (deleted by hand, or never created after a crash): put it back."""
    message = f"InferenceService {name} was missing"
    return Decision(
        state,
        Reason.RECREATED,
        message,
        "Warning",
        children=True,
        ready=False,
        ready_message="InferenceService not found",
    )


def wait_for_readiness(state: RolloutState, why: str) -> Decision:
    """Analysis starts only once KServe serves the candidate: say so once, then wait."""
    message = f"analysis waits for readiness: {why}"
    if state.message == message:
        return nothing(state, message)
    return Decision(replace(state, message=message), Reason.ANALYSIS_WAITING, message)


def conditions(
    state: RolloutState, ready: bool | None, ready_message: str, now: datetime
) -> tuple[dict[str, Any], ...]:
    """Ready / Progressing / Degraded, keeping lastTransitionTime when a condition's status did not change."""
    previous = {c.get("type"): c for c in state.conditions}
    ready_status = previous.get("Ready", {}).get("status", "Unknown") if ready is None else str(ready)
    progressing = state.phase in (Phase.DEPLOYING, Phase.PROGRESSING, Phase.PROMOTING)
    degraded = state.phase in (Phase.ROLLED_BACK, Phase.FAILED)
    wanted = [
        (
            "Ready",
            ready_status,
            "InferenceServiceReady" if ready_status == "True" else "InferenceServiceNotReady",
            ready_message or previous.get("Ready", {}).get("message", ""),
        ),
        ("Progressing", str(progressing), state.phase.value, state.message),
        ("Degraded", str(degraded), state.phase.value if degraded else "AsExpected", state.message if degraded else ""),
    ]
    if state.retraining is not None:
        gave_up = state.retraining.phase == LoopPhase.GAVE_UP
        wanted.append(
            (
                "RetrainingFailed",
                str(gave_up),
                "MaxAttemptsReached" if gave_up else "AsExpected",
                state.retraining.message if gave_up else "",
            )
        )
    result = []
    for kind, status, reason, message in wanted:
        old = previous.get(kind)
        changed = old is None or old.get("status") != status
        result.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": iso(now) if changed else (old or {}).get("lastTransitionTime", iso(now)),
            }
        )
    return tuple(result)


def _canary_record(
    canary: Canary,
    outcome: str | None,
    metrics: dict[str, Any] | None = None,
    active: bool = True,
    ended: bool = False,
) -> Record:
    return Record(
        canary.rollout_id,
        "shadow" if canary.strategy == "Shadow" else "canary",
        canary.version,
        canary.storage_uri,
        active,
        canary.weight,
        outcome,
        metrics,
        ended,
    )


def _stable_record(stable: Stable, traffic: int, outcome: str | None, active: bool, ended: bool = False) -> Record:
    return Record(
        stable.rollout_id, "stable", stable.version, stable.storage_uri, active, traffic, outcome, None, ended
    )
