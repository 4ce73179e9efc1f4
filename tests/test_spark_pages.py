"""The Overview, Feature drift and Segments pages and the postmortem bundle on Apache
Spark: the model's error per window and segment, the per-window drift summary and the
drift table computed on Spark equal DuckDB's, and the pages run on it.

On the shared local Spark session of the run (``spark_engine``, conftest.py).
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analysis import heatmap, slices, summary
from analysis.engine import sample_rows
from analysis.queries import Filters
from analysis.stats import EmptySampleError
from analysis.store import Roles, Store

pytestmark = pytest.mark.spark
DATASET = "rides"
APP = Path(__file__).resolve().parent.parent / "app.py"


def _rows(rng, n, start, shift=0.0):
    """Rows with a label (some NULL, some 0, which MAPE skips), a prediction (some NULL),
    a segment with NULLs, and a feature that moves by ``shift``."""
    y = np.round(rng.gamma(4, 10, n), 1)
    y[rng.random(n) < 0.05] = 0.0
    pred = y + rng.normal(shift * 5, 4, n)
    frame = pd.DataFrame({
        "ts": pd.date_range(start, periods=n, freq="37min"),
        "group": rng.choice(["a", "b", None], n, p=[0.5, 0.4, 0.1]),
        "x": rng.normal(shift, 1, n), "k": rng.poisson(3, n).astype(float),
        "c": rng.choice(["u", "v", "w"], n), "pred": pred, "y": y})
    frame.loc[rng.random(n) < 0.1, "y"] = np.nan
    frame.loc[rng.random(n) < 0.02, "pred"] = np.nan
    return pa.Table.from_pandas(frame, preserve_index=False)


@pytest.fixture(scope="module")
def rides(tmp_path_factory):
    rng = np.random.default_rng(21)
    store = Store(tmp_path_factory.mktemp("rides"))
    store.create_dataset(DATASET, Roles(timestamp="ts", segments=["group"], prediction="pred",
                                        target="y", numeric=["x", "k"], categorical=["c"]))
    store.add_snapshot(DATASET, "reference", _rows(rng, 4000, "2025-01-01"), source="r")
    for i, start in enumerate(("2025-03-01", "2025-04-15")):
        store.add_snapshot(DATASET, "production", _rows(rng, 3000, start, 0.5 * i),
                           source=f"p{i}")
    return store


FILTERS = [None, Filters(segments={"group": ("a",)}),
           Filters(pd.Timestamp("2025-03-20"), pd.Timestamp("2025-05-10"), {"group": ("b",)})]


@pytest.mark.parametrize("filters", FILTERS, ids=["all", "group-a", "range-and-b"])
def test_error_tables_equal_on_spark_and_duckdb(rides, spark_engine, filters):
    """Rows, labelled rows, MAE and MAPE per window, per segment and window, of the
    reference, and the row counts: the same on both engines (errors to 1e-9), and the
    MAE by hand."""
    for unit in ("day", "month") if filters is None else ("week",):
        duck, spark = (slices.window_metrics(rides, DATASET, unit, filters, e)
                       for e in (None, spark_engine))
        pd.testing.assert_frame_equal(duck, spark, rtol=1e-9, check_dtype=False)
        assert len(duck) > 1
    duck, spark = (slices.segment_window_metrics(rides, DATASET, "group", "week", filters, e)
                   for e in (None, spark_engine))
    pd.testing.assert_frame_equal(duck, spark, rtol=1e-9, check_dtype=False)
    assert "(missing)" in set(duck["segment"]) or filters is not None
    duck, spark = (slices.reference_error(rides, DATASET, filters, e)
                   for e in (None, spark_engine))
    assert duck == pytest.approx(spark, rel=1e-9)
    assert slices.row_counts(rides, DATASET, filters) == \
        slices.row_counts(rides, DATASET, filters, spark_engine)
    if filters is None:   # the sidebar's time range and groups
        for side in ("reference", "production"):
            assert slices.time_bounds(rides, DATASET, side) == \
                slices.time_bounds(rides, DATASET, side, spark_engine)
        assert slices.segment_values(rides, DATASET, "group") == \
            slices.segment_values(rides, DATASET, "group", spark_engine) == ["a", "b"]
    ref = pd.concat(pd.read_parquet(f) for f in rides.files(DATASET, "reference"))
    if filters is not None:
        ref = ref[ref["group"].isin(filters.segments["group"])]
    both = ref.dropna(subset=["y", "pred"])
    assert duck["mae"] == pytest.approx(np.mean(np.abs(both.y - both.pred)), rel=1e-12)
    nonzero = both[both.y != 0]
    assert duck["mape"] == pytest.approx(
        100 * np.mean(np.abs(nonzero.y - nonzero.pred) / nonzero.y), rel=1e-12)


@pytest.mark.parametrize("filters", FILTERS[::2], ids=["all", "range-and-b"])
def test_window_summary_and_drift_table_equal_on_spark_and_duckdb(rides, spark_engine,
                                                                   filters):
    """The Overview's per-window summary and the Feature drift page's table, from binned
    counts: the same windows, verdicts and statistics on both engines; and the shifted
    feature is the one the second snapshot's windows flag."""
    duck = summary.binned_window_summary(rides, DATASET, "month", filters)
    spark = summary.window_summary(rides, DATASET, "month", filters, engine=spark_engine)
    pd.testing.assert_frame_equal(duck, spark, rtol=1e-9, check_dtype=False)
    judged = duck[duck["note"] == ""]
    assert set(judged[judged["window_start"] >= pd.Timestamp("2025-05-01")]["drifted_list"]) \
        == {"x"}
    assert set(judged[judged["window_start"] < pd.Timestamp("2025-04-01")]["drifted_list"]) \
        == {""}
    duck = heatmap.binned_drift_table(rides, DATASET, filters)
    spark = summary.filtered_drift_table(rides, DATASET, filters, engine=spark_engine)
    assert list(duck["test"]) == list(spark["test"])
    assert list(duck["drifted"]) == list(spark["drifted"])
    np.testing.assert_allclose(duck["statistic"].to_numpy(float),
                               spark["statistic"].to_numpy(float), rtol=0, atol=1e-9)


