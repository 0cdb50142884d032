"""The retraining loop on one machine (mlpipeline_cli.local_loop) on an embedded SQLite database: the operator's
transitions, the Jobs' commands, records and alert resolution, with a Job runner that plays the training job."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from mlcore.db import ModelDeployment, MonitoringAlert, create_db_engine, session_scope, upgrade_to_head
from mlpipeline_cli import local_loop
from mlpipeline_cli.local_loop import OWNER, LocalLoop, local_spec
from mlpipeline_operator.state import LoopPhase
from tests.fixtures.retraining import publish_retraining_run

pytestmark = pytest.mark.unit

DID = OWNER.deployment_id
JOB = "sentiment-retrain-1-1"


@pytest.fixture
def engine(tmp_path) -> Engine:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def raise_alert(engine: Engine, kind: str = "drift", severity: str = "warning", version: str = "1") -> int:
    with session_scope(engine) as session:
        alert = MonitoringAlert(
            deployment_id=DID, model_version=version, alert_type=kind, severity=severity, message=f"{kind} seen"
        )
        session.add(alert)
        session.flush()
        return int(alert.id)


def open_ids(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        found = session.scalars(
            select(MonitoringAlert.id).where(MonitoringAlert.resolved.is_(False)).order_by(MonitoringAlert.id)
        )
        return list(found)


def rows(engine: Engine) -> set[tuple[str, str, str, str | None]]:
    with session_scope(engine) as session:
        found = session.execute(
            select(
                ModelDeployment.rollout_id,
                ModelDeployment.deployment_type,
                ModelDeployment.model_version,
                ModelDeployment.outcome,
            ).where(ModelDeployment.deployment_id == DID)
        ).all()
    return {tuple(row) for row in found}


class PlayedJobs:
    """Runs nothing: records each command and, for a training Job, what the training job would publish."""

    def __init__(self, engine: Engine, offered: bool = True, exit_code: int = 0) -> None:
        self.engine, self.offered, self.exit_code = engine, offered, exit_code
        self.commands: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, command: list[str], env: dict[str, str]) -> int:
        self.commands.append((command, env))
        if "--retraining-job" in command and self.exit_code == 0:
            job = command[command.index("--retraining-job") + 1]
            publish_retraining_run(self.engine, job, "2", self.offered, 0.91, storage_uri="file:///models/sentiment/2")
        return 0 if "--promote-champion" in command else self.exit_code


def serving(engine: Engine, args: tuple[str, ...] = ("--quick", "--output", "file:///models")) -> LocalLoop:
    spec = local_spec("sentiment", "1", "file:///models/sentiment/1", args, include_feedback=True)
    return LocalLoop.serving(engine, spec, "local-1")


def test_an_alert_starts_a_job_whose_candidate_serves_and_is_promoted(engine):
    trigger = raise_alert(engine)
    volume = raise_alert(engine, kind="volume")  # a kind the loop does not handle: stays open
    local = serving(engine)
    jobs = PlayedJobs(engine)

    local.start()
    assert (local.retraining.phase, local.retraining.job_name) == (LoopPhase.TRAINING, JOB)
    assert local.retraining.alert_ids == (trigger,)

    local.train(jobs)
    ((command, env),) = jobs.commands
    # The Job's pod command, as render_job writes it: the spec's args, then the loop's own flags.
    assert command == [
        sys.executable, "-m", "training_job", "--quick", "--output", "file:///models", "--model-name", "sentiment",
        "--retraining-job", f"local/{JOB}", "--include-feedback", "--feedback-deployment", DID,
    ]  # fmt: skip
    assert env == {}
    assert local.retraining.phase == LoopPhase.ROLLING_OUT and local.retraining.candidate_version == "2"
    assert (local.spec.model.version, local.spec.model.storage_uri) == ("2", "file:///models/sentiment/2")

    local.promoted(jobs, "local-2")
    assert jobs.commands[1][0][3:] == ["--promote-champion", f"local/{JOB}"]
    assert local.champion_exit == 0
    assert (local.retraining.phase, local.retraining.outcome) == (LoopPhase.IDLE, "promoted")
    assert local.resolved == (trigger,) and open_ids(engine) == [volume]
    with session_scope(engine) as session:
        resolved = session.get(MonitoringAlert, trigger)
        assert resolved is not None
        assert resolved.details["resolvedBy"] == {
            "deployment": DID, "rolloutId": "local-2", "version": "2", "job": JOB, "loop": 1, "as": "trigger",
        }  # fmt: skip
    assert {("retrain-1-a1", "retraining", "1", "trained"), ("retrain-1-candidate", "retraining", "2", "promoted")} <= (
        rows(engine)
    )
    assert [reason for _, reason, _ in local.events] == ["RetrainingStarted", "CandidateOffered", "RetrainingPromoted"]
    status = local.status()
    assert (status["phase"], status["outcome"], status["candidateVersion"]) == ("Idle", "promoted", "2")
    assert status["triggerAlertIds"] == [trigger] and status["jobName"] == JOB


def test_a_worse_challenger_is_recorded_not_served_and_its_alerts_stay_open(engine):
    trigger = raise_alert(engine, kind="performance", severity="critical")
    local = serving(engine)
    local.start()
    local.train(PlayedJobs(engine, offered=False))
    assert (local.retraining.phase, local.retraining.outcome) == (LoopPhase.IDLE, "not_offered")
    assert local.spec.model.version == "1" and open_ids(engine) == [trigger]
    assert ("retrain-1-candidate", "retraining", "2", "not_offered") in rows(engine)
    with pytest.raises(RuntimeError, match="no candidate is rolling out"):
        local.promoted(PlayedJobs(engine), "local-2")


def test_a_failed_job_gives_up_after_its_one_attempt(engine):
    raise_alert(engine)
    local = serving(engine)
    local.start()
    local.train(PlayedJobs(engine, exit_code=3))
    assert (local.retraining.phase, local.retraining.outcome) == (LoopPhase.GAVE_UP, "gave_up")
    assert "exit code 3" in local.retraining.message
    assert ("retrain-1-a1", "retraining", "1", "failed") in rows(engine)
    assert local.events[-1][:2] == ("Warning", "RetrainingGaveUp")


def test_no_matching_alert_starts_nothing(engine):
    raise_alert(engine, severity="info")  # below onAlerts.minSeverity (warning)
    raise_alert(engine, kind="volume", severity="critical")  # not in onAlerts.kinds
    local = serving(engine)
    decision = local.start()
    assert not decision.changed and local.retraining.phase == LoopPhase.IDLE and local.events == []
    with pytest.raises(RuntimeError, match="no training Job to run"):
        local.train(PlayedJobs(engine))


def test_the_next_demo_continues_the_loop_count_from_the_saved_status(engine, monkeypatch):
    raise_alert(engine)
    first = serving(engine)
    first.start()
    first.train(PlayedJobs(engine, offered=False))
    saved = first.status()
    later = datetime.now(UTC) + timedelta(seconds=5)  # the next `demo --loop`: past the 1s cooldown
    monkeypatch.setattr(local_loop, "_now", lambda: later)

    again = LocalLoop.serving(engine, first.spec, "local-1", saved)
    again.start()  # the alert is still open (not offered): a new loop, under new names
    assert (again.retraining.loop, again.retraining.job_name) == (2, "sentiment-retrain-2-1")

    cut_short = LocalLoop.serving(engine, first.spec, "local-1", again.status())  # the demo stopped mid-loop
    assert (cut_short.retraining.phase, cut_short.retraining.outcome) == (LoopPhase.IDLE, "interrupted")
    cut_short.start()
    assert cut_short.retraining.job_name == "sentiment-retrain-3-1"
