"""Canary analysis maths: figures of one role over a window, and the verdict of canary against stable.

Pure functions over plain rows so they are tested without a database; logs.py reads the rows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlpipeline_operator.spec import AnalysisSpec

Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class LogRow:
    """The columns of prediction_logs the analysis needs."""

    status: str  # ok | error
    latency_ms: float
    predicted_sentiment: str | None
    confidence: float | None


@dataclass(frozen=True)
class WindowStats:
    requests: int
    errors: int
    error_rate: float
    latency_p95_ms: float | None
    mean_confidence: float | None
    label_distribution: dict[str, float]

    def as_status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "errorRate": round(self.error_rate, 6),
            "labelDistribution": {k: round(v, 6) for k, v in self.label_distribution.items()},
            "latencyP95Ms": None if self.latency_p95_ms is None else round(self.latency_p95_ms, 3),
            "meanConfidence": None if self.mean_confidence is None else round(self.mean_confidence, 6),
        }
        return figures


@dataclass(frozen=True)
class AnalysisResult:
    verdict: Verdict
    canary: WindowStats
    stable: WindowStats
    label_shift: float | None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def as_status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "canary": self.canary.as_status(),
            "stable": self.stable.as_status(),
            "labelShift": None if self.label_shift is None else round(self.label_shift, 6),
        }
        return figures


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(labels: Iterable[str]) -> dict[str, float]:
    counts = Counter(labels)
    total = sum(counts.values())
    return {label: count / total for label, count in sorted(counts.items())} if total else {}


def jensen_shannon(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence in bits: 0 for equal distributions, 1 for disjoint ones."""
    labels = set(p) | set(q)

    def kl(a: Mapping[str, float], m: Mapping[str, float]) -> float:
        return sum(a.get(x, 0.0) * math.log2(a.get(x, 0.0) / m[x]) for x in labels if a.get(x, 0.0) > 0.0)

    mid = {x: (p.get(x, 0.0) + q.get(x, 0.0)) / 2.0 for x in labels}
    value = 0.5 * kl(p, mid) + 0.5 * kl(q, mid)
    return min(max(value, 0.0), 1.0)  # clamp float noise


def window_stats(rows: Iterable[LogRow]) -> WindowStats:
    rows = list(rows)
    ok = [r for r in rows if r.status == "ok"]
    errors = len(rows) - len(ok)
    confidences = [r.confidence for r in ok if r.confidence is not None]
    return WindowStats(
        requests=len(rows),
        errors=errors,
        error_rate=errors / len(rows) if rows else 0.0,
        latency_p95_ms=percentile((r.latency_ms for r in ok), 95.0),
        mean_confidence=sum(confidences) / len(confidences) if confidences else None,
        label_distribution=distribution(r.predicted_sentiment for r in ok if r.predicted_sentiment),
    )


def evaluate(canary: WindowStats, stable: WindowStats, rules: AnalysisSpec) -> AnalysisResult:
    """Canary figures against the thresholds; too little canary traffic decides nothing."""
    shift = (
        jensen_shannon(canary.label_distribution, stable.label_distribution)
        if canary.label_distribution and stable.label_distribution
        else None
    )
    if canary.requests < rules.min_requests:
        reason = f"waiting for traffic: {canary.requests} of {rules.min_requests} canary requests in the window"
        return AnalysisResult("inconclusive", canary, stable, shift, (reason,))
    reasons: list[str] = []
    if canary.error_rate > rules.max_error_rate:
        reasons.append(f"error rate {canary.error_rate:.2%} above {rules.max_error_rate:.2%}")
    if canary.latency_p95_ms is None:
        reasons.append("no successful canary request to measure latency on")
    elif canary.latency_p95_ms > rules.max_latency_p95_ms:
        reasons.append(f"p95 latency {canary.latency_p95_ms:.1f} ms above {rules.max_latency_p95_ms:g} ms")
    if shift is not None and shift > rules.max_label_shift:
        reasons.append(f"label shift (Jensen-Shannon) {shift:.3f} above {rules.max_label_shift:g}")
    if (
        rules.min_mean_confidence > 0.0
        and canary.mean_confidence is not None
        and canary.mean_confidence < rules.min_mean_confidence
    ):
        reasons.append(f"mean confidence {canary.mean_confidence:.3f} below {rules.min_mean_confidence:g}")
    return AnalysisResult("fail" if reasons else "pass", canary, stable, shift, tuple(reasons))