def test_segments_cell_comparison_equal_on_spark_and_duckdb(rides, spark_engine):
    """The Segments page's two-cell comparison from binned counts: the same statistics
    and verdicts on both engines; x moved between March and May, nothing else; an empty
    cell is said to be empty."""
    march = Filters(pd.Timestamp("2025-03-01"), pd.Timestamp("2025-04-01"))
    may = Filters(pd.Timestamp("2025-05-01"), pd.Timestamp("2025-06-01"))
    duck = summary.binned_compare_cells(rides, DATASET, march, may)
    spark = summary.compare_cells(rides, DATASET, march, may, engine=spark_engine)
    assert list(duck["drifted"]) == list(spark["drifted"])
    np.testing.assert_allclose(duck["statistic"].to_numpy(float),
                               spark["statistic"].to_numpy(float), rtol=0, atol=1e-9)
    assert list(duck[duck["drifted"].fillna(False).astype(bool)]["feature"]) == ["x"]
    with pytest.raises(EmptySampleError, match="cell B has no production rows"):
        summary.compare_cells(rides, DATASET, march, Filters(pd.Timestamp("2030-01-01")),
                              engine=spark_engine)


def test_spark_draws_a_bounded_sample_for_the_pictures(rides, spark_engine):
    """The distribution pictures on Spark read a sample: every row when few, about
    ``limit`` rows drawn from the filtered ones when many."""
    f = Filters(segments={"group": ("a",)})
    every = sample_rows(rides, DATASET, "production", ["x", "group"], f, spark_engine)
    assert len(every) == slices.row_counts(rides, DATASET, f)["production"]
    assert set(every["group"]) == {"a"}
    some = sample_rows(rides, DATASET, "production", ["x"], f, spark_engine, limit=500)
    assert 300 < len(some) < 700
    assert set(some["x"]) <= set(every["x"])
    with pytest.raises(ValueError, match="default ones"):
        summary.filtered_drift_table(rides, DATASET, None, test="ks", engine=spark_engine)


