"""Profiling benchmark: writing every snapshot's bin codes and profile, against a plain
DuckDB scan of the same rows.

    .venv/bin/python bench/profile.py [--rows 10000000] [--engine]

Builds (or reuses) ``bench/data/wide-<rows>`` (bench/widegen.py: ``rows`` production
rows in 12 monthly snapshots and ``min(1M, max(100k, rows / 10))`` reference rows in 3,
25 features, 5 groups; the store bench/heatmap.py uses). Every measurement runs in its
own Python process:

* ``scan_s``: a plain DuckDB scan of every snapshot of both slices, all columns
  (``count(*)``, ``sum`` of every numeric column, ``count`` of the others), the second
  of two runs (OS cache warm). It runs before and after ours (``scan_before_s``,
  ``scan_after_s``) and the ratio uses their mean: the machine is shared, and a scan
  measured at another moment than ours would not compare like with like;
* ``onepass_s``: every snapshot's codes and profile written from scratch in one pass
  over its rows (:mod:`analysis.onepass`; what ingest now does for each new snapshot,
  and ``prepare`` for a new reference);
* ``engine_s`` (with ``--engine``): the same with the engine's writers (one query per
  feature and grouping; the implementation before the one pass), once.

CPU time (user + system, every thread of the process) is measured beside the wall
clock: on a machine other work shares, it says what each costs whoever else runs.
Prints a table, then one JSON line with ``rows`` (rows profiled, both slices),
``scan_s``, ``onepass_s``, ``onepass_over_scan``, ``scan_cpu_s``, ``onepass_cpu_s``,
``onepass_cpu_over_scan_cpu``, ``engine_s``, ``engine_over_scan`` and ``engine_cpu_s``
(null without ``--engine``). Not a test.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._venv import use_project_python  # noqa: E402

use_project_python()


def _files(store_dir: str) -> list[str]:
    from analysis.store import Store
    from bench.widegen import DATASET
    store = Store(store_dir)
    return [str(p) for slice_ in ("reference", "production") for p in store.files(DATASET, slice_)]


def phase_scan(store_dir: str) -> dict:
    """A plain DuckDB scan of every column of every snapshot, second of two runs."""
    import duckdb
    files = _files(store_dir)
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        columns = con.sql(f"DESCRIBE SELECT * FROM read_parquet({files})").fetchall()
        aggs = ["count(*)"] + [f'sum("{name}")' if kind in ("DOUBLE", "BIGINT") else
                               f'count("{name}")' for name, kind, *_ in columns]
        sql = f"SELECT {', '.join(aggs)} FROM read_parquet({files})"
        times = []
        for _ in range(2):
            t, cpu = time.perf_counter(), _cpu()
            rows = con.execute(sql).fetchall()[0][0]
            times.append((time.perf_counter() - t, _cpu() - cpu))
    return {"scan_s": times[-1][0], "scan_cpu_s": times[-1][1], "scan_first_s": times[0][0],
            "rows": rows}


def _cpu() -> float:
    """CPU seconds of this process so far, every thread (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def phase_write(store_dir: str, method: str) -> dict:
    """Every snapshot's codes and profile written from scratch with ``method``."""
    from analysis import codes, profiles, reference_bins
    from analysis.store import Store
    from bench.widegen import DATASET
    store = Store(store_dir)
    bins = reference_bins.frozen_bins(store, DATASET)  # persisted: a file read
    shutil.rmtree(codes.codes_folder(store, DATASET, bins), ignore_errors=True)
    import ibis
    ibis.duckdb.connect().disconnect()  # Ibis's backend loads lazily: not timed
    t, cpu = time.perf_counter(), _cpu()
    for slice_ in ("reference", "production"):
        profiles.ensure_codes(store, DATASET, bins, slice=slice_, method=method)
    return {f"{method}_s": time.perf_counter() - t, f"{method}_cpu_s": _cpu() - cpu}


PHASES = {"scan": phase_scan, "onepass": lambda d: phase_write(d, "onepass"),
          "engine": lambda d: phase_write(d, "engine")}


def run_phase(name: str, store_dir: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--store", str(store_dir)],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure_data(rows: int) -> Path:
    """The wide store with ``rows`` production rows (built when absent) and its frozen
    bins."""
    from analysis import reference_bins
    from analysis.store import Store
    from bench import widegen
    folder = ROOT / "bench" / "data" / f"wide-{rows}"
    store = Store(folder)
    if widegen.DATASET not in store.datasets() or not (folder / ".complete").exists():
        print(f"building {folder} ({rows:,} production rows)…", flush=True)
        widegen.build(store, rows)
        (folder / ".complete").write_text("ok")
    reference_bins.frozen_bins(store, widegen.DATASET)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--engine", action="store_true",
                        help="also time the engine's writers (slow)")
    parser.add_argument("--phase", choices=list(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.store)))
        return
    folder = ensure_data(args.rows)
    before = run_phase("scan", folder)
    ours = run_phase("onepass", folder)
    after = run_phase("scan", folder)
    engine = run_phase("engine", folder) if args.engine else {}
    if engine:  # leave the store as the product writes it
        run_phase("onepass", folder)
    scan = (before["scan_s"] + after["scan_s"]) / 2
    scan_cpu = (before["scan_cpu_s"] + after["scan_cpu_s"]) / 2
    rows = before["rows"]
    table = [("plain DuckDB scan, every column (mean of before and after)",
              f"{scan:.2f} s", "1.0x", f"{scan_cpu:.2f} s", "1.0x")]
    for name, part in (("onepass", ours), ("engine", engine)):
        if part:
            label = ("codes and profile of every snapshot, one pass" if name == "onepass" else
                     "the same with the engine's writers (before one pass)")
            table.append((label, f"{part[name + '_s']:.2f} s",
                          f"{part[name + '_s'] / scan:.1f}x", f"{part[name + '_cpu_s']:.2f} s",
                          f"{part[name + '_cpu_s'] / scan_cpu:.1f}x"))
    print(f"{rows:,} rows ({args.rows:,} production), 25 features, 5 groups; "
          f"wall clock, then CPU time (all threads)")
    width = max(len(r[0]) for r in table)
    for name, *values in table:
        print(f"  {name:<{width}}  {values[0]:>8} {values[1]:>6}  {values[2]:>8} {values[3]:>6}")
    print(json.dumps({
        "rows": rows, "scan_s": scan, "scan_before_s": before["scan_s"],
        "scan_after_s": after["scan_s"], "onepass_s": ours["onepass_s"],
        "onepass_over_scan": ours["onepass_s"] / scan, "scan_cpu_s": scan_cpu,
        "onepass_cpu_s": ours["onepass_cpu_s"],
        "onepass_cpu_over_scan_cpu": ours["onepass_cpu_s"] / scan_cpu,
        "engine_s": engine.get("engine_s"),
        "engine_over_scan": engine["engine_s"] / scan if engine else None,
        "engine_cpu_s": engine.get("engine_cpu_s")}))


if __name__ == "__main__":
    main()
