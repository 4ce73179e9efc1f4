"""The counting queries: summed from profiles, counted from codes, or binned from rows,
they give the counts of every row."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import counts, engine, reference_bins
from analysis.queries import Filters

DATASET = "rental_pricing"

def test_counts_from_bin_codes_equal_counts_from_rows(demo_store, bins):
    from datetime import datetime
    for f in (None, Filters(datetime(2025, 6, 3), datetime(2025, 8, 17), {"user_group": ("students",)})):
        codes = counts.day_counts_from_codes(demo_store, DATASET, bins, "user_group", f)
        rows = counts.binned_counts(demo_store, DATASET, "production", bins.coarse, unit="day",
                                       segment="user_group", filters=f)
        key = ["window", "segment", "feature", "bin"]
        a = codes.assign(feature=codes.feature.astype(str), segment=codes.segment.astype(str)
                         ).sort_values(key).reset_index(drop=True)
        b = rows.assign(feature=rows.feature.astype(str), segment=rows.segment.astype(str)
                        ).sort_values(key).reset_index(drop=True)
        assert a[key + ["n"]].equals(b[key + ["n"]])


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
    bins = reference_bins.frozen_bins(snapshots_store, "d")
    for slice_ in ("production", "reference"):
        fine, coarse = counts.whole_counts(snapshots_store, "d", bins, slice_, filters)
        rows_fine = counts.binned_counts(snapshots_store, "d", slice_, bins.fine,
                                            filters=filters, with_range=True)
        rows_coarse = counts.binned_counts(snapshots_store, "d", slice_, bins.coarse,
                                              filters=filters)
        assert _sorted(coarse).equals(_sorted(rows_coarse)), slice_
        a, b = _sorted(fine, ["lo", "hi", "sum"]), _sorted(rows_fine, ["lo", "hi", "sum"])
        assert a[["feature", "bin", "n"]].equals(b[["feature", "bin", "n"]]), slice_
        for col in ("lo", "hi", "sum"):
            np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float),
                                       rtol=1e-12, atol=1e-9)


def test_profile_split_takes_whole_snapshots_and_cuts_the_rest(snapshots_store):
    bins = reference_bins.frozen_bins(snapshots_store, "d")
    whole, cut = counts.profile_split(
        snapshots_store, "d", bins, "production",
        Filters(pd.Timestamp("2025-03-20"), pd.Timestamp("2025-05-01")))
    snaps = snapshots_store.snapshots("d", "production")
    assert [p["fine"].name.split(".")[0] for p in whole] == [snaps[1].id]
    assert cut == [snaps[0].path]
    assert counts.profile_split(snapshots_store, "d", bins, "production",
                                    Filters(segments={"g": ("a",)})) is None


@pytest.mark.parametrize("segment", [None, "g"])
def test_day_counts_from_profiles_equal_counts_from_rows(snapshots_store, segment):
    bins = reference_bins.frozen_bins(snapshots_store, "d")
    key = ["window", "segment", "feature", "bin"]

    def norm(frame):
        return frame.assign(feature=frame.feature.astype(str), segment=frame.segment.astype(str)
                            ).sort_values(key).reset_index(drop=True)[key + ["n"]]

    for filters in (None, Filters(pd.Timestamp("2025-03-20"), pd.Timestamp("2025-05-03"))):
        got = counts.day_counts(snapshots_store, "d", bins, segment, filters)
        rows = counts.binned_counts(snapshots_store, "d", "production", bins.coarse,
                                       unit="day", segment=segment, filters=filters)
        assert norm(got).equals(norm(rows))
    # the reference has no windows (NaT): compare it on the other keys
    key = key[1:]
    ref = counts.day_counts(snapshots_store, "d", bins, segment, slice="reference")
    rows = counts.binned_counts(snapshots_store, "d", "reference", bins.coarse,
                                   segment=segment)
    assert norm(ref).equals(norm(rows))


def test_reference_moments_pooled_from_profiles(snapshots_store):
    from analysis.queries import load_frame
    ref = load_frame(snapshots_store, "d", "reference", ["g", "x", "k"])
    ref["g"] = ref["g"].fillna(engine.MISSING_SEGMENT)
    for segment in (None, "g"):
        got = counts.reference_moments(snapshots_store, "d", segment).set_index(
            ["segment", "feature"])
        groups = [("all", ref)] if segment is None else list(ref.groupby("g"))
        for value, part in groups:
            for feature in ("x", "k"):
                x = part[feature].dropna().to_numpy(float)
                row = got.loc[(value, feature)]
                assert row["n"] == x.size
                assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
                assert row["var"] == pytest.approx(x.var(), rel=1e-10)


def test_profiles_of_a_dataset_without_segment_columns(snapshots_store):
    from analysis.store import Roles
    store = snapshots_store
    store.create_dataset("plain", Roles(timestamp="ts", numeric=["x"], categorical=["c"]))
    for slice_, snap in (("reference", store.snapshots("d", "reference")[0]),
                         ("production", store.snapshots("d", "production")[1])):
        store.add_snapshot("plain", slice_, pq.read_table(snap.path), source=slice_)
    bins = reference_bins.frozen_bins(store, "plain")
    days = counts.day_counts(store, "plain", bins, None)
    rows = counts.binned_counts(store, "plain", "production", bins.coarse, unit="day")
    key = ["window", "feature", "bin"]
    norm = [f.assign(feature=f.feature.astype(str)).sort_values(key).reset_index(drop=True)
            [key + ["n"]] for f in (days, rows)]
    assert norm[0].equals(norm[1])
    f = Filters(end=pd.Timestamp("2025-04-10"))
    _, coarse = counts.whole_counts(store, "plain", bins, "production", f)
    assert _sorted(coarse).equals(_sorted(counts.binned_counts(
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
    bins = reference_bins.frozen_bins(store, "undated")
    # the range spans the whole snapshot's dated rows, not its undated ones
    f = Filters(pd.Timestamp("2025-01-01"), pd.Timestamp("2026-01-01"))
    _, coarse = counts.whole_counts(store, "undated", bins, "production", f)
    assert _sorted(coarse).equals(_sorted(counts.binned_counts(
        store, "undated", "production", bins.coarse, filters=f)))
    _, everything = counts.whole_counts(store, "undated", bins, "production")
    assert everything.groupby("feature", observed=True)["n"].sum().tolist() == [2500, 2500]
