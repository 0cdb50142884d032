"""The statistics of rollout analysis, in plain Python (the operator image carries no scipy).

Proportions: Wilson score interval, Newcombe's hybrid score interval for a difference (method 10 of Newcombe 1998),
the pooled two-proportion z-test. Distributions: Pearson's chi-square and the G (log-likelihood ratio) test of
independence on a contingency table. tests/unit/operator/test_operator_stats.py checks each one against scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

Alternative = Literal["two-sided", "greater", "less"]
_NORMAL = NormalDist()


def z_critical(confidence: float) -> float:
    """The two-sided normal quantile for `confidence` (1.959964 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    return _NORMAL.inv_cdf(0.5 + confidence / 2.0)


def _check_counts(successes: int, n: int) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there is no observation at all."""
    _check_counts(successes, n)
    if n == 0:
        return 0.0, 1.0
    z = z_critical(confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Interval of p1 - p2 from the two Wilson intervals (Newcombe's method 10); (-1, 1) when an arm is empty."""
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    if n1 == 0 or n2 == 0:
        return -1.0, 1.0
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    diff = p1 - p2
    lower = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lower), min(1.0, upper)


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float
    dof: int = 1


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int, alternative: Alternative = "two-sided") -> TestResult:
    """Pooled z-test of p1 == p2; `greater` tests p1 > p2. Equal (or all-0/all-1) arms give z = 0, p = 1."""
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    if n1 == 0 or n2 == 0:
        raise ValueError("both arms need at least one observation")
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance == 0.0:
        return TestResult(0.0, 1.0)
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    if alternative == "two-sided":
        p = 2.0 * _NORMAL.cdf(-abs(z))
    elif alternative == "greater":
        p = _NORMAL.cdf(-z)
    else:
        p = _NORMAL.cdf(z)
    return TestResult(z, min(1.0, p))


def expected_counts(table: Sequence[Sequence[int]]) -> list[list[float]]:
    """Counts expected under independence: row total * column total / grand total."""
    rows = [sum(r) for r in table]
    cols = [sum(c) for c in zip(*table, strict=True)]
    total = sum(rows)
    return [[r * c / total if total else 0.0 for c in cols] for r in rows]


def independence_test(table: Sequence[Sequence[int]], method: Literal["chi2", "g"] = "g") -> TestResult:
    """Chi-square or G test of independence (no continuity correction). All-zero rows and columns are dropped;
    a table left with one row or one column has nothing to compare: statistic 0, p 1."""
    kept = [list(r) for r in table if sum(r) > 0]
    if any(v < 0 for r in kept for v in r):
        raise ValueError("counts must not be negative")
    if kept:
        nonzero_cols = [j for j in range(len(kept[0])) if any(r[j] for r in kept)]
        kept = [[r[j] for j in nonzero_cols] for r in kept]
    if len(kept) < 2 or not kept or len(kept[0]) < 2:
        return TestResult(0.0, 1.0, 0)
    expected = expected_counts(kept)
    cells = [(o, e) for ro, re in zip(kept, expected, strict=True) for o, e in zip(ro, re, strict=True)]
    if method == "chi2":
        statistic = sum((o - e) ** 2 / e for o, e in cells)
    else:
        statistic = 2.0 * sum(o * math.log(o / e) for o, e in cells if o)
    dof = (len(kept) - 1) * (len(kept[0]) - 1)
    return TestResult(statistic, chi2_sf(max(statistic, 0.0), dof), dof)


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X ~ chi-square(dof): the regularized upper incomplete gamma Q(dof/2, x/2)."""
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof}")
    if x <= 0.0:
        return 1.0
    return _gamma_q(dof / 2.0, x / 2.0)


def _gamma_q(a: float, x: float) -> float:
    # Series for x < a + 1, Lentz's continued fraction otherwise (Numerical Recipes, 6.2): both converge fast there.
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        denominator = a
        for _ in range(10_000):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)
