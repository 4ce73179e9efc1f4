"""Durability with a real service process (uvicorn) on loopback: ``kill -9`` during
traffic loses no acknowledged prediction and a restart stores each exactly once; SIGTERM
drains (answers what is in flight, stores everything, exits 0). Traffic is bounded in
count and time; every process started here is stopped here."""
import threading
import time

import duckdb

from analysis.catalog import datasets_table
from analysis.queries import parquet_source
from analysis.scenarios import iris
from analysis.serving import traffic
from analysis.store import Store
from serving_helpers import start_service, stop


def _ids(store):
    files = store.files(iris.DATASET, "production")
    if not files:
        return []
    with duckdb.connect() as con:
        return [r[0] for r in con.execute(f"SELECT {iris.ID} FROM {parquet_source(files)}").fetchall()]


def _traffic_in_background(url, duration, rate=150.0, **kw):
    result = {}

    def go():
        result["report"] = traffic.run(url, rate=rate, duration=duration, timeout=3.0, **kw)
    thread = threading.Thread(target=go)
    thread.start()
    return thread, result


def _wait_for_rows(url, at_least, timeout=20.0):
    import httpx
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).json()["rows_logged"] >= at_least:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the service did not log the expected rows")


def test_kill_9_during_traffic_loses_nothing_acknowledged(tmp_path):
    store = Store(tmp_path / "store")
    log = tmp_path / "service.log"
    proc, url = start_service(store.root, log=log)
    try:
        thread, result = _traffic_in_background(url, duration=4.0, feedback_share=0.3,
                                                feedback_delay=0.3)
        _wait_for_rows(url, 150)
        stop(proc, hard=True)                        # kill -9 in the middle of traffic
        thread.join(60)
        report = result["report"]
        acknowledged = report.acknowledged_ids
        assert report.acknowledged >= 150 and report.failures > 0   # it died mid-traffic
        before = set(_ids(store))
        pending = datasets_table(store)[0]
        # what the crash left in the log counts as production rows already
        assert pending["production_rows"] >= len(acknowledged)
        proc, url = start_service(store.root, log=log)   # restart: replay the log
        stored = _ids(store)
        assert len(stored) == len(set(stored)), "a request id stored twice"
        missing = set(acknowledged) - set(stored)
        assert not missing, f"{len(missing)} acknowledged prediction(s) lost"
        assert len(stored) >= len(before)
        assert datasets_table(store)[0]["production_rows_pending"] == 0
        # a second restart replays nothing twice
        stop(proc)
        proc, url = start_service(store.root, log=log)
        again = _ids(store)
        assert sorted(again) == sorted(stored)
    finally:
        stop(proc)
    assert "replayed the log" in log.read_text()


def test_sigterm_drains_and_stores_everything(tmp_path):
    store = Store(tmp_path / "store")
    proc, url = start_service(store.root)
    try:
        thread, result = _traffic_in_background(url, duration=3.0, rate=150.0)
        _wait_for_rows(url, 100)
        code = stop(proc)                            # SIGTERM while requests arrive
        thread.join(60)
    finally:
        stop(proc, hard=True)
    assert code == 0
    report = result["report"]
    stored = _ids(store)
    assert set(report.acknowledged_ids) <= set(stored)
    assert len(stored) == len(set(stored))
    # drained: nothing left in the log for a next start
    row = datasets_table(store)[0]
    assert row["production_rows_pending"] == 0 and row["production_rows"] == len(stored)
    # requests after the drain began got no answer or 503, never a lost 200
    assert set(report.codes) <= {"200", "503"}
