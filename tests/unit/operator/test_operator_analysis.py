"""Canary analysis maths (pure)."""

import math

import numpy as np
import pytest

from mlpipeline_operator.analysis import LogRow, evaluate, jensen_shannon, percentile, window_stats
from mlpipeline_operator.spec import AnalysisSpec

pytestmark = pytest.mark.unit


def rows(n, *, errors=0, latency=20.0, label="positive", other=None, confidence=0.9):
    out = [LogRow("error", latency, None, None) for _ in range(errors)]
    for i in range(n - errors):
        name = other if other and i % 2 else label
        out.append(LogRow("ok", latency + i % 10, name, confidence))
    return out


def test_percentile_matches_numpy():
    values = [float(v) for v in np.random.default_rng(0).exponential(30, 501)]
    assert percentile(values, 95) == pytest.approx(float(np.percentile(values, 95)))
    assert percentile([], 95) is None


def test_jensen_shannon_bounds():
    assert jensen_shannon({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0
    assert jensen_shannon({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
    value = jensen_shannon({"a": 0.9, "b": 0.1}, {"a": 0.5, "b": 0.5})
    # by hand, with the mixture m = {a: 0.7, b: 0.3}
    expected = 0.5 * (0.9 * math.log2(0.9 / 0.7) + 0.1 * math.log2(0.1 / 0.3)) + 0.5 * (
        0.5 * math.log2(0.5 / 0.7) + 0.5 * math.log2(0.5 / 0.3)
    )
    assert value == pytest.approx(expected) and 0 < value < 1


def test_window_stats():
    stats = window_stats(rows(10, errors=2, other="negative"))
    assert (stats.requests, stats.errors) == (10, 2)
    assert stats.error_rate == pytest.approx(0.2)
    assert stats.label_distribution == {"negative": 0.5, "positive": 0.5}
    assert stats.mean_confidence == pytest.approx(0.9)


RULES = AnalysisSpec(minRequests=20, maxErrorRate=0.1, maxLatencyP95Ms=100, maxLabelShift=0.1, minMeanConfidence=0.6)


def test_healthy_canary_passes():
    result = evaluate(window_stats(rows(40, other="negative")), window_stats(rows(200, other="negative")), RULES)
    assert result.verdict == "pass" and result.reasons == ()
    assert result.label_shift == pytest.approx(0.0)


def test_too_few_requests_is_inconclusive():
    result = evaluate(window_stats(rows(5)), window_stats(rows(100)), RULES)
    assert result.verdict == "inconclusive"
    assert "5 of 20" in result.reasons[0]


@pytest.mark.parametrize(
    ("canary", "reason"),
    [
        (rows(40, errors=10, other="negative"), "error rate 25.00% above 10.00%"),
        (rows(40, latency=500, other="negative"), "p95 latency"),
        (rows(40, label="negative"), "label shift"),
        (rows(40, other="negative", confidence=0.55), "mean confidence 0.550 below 0.6"),
    ],
)
def test_bad_canary_fails_with_its_reason(canary, reason):
    result = evaluate(window_stats(canary), window_stats(rows(200, other="negative")), RULES)
    assert result.verdict == "fail"
    assert any(reason in r for r in result.reasons), result.reasons
    status = result.as_status()
    assert status["verdict"] == "fail" and status["canary"]["requests"] == 40
