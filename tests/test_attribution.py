"""Data drift versus concept drift: the statistics, the closed-form case, four generated
cases with a known answer, and the demo's ground truth."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import log_loss, mean_absolute_error, roc_auc_score

from analysis import attribution as at
from analysis.binning import bins_for
from analysis import stats
from generators import DRIFT_WEEK, GROUPS, LinearShift, make_case
from small_upload import diabetes_frames


# --------------------------------------------------------------------------- statistics

def test_holm_matches_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    expected = [0.03, 0.06, 0.06, 0.02, np.nan]
    np.testing.assert_allclose(at.holm(p), expected, equal_nan=True)
    assert np.isnan(at.holm([np.nan])).all()
    assert at.holm([0.9, 0.8])[0] == 1.0          # capped at 1


def test_effective_sample_size_and_weighted_mean():
    w = np.array([1.0, 1.0, 2.0, 4.0])
    assert at.effective_sample_size(w) == pytest.approx(64 / 22)
    assert at.effective_sample_size(np.ones(7)) == pytest.approx(7)
    v = np.array([1.0, 2.0, 3.0, 4.0])
    reps = np.array([[1, 1, 1, 1], [2, 0, 1, 0]], dtype=float)
    point, rep = at.weighted_mean(v, w, reps)
    assert point == pytest.approx((1 + 2 + 6 + 16) / 8)
    assert rep[0] == pytest.approx(point)
    assert rep[1] == pytest.approx((2 * 1 * 1 + 2 * 3) / (2 + 2))


def test_weighted_means_equal_one_weighted_mean_at_a_time():
    """One product of the counts for several means, a weights array shared by two of
    them, gives what each :func:`weighted_mean` gives alone."""
    from analysis.attribution.estimates import weighted_means
    rng = np.random.default_rng(5)
    n = 300
    reps = rng.poisson(1.0, (50, n)).astype(float)
    v1, v2 = rng.normal(size=n), rng.exponential(size=n)
    w, u = rng.uniform(0, 3, n), np.ones(n)
    pairs = [(v1, w), (v2, w), (v1, u), (v2 * v1, u)]
    for (point, rep), (values, weights) in zip(at.weighted_means(pairs, reps), pairs):
        expected_point, expected_rep = at.weighted_mean(values, weights, reps)
        assert point == pytest.approx(expected_point, rel=1e-12)
        np.testing.assert_allclose(rep, expected_rep, rtol=1e-12)
    # hand-computed on the small case above
    v = np.array([1.0, 2.0, 3.0, 4.0])
    small = np.array([[1, 1, 1, 1], [2, 0, 1, 0]], dtype=float)
    [(point, rep)] = weighted_means([(v, np.array([1.0, 1.0, 2.0, 4.0]))], small)
    assert point == pytest.approx(25 / 8) and rep[1] == pytest.approx(8 / 4)


def test_row_replicates_multiply_as_the_gathered_counts_do():
    from analysis.attribution.samples import RowReplicates
    rng = np.random.default_rng(6)
    counts = rng.poisson(1.0, (3000, 40)).astype(np.uint8)
    columns = rng.normal(size=(1300, 3))
    for rows in (rng.choice(3000, 1300, replace=False), np.arange(5, 1305)):
        expected = counts[rows].astype(float).T @ columns       # 1300 rows: 3 blocks
        np.testing.assert_allclose(RowReplicates(counts, rows) @ columns, expected,
                                   rtol=1e-12)
    assert (RowReplicates(counts, np.arange(0)) @ np.zeros((0, 2))).shape == (40, 2)


def test_loss_levels_equal_pandas_group_means():
    """The full-table levels a cell's decomposition is anchored to: the mean absolute
    error of a reference group and of a window x group of production, missing labels
    left out, a group absent from a window NaN."""
    from analysis.attribution.encoding import GroupCodes
    from analysis.attribution.estimates import _LossLevels
    rng = np.random.default_rng(12)

    def frame(n):
        y = rng.normal(10, 2, n)
        y[rng.random(n) < 0.1] = np.nan
        return pd.DataFrame({"y": y, "yhat": rng.normal(10, 2, n),
                             "g": pd.Categorical(rng.choice(["a", "b", "c"], n))})

    reference, production = frame(500), frame(900)
    window = np.r_[np.zeros(100, int), rng.integers(-1, 3, 800)]   # -1: no timestamp
    production.loc[:99, "g"] = "c"
    production.loc[(window == 2).nonzero()[0], "g"] = "a"          # window 2: only a
    p = at.Problem({"x": "numeric"}, "y", "yhat", None, "g", "regression", "mae")
    levels = _LossLevels(reference, production, p, GroupCodes.of(production, "g"), window, 3)
    ref_err = (reference.y - reference.yhat).abs()
    prod_err = (production.y - production.yhat).abs()
    for w in range(3):
        for g in ("a", "b", "c", at.ALL):
            in_ref = reference.g == g if g != at.ALL else np.ones(500, bool)
            in_win = (window == w) & ((production.g == g) if g != at.ALL else True)
            ref_level, win_level = levels.of(g, g, w)
            assert ref_level == pytest.approx(ref_err[in_ref].mean(), rel=1e-12)
            if in_win.sum() == 0:
                assert math.isnan(win_level)
            else:
                assert win_level == pytest.approx(prod_err[in_win].mean(), rel=1e-12)
    assert math.isnan(levels.of("zzz", "zzz", 0)[0])


def test_row_losses_match_sklearn():
    y = pd.Series([100.0, 200.0, 0.0, 50.0])
    pred = pd.Series([110.0, 180.0, 5.0, 50.0])
    mae = at.row_losses(y, pred, "mae")
    assert mae.mean() == pytest.approx(mean_absolute_error(y, pred))
    rmse = at.metric_level(at.row_losses(y, pred, "rmse").mean(), "rmse")
    assert rmse == pytest.approx(math.sqrt(((y - pred) ** 2).mean()))
    mape = at.row_losses(y, pred, "mape")
    assert np.isnan(mape[2])                       # y = 0: undefined
    assert np.nanmean(mape) == pytest.approx((10 + 10 + 0) / 3)

    labels = pd.Series(["yes", "no", "yes", "no", None])
    proba = pd.Series([0.9, 0.2, 0.4, 0.7, 0.5])
    ll = at.row_losses(labels, proba, "logloss", positive="yes")
    assert np.isnan(ll[4])
    assert np.nanmean(ll) == pytest.approx(log_loss(labels[:4] == "yes", proba[:4]))
    acc = at.row_losses(pd.Series([1, 0, 1]), pd.Series([1.0, 1.0, 1.0]), "accuracy")
    assert at.metric_level(acc.mean(), "accuracy") == pytest.approx(2 / 3)
    from_proba = at.row_losses(labels[:4], proba[:4], "accuracy", positive="yes")
    assert from_proba.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_auc_test_equals_roc_auc_and_mann_whitney():
    rng = np.random.default_rng(0)
    score = np.r_[rng.normal(0.3, 1, 400), rng.normal(0, 1, 600)]
    is_w = np.r_[np.ones(400, bool), np.zeros(600, bool)]
    auc, p = at.auc_test(score, is_w, np.zeros(1000, int))
    assert auc == pytest.approx(roc_auc_score(is_w, score))
    assert p == pytest.approx(sps.mannwhitneyu(score[is_w], score[~is_w],
                                               alternative="greater").pvalue, rel=1e-6)
    # two folds: the mean of the folds' AUCs, Stouffer-combined p-value
    fold = np.arange(1000) % 2
    auc2, p2 = at.auc_test(score, is_w, fold)
    parts = [roc_auc_score(is_w[fold == k], score[fold == k]) for k in (0, 1)]
    assert auc2 == pytest.approx(np.mean(parts))
    zs = [sps.norm.isf(sps.mannwhitneyu(score[(fold == k) & is_w], score[(fold == k) & ~is_w],
                                        alternative="greater").pvalue) for k in (0, 1)]
    assert p2 == pytest.approx(sps.norm.sf(sum(zs) / math.sqrt(2)), rel=1e-6)


def test_feature_test_uses_frozen_bins():
    rng = np.random.default_rng(1)
    ref, win = pd.Series(rng.normal(0, 1, 3000)), pd.Series(rng.normal(0.5, 1, 2000))
    bins = bins_for(ref, "numeric")
    out = at.feature_test(ref, win, "numeric", bins)
    assert out["psi"] == pytest.approx(stats.psi(bins.counts(ref), bins.counts(win)))
    _, p_chi = stats.chisquare_homogeneity(bins.counts(ref), bins.counts(win))
    p_ks = sps.ks_2samp(ref, win, method="asymp").pvalue
    assert out["p_value"] == pytest.approx(min(1.0, 2 * min(p_chi, p_ks)))


def test_segment_prior_adjustment_of_pi():
    # r_s = r * p(s) / q(s): a quarter of the reference rows and half the window rows
    # are in the segment, so the segment's density ratio is half the pooled one
    pi = np.array([0.5, 0.8, 0.5, 0.8, 0.6, 0.6, 0.9, 0.9])
    domain = at.DomainFit(pi, pi, np.zeros(8, int))
    in_ref = np.array([True, False, False, False])
    in_win = np.array([True, True, False, False])
    pr, pw = at._cell_pi(domain, 4, in_ref, in_win, True)
    r = 0.5 / 0.5 * 0.5
    assert pr[0] == pytest.approx(r / (1 + r))
    r = 0.6 / 0.4 * 0.5
    assert pw[0] == pytest.approx(r / (1 + r))


def test_choose_unit_gives_8_to_30_windows_when_rows_allow():
    def span(days, per_hour):
        return pd.date_range("2025-01-01", periods=int(days * 24 * per_hour),
                             freq=f"{60 / per_hour:g}min")

    assert at.choose_unit(span(365, 1)) == "month"
    assert at.choose_unit(span(70, 1)) == "week"
    assert at.choose_unit(span(20, 10)) == "day"
    assert at.choose_unit(span(0.75, 200)) == "hour"
    assert at.choose_unit(span(365, 1), "day") == "day"
    with pytest.raises(at.AttributionError, match="unknown window"):
        at.choose_unit(span(3, 1), "fortnight")


def test_choose_unit_picks_windows_the_rows_can_support():
    # 200 rows over 13 weeks: weeks would hold ~15 rows (too few to judge), months ~65
    stamps = pd.date_range("2025-04-01", periods=200, freq="11h")
    sizes = at.cell_sizes(stamps)
    assert sizes["week"]["window_rows"] < at.MIN_ROWS <= sizes["month"]["window_rows"]
    assert at.choose_unit(stamps) == "month"
    # with groups, a unit whose group cells are big enough wins over a finer one
    rng = np.random.default_rng(0)
    dense = pd.date_range("2025-01-01", periods=1680, freq="1h")   # 70 days
    groups = rng.choice(list("abcd"), len(dense))
    assert at.cell_sizes(dense, groups)["week"]["cell_rows"] < at.CELL_ROWS
    assert at.choose_unit(dense, segments=groups) == "month"
    assert at.choose_unit(dense) == "week"
    # fewer than MIN_ROWS in even the median month: one window over everything
    assert at.choose_unit(pd.date_range("2025-01-01", periods=120, freq="36h")) is None


def test_window_numbers_follow_window_start():
    from analysis.calendar_windows import window_numbers, window_start
    rng = np.random.default_rng(9)
    # before and after 1970, around month and year ends, every weekday
    ts = (np.datetime64("1969-11-20T00:00", "us")
          + rng.integers(0, 60 * 366 * 86_400, 5000) * np.timedelta64(1_000_000, "us"))
    for unit in ("hour", "day", "week", "month"):
        numbers, starts = window_numbers(ts, unit), window_start(ts, unit)
        order = np.argsort(numbers, kind="stable")
        # equal numbers exactly when equal starts, and in the same order
        assert np.array_equal(np.diff(numbers[order]) > 0, np.diff(starts[order]) > np.timedelta64(0))
        assert (np.diff(starts[order]) >= np.timedelta64(0)).all()


def test_cell_sizes_equal_pandas_value_counts():
    # hours over ten years (the sparse path: unique) and a few weeks (the dense path:
    # bincount), with missing timestamps and a group per row
    rng = np.random.default_rng(4)
    for span_hours in (87_600, 500):
        stamps = pd.Series(pd.Timestamp("2020-01-01")
                           + pd.to_timedelta(rng.integers(0, span_hours, 3000), unit="h"))
        stamps[rng.random(3000) < 0.05] = pd.NaT
        groups = rng.choice(["a", "b", "c"], 3000)
        sizes = at.cell_sizes(stamps, groups)
        ok = stamps.notna()
        for unit, freq in (("hour", "h"), ("day", "D"), ("month", "M")):
            starts = stamps[ok].dt.to_period(freq).dt.start_time
            windows = starts.value_counts()
            cells = pd.DataFrame({"w": starts, "g": groups[ok.to_numpy()]}).value_counts()
            assert sizes[unit] == {"windows": len(windows),
                                   "window_rows": float(windows.median()),
                                   "cell_rows": float(cells.median())}
        weeks = stamps[ok].dt.to_period("W-SUN").dt.start_time.value_counts()   # from Monday
        assert sizes["week"]["windows"] == len(weeks)
        assert sizes["week"]["window_rows"] == float(weeks.median())


def test_group_codes_name_each_row_as_segments_of_does():
    """A categorical column is coded through its categories: the same labels as
    :func:`segments_of` (missing read as "(missing)", 1 and "1" as one group), and a
    group's rows selected by its code."""
    from analysis.attribution.encoding import GroupCodes, segments_of
    values = pd.Series(["b", None, "a", "b", 1, "1", None], dtype=object)
    for column in (values, values.astype("category")):
        frame = pd.DataFrame({"g": column})
        groups = GroupCodes.of(frame, "g")
        labels = segments_of(frame, "g")
        assert [groups.names[c] for c in groups.codes] == list(labels)
        assert sorted(groups.names) == ["(missing)", "1", "a", "b"]
        for name in ("b", "(missing)", "1", "zzz"):
            np.testing.assert_array_equal(groups.member(name), labels == name)
        assert groups.code("zzz") == -1
        np.testing.assert_array_equal(groups.member("b", np.array([0, 2, 3])), [True, False, True])
        assert groups.member(at.ALL).all()
    assert list(GroupCodes.of(pd.DataFrame({"x": [1, 2]}), None).member(at.ALL)) == [True, True]


