"""Rollout analysis: the figures of each arm (computed in SQL by logs.py), the gates that judge them, the verdict.

Every gate is three-valued: pass, fail, or inconclusive when there are too few samples to tell. A check passes only
when every gate passes; any failed gate fails it; otherwise it is inconclusive and decides nothing. Each gate carries
its figure, its threshold, its p-value or confidence interval and the samples it saw, for status.analysis and the
model_deployments record. Strategy-specific gates live in abtest.py and shadow.py; the Canary's are here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlpipeline_operator import stats
from mlpipeline_operator.spec import AnalysisSpec

Verdict = Literal["pass", "fail", "inconclusive"]
MIN_EXPECTED_COUNT = 5.0  # below this in any cell a chi-square/G test is not trustworthy


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


@dataclass(frozen=True)
class RoleFigures:
    """Aggregates of one role (stable, canary, shadow) over the analysis window."""

    requests: int
    errors: int
    latency_p95_ms: float | None = None
    latency_p95_ci_ms: tuple[float, float] | None = None
    mean_confidence: float | None = None
    label_counts: Mapping[str, int] = field(default_factory=dict)
    labelled: int = 0  # successful predictions with feedback (A/B)
    correct: int = 0  # ... whose predicted label equals the feedback label
    window: Literal["window", "latest"] = "window"

    @property
    def ok(self) -> int:
        return self.requests - self.errors

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def label_distribution(self) -> dict[str, float]:
        total = sum(self.label_counts.values())
        return {k: v / total for k, v in sorted(self.label_counts.items())} if total else {}

    def as_status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "errorRate": _round(self.error_rate),
            "latencyP95Ms": _round(self.latency_p95_ms, 3),
            "meanConfidence": _round(self.mean_confidence),
            "labelDistribution": {k: round(v, 6) for k, v in self.label_distribution.items()},
            "window": self.window,
        }
        if self.labelled:
            figures.update(labelled=self.labelled, correct=self.correct, accuracy=_round(self.correct / self.labelled))
        return figures


@dataclass(frozen=True)
class Gate:
    name: str
    verdict: Verdict
    message: str
    figure: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    ci: tuple[float, float] | None = None
    samples: Mapping[str, int] = field(default_factory=dict)

    def as_status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "message": self.message,
            "figure": _round(self.figure),
            "threshold": _round(self.threshold),
            "pValue": _round(self.p_value, 8),
            "ciLow": _round(self.ci[0]) if self.ci else None,
            "ciHigh": _round(self.ci[1]) if self.ci else None,
            "samples": dict(self.samples),
        }


@dataclass(frozen=True)
class AnalysisResult:
    verdict: Verdict
    gates: tuple[Gate, ...]
    arms: Mapping[str, RoleFigures]
    summary: str
    strategy: str = "Canary"
    final: bool = False  # A/B: the experiment has ended (enough samples or maxDuration), the verdict stands
    winner: str | None = None  # A/B: the arm whose outcome is significantly better, if any

    @property
    def reasons(self) -> tuple[str, ...]:
        wanted = "fail" if self.verdict == "fail" else "inconclusive"
        return tuple(g.message for g in self.gates if g.verdict == wanted)

    def as_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "strategy": self.strategy,
            "verdict": self.verdict,
            "summary": self.summary,
            "reasons": list(self.reasons),
            "gates": [g.as_status() for g in self.gates],
            "arms": {role: figures.as_status() for role, figures in self.arms.items()},
        }
        if self.strategy == "ABTest":
            status["final"] = self.final
            status["winner"] = self.winner
        return status


def combine(gates: list[Gate]) -> Verdict:
    verdicts = {g.verdict for g in gates}
    if "fail" in verdicts:
        return "fail"
    return "inconclusive" if "inconclusive" in verdicts or not gates else "pass"


def jensen_shannon(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence in bits: 0 for equal distributions, 1 for disjoint ones."""
    labels = set(p) | set(q)

    def kl(a: Mapping[str, float], m: Mapping[str, float]) -> float:
        return sum(a.get(x, 0.0) * math.log2(a.get(x, 0.0) / m[x]) for x in labels if a.get(x, 0.0) > 0.0)

    mid = {x: (p.get(x, 0.0) + q.get(x, 0.0)) / 2.0 for x in labels}
    value = 0.5 * kl(p, mid) + 0.5 * kl(q, mid)
    return min(max(value, 0.0), 1.0)  # clamp float noise


def _pct(value: float) -> str:
    return f"{value:.2%}"


