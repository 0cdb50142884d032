"""The rollout state machine and the idempotent model_deployments recording (SQLite, no service)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mlcore.db import ModelDeployment, create_db_engine, session_scope, upgrade_to_head
from mlpipeline_operator import decisions
from mlpipeline_operator.analysis import AnalysisResult, Gate, RoleFigures
from mlpipeline_operator.records import record, retire_all
from mlpipeline_operator.spec import parse_spec
from mlpipeline_operator.state import RolloutState, from_status, to_status

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec_for(version, **rollout):
    return parse_spec(
        {
            "model": {"name": "sentiment", "version": version, "storageUri": f"s3://m/sentiment/{version}"},
            "rollout": {"steps": [20, 100], "interval": "1s", "maxFailedChecks": 2, **rollout},
        }
    )


STATS = RoleFigures(50, 0, 10.0, (9.0, 11.0), 0.9, {"positive": 50})


def verdict(kind):
    return AnalysisResult(kind, (Gate("errorRate", kind, "because"),), {"canary": STATS, "stable": STATS}, kind)


def roundtrip(state):
    """Every transition's state survives the status (what a restarted operator reads back)."""
    back = from_status(to_status(state))
    assert to_status(back) == to_status(state)
    return back


def deployed_v1():
    d = decisions.deploy(RolloutState(), spec_for("1"), 1, T0)
    assert d.state.phase == "Deploying" and d.state.stable.version == "1"
    assert [(r.deployment_type, r.rollout_id, r.traffic_percent) for r in d.records] == [("stable", "g1-v1", 100)]
    ready = decisions.became_ready(roundtrip(d.state))
    assert ready.state.phase == "Succeeded"
    return roundtrip(ready.state)


def test_canary_walks_the_steps_and_is_promoted():
    state = deployed_v1()
    start = decisions.change_model(state, spec_for("2"), 2, T0)
    assert start.reason == "CanaryStarted" and start.state.canary.weight == 20
    assert {(r.deployment_type, r.traffic_percent) for r in start.records} == {("canary", 20), ("stable", 80)}
    state = roundtrip(start.state)
    assert not decisions.analysis_due(state, spec_for("2"), T0)
    assert decisions.analysis_due(state, spec_for("2"), T0 + timedelta(seconds=1))

    step = decisions.judge(state, spec_for("2"), verdict("pass"), T0 + timedelta(seconds=1))
    assert step.reason == "CanaryAdvanced" and step.state.canary.weight == 100
    promoted = decisions.judge(roundtrip(step.state), spec_for("2"), verdict("pass"), T0 + timedelta(seconds=2))
    assert promoted.reason == "Promoted" and promoted.state.phase == "Promoting"
    assert promoted.state.stable.version == "2" and promoted.state.canary is None
    types = {(r.rollout_id, r.deployment_type): (r.is_active, r.outcome) for r in promoted.records}
    assert types == {
        ("g2-v2", "canary"): (False, "promoted"),
        ("g2-v2", "stable"): (True, "promoted"),
        ("g1-v1", "stable"): (False, "superseded"),
    }
    assert decisions.became_ready(roundtrip(promoted.state)).state.phase == "Succeeded"


def test_failed_checks_roll_back_at_the_limit():
    state = roundtrip(decisions.change_model(deployed_v1(), spec_for("2"), 2, T0).state)
    first = decisions.judge(state, spec_for("2"), verdict("fail"), T0 + timedelta(seconds=1))
    assert first.reason == "AnalysisFailed" and first.state.canary.checks_failed == 1
    second = decisions.judge(roundtrip(first.state), spec_for("2"), verdict("fail"), T0 + timedelta(seconds=2))
    assert second.reason == "RolledBack" and second.state.phase == "RolledBack"
    assert second.state.canary is None and second.state.stable.version == "1"
    assert second.state.history[-1]["outcome"] == "rolled_back"


def test_inconclusive_changes_no_counter():
    state = roundtrip(decisions.change_model(deployed_v1(), spec_for("2"), 2, T0).state)
    d = decisions.judge(state, spec_for("2"), verdict("inconclusive"), T0 + timedelta(seconds=1))
    assert d.reason == "AnalysisInconclusive"
    assert (d.state.canary.checks_passed, d.state.canary.checks_failed, d.state.canary.weight) == (0, 0, 20)


def test_manual_controls_and_immediate_strategy():
    state = roundtrip(decisions.change_model(deployed_v1(), spec_for("2"), 2, T0).state)
    paused = decisions.pause(state)
    assert paused.state.phase == "Paused"
    resumed = decisions.resume(roundtrip(paused.state), T0 + timedelta(seconds=5))
    assert resumed.state.phase == "Progressing" and resumed.state.canary.step_started_at == T0 + timedelta(seconds=5)
    assert decisions.promote(state, T0, "manual").state.stable.version == "2"
    immediate = decisions.change_model(deployed_v1(), spec_for("3", strategy="Immediate"), 3, T0)
    assert immediate.reason == "Deploying" and immediate.state.stable.version == "3" and immediate.state.canary is None


