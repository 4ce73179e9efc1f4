"""The heatmap job on local Apache Spark against the embedded DuckDB, and its growth.

    .venv/bin/python bench/spark_heatmap.py [--rows 10000000] [--series 1000000,2000000,4000000,8000000] [--union-rows 1000000]

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
must give the same (``counts_equal``). Each engine lays its query out its own way
(:data:`analysis.engine.SHAPES`: DuckDB one aggregation per feature, unioned; Spark one
scan unnested into a row per feature); ``--union-rows`` also runs Spark with DuckDB's
layout at that size, to show what the layout is worth there.

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
    """One engine on one store, in this process: session start, then the job twice
    (``spark-union``: Spark with DuckDB's query layout)."""
    from analysis import heatmap, reference_bins
    from analysis.engine import Engine
    from analysis.store import Store
    from bench.widegen import DATASET, GROUPS
    store = Store(store_dir)
    bins = reference_bins.frozen_bins(store, DATASET)
    engine = None
    start_s = 0.0
    if engine_name.startswith("spark"):
        from analysis import spark
        engine = Engine("spark", "local[2]", shape="union" if engine_name == "spark-union"
                        else None)
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
    if engine_name.startswith("spark"):
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
            "counts_equal": duck["digest"] == spark["digest"], "digest": duck["digest"]}


def measure_union(rows: int) -> dict:
    """Spark with DuckDB's layout (a union of one aggregation per feature)."""
    union = run_phase("spark-union", ensure_store(rows))
    print(f"{rows:>11,} rows: Spark local[2] with DuckDB's layout (one aggregation per "
          f"feature, unioned) {union['job_s']:.2f} s (first {union['first_s']:.2f} s)",
          flush=True)
    return {"rows": rows, "spark_union_s": union["job_s"], "digest": union["digest"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--series", default="1000000,2000000,4000000,8000000",
                        help="row counts, each double the one before (empty: none)")
    parser.add_argument("--union-rows", type=int, default=1_000_000,
                        help="also run Spark with DuckDB's query layout at this size (0: no)")
    parser.add_argument("--phase", choices=["duckdb", "spark", "spark-union"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.store)))
        return
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    main_run = measure(args.rows)
    series = [measure(int(n)) for n in args.series.split(",") if n.strip()]
    union = measure_union(args.union_rows) if args.union_rows else None
    same_size = [m for m in [main_run, *series] if union and m["rows"] == union["rows"]]
    growth = {engine: [b[f"{engine}_s"] / a[f"{engine}_s"] for a, b in zip(series, series[1:])]
              for engine in ("spark", "duckdb")}
    # linear growth: the cost of each added million rows (a fixed cost, the job's stages
    # and the session's, makes the doubling ratios smaller than 2 at small sizes)
    marginal = {engine: [(b[f"{engine}_s"] - a[f"{engine}_s"]) / ((b["rows"] - a["rows"]) / 1e6)
                         for a, b in zip(series, series[1:])] for engine in ("spark", "duckdb")}
    if series:
        for engine, ratios in growth.items():
            per_million = [m[f"{engine}_s"] / (m["rows"] / 1e6) for m in series]
            print(f"{engine}: each doubling of the rows multiplies the job by "
                  f"{', '.join(f'{r:.2f}' for r in ratios)}; seconds per million rows "
                  f"{', '.join(f'{p:.2f}' for p in per_million)}; seconds per added "
                  f"million rows {', '.join(f'{m:.2f}' for m in marginal[engine])}")
    union_equal = all(m["digest"] == union["digest"] for m in same_size)
    for m in [main_run, *series]:
        m.pop("digest")
    print(json.dumps({
        "rows": args.rows, "spark_s": main_run["spark_s"], "duckdb_s": main_run["duckdb_s"],
        "spark_over_duckdb": main_run["spark_s"] / main_run["duckdb_s"],
        "spark_first_s": main_run["spark_first_s"], "duckdb_first_s": main_run["duckdb_first_s"],
        "spark_start_s": main_run["spark_start_s"], "cells": main_run["cells"],
        "counts_equal": all(m["counts_equal"] for m in [main_run, *series]) and union_equal,
        "series": series, "spark_doubling_ratios": growth["spark"],
        "duckdb_doubling_ratios": growth["duckdb"],
        "spark_s_per_added_million": marginal["spark"],
        "duckdb_s_per_added_million": marginal["duckdb"],
        "spark_union": union and {"rows": union["rows"], "seconds": union["spark_union_s"],
                                  "over_spark": union["spark_union_s"] / same_size[0]["spark_s"]
                                  if same_size else None},
        "load_at_start": load[0], "load_at_end": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