def test_windows_are_numbered_in_time_order_with_their_starts():
    from analysis.attribution.windows import assign_windows
    from analysis.calendar_windows import window_start
    rng = np.random.default_rng(8)
    stamps = pd.Series(pd.Timestamp("2024-12-20") + pd.to_timedelta(rng.integers(0, 80 * 24, 5000), unit="h"))
    stamps[rng.random(5000) < 0.03] = pd.NaT
    frame = pd.DataFrame({"ts": stamps})
    for unit in ("day", "week", "month"):
        windows = assign_windows(frame, "ts", None, None, unit, [])
        ok = stamps.notna().to_numpy()
        starts = window_start(stamps[ok].to_numpy(dtype="datetime64[us]"), unit)
        np.testing.assert_array_equal(windows.starts, np.unique(starts))
        np.testing.assert_array_equal(windows.starts[windows.of[ok]], starts)
        assert (windows.of[~ok] == -1).all()


def test_task_and_prediction_kind():
    assert at.infer_task(pd.Series([1.5, 2.0, 3.2])) == "regression"
    assert at.infer_task(pd.Series([0, 1, 1, 0])) == "classification"
    assert at.infer_task(pd.Series(["cat", "dog"])) == "classification"
    assert at.infer_task(pd.Series([1, 2, 3, 2]), pd.Series([1, 3, 3, 2])) == "classification"
    assert at.infer_task(pd.Series([1, 2, 3, 2]), pd.Series([1.2, 2.9, 3.1, 2.2])) == "regression"
    assert at.prediction_kind(pd.Series(["no", "yes"]), pd.Series([0.2, 0.9])) == ("probability", "yes")
    assert at.prediction_kind(pd.Series([0, 1]), pd.Series([0, 1])) == ("label", None)
    assert at.prediction_kind(pd.Series([0, 1]), pd.Series([0.3, 1.0])) == ("probability", "1")
    assert at.prediction_kind(pd.Series([True, False]), pd.Series([0.3, 0.6])) == ("probability", "True")


