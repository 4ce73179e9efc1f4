"""The heatmap job on local Apache Spark against the embedded DuckDB, and its growth.

    .venv/bin/python bench/spark_heatmap.py [--rows 10000000] [--series 1000000,2000000,4000000,8000000]

The job is the one a cluster runs on new data: bin **every row** of a store built by
bench/widegen.py (25 features, 5 user groups, 12 monthly production snapshots, a
reference of max(100k, rows / 10) rows, capped at 1M) into the heatmap's day x group x
feature x coarse-bin cube, production and reference
(``heatmap.build_cube(..., profiles=False)``: the Ibis expressions of
:func:`analysis.counts.binned_counts`, the same on both engines), then the PSI grid of
every feature x month for all groups and for each group (numpy, the same code).

Each (engine, size) runs in its own process, one after the other, so there is never
more than one Spark JVM: Spark ``local[2]`` (this machine's two cores, no web UI, the
driver bound to 127.0.0.1, 4 GB of driver memory), DuckDB with its default threads (two
here). Each process runs the job twice: ``first`` pays the JVM's warm-up (or DuckDB's
first read) and the SQL compilation, ``job`` is the second run, the figure compared.
Spark's session start is reported apart. The cubes' counts are hashed: both engines
must give the same (``counts_equal``).

Printed: one line per measurement, the ratios, then a final JSON line. Not a test;
run it on an otherwise idle machine (it prints the load average it started at).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/profile.py would shadow the standard library's profile module, which pyspark
# imports: run with the project's root on the path, not this folder
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
from bench._venv import use_project_python  # noqa: E402

use_project_python()

SPARK_CONF = ("spark.ui.enabled=false spark.driver.memory=4g "
              "spark.sql.shuffle.partitions=2")


def ensure_store(rows: int) -> Path:
    """bench/data/wide-<rows> (shared with bench/heatmap.py), built when absent, with
    its frozen reference bins (the job's literals; computed once, persisted)."""
    from analysis import reference_bins
    from analysis.store import Store
    from bench import widegen
    folder = ROOT / "bench" / "data" / f"wide-{rows}"
    store = Store(folder)
    if widegen.DATASET not in store.datasets() or not (folder / ".complete").exists():
        print(f"building {folder} ({rows:,} production rows)…", flush=True)
        widegen.build(store, rows, progress=lambda m: None)
        (folder / ".complete").write_text("ok")
    reference_bins.frozen_bins(store, widegen.DATASET)
    return folder


def phase(engine_name: str, store_dir: str) -> dict:
    """One engine on one store, in this process: session start, then the job twice."""
    from analysis import heatmap, reference_bins
    from analysis.engine import Engine
    from analysis.store import Store
    from bench.widegen import DATASET, GROUPS
    store = Store(store_dir)
    bins = reference_bins.frozen_bins(store, DATASET)
    engine = None
    start_s = 0.0
    if engine_name == "spark":
        from analysis import spark
        engine = Engine("spark", "local[2]")
        t = time.perf_counter()
        spark.session(engine)
        start_s = time.perf_counter() - t
    times, digest, cells = [], "", 0
    for _ in range(2):
        t = time.perf_counter()
        cube = heatmap.build_cube(store, DATASET, "user_group", "coarse", "day", bins=bins,
                                  engine=engine, profiles=False)
        cells = 0
        for group in [None, *GROUPS]:
            grid = heatmap.grid(heatmap.select(cube, "month", segments=None if group is None
                                               else [group]), "psi", bins)
            cells += len(grid)
        times.append(time.perf_counter() - t)
        digest = hashlib.sha256(cube.counts.tobytes() + cube.reference.tobytes()).hexdigest()
    rows = int(cube.counts.sum() / len(bins.coarse))
    if engine_name == "spark":
        spark.stop()
    return {"start_s": start_s, "first_s": times[0], "job_s": times[1], "digest": digest,
            "cells": cells, "rows_counted": rows}


def run_phase(engine_name: str, folder: Path) -> dict:
    env = {**os.environ, "DRIFT_SPARK_CONF": SPARK_CONF}
    out = subprocess.run([sys.executable, __file__, "--phase", engine_name, "--store",
                          str(folder)], check=True, capture_output=True, text=True, cwd=ROOT,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(rows: int) -> dict:
    """Both engines on the store of ``rows`` production rows."""
    folder = ensure_store(rows)
    duck = run_phase("duckdb", folder)
    spark = run_phase("spark", folder)
    print(f"{rows:>11,} rows: DuckDB {duck['job_s']:6.2f} s (first {duck['first_s']:.2f} s) · "
          f"Spark local[2] {spark['job_s']:6.2f} s (first {spark['first_s']:.2f} s, session "
          f"start {spark['start_s']:.1f} s) · Spark / DuckDB {spark['job_s'] / duck['job_s']:.2f}"
          f" · counts equal: {duck['digest'] == spark['digest']}", flush=True)
    return {"rows": rows, "duckdb_s": duck["job_s"], "duckdb_first_s": duck["first_s"],
            "spark_s": spark["job_s"], "spark_first_s": spark["first_s"],
            "spark_start_s": spark["start_s"], "cells": duck["cells"],
            "rows_counted": duck["rows_counted"],
            "counts_equal": duck["digest"] == spark["digest"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--series", default="1000000,2000000,4000000,8000000",
                        help="row counts, each double the one before (empty: none)")
    parser.add_argument("--phase", choices=["duckdb", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.store)))
        return
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    main_run = measure(args.rows)
    series = [measure(int(n)) for n in args.series.split(",") if n.strip()]
    growth = {engine: [b[f"{engine}_s"] / a[f"{engine}_s"] for a, b in zip(series, series[1:])]
              for engine in ("spark", "duckdb")}
    if series:
        for engine, ratios in growth.items():
            per_million = [m[f"{engine}_s"] / (m["rows"] / 1e6) for m in series]
            print(f"{engine}: each doubling of the rows multiplies the job by "
                  f"{', '.join(f'{r:.2f}' for r in ratios)}; seconds per million rows "
                  f"{', '.join(f'{p:.2f}' for p in per_million)}")
    print(json.dumps({
        "rows": args.rows, "spark_s": main_run["spark_s"], "duckdb_s": main_run["duckdb_s"],
        "spark_over_duckdb": main_run["spark_s"] / main_run["duckdb_s"],
        "spark_first_s": main_run["spark_first_s"], "duckdb_first_s": main_run["duckdb_first_s"],
        "spark_start_s": main_run["spark_start_s"], "cells": main_run["cells"],
        "counts_equal": all(m["counts_equal"] for m in [main_run, *series]),
        "series": series, "spark_doubling_ratios": growth["spark"],
        "duckdb_doubling_ratios": growth["duckdb"], "load_at_start": load[0]}))


if __name__ == "__main__":
    main()
