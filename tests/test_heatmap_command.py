"""The ``heatmap`` command on DuckDB (end to end, in a new process), its one-line errors,
and the engine choice: its configuration and the Home page naming it. The same command
on Spark, cell by cell against DuckDB: tests/test_spark.py."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from analysis import cli, heatmap, reference_bins
from analysis.engine import DUCKDB, Engine, engine_from_config
from analysis.heatmap_command import heatmap_cells
from analysis.spark import settings
from smallstore import make_small_store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The small 'shop' store with two production months, the second shifted."""
    from analysis.ingest import ingest
    folder = tmp_path_factory.mktemp("shop")
    store, frame = make_small_store(folder)
    for i, (start, shift) in enumerate((("2025-03-01", 0.0), ("2025-04-01", 1.5))):
        path = folder / f"p{i}.csv"
        frame(700, start, shift).to_csv(path, index=False)
        assert ingest(store, "shop", "production", path).snapshot is not None
    return store


def _run(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis", *argv], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_heatmap_command_prints_the_grids_cells(shop):
    out = _run("heatmap", "--store", str(shop.root), "--dataset", "shop", "--segment",
               "group", "--metric", "psi", "--json", "--engine", "duckdb")
    assert out.returncode == 0, out.stderr
    cells = json.loads(out.stdout)
    assert {c["group"] for c in cells} == {"all", "a", "b"}
    assert all(set(c) == {"feature", "window_start", "group", "value", "rows"} for c in cells)
    # every cell is the page's: the same cube, roll-up and grid
    bins = reference_bins.frozen_bins(shop, "shop")
    cube = heatmap.build_cube(shop, "shop", "group", "coarse", "day", bins=bins)
    for group in ("all", "a", "b"):
        grid = heatmap.grid(heatmap.select(cube, "month", segments=None if group == "all"
                                           else [group]), "psi", bins)
        mine = [c for c in cells if c["group"] == group]
        assert [c["feature"] for c in mine] == list(grid["feature"])
        assert [c["rows"] for c in mine] == list(grid["rows"])
        assert [pd.Timestamp(c["window_start"]) for c in mine] == list(grid["window_start"])
        np.testing.assert_allclose([c["value"] for c in mine], grid["value"], rtol=0,
                                   atol=1e-12)
    x = {c["window_start"][:7]: c["value"] for c in cells
         if c["group"] == "all" and c["feature"] == "x"}
    assert x["2025-04"] > 0.25 > x["2025-03"]   # the shifted month, major; the other not
    text = _run("heatmap", "--store", str(shop.root), "--dataset", "shop", "--unit", "week")
    assert text.returncode == 0, text.stderr
    assert "DuckDB (embedded)" in text.stdout and "2025-03-03" in text.stdout


def test_heatmap_cells_of_one_group_and_the_fine_metrics(shop):
    one = heatmap_cells(shop, "shop", "month", "ks", "group", "b")
    assert set(one["group"]) == {"b"} and set(one["feature"]) == {"x"}
    assert one["value"].between(0, 1).all()
    w = heatmap_cells(shop, "shop", "week", "wasserstein")
    assert set(w["group"]) == {"all"} and (w["value"].dropna() >= 0).all()


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "nope"], "no dataset 'nope'"),
    (["--dataset", "shop", "--metric", "gini"], "unknown metric 'gini'"),
    (["--dataset", "shop", "--unit", "year"], "unknown unit 'year'"),
    (["--dataset", "shop", "--segment", "city"], "no segment column 'city'"),
    (["--dataset", "shop", "--segment", "group", "--group", "z"], "has no group 'z'"),
    (["--dataset", "shop", "--group", "a"], "--group needs --segment"),
    (["--dataset", "shop", "--engine", "hadoop"], "unknown engine 'hadoop'"),
    (["--dataset", "shop", "--spark-master", "local[2]"], "need --engine spark"),
    (["--dataset", "shop", "--engine", "spark", "--spark-table", "a;drop"],
     "not a table name"),
])
def test_heatmap_command_refuses_bad_input_in_one_line(shop, capsys, argv, message):
    code = cli.main(["heatmap", "--store", str(shop.root), *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_engine_from_the_environment_or_the_secrets():
    assert engine_from_config({}) == DUCKDB
    assert engine_from_config({"DRIFT_ENGINE": "Spark"}) == Engine("spark")
    assert engine_from_config({"DRIFT_ENGINE": "spark", "DRIFT_SPARK_MASTER": "yarn"}
                              ) == Engine("spark", "yarn")
    secrets = {"engine": "spark", "spark_master": "sc://lake:15002", "spark_table": "db.t"}
    assert engine_from_config({}, secrets) == Engine("spark", "sc://lake:15002", "db.t")
    # the environment wins over the secrets
    assert engine_from_config({"DRIFT_ENGINE": "duckdb"}, secrets) == DUCKDB
    with pytest.raises(ValueError, match="unknown engine"):
        engine_from_config({"DRIFT_ENGINE": "oracle"})
    assert Engine("spark", "local[2]").label == "Apache Spark (local[2])"


def test_spark_settings_bind_local_mode_to_loopback():
    local = settings("local[2]", {"DRIFT_SPARK_CONF": "spark.ui.enabled=false, a.b=1"})
    assert local["spark.driver.host"] == local["spark.driver.bindAddress"] == "127.0.0.1"
    assert local["spark.ui.enabled"] == "false" and local["a.b"] == "1"
    assert local["spark.sql.session.timeZone"] == "UTC"
    cluster = settings("spark://lake:7077", {})
    assert "spark.driver.bindAddress" not in cluster   # executors must reach the driver
    with pytest.raises(ValueError, match="key=value"):
        settings("local[2]", {"DRIFT_SPARK_CONF": "spark.ui.enabled"})
    # a Spark Connect client sets only its session's SQL settings
    assert settings("sc://lake:15002", {"DRIFT_SPARK_CONF": "spark.ui.enabled=false "
                                        "spark.sql.shuffle.partitions=8"}) == {
        "spark.sql.session.timeZone": "UTC", "spark.sql.adaptive.enabled": "true",
        "spark.sql.shuffle.partitions": "8"}


def test_home_page_names_the_engine(demo_store, monkeypatch):
    st.cache_data.clear()
    for env, label in (({}, "DuckDB (embedded)"),
                       ({"DRIFT_ENGINE": "spark", "DRIFT_SPARK_MASTER": "sc://127.0.0.1:9"},
                        "Apache Spark (sc://127.0.0.1:9)")):
        for name in ("DRIFT_ENGINE", "DRIFT_SPARK_MASTER"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        assert not at.exception, at.exception
        assert any(label in c.value for c in at.caption), [c.value for c in at.caption]
        if env:   # no server there: one clear error instead of the pages' numbers
            assert [e.value for e in at.error] and "cannot run: no Spark Connect server " \
                "answers at sc://127.0.0.1:9" in at.error[0].value, [e.value for e in at.error]


def test_spark_without_java_is_a_one_line_error(shop, capsys, monkeypatch):
    from analysis import spark
    monkeypatch.setattr(spark.shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert "openjdk-17-jre-headless" in spark.java_problem()

    def no_java(engine):
        raise spark.SparkUnavailable(spark.java_problem())

    monkeypatch.setattr(spark, "session", no_java)
    code = cli.main(["heatmap", "--store", str(shop.root), "--dataset", "shop",
                     "--engine", "spark"])
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: Spark needs Java 17") and err.count("\n") == 1


def test_duckdb_gives_the_same_counts_in_sparks_query_shape(shop):
    """The "unpivot" layout (one scan, a row per feature; Spark's) counts what DuckDB's
    own "union" layout counts, on DuckDB too."""
    bins = reference_bins.frozen_bins(shop, "shop")
    long = Engine("duckdb", shape="unpivot")
    for resolution, unit in (("coarse", "week"), ("fine", "month")):
        a = heatmap.build_cube(shop, "shop", "group", resolution, unit, bins=bins,
                               profiles=False)
        b = heatmap.build_cube(shop, "shop", "group", resolution, unit, bins=bins,
                               profiles=False, engine=long)
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_array_equal(a.reference, b.reference)
        for name in a.extra:
            np.testing.assert_allclose(a.extra[name], b.extra[name], rtol=1e-12)
