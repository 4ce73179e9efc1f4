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
    # random tables, from equal to very different samples (p down to 1e-300)
    rng = np.random.default_rng(9)
    for _ in range(200):
        k = rng.integers(2, 14)
        ref = rng.multinomial(rng.integers(20, 20_000), rng.dirichlet(np.ones(k)))
        prod = rng.multinomial(rng.integers(20, 20_000), rng.dirichlet(np.ones(k)))
        keep = (ref + prod) > 0
        if keep.sum() < 2:
            continue
        expected = sps.chi2_contingency(np.vstack([ref[keep], prod[keep]]), correction=False)
        got = stats.chisquare_homogeneity(ref, prod)
        assert got[0] == pytest.approx(expected.statistic, rel=1e-10)
        assert got[1] == pytest.approx(expected.pvalue, rel=1e-8, abs=1e-300)


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


def test_ks_test_asymptotic_matches_scipy_on_random_samples():
    """The direct computation against ks_2samp(method='asymp') on samples of unequal
    sizes, with ties, a one-sided shift, identical samples and disjoint ones."""
    rng = np.random.default_rng(21)
    for _ in range(100):
        n, m = rng.integers(1, 400, size=2)
        a = rng.normal(size=n)
        b = rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), size=m)
        if rng.random() < 0.4:   # heavy ties: values on a coarse grid
            a, b = np.round(a, 1), np.round(b, 1)
        d, p = stats.ks_test(a, b, method="asymp")
        ref = sps.ks_2samp(a, b, method="asymp")
        assert d == pytest.approx(ref.statistic, rel=1e-12, abs=1e-15)
        assert p == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-300)
    assert stats.ks_test([1.0, 2.0, 2.0], [1.0, 2.0, 2.0], method="asymp") == (0.0, 1.0)
    d, p = stats.ks_test(np.arange(50.0), np.arange(50.0) + 100, method="asymp")
    assert d == 1.0 and p == pytest.approx(sps.ks_2samp(np.arange(50.0), np.arange(50.0) + 100,
                                                        method="asymp").pvalue)


# -- noise levels (analysis/noise.py) -------------------------------------------------------
from analysis import noise  # noqa: E402


def test_verdict_rule_hand_cases():
    # (value, threshold, noise level, production rows, reference rows) -> verdict
    assert noise.verdict(0.3, 0.1, 0.2, 500, 500) == "drift"
    assert noise.verdict(0.3, 0.1, 0.5, 500, 500) == "within noise"
    assert noise.verdict(0.3, 0.1, 0.3, 500, 500) == "within noise"   # must exceed it
    assert noise.verdict(0.05, 0.1, 0.01, 500, 500) == "stable"
    assert noise.verdict(9.0, 0.1, 0.01, 49, 500) == "not judged"
    assert noise.verdict(9.0, 0.1, 0.01, 500, 49) == "not judged"
    assert noise.verdict(float("nan"), 0.1, 0.01, 500, 500) == "not judged"


def test_row_statistics_equal_the_pairwise_ones():
    rng = np.random.default_rng(10)
    counts = rng.integers(0, 6, size=(200, 7)).astype(float)
    counts[:, 0] += 1  # no empty sample
    p = counts[:100] / counts[:100].sum(axis=1, keepdims=True)
    q = counts[100:] / counts[100:].sum(axis=1, keepdims=True)
    for rows, pair in ((noise.psi_rows, stats.psi),
                       (noise.jensenshannon_rows, stats.jensenshannon_distance),
                       (noise.hellinger_rows, stats.hellinger_distance)):
        expected = [pair(a, b) for a, b in zip(p, q)]
        np.testing.assert_allclose(rows(p, q), expected, rtol=1e-12, atol=1e-12)


def _null_draws(statistic, shares, n, m, draws, seed):
    """Independent simulation: the statistic of many pairs of multinomial samples."""
    rng = np.random.default_rng(seed)
    a = rng.multinomial(n, shares, size=draws)
    b = rng.multinomial(m, shares, size=draws)
    func = {"psi": stats.psi, "jensenshannon": stats.jensenshannon_distance,
            "hellinger": stats.hellinger_distance}[statistic]
    return np.array([func(x, y) for x, y in zip(a, b)])


