"""kopf handlers, one per concern. Each reads the ModelDeployment afresh under its lock, asks the pure state
machine (decisions.py) what to do, then applies it in a fixed order: children, model_deployments rows, status,
Event. Every step is idempotent, so a handler re-run after a crash (or a restarted operator) converges.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client.rest import ApiException

from mlcore.config import get_settings
from mlcore.errors import DatabaseError, DataValidationError
from mlpipeline_operator import (
    ANNOTATION_PAUSED,
    ANNOTATION_PROMOTE,
    ANNOTATION_ROLLBACK,
    GROUP,
    PLURAL,
    VERSION,
    decisions,
    metrics,
    policy,
)
from mlpipeline_operator.decisions import Decision
from mlpipeline_operator.modelcheck import model_problem
from mlpipeline_operator.records import record, retire_all
from mlpipeline_operator.render import Owner, ServedModel, canary_name, candidate_name, is_ready, render
from mlpipeline_operator.runtime import Runtime
from mlpipeline_operator.spec import ModelDeploymentSpec, parse_spec
from mlpipeline_operator.state import RolloutState, from_status, to_status
from mlpipeline_operator.strategies import measure

log = logging.getLogger(__name__)

# Decisions that change only figures in the status: the children stay as they are.
_STATUS_ONLY = {
    "NoChange",
    "AnalysisWaiting",
    "AnalysisInconclusive",
    "ExperimentRunning",
    "AnalysisFailed",
    "AwaitingPromotion",
    "Paused",
    "Resumed",
    "ShadowKept",
}
_ROLLOUT_OUTCOMES = {
    "Promoted": "promoted",
    "RolledBack": "rolled_back",
    "CanaryCancelled": "cancelled",
    "ExperimentInconclusive": "inconclusive",
}
_TRUE = {"true", "yes", "1"}

Transition = Callable[[RolloutState, ModelDeploymentSpec, dict[str, Any]], Decision]


def now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------------------------------------
# the shared flow
# ------------------------------------------------------------------------------------------------------------


def _act(runtime: Runtime, namespace: str, name: str, handler: str, transition: Transition) -> Decision | None:
    """Read, decide, apply. None when the object is gone or being deleted."""
    with runtime.locked(f"{namespace}/{name}"):
        body = runtime.kube.get_deployment(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        state = from_status(body.get("status"))
        try:
            spec = parse_spec(body.get("spec") or {})
            policy.check(spec, runtime.config, runtime.defaults)
        except DataValidationError as exc:
            _commit(runtime, body, None, decisions.fail(state, str(exc)), None, "")
            metrics.RECONCILES.labels(handler, "invalid").inc()
            raise kopf.PermanentError(str(exc)) from exc
        decision = transition(state, spec, body)
        try:
            _commit(runtime, body, spec, decision, None, "")
        except DatabaseError as exc:
            metrics.RECONCILES.labels(handler, "database_error").inc()
            raise kopf.TemporaryError(f"{exc}; retrying", delay=5) from exc
        except ApiException as exc:
            metrics.RECONCILES.labels(handler, "api_error").inc()
            if exc.status in (400, 403, 422):
                # The API server refuses what we render (or RBAC forbids it): retrying cannot help.
                failed = decisions.fail(state, f"cannot apply InferenceService: {exc.status} {exc.reason}")
                _commit(runtime, body, spec, failed, None, "")
                raise kopf.PermanentError(failed.message) from exc
            raise kopf.TemporaryError(f"Kubernetes API error {exc.status}; retrying", delay=5) from exc
        metrics.RECONCILES.labels(handler, "ok").inc()
        return decision


def _commit(
    runtime: Runtime,
    body: dict[str, Any],
    spec: ModelDeploymentSpec | None,
    decision: Decision,
    ready: bool | None,
    ready_message: str,
) -> None:
    """Children, then rows, then status, then the Event: a crash in between is repaired by a re-run."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    owner = Owner(namespace, name, meta["uid"])
    state = decision.state
    if decision.changed and decision.reason not in _STATUS_ONLY and spec is not None:
        _apply_children(runtime, owner, spec, state)
    if decision.records and spec is not None:
        record(runtime.engine, owner.deployment_id, namespace, spec.model.name, decision.records)
    new_conditions = decisions.conditions(state, ready, ready_message, now())
    if decision.changed or not _same_conditions(new_conditions, state.conditions):
        state = replace(state, conditions=new_conditions, inference_service=name)
        runtime.kube.write_status(namespace, name, to_status(state))
    if decision.changed:
        kopf.event(body, type=decision.event_type, reason=decision.reason, message=decision.message)
        metrics.DECISIONS.labels(decision.reason).inc()
        if decision.reason in _ROLLOUT_OUTCOMES:
            metrics.ROLLOUTS.labels(_ROLLOUT_OUTCOMES[decision.reason]).inc()
        if decision.reason == "Ready" and state.history and state.history[-1].get("outcome") == "deployed":
            metrics.ROLLOUTS.labels("deployed").inc()
    metrics.CANARY_WEIGHT.labels(namespace, name).set(state.canary.weight if state.canary else 0)


