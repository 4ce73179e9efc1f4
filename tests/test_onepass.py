"""The one-pass writer against the engine's writers, file by file, on generated
snapshots with every kind of column, missing values, values on bin bounds, several
segment columns, rows without a timestamp and types the store does not write itself;
and its pieces against plain numpy."""
import json
import shutil
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import codes, onepass, profiles, reference_bins
from analysis.binning import CategoricalBins, NumericBins, fine_bins
from analysis.store import Roles, Store


def _table(rng, n, start, shift=0.0, bounds=None):
    """Rows with NaN, NULL and inf numbers, NULL and unseen text, two segment columns
    (one with NULL), and about 3% of rows without a timestamp."""
    x = rng.normal(shift, 1, n)
    x[rng.random(n) < 0.03] = np.nan
    r = np.round(rng.uniform(0, 100, n), 1)
    r[rng.random(n) < 0.01] = np.inf
    r[rng.random(n) < 0.01] = -np.inf
    if bounds is not None:  # values exactly on the frozen edges and fine-bin bounds
        pick = rng.choice(bounds, n // 3)
        x[:pick.size] = pick
        x[pick.size:2 * pick.size] = np.nextafter(pick, -np.inf)
    k = pd.array(rng.poisson(3 + shift, n), dtype="Int64")
    k[rng.random(n) < 0.02] = pd.NA
    ts = pd.Series(pd.date_range(start, periods=n, freq="37min"))
    ts[rng.random(n) < 0.03] = pd.NaT
    levels = ["u", "v", "w", None] + (["new"] if shift else [])
    return pa.Table.from_pandas(pd.DataFrame({
        "ts": ts, "g": rng.choice(["a", "b", "(missing)", None], n),
        "h": rng.choice(["p", "q"], n), "x": x, "k": k, "r": r,
        "c": rng.choice(levels, n), "d": rng.integers(0, 4, n)}), preserve_index=False)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A store with two reference and three production snapshots; ``d`` is a
    categorical stored as integers (cast by DuckDB, as the engine casts it)."""
    rng = np.random.default_rng(5)
    store = Store(tmp_path_factory.mktemp("mixed"))
    store.create_dataset("m", Roles(timestamp="ts", segments=["g", "h"],
                                    numeric=["x", "k", "r"], categorical=["c", "d"]))
    store.add_snapshot("m", "reference", _table(rng, 4000, "2025-01-01"), source="r1")
    store.add_snapshot("m", "reference", _table(rng, 1500, "2025-01-20"), source="r2")
    bins = reference_bins.frozen_bins(store, "m")
    bounds = np.concatenate([bins.coarse["x"].edges, bins.fine["x"].anchors,
                             bins.fine["x"].lower_bounds()])
    for i, start in enumerate(("2025-03-01", "2025-04-01", "2025-05-01")):
        store.add_snapshot("m", "production", _table(rng, 3000, start, 0.5 * i, bounds),
                           source=f"p{i}")
    return store


def _written(store, dataset, method, folder):
    """Copy the store to ``folder``, write every snapshot's codes and profile there with
    ``method``, and return the copy and the frozen bins."""
    shutil.copytree(store.root, folder)
    copy = Store(folder)
    bins = reference_bins.frozen_bins(copy, dataset)
    for slice_ in ("reference", "production"):
        profiles.ensure_codes(copy, dataset, bins, slice=slice_, method=method)
    return copy, bins


def _sorted(table: pa.Table, key: list[str]) -> pd.DataFrame:
    """The rows in ``key`` order, integers as int64 and floats as float64 (the engine's
    files hold some columns as wider types)."""
    frame = table.to_pandas().sort_values(key, na_position="first").reset_index(drop=True)
    for name in frame.columns:
        if name in ("cell", "lo", "hi", "sum", "mean", "m2"):
            frame[name] = frame[name].astype(float)
        elif name in ("seg", "feature", "bin", "n") and pd.api.types.is_integer_dtype(frame[name]):
            frame[name] = frame[name].astype(np.int64)
    return frame


def _compare(dataset, ours, theirs, bins):
    """Every file the one-pass writer wrote equals the engine's: codes and counts
    exactly, sums to 1e-12 and moments to 1e-9 relative."""
    a, b = (codes.codes_folder(s, dataset, bins) for s in (ours, theirs))
    assert json.loads((a / "segments.json").read_text()) == \
        json.loads((b / "segments.json").read_text())
    for snap in ours.snapshots(dataset):
        mine, engine = (pq.read_table(folder / f"{snap.id}.parquet") for folder in (a, b))
        assert mine.schema.names == engine.schema.names
        for name in mine.schema.names:  # row order is the snapshot's in both
            assert mine.column(name).to_pylist() == engine.column(name).to_pylist(), name
        p, q = codes.profile_paths(a, snap.id), codes.profile_paths(b, snap.id)
        assert json.loads(p["meta"].read_text()) == json.loads(q["meta"].read_text())
        key = ["seg", "cell", "feature", "bin"]
        assert _sorted(pq.read_table(p["days"]), key).equals(
            _sorted(pq.read_table(q["days"]), key))
        key = ["feature", "bin"]
        mine, engine = (_sorted(pq.read_table(paths["fine"]), key) for paths in (p, q))
        assert mine[key + ["n", "lo", "hi"]].equals(engine[key + ["n", "lo", "hi"]])
        np.testing.assert_allclose(mine["sum"], engine["sum"], rtol=1e-12, atol=1e-12)
        key = ["segcol", "segment", "feature"]
        mine, engine = (_sorted(pq.read_table(p["moments"]), key),
                        _sorted(pq.read_table(q["moments"]), key))
        assert mine[key + ["n"]].equals(engine[key + ["n"]])
        for col in ("mean", "m2"):
            np.testing.assert_allclose(mine[col].astype(float), engine[col].astype(float),
                                       rtol=1e-9, atol=1e-12)


def test_one_pass_writes_what_the_engine_writes(mixed, tmp_path):
    ours, bins = _written(mixed, "m", "onepass", tmp_path / "onepass")
    theirs, _ = _written(mixed, "m", "engine", tmp_path / "engine")
    _compare("m", ours, theirs, bins)
    # the cases are there: values on bounds, unseen levels, inf, undated rows
    folder = codes.codes_folder(ours, "m", bins)
    meta = [json.loads(codes.profile_paths(folder, s.id)["meta"].read_text())
            for s in ours.snapshots("m")]
    assert all(m["undated"] > 0 for m in meta)


def _copy(store, dataset, folder, roles, count):
    """A new store in ``folder`` with the first ``count`` snapshots of ``dataset``."""
    out = Store(folder)
    out.create_dataset(dataset, roles)
    for snap in store.snapshots(dataset)[:count]:
        out.add_snapshot(dataset, snap.slice, pq.read_table(snap.path), snap.source)
    return out


def test_one_pass_on_the_demo_and_without_segment_columns(demo_store, snapshots_store,
                                                          tmp_path):
    plain = snapshots_store.dataset("d").roles
    plain = Roles(timestamp="ts", numeric=plain.numeric, categorical=plain.categorical)
    cases = [(demo_store, "rental_pricing", demo_store.dataset("rental_pricing").roles, 2),
             (snapshots_store, "d", plain, 4)]
    for store, dataset, roles, count in cases:
        source = _copy(store, dataset, tmp_path / f"source-{dataset}", roles, count)
        ours, bins = _written(source, dataset, "onepass", tmp_path / f"ours-{dataset}")
        theirs, _ = _written(source, dataset, "engine", tmp_path / f"engine-{dataset}")
        _compare(dataset, ours, theirs, bins)


def test_one_pass_casts_other_types_as_the_engine(tmp_path):
    """A timestamp with a time zone, decimal numbers and integer categories go through
    DuckDB's casts: same days (in UTC), same bins, no first/last timestamp."""
    rng = np.random.default_rng(8)
    store = Store(tmp_path / "typed")
    store.create_dataset("t", Roles(timestamp="ts", segments=["g"], numeric=["x"],
                                    categorical=["c"]))
    for slice_, start in (("reference", "2025-01-01"), ("production", "2025-02-01")):
        n = 800
        stamps = pd.date_range(start, periods=n, freq="53min", tz="Europe/Paris")
        values = [None if i % 17 == 0 else Decimal(f"{v:.2f}")
                  for i, v in enumerate(rng.normal(10, 2, n))]
        store.add_snapshot("t", slice_, pa.table({
            "ts": pa.array(stamps), "g": rng.choice(["a", "b"], n),
            "x": pa.array(values, pa.decimal128(9, 2)), "c": rng.integers(0, 3, n)}), slice_)
    ours, bins = _written(store, "t", "onepass", tmp_path / "ours")
    theirs, _ = _written(store, "t", "engine", tmp_path / "engine")
    _compare("t", ours, theirs, bins)


def test_one_pass_with_a_category_of_many_levels(tmp_path):
    """More than 256 bins: that feature's codes get a column of their own."""
    rng = np.random.default_rng(4)
    store = Store(tmp_path / "wide")
    store.create_dataset("w", Roles(timestamp="ts", numeric=["x"], categorical=["many"]))
    for slice_, start in (("reference", "2025-01-01"), ("production", "2025-02-01")):
        n = 3000
        store.add_snapshot("w", slice_, pa.table({
            "ts": pa.array(pd.date_range(start, periods=n, freq="h")),
            "x": rng.normal(size=n), "many": [f"m{v}" for v in rng.integers(0, 400, n)]}),
            slice_)
    ours, bins = _written(store, "w", "onepass", tmp_path / "ours")
    theirs, _ = _written(store, "w", "engine", tmp_path / "engine")
    _compare("w", ours, theirs, bins)
    assert ("w1", None) in codes.code_slots(bins)


def test_ingest_writes_the_new_snapshots_codes_and_profile(tmp_path, monkeypatch):
    from smallstore import make_small_store

    from analysis import heatmap
    from analysis.ingest import ingest
    store, frame = make_small_store(tmp_path)
    frame(400, "2025-03-01", 0.5).to_csv(tmp_path / "p.csv", index=False)
    result = ingest(store, "shop", "production", tmp_path / "p.csv")
    assert result.profiled and result.snapshot is not None
    bins = reference_bins.frozen_bins(store, "shop")
    folder = codes.codes_folder(store, "shop", bins)
    assert (folder / f"{result.snapshot.id}.parquet").is_file()
    assert codes.profile_complete(folder, result.snapshot.id)

    def no_pass(*args, **kwargs):
        raise AssertionError("the first heatmap should need no pass over the rows")

    monkeypatch.setattr(onepass, "write_snapshot", no_pass)
    cube = heatmap.build_cube(store, "shop", "group", "coarse", "day", bins=bins)
    assert cube.counts.sum() == 400 * len(bins.coarse)


def test_numeric_and_categorical_codes_follow_numpys_bins():
    x = np.array([-np.inf, -1.0, 0.0, 0.5, 1.0, 2.0, np.inf, np.nan, 7.0])
    bins = NumericBins((0.0, 1.0, 2.0))
    ok = np.isfinite(x)
    got = onepass.numeric_codes(x, ok, bins)
    want = np.where(ok, bins.codes(np.where(ok, x, 0.0)), len(bins.edges) + 1)
    assert got.tolist() == want.tolist()
    cats = CategoricalBins(("u", "v"))
    index = np.array([0, 1, 2, -1, 0])
    assert onepass.categorical_codes(["v", "u", "zz"], index, cats).tolist() == [1, 0, 2, 3, 1]


def test_fine_summary_and_moments_against_numpy():
    rng = np.random.default_rng(2)
    ref = rng.lognormal(0, 1, 5000)
    fine = fine_bins(ref.min(), np.quantile(ref, np.arange(1, 10) / 10), ref.max())
    x = np.concatenate([rng.lognormal(0.3, 1.2, 20000), [np.nan, np.inf], fine.anchors])
    ok = np.isfinite(x)
    table = onepass.fine_summary(x, ok, fine).to_pandas().set_index("bin")
    index = fine.index(x[ok])
    assert np.array_equal(np.bincount(index, minlength=fine.n),
                          table["n"].reindex(range(fine.n), fill_value=0).to_numpy()[:fine.n])
    assert table.loc[fine.n, "n"] == 2 and np.isnan(table.loc[fine.n, "lo"])
    for b in np.unique(index)[::37]:
        values = x[ok][index == b]
        assert (table.loc[b, "lo"], table.loc[b, "hi"]) == (values.min(), values.max())
        assert table.loc[b, "sum"] == pytest.approx(values.sum(), rel=1e-12)
    group = rng.integers(0, 3, x.size)
    labels = ["(missing)", "a", "b"]
    cells = onepass.Cells(0, "g", group, np.arange(3), None, group, labels,
                          np.bincount(group, minlength=3))
    n, mean, m2 = onepass.segment_moments(x, ok, cells)
    for k in range(3):
        values = x[ok & (group == k)]
        assert n[k] == values.size
        assert mean[k] == pytest.approx(values.mean(), rel=1e-12)
        assert m2[k] == pytest.approx(((values - values.mean()) ** 2).sum(), rel=1e-10)
    overall = onepass.overall_moments(x, ok)
    assert overall[2][0] == pytest.approx(((x[ok] - x[ok].mean()) ** 2).sum(), rel=1e-12)
    table = onepass.moments_table("f", "g", labels, np.array([0, 5, 5]), n, mean, m2)
    assert table.column("segment").to_pylist() == ["a", "b"]   # values with rows only
