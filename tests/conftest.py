"""Shared fixtures: the demo store (built once if absent) and small generated frames."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "tests"):  # the project, and helpers shared by test folders
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from analysis.scenarios import rental  # noqa: E402
from analysis.store import DEFAULT_STORE, Store  # noqa: E402


@pytest.fixture(scope="session")
def demo_store() -> Store:
    """The default-size demo store that scripts/setup.sh builds (built here if absent)."""
    store = Store(DEFAULT_STORE)
    if rental.ground_truth()["dataset"] not in store.datasets():
        rental.build_store(store)
    return store


@pytest.fixture(scope="session")
def ground_truth() -> dict:
    return rental.ground_truth()


@pytest.fixture(scope="module")
def bins(demo_store):
    """The demo's frozen reference bins."""
    from analysis.reference_bins import frozen_bins
    return frozen_bins(demo_store, rental.ground_truth()["dataset"])


@pytest.fixture(scope="module")
def raw(demo_store):
    """The demo's reference and production rows (timestamp, segments, features)."""
    from analysis.queries import load_frame
    dataset = rental.ground_truth()["dataset"]
    roles = demo_store.dataset(dataset).roles
    cols = [roles.timestamp, *roles.segments, *roles.features]
    return (load_frame(demo_store, dataset, "reference", cols),
            load_frame(demo_store, dataset, "production", cols))


@pytest.fixture(scope="module")
def snapshots_store(tmp_path_factory):
    """Time-ordered snapshots (three production, two reference) with missing values in
    every column kind, so profile sums meet cut snapshots, NaN and NULL segments."""
    import numpy as np
    import pandas as pd
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


@pytest.fixture(scope="session")
def demo_investigation(demo_store) -> dict:
    """The Data vs concept page's default investigation of the demo, kept in the store
    (computed here, in this process, when set-up has not)."""
    from analysis.investigation import investigate_store
    return investigate_store(demo_store, rental.ground_truth()["dataset"])


@pytest.fixture(autouse=True)
def no_job_left_behind():
    """A test's worker processes (jobs started in this process) end with the test."""
    from analysis import jobs
    yield
    for path in jobs.started_here():
        jobs.cancel(path)


@pytest.fixture(scope="session")
def spark_engine():
    """The one local Spark session of the test run (two cores, no web UI, driver bound to
    127.0.0.1, few shuffle partitions), as the :class:`analysis.engine.Engine` that the
    code under test uses; stopped at the end. Without Java the Spark tests fail, saying
    so: ``bash scripts/test.sh`` installs it (Debian's openjdk-17-jre-headless), and a
    skipped parity test would prove nothing."""
    import os

    from analysis import spark
    from analysis.engine import Engine
    problem = spark.java_problem()
    if problem:
        pytest.fail(f"{problem}; bash scripts/test.sh installs Java (openjdk-17-jre-headless)")
    saved = os.environ.get("DRIFT_SPARK_CONF")
    os.environ["DRIFT_SPARK_CONF"] = ("spark.ui.enabled=false spark.sql.shuffle.partitions=2 "
                                      "spark.default.parallelism=2")
    engine = Engine("spark", "local[2]")
    try:
        spark.session(engine)
        yield engine
    finally:
        spark.stop()
        if saved is None:
            os.environ.pop("DRIFT_SPARK_CONF", None)
        else:
            os.environ["DRIFT_SPARK_CONF"] = saved



def pytest_collection_modifyitems(config, items):
    """When the run is spread over workers (``-n``, pytest-xdist), the Spark tests go to
    one worker together: one Spark session, one JVM, for the whole run."""
    for item in items:
        if item.get_closest_marker("spark"):
            item.add_marker(pytest.mark.xdist_group("spark"))
