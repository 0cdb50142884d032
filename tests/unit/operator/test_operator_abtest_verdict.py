"""A/B strategy (pure): spec rules, the sticky route, the verdict against scipy, and the state machine's ending."""

from datetime import UTC, datetime, timedelta

import pytest
from scipy import stats as sp

from mlcore.errors import DataValidationError
from mlpipeline_operator import decisions
from mlpipeline_operator.abtest import evaluate_ab
from mlpipeline_operator.analysis import RoleFigures
from mlpipeline_operator.render import Owner, ServedModel, render
from mlpipeline_operator.spec import ABTestSpec, parse_spec
from mlpipeline_operator.state import RolloutState, from_status, to_status

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MODEL = {"name": "sentiment", "version": "1", "storageUri": "s3://m/sentiment/1"}
AB = {"stickiness": {"header": "x-user-id"}, "weights": {"stable": 70, "candidate": 30}, "minSamples": 100}


def spec_for(version, **ab):
    return parse_spec(
        {
            "model": {**MODEL, "version": version, "storageUri": f"s3://m/sentiment/{version}"},
            "routing": {"parentRef": {"name": "gw"}},
            "rollout": {"strategy": "ABTest", "interval": "1s", "abTest": {**AB, **ab}},
        }
    )


def arm(labelled, correct):
    return RoleFigures(requests=labelled + 10, errors=0, labelled=labelled, correct=correct)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"stickiness": None}, "needs abTest.stickiness"),
        ({"weights": {"stable": 60, "candidate": 30}}, "must sum to 100"),
        ({"stickiness": {"header": "a", "cookie": "b"}}, "exactly one of header or cookie"),
        ({"maxDuration": "a week"}, "not a duration"),
    ],
)
def test_bad_ab_specs_are_refused(patch, message):
    ab = {k: v for k, v in {**AB, **patch}.items() if v is not None}
    with pytest.raises(DataValidationError, match=message):
        parse_spec(
            {"model": MODEL, "routing": {"parentRef": {"name": "gw"}}, "rollout": {"strategy": "ABTest", "abTest": ab}}
        )


def test_ab_needs_a_route_and_raw_deployment():
    with pytest.raises(DataValidationError, match=r"set routing\.parentRef"):
        parse_spec({"model": MODEL, "rollout": {"strategy": "ABTest", "abTest": AB}})
    with pytest.raises(DataValidationError, match="needs deploymentMode RawDeployment"):
        parse_spec(
            {
                "model": MODEL,
                "deploymentMode": "Serverless",
                "routing": {"parentRef": {"name": "gw"}},
                "rollout": {"strategy": "ABTest", "abTest": AB},
            }
        )


def test_route_is_weighted_and_sticky_per_user():
    owner = Owner("ml", "sentiment", "uid")
    desired = render(owner, spec_for("2"), ServedModel("1", "s3://1"), ServedModel("2", "s3://2"), 30, None, "ABTest")
    rule = desired.route["spec"]["rules"][0]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [
        ("sentiment-predictor", 70),
        ("sentiment-canary-predictor", 30),
    ]
    assert rule["sessionPersistence"] == {"sessionName": "x-user-id", "type": "Header"}
    cookie = spec_for("2", stickiness={"cookie": "ab-arm"})
    rule = render(owner, cookie, ServedModel("1", "s3://1"), ServedModel("2", "s3://2"), 30, None, "ABTest").route
    assert rule["spec"]["rules"][0]["sessionPersistence"] == {"sessionName": "ab-arm", "type": "Cookie"}
    # A canary route is never sticky.
    canary = render(owner, spec_for("2"), ServedModel("1", "s3://1"), ServedModel("2", "s3://2"), 30)
    assert "sessionPersistence" not in canary.route["spec"]["rules"][0]


def test_verdict_matches_scipy_and_waits_for_samples():
    ab = ABTestSpec.model_validate(AB)
    running = evaluate_ab(arm(60, 50), arm(80, 50), ab, 0.05, timedelta(hours=1))
    assert running.verdict == "inconclusive" and not running.final and running.winner is None
    better = evaluate_ab(arm(400, 360), arm(400, 300), ab, 0.05, timedelta(hours=1))
    gate = better.gates[0]
    _, p, _, _ = sp.chi2_contingency([[360, 40], [300, 100]], correction=False)
    assert better.final and better.winner == "canary" and better.verdict == "pass"
    assert gate.p_value == pytest.approx(p, rel=1e-9) and gate.figure == pytest.approx(0.15)
    assert gate.ci[0] > 0 and gate.samples == {"canary": 400, "stable": 400}
    worse = evaluate_ab(arm(400, 300), arm(400, 360), ab, 0.05, timedelta(hours=1))
    assert (worse.verdict, worse.winner) == ("fail", "stable")
    same = evaluate_ab(arm(400, 330), arm(400, 325), ab, 0.05, timedelta(hours=1))
    assert same.final and same.verdict == "inconclusive" and same.winner is None
    assert "no significant difference" in same.gates[0].message
    # maxDuration ends it even short of minSamples; no feedback at all is inconclusive.
    assert evaluate_ab(arm(50, 45), arm(50, 20), ab, 0.05, timedelta(days=8)).winner == "canary"
    nothing = evaluate_ab(arm(0, 0), arm(0, 0), ab, 0.05, timedelta(days=8))
    assert nothing.final and nothing.verdict == "inconclusive"
    assert better.as_status()["final"] is True and better.as_status()["winner"] == "canary"


def roundtrip(state):
    back = from_status(to_status(state))
    assert to_status(back) == to_status(state)
    return back


def started():
    stable = decisions.became_ready(decisions.deploy(RolloutState(), spec_for("1"), 1, T0).state).state
    start = decisions.change_model(roundtrip(stable), spec_for("2"), 2, T0)
    assert start.state.canary.strategy == "ABTest" and start.state.canary.weight == 30
    assert "A/B test of version 2 started at 30%" in start.message
    return roundtrip(start.state)


@pytest.mark.parametrize(
    ("candidate", "stable", "reason", "phase", "outcome"),
    [
        (arm(400, 360), arm(400, 300), "Promoted", "Promoting", "promoted"),
        (arm(400, 300), arm(400, 360), "RolledBack", "RolledBack", "rolled_back"),
        (arm(400, 330), arm(400, 325), "ExperimentInconclusive", "Succeeded", "inconclusive"),
    ],
)
def test_the_end_of_an_ab_test(candidate, stable, reason, phase, outcome):
    state = started()
    spec = spec_for("2")
    assert decisions.analysis_window_start(state, spec, T0 + timedelta(hours=2)) == T0  # the whole experiment
    live = decisions.judge(
        state, spec, evaluate_ab(arm(10, 9), arm(10, 5), spec.rollout.ab_test, 0.05, timedelta(0)), T0
    )
    assert live.reason == "ExperimentRunning" and live.state.phase == "Progressing"
    result = evaluate_ab(candidate, stable, spec.rollout.ab_test, 0.05, timedelta(hours=1))
    end = decisions.judge(roundtrip(live.state), spec, result, T0 + timedelta(hours=1))
    assert (end.reason, end.state.phase) == (reason, phase)
    assert end.state.stable.version == ("2" if outcome == "promoted" else "1")
    assert end.state.analysis["final"] is True and end.state.history[-1]["outcome"] == outcome
    canary_row = next(r for r in end.records if r.deployment_type == "canary")
    assert canary_row.outcome == outcome and canary_row.metrics["gates"][0]["name"] == "accuracyDifference"
