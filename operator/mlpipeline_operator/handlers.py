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
from typing import Any, cast

import kopf
from kubernetes.client.rest import ApiException

from mlcore.config import get_settings
from mlcore.errors import DatabaseError, DataValidationError
from mlpipeline_operator import (
    ANNOTATION_PAUSED,
    ANNOTATION_PROMOTE,
    ANNOTATION_ROLLBACK,
    GROUP,
    ISVC_GROUP,
    ISVC_PLURAL,
    ISVC_VERSION,
    LABEL_MANAGED_BY,
    MANAGER,
    PLURAL,
    VERSION,
    decisions,
    metrics,
    policy,
    workloads,
)
from mlpipeline_operator.decisions import Decision
from mlpipeline_operator.modelcheck import model_problem
from mlpipeline_operator.records import record, retire_all
from mlpipeline_operator.render import Owner, ServedModel, canary_name, candidate_name, is_ready, render
from mlpipeline_operator.runtime import Runtime, as_handler
from mlpipeline_operator.spec import ModelDeploymentSpec, parse_spec, with_strategy
from mlpipeline_operator.state import LoopPhase, Phase, RolloutState, from_status, to_status
from mlpipeline_operator.strategies import measure

log = logging.getLogger(__name__)

_TRUE = {"true", "yes", "1"}

Transition = Callable[[RolloutState, ModelDeploymentSpec, dict[str, Any]], Decision]
# kopf.index of the operator's InferenceServices: (namespace, name) -> KServe's (ready, message), kept by the watch.
Readiness = kopf.Index[tuple[str, str], tuple[bool, str]]


def now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------------------------------------
# the shared flow
# ------------------------------------------------------------------------------------------------------------


def _act(
    runtime: Runtime, namespace: str, name: str, handler: str, transition: Transition, *, timer: bool = False
) -> Decision | None:
    """Read, decide, apply. None when the object is gone or being deleted.

    A spec the operator refuses (or children the API server refuses) is recorded as phase Failed and raised as
    kopf.PermanentError; from a timer (`timer=True`) it is logged instead, so the timer keeps running and picks up
    a fixed spec, and said once: the same failure on the next tick changes nothing.
    """
    try:
        return _decide_and_commit(runtime, namespace, name, handler, transition)
    except _RefusedError as exc:
        if not timer:
            raise kopf.PermanentError(exc.decision.message) from exc.__cause__
        level = logging.ERROR if exc.decision.changed else logging.DEBUG
        log.log(level, "%s of %s/%s failed permanently: %s", handler, namespace, name, exc.decision.message)
        return exc.decision


class _RefusedError(Exception):
    """A Failed decision already committed; the handler decides how kopf hears of it."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.message)
        self.decision = decision


def _decide_and_commit(
    runtime: Runtime, namespace: str, name: str, handler: str, transition: Transition
) -> Decision | None:
    with runtime.locked(f"{namespace}/{name}"):
        body = runtime.kube.get_deployment(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        state = from_status(body.get("status"))
        try:
            spec = parse_spec(body.get("spec") or {})
            policy.check(spec, runtime.config, runtime.defaults)
        except DataValidationError as exc:
            failed = decisions.fail(state, str(exc))
            _commit(runtime, body, None, failed)
            metrics.RECONCILES.labels(handler, "invalid").inc()
            raise _RefusedError(failed) from exc
        decision = transition(state, spec, body)
        try:
            _commit(runtime, body, spec, decision)
        except DatabaseError as exc:
            metrics.RECONCILES.labels(handler, "database_error").inc()
            raise kopf.TemporaryError(f"{exc}; retrying", delay=5) from exc
        except ApiException as exc:
            metrics.RECONCILES.labels(handler, "api_error").inc()
            if exc.status in (400, 403, 422):
                # The API server refuses what we render (or RBAC forbids it): retrying cannot help.
                failed = decisions.fail(state, f"cannot apply InferenceService: {exc.status} {exc.reason}")
                _commit(runtime, body, spec, failed)
                raise _RefusedError(failed) from exc
            raise kopf.TemporaryError(f"Kubernetes API error {exc.status}; retrying", delay=5) from exc
        metrics.RECONCILES.labels(handler, "ok").inc()
        return decision


def _commit(runtime: Runtime, body: dict[str, Any], spec: ModelDeploymentSpec | None, decision: Decision) -> None:
    """Children, then rows, then status, then the Event: a crash in between is repaired by a re-run."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    owner = Owner(namespace, name, meta["uid"])
    state = decision.state
    if decision.changed and decision.children and spec is not None:
        _apply_children(runtime, owner, spec, state)
    if decision.records and spec is not None:
        record(runtime.engine, owner.deployment_id, namespace, spec.model.name, decision.records)
    new_conditions = decisions.conditions(state, decision.ready, decision.ready_message, now())
    if decision.changed or not _same_conditions(new_conditions, state.conditions):
        state = replace(state, conditions=new_conditions, inference_service=name)
        runtime.kube.write_status(namespace, name, to_status(state))
    if decision.changed:
        kopf.event(cast(Any, body), type=decision.event_type, reason=decision.reason.value, message=decision.message)
        metrics.DECISIONS.labels(decision.reason.value).inc()
        if decision.outcome is not None:
            metrics.ROLLOUTS.labels(decision.outcome.value).inc()
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
    keep = {canary_name(owner.name)} if state.phase == Phase.PROMOTING else set()
    runtime.kube.apply(desired, owner.namespace, owner.name, keep=keep)


