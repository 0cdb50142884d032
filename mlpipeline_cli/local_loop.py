"""The operator's retraining loop on one machine (`mlpipeline demo --loop`).

The same transitions (mlpipeline_operator.loop), Job arguments (jobs.render_job / render_champion_job), records,
alert reads and resolution as the operator on a cluster; what a cluster does is done here by the caller: the Job
is a local process of this Python (the training image's entry point is `python -m training_job`), and the rollout
is a restart of the local predictor on the candidate. One machine has no canary: the training job's
champion/challenger verdict on the test split is the gate, as it is before any rollout on a cluster.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from mlpipeline_operator import loop
from mlpipeline_operator.jobs import render_champion_job, render_job
from mlpipeline_operator.loop import JobSeen, LoopDecision
from mlpipeline_operator.loop_records import open_alerts, resolve_alerts, training_result
from mlpipeline_operator.records import record
from mlpipeline_operator.render import Defaults, Owner
from mlpipeline_operator.spec import ModelDeploymentSpec, parse_spec
from mlpipeline_operator.state import LoopPhase, Phase, Retraining, RolloutState, Stable, from_status, to_status

# A Job's command and extra environment -> its exit code (the demo runs it as a child process).
JobRunner = Callable[[list[str], dict[str, str]], int]

# The ModelDeployment the local loop stands for; its deployment_id is the demo's (local/sentiment).
OWNER = Owner("local", "sentiment", "local-demo")
OWNED = (("ModelDeployment", OWNER.name, OWNER.uid),)
LOCAL_IMAGE = "local"  # render_job names an image; nothing pulls it here


def local_spec(
    model_name: str, version: str, storage_uri: str, job_args: Sequence[str], include_feedback: bool
) -> ModelDeploymentSpec:
    """A ModelDeployment spec with spec.retraining as a user would write it (checked by the same parser)."""
    return parse_spec(
        {
            "model": {"name": model_name, "version": version, "storageUri": storage_uri},
            "retraining": {
                "onAlerts": {"kinds": ["drift", "performance"], "minSeverity": "warning"},
                "job": {"args": list(job_args)},
                "includeFeedback": include_feedback,
                "maxAttempts": 1,  # one machine, one try: a failure is reported, not retried after a cooldown
                "cooldown": "1s",  # the user asks for each loop (`demo --loop`): no hour to wait before the next
            },
        }
    )


def _now() -> datetime:
    return datetime.now(UTC)


def job_command(job: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """What the Job's pod would run: the training image's entry point with the container's args and env."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container.get("env") or []}
    return [sys.executable, "-m", "training_job", *container["args"]], env


@dataclass
class LocalLoop:
    """One ModelDeployment's rollout state and loop, kept in memory; every step is also written where the operator
    writes it (model_deployments rows, monitoring_alerts), and its Events are kept in `events`."""

    engine: Engine
    spec: ModelDeploymentSpec
    state: RolloutState
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    resolved: tuple[int, ...] = ()  # the alert ids the promotion resolved
    champion_exit: int | None = None  # the champion Job's exit code, once it ran

    @classmethod
    def serving(
        cls, engine: Engine, spec: ModelDeploymentSpec, rollout_id: str, retraining: dict[str, Any] | None = None
    ) -> LocalLoop:
        """The deployment serving spec.model; `retraining`: the status.retraining an earlier run left (its loop
        count continues, so the next loop's Job and rows get new names)."""
        stable = Stable(spec.model.version, spec.model.storage_uri, rollout_id)
        r = from_status({"retraining": retraining}).retraining or Retraining()
        if r.phase not in (LoopPhase.IDLE, LoopPhase.GAVE_UP):  # cut short (the demo was interrupted): gone with it
            r = replace(r, phase=LoopPhase.IDLE, outcome="interrupted", message="the previous demo stopped mid-loop")
        return cls(engine, spec, RolloutState(phase=Phase.SUCCEEDED, stable=stable, retraining=r))

    @property
    def retraining(self) -> Retraining:
        return self.state.retraining or Retraining()

    def status(self) -> dict[str, Any]:
        """status.retraining as `kubectl get md -o yaml` would show it."""
        retraining: dict[str, Any] = to_status(self.state).get("retraining", {})
        return retraining

    def start(self) -> LoopDecision:
        """Idle: the deployment's open alerts that spec.retraining.onAlerts matches start loop 1 (or nothing)."""
        assert self.spec.retraining is not None
        now = _now()
        alerts = open_alerts(self.engine, OWNER.deployment_id)
        decision = loop.consider_start(
            self.retraining, self.spec.retraining, OWNER.name, self.state, alerts, now, created_at=now
        )
        return self._commit(decision)

    def train(self, run: JobRunner) -> LoopDecision:
        """Training: run the Job to its end, then follow it as the operator follows the Job's status."""
        r = self.retraining
        if r.phase != LoopPhase.TRAINING or not r.job_name:
            raise RuntimeError(f"no training Job to run: the loop is {r.phase}")
        command, env = job_command(render_job(OWNER, self.spec, r.job_name, r.loop, Defaults(), LOCAL_IMAGE))
        code = run(command, env)
        if code == 0:
            seen = JobSeen(r.job_name, "succeeded", owners=OWNED)
            result = training_result(self.engine, f"{OWNER.namespace}/{r.job_name}")
        else:
            seen, result = JobSeen(r.job_name, "failed", f"exit code {code}", owners=OWNED), None
        return self._commit(loop.follow_job(r, self.spec, seen, result, _now(), OWNER.uid))

    def promoted(self, run: JobRunner, rollout_id: str) -> LoopDecision:
        """RollingOut: the candidate now serves (the caller restarted the predictor on it), as a finished rollout
        leaves the status; the loop ends promoted and the champion Job moves the MLflow alias."""
        r = self.retraining
        if r.phase != LoopPhase.ROLLING_OUT or r.candidate_version is None:
            raise RuntimeError(f"no candidate is rolling out: the loop is {r.phase}")
        stable = Stable(r.candidate_version, r.candidate_storage_uri or "", rollout_id)
        self.state = replace(self.state, phase=Phase.SUCCEEDED, stable=stable)
        decision = loop.follow_rollout(r, self.spec, self.state, _now(), OWNER.name)
        if decision.champion_job and r.job_name:  # the Job first, as the operator creates it before the rows
            champion = render_champion_job(
                OWNER, self.spec, decision.champion_job, r.job_name, r.loop, Defaults(), LOCAL_IMAGE
            )
            self.champion_exit = run(*job_command(champion))
        return self._commit(decision)

    def _commit(self, decision: LoopDecision) -> LoopDecision:
        """The operator's order: alerts -> rows -> status -> spec.model -> Event."""
        r = decision.retraining
        if decision.resolve is not None:
            rollout_id = self.state.stable.rollout_id if self.state.stable else None
            self.resolved = resolve_alerts(self.engine, OWNER.deployment_id, decision.resolve, rollout_id, r)
        if decision.records:
            record(self.engine, OWNER.deployment_id, OWNER.namespace, self.spec.model.name, decision.records)
        self.state = replace(self.state, retraining=r)
        if decision.offer and r.candidate_version and self.spec.model.version != r.candidate_version:
            moved = self.spec.model.model_copy(
                update={"version": r.candidate_version, "storage_uri": r.candidate_storage_uri}
            )
            self.spec = self.spec.model_copy(update={"model": moved})
        if decision.changed:
            self.events.append((decision.event_type, decision.reason, decision.message))
        return decision
