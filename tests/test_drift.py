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
    # a shift of 0.2 sd: beyond noise at these sizes (a 0.05 sd shift is within it, and a
    # distance within noise is not drift whatever the threshold)
    ref, prod = _frames(shift=0.2)
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


# -- issue #10: small samples, not judged, what the pages print --------------------------
from analysis import noise  # noqa: E402
from analysis.drift import (common_note, describe_row, describe_tests,  # noqa: E402
                            display_columns, display_table, holm_adjusted, ranked,
                            verdict_of)


def _no_drift_pair(n_ref, n_prod, seed):
    rng = np.random.default_rng(seed)
    return pd.Series(rng.normal(size=n_ref)), pd.Series(rng.normal(size=n_prod))


def test_small_samples_a_distance_within_noise_is_not_drift():
    # 240 vs 65 rows of one distribution: PSI on the reference deciles passes 0.1 by
    # chance alone (about 0.16 on average); the noise level says so
    values = [feature_drift(*_no_drift_pair(240, 65, seed), "numeric", test="psi")
              for seed in range(20)]
    assert np.mean([r.statistic >= 0.1 for r in values]) > 0.5
    assert not any(r.drifted for r in values)
    material = [r for r in values if r.statistic >= 0.1]
    assert all(r.noise_level > r.statistic and r.note == "within noise at these sizes"
               for r in material)
    # the same shift that small samples cannot tell from noise is drift at large sizes
    rng = np.random.default_rng(1)
    big = feature_drift(pd.Series(rng.normal(size=50_000)), pd.Series(rng.normal(0.4, 1, 20_000)),
                        "numeric", test="psi")
    assert big.drifted and big.noise_level < 0.01


@pytest.mark.parametrize("test", ["psi", "jensenshannon", "hellinger", "wasserstein"])
def test_distances_carry_their_noise_level(test):
    ref, prod = _no_drift_pair(3000, 400, 2)
    row = feature_drift(ref, prod, "numeric", test=test)
    assert row.noise_level is not None and 0 < row.noise_level < 0.5
    if test == "wasserstein":
        points, counts = noise.support_of(ref)
        expected = noise.wasserstein_noise_level(points, counts, 400, np.std(ref))
    else:
        from analysis.binning import quantile_bins
        expected = noise.binned_noise_level(test, quantile_bins(ref).counts(ref), 400)
    assert row.noise_level == pytest.approx(expected)
    assert feature_drift(ref, prod, "numeric", test="ks").noise_level is None


def test_fewer_than_min_rows_are_reported_not_judged():
    ref, prod = _no_drift_pair(500, 30, 3)
    for test in ("ks", "psi", "wasserstein"):
        row = feature_drift(ref, prod + 3, "numeric", test=test)  # a huge shift, 30 rows
        assert row.drifted is None and row.statistic is not None
        assert row.note == "not judged: 30 production rows (fewer than 50)"
    assert feature_drift(ref, prod + 3, "numeric", test="ks", min_rows=20).drifted
    small_ref = feature_drift(ref[:40], ref[40:], "numeric", test="ks")
    assert small_ref.drifted is None and "40 reference rows" in small_ref.note


def test_holm_adjusted_judges_all_windows_together():
    # three windows of two p-value tests and one distance
    tables = [pd.DataFrame({"feature": ["a", "b", "c"], "test": ["ks", "z", "wasserstein"],
                            "p_value": [p1, p2, None], "threshold": [0.05, 0.05, 0.1],
                            "drifted": [p1 < 0.05, p2 < 0.05, d], "statistic": [0.1, 1.0, 0.3]})
              for p1, p2, d in ((0.001, 0.04, True), (0.2, 0.011, False), (0.03, 0.5, True))]
    out = holm_adjusted(tables)
    # six p-values, sorted 0.001, 0.011, 0.03, 0.04, 0.2, 0.5: Holm multiplies by 6..1
    # and keeps them monotone: 0.006, 0.055, 0.12, 0.12, 0.4, 0.5
    adjusted = [p for t in out for p in t["p_adjusted"].iloc[:2]]
    assert adjusted == pytest.approx([0.006, 0.12, 0.4, 0.055, 0.12, 0.5])
    assert [t["drifted"].tolist() for t in out] == [[True, False, True], [False, False, False],
                                                    [False, False, True]]
    assert out[0]["p_adjusted"].isna().iloc[2]  # distances keep their own rule