def _same_conditions(a: tuple[dict[str, Any], ...], b: tuple[dict[str, Any], ...]) -> bool:
    def key(items: tuple[dict[str, Any], ...]) -> list[tuple[Any, ...]]:
        return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in items)

    return key(a) == key(b)


def _indexed(readiness: Readiness, namespace: str, name: str) -> tuple[bool, str] | None:
    """KServe's verdict on one InferenceService as the watch last saw it; None when the watch has not seen it."""
    for verdict in readiness.get((namespace, name), ()):
        return verdict
    return None


Lookup = Callable[[str, str], tuple[bool, str]]
# (namespace, InferenceService, version) -> whether KServe's predictor Deployment has rolled that version out.
RolloutLookup = Callable[[str, str, str], tuple[bool, str]]


def _from_index(readiness: Readiness) -> Lookup:
    return lambda namespace, name: _indexed(readiness, namespace, name) or is_ready(None)


def _from_api(runtime: Runtime) -> Lookup:
    return lambda namespace, name: is_ready(runtime.kube.get_inference_service(namespace, name))


def _rollouts_from_api(runtime: Runtime) -> RolloutLookup:
    return lambda namespace, name, version: workloads.serves(
        runtime.kube.get_predictor_workload(namespace, name), version
    )


def _readiness(
    lookup: Lookup,
    namespace: str,
    name: str,
    spec: ModelDeploymentSpec,
    state: RolloutState,
    rollouts: RolloutLookup | None = None,
) -> tuple[bool, str]:
    """Ready when the stable InferenceService (and, in RawDeployment mode, the candidate one) reports Ready; with
    `rollouts` (RawDeployment), also only once KServe's Deployment of each runs its version on every replica."""
    raw = spec.deployment_mode == "RawDeployment"
    stable = state.stable.version if state.stable else ""
    ready, message = _serving(lookup, rollouts if raw else None, namespace, name, stable)
    if ready and state.canary and raw:
        candidate = candidate_name(name, state.canary.strategy)
        canary_ready, canary_message = _serving(lookup, rollouts, namespace, candidate, state.canary.version)
        if not canary_ready:
            return False, f"{state.canary.strategy.lower()}: {canary_message}"
    return ready, message


def _serving(
    lookup: Lookup, rollouts: RolloutLookup | None, namespace: str, name: str, version: str
) -> tuple[bool, str]:
    ready, message = lookup(namespace, name)
    if not ready or rollouts is None:
        return ready, message
    return rollouts(namespace, name, version)


def _runtime(memo: kopf.Memo) -> Runtime:
    return memo["runtime"]  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------------------
# handlers
# ------------------------------------------------------------------------------------------------------------