# ------------------------------------------------------------------------------------------------------------
# Canary gates: absolute thresholds on the canary, and relative ones against the stable model in the same window
# ------------------------------------------------------------------------------------------------------------


def evaluate(canary: RoleFigures, stable: RoleFigures, rules: AnalysisSpec) -> AnalysisResult:
    """The canary's gates; fewer than minRequests canary requests makes every gate inconclusive."""
    arms = {"canary": canary, "stable": stable}
    if canary.requests < rules.min_requests:
        message = f"waiting for traffic: {canary.requests} of {rules.min_requests} canary requests in the window"
        gate = Gate("traffic", "inconclusive", message, canary.requests, rules.min_requests)
        return AnalysisResult("inconclusive", (gate,), arms, message)
    gates = [
        *_absolute_gates(canary, stable, rules),
        error_rate_vs_stable(canary, stable, rules),
        latency_ratio(canary, stable, rules),
    ]
    if rules.label_test != "Off":
        gates.append(label_distribution_test(canary, stable, rules))
    verdict = combine(gates)
    return AnalysisResult(verdict, tuple(gates), arms, _canary_summary(verdict, gates))


def _canary_summary(verdict: Verdict, gates: list[Gate]) -> str:
    by_name = {g.name: g for g in gates}
    parts: list[str] = [verdict]
    error = by_name.get("errorRateVsStable")
    if error and error.figure is not None:
        parts.append(f"err {error.figure * 100:+.2f}pp p={error.p_value:.3g}" if error.p_value is not None else "")
    latency = by_name.get("latencyRatio")
    if latency and latency.figure is not None:
        parts.append(f"p95 x{latency.figure:.2f}")
    return " ".join(p for p in parts if p)


def _absolute_gates(canary: RoleFigures, stable: RoleFigures, rules: AnalysisSpec) -> list[Gate]:
    samples = {"canary": canary.requests}
    gates = [
        Gate(
            "errorRate",
            "fail" if canary.error_rate > rules.max_error_rate else "pass",
            f"error rate {_pct(canary.error_rate)} {'above' if canary.error_rate > rules.max_error_rate else 'within'}"
            f" {_pct(rules.max_error_rate)}",
            canary.error_rate,
            rules.max_error_rate,
            ci=stats.wilson_interval(canary.errors, canary.requests, 1 - rules.significance),
            samples=samples,
        )
    ]
    p95 = canary.latency_p95_ms
    if p95 is None:
        gates.append(Gate("latencyP95", "fail", "no successful canary request to measure latency on", None, None))
    else:
        slow = p95 > rules.max_latency_p95_ms
        gates.append(
            Gate(
                "latencyP95",
                "fail" if slow else "pass",
                f"p95 latency {p95:.1f} ms {'above' if slow else 'within'} {rules.max_latency_p95_ms:g} ms",
                p95,
                rules.max_latency_p95_ms,
                ci=canary.latency_p95_ci_ms,
                samples={"canary": canary.ok},
            )
        )
    labelled = {"canary": sum(canary.label_counts.values()), "stable": sum(stable.label_counts.values())}
    few = _too_few(labelled["canary"], labelled["stable"], rules.min_requests, "label shift")
    if few:
        gates.append(Gate("labelShift", "inconclusive", few, None, rules.max_label_shift, samples=labelled))
    else:
        shift = jensen_shannon(canary.label_distribution, stable.label_distribution)
        shifted = shift > rules.max_label_shift
        gates.append(
            Gate(
                "labelShift",
                "fail" if shifted else "pass",
                f"label shift (Jensen-Shannon) {shift:.3f} {'above' if shifted else 'within'} "
                f"{rules.max_label_shift:g}",
                shift,
                rules.max_label_shift,
                samples=labelled,
            )
        )
    if rules.min_mean_confidence > 0.0 and canary.mean_confidence is not None:
        low = canary.mean_confidence < rules.min_mean_confidence
        gates.append(
            Gate(
                "meanConfidence",
                "fail" if low else "pass",
                f"mean confidence {canary.mean_confidence:.3f} {'below' if low else 'at least'} "
                f"{rules.min_mean_confidence:g}",
                canary.mean_confidence,
                rules.min_mean_confidence,
                samples={"canary": canary.ok},
            )
        )
    return gates


def _too_few(canary: int, stable: int, needed: int, what: str) -> str | None:
    if canary < needed or stable < needed:
        return f"{what}: too few samples to compare (canary {canary}, stable {stable}, need {needed} each)"
    return None