@pytest.mark.parametrize("statistic", ["psi", "jensenshannon", "hellinger"])
def test_chi_square_noise_level_at_large_samples(statistic):
    # PSI ~ (1/n + 1/m) chi2_{k-1}: the 99th percentile of 20,000 no-drift pairs of
    # 20,000 and 5,000 rows on 10 equal bins agrees within 4 %
    shares = np.full(10, 0.1)
    simulated = np.quantile(_null_draws(statistic, shares, 20_000, 5_000, 20_000, 1), 0.99)
    level = noise.binned_asymptotic(statistic, 10, 20_000, 5_000, alpha=0.01)
    assert level == pytest.approx(simulated, rel=0.04)
    hand = (1 / 20_000 + 1 / 5_000) * sps.chi2.isf(0.01, 9)
    assert level == pytest.approx(hand if statistic == "psi" else math.sqrt(hand / 8))
    # this is what the dispatcher uses there (every bin expects >= 20 rows)
    assert noise.binned_noise_level(statistic, shares * 20_000, 5_000, alpha=0.01) == level


@pytest.mark.parametrize("statistic", ["psi", "jensenshannon"])
def test_bootstrap_noise_level_matches_raw_samples_binned_on_reference_deciles(statistic):
    # the product's situation: a reference of 240 rows, its own deciles as bins, and a
    # window of 65 rows from the same distribution. 10,000 fresh pairs, binned and
    # measured as the heatmap does, give the 99th percentile the bootstrap estimates
    from analysis.binning import quantile_bins
    rng = np.random.default_rng(2)
    values = []
    for _ in range(10_000):
        ref, prod = rng.normal(size=240), rng.normal(size=65)
        b = quantile_bins(ref)
        values.append({"psi": stats.psi, "jensenshannon": stats.jensenshannon_distance}[
            statistic](b.counts(ref), b.counts(prod)))
    simulated = np.quantile(values, 0.99)
    ref = rng.normal(size=240)
    counts = quantile_bins(ref).counts(ref)
    level = noise.binned_noise_level(statistic, counts, 65, alpha=0.01)
    assert level == pytest.approx(simulated, rel=0.12)
    # at these sizes the chi-square form is far off for PSI: empty bins (share 1e-4)
    if statistic == "psi":
        assert level > 1.2 * noise.binned_asymptotic("psi", 10, 240, 65, alpha=0.01)


def test_ks_critical_value_is_scipys_asymptotic_test():
    rng = np.random.default_rng(3)
    for n, m in ((242, 65), (1000, 300), (5000, 5000)):
        critical = noise.ks_critical_value(n, m, alpha=0.05)
        for _ in range(200):
            a, b = rng.normal(size=n), rng.normal(0.1, 1, size=m)
            result = sps.ks_2samp(a, b, method="asymp")
            if abs(result.statistic - critical) > 1e-9:
                assert (result.statistic > critical) == (result.pvalue < 0.05)
    # large samples: Kolmogorov's limit, c(alpha) sqrt(1/n + 1/m)
    assert noise.ks_critical_value(10**6, 10**6, 0.001) == pytest.approx(
        sps.kstwobign.isf(0.001) * math.sqrt(2e-6), rel=2e-3)


def test_ks_critical_value_holds_its_level_at_small_samples():
    # with no drift, D exceeds the 1 % critical value in about 1 % of 20,000 pairs of
    # 242 and 65 rows (exact distribution, continuous data): conservative, not far off
    rng = np.random.default_rng(4)
    critical = noise.ks_critical_value(242, 65, alpha=0.01)
    a, b = rng.normal(size=(20_000, 242)), rng.normal(size=(20_000, 65))
    d = _ks_statistics(a, b)
    first = [sps.ks_2samp(a[i], b[i]).statistic for i in range(200)]
    np.testing.assert_allclose(d[:200], first, rtol=0, atol=1e-12)  # the same D as scipy
    assert 0.005 <= np.mean(d > critical) <= 0.0125