def _apply_children(runtime: Runtime, owner: Owner, spec: ModelDeploymentSpec, state: RolloutState) -> None:
    if state.stable is None:
        return
    stable = ServedModel(state.stable.version, state.stable.storage_uri)
    canary = ServedModel(state.canary.version, state.canary.storage_uri) if state.canary else None
    weight = state.canary.weight if state.canary else 0
    strategy = state.canary.strategy if state.canary else "Canary"
    desired = render(owner, spec, stable, canary, weight, runtime.defaults, strategy)
    # While the promoted model rolls out on the stable InferenceService, the old canary keeps serving.
    keep = {canary_name(owner.name)} if state.phase == "Promoting" else set()
    runtime.kube.apply(desired, owner.namespace, owner.name, keep=keep)


def _same_conditions(a: tuple[dict[str, Any], ...], b: tuple[dict[str, Any], ...]) -> bool:
    def key(items: tuple[dict[str, Any], ...]) -> list[tuple[Any, ...]]:
        return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in items)

    return key(a) == key(b)


def _readiness(
    runtime: Runtime, namespace: str, name: str, spec: ModelDeploymentSpec, state: RolloutState
) -> tuple[bool, str]:
    """Ready when the stable InferenceService (and, in RawDeployment mode, the canary one) reports Ready."""
    ready, message = is_ready(runtime.kube.get_inference_service(namespace, name))
    if ready and state.canary and spec.deployment_mode == "RawDeployment":
        candidate = candidate_name(name, state.canary.strategy)
        canary_ready, canary_message = is_ready(runtime.kube.get_inference_service(namespace, candidate))
        if not canary_ready:
            return False, f"{state.canary.strategy.lower()}: {canary_message}"
    return ready, message


def _runtime(memo: kopf.Memo) -> Runtime:
    return memo["runtime"]  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------------------
# handlers
# ------------------------------------------------------------------------------------------------------------


def _refused(runtime: Runtime, state: RolloutState, spec: ModelDeploymentSpec) -> Decision | None:
    """With MLP_OPERATOR_VERIFY_MODELS, a version that is not completely published never reaches a predictor."""
    if not runtime.config.verify_models:
        return None
    if state.stable and spec.model.storage_uri in (state.stable.storage_uri, getattr(state.canary, "storage_uri", "")):
        return None  # already serving: checked when it arrived
    problem = model_problem(spec.model.storage_uri, get_settings().effective_s3_endpoint)
    if problem is None:
        return None
    message = f"model version {spec.model.version} refused: {problem}"
    return Decision(replace(state, phase="Failed", message=message), "ModelRefused", message, "Warning")


def create_inference_service(memo: kopf.Memo, namespace: str, name: str, **_: Any) -> None:
    """A new ModelDeployment: its model becomes the stable InferenceService."""
    runtime = _runtime(memo)

    def transition(state: RolloutState, spec: ModelDeploymentSpec, body: dict[str, Any]) -> Decision:
        refused = _refused(runtime, state, spec)
        if refused is not None:
            return refused
        generation = int(body["metadata"].get("generation", 1))
        if state.stable is not None:  # a restarted operator finishing an interrupted create
            decision = decisions.change_model(state, spec, generation, now())
            if not decision.changed:
                return Decision(state, "Reconciled", "children re-applied")
            return decision
        return decisions.deploy(state, spec, generation, now())

    _act(runtime, namespace, name, "create", transition)