def inference_service_readiness(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """Index: KServe's Ready verdict of each InferenceService the operator manages, kept current by the watch,
    so the timers read readiness from memory instead of one GET per InferenceService per tick."""
    return {(namespace, name): is_ready(dict(body))}


def _refused(runtime: Runtime, state: RolloutState, spec: ModelDeploymentSpec) -> Decision | None:
    """With MLP_OPERATOR_VERIFY_MODELS, a version that is not completely published never reaches a predictor."""
    if not runtime.config.verify_models:
        return None
    if state.stable and spec.model.storage_uri in (state.stable.storage_uri, getattr(state.canary, "storage_uri", "")):
        return None  # already serving: checked when it arrived
    problem = model_problem(spec.model.storage_uri, get_settings().effective_s3_endpoint)
    return None if problem is None else decisions.refuse_model(state, spec, problem)


def create_inference_service(memo: kopf.Memo, namespace: str, name: str, **_: Any) -> None:
    """A new ModelDeployment: its model becomes the stable InferenceService."""
    runtime = _runtime(memo)

    def transition(state: RolloutState, spec: ModelDeploymentSpec, body: dict[str, Any]) -> Decision:
        generation = int(body["metadata"].get("generation", 1))
        return _refused(runtime, state, spec) or decisions.reconcile_created(state, spec, generation, now())

    _act(runtime, namespace, name, "create", transition)


def start_rollout_on_model_change(memo: kopf.Memo, namespace: str, name: str, **_: Any) -> None:
    """spec.model changed: a canary at the first step (Canary) or a replacement (Immediate)."""

    runtime = _runtime(memo)

    def transition(state: RolloutState, spec: ModelDeploymentSpec, body: dict[str, Any]) -> Decision:
        return _refused(runtime, state, spec) or decisions.change_model(
            state, _candidate_rollout(state, spec), int(body["metadata"].get("generation", 1)), now()
        )

    _act(runtime, namespace, name, "model_change", transition)


def _candidate_rollout(state: RolloutState, spec: ModelDeploymentSpec) -> ModelDeploymentSpec:
    """A candidate the retraining loop offered rolls out under spec.retraining.rollout; other changes as spec says."""
    r = state.retraining
    loop = spec.retraining
    offered = loop is not None and r is not None and r.phase == LoopPhase.ROLLING_OUT
    if offered and loop is not None and loop.rollout != "None" and r and r.candidate_version == spec.model.version:
        return with_strategy(spec, loop.rollout)
    return spec


def apply_serving_changes(memo: kopf.Memo, namespace: str, name: str, old: Any, new: Any, **_: Any) -> None:
    """Predictor, mode, routing or secrets changed: re-render the children for the models already served."""
    ignored = {"model", "rollout", "retraining"}
    before = {k: v for k, v in dict(old or {}).items() if k not in ignored}
    after = {k: v for k, v in dict(new or {}).items() if k not in ignored}
    if before == after:
        return
    _act(_runtime(memo), namespace, name, "serving_change", lambda state, spec, body: decisions.serving_changed(state))


def track_readiness(
    memo: kopf.Memo, namespace: str, name: str, status: Any, inference_service_readiness: Readiness, **_: Any
) -> None:
    """Follow KServe's Ready condition: finish deployments and promotions, keep the Ready condition true to it."""
    if not deployed(status):  # kopf's cached view: no API read for objects with nothing deployed
        return
    runtime = _runtime(memo)

    def transition(state: RolloutState, spec: ModelDeploymentSpec, body: dict[str, Any]) -> Decision:
        if state.stable is None:
            return decisions.nothing(state, "nothing deployed")
        # Only what the watch has not seen is read from the API: one that is really gone is put back.
        if _indexed(inference_service_readiness, namespace, name) is None and (
            runtime.kube.get_inference_service(namespace, name) is None
        ):
            return decisions.recreate(state, name)
        ready, message = _readiness(_from_index(inference_service_readiness), namespace, name, spec, state)
        if ready and state.phase in (Phase.DEPLOYING, Phase.PROMOTING):
            # The verdict that ends a rollout is read afresh: the watch may not yet have delivered the
            # InferenceService just applied (its new generation, not yet observed by KServe), and KServe's Ready
            # stays True while its Deployment still rolls the old version out of the way (workloads.py).
            ready, message = _readiness(_from_api(runtime), namespace, name, spec, state, _rollouts_from_api(runtime))
        return decisions.observe_readiness(state, ready, message)

    _act(runtime, namespace, name, "readiness", transition, timer=True)


def analyse_canary(
    memo: kopf.Memo, namespace: str, name: str, status: Any, inference_service_readiness: Readiness, **_: Any
) -> None:
    """Each rollout.interval, compare canary and stable prediction logs; advance, promote or roll back."""
    if not in_rollout(status):  # kopf's cached view: skip the API read for objects not in a rollout
        return
    runtime = _runtime(memo)

    def transition(state: RolloutState, spec: ModelDeploymentSpec, body: dict[str, Any]) -> Decision:
        moment = now()
        if not decisions.analysis_due(state, spec, moment):
            return decisions.nothing(state, "analysis not due")
        assert state.canary is not None and state.stable is not None
        ready, why = _readiness(_from_index(inference_service_readiness), namespace, name, spec, state)
        if not ready:
            overdue = policy.canary_overdue(state, runtime.config, moment)
            if overdue is not None:
                return decisions.roll_back(state, moment, f"{overdue}: {why}")
            return decisions.wait_for_readiness(state, why)
        started = time.perf_counter()
        since = decisions.analysis_window_start(state, spec, moment)
        result = measure(runtime.engine, f"{namespace}/{name}", state, spec, since, moment)
        metrics.ANALYSIS_SECONDS.inc(time.perf_counter() - started)
        return decisions.judge(state, spec, result, moment, since)

    # A timer: a permanent failure is recorded as phase Failed and the timer keeps running for a fixed spec.
    _act(runtime, namespace, name, "analysis", transition, timer=True)


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
        try:
            deleted = runtime.kube.delete_children(namespace, name)
            deleted += runtime.kube.delete_jobs(namespace, name)  # a retraining Job mid-loop goes with it
        except ApiException as exc:
            # Retried soon (idempotent: a child already gone is skipped), not after kopf's 60 s default backoff:
            # the finalizer holds the deletion until this succeeds.
            raise kopf.TemporaryError(
                f"Kubernetes API error {exc.status} deleting children; retrying", delay=5
            ) from exc
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
    return (status or {}).get("phase") == Phase.PROGRESSING


def deployed(status: Any, **_: Any) -> bool:
    return bool((status or {}).get("stable"))


def register(registry: kopf.OperatorRegistry, tick_seconds: float) -> None:
    """Attach every handler to `registry` (explicit, so tests can run several operators one after another)."""
    resource = (GROUP, VERSION, PLURAL)
    kopf.index(ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL, labels={LABEL_MANAGED_BY: MANAGER}, registry=registry)(
        as_handler(inference_service_readiness)
    )
    kopf.on.create(*resource, registry=registry)(as_handler(create_inference_service))
    kopf.on.update(*resource, field="spec.model", registry=registry)(as_handler(start_rollout_on_model_change))
    kopf.on.update(*resource, field="spec", registry=registry)(as_handler(apply_serving_changes))
    # No `when=` filters: kopf stops a filtered timer on a transient mismatch and restarts it only after a
    # long cancellation poll; the timers check the cached phase themselves instead.
    kopf.timer(*resource, interval=tick_seconds, registry=registry)(as_handler(track_readiness))
    kopf.timer(*resource, interval=tick_seconds, registry=registry)(as_handler(analyse_canary))
    kopf.on.field(*resource, field=["metadata", "annotations", ANNOTATION_PROMOTE], registry=registry)(
        as_handler(promote_on_request)
    )
    kopf.on.field(*resource, field=["metadata", "annotations", ANNOTATION_ROLLBACK], registry=registry)(
        as_handler(roll_back_on_request)
    )
    kopf.on.field(*resource, field=["metadata", "annotations", ANNOTATION_PAUSED], registry=registry)(
        as_handler(pause_or_resume_on_request)
    )
    kopf.on.delete(*resource, registry=registry)(as_handler(delete_children_and_retire_rows))
