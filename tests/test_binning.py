"""Frozen reference bins and Evidently's binning rules."""
import math

import numpy as np
import pandas as pd
import pytest

from analysis import stats
from analysis.binning import (CategoricalBins, NumericBins, category_bins, evidently_shares,
                              quantile_bins)
from analysis.stats import EmptySampleError


def test_deciles_of_reference_and_left_closed_bins():
    bins = quantile_bins(np.arange(1, 101))  # deciles of 1..100: 10.9, 20.8, ...
    assert len(bins.edges) == 9
    assert bins.edges[0] == pytest.approx(np.quantile(np.arange(1, 101), 0.1))
    counts = bins.counts(np.arange(1, 101))
    assert counts.sum() == 100 and counts[-1] == 0  # last bin is "missing"
    assert list(counts[:-1]) == [10] * 10
    tied = NumericBins((1.0, 2.0))
    # a value equal to an edge falls in the bin that starts there
    assert list(tied.counts([0.5, 1.0, 1.5, 2.0, np.nan])) == [1, 2, 1, 1]


def test_ties_merge_edges_and_constant_column_gets_one_edge():
    assert quantile_bins([0, 0, 0, 0, 1, 1, 2, 2, 3, 9]).edges == tuple(
        np.unique(np.quantile([0, 0, 0, 0, 1, 1, 2, 2, 3, 9], np.arange(1, 10) / 10)))
    const = quantile_bins([4.0] * 50)
    assert const.edges == (4.0,)
    assert list(const.counts([4.0, 4.0, 3.0])) == [1, 2, 0]
    assert stats.psi(const.counts([4.0] * 50), const.counts([4.0] * 20)) == 0.0
    with pytest.raises(EmptySampleError):
        quantile_bins([np.nan, np.nan])


def test_categories_other_and_missing():
    bins = category_bins(["b", "a", "a", None])
    assert bins == CategoricalBins(("a", "b"))
    assert bins.labels == ["a", "b", "other", "missing"]
    assert list(bins.counts(["a", "c", "d", None, "b", "a"])) == [2, 1, 2, 1]
    single = category_bins(["x"] * 5)
    assert stats.jensenshannon_distance(single.counts(["x"] * 5), single.counts(["x"] * 3)) == 0.0


def test_evidently_categorical_shares_and_psi_fill_rule():
    # keys a, b, c; p = [2/3, 1/3, 0], q = [1/4, 1/2, 1/4]; p's zero -> 0.0001
    ref, prod = pd.Series(list("aab")), pd.Series(list("abbc"))
    p, q = evidently_shares(ref, prod, "categorical", fill_zeros=True)
    order = list(pd.concat([ref, prod]).unique())
    assert order == ["a", "b", "c"]
    assert p == pytest.approx([2 / 3, 1 / 3, 1e-4])
    assert q == pytest.approx([0.25, 0.5, 0.25])
    expected = ((2 / 3 - 0.25) * math.log((2 / 3) / 0.25) + (1 / 3 - 0.5) * math.log((1 / 3) / 0.5)
                + (1e-4 - 0.25) * math.log(1e-4 / 0.25))
    assert stats.psi_from_shares(p, q) == pytest.approx(expected, abs=1e-12)


def test_evidently_fill_uses_smallest_share_when_tiny():
    # one "b" in 20,000 reference rows: smallest non-zero share 5e-5 <= 1e-4 -> fill 5e-11
    ref = pd.Series(["a"] * 19_999 + ["b"])
    prod = pd.Series(["a", "c"])
    p, _ = evidently_shares(ref, prod, "categorical", fill_zeros=True)
    assert p[2] == pytest.approx(5e-5 / 1e6)


def test_evidently_numeric_sturges_bins_over_both_samples():
    rng = np.random.default_rng(0)
    ref, prod = pd.Series(rng.normal(size=600)), pd.Series(rng.normal(1, 1, size=400))
    p, q = evidently_shares(ref, prod, "numeric", fill_zeros=False)
    # Sturges: ceil(log2(1000)) + 1 = 11 equal-width bins over min..max of both
    assert len(p) == 11
    edges = np.linspace(min(ref.min(), prod.min()), max(ref.max(), prod.max()), 12)
    assert p == pytest.approx(np.histogram(ref, edges)[0] / 600)
    assert q == pytest.approx(np.histogram(prod, edges)[0] / 400)
    # 20 or fewer distinct reference values: one bin per value instead
    p2, _ = evidently_shares(pd.Series([1, 2, 2, 3] * 10), pd.Series([3, 4]), "numeric", False)
    assert len(p2) == 4