def test_label_text_matches_labels_across_dtypes():
    assert list(at.label_text(pd.Series([1, 0]))) == ["1", "0"]
    assert list(at.label_text(pd.Series([1.0, np.nan, 0.5]))) == ["1", None, "0.5"]
    assert list(at.label_text(pd.Series(["1", None, "b"]))) == ["1", None, "b"]
    assert list(at.label_text(pd.Series([True, 1.0, "x"], dtype=object))) == ["True", "1", "x"]
    # a float target (some labels missing) still matches the integer classes
    y = pd.Series([1.0, 0.0, np.nan])
    loss = at.row_losses(y, pd.Series([0.8, 0.1, 0.5]), "logloss", positive="1")
    np.testing.assert_allclose(loss[:2], [-np.log(0.8), -np.log(0.9)])


def test_describe_path_merges_bounds_and_levels():
    path = [("x", "le", 3.5), ("g = a", "gt", 0.5), ("x", "le", 2.0), ("x", "gt", 1.0)]
    assert at.describe_path(path) == "1 < x <= 2 and g = a"
    assert at.describe_path([("g = a", "le", 0.5), ("g = b", "le", 0.5)]) == "g not in {a, b}"


def test_looks_like_id():
    ids = pd.Series(np.arange(100))
    assert at.looks_like_id(ids, pd.Series(np.arange(100, 200)))
    assert not at.looks_like_id(pd.Series(np.arange(100) % 7), pd.Series(np.arange(100) % 7))
    assert not at.looks_like_id(pd.Series(np.linspace(0, 1, 100)), pd.Series(np.linspace(0, 1, 100)))
    repeated = pd.Series(np.arange(100) % 9, name="customer_id")
    assert at.looks_like_id(repeated, repeated)          # by its name
    assert not at.looks_like_id(pd.Series(np.arange(100) % 9, name="paid"),
                                pd.Series(np.arange(100) % 9, name="paid"))


