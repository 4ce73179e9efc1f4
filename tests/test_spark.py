"""The same aggregation on Apache Spark and on DuckDB: the heatmap's cubes, its cells,
the drift table, the frozen bins, the snapshots' profiles (and their merge with
DuckDB's), a production table, and the ``heatmap`` command, compared cell by cell.

Every test here runs on the one local Spark session of the run (``spark_engine``, in
conftest.py); without Java they fail, saying so (scripts/test.sh installs it).
"""
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import cli, codes, counts, heatmap, onepass, profiles, reference_bins
from analysis.engine import Engine
from analysis.heatmap_command import heatmap_cells
from analysis.queries import Filters
from analysis.store import Roles, Store

pytestmark = pytest.mark.spark
DATASET = "lake"


def _rows(rng, n, start, shift=0.0, bounds=None):
    """Rows with NaN, NULL and +-inf numbers, NULL and unseen categories, two segment
    columns (one with NULL), values on the frozen bounds, every row dated."""
    x = rng.normal(shift, 1, n)
    x[rng.random(n) < 0.03] = np.nan
    r = np.round(rng.uniform(0, 100, n), 1)
    r[rng.random(n) < 0.01] = np.inf
    r[rng.random(n) < 0.01] = -np.inf
    if bounds is not None:  # values exactly on the edges and fine-bin bounds, and just below
        pick = rng.choice(bounds, n // 3)
        x[:pick.size] = pick
        x[pick.size:2 * pick.size] = np.nextafter(pick, -np.inf)
    k = pd.array(rng.poisson(3 + shift, n), dtype="Int64")
    k[rng.random(n) < 0.02] = pd.NA
    levels = ["u", "v", "w", None] + (["new"] if shift else [])
    return pa.Table.from_pandas(pd.DataFrame({
        "ts": pd.date_range(start, periods=n, freq="29min"),
        "g": rng.choice(["a", "b", "c", None], n, p=[0.4, 0.3, 0.2, 0.1]),
        "h": rng.choice(["p", "q"], n), "x": x, "k": k, "r": r,
        "c": rng.choice(levels, n)}), preserve_index=False)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """Two reference and three production snapshots, profiled by DuckDB's one pass."""
    rng = np.random.default_rng(14)
    store = Store(tmp_path_factory.mktemp("lake"))
    store.create_dataset(DATASET, Roles(timestamp="ts", segments=["g", "h"],
                                        numeric=["x", "k", "r"], categorical=["c"]))
    store.add_snapshot(DATASET, "reference", _rows(rng, 3000, "2025-01-01"), source="r1")
    store.add_snapshot(DATASET, "reference", _rows(rng, 1500, "2025-02-05"), source="r2")
    bins = reference_bins.frozen_bins(store, DATASET)
    bounds = np.concatenate([bins.coarse["x"].edges, bins.fine["x"].anchors,
                             bins.fine["x"].lower_bounds()])
    for i, start in enumerate(("2025-03-01", "2025-04-01", "2025-05-01")):
        store.add_snapshot(DATASET, "production", _rows(rng, 2500, start, 0.4 * i, bounds),
                           source=f"p{i}")
    profiles.prepare_dataset(store, DATASET)
    return store


def _copy(store: Store, folder) -> Store:
    shutil.copytree(store.root, folder)
    return Store(folder)


def _same_cube(a: heatmap.Cube, b: heatmap.Cube) -> None:
    """Identical counts (and bin extremes); sums to 1e-12 relative."""
    assert a.segments == b.segments and a.offsets == b.offsets
    np.testing.assert_array_equal(a.windows, b.windows)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.reference, b.reference)
    assert set(a.extra) == set(b.extra)
    for name in a.extra:
        exact = np.testing.assert_array_equal if name != "sum" else (
            lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-9))
        exact(a.extra[name], b.extra[name])
        exact(a.reference_extra[name], b.reference_extra[name])