def error_rate_vs_stable(canary: RoleFigures, stable: RoleFigures, rules: AnalysisSpec) -> Gate:
    """Fails when the canary's error rate is significantly above the stable's (one-sided pooled z-test)."""
    samples = {"canary": canary.requests, "stable": stable.requests}
    diff = canary.error_rate - stable.error_rate
    few = _too_few(canary.requests, stable.requests, rules.min_requests, "error rate vs stable")
    if few:
        return Gate("errorRateVsStable", "inconclusive", few, diff if stable.requests else None, 0.0, samples=samples)
    test = stats.two_proportion_z_test(canary.errors, canary.requests, stable.errors, stable.requests, "greater")
    ci = stats.newcombe_interval(canary.errors, canary.requests, stable.errors, stable.requests, 1 - rules.significance)
    worse = test.p_value < rules.significance
    message = (
        f"error rate {_pct(canary.error_rate)} vs stable {_pct(stable.error_rate)}: "
        f"{'significantly higher' if worse else 'not significantly higher'} (p={test.p_value:.3g})"
    )
    return Gate("errorRateVsStable", "fail" if worse else "pass", message, diff, 0.0, test.p_value, ci, samples)


def latency_ratio(canary: RoleFigures, stable: RoleFigures, rules: AnalysisSpec) -> Gate:
    """canary p95 / stable p95 against maxLatencyRatio, with the interval from the two p95 intervals
    (order-statistic bounds, computed in SQL): fail when even its low end is above, pass when its high end is not."""
    samples = {"canary": canary.ok, "stable": stable.ok}
    threshold = rules.max_latency_ratio
    few = _too_few(canary.ok, stable.ok, rules.min_requests, "p95 latency ratio")
    if few or not canary.latency_p95_ms or not stable.latency_p95_ms:
        return Gate("latencyRatio", "inconclusive", few or "p95 latency ratio: no latency", None, threshold)
    ratio = canary.latency_p95_ms / stable.latency_p95_ms
    c_low, c_high = canary.latency_p95_ci_ms or (canary.latency_p95_ms, canary.latency_p95_ms)
    s_low, s_high = stable.latency_p95_ci_ms or (stable.latency_p95_ms, stable.latency_p95_ms)
    ci = (c_low / s_high, c_high / s_low if s_low > 0 else math.inf)
    if ci[0] > threshold:
        verdict: Verdict = "fail"
        how = "above"
    elif ci[1] <= threshold:
        verdict, how = "pass", "within"
    else:
        verdict, how = "inconclusive", "possibly above"
    message = f"p95 latency {ratio:.2f}x the stable's (interval {ci[0]:.2f}-{ci[1]:.2f}), {how} {threshold:g}x"
    return Gate("latencyRatio", verdict, message, ratio, threshold, None, ci, samples)


def label_distribution_test(canary: RoleFigures, stable: RoleFigures, rules: AnalysisSpec) -> Gate:
    """G (or chi-square) test of canary vs stable predicted labels; fails when they differ at `significance`.
    Inconclusive while any expected cell count is below 5: the test's chi-square approximation would not hold."""
    labels = sorted(set(canary.label_counts) | set(stable.label_counts))
    table = [[canary.label_counts.get(x, 0) for x in labels], [stable.label_counts.get(x, 0) for x in labels]]
    samples = {"canary": sum(table[0]), "stable": sum(table[1])}
    name = "labelDistribution"
    few = _too_few(samples["canary"], samples["stable"], rules.min_requests, "label distribution")
    if few:
        return Gate(name, "inconclusive", few, None, rules.significance, samples=samples)
    if len(labels) > 1 and min(min(r) for r in stats.expected_counts(table)) < MIN_EXPECTED_COUNT:
        message = "label distribution: an expected count is below 5, too few samples for the test"
        return Gate(name, "inconclusive", message, None, rules.significance, samples=samples)
    test = stats.independence_test(table, "chi2" if rules.label_test == "ChiSquare" else "g")
    differs = test.p_value < rules.significance
    kind = "chi-square" if rules.label_test == "ChiSquare" else "G"
    message = (
        f"predicted labels {'differ' if differs else 'do not differ'} from the stable's "
        f"({kind} = {test.statistic:.2f}, dof {test.dof}, p={test.p_value:.3g})"
    )
    return Gate(
        name, "fail" if differs else "pass", message, test.statistic, rules.significance, test.p_value, None, samples
    )