# --------------------------------------------------------------------------- closed form

def test_linear_shift_decomposition_matches_closed_form():
    """y = 2x + e (sigma 1), the model predicts 1.5x; production x ~ N(1, 1) and slope 2.5.
    The MSE levels are known in closed form (see generators.LinearShift)."""
    case = LinearShift()
    ref, prod = case.tables()
    problem, _ = at.problem_from_frames(ref, prod, target="y", prediction="prediction",
                                        metric="rmse")
    result = at.investigate(ref, prod, problem).to_dict()
    truth = case.mse()
    d = result["decomposition"]
    mse = lambda v: v ** 2  # noqa: E731
    assert mse(d["reference"]["value"]) == pytest.approx(truth["reference"], rel=0.03)
    assert mse(d["realized"]["value"]) == pytest.approx(truth["realized"], rel=0.03)
    assert mse(d["importance_weighting"]["expected"]["value"]) == pytest.approx(
        truth["expected_iw"], rel=0.03)
    # the headline keeps window rows outside the reference's support (here x > 3.5: 0.6%)
    # as data drift; otherwise it is importance weighting
    assert mse(d["expected"]["value"]) == pytest.approx(truth["expected_iw"], rel=0.05)
    shared = d["shared_region"]
    s_ref = d["reference"]["value"] + shared["shift_into_shared"]["value"]
    s_prod = d["realized"]["value"] - shared["shift_out_of_shared"]["value"]
    assert mse(s_ref) == pytest.approx(truth["shared_reference"], rel=0.03)
    assert mse(s_prod) == pytest.approx(truth["shared_production"], rel=0.03)
    # the parts add up, and the intervals hold their estimates
    assert d["data_part"]["value"] + d["concept_part"]["value"] == pytest.approx(
        d["realized"]["value"] - d["reference"]["value"])
    for part in ("data_part", "concept_part"):
        assert d[part]["low"] <= d[part]["value"] <= d[part]["high"]
    assert result["verdict"] == "both"
    cell = result["cells"][0]
    assert cell["segment"] == "all" and cell["start"] is None
    # N(0,1) vs N(1,1): AUC = Phi(1 / sqrt 2) = 0.760
    assert cell["data"]["auc"] == pytest.approx(sps.norm.cdf(1 / math.sqrt(2)), abs=0.02)


