"""A/B verdict: accuracy on feedback-labelled predictions, candidate arm against stable arm.

The experiment runs until both arms have minSamples labelled predictions, or maxDuration has passed. Then the
difference of accuracies (candidate - stable) gets Newcombe's interval and a two-sided pooled z-test: significant at
`significance` names a winner, anything else is inconclusive and the stable model stays. Before the end the same
figures are reported live, with verdict inconclusive (an A/B test is read once, at its end: no peeking decisions).
"""

from __future__ import annotations

from datetime import timedelta

from mlpipeline_operator import stats
from mlpipeline_operator.analysis import AnalysisResult, Gate, RoleFigures, Verdict
from mlpipeline_operator.spec import ABTestSpec


def evaluate_ab(
    candidate: RoleFigures, stable: RoleFigures, ab: ABTestSpec, significance: float, elapsed: timedelta
) -> AnalysisResult:
    arms = {"canary": candidate, "stable": stable}
    samples = {"canary": candidate.labelled, "stable": stable.labelled}
    enough = min(samples.values()) >= ab.min_samples
    final = enough or elapsed >= ab.max_duration_delta
    progress = f"{min(samples.values())}/{ab.min_samples} labelled per arm"
    if candidate.labelled == 0 or stable.labelled == 0:
        message = f"collecting feedback: {progress}" + (" and maxDuration reached" if final else "")
        gate = Gate("accuracyDifference", "inconclusive", message, None, significance, samples=samples)
        return AnalysisResult("inconclusive", (gate,), arms, f"{progress}", "ABTest", final)
    acc_c, acc_s = candidate.correct / candidate.labelled, stable.correct / stable.labelled
    diff = acc_c - acc_s
    test = stats.two_proportion_z_test(candidate.correct, candidate.labelled, stable.correct, stable.labelled)
    ci = stats.newcombe_interval(
        candidate.correct, candidate.labelled, stable.correct, stable.labelled, 1 - significance
    )
    significant = test.p_value < significance
    figures = f"accuracy {acc_c:.2%} vs {acc_s:.2%} ({diff * 100:+.2f}pp, p={test.p_value:.3g})"
    winner: str | None = None
    verdict: Verdict = "inconclusive"
    if not final:
        message = f"running ({progress}): {figures}"
    elif significant:
        winner = "canary" if diff > 0 else "stable"
        verdict = "pass" if winner == "canary" else "fail"
        message = f"{'candidate' if winner == 'canary' else 'stable'} wins: {figures}"
    else:
        message = f"no significant difference at {significance:g}: {figures}"
    gate = Gate("accuracyDifference", verdict, message, diff, significance, test.p_value, ci, samples)
    summary = f"{'final ' if final else ''}{diff * 100:+.2f}pp p={test.p_value:.3g} n={min(samples.values())}"
    return AnalysisResult(verdict, (gate,), arms, summary, "ABTest", final, winner)
