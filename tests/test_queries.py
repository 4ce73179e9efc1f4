"""DuckDB queries against the same numbers computed in pandas."""
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analysis import queries, slices
from analysis.queries import Filters
from analysis.store import Roles, Store


@pytest.fixture()
def store(tmp_path):
    rng = np.random.default_rng(7)
    n = 3000
    frame = pd.DataFrame({
        "ts": pd.Timestamp("2025-03-01") + pd.to_timedelta(rng.integers(0, 90 * 86400, n), "s"),
        "group": rng.choice(["a", "b", "c"], n), "x": rng.normal(size=n),
        "pred": rng.uniform(50, 150, n), "y": rng.uniform(50, 150, n),
    })
    frame.loc[:9, "y"] = 0.0  # MAPE skips zero targets
    s = Store(tmp_path)
    s.create_dataset("d", Roles(timestamp="ts", segments=["group"], numeric=["x"],
                                prediction="pred", target="y"))
    s.add_snapshot("d", "reference", pa.Table.from_pandas(frame.iloc[:1000]), source="r")
    s.add_snapshot("d", "production", pa.Table.from_pandas(frame.iloc[1000:]), source="p")
    s.frame = frame
    return s


def _expected_error(f: pd.DataFrame) -> tuple[float, float]:
    err = (f.y - f.pred).abs()
    nz = f.y != 0
    return err.mean(), 100 * (err[nz] / f.y[nz].abs()).mean()


def test_window_metrics_match_pandas(store):
    prod = store.frame.iloc[1000:]
    got = slices.window_metrics(store, "d", "month").set_index("window_start")
    for month, part in prod.groupby(prod.ts.dt.to_period("M")):
        row = got.loc[month.to_timestamp()]
        mae, mape = _expected_error(part)
        assert row["rows"] == len(part)
        assert row["mae"] == pytest.approx(mae) and row["mape"] == pytest.approx(mape)
    weeks = slices.window_metrics(store, "d", "week")
    assert (pd.to_datetime(weeks.window_start).dt.day_of_week == 0).all()  # Monday starts
    assert weeks["rows"].sum() == len(prod)


def test_filters_time_on_production_segments_on_both(store):
    f = Filters(datetime(2025, 4, 1), datetime(2025, 5, 1), {"group": ("a",)})
    prod = store.frame.iloc[1000:]
    ref = store.frame.iloc[:1000]
    expected_prod = prod[(prod.ts >= "2025-04-01") & (prod.ts < "2025-05-01") & (prod.group == "a")]
    counts = slices.row_counts(store, "d", f)
    assert counts == {"reference": int((ref.group == "a").sum()), "production": len(expected_prod)}
    got = slices.reference_error(store, "d", f)
    mae, mape = _expected_error(ref[ref.group == "a"])
    assert got["mae"] == pytest.approx(mae) and got["mape"] == pytest.approx(mape)
    frame = queries.load_frame(store, "d", "production", ["x"], f)
    assert sorted(frame.x) == pytest.approx(sorted(expected_prod.x))
    nothing = Filters(segments={"group": ()})
    assert slices.row_counts(store, "d", nothing) == {"reference": 0, "production": 0}
    assert slices.reference_error(store, "d", nothing)["mae"] is None
    assert slices.window_metrics(store, "d", "month", nothing).empty


def test_bounds_and_segment_values(store):
    lo, hi = slices.time_bounds(store, "d", "production")
    prod = store.frame.iloc[1000:]
    assert lo == prod.ts.min() and hi == prod.ts.max()
    assert slices.segment_values(store, "d", "group") == ["a", "b", "c"]
    with pytest.raises(ValueError, match="window unit"):
        slices.window_metrics(store, "d", "fortnight")


def test_cell_key_keeps_the_sidebar_choice():
    from datetime import datetime

    from analysis.queries import cell_key

    side = (datetime(2025, 4, 10), None, (("user_group", ("students",)), ("region", ("n",))))
    # all groups of the sidebar's choice: students stay selected
    assert cell_key(side, "user_group", None, datetime(2025, 4, 1), datetime(2025, 5, 1)) == \
        (datetime(2025, 4, 10), datetime(2025, 5, 1), side[2])
    # one group: that group on its column, the other column's filter kept
    assert cell_key(side, "user_group", "families", datetime(2025, 5, 1),
                    datetime(2025, 6, 1))[2] == (("region", ("n",)), ("user_group", ("families",)))


def test_load_frame_with_categories_holds_the_same_rows(store):
    from analysis.attribution import label_text

    cols = ["x", "group", "y", "ts"]
    plain = queries.load_frame(store, "d", "production", cols)
    coded = queries.load_frame(store, "d", "production", cols, categories=True)
    assert isinstance(coded["group"].dtype, pd.CategoricalDtype)
    assert coded["group"].astype(str).tolist() == plain["group"].astype(str).tolist()
    # labels read the same either way (the categorical path goes through its categories)
    assert label_text(coded["group"]).tolist() == label_text(plain["group"]).tolist()
    pd.testing.assert_frame_equal(coded.drop(columns="group"), plain.drop(columns="group"))


def test_fetch_rows_reads_the_keyed_rows_in_the_order_asked(store):
    cols = ["x", "group", "y", "ts"]
    filters = Filters(None, None, {"group": ("a", "b")})
    light = queries.load_keyed(store, "d", "production", ["ts"], filters)
    full = queries.load_frame(store, "d", "production", cols, filters)
    assert len(light) == len(full) and light["ts"].tolist() == full["ts"].tolist()
    order = np.random.default_rng(0).permutation(len(light))[:300]
    rows = queries.fetch_rows(store, "d", "production", cols,
                              light.iloc[order][[queries.ROW_FILE, queries.ROW_NUMBER]])
    expected = full.iloc[order].reset_index(drop=True)
    assert rows["group"].astype(str).tolist() == expected["group"].astype(str).tolist()
    pd.testing.assert_frame_equal(rows.drop(columns="group"), expected.drop(columns="group"))


def test_keyed_rows_across_snapshots_even_with_a_column_named_file_index(tmp_path):
    # DuckDB's own file_index would be shadowed by this data column: the keys must not be
    rng = np.random.default_rng(11)
    s = Store(tmp_path)
    s.create_dataset("k", Roles(numeric=["x", "file_index"]))
    parts = []
    for i in range(3):
        part = pd.DataFrame({"x": rng.normal(size=400) + 10 * i,
                             "file_index": np.full(400, 99.0 + i)})
        s.add_snapshot("k", "production", pa.Table.from_pandas(part), source=f"p{i}")
        parts.append(part)
    light = queries.load_keyed(s, "k", "production", ["x"])
    files = s.files("k", "production")
    assert sorted(light[queries.ROW_FILE].unique().tolist()) == [0, 1, 2]
    assert len(files) == 3
    order = rng.permutation(len(light))[:500]
    rows = queries.fetch_rows(s, "k", "production", ["x", "file_index"],
                              light.iloc[order][[queries.ROW_FILE, queries.ROW_NUMBER]], files)
    np.testing.assert_array_equal(rows["x"].to_numpy(), light["x"].to_numpy()[order])
    # each row came from the file its key names, at the row number its key names
    by_file = {str(f): p for f, p in zip(files, parts)}
    for key_file, key_row, x in zip(light[queries.ROW_FILE].to_numpy()[order],
                                    light[queries.ROW_NUMBER].to_numpy()[order], rows["x"]):
        assert by_file[str(files[key_file])]["x"].iloc[key_row] == x