# --------------------------------------------------------------------------- generated cases

def _run(case, **kw):
    prod = case.production.copy()
    problem, notes = at.problem_from_frames(case.reference, prod, target="y",
                                            prediction="prediction", segment="region", **kw)
    return at.investigate(case.reference, prod, problem).to_dict()


def _check_cells(result, case, expected: str):
    """The affected group's cells from the drift start carry ``expected``; every other
    group's cells and every cell before the drift are ``none``."""
    seen = 0
    for cell in result["cells"]:
        start = pd.Timestamp(cell["start"])
        drifted = start >= case.drift_start and cell["segment"] in (case.group, "all")
        where = f"{cell['segment']} {cell['start']}"
        if not drifted:
            assert cell["verdict"] == "none", where
        elif cell["segment"] == case.group:
            assert cell["verdict"] == expected, where
            seen += 1
    assert seen == 10 - DRIFT_WEEK


@pytest.fixture(scope="module")
def cases():
    return {kind: make_case(kind, seed=7) for kind in ("none", "covariate", "concept", "both")}


def test_no_drift_gives_none_everywhere(cases):
    result = _run(cases["none"])
    assert result["verdict"] == "none"
    assert {c["verdict"] for c in result["cells"]} == {"none"}
    assert len(result["cells"]) == 10 * (1 + len(GROUPS))
    assert result["drifted_features"] == [] and result["concept_features"] == []
    # the model's reference predictions are in-sample (a random forest): noticed, not
    # mistaken for concept drift
    assert any("look in-sample" in n for n in result["notes"])