def _same_cells(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """The same cells, values equal to 1e-9, the same rows and verdicts."""
    key = ["group", "feature", "window_start"] if "group" in a else ["feature", "window_start"]
    a, b = (f.sort_values(key).reset_index(drop=True) for f in (a, b))
    assert a[key + ["rows", "reference_rows", "verdict"]].equals(
        b[key + ["rows", "reference_rows", "verdict"]])
    np.testing.assert_allclose(a["value"].to_numpy(float), b["value"].to_numpy(float),
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize("resolution, unit", [("coarse", "day"), ("fine", "month"),
                                              ("fine", "week")])
@pytest.mark.parametrize("segment", [None, "g"])
def test_heatmap_cube_and_cells_equal_on_spark_and_duckdb(lake, spark_engine, resolution,
                                                          unit, segment):
    bins = reference_bins.frozen_bins(lake, DATASET)
    duck = heatmap.build_cube(lake, DATASET, segment, resolution, unit, bins=bins)
    spark = heatmap.build_cube(lake, DATASET, segment, resolution, unit, bins=bins,
                               engine=spark_engine)
    _same_cube(duck, spark)
    moments = {e: counts.reference_moments(lake, DATASET, segment, engine=e)
               for e in (None, spark_engine)}
    metrics = ("psi", "jensenshannon") if resolution == "coarse" else ("ks", "wasserstein")
    for group in [None, *(duck.segments if segment else [])]:
        chosen = None if group is None else [group]
        std = {e: heatmap.pooled_std(m, chosen) for e, m in moments.items()}
        assert std[None].keys() == std[spark_engine].keys()
        for f in std[None]:
            assert std[None][f] == pytest.approx(std[spark_engine][f], rel=1e-12)
        for metric in metrics:
            cells = [heatmap.grid(heatmap.select(cube, "month", segments=chosen), metric, bins,
                                  std[e]) for cube, e in ((duck, None), (spark, spark_engine))]
            assert len(cells[0]) > 0
            _same_cells(*cells)


def test_heatmap_cells_cover_every_metric_group_and_unit(lake, spark_engine):
    for metric, unit in (("psi", "week"), ("jensenshannon", "month"), ("ks", "month"),
                         ("wasserstein", "day")):
        duck = heatmap_cells(lake, DATASET, unit, metric, "g")
        spark = heatmap_cells(lake, DATASET, unit, metric, "g", engine=spark_engine)
        assert set(duck["group"]) == {"all", "a", "b", "c", "(missing)"}
        _same_cells(duck, spark)
    one = heatmap_cells(lake, DATASET, "month", "psi", "g", "b", engine=spark_engine)
    assert set(one["group"]) == {"b"}
    # the drift shows: the largest PSI is in a shifted month, of a shifted feature (a new
    # category of c, or x and k moved)
    whole = heatmap_cells(lake, DATASET, "month", "psi", engine=spark_engine)
    top = whole.sort_values("value").iloc[-1]
    assert top["feature"] in ("x", "k", "c") and top["window_start"] >= pd.Timestamp("2025-04-01")
    assert whole.loc[whole["feature"] == "h", "value"].isna().all() or "h" not in set(
        whole["feature"])


@pytest.mark.parametrize("filters", [
    None,
    # cuts the first production snapshot, covers the second whole, skips the third
    Filters(pd.Timestamp("2025-03-20 05:07"), pd.Timestamp("2025-05-01")),
    # segment filters: no profile splits by segment, every row is binned
    Filters(pd.Timestamp("2025-03-10"), None, {"g": ("a", "c")}),
])
@pytest.mark.parametrize("profiled", [True, False])
def test_drift_table_equal_on_spark_and_duckdb(lake, spark_engine, filters, profiled):
    bins = reference_bins.frozen_bins(lake, DATASET)
    duck, spark = (heatmap.binned_drift_table(lake, DATASET, filters, bins, profiled, engine=e)
                   for e in (None, spark_engine))
    columns = ["feature", "kind", "test", "threshold", "drifted", "n_reference",
               "n_production"]
    assert duck[columns].equals(spark[columns])
    np.testing.assert_allclose(duck["statistic"].to_numpy(float),
                               spark["statistic"].to_numpy(float), rtol=0, atol=1e-9)
    assert duck["drifted"].any() and not duck["drifted"].all()


def test_whole_counts_equal_on_spark_and_duckdb(lake, spark_engine):
    bins = reference_bins.frozen_bins(lake, DATASET)
    cut = Filters(pd.Timestamp("2025-03-20 05:07"), pd.Timestamp("2025-05-01"))
    for slice_ in ("production", "reference"):
        duck, spark = (counts.whole_counts(lake, DATASET, bins, slice_, cut, engine=e)
                       for e in (None, spark_engine))
        for a, b in zip(duck, spark):
            key = ["feature", "bin"]
            a, b = (f.assign(feature=f.feature.astype(str)).sort_values(key)
                    .reset_index(drop=True) for f in (a, b))
            assert a[key + ["n"]].equals(b[key + ["n"]]), slice_
            for col in {"lo", "hi", "sum"} & set(a.columns):
                np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float),
                                           rtol=1e-12, atol=1e-9)