def test_back_to_the_stable_model_cancels_the_canary():
    state = roundtrip(decisions.change_model(deployed_v1(), spec_for("2"), 2, T0).state)
    d = decisions.change_model(state, spec_for("1"), 3, T0)
    assert d.reason == "CanaryCancelled" and d.state.phase == "Succeeded" and d.state.canary is None


def test_conditions_keep_their_transition_time():
    state = deployed_v1()
    first = decisions.conditions(state, True, "ok", T0)
    later = decisions.conditions(RolloutState(phase="Succeeded", conditions=first), True, "ok", T0 + timedelta(hours=1))
    assert {c["type"]: c["lastTransitionTime"] for c in later} == {c["type"]: c["lastTransitionTime"] for c in first}


def test_records_are_upserted_never_duplicated(tmp_path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade_to_head(engine)
    state = deployed_v1()
    start = decisions.change_model(state, spec_for("2"), 2, T0)
    for _ in range(3):  # a restarted operator re-running the same transition
        record(
            engine, "ml/sentiment", "ml", "sentiment", decisions.deploy(RolloutState(), spec_for("1"), 1, T0).records
        )
        record(engine, "ml/sentiment", "ml", "sentiment", start.records)
    with session_scope(engine) as session:
        rows = session.execute(select(ModelDeployment).order_by(ModelDeployment.id)).scalars().all()
        assert [(r.rollout_id, r.deployment_type, r.traffic_percent, r.outcome) for r in rows] == [
            ("g1-v1", "stable", 80, "deployed"),  # None outcome keeps the first one
            ("g2-v2", "canary", 20, "progressing"),
        ]
    assert retire_all(engine, "ml/sentiment") == 2
    with session_scope(engine) as session:
        assert all(not r.is_active and r.ended_at for r in session.execute(select(ModelDeployment)).scalars())


def test_decisions_say_whether_they_touch_the_children_and_how_a_rollout_ended():
    """What the handlers act on: flags on the decision, not lists of reason names."""
    state = deployed_v1()
    deploy = decisions.deploy(RolloutState(), spec_for("1"), 1, T0)
    assert deploy.children and deploy.outcome is None
    ready = decisions.became_ready(roundtrip(deploy.state))
    assert ready.children and ready.outcome == "deployed"  # a first deployment is counted when it serves
    start = decisions.change_model(state, spec_for("2"), 2, T0)
    assert start.children and start.outcome is None
    running = roundtrip(start.state)
    for kind in ("inconclusive", "fail"):  # figures only: the children stay as they are
        judged = decisions.judge(running, spec_for("2"), verdict(kind), T0 + timedelta(seconds=1))
        assert judged.changed and not judged.children and judged.outcome is None
    promoted = decisions.promote(running, T0, "manual")
    assert (promoted.children, promoted.outcome) == (True, "promoted")
    after_promotion = decisions.became_ready(roundtrip(promoted.state))
    assert after_promotion.children and after_promotion.outcome is None  # counted once, when promoted
    assert decisions.roll_back(running, T0, "manual").outcome == "rolled_back"
    assert decisions.change_model(running, spec_for("1"), 3, T0).outcome == "cancelled"
    assert not decisions.pause(running).children
    assert not decisions.nothing(state, "x").changed


def test_transitions_the_handlers_used_to_build_themselves():
    state = deployed_v1()
    again = decisions.reconcile_created(state, spec_for("1"), 1, T0)
    assert (again.reason, again.children, again.state) == ("Reconciled", True, state)
    assert decisions.reconcile_created(state, spec_for("2"), 2, T0).reason == "CanaryStarted"
    assert decisions.reconcile_created(RolloutState(), spec_for("1"), 1, T0).reason == "Deploying"
    assert decisions.serving_changed(RolloutState()).changed is False
    assert decisions.serving_changed(state).reason == "ServingUpdated" and decisions.serving_changed(state).children
    refused = decisions.refuse_model(state, spec_for("2"), "MANIFEST.json missing")
    assert refused.state.phase == "Failed" and refused.state.stable.version == "1"
    assert refused.message == "model version 2 refused: MANIFEST.json missing"
    running = roundtrip(decisions.change_model(state, spec_for("2"), 2, T0).state)
    waiting = decisions.wait_for_readiness(running, "canary: not Ready")
    assert waiting.reason == "AnalysisWaiting" and not waiting.children
    assert decisions.wait_for_readiness(waiting.state, "canary: not Ready").changed is False  # said once
    observed = decisions.observe_readiness(state, False, "InferenceService not Ready: x")
    assert (observed.changed, observed.ready, observed.ready_message) == (False, False, "InferenceService not Ready: x")
    recreated = decisions.recreate(state, "web")
    assert recreated.children and recreated.reason == "Recreated" and recreated.event_type == "Warning"


def test_a_failure_is_said_once():
    failed = decisions.fail(deployed_v1(), "invalid ModelDeployment spec: spec.model: missing")
    assert failed.changed and failed.state.phase == "Failed" and not failed.children
    assert decisions.fail(roundtrip(failed.state), failed.message).changed is False
    assert decisions.fail(roundtrip(failed.state), "another problem").changed is True