def test_overview_feature_drift_and_segments_pages_on_spark(rides, spark_engine, monkeypatch):
    """The dashboard configured for Spark: Overview, Feature drift and Segments draw their
    numbers from Spark without an error; Feature drift names the engine, offers only the
    default tests and shows as many drifted features as DuckDB's binned table has."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from page_helpers import use_store
    use_store(rides.root, monkeypatch)
    monkeypatch.setenv("DRIFT_ENGINE", "spark")
    monkeypatch.setenv("DRIFT_SPARK_MASTER", spark_engine.master)
    st.cache_data.clear()
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    for page in ("pages/1_Overview.py", "pages/4_Segments.py"):
        at.switch_page(page)
        at.run()
        assert not at.exception and not at.error, (page, at.exception,
                                                    [e.value for e in at.error])
    at.switch_page("pages/2_Feature_drift.py")
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert at.selectbox(key="feature.test").disabled
    assert any("Apache Spark (local[2])" in c.value and "binned counts" in c.value
               for c in at.caption)
    drifted = heatmap.binned_drift_table(rides, DATASET)["drifted"].fillna(False).sum()
    assert drifted >= 1 and at.metric[0].value == f"{drifted} of 3"
    st.cache_data.clear()


def test_investigation_on_spark_reads_a_sample_and_finds_the_same_drift(rides, spark_engine,
                                                                          monkeypatch):
    """Data vs concept on Spark: the investigation reads a random sample drawn in Spark
    (here at most about 5,000 of the 6,000 production rows), says so, keeps its result
    apart from DuckDB's, and finds what DuckDB's finds on every row: data drift in x."""
    from analysis import concept_view, investigation
    monkeypatch.setattr(investigation, "SPARK_SAMPLE", 5000)
    duck = investigation.investigate_store(rides, DATASET)
    spark = investigation.investigate_store(rides, DATASET, engine=spark_engine)
    read, total = spark["sample"]["production"]
    assert total == 6000 and 4500 < read < 5500 and spark["production_rows"] == read
    assert spark["sample"]["reference"] == [4000, 4000]
    assert "random sample" in concept_view.sample_note(spark)
    assert concept_view.sample_note(duck) is None
    # the sample is unseeded (Ibis cannot seed one on Spark) and its rows come in
    # Spark's order: the concept family, tested at a family-wise 5 %, may flag on it in
    # about one run in thirty (measured on 80 such samples), so on the sample the data
    # part is what must agree; DuckDB's own run is deterministic
    assert duck["verdict"] == "data"
    assert spark["verdict"] in ("data", "both")
    for result in (duck, spark):
        assert [f["feature"] for f in result["drifted_features"]] == ["x"]
    assert investigation.cached_investigation(rides, DATASET, engine=spark_engine) == spark
    assert investigation.cached_investigation(rides, DATASET) == duck


def test_report_command_builds_the_postmortem_bundle_on_spark(rides, spark_engine, tmp_path,
                                                             capsys):
    """``python -m analysis report --engine spark``: the bundle's drift table is the one
    DuckDB's binned counts give, and its report names the drifted feature; a wrong engine
    is a one-line error (exit 2)."""
    import io
    import zipfile

    from analysis import cli
    out = tmp_path / "bundle.zip"
    args = ["report", "--store", str(rides.root), "--dataset", DATASET, "--from", "2025-05-01",
            "--out", str(out)]
    assert cli.main(args + ["--engine", "spark", "--spark-master", spark_engine.master]) == 0
    bundle = zipfile.ZipFile(out)
    table = pd.read_csv(io.BytesIO(bundle.read("data/drift_table.csv")))
    duck = heatmap.binned_drift_table(rides, DATASET, Filters(pd.Timestamp("2025-05-01")))
    assert list(table["feature"]) == list(duck["feature"])
    np.testing.assert_allclose(table["statistic"], duck["statistic"].astype(float), atol=1e-9)
    assert "1 of 3 features drifted" in " ".join(bundle.read("report.html").decode().split())
    capsys.readouterr()
    assert cli.main(args + ["--engine", "bogus"]) == 2
    assert "unknown engine 'bogus'" in capsys.readouterr().err
