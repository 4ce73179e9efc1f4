"""Throughput of the stream ingest while the dashboard reads: events/s made durable and
compacted, and how long a reader's ``read_aggregates`` takes meanwhile.

    .venv/bin/python bench/stream_ingest.py [--seconds 20] [--folder DIR] [--batch 2000]

1. Batches of the e-commerce scenario's events (``--batch`` events each, the size a
   real-clock stream at 10,000 events/s appends every 0.2 s) are generated before the
   clock starts, a pool of :data:`POOL_EVENTS` events reused with timestamps and
   request ids moved on at every round (generating is not what is measured).
2. For ``--seconds``, ``--writers`` threads append them as fast as :meth:`append`
   returns (each append durable: group commit), the compactor writes parts every
   second, and a reader thread calls :func:`read_aggregates` every 0.5 s.
3. ``close()`` then makes everything visible; its duration is reported too.

Prints one JSON line: ``events_per_s`` (acknowledged, durable), ``visible_per_s``
(compacted into parts within the window), ``close_s``, the reader's latencies in ms
(``reader_p50_ms``, ``reader_p95_ms``, ``reader_max_ms``), parts and merges, CPU
seconds and the load average. Without ``--folder`` a temporary folder is used and
removed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _venv import ROOT, use_project_python  # noqa: E402

use_project_python()
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from analysis.scenarios.ecommerce import DEFAULT_START, EcommerceSimulator  # noqa: E402
from analysis.streaming.ingest import StreamIngest, read_aggregates  # noqa: E402

POOL_EVENTS = 400_000
READ_EVERY = 0.5


def make_pool(batch_events: int, rate: float = 10_000.0, seed: int = 0) -> tuple[list, timedelta]:
    """Consecutive batches of about ``batch_events`` events, and the stream time they span."""
    sim = EcommerceSimulator(seed=seed, rate=rate)
    span = timedelta(seconds=POOL_EVENTS / rate)
    events = sim.events(DEFAULT_START, DEFAULT_START + span)
    pool = [events.slice(i, batch_events) for i in range(0, events.num_rows, batch_events)]
    return pool, span


def _moved(table: pa.Table, round_: int, span: timedelta) -> pa.Table:
    """A pool batch of a later round: later times, other request ids."""
    if round_ == 0:
        return table
    ts = pc.add(table["timestamp"], pa.scalar(span * round_, pa.duration("us")))
    ids = pc.add(table["request_id"], pa.scalar(round_ * 10**12, pa.int64()))
    return table.set_column(0, "timestamp", ts).set_column(1, "request_id", ids)


def ingest_benchmark(seconds: float, folder: str | os.PathLike, batch_events: int = 2_000,
                     writers: int = 2) -> dict:
    """Append pre-generated batches for about ``seconds`` while a reader polls the
    aggregates every 0.5 s; the figures listed in the module docstring."""
    pool, span = make_pool(batch_events)
    folder = Path(folder)
    next_batch, lock = [0], threading.Lock()
    latencies: list[float] = []
    stop = threading.Event()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    ingest = StreamIngest(folder, compact_interval=1.0).open()

    def write():
        while not stop.is_set():
            with lock:
                k = next_batch[0]
                next_batch[0] += 1
            ingest.append(_moved(pool[k % len(pool)], k // len(pool), span))

    def read():
        while not stop.wait(READ_EVERY):
            t = time.perf_counter()
            read_aggregates(folder)
            latencies.append(time.perf_counter() - t)
    threads = [threading.Thread(target=write) for _ in range(writers)]
    threads.append(threading.Thread(target=read))
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    acknowledged, visible = ingest.acknowledged, ingest.visible
    t = time.perf_counter()
    ingest.close()
    close_s = time.perf_counter() - t
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    lat = np.array(latencies or [np.nan]) * 1000
    return {"seconds": round(elapsed, 2), "batch_events": batch_events, "writers": writers,
            "events": acknowledged, "events_per_s": round(acknowledged / elapsed),
            "visible_per_s": round(visible / elapsed), "close_s": round(close_s, 2),
            "reader_reads": len(latencies),
            "reader_p50_ms": round(float(np.percentile(lat, 50)), 1),
            "reader_p95_ms": round(float(np.percentile(lat, 95)), 1),
            "reader_max_ms": round(float(lat.max()), 1),
            "parts": len(list((folder / "events").glob("*.parquet"))),
            "merges": ingest.merges, "compaction_errors": ingest.errors,
            "cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1),
            "cores": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--folder", help="stream folder (default: a temporary one, removed)")
    parser.add_argument("--batch", type=int, default=2_000, help="events per append")
    parser.add_argument("--writers", type=int, default=2, help="appending threads")
    args = parser.parse_args()
    tmp = None if args.folder else tempfile.mkdtemp(prefix="stream-bench-")
    try:
        result = ingest_benchmark(args.seconds, args.folder or Path(tmp) / "bench",
                                  args.batch, args.writers)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
