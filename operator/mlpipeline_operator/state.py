"""The rollout state kept in a ModelDeployment's status, so that a restarted operator continues where it stopped."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    """status.phase: where the deployment stands (the values the CRD's printer column documents)."""

    PENDING = "Pending"
    DEPLOYING = "Deploying"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


HISTORY_LIMIT = 10


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Stable:
    version: str
    storage_uri: str
    rollout_id: str


@dataclass(frozen=True)
class Canary:
    version: str
    storage_uri: str
    rollout_id: str
    weight: int
    step_index: int
    started_at: datetime
    step_started_at: datetime
    checks_passed: int = 0
    checks_failed: int = 0
    last_analysis_at: datetime | None = None
    awaiting_promotion: bool = False
    strategy: str = "Canary"  # the rollout strategy this candidate runs under (Canary, ABTest, Shadow)


class LoopPhase(StrEnum):
    """status.retraining.phase: where the closed loop (alert -> Job -> candidate -> rollout) stands."""

    IDLE = "Idle"
    TRAINING = "Training"
    WAITING = "Waiting"  # a failed attempt, the next one after the cooldown
    ROLLING_OUT = "RollingOut"
    GAVE_UP = "GaveUp"


@dataclass(frozen=True)
class Retraining:
    phase: LoopPhase = LoopPhase.IDLE
    loop: int = 0
    attempt: int = 0
    trigger: str = ""
    alert_ids: tuple[int, ...] = ()
    job_name: str | None = None
    candidate_version: str | None = None
    candidate_storage_uri: str | None = None
    outcome: str | None = None
    message: str = ""
    started_at: datetime | None = None
    cooldown_until: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "phase", LoopPhase(self.phase))


def _retraining_from(raw: dict[str, Any] | None) -> Retraining | None:
    if not raw:
        return None
    return Retraining(
        phase=LoopPhase(raw.get("phase") or LoopPhase.IDLE),
        loop=int(raw.get("loop", 0)),
        attempt=int(raw.get("attempt", 0)),
        trigger=raw.get("trigger") or "",
        alert_ids=tuple(int(i) for i in raw.get("triggerAlertIds") or ()),
        job_name=raw.get("jobName"),
        candidate_version=raw.get("candidateVersion"),
        candidate_storage_uri=raw.get("candidateStorageUri"),
        outcome=raw.get("outcome"),
        message=raw.get("message") or "",
        started_at=parse_time(raw.get("startedAt")),
        cooldown_until=parse_time(raw.get("cooldownUntil")),
    )


def _retraining_status(r: Retraining) -> dict[str, Any]:
    return {
        "phase": r.phase.value,
        "loop": r.loop,
        "attempt": r.attempt,
        "trigger": r.trigger or None,
        "triggerAlertIds": list(r.alert_ids),
        "jobName": r.job_name,
        "candidateVersion": r.candidate_version,
        "candidateStorageUri": r.candidate_storage_uri,
        "outcome": r.outcome,
        "message": r.message,
        "startedAt": iso(r.started_at) if r.started_at else None,
        "cooldownUntil": iso(r.cooldown_until) if r.cooldown_until else None,
    }


@dataclass(frozen=True)
class RolloutState:
    phase: Phase = Phase.PENDING
    message: str = ""
    stable: Stable | None = None
    canary: Canary | None = None
    rollout_id: str | None = None
    history: tuple[dict[str, Any], ...] = ()
    conditions: tuple[dict[str, Any], ...] = ()
    observed_generation: int | None = None
    inference_service: str | None = None
    # The last analysis of the current (or last) experiment: kept after it ends, so its verdict stays readable.
    analysis: dict[str, Any] | None = None
    # The retraining loop (spec.retraining), kept beside the rollout so that every status write carries it.
    retraining: Retraining | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "phase", Phase(self.phase))  # a phase given by its name is the same phase

    def with_history(self, rollout_id: str, version: str, outcome: str, at: datetime, message: str) -> RolloutState:
        entry = {"rolloutId": rollout_id, "version": version, "outcome": outcome, "at": iso(at), "message": message}
        return replace(self, history=(*self.history, entry)[-HISTORY_LIMIT:])


def from_status(status: dict[str, Any] | None) -> RolloutState:
    status = dict(status or {})
    stable = status.get("stable") or None
    canary = status.get("canary") or None
    return RolloutState(
        phase=Phase(status.get("phase") or Phase.PENDING),
        message=status.get("message") or "",
        stable=Stable(stable["version"], stable.get("storageUri", ""), stable.get("rolloutId", "")) if stable else None,
        canary=_canary_from(canary) if canary and canary.get("version") else None,
        rollout_id=status.get("rolloutId"),
        history=tuple(status.get("history") or ()),
        conditions=tuple(status.get("conditions") or ()),
        observed_generation=status.get("observedGeneration"),
        inference_service=status.get("inferenceService"),
        # Before status.analysis existed the figures lived in status.canary.lastAnalysis.
        analysis=status.get("analysis") or (canary or {}).get("lastAnalysis") or None,
        retraining=_retraining_from(status.get("retraining")),
    )


def _canary_from(raw: dict[str, Any]) -> Canary:
    now = datetime.now(UTC)
    return Canary(
        version=raw["version"],
        storage_uri=raw.get("storageUri", ""),
        rollout_id=raw.get("rolloutId", ""),
        weight=int(raw.get("weight", 0)),
        step_index=int(raw.get("stepIndex", 0)),
        started_at=parse_time(raw.get("startedAt")) or now,
        step_started_at=parse_time(raw.get("stepStartedAt")) or now,
        checks_passed=int(raw.get("checksPassed", 0)),
        checks_failed=int(raw.get("checksFailed", 0)),
        last_analysis_at=parse_time(raw.get("lastAnalysisAt")),
        awaiting_promotion=bool(raw.get("awaitingPromotion", False)),
        strategy=raw.get("strategy") or "Canary",
    )


def to_status(state: RolloutState) -> dict[str, Any]:
    """The full status, written as a whole (None values are left out: the schema has no nullable fields)."""
    compacted: dict[str, Any] = _compact(_status(state))
    return compacted


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def _status(state: RolloutState) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": state.phase.value,
        "message": state.message,
        "rolloutId": state.rollout_id,
        "history": list(state.history),
        "conditions": list(state.conditions),
        "stable": None,
        "canary": None,
    }
    if state.observed_generation is not None:
        status["observedGeneration"] = state.observed_generation
    if state.inference_service:
        status["inferenceService"] = state.inference_service
    if state.analysis:
        status["analysis"] = state.analysis
    if state.retraining:
        status["retraining"] = _retraining_status(state.retraining)
    if state.stable:
        status["stable"] = {
            "version": state.stable.version,
            "storageUri": state.stable.storage_uri,
            "rolloutId": state.stable.rollout_id,
        }
    if state.canary:
        c = state.canary
        canary: dict[str, Any] = {
            "version": c.version,
            "storageUri": c.storage_uri,
            "rolloutId": c.rollout_id,
            "weight": c.weight,
            "stepIndex": c.step_index,
            "checksPassed": c.checks_passed,
            "checksFailed": c.checks_failed,
            "startedAt": iso(c.started_at),
            "stepStartedAt": iso(c.step_started_at),
            "awaitingPromotion": c.awaiting_promotion,
            "strategy": c.strategy,
        }
        canary["lastAnalysisAt"] = iso(c.last_analysis_at) if c.last_analysis_at else None
        status["canary"] = canary
    return status