def test_frozen_bins_computed_on_spark_equal_duckdbs(lake, spark_engine):
    duck = reference_bins.frozen_bins(lake, DATASET, persist=False)
    spark = reference_bins.frozen_bins(lake, DATASET, persist=False, engine=spark_engine)
    assert spark.to_json() == duck.to_json()


def test_present_excludes_null_nan_and_infinities_on_spark(spark_engine, tmp_path):
    from analysis.engine import connect, files_view, present, to_arrow
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"x": [1.0, None, np.nan, np.inf, -np.inf, 0.0, -2.5]}), path)
    con = connect(spark_engine)
    t = files_view(con, "present_check", [path])
    assert to_arrow(con, t.select(ok=present(t.x))).column("ok").to_pylist() == [
        True, False, False, False, False, True, True]


def _sorted(path, key):
    frame = pq.read_table(path).to_pandas().sort_values(key, na_position="first")
    return frame.reset_index(drop=True)


def test_spark_profiles_equal_duckdbs_and_sum_with_them(lake, spark_engine, tmp_path):
    store = _copy(lake, tmp_path / "store")
    bins = reference_bins.frozen_bins(store, DATASET)
    folder = codes.codes_folder(store, DATASET, bins)
    snaps = store.snapshots(DATASET)
    kept = tmp_path / "duckdb"   # DuckDB's files, to compare with
    kept.mkdir()
    for snap in snaps:
        for path in codes.profile_paths(folder, snap.id).values():
            path.rename(kept / path.name)
    for slice_ in ("reference", "production"):
        profiles.ensure_codes(store, DATASET, bins, slice=slice_, engine=spark_engine)
    for snap in snaps:
        ours = codes.profile_paths(folder, snap.id)
        duck = codes.profile_paths(kept, snap.id)
        assert json.loads(ours["meta"].read_text()) == json.loads(duck["meta"].read_text())
        key = ["seg", "cell", "feature", "bin"]
        assert pq.read_table(ours["days"]).schema == onepass.DAYS_SCHEMA
        assert _sorted(ours["days"], key).equals(_sorted(duck["days"], key))
        key = ["feature", "bin"]
        a, b = _sorted(ours["fine"], key), _sorted(duck["fine"], key)
        assert a[key + ["n", "lo", "hi"]].equals(b[key + ["n", "lo", "hi"]])
        np.testing.assert_allclose(a["sum"], b["sum"], rtol=1e-12, atol=1e-12)
        key = ["segcol", "segment", "feature"]
        a, b = _sorted(ours["moments"], key), _sorted(duck["moments"], key)
        assert a[key + ["n"]].equals(b[key + ["n"]])
        for col in ("mean", "m2"):
            np.testing.assert_allclose(a[col].astype(float), b[col].astype(float),
                                       rtol=1e-9, atol=1e-12)
    # half Spark's profiles, half DuckDB's: the sums are the same as all DuckDB's
    for snap in snaps[1::2]:
        for part, path in codes.profile_paths(kept, snap.id).items():
            path.replace(codes.profile_paths(folder, snap.id)[part])
    mixed = heatmap.build_cube(store, DATASET, "g", "coarse", "day", bins=bins,
                               engine=spark_engine)
    _same_cube(heatmap.build_cube(lake, DATASET, "g", "coarse", "day", bins=bins), mixed)


def test_spark_profiles_a_new_snapshot_and_duckdb_reads_it(lake, spark_engine, tmp_path):
    store = _copy(lake, tmp_path / "store")
    rng = np.random.default_rng(3)
    store.add_snapshot(DATASET, "production", _rows(rng, 1200, "2025-06-01", 1.0),
                       source="p3")
    bins = reference_bins.frozen_bins(store, DATASET)
    spark = heatmap.build_cube(store, DATASET, "h", "coarse", "day", bins=bins,
                               engine=spark_engine)   # writes the new profile on Spark
    folder = codes.codes_folder(store, DATASET, bins)
    new = store.snapshots(DATASET, "production")[-1]
    assert codes.profile_complete(folder, new.id)
    assert not (folder / f"{new.id}.parquet").exists()   # Spark writes no bin codes
    duck = heatmap.build_cube(store, DATASET, "h", "coarse", "day", bins=bins,
                              profiles=False)
    _same_cube(duck, spark)
    assert spark.windows.max() == np.datetime64("2025-06-25")


