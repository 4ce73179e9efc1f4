"""Helpers for the model-service tests: a real service process on a free loopback port,
and a small iris-api store with generated traffic (no service needed)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(store: Path, port: int | None = None, timeout: float = 60.0,
                  log: Path | None = None):
    """``python -m analysis serve`` on ``store`` at 127.0.0.1; (process, URL) once
    /health answers."""
    port = port or free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "analysis", "serve", "--store", str(store),
                             "--port", str(port), "--compact-interval", "0.5"],
                            cwd=ROOT, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc, hard=True)
            raise RuntimeError(f"the service did not start (exit {proc.poll()})")
        time.sleep(0.2)


def stop(proc, hard: bool = False, timeout: float = 30.0) -> int | None:
    """Stop the service: SIGTERM (drain) or SIGKILL; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


def iris_store(folder: Path, minutes: int = 6, rows: int = 200, shift_from: int | None = 3,
               shift: str = "new-cluster", label_share: float = 0.5, seed: int = 1,
               start: str = "2026-01-05 10:00"):
    """A store whose ``iris-api`` dataset has the reference (training rows) and
    ``minutes`` minutes of ``rows`` served predictions each, shifted from minute
    ``shift_from`` on, and true labels for ``label_share`` of them (as late labels).
    Returns (store, production rows as a frame with the true species in ``truth``)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from analysis.scenarios import iris
    from analysis.serving.service import LABELLED_AT, label_schema, predict_rows
    from analysis.serving.traffic import RecordSampler
    from analysis.store import Store

    store = Store(folder / "store")
    model = iris.prepare(store, say=lambda m: None)
    sampler = RecordSampler(seed)
    rng = np.random.default_rng(seed)
    frames = []
    for minute in range(minutes):
        shifted = shift_from is not None and minute >= shift_from
        X, truth = sampler.draw(rows, shift if shifted else None)
        t0 = pd.Timestamp(start) + pd.Timedelta(minutes=minute)
        stamps = t0 + pd.to_timedelta(np.sort(rng.integers(0, 59_000_000, rows)), unit="us")
        ids = [f"m{minute}-{i:04d}" for i in range(rows)]
        out, _, _, _ = predict_rows(model, X, 0, ids)
        for row, ts in zip(out, stamps):
            row[iris.TIMESTAMP] = ts.to_pydatetime()
        table = pa.Table.from_pylist(out, schema=iris.row_schema())
        store.add_snapshot(iris.DATASET, "production", table, source="test traffic",
                           check_duplicate=False)
        frame = table.to_pandas()
        frame["truth"] = truth
        frames.append(frame)
    if not frames:
        return store, pd.DataFrame()
    production = pd.concat(frames, ignore_index=True)
    labelled = production.sample(frac=label_share, random_state=seed) if label_share else \
        production.iloc[:0]
    if len(labelled):
        store.add_labels(iris.DATASET, pa.Table.from_pydict({
            iris.ID: labelled[iris.ID].tolist(), iris.TARGET: labelled["truth"].tolist(),
            LABELLED_AT: labelled[iris.TIMESTAMP].tolist()}, schema=label_schema()),
            source="test labels")
    production["labelled"] = production[iris.ID].isin(set(labelled[iris.ID]))
    return store, production