def start_rollout_on_model_change(memo: kopf.Memo, namespace: str, name: str, **_: Any) -> None:
    """spec.model changed: a canary at the first step (Canary) or a replacement (Immediate)."""

    runtime = _runtime(memo)

    def transition(state: RolloutState, spec: ModelDeploymentSpec, body: dict[str, Any]) -> Decision:
        return _refused(runtime, state, spec) or decisions.change_model(
            state, spec, int(body["metadata"].get("generation", 1)), now()
        )

    _act(runtime, namespace, name, "model_change", transition)


def apply_serving_changes(memo: kopf.Memo, namespace: str, name: str, old: Any, new: Any, **_: Any) -> None:
    """Predictor, mode, routing or secrets changed: re-render the children for the models already served."""
    ignored = {"model", "rollout"}
    before = {k: v for k, v in dict(old or {}).items() if k not in ignored}
    after = {k: v for k, v in dict(new or {}).items() if k not in ignored}
    if before == after:
        return

    def transition(state: RolloutState, spec: ModelDeploymentSpec, body: dict[str, Any]) -> Decision:
        if state.stable is None:
            return decisions.nothing(state, "nothing deployed yet")
        return Decision(state, "ServingUpdated", "predictor settings re-applied to the InferenceServices")

    _act(_runtime(memo), namespace, name, "serving_change", transition)