def test_production_rows_from_a_spark_table(lake, spark_engine, tmp_path):
    folder = tmp_path / "predictions"
    folder.mkdir()
    for i, path in enumerate(lake.files(DATASET, "production")):
        shutil.copy(path, folder / f"part-{i}.parquet")
    table = Engine("spark", spark_engine.master, f"parquet.`{folder}`")
    bins = reference_bins.frozen_bins(lake, DATASET)
    for resolution, unit in (("coarse", "day"), ("fine", "month")):
        _same_cube(heatmap.build_cube(lake, DATASET, "g", resolution, unit, bins=bins),
                   heatmap.build_cube(lake, DATASET, "g", resolution, unit, bins=bins,
                                      engine=table))
    cut = Filters(pd.Timestamp("2025-03-20"), pd.Timestamp("2025-05-01"))
    duck, spark = (heatmap.binned_drift_table(lake, DATASET, cut, bins, engine=e)
                   for e in (None, table))
    np.testing.assert_allclose(duck["statistic"].to_numpy(float),
                               spark["statistic"].to_numpy(float), rtol=0, atol=1e-9)


def _command(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_heatmap_command_gives_the_same_cells_on_both_engines(lake, spark_engine, capsys):
    """End to end through the command line (in this process, so that its Spark is the
    run's one session: a second JVM would not fit the machine)."""
    for metric, unit, extra in (("psi", "month", ["--segment", "g"]),
                                ("ks", "week", ["--segment", "g", "--group", "a"]),
                                ("wasserstein", "month", [])):
        args = ["heatmap", "--store", str(lake.root), "--dataset", DATASET, "--unit", unit,
                "--metric", metric, *extra, "--json"]
        code, duck, _ = _command(capsys, *args, "--engine", "duckdb")
        assert code == 0
        code, spark, _ = _command(capsys, *args, "--engine", "spark", "--spark-master",
                                  spark_engine.master)
        assert code == 0
        duck, spark = json.loads(duck), json.loads(spark)
        assert len(duck) == len(spark) > 0
        for a, b in zip(duck, spark):
            assert set(a) == {"feature", "window_start", "group", "value", "rows"}
            assert {k: a[k] for k in a if k != "value"} == {k: b[k] for k in b if k != "value"}
            assert (a["value"] is None) == (b["value"] is None)
            if a["value"] is not None:
                assert abs(a["value"] - b["value"]) <= 1e-9
    code, text, _ = _command(capsys, "heatmap", "--store", str(lake.root), "--dataset",
                             DATASET, "--engine", "spark", "--spark-master",
                             spark_engine.master)
    assert code == 0 and "Apache Spark (local[2])" in text and "2025-03-01" in text


def test_heatmap_page_aggregates_on_spark(lake, spark_engine, monkeypatch):
    """The dashboard configured for Spark: the Heatmap page draws its grid from Spark's
    cubes (PSI from the profiles, KS binning the rows), with the cells DuckDB gives."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from analysis.engine import engine_from_config
    from page_helpers import use_store
    from pathlib import Path
    use_store(lake.root, monkeypatch)
    monkeypatch.setenv("DRIFT_ENGINE", "spark")
    monkeypatch.setenv("DRIFT_SPARK_MASTER", spark_engine.master)
    assert engine_from_config() == spark_engine
    st.cache_data.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"),
                           default_timeout=300)
    at.run()
    assert any("Apache Spark (local[2])" in c.value for c in at.caption)
    at.switch_page("pages/3_Heatmap.py")
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    at.selectbox(key="heatmap.metric").set_value("ks").run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert any("KS" in c.value for c in at.caption)
    st.cache_data.clear()


def test_spark_with_duckdbs_query_shape_gives_the_same(lake, spark_engine, tmp_path):
    """Spark runs DuckDB's own layout too (one aggregation per feature, unioned): the same
    cubes, and the same profiles, which it writes here for a store that has none."""
    union = Engine("spark", spark_engine.master, shape="union")
    store = _copy(lake, tmp_path / "store")
    bins = reference_bins.frozen_bins(store, DATASET)
    shutil.rmtree(codes.codes_folder(store, DATASET, bins))
    for resolution, unit in (("coarse", "day"), ("fine", "month")):
        _same_cube(heatmap.build_cube(lake, DATASET, "g", resolution, unit, bins=bins),
                   heatmap.build_cube(store, DATASET, "g", resolution, unit, bins=bins,
                                      engine=union))
    duck, spark = (heatmap.binned_drift_table(s, DATASET, None, bins, engine=e)
                   for s, e in ((lake, None), (store, union)))
    np.testing.assert_allclose(duck["statistic"].to_numpy(float),
                               spark["statistic"].to_numpy(float), rtol=0, atol=1e-9)
