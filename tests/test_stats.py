"""Each statistic against scipy or a value worked out by hand (formula in the comment)."""
import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from analysis import stats
from analysis.stats import EmptySampleError


def test_psi_hand_value():
    # p = [.5, .3, .2], q = [.3, .3, .4]
    # PSI = (.3-.5) ln(.3/.5) + 0 + (.4-.2) ln(.4/.2) = .2 ln(5/3) + .2 ln 2
    expected = 0.2 * math.log(5 / 3) + 0.2 * math.log(2)
    assert stats.psi([50, 30, 20], [30, 30, 40]) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.240795, abs=1e-6)


def test_psi_empty_bin_uses_epsilon_without_renormalising():
    # p = [1, 0 -> 1e-4], q = [.5, .5]
    expected = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert stats.psi([10, 0], [5, 5]) == pytest.approx(expected, abs=1e-12)
    # a bin empty on both sides contributes nothing
    assert stats.psi([10, 0, 5], [5, 0, 10]) == pytest.approx(stats.psi([10, 5], [5, 10]))


def test_psi_symmetric_and_zero_for_identical():
    a, b = [3, 7, 11, 2], [5, 5, 9, 4]
    assert stats.psi(a, b) == pytest.approx(stats.psi(b, a))
    assert stats.psi(a, a) == 0.0
    assert stats.psi([1, 2], [10, 20]) == pytest.approx(0.0, abs=1e-15)  # counts -> shares


def test_jensenshannon_matches_scipy_and_extremes():
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b = rng.integers(0, 50, 8), rng.integers(1, 50, 8)
        assert stats.jensenshannon_distance(a, b) == pytest.approx(
            jensenshannon(a / a.sum(), b / b.sum()), abs=1e-12)
    assert stats.jensenshannon_distance([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)))
    assert stats.jensenshannon_distance([4, 6], [2, 3]) == pytest.approx(0.0, abs=1e-8)


def test_hellinger_hand_values():
    assert stats.hellinger_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert stats.hellinger_distance([5, 5], [1, 1]) == pytest.approx(0.0, abs=1e-12)
    # p = [.25, .75], q = [.5, .5]: H = sqrt(1 - (sqrt(.125) + sqrt(.375)))
    expected = math.sqrt(1 - (math.sqrt(0.125) + math.sqrt(0.375)))
    assert stats.hellinger_distance([1, 3], [1, 1]) == pytest.approx(expected, abs=1e-12)


def test_chisquare_hand_value_and_scipy():
    # table [[10, 20], [20, 10]]: every expected count 15, chi2 = 4 * 5**2 / 15
    statistic, p = stats.chisquare_homogeneity([10, 20], [20, 10])
    assert statistic == pytest.approx(100 / 15)
    assert p == pytest.approx(sps.chi2.sf(100 / 15, 1))
    ref, prod = np.array([40, 25, 0, 35]), np.array([30, 30, 5, 35])
    expected = sps.chi2_contingency(np.vstack([ref[[0, 1, 2, 3]], prod]), correction=False)
    got = stats.chisquare_homogeneity(ref, prod)
    assert got == pytest.approx((expected.statistic, expected.pvalue))
    # bins empty on both sides are dropped (they carry no information)
    assert stats.chisquare_homogeneity([10, 0, 20], [20, 0, 10]) == pytest.approx((100 / 15, p))
    assert stats.chisquare_homogeneity([7, 0], [3, 0]) == (0.0, 1.0)


def test_ks_matches_scipy_and_hand():
    assert stats.ks_test([1, 2, 3], [4, 5, 6])[0] == 1.0
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=300), rng.normal(0.2, 1, size=500)
    expected = sps.ks_2samp(a, b)
    assert stats.ks_test(a, b) == pytest.approx((expected.statistic, expected.pvalue))
    # missing values are dropped
    assert stats.ks_test(np.append(a, np.nan), b) == pytest.approx(stats.ks_test(a, b))


def test_wasserstein_normed_hand_and_scipy():
    # ref [0, 2]: population sd 1; moving both points by 1 costs W1 = 1
    assert stats.wasserstein_normed([0, 2], [1, 3]) == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    a, b = rng.exponential(2, 1000), rng.exponential(2.5, 800)
    assert stats.wasserstein_normed(a, b) == pytest.approx(
        sps.wasserstein_distance(a, b) / np.std(a))