def track_readiness(memo: kopf.Memo, namespace: str, name: str, status: Any, **_: Any) -> None:
    """Follow KServe's Ready condition: finish deployments and promotions, keep the Ready condition true to it."""
    if not deployed(status):
        return
    runtime = _runtime(memo)
    with runtime.locked(f"{namespace}/{name}"):
        body = runtime.kube.get_deployment(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        state = from_status(body.get("status"))
        if state.stable is None:
            return
        spec = parse_spec(body.get("spec") or {})
        owner = Owner(namespace, name, body["metadata"]["uid"])
        if runtime.kube.get_inference_service(namespace, name) is None:
            # Deleted by hand (or never created after a crash): put it back.
            _apply_children(runtime, owner, spec, state)
            kopf.event(body, type="Warning", reason="Recreated", message=f"InferenceService {name} was missing")
        ready, message = _readiness(runtime, namespace, name, spec, state)
        decision = decisions.became_ready(state) if ready else decisions.nothing(state, message)
        _commit(runtime, body, spec, decision, ready, message)
    metrics.RECONCILES.labels("readiness", "ok").inc()


def analyse_canary(memo: kopf.Memo, namespace: str, name: str, status: Any, **_: Any) -> None:
    """Each rollout.interval, compare canary and stable prediction logs; advance, promote or roll back."""
    if not in_rollout(status):  # kopf's cached view: skip the API read for objects not in a rollout
        return
    runtime = _runtime(memo)

    def transition(state: RolloutState, spec: ModelDeploymentSpec, body: dict[str, Any]) -> Decision:
        moment = now()
        if not decisions.analysis_due(state, spec, moment):
            return decisions.nothing(state, "analysis not due")
        assert state.canary is not None and state.stable is not None
        ready, why = _readiness(runtime, namespace, name, spec, state)
        if not ready:
            overdue = policy.canary_overdue(state, runtime.config, moment)
            if overdue is not None:
                return decisions.roll_back(state, moment, f"{overdue}: {why}")
            # Analysis starts only once KServe serves the canary; say so once, then wait.
            message = f"analysis waits for readiness: {why}"
            if state.message == message:
                return decisions.nothing(state, message)
            return Decision(replace(state, message=message), "AnalysisWaiting", message)
        started = time.perf_counter()
        since = decisions.analysis_window_start(state, spec, moment)
        result = measure(runtime.engine, f"{namespace}/{name}", state, spec, since, moment)
        metrics.ANALYSIS_SECONDS.inc(time.perf_counter() - started)
        return decisions.judge(state, spec, result, moment, since)

    try:
        _act(runtime, namespace, name, "analysis", transition)
    except kopf.PermanentError as exc:
        # Already recorded as phase Failed; a timer must keep running so a fixed spec is picked up again.
        log.error("analysis of %s/%s failed permanently: %s", namespace, name, exc)


def promote_on_request(memo: kopf.Memo, namespace: str, name: str, new: Any, patch: kopf.Patch, **_: Any) -> None:
    """Annotation mlpipeline.io/promote=true: promote the canary now."""
    if str(new or "").lower() not in _TRUE:
        return
    _act(
        _runtime(memo),
        namespace,
        name,
        "manual_promote",
        lambda state, spec, body: decisions.promote(state, now(), "manual promotion"),
    )
    patch.metadata.annotations[ANNOTATION_PROMOTE] = None  # a request is consumed once


def roll_back_on_request(memo: kopf.Memo, namespace: str, name: str, new: Any, patch: kopf.Patch, **_: Any) -> None:
    """Annotation mlpipeline.io/rollback=true: roll the canary back now."""
    if str(new or "").lower() not in _TRUE:
        return
    _act(
        _runtime(memo),
        namespace,
        name,
        "manual_rollback",
        lambda state, spec, body: decisions.roll_back(state, now(), "manual rollback"),
    )
    patch.metadata.annotations[ANNOTATION_ROLLBACK] = None


def pause_or_resume_on_request(memo: kopf.Memo, namespace: str, name: str, new: Any, **_: Any) -> None:
    """Annotation mlpipeline.io/paused=true holds the canary where it is; removing it (or false) resumes."""
    paused = str(new or "").lower() in _TRUE

    def transition(state: RolloutState, spec: ModelDeploymentSpec, body: dict[str, Any]) -> Decision:
        return decisions.pause(state) if paused else decisions.resume(state, now())

    _act(_runtime(memo), namespace, name, "pause" if paused else "resume", transition)


def delete_children_and_retire_rows(memo: kopf.Memo, namespace: str, name: str, body: Any, **_: Any) -> None:
    """Deletion (behind the finalizer): rows become inactive, children are deleted explicitly (no reliance on GC)."""
    runtime = _runtime(memo)
    with runtime.locked(f"{namespace}/{name}"):
        try:
            retired = retire_all(runtime.engine, f"{namespace}/{name}")
        except DatabaseError as exc:
            raise kopf.TemporaryError(f"{exc}; retrying", delay=5) from exc
        deleted = runtime.kube.delete_children(namespace, name)
    runtime.forget(f"{namespace}/{name}")
    with contextlib.suppress(KeyError):  # never labelled if it never got that far
        metrics.CANARY_WEIGHT.remove(namespace, name)
    metrics.RECONCILES.labels("delete", "ok").inc()
    kopf.info(
        dict(body),
        reason="Deleted",
        message=f"deleted {', '.join(deleted) or 'no children'}; {retired} model_deployments row(s) retired",
    )


def in_rollout(status: Any, **_: Any) -> bool:
    return (status or {}).get("phase") == "Progressing"


def deployed(status: Any, **_: Any) -> bool:
    return bool((status or {}).get("stable"))


def register(registry: kopf.OperatorRegistry, tick_seconds: float) -> None:
    """Attach every handler to `registry` (explicit, so tests can run several operators one after another)."""
    resource = (GROUP, VERSION, PLURAL)
    kopf.on.create(*resource, registry=registry)(create_inference_service)
    kopf.on.update(*resource, field="spec.model", registry=registry)(start_rollout_on_model_change)
    kopf.on.update(*resource, field="spec", registry=registry)(apply_serving_changes)
    # No `when=` filters: kopf stops a filtered timer on a transient mismatch and restarts it only after a
    # long cancellation poll; the timers check the cached phase themselves instead.
    kopf.timer(*resource, interval=tick_seconds, registry=registry)(track_readiness)
    kopf.timer(*resource, interval=tick_seconds, registry=registry)(analyse_canary)
    kopf.on.field(*resource, field=["metadata", "annotations", ANNOTATION_PROMOTE], registry=registry)(
        promote_on_request
    )
    kopf.on.field(*resource, field=["metadata", "annotations", ANNOTATION_ROLLBACK], registry=registry)(
        roll_back_on_request
    )
    kopf.on.field(*resource, field=["metadata", "annotations", ANNOTATION_PAUSED], registry=registry)(
        pause_or_resume_on_request
    )
    kopf.on.delete(*resource, registry=registry)(delete_children_and_retire_rows)
