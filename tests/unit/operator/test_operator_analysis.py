"""Canary gates (pure): absolute thresholds and the relative tests against the stable model."""

import math

import pytest
from scipy import stats as sp

from mlpipeline_operator.analysis import RoleFigures, evaluate, jensen_shannon
from mlpipeline_operator.logs import quantile_fractions
from mlpipeline_operator.spec import AnalysisSpec

pytestmark = pytest.mark.unit


def figures(n, *, errors=0, p95=25.0, positive=None, confidence=0.9):
    ok = n - errors
    positive = ok // 2 if positive is None else positive
    return RoleFigures(
        requests=n,
        errors=errors,
        latency_p95_ms=p95 if ok else None,
        latency_p95_ci_ms=(p95 * 0.95, p95 * 1.05) if ok else None,
        mean_confidence=confidence if ok else None,
        label_counts={k: v for k, v in {"positive": positive, "negative": ok - positive}.items() if v},
    )


RULES = AnalysisSpec(minRequests=20, maxErrorRate=0.1, maxLatencyP95Ms=100, maxLabelShift=0.1, minMeanConfidence=0.6)


def gates(result):
    return {g.name: g for g in result.gates}


def test_jensen_shannon_bounds():
    assert jensen_shannon({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0
    assert jensen_shannon({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
    value = jensen_shannon({"a": 0.9, "b": 0.1}, {"a": 0.5, "b": 0.5})
    expected = 0.5 * (0.9 * math.log2(0.9 / 0.7) + 0.1 * math.log2(0.1 / 0.3)) + 0.5 * (
        0.5 * math.log2(0.5 / 0.7) + 0.5 * math.log2(0.5 / 0.3)
    )
    assert value == pytest.approx(expected) and 0 < value < 1


def test_healthy_canary_passes_every_gate_with_its_figures():
    result = evaluate(figures(400, errors=2), figures(2000, errors=12), RULES)
    assert result.verdict == "pass" and result.reasons == ()
    by_name = gates(result)
    assert set(by_name) == {
        "errorRate",
        "latencyP95",
        "labelShift",
        "meanConfidence",
        "errorRateVsStable",
        "latencyRatio",
        "labelDistribution",
    }
    error = by_name["errorRateVsStable"]
    assert error.samples == {"canary": 400, "stable": 2000}
    assert error.figure == pytest.approx(2 / 400 - 12 / 2000)
    # scipy: the one-sided pooled z-test is half the two-sided chi-square p when the canary is worse, else 1 - half.
    _, p_two, _, _ = sp.chi2_contingency([[2, 398], [12, 1988]], correction=False)
    assert error.p_value == pytest.approx(1 - p_two / 2, rel=1e-9)
    assert error.ci[0] < error.figure < error.ci[1]
    status = result.as_status()
    assert status["verdict"] == "pass" and status["arms"]["canary"]["requests"] == 400
    assert {"name", "verdict", "figure", "threshold", "pValue", "ciLow", "ciHigh", "samples"} <= set(status["gates"][4])
    assert status["summary"].startswith("pass err")


def test_too_few_requests_is_inconclusive_never_pass():
    result = evaluate(figures(5), figures(100), RULES)
    assert result.verdict == "inconclusive" and "5 of 20" in result.reasons[0]
    # Enough canary requests but a stable arm too small to compare with: the relative gates cannot decide.
    result = evaluate(figures(40), figures(10), RULES)
    assert result.verdict == "inconclusive"
    assert gates(result)["errorRateVsStable"].verdict == "inconclusive"
    assert "too few samples" in gates(result)["latencyRatio"].message


def test_more_errors_than_stable_fails_the_relative_gate_only_when_significant():
    rules = AnalysisSpec(minRequests=20, maxErrorRate=0.5)  # the absolute gate lets both through
    worse = evaluate(figures(400, errors=40), figures(2000, errors=40), rules)
    assert worse.verdict == "fail" and gates(worse)["errorRate"].verdict == "pass"
    gate = gates(worse)["errorRateVsStable"]
    assert gate.verdict == "fail" and gate.p_value < 0.05 and gate.ci[0] > 0
    assert "significantly higher" in gate.message
    # 2 vs 1.5 errors per 100 on 200 requests: higher, but not significantly.
    noisy = evaluate(figures(200, errors=4), figures(2000, errors=30), rules)
    assert gates(noisy)["errorRateVsStable"].verdict == "pass"


def test_latency_ratio_three_ways():
    stable = figures(1000, p95=100.0)
    assert gates(evaluate(figures(400, p95=150.0), stable, RULES))["latencyRatio"].verdict == "fail"
    assert gates(evaluate(figures(400, p95=100.0), stable, RULES))["latencyRatio"].verdict == "pass"
    # 1.18x with intervals +-5%: the interval reaches past 1.2x, so it cannot tell yet.
    unsure = gates(evaluate(figures(400, p95=118.0), stable, RULES))["latencyRatio"]
    assert unsure.verdict == "inconclusive" and unsure.figure == pytest.approx(1.18)


def test_label_distribution_g_test_matches_scipy():
    canary, stable = figures(400, positive=240), figures(2000, positive=1000)
    gate = gates(evaluate(canary, stable, AnalysisSpec(minRequests=20, maxLabelShift=1.0)))["labelDistribution"]
    g, p, _, _ = sp.chi2_contingency([[160, 240], [1000, 1000]], correction=False, lambda_="log-likelihood")
    assert (gate.figure, gate.p_value, gate.verdict) == (pytest.approx(g), pytest.approx(p), "fail")
    chi = gates(evaluate(canary, stable, AnalysisSpec(minRequests=20, maxLabelShift=1.0, labelTest="ChiSquare")))
    assert chi["labelDistribution"].p_value == pytest.approx(sp.chi2_contingency([[160, 240], [1000, 1000]], False)[1])
    off = evaluate(canary, stable, AnalysisSpec(minRequests=20, maxLabelShift=1.0, labelTest="Off"))
    assert "labelDistribution" not in gates(off)
    # A rare label with expected counts below 5: the test does not decide.
    rare = gates(evaluate(figures(30, positive=1), figures(30, positive=2), AnalysisSpec(minRequests=20)))
    assert rare["labelDistribution"].verdict == "inconclusive"


@pytest.mark.parametrize(
    ("canary", "reason"),
    [
        (figures(40, errors=10), "error rate 25.00% above 10.00%"),
        (figures(40, p95=500), "p95 latency 500.0 ms above"),
        (figures(40, positive=0), "label shift"),
        (figures(40, confidence=0.55), "mean confidence 0.550 below 0.6"),
    ],
)
def test_bad_canary_fails_with_its_reason(canary, reason):
    result = evaluate(canary, figures(200), RULES)
    assert result.verdict == "fail"
    assert any(reason in r for r in result.reasons), result.reasons


def test_quantile_interval_fractions():
    q, low, high = quantile_fractions(1000)
    assert q == 0.95 and low < q < high
    # ranks n*q -/+ 1.96*sqrt(n q (1-q)) = 950 -/+ 13.5 -> order statistics 936 and 964 (1-based), i.e. fractions
    # 935/999 and 963/999, rounded outwards to the 0.0005 grid
    assert (low, high) == (0.9355, 0.9640) and low <= 935 / 999 and high >= 963 / 999
    assert quantile_fractions(1) == (0.95, 0.95, 0.95)
