"""The engine plumbing: compiled SQL reused across filter values, epochs, missing values."""
from datetime import datetime

from analysis import counts
from analysis.queries import Filters

DATASET = "rental_pricing"

def test_filtered_queries_do_not_leave_files_behind(demo_store, bins):
    from datetime import datetime
    folder = demo_store.root / DATASET / "bins"
    # filter values live in the source view: every filter reuses the shape's compiled SQL
    counts.binned_counts(demo_store, DATASET, "production", bins.coarse)
    before = set(folder.glob("sql-*.sql"))
    for day in range(1, 6):
        f = Filters(datetime(2025, 7, day), datetime(2025, 8, day))
        counts.day_counts_from_codes(demo_store, DATASET, bins, "user_group", f)
        counts.binned_counts(demo_store, DATASET, "production", bins.coarse, filters=f)
    assert set(folder.glob("sql-*.sql")) == before


def test_epoch_us_of_naive_values_only():
    import pandas as pd

    from analysis.engine import epoch_us
    assert epoch_us(datetime(1970, 1, 2)) == 86_400_000_000
    assert epoch_us(pd.Timestamp("1969-12-31 23:59:59.9999995")) == -1  # floored
    assert epoch_us(pd.Timestamp("2025-01-01", tz="UTC")) is None
    assert epoch_us(None) is None


def test_present_excludes_null_nan_and_infinities():
    import ibis
    import numpy as np

    from analysis.engine import new_con, present
    con = new_con()
    t = ibis.memtable({"x": [1.0, None, np.nan, np.inf, -np.inf, 0.0]})
    assert con.to_pyarrow(t.select(ok=present(t.x))).column("ok").to_pylist() == [
        True, False, False, False, False, True]


def test_engine_settings_travel_to_a_background_job_and_back():
    """A job gets the page's engine as JSON: DuckDB as None (its results keep their
    keys), Spark with its master, table and shape."""
    from analysis.engine import Engine, engine_from_json, engine_to_json
    assert engine_to_json(None) is None and engine_to_json(Engine()) is None
    assert engine_from_json(None) is None
    spark = Engine("spark", "spark://10.0.0.5:7077", "db.predictions", "union")
    assert engine_from_json(engine_to_json(spark)) == spark
