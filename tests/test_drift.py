"""Test choice, verdicts and edge cases of the drift table."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from analysis.drift import TESTS, default_test, drift_table, feature_drift, infer_kind
from analysis.stats import EmptySampleError


@pytest.mark.parametrize("kind,n_ref,n_distinct,expected", [
    ("numeric", 1000, 50, "ks"), ("numeric", 1000, 5, "chisquare"), ("numeric", 1000, 2, "z"),
    ("categorical", 500, 7, "chisquare"), ("categorical", 500, 2, "z"),
    ("numeric", 1001, 50, "wasserstein"), ("numeric", 5000, 4, "jensenshannon"),
    ("categorical", 5000, 2, "jensenshannon"),
])
def test_default_test_follows_evidently_rule(kind, n_ref, n_distinct, expected):
    assert default_test(kind, n_ref, n_distinct) == expected


def _frames(n_ref=2000, n_prod=1500, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"x": rng.normal(size=n_ref),
                        "c": rng.choice(list("abc"), n_ref, p=[.5, .3, .2]),
                        "flag": rng.choice(["yes", "no"], n_ref)})
    prod = pd.DataFrame({"x": rng.normal(shift, 1, n_prod),
                         "c": rng.choice(list("abc"), n_prod, p=[.5, .3, .2]),
                         "flag": rng.choice(["yes", "no"], n_prod)})
    return ref, prod


def test_table_uses_defaults_and_scipy_values():
    ref, prod = _frames(shift=0.5)
    table = drift_table(ref, prod, {"x": "numeric", "c": "categorical", "flag": "categorical"})
    row = table.set_index("feature")
    assert row.loc["x", "test"] == "wasserstein"
    assert row.loc["x", "statistic"] == pytest.approx(
        sps.wasserstein_distance(ref.x, prod.x) / np.std(ref.x))
    assert row.loc["x", "drifted"]
    assert row.loc["c", "test"] == "jensenshannon"
    p = ref.c.value_counts(normalize=True).reindex(list("abc")).to_numpy()
    q = prod.c.value_counts(normalize=True).reindex(list("abc")).to_numpy()
    assert row.loc["c", "statistic"] == pytest.approx(jensenshannon(p, q), abs=1e-12)
    assert not row.loc["c", "drifted"]
    assert row.loc["c", "p_value"] is None or np.isnan(row.loc["c", "p_value"])


def test_small_reference_uses_ks_and_z():
    ref, prod = _frames(n_ref=800, n_prod=700, shift=0.3)
    table = drift_table(ref, prod, {"x": "numeric", "flag": "categorical"}).set_index("feature")
    assert table.loc["x", "test"] == "ks"
    ks = sps.ks_2samp(ref.x, prod.x)
    assert table.loc["x", "statistic"] == pytest.approx(ks.statistic)
    assert table.loc["x", "p_value"] == pytest.approx(ks.pvalue)
    assert table.loc["x", "drifted"] == (ks.pvalue < 0.05)
    assert table.loc["flag", "test"] == "z"


@pytest.mark.parametrize("test", list(TESTS))
def test_every_test_can_be_forced_and_verdict_follows_threshold(test):
    ref, prod = _frames(shift=1.0)
    row = feature_drift(ref.x, prod.x, "numeric", test=test, name="x")
    if test == "z":
        assert row.statistic is None and "binary" in row.note
        return
    spec = TESTS[test]
    if spec.uses_p_value:
        assert row.drifted == (row.p_value < spec.threshold)
    else:
        assert row.drifted == (row.statistic >= spec.threshold)
    assert row.drifted  # a one-sd shift is drift for every test


def test_threshold_override():
    ref, prod = _frames(shift=0.05)
    loose = feature_drift(ref.x, prod.x, "numeric", test="wasserstein", threshold=0.5)
    tight = feature_drift(ref.x, prod.x, "numeric", test="wasserstein", threshold=0.001)
    assert loose.threshold == 0.5 and not loose.drifted and tight.drifted


def test_ks_on_categorical_is_reported_not_applicable():
    ref, prod = _frames()
    row = feature_drift(ref.c, prod.c, "categorical", test="ks")
    assert row.drifted is None and "does not apply" in row.note


def test_edge_cases_constant_all_nan_single_category():
    n = 1500
    ref = pd.DataFrame({"const": [3.0] * n, "nan": [np.nan] * n, "one": ["x"] * n})
    prod = pd.DataFrame({"const": [3.0] * n, "nan": [np.nan] * n, "one": ["x"] * n})
    table = drift_table(ref, prod, {"const": "numeric", "nan": "numeric", "one": "categorical"})
    row = table.set_index("feature")
    assert row.loc["const", "statistic"] == 0.0 and not row.loc["const", "drifted"]
    assert row.loc["nan", "drifted"] is None and "reference has no" in row.loc["nan", "note"]
    assert row.loc["one", "statistic"] == 0.0 and not row.loc["one", "drifted"]


def test_production_all_missing_is_flagged():
    ref = pd.Series(np.arange(2000, dtype=float))
    prod = pd.Series([np.nan] * 100)
    row = feature_drift(ref, prod, "numeric")
    assert row.drifted and "all missing" in row.note
    # PSI on our bins sees the missing bin: 100% missing is a large PSI
    psi = feature_drift(ref, prod, "numeric", test="psi")
    assert psi.drifted and psi.statistic > 5


def test_empty_production_window_raises_clear_error():
    ref, prod = _frames()
    with pytest.raises(EmptySampleError, match="production window has no rows"):
        drift_table(ref, prod.iloc[:0], {"x": "numeric"})


def test_infer_kind():
    assert infer_kind(pd.Series([1, 2])) == "numeric"
    assert infer_kind(pd.Series([1.5, None])) == "numeric"
    assert infer_kind(pd.Series([True, False])) == "categorical"
    assert infer_kind(pd.Series(["a", "b"])) == "categorical"


def test_unknown_test_and_binning_rejected():
    ref, prod = _frames()
    with pytest.raises(ValueError, match="unknown test"):
        feature_drift(ref.x, prod.x, "numeric", test="nope")
    with pytest.raises(ValueError, match="binning"):
        feature_drift(ref.x, prod.x, "numeric", binning="nope")


def test_infinite_values_count_as_missing():
    rng = np.random.default_rng(4)
    ref = pd.Series(rng.normal(size=2000))
    prod = pd.Series(rng.normal(size=1000))
    with_inf = pd.concat([prod, pd.Series([np.inf, -np.inf])], ignore_index=True)
    assert feature_drift(ref, with_inf, "numeric").statistic == pytest.approx(
        feature_drift(ref, prod, "numeric").statistic)
    assert feature_drift(ref, with_inf, "numeric").n_production == 1000


def test_evidently_binning_uses_evidentlys_chisquare():
    ref = pd.Series(list("aab") * 100)
    prod = pd.Series(list("abb") * 50)
    ours = feature_drift(ref, prod, "categorical", test="chisquare")
    theirs = feature_drift(ref, prod, "categorical", test="chisquare", binning="evidently")
    gof = sps.chisquare([50, 100], [150 * 2 / 3, 150 / 3])
    assert theirs.statistic == pytest.approx(gof.statistic)
    assert theirs.p_value == pytest.approx(gof.pvalue)
    homogeneity = sps.chi2_contingency([[200, 100], [50, 100]], correction=False)
    assert ours.statistic == pytest.approx(homogeneity.statistic)