def test_covariate_shift_is_data_not_concept(cases):
    case = cases["covariate"]
    result = _run(case)
    assert result["verdict"] == "data"
    _check_cells(result, case, "data")
    names = [f["feature"] for f in result["drifted_features"]]
    assert set(names) == set(case.data_features)
    roles = {f["feature"]: f["role"] for f in result["drifted_features"]}
    assert roles["x1"] == "root cause" and roles["x4"] == "moved with others"
    assert names.index("x4") > names.index("x1")
    assert result["concept_features"] == []


def test_concept_change_is_concept_not_data(cases):
    case = cases["concept"]
    result = _run(case)
    assert result["verdict"] == "concept"
    _check_cells(result, case, "concept")
    assert result["drifted_features"] == []
    assert result["concept_features"][0]["feature"] == case.concept_feature
    d = result["decomposition"]
    assert d["concept_part"]["low"] > 0
    assert abs(d["data_part"]["value"]) < 0.1 * d["concept_part"]["value"]
    south = [c for c in result["cells"] if c["segment"] == "south" and c["verdict"] == "concept"]
    assert all("x1" in c["concept"]["where"] for c in south)


def test_both_drifts_are_found(cases):
    case = cases["both"]
    result = _run(case)
    assert result["verdict"] == "both"
    _check_cells(result, case, "both")
    assert [f["feature"] for f in result["drifted_features"]] == ["x2"]
    assert result["concept_features"][0]["feature"] == "x1"


def test_classification_no_drift_and_concept():
    none = _run(make_case("none", seed=3, task="classification"))
    assert none["task"] == "classification" and none["metric"] == "logloss"
    assert {c["verdict"] for c in none["cells"]} == {"none"}
    case = make_case("concept", seed=3, task="classification", weekly_rows=3000)
    result = _run(case)
    assert result["verdict"] == "concept"
    for cell in result["cells"]:
        if pd.Timestamp(cell["start"]) < case.drift_start or cell["segment"] not in ("south", "all"):
            assert cell["verdict"] == "none"
    accuracy = _run(case, metric="accuracy")
    assert accuracy["metric"] == "accuracy"
    assert 0.5 < accuracy["decomposition"]["reference"]["value"] < 1.0


def test_without_labels_only_data_is_judged(cases):
    case = cases["covariate"]
    prod = case.production.drop(columns=["y", "prediction"])
    problem, _ = at.problem_from_frames(case.reference.drop(columns=["y", "prediction"]), prod,
                                        segment="region")
    result = at.investigate(case.reference, prod, problem).to_dict()
    assert result["verdict"] == "data"
    judged = result["judged"]
    assert (judged["data"], judged["concept"], judged["decomposition"]) == (True, False, False)
    assert judged["reasons"]["concept"] == "no target column"
    assert judged["cells"] == judged["total_cells"] > 0
    assert result["decomposition"] is None
    assert any("not judged" in n for n in result["notes"])
    assert {c["verdict"] for c in result["cells"]} <= {"none", "data"}


# --------------------------------------------------------------------------- small data

def _diabetes(unit: str, shift: bool = True) -> dict:
    ref, prod = diabetes_frames(1, shifted=shift)
    problem, _ = at.problem_from_frames(ref, prod.copy(), target="target",
                                        prediction="prediction", timestamp="ts")
    return at.investigate(ref, prod, problem, unit=unit).to_dict()


def test_small_upload_in_weeks_is_not_judged_and_says_what_to_do():
    # 200 production rows: weeks hold about 17 rows, fewer than MIN_ROWS
    result = _diabetes("week")
    assert result["verdict"] == "not_judged"
    assert {c["verdict"] for c in result["cells"]} == {"not_judged"}
    judged = result["judged"]
    assert not judged["data"] and not judged["concept"] and judged["cells"] == 0
    assert "fewer than 50 rows" in judged["reasons"]["data"]
    assert "choose a coarser window: a month holds a median" in judged["reasons"]["data"]
    summary = result["summary"]
    assert summary.startswith("Not judged:") and "No drift" not in summary
    assert "nor, (not judged)" not in summary
    # the note names the windows left out
    note = next(n for n in result["notes"] if "cells not judged" in n)
    assert note.startswith(f"{len(result['cells'])} of {len(result['cells'])} cells")
    assert "2025-03-31 all groups (" in note     # the first week starts on Monday


