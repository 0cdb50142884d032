"""The retraining loop's state machine (mlpipeline_operator.loop) and its Job, pure: no service."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mlcore.errors import DataValidationError
from mlpipeline_operator import decisions, loop
from mlpipeline_operator.jobs import job_seen, render_champion_job, render_job
from mlpipeline_operator.loop import Alert, JobSeen, TrainingResult
from mlpipeline_operator.render import Defaults, Owner
from mlpipeline_operator.spec import parse_spec
from mlpipeline_operator.state import Phase, Retraining, RolloutState, Stable, from_status, to_status

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = Owner("ml", "web", "uid-1")


def spec_for(version: str = "1", _rollout=None, _mode="RawDeployment", _routing=False, **retraining: object):
    return parse_spec(
        {
            "model": {"name": "sentiment", "version": version, "storageUri": f"s3://m/sentiment/{version}"},
            "rollout": _rollout or {},
            "deploymentMode": _mode,
            "routing": {"parentRef": {"name": "gw"}} if _routing else {},
            "retraining": {"cooldown": "10m", "maxAttempts": 2, "job": {"args": ["--quick"]}, **retraining},
        }
    )


OURS = (("ModelDeployment", "web", "uid-1"),)


def seen(name: str, result: str, reason: str = "", owners=OURS) -> JobSeen:
    """The Job as the watch sees it, owned by the ModelDeployment `web` (uid-1) unless told otherwise."""
    return JobSeen(name, result, reason, owners)


def follow(r, spec, job, result=None, at=T0):
    return loop.follow_job(r, spec, job, result, at, OWNER.uid)


SERVING = RolloutState(phase=Phase.SUCCEEDED, stable=Stable("1", "s3://m/sentiment/1", "g1-v1"))
DRIFT = Alert(7, "drift", "warning")


def roundtrip(r: Retraining) -> Retraining:
    back = from_status(to_status(replace(SERVING, retraining=r))).retraining
    assert back == r
    return back


def started(spec=None) -> Retraining:
    spec = spec or spec_for()
    d = loop.consider_start(Retraining(), spec.retraining, "web", SERVING, [DRIFT], T0, T0)
    assert d.reason == "RetrainingStarted" and d.create_job
    return roundtrip(d.retraining)


def test_a_matching_alert_starts_one_loop_with_a_deterministic_job():
    r = started()
    assert (r.phase, r.loop, r.attempt, r.alert_ids, r.job_name) == ("Training", 1, 1, (7,), "web-retrain-1-1")
    assert loop.job_name("x" * 80, 12, 3).endswith("-retrain-12-3") and len(loop.job_name("x" * 80, 12, 3)) == 63
    # Alerts arriving while the loop runs start nothing.
    again = loop.consider_start(
        r, spec_for().retraining, "web", SERVING, [DRIFT, Alert(8, "drift", "critical")], T0, T0
    )
    assert not again.changed and not again.create_job


def test_triggers_filter_kinds_and_severity_and_wait_for_a_quiet_rollout():
    retraining = spec_for(onAlerts={"kinds": ["performance"], "minSeverity": "critical"}).retraining
    quiet = [Alert(1, "drift", "critical"), Alert(2, "performance", "warning")]
    assert not loop.consider_start(Retraining(), retraining, "web", SERVING, quiet, T0, T0).changed
    loud = [Alert(3, "performance", "critical")]
    assert loop.consider_start(Retraining(), retraining, "web", SERVING, loud, T0, T0).retraining.alert_ids == (3,)
    busy = replace(SERVING, phase=Phase.PROGRESSING)
    assert not loop.consider_start(Retraining(), retraining, "web", busy, loud, T0, T0).changed
    cooling = Retraining(cooldown_until=T0 + timedelta(minutes=1))
    assert not loop.consider_start(cooling, retraining, "web", SERVING, loud, T0, T0).changed


def test_the_schedule_starts_a_loop_without_alerts():
    retraining = spec_for(schedule="24h").retraining
    assert not loop.consider_start(Retraining(), retraining, "web", SERVING, [], T0 + timedelta(hours=23), T0).changed
    d = loop.consider_start(Retraining(), retraining, "web", SERVING, [], T0 + timedelta(hours=24), T0)
    assert d.retraining.trigger == "schedule" and d.retraining.alert_ids == ()


def test_job_failure_is_retried_after_the_cooldown_then_given_up():
    spec = spec_for()
    r = started(spec)
    failed = follow(r, spec, seen(r.job_name, "failed", "BackoffLimitExceeded"), None)
    assert failed.reason == "RetrainingFailed" and failed.retraining.phase == "Waiting"
    assert failed.retraining.cooldown_until == T0 + timedelta(minutes=10)
    assert [(x.rollout_id, x.outcome, x.is_active) for x in failed.records] == [("retrain-1-a1", "failed", False)]
    waiting = roundtrip(failed.retraining)
    assert not loop.retry_due(waiting, spec.retraining, "web", "1", T0 + timedelta(minutes=9)).changed
    retry = loop.retry_due(waiting, spec.retraining, "web", "1", T0 + timedelta(minutes=10))
    assert retry.create_job and retry.delete_job == "web-retrain-1-1"
    assert (retry.retraining.attempt, retry.retraining.job_name) == (2, "web-retrain-1-2")
    timed_out = follow(retry.retraining, spec, seen("web-retrain-1-2", "failed", "DeadlineExceeded"), None)
    assert timed_out.reason == "RetrainingGaveUp" and timed_out.retraining.phase == "GaveUp"
    assert "timed out" in timed_out.message and timed_out.records[0].outcome == "timed out"
    state = replace(SERVING, retraining=timed_out.retraining)
    condition = next(c for c in decisions.conditions(state, None, "", T0) if c["type"] == "RetrainingFailed")
    assert (condition["status"], condition["reason"]) == ("True", "MaxAttemptsReached")
    # Given up: the same alerts do not start a loop again, a new one does (after the cooldown).
    later = T0 + timedelta(hours=1)
    assert not loop.consider_start(timed_out.retraining, spec.retraining, "web", SERVING, [DRIFT], later, T0).changed
    fresh = loop.consider_start(
        timed_out.retraining, spec.retraining, "web", SERVING, [Alert(9, "drift", "warning")], later, T0
    )
    assert (fresh.retraining.loop, fresh.retraining.alert_ids) == (2, (9,))


def test_a_worse_challenger_is_recorded_not_offered():
    spec = spec_for()
    r = started(spec)
    worse = TrainingResult("2", "s3://m/sentiment/2", False, "challenger 0.80 <= champion v1 0.88", 0.8)
    d = follow(r, spec, seen(r.job_name, "succeeded"), worse)
    assert d.reason == "CandidateNotOffered" and not d.offer and d.resolve is None
    assert (d.retraining.phase, d.retraining.outcome, d.retraining.candidate_version) == ("Idle", "not_offered", "2")
    assert {(x.rollout_id, x.version, x.outcome) for x in d.records} == {
        ("retrain-1-a1", "1", "trained"),
        ("retrain-1-candidate", "2", "not_offered"),
    }


def test_an_offered_candidate_rolls_out_and_promotion_resolves_the_alerts():
    spec = spec_for()
    r = started(spec)
    assert not follow(r, spec, seen(r.job_name, "running"), None).changed
    assert follow(r, spec, None).create_job  # missing (deleted by hand): made again
    better = TrainingResult("2", "s3://m/sentiment/2", True, "challenger 0.91 > champion v1 0.88", 0.91)
    offered = follow(r, spec, seen(r.job_name, "succeeded"), better)
    assert offered.reason == "CandidateOffered" and offered.offer
    rolling = roundtrip(offered.retraining)
    assert (rolling.phase, rolling.candidate_version) == ("RollingOut", "2")
    # A crash between the status and the spec patch: the spec is moved again.
    assert loop.follow_rollout(rolling, spec, SERVING, T0, "web").offer
    moved = spec_for("2")
    progressing = replace(SERVING, phase=Phase.PROGRESSING)
    assert not loop.follow_rollout(rolling, moved, progressing, T0, "web").changed
    promoted = replace(SERVING, stable=Stable("2", "s3://m/sentiment/2", "g2-v2"))
    done = loop.follow_rollout(rolling, moved, promoted, T0, "web")
    assert done.reason == "RetrainingPromoted" and done.champion_job == "web-retrain-1-champion"
    assert "Job web-retrain-1-champion makes it the MLflow champion" in done.message
    # The trigger alerts, and the open alerts of the kinds the loop handles that do not name the promoted version.
    assert done.resolve == loop.Resolution((7,), ("drift", "performance"), "2", T0)
    assert (done.retraining.phase, done.retraining.outcome) == ("Idle", "promoted")
    assert [(x.rollout_id, x.outcome) for x in done.records] == [("retrain-1-candidate", "promoted")]
    assert done.records[0].metrics["championJob"] == "web-retrain-1-champion"


def test_a_job_of_that_name_this_deployment_does_not_own_is_never_adopted():
    spec = spec_for()
    r = started(spec)
    stranger = (("ModelDeployment", "web", "uid-of-an-older-web"),)
    for job in (seen(r.job_name, "succeeded", owners=stranger), seen(r.job_name, "running", owners=())):
        d = follow(r, spec, job, TrainingResult("9", "s3://m/sentiment/9", True, "better", 0.99))
        assert d.reason == "RetrainingFailed" and not d.offer and d.retraining.phase == "Waiting"
        assert "already exists and is not this ModelDeployment's" in d.message and "not adopted" in d.message
        assert d.retraining.job_name is None  # forgotten: the retry must not delete someone else's Job
        assert [(x.rollout_id, x.outcome) for x in d.records] == [("retrain-1-a1", "failed")]
        assert "not this ModelDeployment's" in d.records[0].metrics["reason"]
    assert "uid-of-an-older-web" in d.message or "no owner" in d.message
    retry = loop.retry_due(roundtrip(d.retraining), spec.retraining, "web", "1", T0 + timedelta(minutes=10))
    assert retry.create_job and retry.delete_job is None and retry.retraining.job_name == "web-retrain-1-2"
    last = follow(retry.retraining, spec, seen("web-retrain-1-2", "running", owners=()))
    assert last.reason == "RetrainingGaveUp" and last.retraining.job_name is None


def test_a_rolled_back_candidate_leaves_the_alerts_open():
    spec = spec_for("2")
    rolling = Retraining("RollingOut", 1, 1, "alerts", (7,), "web-retrain-1-1", "2", "s3://m/sentiment/2")
    back = replace(SERVING, phase=Phase.ROLLED_BACK).with_history("g2-v2", "2", "rolled_back", T0, "3 failed checks")
    d = loop.follow_rollout(rolling, spec, back, T0, "web")
    assert d.reason == "RetrainingRolledBack" and d.resolve is None and d.champion_job is None
    assert (d.retraining.outcome, d.retraining.cooldown_until) == ("rolled_back", T0 + timedelta(minutes=10))


def test_rollout_none_publishes_only_and_candidate_strategies_need_their_settings():
    spec = spec_for(rollout="None")
    better = TrainingResult("2", "s3://m/sentiment/2", True, "better", 0.9)
    d = follow(started(spec), spec, seen("web-retrain-1-1", "succeeded"), better)
    assert d.reason == "CandidatePublished" and not d.offer and d.champion_job is None
    with pytest.raises(DataValidationError, match=r"retraining\.rollout ABTest needs rollout\.abTest\.stickiness"):
        spec_for(rollout="ABTest")
    with pytest.raises(DataValidationError, match=r"retraining\.rollout ABTest splits .* set routing\.parentRef"):
        spec_for(rollout="ABTest", _rollout={"abTest": {"stickiness": {"header": "x-user"}}})
    with pytest.raises(DataValidationError, match=r"retraining\.rollout Shadow with shadow\.mirrorBy Gateway needs"):
        spec_for(rollout="Shadow", _rollout={"shadow": {"mirrorBy": "Gateway"}})
    with pytest.raises(DataValidationError, match=r"retraining\.rollout Shadow needs deploymentMode RawDeployment"):
        spec_for(rollout="Shadow", _mode="Serverless")
    assert spec_for(rollout="Shadow", _rollout={"shadow": {"mirrorBy": "Gateway"}}, _routing=True).retraining


def test_the_job_is_owned_labelled_and_tagged_for_the_operator():
    spec = spec_for(includeFeedback=True)
    job = render_job(OWNER, spec, "web-retrain-1-1", 1, Defaults(database_secret="db"), "registry/train:1")
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["metadata"]["labels"]["mlpipeline.io/role"] == "retraining"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 7200
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry/train:1" and container["envFrom"] == [{"secretRef": {"name": "db"}}]
    assert container["args"] == [
        "--quick",
        "--model-name",
        "sentiment",
        "--retraining-job",
        "ml/web-retrain-1-1",
        "--include-feedback",
        "--feedback-deployment",
        "ml/web",
    ]
    champion = render_champion_job(OWNER, spec, "web-retrain-1-champion", "web-retrain-1-1", 1, Defaults(), "t:1")
    (moves,) = champion["spec"]["template"]["spec"]["containers"]
    assert moves["args"] == ["--promote-champion", "ml/web-retrain-1-1"] and moves["image"] == "t:1"
    assert champion["metadata"]["ownerReferences"] == job["metadata"]["ownerReferences"]
    assert champion["metadata"]["labels"] == job["metadata"]["labels"] and champion["spec"]["backoffLimit"] == 3
    assert loop.champion_job_name("x" * 80, 3).endswith("-retrain-3-champion")
    assert len(loop.champion_job_name("x" * 80, 3)) == 63
    complete = {"metadata": {"name": "j"}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert job_seen(job).owners == OURS and job_seen(job).owned_by("uid-1") and not job_seen(complete).owners
    failed = {
        "metadata": {"name": "j"},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]},
    }
    assert job_seen(complete).result == "succeeded"
    assert (job_seen(failed).result, job_seen(failed).reason) == ("failed", "DeadlineExceeded")
    assert job_seen({"metadata": {"name": "j"}, "status": {"active": 1}}).result == "running"
