"""The shared domain model and the cells read from it (analysis/attribution/domain.py,
cells.py, testing.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import attribution as at
from analysis.attribution import cells as cell_mod, domain
from analysis.attribution.domain import allocate_windows, fit_domain, fit_shared_domain
from analysis.binning import bins_for
from generators import make_case


def test_allocate_windows_is_proportional():
    counts = np.array([100.0, 300.0, 600.0])
    got = allocate_windows(2000, counts, np.random.default_rng(0))
    assert np.bincount(got).tolist() == [200, 600, 1200]


def test_shared_density_ratio_matches_a_fit_on_the_window_alone():
    """Three windows: N(0,1), N(0.7,1), N(0,1) against a N(0,1) reference. The shared
    model's density ratio in window 1 is compared with a domain model fitted on that
    window and the reference alone, and with the truth exp(0.7 x - 0.245): the median
    absolute log-ratio difference stays within 0.25 (the two estimates are as close to
    each other as each is to the truth), and quiet windows get ratios near 1."""
    rng = np.random.default_rng(3)
    X_ref = rng.normal(0, 1, (6000, 2))
    shifts = [0.0, 0.7, 0.0]
    X_prod = np.vstack([rng.normal(0, 1, (3000, 2)) + [s, 0] for s in shifts])
    window = np.repeat([0, 1, 2], 3000)
    mask = np.zeros(2, bool)
    shared = fit_shared_domain(X_ref, X_prod, window, mask, seed=0)
    pi_shared = shared.pi(shared.ref_score(1), 1)
    alone = fit_domain(np.vstack([X_ref, X_prod[window == 1]]),
                       np.r_[np.zeros(6000, bool), np.ones(3000, bool)], mask, seed=0)
    log_r = lambda pi: np.log(pi / (1 - pi))  # noqa: E731
    truth = 0.7 * X_ref[:, 0] - 0.245
    # balanced classes: the single fit's odds are the ratio itself
    alone_ref = log_r(alone.pi[:6000])
    assert np.median(np.abs(log_r(pi_shared) - alone_ref)) < 0.25
    assert np.median(np.abs(log_r(pi_shared) - truth)) < 0.25
    assert np.median(np.abs(log_r(shared.pi(shared.ref_score(0), 0)))) < 0.15
    # and the window's AUC reads as the single fit's
    cell = at.auc_test(np.r_[shared.ref_score(1), shared.prod_score[window == 1]],
                       np.r_[np.zeros(6000, bool), np.ones(3000, bool)],
                       np.r_[shared.ref_fold, shared.prod_fold[window == 1]])[0]
    single = at.auc_test(alone.score, np.r_[np.zeros(6000, bool), np.ones(3000, bool)],
                         alone.fold)[0]
    assert cell == pytest.approx(single, abs=0.02)


def test_binned_feature_test_equals_feature_test():
    rng = np.random.default_rng(2)
    ref = pd.Series(np.r_[rng.normal(0, 1, 1500), [np.nan] * 20])
    win = pd.Series(np.r_[rng.normal(0.3, 1, 800), [np.nan] * 30])
    bins = bins_for(ref, "numeric")
    slow = at.feature_test(ref, win, "numeric", bins)
    fast = cell_mod.binned_feature_test(bins.codes(ref), bins.codes(win), len(bins.labels),
                                        ref.to_numpy(), win.to_numpy(), "numeric")
    assert fast["psi"] == pytest.approx(slow["psi"], rel=1e-12)
    assert fast["p_value"] == pytest.approx(slow["p_value"], rel=1e-12)
    cats = pd.Series(rng.choice(["a", "b", "c", None], 900))
    other = pd.Series(rng.choice(["a", "b", "d", None], 700))
    cbins = bins_for(at.clean_values(cats, "categorical"), "categorical")
    slow = at.feature_test(cats, other, "categorical", cbins)
    fast = cell_mod.binned_feature_test(
        cbins.codes(at.clean_values(cats, "categorical")),
        cbins.codes(at.clean_values(other, "categorical")), len(cbins.labels),
        None, None, "categorical")
    assert fast == pytest.approx(slow)


def test_group_pi_is_the_segment_prior_adjustment():
    pi = np.array([0.5, 0.6, 0.9])
    r = pi / (1 - pi) * (0.25 / 0.5)
    assert domain.group_pi(pi, 0.25, 0.5) == pytest.approx(r / (1 + r))


def test_groups_are_examined_only_where_their_window_or_group_is_flagged():
    case = make_case("covariate", seed=7)
    problem, _ = at.problem_from_frames(case.reference, case.production.copy(), target="y",
                                        prediction="prediction", segment="region")
    result = at.investigate(case.reference, case.production, problem).to_dict()
    for c in result["cells"]:
        before = pd.Timestamp(c["start"]) < case.drift_start
        if c["segment"] == "all":
            assert c["data"]["examined"]
        elif before and c["segment"] != case.group:
            # a quiet window of a quiet group: statistics for the page, no test
            assert not c["data"]["examined"]
            assert all(f["p_value"] is None for f in c["data"]["features"].values())
            assert "auc" in c["data"] and c["verdict"] == "none"
        elif not before:
            assert c["data"]["examined"]


def test_poisson_counts_follow_poisson_one():
    from scipy import stats
    from analysis.attribution.samples import poisson_counts
    counts = poisson_counts(np.random.default_rng(3), 20_000)
    assert counts.dtype == np.uint8 and counts.shape == (20_000, at.BOOTSTRAP)
    values, freq = np.unique(counts, return_counts=True)
    expected = stats.poisson.pmf(values, 1.0) * counts.size
    keep = expected >= 5
    chi2 = np.sum((freq[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3
    assert counts.mean() == pytest.approx(1.0, abs=0.002)
    assert counts.var() == pytest.approx(1.0, abs=0.005)


def test_quantizer_cuts_many_valued_columns_to_at_most_255_ordered_values():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=5000), rng.integers(0, 4, 5000).astype(float),
                         rng.normal(size=5000)])
    X[::7, 0] = np.nan
    q = domain.Quantizer.fit(X, np.array([False, False, True]))
    Y = q.transform(X)
    assert set(q.edges) == {0}                      # few values, categorical: untouched
    np.testing.assert_array_equal(Y[:, 1:], X[:, 1:])
    assert np.isnan(Y[::7, 0]).all()
    ok = ~np.isnan(X[:, 0])
    assert len(np.unique(Y[ok, 0])) <= domain.MAX_VALUES
    order = np.argsort(X[ok, 0])
    assert np.all(np.diff(Y[ok, 0][order]) >= 0)    # the cut keeps the order
    # each value holds about 1/255 of the rows
    assert np.bincount(Y[ok, 0].astype(int)).max() <= 3 * ok.sum() / domain.MAX_VALUES