def test_small_upload_auto_window_judges_and_finds_the_two_shifted_features():
    result = _diabetes("auto")
    assert result["window"] == "month"                 # not weeks of 17 rows
    assert result["judged"]["data"] and result["verdict"] in ("data", "both")
    # April to June are judged; July's last rows are too few, and a note says so
    assert [c["verdict"] != "not_judged" for c in result["cells"]] == [True, True, True, False]
    assert any(n.startswith("1 of 4 cells not judged") and "2025-07-01" in n
               for n in result["notes"])
    assert {f["feature"] for f in result["drifted_features"]} == {"bmi", "s5"}
    assert any(n.startswith("window: month (auto") for n in result["notes"])


def test_small_upload_without_drift_is_none_and_judged():
    result = _diabetes("auto", shift=False)
    assert result["verdict"] == "none" and result["judged"]["data"]
    assert result["summary"].startswith("No drift found")
    assert result["drifted_features"] == []


def test_too_few_rows_for_any_calendar_window_is_one_window():
    ref, prod = diabetes_frames(1, shifted=True)
    prod = prod.iloc[:120].copy()
    prod["ts"] = pd.date_range("2025-04-01", periods=120, freq="36h")   # ~20 a month
    problem, _ = at.problem_from_frames(ref, prod.copy(), target="target",
                                        prediction="prediction", timestamp="ts")
    result = at.investigate(ref, prod, problem).to_dict()
    assert result["window"] is None
    assert [c["start"] for c in result["cells"]] == [None]
    assert result["judged"]["data"] and "bmi" in {f["feature"] for f in result["drifted_features"]}
    assert any("judged as one window over the whole production period" in n
               for n in result["notes"])


def test_perfect_reference_levels_are_flagged_as_in_sample():
    assert at._perfect(1.0, "accuracy") and not at._perfect(0.98, "accuracy")
    assert at._perfect(0.0, "mae") and not at._perfect(0.1, "mae")
    assert not at._perfect(None, "mae") and not at._perfect(math.nan, "accuracy")


def test_verdict_text_names_every_drifted_feature():
    features = [{"feature": f"f{i}", "role": "moved with others"} for i in range(6)]
    assert at._names(features) == "f0, f1, f2, f3, f4, f5"
    many = [{"feature": f"f{i}"} for i in range(11)]
    assert at._names(many) == "f0, f1, f2, f3, f4, f5, f6, f7 and 3 more"


# --------------------------------------------------------------------------- the demo

@pytest.fixture(scope="module")
def demo_result(demo_store):
    from analysis import queries
    from analysis.scenarios import rental

    roles = rental.roles()
    ref = queries.load_frame(demo_store, "rental_pricing", "reference", roles.columns)
    prod = queries.load_frame(demo_store, "rental_pricing", "production", roles.columns)
    problem = at.Problem(roles.features, roles.target, roles.prediction, roles.timestamp,
                         roles.segments[0], "regression", "mape")
    return at.investigate(ref, prod, problem).to_dict()


def test_demo_ground_truth(demo_result, ground_truth):
    gt = ground_truth
    r = demo_result
    assert r["verdict"] == "both" and r["window"] == "month"
    data_from, concept_from = gt["data_drift"]["from_month"], gt["concept_drift"]["from_month"]
    for cell in r["cells"]:
        month, seg = pd.Timestamp(cell["start"]).month, cell["segment"]
        data = month >= data_from and seg in gt["data_drift"]["segments"] + ["all"]
        concept = month >= concept_from and seg in gt["concept_drift"]["segments"] + ["all"]
        expected = "both" if data and concept else "data" if data else \
            "concept" if concept else "none"
        assert cell["verdict"] == expected, f"{seg} month {month}"
    names = [f["feature"] for f in r["drifted_features"]]
    assert set(names) == set(gt["data_drift"]["features"])
    assert names[0] == gt["data_drift"]["root_cause"]
    assert r["drifted_features"][0]["role"] == "root cause"
    assert all(f["role"] == "moved with others" for f in r["drifted_features"][1:])
    assert r["concept_features"][0]["feature"] in gt["concept_drift"]["features"]
    # the error rise is attributed to concept, not data
    d = r["decomposition"]
    assert d["concept_part"]["low"] > 0
    assert d["concept_part"]["value"] > d["data_part"]["value"]
    # where the students' unseen listings lie outside the reference's support, it says so
    students = [c for c in r["cells"] if c["segment"] == "students"
                and pd.Timestamp(c["start"]).month >= data_from]
    assert all(c["data"]["out_of_support_share"] > 0.5 for c in students)
    assert "professionals" in r["summary"] and "neighborhood" in r["summary"]
    assert all(f["feature"] in r["summary"] for f in r["drifted_features"])


