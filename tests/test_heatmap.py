"""Heatmap statistics from engine aggregates against a plain per-cell pandas/scipy
computation on the same bins, binned KS/Wasserstein against the exact values, and the
demo's ground truth on the grid."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats as sps

from analysis import aggregate, heatmap, stats
from analysis.queries import Filters, load_frame

DATASET = "rental_pricing"


@pytest.fixture(scope="module")
def bins(demo_store):
    return aggregate.frozen_bins(demo_store, DATASET)


@pytest.fixture(scope="module")
def raw(demo_store):
    roles = demo_store.dataset(DATASET).roles
    cols = [roles.timestamp, *roles.segments, *roles.features]
    return (load_frame(demo_store, DATASET, "reference", cols),
            load_frame(demo_store, DATASET, "production", cols))


@pytest.fixture(scope="module")
def coarse(demo_store, bins):
    return heatmap.build_cube(demo_store, DATASET, "user_group", "coarse", "day", bins=bins)


def test_frozen_edges_are_numpy_quantiles_of_the_reference(bins, raw):
    ref, _ = raw
    for feature in ("area_sqm", "distance_to_center_km", "bedrooms"):
        values = ref[feature].to_numpy(float)
        assert bins.coarse[feature].edges == pytest.approx(
            tuple(np.unique(np.quantile(values, np.arange(1, 10) / 10))), rel=1e-12)
        anchors = np.unique(np.r_[values.min(), np.quantile(values, np.arange(1, 10) / 10),
                                  values.max()])
        assert np.allclose(bins.fine[feature].anchors, anchors, rtol=1e-12)
    assert set(bins.coarse["neighborhood"].categories) == set(ref["neighborhood"].unique())


@pytest.mark.parametrize("feature", ["area_sqm", "distance_to_center_km", "amenities_score",
                                     "bedrooms"])
def test_engine_bins_every_value_as_numpy_does(demo_store, bins, raw, feature):
    ref, prod = raw
    for slice_, frame, kind in (("reference", ref, "fine"), ("production", prod, "fine"),
                                ("production", prod, "coarse")):
        b = (bins.fine if kind == "fine" else bins.coarse)[feature]
        counts = aggregate.binned_counts(demo_store, DATASET, slice_, {feature: b})
        engine = np.zeros(aggregate.n_bins(b))
        np.add.at(engine, counts["bin"].to_numpy(), counts["n"].to_numpy())
        assert np.array_equal(engine, b.counts(frame[feature])), (slice_, kind)


@pytest.mark.parametrize("unit,group", [("month", None), ("week", "students"),
                                        ("day", "professionals")])
@pytest.mark.parametrize("metric", ["psi", "jensenshannon"])
def test_binned_grid_equals_per_cell_pandas(coarse, bins, raw, unit, group, metric):
    ref, prod = raw
    segs = None if group is None else [group]
    cells = heatmap.grid(heatmap.select(coarse, unit, segments=segs), metric, bins)
    if group:
        ref, prod = ref[ref.user_group == group], prod[prod.user_group == group]
    period = {"month": "M", "week": "W-SUN", "day": "D"}[unit]
    starts = prod.listed_at.dt.to_period(period).dt.start_time
    rng = np.random.default_rng(0)
    picked = cells.iloc[rng.choice(len(cells), size=min(25, len(cells)), replace=False)]
    func = stats.psi if metric == "psi" else stats.jensenshannon_distance
    for row in picked.itertuples():
        b = bins.coarse[row.feature]
        window = prod.loc[starts == row.window_start, row.feature]
        expected = func(b.counts(ref[row.feature]), b.counts(window))
        assert row.rows == len(window)
        assert row.value == pytest.approx(expected, rel=1e-9, abs=1e-12), row


def test_fine_ks_and_wasserstein_against_exact(demo_store, bins, raw):
    ref, prod = raw
    cube = heatmap.build_cube(demo_store, DATASET, "user_group", "fine", "month", bins=bins)
    moments = aggregate.reference_moments(demo_store, DATASET, "user_group")
    std = heatmap.pooled_std(moments, None)
    assert std["area_sqm"] == pytest.approx(np.std(ref.area_sqm), rel=1e-9)
    selected = heatmap.select(cube, "month")
    ks_cells = heatmap.grid(selected, "ks", bins).set_index(["feature", "window_start"])
    w_cells = heatmap.grid(selected, "wasserstein", bins, std).set_index(["feature", "window_start"])
    month = prod.listed_at.dt.to_period("M").dt.start_time
    worst_w = 0.0
    for feature in ("area_sqm", "distance_to_center_km", "bedrooms", "amenities_score"):
        for start in sorted(month.unique())[::2]:
            a, b = ref[feature].to_numpy(float), prod.loc[month == start, feature].to_numpy(float)
            ks_exact = sps.ks_2samp(a, b).statistic
            ks_binned = ks_cells.loc[(feature, start), "value"]
            # the stated bound: exact D - binned D lies in [0, max bin share]
            sl = slice(*(lambda o: (o[0], o[0] + o[1]))(selected.offsets[feature]))
            _, bound = stats.ks_from_bins(selected.reference[0, sl][:-1],
                                          selected.counts[selected.windows.tolist().index(
                                              np.datetime64(start, "us")), 0, sl][:-1])
            assert -1e-12 <= ks_exact - ks_binned <= bound + 1e-12
            assert ks_exact - ks_binned <= 2e-3
            w_exact = sps.wasserstein_distance(a, b) / np.std(a)
            worst_w = max(worst_w, abs(w_cells.loc[(feature, start), "value"] - w_exact))
    assert worst_w < 1e-3  # documented: below 0.001 reference sd


@pytest.mark.parametrize("seed", range(4))
def test_wasserstein_from_bins_on_hard_cases(seed):
    rng = np.random.default_rng(seed)
    a = [rng.normal(0, 1, 40000), rng.lognormal(0, 1, 40000),
         rng.integers(0, 9, 40000).astype(float), rng.normal(0, 1, 40000)][seed]
    b = [rng.normal(0.3, 1.4, 9000), rng.lognormal(0.2, 0.7, 9000),
         rng.integers(2, 12, 9000).astype(float), rng.normal(6, 0.2, 900)][seed]
    edges = np.unique(np.quantile(a, np.arange(1, 1000) / 1000))

    def summary(x):
        j = np.searchsorted(edges, x, side="right")
        k = len(edges) + 1
        lo, hi = np.full(k, np.nan), np.full(k, np.nan)
        np.fmin.at(lo, j, x)
        np.fmax.at(hi, j, x)
        return {"n": np.bincount(j, minlength=k).astype(float), "lo": lo, "hi": hi,
                "sum": np.bincount(j, weights=x, minlength=k)}

    got = stats.wasserstein_from_bins(edges, summary(a), summary(b))
    assert got == pytest.approx(sps.wasserstein_distance(a, b), abs=1e-3 * np.std(a))


def test_ground_truth_lights_up_from_month_6_only(coarse, bins, ground_truth):
    dd = ground_truth["data_drift"]
    cells = heatmap.grid(heatmap.select(coarse, "month"), "psi", bins)
    for row in cells.itertuples():
        lit = row.value >= 0.1
        expected = row.feature in dd["features"] and row.window_start.month >= dd["from_month"]
        assert lit == expected, row
    for group in ("families", "professionals"):
        part = heatmap.grid(heatmap.select(coarse, "month", segments=[group]), "psi", bins)
        assert part["value"].max() < 0.1, group


def test_segment_drift_names_the_groups(coarse, bins, ground_truth):
    table = heatmap.segment_drift(coarse, bins, "month")
    after = table[table.window_start.dt.month >= ground_truth["data_drift"]["from_month"]]
    hit = set(after.loc[after.max_value >= 0.25, "segment"])
    assert hit == set(ground_truth["data_drift"]["segments"])
    before = table[table.window_start.dt.month < ground_truth["data_drift"]["from_month"]]
    assert before.max_value.max() < 0.1


def test_filters_and_rollups_are_sums(coarse, bins):
    month = heatmap.select(coarse, "month")
    weeks_in_june = heatmap.select(coarse, "day", pd.Timestamp("2025-06-01"),
                                   pd.Timestamp("2025-07-01"))
    june = month.windows.tolist().index(np.datetime64("2025-06-01", "us"))
    assert np.array_equal(month.counts[june, 0], weeks_in_june.counts[:, 0].sum(axis=0))
    by_group = sum(heatmap.select(coarse, "month", segments=[g]).counts for g in coarse.segments)
    assert np.array_equal(by_group, month.counts)


def test_window_bounds():
    assert heatmap.window_start(np.array(["2025-06-01T13:00"], dtype="datetime64[us]"),
                                "week")[0] == np.datetime64("2025-05-26")
    assert heatmap.window_end("2025-12-01", "month") == np.datetime64("2026-01-01")
    assert heatmap.window_end("2025-05-26", "week") == np.datetime64("2025-06-02")


def test_segment_window_metrics_match_pandas(demo_store, raw):
    from analysis.queries import segment_window_metrics
    roles = demo_store.dataset(DATASET).roles
    cols = [roles.timestamp, "user_group", roles.prediction, roles.target]
    prod = load_frame(demo_store, DATASET, "production", cols)
    ref = load_frame(demo_store, DATASET, "reference", cols)
    got = segment_window_metrics(demo_store, DATASET, "user_group", "month",
                                 Filters(segments={"user_group": ("professionals",)}))
    assert set(got.segment) == {"professionals"}
    p = prod[prod.user_group == "professionals"]
    r = ref[ref.user_group == "professionals"]
    ref_mape = 100 * ((r.rent_eur - r.predicted_rent_eur).abs() / r.rent_eur).mean()
    for row in got.itertuples():
        cell = p[p.listed_at.dt.to_period("M").dt.start_time == row.window_start]
        mape = 100 * ((cell.rent_eur - cell.predicted_rent_eur).abs() / cell.rent_eur).mean()
        assert row.mape == pytest.approx(mape) and row.rows == len(cell)
        assert row.mape_change == pytest.approx(mape - ref_mape)


def test_counts_from_bin_codes_equal_counts_from_rows(demo_store, bins):
    from datetime import datetime
    for f in (None, Filters(datetime(2025, 6, 3), datetime(2025, 8, 17), {"user_group": ("students",)})):
        codes = aggregate.day_counts_from_codes(demo_store, DATASET, bins, "user_group", f)
        rows = aggregate.binned_counts(demo_store, DATASET, "production", bins.coarse, unit="day",
                                       segment="user_group", filters=f)
        key = ["window", "segment", "feature", "bin"]
        a = codes.assign(feature=codes.feature.astype(str), segment=codes.segment.astype(str)
                         ).sort_values(key).reset_index(drop=True)
        b = rows.assign(feature=rows.feature.astype(str), segment=rows.segment.astype(str)
                        ).sort_values(key).reset_index(drop=True)
        assert a[key + ["n"]].equals(b[key + ["n"]])


def test_codes_follow_snapshots_and_the_reference(tmp_path):
    import pyarrow as pa
    from analysis.store import Roles, Store
    rng = np.random.default_rng(3)

    def table(n, start):
        return pa.Table.from_pandas(pd.DataFrame({
            "ts": pd.date_range(start, periods=n, freq="h"), "g": rng.choice(["a", "b", None], n),
            "x": rng.normal(size=n), "c": rng.choice(["u", "v", None], n)}))

    store = Store(tmp_path)
    store.create_dataset("d", Roles(timestamp="ts", segments=["g"], numeric=["x"],
                                    categorical=["c"]))
    store.add_snapshot("d", "reference", table(500, "2025-01-01"), source="r")
    first = store.add_snapshot("d", "production", table(300, "2025-03-01"), source="p1")
    bins = aggregate.frozen_bins(store, "d")
    assert [p.stem for p in aggregate.ensure_codes(store, "d", bins)] == [first.id]
    second = store.add_snapshot("d", "production", table(200, "2025-04-01"), source="p2")
    files = aggregate.ensure_codes(store, "d", bins)
    assert [p.stem for p in files] == [first.id, second.id] and all(p.exists() for p in files)
    counts = aggregate.day_counts_from_codes(store, "d", bins, "g")
    assert counts.groupby("feature", observed=True)["n"].sum().tolist() == [500, 500]
    rows = aggregate.binned_counts(store, "d", "production", bins.coarse, unit="day", segment="g")
    key = ["window", "segment", "feature", "bin"]
    norm = [f.assign(segment=f.segment.astype(str), feature=f.feature.astype(str))
            .sort_values(key).reset_index(drop=True)[key + ["n"]] for f in (counts, rows)]
    assert norm[0].equals(norm[1]) and "(missing)" in set(norm[0].segment)
    store.remove_snapshot("d", first.id)
    assert aggregate.day_counts_from_codes(store, "d", bins, "g")["n"].sum() == 2 * 200
    # the removed snapshot's codes and profile went with it
    assert not list(files[0].parent.glob(f"{first.id}.*"))
    assert (files[0].parent / f"{second.id}.profile.json").is_file()
    # a new reference freezes new bins, and new codes with them
    store.add_snapshot("d", "reference", table(100, "2025-02-01"), source="r2")
    new_bins = aggregate.frozen_bins(store, "d")
    assert new_bins.token != bins.token
    assert aggregate.ensure_codes(store, "d", new_bins)[0].parent.name.startswith(
        f"codes-{new_bins.token}-")
    leftovers = {p.name for p in (tmp_path / "d" / "bins").iterdir()}
    assert not any(n.startswith(f"codes-{bins.token}") for n in leftovers)
    assert f"{bins.token}.json" not in leftovers


def test_filtered_queries_do_not_leave_files_behind(demo_store, bins):
    from datetime import datetime
    folder = demo_store.root / DATASET / "bins"
    # filter values live in the source view: every filter reuses the shape's compiled SQL
    aggregate.binned_counts(demo_store, DATASET, "production", bins.coarse)
    before = set(folder.glob("sql-*.sql"))
    for day in range(1, 6):
        f = Filters(datetime(2025, 7, day), datetime(2025, 8, day))
        aggregate.day_counts_from_codes(demo_store, DATASET, bins, "user_group", f)
        aggregate.binned_counts(demo_store, DATASET, "production", bins.coarse, filters=f)
    assert set(folder.glob("sql-*.sql")) == before




@pytest.fixture(scope="module")
def snapshots_store(tmp_path_factory):
    """Time-ordered snapshots (three production, two reference) with missing values in
    every column kind, so profile sums meet cut snapshots, NaN and NULL segments."""
    import pyarrow as pa
    from analysis.store import Roles, Store
    rng = np.random.default_rng(11)

    def table(n, start, shift=0.0):
        x = rng.normal(shift, 1, n)
        x[rng.random(n) < 0.02] = np.nan
        return pa.Table.from_pandas(pd.DataFrame({
            "ts": pd.date_range(start, periods=n, freq="17min"),
            "g": rng.choice(["a", "b", None], n),
            "x": x, "k": rng.poisson(2 + shift, n).astype(float),
            "c": rng.choice(["u", "v", "w", None], n)}))

    store = Store(tmp_path_factory.mktemp("snapshots"))
    store.create_dataset("d", Roles(timestamp="ts", segments=["g"], numeric=["x", "k"],
                                    categorical=["c"]))
    store.add_snapshot("d", "reference", table(3000, "2025-01-01"), source="r1")
    store.add_snapshot("d", "reference", table(2000, "2025-02-10"), source="r2")
    for i, start in enumerate(("2025-03-01", "2025-04-01", "2025-05-01")):
        store.add_snapshot("d", "production", table(2500, start, 0.3 * i), source=f"p{i}")
    return store


def _sorted(frame, extra=()):
    key = ["feature", "bin"]
    out = frame.assign(feature=frame.feature.astype(str))
    out = out[out.n > 0].sort_values(key).reset_index(drop=True)
    return out[key + ["n", *extra]]


@pytest.mark.parametrize("filters", [
    None,
    # cuts the first production snapshot, covers the second whole, skips the third
    Filters(pd.Timestamp("2025-03-20 05:07"), pd.Timestamp("2025-05-01")),
    # ends inside the last snapshot
    Filters(end=pd.Timestamp("2025-05-09 13:00")),
    # segment filters: profiles do not split by segment, so every row is binned
    Filters(pd.Timestamp("2025-03-20"), None, {"g": ("a",)}),
])
def test_profiles_and_cut_snapshots_give_the_counts_of_every_row(snapshots_store, filters):
    bins = aggregate.frozen_bins(snapshots_store, "d")
    for slice_ in ("production", "reference"):
        fine, coarse = aggregate.whole_counts(snapshots_store, "d", bins, slice_, filters)
        rows_fine = aggregate.binned_counts(snapshots_store, "d", slice_, bins.fine,
                                            filters=filters, with_range=True)
        rows_coarse = aggregate.binned_counts(snapshots_store, "d", slice_, bins.coarse,
                                              filters=filters)
        assert _sorted(coarse).equals(_sorted(rows_coarse)), slice_
        a, b = _sorted(fine, ["lo", "hi", "sum"]), _sorted(rows_fine, ["lo", "hi", "sum"])
        assert a[["feature", "bin", "n"]].equals(b[["feature", "bin", "n"]]), slice_
        for col in ("lo", "hi", "sum"):
            np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float),
                                       rtol=1e-12, atol=1e-9)


def test_profile_split_takes_whole_snapshots_and_cuts_the_rest(snapshots_store):
    bins = aggregate.frozen_bins(snapshots_store, "d")
    whole, cut = aggregate._profile_split(
        snapshots_store, "d", bins, "production",
        Filters(pd.Timestamp("2025-03-20"), pd.Timestamp("2025-05-01")))
    snaps = snapshots_store.snapshots("d", "production")
    assert [p["fine"].name.split(".")[0] for p in whole] == [snaps[1].id]
    assert cut == [snaps[0].path]
    assert aggregate._profile_split(snapshots_store, "d", bins, "production",
                                    Filters(segments={"g": ("a",)})) is None


@pytest.mark.parametrize("segment", [None, "g"])
def test_day_counts_from_profiles_equal_counts_from_rows(snapshots_store, segment):
    bins = aggregate.frozen_bins(snapshots_store, "d")
    key = ["window", "segment", "feature", "bin"]

    def norm(frame):
        return frame.assign(feature=frame.feature.astype(str), segment=frame.segment.astype(str)
                            ).sort_values(key).reset_index(drop=True)[key + ["n"]]

    for filters in (None, Filters(pd.Timestamp("2025-03-20"), pd.Timestamp("2025-05-03"))):
        got = aggregate.day_counts(snapshots_store, "d", bins, segment, filters)
        rows = aggregate.binned_counts(snapshots_store, "d", "production", bins.coarse,
                                       unit="day", segment=segment, filters=filters)
        assert norm(got).equals(norm(rows))
    # the reference has no windows (NaT): compare it on the other keys
    key = key[1:]
    ref = aggregate.day_counts(snapshots_store, "d", bins, segment, slice="reference")
    rows = aggregate.binned_counts(snapshots_store, "d", "reference", bins.coarse,
                                   segment=segment)
    assert norm(ref).equals(norm(rows))


def test_reference_moments_pooled_from_profiles(snapshots_store):
    from analysis.queries import load_frame
    ref = load_frame(snapshots_store, "d", "reference", ["g", "x", "k"])
    ref["g"] = ref["g"].fillna(aggregate.MISSING_SEGMENT)
    for segment in (None, "g"):
        got = aggregate.reference_moments(snapshots_store, "d", segment).set_index(
            ["segment", "feature"])
        groups = [("all", ref)] if segment is None else list(ref.groupby("g"))
        for value, part in groups:
            for feature in ("x", "k"):
                x = part[feature].dropna().to_numpy(float)
                row = got.loc[(value, feature)]
                assert row["n"] == x.size
                assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
                assert row["var"] == pytest.approx(x.var(), rel=1e-10)


def test_pool_moments_is_the_variance_of_the_whole():
    rng = np.random.default_rng(4)
    parts = [rng.normal(1e6, 1, 50), rng.normal(1e6 + 3, 2, 70), np.array([])]
    n = [p.size for p in parts]
    mean = [p.mean() if p.size else np.nan for p in parts]
    m2 = [((p - p.mean()) ** 2).sum() if p.size else 0.0 for p in parts]
    total, pooled_mean, var = aggregate.pool_moments(n, mean, m2)
    whole = np.concatenate(parts)
    assert total == whole.size
    assert pooled_mean == pytest.approx(whole.mean(), rel=1e-15)
    assert var == pytest.approx(whole.var(), rel=1e-9)
    assert np.isnan(aggregate.pool_moments([0], [np.nan], [0.0])[1])


def test_profiles_of_a_dataset_without_segment_columns(snapshots_store):
    from analysis.store import Roles
    store = snapshots_store
    store.create_dataset("plain", Roles(timestamp="ts", numeric=["x"], categorical=["c"]))
    for slice_, snap in (("reference", store.snapshots("d", "reference")[0]),
                         ("production", store.snapshots("d", "production")[1])):
        store.add_snapshot("plain", slice_, pq.read_table(snap.path), source=slice_)
    bins = aggregate.frozen_bins(store, "plain")
    days = aggregate.day_counts(store, "plain", bins, None)
    rows = aggregate.binned_counts(store, "plain", "production", bins.coarse, unit="day")
    key = ["window", "feature", "bin"]
    norm = [f.assign(feature=f.feature.astype(str)).sort_values(key).reset_index(drop=True)
            [key + ["n"]] for f in (days, rows)]
    assert norm[0].equals(norm[1])
    f = Filters(end=pd.Timestamp("2025-04-10"))
    _, coarse = aggregate.whole_counts(store, "plain", bins, "production", f)
    assert _sorted(coarse).equals(_sorted(aggregate.binned_counts(
        store, "plain", "production", bins.coarse, filters=f)))


def test_rows_without_a_timestamp_keep_profiles_exact(snapshots_store):
    from analysis.store import Roles
    store = snapshots_store
    store.create_dataset("undated", Roles(timestamp="ts", segments=["g"], numeric=["x"],
                                          categorical=["c"]))
    for slice_, snap in (("reference", store.snapshots("d", "reference")[0]),
                         ("production", store.snapshots("d", "production")[0])):
        frame = pq.read_table(snap.path).to_pandas()
        frame.loc[::7, "ts"] = pd.NaT
        store.add_snapshot("undated", slice_, pa.Table.from_pandas(frame, preserve_index=False),
                           source=slice_)
    bins = aggregate.frozen_bins(store, "undated")
    # the range spans the whole snapshot's dated rows, not its undated ones
    f = Filters(pd.Timestamp("2025-01-01"), pd.Timestamp("2026-01-01"))
    _, coarse = aggregate.whole_counts(store, "undated", bins, "production", f)
    assert _sorted(coarse).equals(_sorted(aggregate.binned_counts(
        store, "undated", "production", bins.coarse, filters=f)))
    _, everything = aggregate.whole_counts(store, "undated", bins, "production")
    assert everything.groupby("feature", observed=True)["n"].sum().tolist() == [2500, 2500]


def test_prepare_writes_every_snapshots_codes_and_profile(snapshots_store):
    messages = []
    aggregate.prepare(snapshots_store, progress=messages.append)
    assert snapshots_store.datasets()
    for dataset in snapshots_store.datasets():
        bins = aggregate.frozen_bins(snapshots_store, dataset)
        folder = aggregate._codes_folder(snapshots_store, dataset, bins)
        for snap in snapshots_store.snapshots(dataset):
            assert (folder / f"{snap.id}.parquet").is_file()
            assert aggregate._profile_complete(folder, snap.id)


# -- issue #10: small uploads, noise levels, cells not judged -------------------------------
from small_upload import SHIFTED, diabetes_store  # noqa: E402

from analysis import noise  # noqa: E402
from analysis.figures import CELL_CLASSES, heatmap_figure  # noqa: E402


def _month_grids(store):
    bins = aggregate.frozen_bins(store, "diab")
    coarse = heatmap.build_cube(store, "diab", None, "coarse", "day", bins=bins)
    fine = heatmap.build_cube(store, "diab", None, "fine", "month", bins=bins)
    std = heatmap.pooled_std(aggregate.reference_moments(store, "diab", None), None)
    return {metric: heatmap.grid(heatmap.select(coarse if heatmap.METRICS[metric][1] == "coarse"
                                                else fine, "month"), metric, bins, std)
            for metric in heatmap.METRICS}


@pytest.fixture(scope="module", params=[3, 11])
def small_upload(request, tmp_path_factory):
    """Month grids of every metric on a small upload with bmi and s5 shifted, and on the
    same data without the shift (the no-drift control)."""
    folder = tmp_path_factory.mktemp(f"diabetes{request.param}")
    return (_month_grids(diabetes_store(folder / "shifted", request.param)),
            _month_grids(diabetes_store(folder / "control", request.param, shifted=False)))


@pytest.mark.parametrize("metric", list(heatmap.METRICS))
def test_small_upload_flags_only_the_shifted_features(small_upload, metric):
    shifted, control = small_upload
    cells = shifted[metric]
    judged = cells[cells["verdict"] != "not judged"]
    drift = cells[cells["verdict"] == "drift"]
    # about 65 rows a month for 3 months, then one row in July: not judged
    assert sorted(judged["window_start"].dt.month.unique()) == [4, 5, 6]
    assert (cells.loc[cells["rows"] < 50, "verdict"] == "not judged").all()
    assert set(drift["feature"]) <= set(SHIFTED)
    # most unshifted cells reach the band by chance: the noise level is what holds them
    unshifted = judged[~judged["feature"].isin(SHIFTED)]
    assert (unshifted["value"] >= heatmap.METRICS[metric][2][0]).mean() > 0.5
    assert (unshifted["verdict"] == "within noise").sum() > 0
    # the shifted features are found; PSI, whose empty bins (share 1e-4) make its noise
    # level at 65 rows about 1, may miss one of them in a month
    found = drift.groupby("feature")["window_start"].nunique()
    assert set(found.index) == set(SHIFTED)
    assert found.min() >= (2 if metric == "psi" else 3)
    # the no-drift control: nothing
    assert (control[metric]["verdict"] != "drift").all()


def test_noise_level_is_reported_where_the_value_reaches_the_band(small_upload):
    cells = small_upload[0]["psi"]
    material = cells[(cells["verdict"] != "not judged") & (cells["value"] >= 0.1)]
    assert material["noise"].notna().all() and (material["noise"] > 0.3).all()
    assert cells.loc[cells["value"] < 0.1, "noise"].isna().all()
    row = material.iloc[0]
    assert row["noise"] == pytest.approx(noise.binned_noise_level(
        "psi", np.full(10, row["reference_rows"] / 10), row["rows"]), rel=0.15)


def test_ground_truth_verdicts_at_default_rule(coarse, bins, ground_truth):
    dd = ground_truth["data_drift"]
    for metric in ("psi", "jensenshannon"):
        cells = heatmap.grid(heatmap.select(coarse, "month"), metric, bins)
        drift = cells["verdict"] == "drift"
        expected = cells["feature"].isin(dd["features"]) & (
            cells["window_start"].dt.month >= dd["from_month"])
        assert (drift == expected).all(), metric
        assert (cells["verdict"] != "not judged").all()
        for group in ("families", "professionals"):
            part = heatmap.grid(heatmap.select(coarse, "month", segments=[group]), metric, bins)
            assert (part["verdict"] != "drift").all(), (metric, group)


def test_segment_drift_does_not_judge_small_cells(tmp_path):
    store = diabetes_store(tmp_path, 5)
    bins = aggregate.frozen_bins(store, "diab")
    cube = heatmap.build_cube(store, "diab", None, "coarse", "day", bins=bins)
    days = heatmap.segment_drift(cube, bins, "day")
    assert not days["judged"].any() and days["max_value"].isna().all()
    months = heatmap.segment_drift(cube, bins, "month").set_index("window_start")
    assert months["judged"].tolist() == [True, True, True, False]
    # two of ten features drift (bmi, s5) where it is judged
    assert months["drifted_share"].iloc[:3].tolist() == pytest.approx([0.2, 0.2, 0.2])


def _grid_frame(n_windows, rows=66):
    features = ["bmi", "age"]
    starts = pd.date_range("2025-01-01", periods=n_windows, freq="D")
    frame = pd.DataFrame([(f, w, 0.3 if f == "bmi" else 0.15, rows, 242, 0.2, "drift")
                          for f in features for w in starts], columns=heatmap.GRID_COLUMNS)
    frame.loc[frame["feature"] == "age", "verdict"] = "within noise"
    frame.loc[frame.index[-1], ["rows", "verdict", "noise"]] = (3, "not judged", np.nan)
    return frame


def test_heatmap_figure_greys_out_small_cells_and_prints_row_counts():
    frame = _grid_frame(3)
    fig = heatmap_figure(frame, "PSI", (0.1, 0.25), ["bmi", "age"], "day", "PSI · students")
    cells = fig.data[0]
    z = np.asarray(cells.z)
    assert z[0].tolist() == [CELL_CLASSES.index("major")] * 3           # bmi 0.3: drift
    assert z[1].tolist() == [CELL_CLASSES.index("within noise")] * 2 + [
        CELL_CLASSES.index("not judged")]
    assert cells.colorscale[0][1] == "#D5D5D8"                          # grey first
    assert [list(r) for r in cells.text] == [["66"] * 3, ["66", "66", "3"]]
    hover = fig.data[1].text
    assert "verdict: within noise" in hover[3] and "noise level: 0.2000" in hover[3]
    assert "3 production rows, 242 reference rows" in hover[-1]
    assert "not judged" in " ".join(fig.data[0].colorbar.ticktext)
    # too many windows for text in the cells: hover only
    wide = heatmap_figure(_grid_frame(60), "PSI", (0.1, 0.25), ["bmi", "age"], "day", "t")
    assert all(t == "" for row in wide.data[0].text for t in row)


def test_grid_caption_counts_and_states_the_rule():
    frame = _grid_frame(3)
    text = heatmap.grid_caption(frame, "psi")
    assert text.startswith("3 of 6 cells in the major band (> 0.25), 0 moderate (0.1–0.25); "
                           "2 reach 0.1 but within noise (pale); 1 with fewer than 50 rows on a "
                           "side, not judged (grey).")
    assert "PSI is at least 0.1 and above its noise level, the 99.9th percentile" in text
