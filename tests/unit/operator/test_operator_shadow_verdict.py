"""Shadow strategy (pure): the agreement verdict, both mirroring paths as rendered, and the state machine."""

from datetime import UTC, datetime, timedelta

import pytest
from scipy import stats as sp

from mlcore.errors import DataValidationError
from mlpipeline_operator import decisions
from mlpipeline_operator.analysis import RoleFigures
from mlpipeline_operator.render import Owner, ServedModel, render
from mlpipeline_operator.shadow import Pairs, evaluate_shadow
from mlpipeline_operator.spec import parse_spec
from mlpipeline_operator.state import RolloutState, from_status, to_status

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MODEL = {"name": "sentiment", "version": "1", "storageUri": "s3://m/sentiment/1"}
OWNER = Owner("ml", "sentiment", "uid")


def spec_for(version, routing=None, **shadow):
    body = {
        "model": {**MODEL, "version": version, "storageUri": f"s3://m/sentiment/{version}"},
        "rollout": {
            "strategy": "Shadow",
            "interval": "1s",
            "maxFailedChecks": 2,
            "analysis": {"minRequests": 100},
            "shadow": {"mirrorPercent": 25, "minAgreement": 0.9, **shadow},
        },
    }
    if routing:
        body["routing"] = routing
    return parse_spec(body)


SHADOW = RoleFigures(requests=500, errors=0, latency_p95_ms=30.0, latency_p95_ci_ms=(28.0, 33.0))


def env_of(isvc):
    return {e["name"]: e["value"] for e in isvc["spec"]["predictor"]["containers"][0]["env"]}


def test_agreement_with_its_wilson_interval():
    spec = spec_for("2")
    result = evaluate_shadow(SHADOW, Pairs(480, 456, 0.04), spec.rollout.analysis, spec.rollout.shadow)
    gate = result.gates[0]
    expected = sp.binomtest(456, 480).proportion_ci(0.95, method="wilson")
    assert (gate.name, gate.verdict, gate.figure) == ("agreement", "pass", pytest.approx(0.95))
    assert gate.ci == pytest.approx((expected.low, expected.high))
    assert result.verdict == "pass" and result.summary.startswith("pass agree 95.0%")
    assert {g.name for g in result.gates} == {"agreement", "shadowErrorRate", "shadowLatencyP95", "confidenceDelta"}
    disagree = evaluate_shadow(SHADOW, Pairs(480, 300, 0.3), spec.rollout.analysis, spec.rollout.shadow)
    assert disagree.verdict == "fail" and "below 90.00%" in disagree.reasons[0]
    few = evaluate_shadow(SHADOW, Pairs(60, 60, 0.0), spec.rollout.analysis, spec.rollout.shadow)
    assert few.verdict == "inconclusive" and "60 of 100 mirrored" in few.reasons[0]
    broken = RoleFigures(requests=500, errors=100, latency_p95_ms=30.0)
    failing = evaluate_shadow(broken, Pairs(400, 400, 0.0), spec.rollout.analysis, spec.rollout.shadow)
    assert failing.verdict == "fail" and any("shadow error rate 20.00%" in r for r in failing.reasons)


def test_mirror_percent_and_gateway_need_routing():
    with pytest.raises(DataValidationError, match="mirrorPercent"):
        spec_for("2", mirrorPercent=150)
    with pytest.raises(DataValidationError, match="mirrorPercent"):
        spec_for("2", mirrorPercent=0)
    with pytest.raises(DataValidationError, match="set routing"):
        spec_for("2", mirrorBy="Gateway")


def test_predictor_mirroring_is_rendered_on_the_stable_predictor():
    desired = render(OWNER, spec_for("2"), ServedModel("1", "s3://1"), ServedModel("2", "s3://2"), 0, None, "Shadow")
    assert sorted(desired.inference_services) == ["sentiment", "sentiment-shadow"]
    stable, shadow = desired.inference_services["sentiment"], desired.inference_services["sentiment-shadow"]
    assert env_of(stable)["PREDICTOR_MIRROR_URL"] == (
        "http://sentiment-shadow-predictor.ml.svc.cluster.local/v1/models/sentiment:predict"
    )
    assert env_of(stable)["PREDICTOR_MIRROR_PERCENT"] == "25"
    assert env_of(shadow)["DEPLOYMENT_ROLE"] == "shadow" and "PREDICTOR_MIRROR_URL" not in env_of(shadow)
    assert shadow["metadata"]["labels"]["mlpipeline.io/role"] == "shadow"
    assert desired.route is None
    # Without a shadow nothing is mirrored.
    alone = render(OWNER, spec_for("2"), ServedModel("1", "s3://1"))
    assert "PREDICTOR_MIRROR_URL" not in env_of(alone.inference_services["sentiment"])


def test_gateway_mirroring_is_a_request_mirror_filter():
    spec = spec_for("2", {"parentRef": {"name": "gw"}}, mirrorBy="Gateway", mirrorPercent=12.5)
    desired = render(OWNER, spec, ServedModel("1", "s3://1"), ServedModel("2", "s3://2"), 0, None, "Shadow")
    rule = desired.route["spec"]["rules"][0]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [("sentiment-predictor", 100)]
    assert rule["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"name": "sentiment-shadow-predictor", "port": 80},
                "fraction": {"numerator": 1250, "denominator": 10000},
            },
        }
    ]
    assert "PREDICTOR_MIRROR_URL" not in env_of(desired.inference_services["sentiment"])


def roundtrip(state):
    back = from_status(to_status(state))
    assert to_status(back) == to_status(state)
    return back


def started(spec):
    stable = decisions.became_ready(decisions.deploy(RolloutState(), spec_for("1"), 1, T0).state).state
    start = decisions.change_model(roundtrip(stable), spec, 2, T0)
    assert start.state.canary.strategy == "Shadow" and start.state.canary.weight == 0
    assert {(r.deployment_type, r.traffic_percent) for r in start.records} == {("shadow", 0), ("stable", 100)}
    return roundtrip(start.state)


def result(spec, agree):
    return evaluate_shadow(SHADOW, Pairs(400, agree, 0.05), spec.rollout.analysis, spec.rollout.shadow)


def test_agreeing_shadow_is_promoted():
    spec = spec_for("2")
    d = decisions.judge(started(spec), spec, result(spec, 390), T0 + timedelta(seconds=1))
    assert d.reason == "Promoted" and d.state.stable.version == "2"
    assert {(r.deployment_type, r.outcome) for r in d.records} >= {("shadow", "promoted"), ("stable", "promoted")}


@pytest.mark.parametrize(
    ("on_failure", "reason", "phase"), [("RollBack", "RolledBack", "RolledBack"), ("Keep", "ShadowKept", "Progressing")]
)
def test_disagreeing_shadow_after_max_failed_checks(on_failure, reason, phase):
    spec = spec_for("2", onFailure=on_failure)
    first = decisions.judge(started(spec), spec, result(spec, 200), T0 + timedelta(seconds=1))
    assert first.reason == "AnalysisFailed"
    second = decisions.judge(roundtrip(first.state), spec, result(spec, 200), T0 + timedelta(seconds=2))
    assert (second.reason, second.state.phase) == (reason, phase)
    if on_failure == "Keep":
        assert second.state.canary.awaiting_promotion and not decisions.analysis_due(
            second.state, spec, T0 + timedelta(hours=1)
        )
        assert decisions.roll_back(second.state, T0, "manual rollback").state.canary is None