def test_demo_levels_are_the_other_pages_levels(demo_store, demo_investigation):
    """The decomposition's reference and realized errors are those of every row (what
    Overview shows), though the investigation works on samples."""
    from analysis import slices

    assert demo_investigation["reference_rows"] > at.SAMPLE_CAP   # the reference is sampled
    level = slices.reference_error(demo_store, "rental_pricing")["mae"]
    assert demo_investigation["decomposition"]["reference"]["value"] == \
        pytest.approx(level, rel=1e-12)
    months = slices.window_metrics(demo_store, "rental_pricing", "month")
    alls = [c for c in demo_investigation["cells"] if c["segment"] == "all"]
    assert min(c["rows"] for c in alls) > at.SAMPLE_CAP            # so are the windows
    np.testing.assert_allclose([c["decomposition"]["realized"]["value"] for c in alls],
                               months["mae"], rtol=1e-12)
    for c in alls:                           # parts still add up
        d = c["decomposition"]
        assert d["reference"]["value"] + d["data_part"]["value"] + d["concept_part"]["value"] \
            == pytest.approx(d["realized"]["value"], rel=1e-9)


def test_problem_from_frames_leaves_out_ids_partitions_and_predicted_labels():
    rng = np.random.default_rng(4)

    def table(n, period):
        d = pd.DataFrame({"id": np.arange(n), "period": period, "a": rng.normal(size=n),
                          "b": rng.choice(["x", "y"], n),
                          "when": pd.date_range("2024-01-01", periods=n, freq="h")})
        d["p"] = 1 / (1 + np.exp(-d["a"]))
        d["y"] = np.where(rng.random(n) < d["p"], "yes", "no")
        d["y_pred"] = np.where(d["p"] >= 0.5, "yes", "no")
        return d

    problem, notes = at.problem_from_frames(table(300, "reference"), table(300, "analysis"),
                                            target="y", prediction="p")
    assert problem.features == {"a": "numeric", "b": "categorical"}
    assert problem.timestamp == "when" and problem.task == "classification"
    assert problem.metric == "logloss" and problem.positive == "yes"
    text = " ".join(notes)
    for skipped in ("id (row identifier)", "period (constant within each file)",
                    "y_pred (the model's predicted label)"):
        assert skipped in text


def test_reference_bins_of_a_categorical_equal_those_of_its_labels():
    """A categorical column's bins come from its categories present (unused ones left
    out, 1 and "1" one level, missing not a level): the same bins as from its labels."""
    from analysis.attribution.engine import reference_bins
    from analysis.attribution.encoding import clean_values

    column = pd.Series(pd.Categorical([1, "1", "b", None, "a", "b"],
                                      categories=[1, "1", "a", "b", "unused"]))
    bins = reference_bins(column, "categorical")
    assert bins == bins_for(clean_values(column.astype(object), "categorical"), "categorical")
    assert bins.categories == ("1", "a", "b")
    numbers = pd.Series([1.0, np.inf, 2.0, np.nan, 3.0, 4.0])
    assert reference_bins(numbers, "numeric") == bins_for(pd.Series([1.0, 2.0, 3.0, 4.0]),
                                                           "numeric")


def test_two_sided_p_is_the_normal_approximation_with_the_bootstrap_se():
    """p = 2 (1 - Phi(|estimate| / SE)), SE the replicates' standard deviation (ddof 1)
    or the floor when larger; nan with fewer than 10 finite replicates."""
    reps = np.random.default_rng(3).normal(0.0, 0.4, 500)
    se = reps.std(ddof=1)
    assert at.two_sided_p(0.5, reps) == pytest.approx(2 * sps.norm.sf(0.5 / se), rel=1e-12)
    assert at.two_sided_p(-0.5, np.r_[reps, np.nan]) == pytest.approx(
        2 * sps.norm.sf(0.5 / se), rel=1e-12)
    assert at.two_sided_p(0.5, reps, se_floor=1.0) == pytest.approx(2 * sps.norm.sf(0.5), rel=1e-12)
    assert math.isnan(at.two_sided_p(0.5, reps[:9]))
    assert at.two_sided_p(0.5, np.zeros(20)) == 0.0 and at.two_sided_p(0.0, np.zeros(20)) == 1.0
