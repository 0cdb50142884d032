"""The rollout statistics against scipy (the oracle) and published values."""

import math

import numpy as np
import pytest
from scipy import stats as sp

from mlpipeline_operator.stats import (
    chi2_sf,
    independence_test,
    newcombe_interval,
    two_proportion_z_test,
    wilson_interval,
    z_critical,
)

pytestmark = pytest.mark.unit

COUNTS = [(0, 10), (1, 10), (7, 10), (10, 10), (45, 120), (980, 1000), (3, 5000), (25_000, 50_000)]


@pytest.mark.parametrize(("k", "n"), COUNTS)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_interval_matches_scipy(k: int, n: int, confidence: float) -> None:
    expected = sp.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert wilson_interval(k, n, confidence) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_z_critical_matches_scipy() -> None:
    for confidence in (0.8, 0.95, 0.999):
        assert z_critical(confidence) == pytest.approx(sp.norm.ppf(0.5 + confidence / 2), rel=1e-12)
    with pytest.raises(ValueError, match="strictly between"):
        z_critical(1.0)


def test_newcombe_interval_published_and_from_scipy_wilson() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II example (a): 56/70 vs 48/80, method 10.
    low, high = newcombe_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    # Example (f) of the same table, with a zero count: 0/10 vs 0/20 -> (-0.1611, 0.2775).
    low, high = newcombe_interval(0, 10, 0, 20)
    assert (round(low, 4), round(high, 4)) == (-0.1611, 0.2775)
    # The definition, with scipy's Wilson bounds.
    for x1, n1, x2, n2 in [(30, 200, 18, 210), (500, 1000, 520, 1000), (2, 40, 9, 35)]:
        a = sp.binomtest(x1, n1).proportion_ci(method="wilson")
        b = sp.binomtest(x2, n2).proportion_ci(method="wilson")
        p1, p2 = x1 / n1, x2 / n2
        expected = (
            p1 - p2 - math.hypot(p1 - a.low, b.high - p2),
            p1 - p2 + math.hypot(a.high - p1, p2 - b.low),
        )
        assert newcombe_interval(x1, n1, x2, n2) == pytest.approx(expected, abs=1e-12)
    assert newcombe_interval(0, 0, 3, 10) == (-1.0, 1.0)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(30, 200, 18, 210), (500, 1000, 520, 1000), (2, 40, 9, 35)])
def test_two_proportion_z_test_matches_scipy(x1: int, n1: int, x2: int, n2: int) -> None:
    # A pooled two-sided z-test is the uncorrected chi-square test of the 2x2 table: z^2 = chi2, same p.
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    chi2, p, _, _ = sp.chi2_contingency(table, correction=False)
    result = two_proportion_z_test(x1, n1, x2, n2)
    assert result.statistic**2 == pytest.approx(chi2, rel=1e-9)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    # One-sided: the normal tail on the right side.
    greater = two_proportion_z_test(x1, n1, x2, n2, "greater")
    assert greater.p_value == pytest.approx(sp.norm.sf(result.statistic), rel=1e-9)
    less = two_proportion_z_test(x1, n1, x2, n2, "less")
    assert greater.p_value + less.p_value == pytest.approx(1.0)


def test_two_proportion_z_test_degenerate() -> None:
    assert two_proportion_z_test(0, 50, 0, 80).p_value == 1.0
    assert two_proportion_z_test(50, 50, 80, 80).p_value == 1.0
    with pytest.raises(ValueError, match="at least one observation"):
        two_proportion_z_test(0, 0, 1, 3)
    with pytest.raises(ValueError, match="successes <= n"):
        two_proportion_z_test(5, 3, 1, 3)


TABLES = [
    [[120, 80], [100, 100]],
    [[10, 20, 30], [12, 25, 18]],
    [[500, 480, 20], [450, 530, 20], [300, 300, 5]],
    [[5, 0], [3, 4]],
]


@pytest.mark.parametrize("table", TABLES)
def test_independence_tests_match_scipy(table: list[list[int]]) -> None:
    chi2, p, dof, _ = sp.chi2_contingency(table, correction=False)
    result = independence_test(table, "chi2")
    assert (result.statistic, result.p_value, result.dof) == pytest.approx((chi2, p, dof), rel=1e-9)
    g, p, dof, _ = sp.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    result = independence_test(table, "g")
    assert (result.statistic, result.p_value, result.dof) == pytest.approx((g, p, dof), rel=1e-9)


def test_independence_test_drops_empty_rows_and_columns() -> None:
    # A label neither arm predicted adds nothing; one arm without rows has nothing to compare with.
    assert independence_test([[10, 0, 20], [12, 0, 25]]) == independence_test([[10, 20], [12, 25]])
    assert independence_test([[10, 20], [0, 0]]).p_value == 1.0
    assert independence_test([[10, 0], [7, 0]]).p_value == 1.0


@pytest.mark.parametrize("dof", [1, 2, 3, 7, 30])
def test_chi2_sf_matches_scipy(dof: int) -> None:
    for x in np.concatenate([np.linspace(0.01, 5 * dof, 40), [100.0, 400.0]]):
        assert chi2_sf(float(x), dof) == pytest.approx(sp.chi2.sf(x, dof), rel=1e-9, abs=1e-300)
    assert chi2_sf(0.0, dof) == 1.0