def test_wasserstein_constant_reference_uses_floor():
    assert stats.wasserstein_normed([5, 5, 5], [5, 5]) == 0.0
    assert stats.wasserstein_normed([5, 5, 5], [6, 6]) == pytest.approx(1 / 0.001)


def test_proportions_ztest_hand_value():
    # p1 = .3, p2 = .5, pooled .4: z = -.2 / sqrt(.4 * .6 * (1/100 + 1/100))
    z_expected = -0.2 / math.sqrt(0.24 * 0.02)
    z, p = stats.proportions_ztest(30, 100, 50, 100)
    assert z == pytest.approx(z_expected)
    assert p == pytest.approx(2 * sps.norm.sf(abs(z_expected)))
    assert p == pytest.approx(0.003892, abs=1e-6)
    assert stats.proportions_ztest(0, 10, 0, 20) == (0.0, 1.0)


@pytest.mark.parametrize("func", [stats.ks_test, stats.wasserstein_normed])
def test_all_missing_or_empty_samples_raise_clearly(func):
    with pytest.raises(EmptySampleError, match="reference sample has no non-missing values"):
        func([np.nan, np.nan], [1.0, 2.0])
    with pytest.raises(EmptySampleError, match="production sample"):
        func([1.0, 2.0], [])


def test_count_statistics_validate_input():
    with pytest.raises(EmptySampleError):
        stats.psi([0, 0], [1, 2])
    with pytest.raises(ValueError, match="differ in length"):
        stats.jensenshannon_distance([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        stats.hellinger_distance([1, -1], [1, 1])
    with pytest.raises(EmptySampleError):
        stats.proportions_ztest(0, 10, 0, 0)


@pytest.mark.parametrize("seed", range(6))
def test_sorted_wasserstein_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    if seed % 2:  # ties: integers on both sides
        a, b = rng.integers(0, 12, 3000).astype(float), rng.integers(2, 15, 700).astype(float)
    else:
        a, b = rng.normal(0, 1, 5000), rng.normal(0.3 * seed, 1.5, 1 + 400 * seed)
    a = a + 1e6 * (seed == 4)  # a large offset must not cost precision
    b = b + 1e6 * (seed == 4)
    ref = stats.SortedSample(a)
    assert stats.wasserstein_distance_sorted(ref, b) == pytest.approx(
        sps.wasserstein_distance(a, b), rel=1e-9, abs=1e-12)
    assert stats.wasserstein_normed_sorted(ref, b) == pytest.approx(
        stats.wasserstein_normed(a, b), rel=1e-9, abs=1e-12)


def test_sorted_wasserstein_hand_values_and_disjoint_supports():
    # all reference mass at 0, all production mass at 5: W1 = 5
    assert stats.wasserstein_distance_sorted(stats.SortedSample([0, 0]), [5, 5, 5]) == 5.0
    # production entirely below the reference
    assert stats.wasserstein_distance_sorted(stats.SortedSample([10, 12]), [1]) == pytest.approx(10)
    assert stats.wasserstein_distance_sorted(stats.SortedSample([1, 2, 3]), [1, 2, 3]) == pytest.approx(0.0, abs=1e-15)


def test_chisquare_goodness_of_fit_is_scipy_chisquare_on_scaled_reference():
    # expected = reference shares x production size: [30, 20] * 100/50 = [60, 40]
    statistic, p = stats.chisquare_goodness_of_fit([30, 20], [70, 30])
    expected = sps.chisquare([70, 30], [60, 40])
    assert (statistic, p) == pytest.approx((expected.statistic, expected.pvalue))
    assert statistic == pytest.approx(10 ** 2 / 60 + 10 ** 2 / 40)
    # a level the reference never had: expected 0 -> infinite statistic, p = 0
    assert stats.chisquare_goodness_of_fit([5, 5, 0], [4, 4, 2]) == (float("inf"), 0.0)


def test_ks_test_asymptotic_method_matches_scipy():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=3000), rng.normal(0.05, 1, 2500)
    d, p = stats.ks_test(a, b, method="asymp")
    ref = sps.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
