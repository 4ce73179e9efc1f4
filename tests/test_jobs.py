"""Jobs in worker processes: started once, watched, cancelled, their failures reported, and
no process left behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from analysis import investigation as inv
from analysis import jobs
from small_upload import diabetes_store


@pytest.fixture()
def store(tmp_path):
    return diabetes_store(tmp_path, 1, dataset="diabetes")


def _worker_pid(path) -> int | None:
    claim = jobs._read_json(path.with_suffix(".job")) or {}
    return claim.get("pid")


def _alive(pid: int) -> bool:
    return jobs._process_start(pid) is not None


def test_investigation_job_runs_once_and_leaves_its_result(store):
    path, params = inv.investigation_job(store, "diabetes")
    assert jobs.state(path).state == "idle" and not path.exists()
    assert jobs.start("investigation", params, path)
    assert not jobs.start("investigation", params, path)     # already running: not twice
    running = jobs.state(path)
    assert running.running
    pid = _worker_pid(path)
    done = jobs.wait(path, timeout=300)
    assert done.state == "idle" and path.exists()
    result = json.loads(path.read_text())
    assert result == inv.investigate_store(store, "diabetes")   # what the page reads
    assert result["verdict"] in ("data", "both")
    assert not path.with_suffix(".job").exists() and not path.with_suffix(".progress").exists()
    deadline = time.monotonic() + 5
    while pid is not None and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid is None or not _alive(pid)


def test_cancel_stops_the_worker_and_clears_the_claim(store):
    path, params = inv.investigation_job(store, "diabetes", unit="day")
    assert jobs.start("investigation", params, path)
    deadline = time.monotonic() + 30
    while _worker_pid(path) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = _worker_pid(path)
    assert pid is not None and _alive(pid)
    jobs.cancel(path)
    assert not _alive(pid)
    assert jobs.state(path).state == "idle"
    assert not path.exists() and not path.with_suffix(".job").exists()


def test_a_failing_job_reports_why(store):
    path, params = inv.investigation_job(store, "diabetes")
    params = {**params, "dataset": "no_such_dataset"}
    assert jobs.start("investigation", params, path)
    now = jobs.wait(path, timeout=120)
    assert now.state == "failed" and "no_such_dataset" in now.error
    assert not path.exists()
    # started again, the old error is cleared
    _, good = inv.investigation_job(store, "diabetes")
    assert jobs.start("investigation", good, path)
    assert jobs.state(path).error is None
    assert jobs.wait(path, timeout=300).state == "idle" and path.exists()


def test_a_claim_whose_worker_is_gone_is_stale(store):
    path, params = inv.investigation_job(store, "diabetes")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".job").write_text(json.dumps(
        {"kind": "investigation", "params": params, "created": time.time() - 60,
         "pid": gone.pid, "pid_start": "1"}))
    now = jobs.state(path)
    assert now.state == "failed" and "stopped before it finished" in now.error
    assert not path.with_suffix(".job").exists()
    assert jobs.start("investigation", params, path)          # can be started again
    jobs.cancel(path)


def test_progress_reads_the_step_of_the_message(tmp_path):
    result = tmp_path / "x.result"
    result.with_suffix(".job").write_text(json.dumps(
        {"kind": "investigation", "params": {}, "created": time.time(), "pid": os.getpid(),
         "pid_start": jobs._process_start(os.getpid())}))
    result.with_suffix(".progress").write_text(json.dumps(
        {"message": "[3/12] window 2025-03-01 00:00: 7,000 rows"}))
    now = jobs.state(result)
    assert now.running and now.fraction == pytest.approx(0.25)
    assert now.message == "window 2025-03-01 00:00: 7,000 rows"


def test_evidence_is_kept_in_the_store(tmp_path):
    store = diabetes_store(tmp_path, 1, shifted=False, dataset="diabetes")
    result = inv.investigate_store(store, "diabetes")
    cell = next(c for c in result["cells"] if c["concept"].get("judged"))
    args = (store, "diabetes", None, None, cell["segment"], cell["start"], cell["end"])
    assert inv.cached_evidence(*args) is None
    path, params = inv.evidence_job(*args)
    assert jobs.start("evidence", params, path)
    assert jobs.wait(path, timeout=300).state == "idle"
    kept = inv.cached_evidence(*args)
    fresh = inv._cell_evidence_uncached(*args, seed=0)
    for key in ("coefficients", "importance", "predictions"):
        assert kept[key].round(9).equals(fresh[key].round(9)), key
    assert kept["window_rows"] == fresh["window_rows"] == cell["rows"]