def test_fine_bins_equal_widths_between_anchors():
    from analysis.binning import fine_bins
    b = fine_bins(0.0, [10.0, 10.0, 20.0], 40.0, per_interval=10)
    assert b.anchors == (0.0, 10.0, 20.0, 40.0) and b.n == 30
    # [0, 10) in steps of 1, [10, 20) in steps of 1, [20, 40) in steps of 2; ends open
    assert list(b.index([-5, 0, 0.99, 1, 10, 19.5, 20, 21.9, 22, 39.9, 40, 99])) == [
        0, 0, 0, 1, 10, 19, 20, 20, 21, 29, 29, 29]
    assert len(b.edges) == b.n - 1 and b.edges[:3] == (1.0, 2.0, 3.0)
    counts = b.counts([np.nan, 5.0, np.inf])
    assert counts[-1] == 2 and counts.sum() == 3
    const = fine_bins(3.0, [3.0] * 9, 3.0)
    assert const.anchors == (2.5, 3.5)


def test_codes_agree_with_counts():
    import pandas as pd
    from analysis.binning import category_bins, quantile_bins

    values = np.r_[np.random.default_rng(2).normal(size=500), [np.nan] * 7]
    bins = quantile_bins(values)
    codes = bins.codes(values)
    np.testing.assert_array_equal(np.bincount(codes, minlength=len(bins.labels)), bins.counts(values))
    cats = category_bins(pd.Series(["a", "b", "b", "c"]))
    prod = pd.Series(["a", "z", None, "c", "c"])
    np.testing.assert_array_equal(
        np.bincount(cats.codes(prod), minlength=len(cats.labels)), cats.counts(prod))


def test_fine_bins_sum_to_coarse_bins_when_they_refine_them():
    from analysis.binning import fine_bins
    rng = np.random.default_rng(5)
    ref = rng.lognormal(size=2000)
    deciles = np.quantile(ref, np.arange(1, 10) / 10)
    coarse, fine = NumericBins(tuple(np.unique(deciles))), fine_bins(ref.min(), deciles, ref.max())
    mapping = fine.coarse_map(coarse)
    # production beyond both ends of the reference, exactly on edges, and missing
    prod = np.r_[rng.lognormal(0.3, 1.2, 3000), -1.0, ref.max() * 3, deciles, [np.nan] * 4]
    np.testing.assert_array_equal(
        np.bincount(mapping, weights=fine.counts(prod), minlength=len(coarse.edges) + 2),
        coarse.counts(prod))
    # zero-inflated: the minimum is also the first decile, so the first (downward-open)
    # fine interval straddles that edge: values below the reference minimum would land
    # in coarse bin 0 but share a fine bin with values in coarse bin 1
    counts = np.r_[np.zeros(500), rng.poisson(3, 1500)].astype(float)
    d = np.quantile(counts, np.arange(1, 10) / 10)
    assert fine_bins(counts.min(), d, counts.max()).coarse_map(NumericBins(tuple(np.unique(d)))) \
        is None


def test_fine_lower_bounds_split_values_as_the_arithmetic_does():
    from analysis.binning import fine_bins
    rng = np.random.default_rng(12)
    for values in (rng.lognormal(0, 2, 3000), np.round(rng.uniform(-50, 50, 3000), 1),
                   rng.normal(-1e6, 1, 3000), np.r_[rng.normal(size=2000), -1e-300, 1e-300]):
        fine = fine_bins(values.min(), np.quantile(values, np.arange(1, 10) / 10), values.max())
        bounds = fine.lower_bounds()
        probe = np.concatenate([values, bounds, np.nextafter(bounds, -np.inf),
                                np.nextafter(bounds, np.inf), [-1e308, 1e308]])
        with np.errstate(over="ignore"):
            assert np.array_equal(fine.index(probe), np.searchsorted(bounds, probe, "right"))