def test_describe_tests_names_what_ran():
    text = describe_tests(["ks", "z", "ks"])
    assert text.startswith("Kolmogorov-Smirnov: drift when p < 0.05; two-proportion z-test")
    assert "Wasserstein" not in text and "noise level" not in text
    assert "Fewer than 50 rows on a side: not judged." in text
    text = describe_tests(["jensenshannon", "wasserstein"])
    assert "Wasserstein (normed): drift when ≥ 0.1 and above its noise level" in text
    assert "99.9th percentile" in text and "Kolmogorov" not in text


def test_display_table_prints_no_none_and_consistent_precision():
    ref = pd.DataFrame({"x": np.random.default_rng(4).normal(size=2000),
                        "flag": ["a", "b"] * 1000})
    prod = ref.iloc[:700].assign(x=lambda f: f.x + 1.0)
    table = ranked(pd.concat([drift_table(ref, prod, {"x": "numeric", "flag": "categorical"}),
                              drift_table(ref, prod, {"x": "numeric"}, test="ks")]))
    shown = display_table(table)
    text = " ".join(shown.astype(str).to_numpy().ravel())
    assert "None" not in text and "nan" not in text
    assert shown["test"].tolist() == ["wasserstein", "ks", "jensenshannon"]  # by statistic
    assert shown["p-value"].tolist() == ["—", "< 0.0001", "—"]
    assert all(len(s.split(".")[1]) == 4 for s in shown["statistic"])
    assert shown["drift when"].tolist() == ["≥ 0.1", "p < 0.05", "≥ 0.1"]
    assert shown["reference rows"].dtype.kind == "i"
    # only the columns that say something: no p-value without a test that has one
    assert "p-value" not in display_columns(table.iloc[[0, 2]])
    assert "noise level" not in display_columns(table.iloc[[1]])
    assert display_columns(table) == ["feature", "test label", "statistic", "noise level",
                                      "p-value", "drift when", "verdict", "reference rows",
                                      "production rows"]     # no note: none has one
    assert shown["test label"].tolist() == ["Wasserstein", "KS", "JS"]
    # p-values judged together: the adjusted one is shown and decides
    adjusted = holm_adjusted([table])[0]
    shown = display_table(adjusted)
    assert "adjusted p" in display_columns(adjusted)
    assert shown["adjusted p"].tolist() == ["—", "< 0.0001", "—"]
    assert shown["drift when"].tolist() == ["≥ 0.1", "adj. p < 0.05", "≥ 0.1"]


def test_a_note_every_row_shares_is_said_once():
    ref, prod = _no_drift_pair(500, 30, 8)
    table = drift_table(pd.DataFrame({"x": ref, "y": ref}), pd.DataFrame({"x": prod, "y": prod}),
                        {"x": "numeric", "y": "numeric"}, test="psi")
    assert common_note(table) == "not judged: 30 production rows (fewer than 50)"
    assert "note" not in display_columns(table)
    assert display_table(table)["note"].tolist() == ["30 production rows (fewer than 50)"] * 2
    table.loc[0, "note"] = "something else"
    assert common_note(table) == "" and "note" in display_columns(table)


def test_verdict_in_words_and_ranking():
    rows = pd.DataFrame({"test": ["psi", "psi", "ks", "psi"], "statistic": [0.3, 0.5, 0.2, 0.01],
                         "threshold": [0.1, 0.1, 0.05, 0.1], "drifted": [True, False, None, False],
                         "feature": list("abcd")})
    assert [verdict_of(r) for _, r in rows.iterrows()] == ["drift", "within noise",
                                                         "not judged", "stable"]
    assert ranked(rows)["feature"].tolist() == ["a", "b", "d", "c"]
    line = describe_row({"test": "ks", "statistic": 0.79, "p_value": 1e-7, "threshold": 0.05,
                         "drifted": None, "note": "not judged: 1 production row (fewer than 50)"})
    assert line == ("ks = 0.7900, p < 0.0001 (drift when p < 0.05) → not judged: "
                    "1 production row (fewer than 50).")
