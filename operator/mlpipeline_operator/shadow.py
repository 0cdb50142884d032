"""Shadow verdict: how often the shadow agrees with the stable model on the same (mirrored) inputs.

Pairs are a shadow prediction and the stable prediction it mirrors (joined in SQL by logs.paired_figures). The
agreement rate gets a Wilson interval; the shadow also answers for its own error rate, p95 latency and the mean
|confidence difference|. Fewer than minRequests pairs decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlpipeline_operator import stats
from mlpipeline_operator.analysis import AnalysisResult, Gate, RoleFigures, combine
from mlpipeline_operator.spec import AnalysisSpec, ShadowSpec


@dataclass(frozen=True)
class Pairs:
    pairs: int
    agree: int
    mean_abs_confidence_delta: float | None


def evaluate_shadow(shadow: RoleFigures, pairs: Pairs, rules: AnalysisSpec, spec: ShadowSpec) -> AnalysisResult:
    arms = {"shadow": shadow}
    samples = {"pairs": pairs.pairs}
    if pairs.pairs < rules.min_requests:
        message = f"waiting for mirrored traffic: {pairs.pairs} of {rules.min_requests} mirrored predictions paired"
        gate = Gate("agreement", "inconclusive", message, None, spec.min_agreement, samples=samples)
        return AnalysisResult("inconclusive", (gate,), arms, f"n={pairs.pairs}", "Shadow")
    rate = pairs.agree / pairs.pairs
    ci = stats.wilson_interval(pairs.agree, pairs.pairs, 1 - rules.significance)
    agrees = rate >= spec.min_agreement
    gates = [
        Gate(
            "agreement",
            "pass" if agrees else "fail",
            f"agreement {rate:.2%} (interval {ci[0]:.2%}-{ci[1]:.2%}) {'at least' if agrees else 'below'} "
            f"{spec.min_agreement:.2%} over {pairs.pairs} mirrored predictions",
            rate,
            spec.min_agreement,
            ci=ci,
            samples=samples,
        )
    ]
    error_ci = stats.wilson_interval(shadow.errors, shadow.requests, 1 - rules.significance)
    failing = shadow.error_rate > rules.max_error_rate
    gates.append(
        Gate(
            "shadowErrorRate",
            "fail" if failing else "pass",
            f"shadow error rate {shadow.error_rate:.2%} {'above' if failing else 'within'} {rules.max_error_rate:.2%}",
            shadow.error_rate,
            rules.max_error_rate,
            ci=error_ci,
            samples={"shadow": shadow.requests},
        )
    )
    if shadow.latency_p95_ms is not None:
        slow = shadow.latency_p95_ms > rules.max_latency_p95_ms
        gates.append(
            Gate(
                "shadowLatencyP95",
                "fail" if slow else "pass",
                f"shadow p95 latency {shadow.latency_p95_ms:.1f} ms {'above' if slow else 'within'} "
                f"{rules.max_latency_p95_ms:g} ms",
                shadow.latency_p95_ms,
                rules.max_latency_p95_ms,
                ci=shadow.latency_p95_ci_ms,
                samples={"shadow": shadow.ok},
            )
        )
    delta = pairs.mean_abs_confidence_delta
    if delta is not None:
        apart = delta > spec.max_confidence_delta
        gates.append(
            Gate(
                "confidenceDelta",
                "fail" if apart else "pass",
                f"mean |confidence difference| {delta:.3f} {'above' if apart else 'within'} "
                f"{spec.max_confidence_delta:g}",
                delta,
                spec.max_confidence_delta,
                samples=samples,
            )
        )
    verdict = combine(gates)
    summary = f"{verdict} agree {rate:.1%} [{ci[0]:.1%}-{ci[1]:.1%}] n={pairs.pairs}"
    return AnalysisResult(verdict, tuple(gates), arms, summary, "Shadow")