def _ks_statistics(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The two-sample KS statistic D of each row pair of ``a`` and ``b`` at once
    (continuous data: no ties): the largest gap between the two ECDFs, read at every
    pooled value in sorted order."""
    n, m = a.shape[1], b.shape[1]
    pooled = np.concatenate([a, b], axis=1)
    from_a = np.argsort(pooled, axis=1) < n   # the pooled values' origins, in order
    gap = np.cumsum(from_a, axis=1) / n - np.cumsum(~from_a, axis=1) / m
    return np.abs(gap).max(axis=1)


@pytest.mark.parametrize("draw", ["normal", "lognormal"])
def test_wasserstein_noise_level_matches_simulation(draw):
    # the 99th percentile of the normed W1 between samples of 300 and 80 drawn from a
    # reference, simulated with scipy, against the bootstrap on the merged support
    rng = np.random.default_rng(5)
    ref = rng.normal(size=300) if draw == "normal" else rng.lognormal(0, 1, size=300)
    sigma = np.std(ref)
    simulated = np.quantile([sps.wasserstein_distance(rng.choice(ref, 300), rng.choice(ref, 80))
                             for _ in range(10_000)], 0.99) / sigma
    points, counts = noise.support_of(ref)
    level = noise.wasserstein_noise_level(points, counts, 80, sigma, alpha=0.01)
    assert level == pytest.approx(simulated, rel=0.1)


def test_wasserstein_bridge_limit_agrees_with_the_bootstrap_at_large_samples():
    rng = np.random.default_rng(6)
    ref = rng.normal(size=50_000)
    points, counts = noise.support_of(ref)
    boot = noise.wasserstein_bootstrap(points, counts, 50_000, 5_000, alpha=0.01)
    bridge = noise.wasserstein_bridge_quantile(points, counts, alpha=0.01)
    assert bridge * math.sqrt(1 / 50_000 + 1 / 5_000) == pytest.approx(boot, rel=0.05)
    # the dispatcher uses the limit from 1,000 rows on both sides
    assert noise.wasserstein_noise_level(points, counts, 5_000, 2.0, alpha=0.01) == \
        pytest.approx(bridge * math.sqrt(1 / 50_000 + 1 / 5_000) / 2.0)


def test_merged_support_keeps_mass_and_mean():
    rng = np.random.default_rng(7)
    values = rng.lognormal(0, 1, 20_000)
    points, counts = noise.support_of(values)
    assert len(points) <= noise.SUPPORT_POINTS
    assert counts.sum() == 20_000
    assert np.dot(points, counts) / counts.sum() == pytest.approx(values.mean(), rel=1e-12)
    assert np.all(np.diff(points) > 0)
    # few distinct values are kept as they are
    points, counts = noise.support_of([1.0, 2.0, 2.0, np.nan, 5.0])
    assert points.tolist() == [1.0, 2.0, 5.0] and counts.tolist() == [1, 2, 1]


def test_tabulated_size_rounds_down_by_at_most_ten_percent():
    sizes = [noise.tabulated_size(m) for m in range(1, 20_000)]
    assert sizes[:100] == list(range(1, 101))
    assert all(s <= m for m, s in zip(range(1, 20_000), sizes))
    assert all(s >= m / 1.1 for m, s in zip(range(1, 20_000), sizes))
    assert sizes == sorted(sizes) and len(set(sizes)) < 160


def test_noise_levels_fall_with_sample_size():
    shares = np.array([0.4, 0.3, 0.2, 0.1]) * 1000
    levels = [noise.binned_noise_level("psi", shares, m) for m in (60, 120, 480, 5000)]
    assert levels == sorted(levels, reverse=True)
    assert noise.binned_noise_level("psi", [1000, 0, 0], 80) == 0.0  # one bin: no noise


def test_pool_moments_is_the_variance_of_the_whole():
    rng = np.random.default_rng(4)
    parts = [rng.normal(1e6, 1, 50), rng.normal(1e6 + 3, 2, 70), np.array([])]
    n = [p.size for p in parts]
    mean = [p.mean() if p.size else np.nan for p in parts]
    m2 = [((p - p.mean()) ** 2).sum() if p.size else 0.0 for p in parts]
    total, pooled_mean, var = stats.pool_moments(n, mean, m2)
    whole = np.concatenate(parts)
    assert total == whole.size
    assert pooled_mean == pytest.approx(whole.mean(), rel=1e-15)
    assert var == pytest.approx(whole.var(), rel=1e-9)
    assert np.isnan(stats.pool_moments([0], [np.nan], [0.0])[1])


def test_mann_whitney_greater_matches_scipy():
    """U and the one-sided z-score against scipy's mannwhitneyu (asymptotic, ties
    corrected, continuity corrected): its U, and its p-value as 1 - Phi(z); on unequal
    sizes, heavy ties, and a hand case."""
    rng = np.random.default_rng(5)
    for _ in range(100):
        n, m = rng.integers(1, 300, size=2)
        a, b = rng.normal(rng.uniform(-1, 1), 1, n), rng.normal(size=m)
        if rng.random() < 0.5:
            a, b = np.round(a), np.round(b)
        if np.ptp(np.r_[a, b]) == 0:
            continue
        u, z = stats.mann_whitney_greater(a, b)
        ref = sps.mannwhitneyu(a, b, alternative="greater", method="asymptotic")
        assert u == pytest.approx(ref.statistic, rel=1e-12)
        assert sps.norm.sf(z) == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    # by hand: first = [3, 4], second = [1, 2, 3]; ranks 1, 2, 3.5, 3.5, 5 -> R1 = 8.5,
    # U = 8.5 - 3 = 5.5; one tie of two: sum t^3 - t = 6; var = 6/12 (6 - 6/20) = 2.85
    u, z = stats.mann_whitney_greater([3, 4], [1, 2, 3])
    assert u == 5.5 and z == pytest.approx((5.5 - 3 - 0.5) / math.sqrt(2.85))
    assert math.isnan(stats.mann_whitney_greater([2.0, 2.0], [2.0])[1])
