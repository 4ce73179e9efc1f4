"""Heatmap benchmark: ours vs a plain DuckDB scan, per-cell pandas + scipy, and Evidently.

    .venv/bin/python bench/heatmap.py --rows 10000000 [--no-evidently] [--no-pandas]

Builds (or reuses) ``bench/data/wide-<rows>``: ``rows`` production rows x 25 features
x 12 monthly windows x 5 user groups (bench/widegen.py). Every measurement runs in its
own Python process, so its peak memory is its own. All of them run in this one call:

* ``floor_s``: a plain DuckDB scan summing the same columns (numeric sums, counts of the
  categorical, timestamp and group columns), second of two runs (OS cache warm);
* ``codes_once_s``: writing every snapshot's bin codes and profile from scratch, which
  happens once per snapshot (the first time it is analysed) and again only when the
  reference changes;
* ``heatmap_cold_s``: our full heatmap in a new process (modules imported, as in a running
  dashboard) with no data in memory, only what the store persists (reference bins, bin
  codes, snapshot profiles, the aggregation's compiled SQL): the day-grain counts of every
  group (production and reference, summed from the snapshots' profiles) and the PSI grid
  for every feature x month x (each group + all);
* ``heatmap_from_codes_s``: the same heatmap when the counts are recounted from the bin
  codes (one pass over 10M rows of codes; what a segment filter, which profiles do not
  split by, costs);
* ``heatmap_warm_s``: a filter change from the cached aggregates (weekly windows, one
  group; then months for another group), the slowest of those re-renders;
* ``pandas_s``: the same grid per cell in pandas + scipy-style numpy on the same frozen
  bins (reading the rows included);
* ``evidently_1m_s`` / ``ours_1m_s``: one reference-vs-production drift table on 1M
  production rows: Evidently 0.7.23's DataDriftPreset (bench environment; its data
  already in pandas, only the report timed) vs our engine-only drift table with the same
  default tests (Wasserstein normed, Jensen-Shannon), read from the store: profiles of
  the snapshots the time range covers whole, rows of the one it cuts;
  ``ours_1m_from_rows_s``: ours binning all 2M rows (no profiles);
* ``peak_rss_mb``: peak resident memory of our cold heatmap process.

The last line printed is JSON with those keys (null where skipped). Not a test.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._venv import peak_rss_mb, use_project_python  # noqa: E402

use_project_python()

EVIDENTLY_SIDE = """
import json, sys, time
from bench._venv import peak_rss_mb   # standard library only: imports in any environment
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
num = json.loads(sys.argv[3]); cat = json.loads(sys.argv[4])
definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
t = time.perf_counter()
snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=definition),
                                       Dataset.from_pandas(ref, data_definition=definition))
elapsed = time.perf_counter() - t
drifted = snap.dict()["metrics"][0]["value"]["count"]
print(json.dumps({"seconds": elapsed, "drifted": drifted,
                  "peak_rss_mb": peak_rss_mb()}))
"""


def phase_floor(store_dir: str) -> dict:
    import duckdb

    from analysis.store import Store
    from bench.widegen import CATEGORICAL, DATASET, NUMERIC
    files = ", ".join(f"'{p}'" for p in Store(store_dir).files(DATASET, "production"))
    sql = ("SELECT " + ", ".join([f"sum({c})" for c in NUMERIC] + [f"count({c})" for c in CATEGORICAL]
                                 + ["count(ts)", "count(user_group)"])
           + f" FROM read_parquet([{files}])")
    times = []
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        for _ in range(2):
            t = time.perf_counter()
            con.execute(sql).fetchall()
            times.append(time.perf_counter() - t)
    return {"floor_s": times[-1], "floor_first_s": times[0], "peak_rss_mb": peak_rss_mb()}


def phase_codes(store_dir: str) -> dict:
    """Write the bin codes from scratch (what a new production snapshot or a new
    reference costs once)."""
    from analysis import codes, profiles, reference_bins
    from analysis.store import Store
    from bench.widegen import DATASET
    store = Store(store_dir)
    bins = reference_bins.frozen_bins(store, DATASET)
    folder = codes.codes_folder(store, DATASET, bins)
    for path in folder.iterdir():
        path.unlink()
    t = time.perf_counter()
    for slice_ in ("reference", "production"):
        profiles.ensure_codes(store, DATASET, bins, slice=slice_)
    return {"codes_s": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}


def phase_ours(store_dir: str) -> dict:
    from analysis import counts, heatmap, reference_bins
    from analysis.store import Store
    from bench.widegen import DATASET, GROUPS
    store = Store(store_dir)
    # a running dashboard has its modules loaded: load Ibis's DuckDB backend (lazily
    # imported on first connect) before the clock starts; no data is touched
    import ibis
    ibis.duckdb.connect().disconnect()
    t0 = time.perf_counter()
    bins = reference_bins.frozen_bins(store, DATASET)  # persisted: a file read
    t1 = time.perf_counter()
    cube = heatmap.build_cube(store, DATASET, "user_group", "coarse", "day", bins=bins)
    t2 = time.perf_counter()
    cells = 0
    for group in [None, *GROUPS]:
        g = heatmap.grid(heatmap.select(cube, "month", segments=None if group is None else [group]),
                         "psi", bins)
        cells += len(g)
    t3 = time.perf_counter()
    warm = []
    for unit, group in (("week", "g2"), ("month", "g4"), ("day", None)):
        t = time.perf_counter()
        heatmap.grid(heatmap.select(cube, unit, segments=None if group is None else [group]),
                     "psi", bins)
        warm.append(time.perf_counter() - t)
    peak = peak_rss_mb()  # of the heatmap itself, before the recount below
    t = time.perf_counter()
    for slice_ in ("production", "reference"):
        counts.day_counts_from_codes(store, DATASET, bins, "user_group", slice=slice_)
    from_codes = time.perf_counter() - t + (t3 - t2)
    return {"heatmap_cold_s": t3 - t0, "heatmap_from_codes_s": from_codes,
            "edges_read_s": t1 - t0, "aggregate_s": t2 - t1,
            "grids_s": t3 - t2, "cells": cells, "heatmap_warm_s": max(warm),
            "peak_rss_mb": peak, "peak_with_recount_mb": peak_rss_mb()}


def phase_pandas(store_dir: str) -> dict:
    import pandas as pd

    from analysis import reference_bins, stats
    from analysis.store import Store
    from bench.widegen import DATASET, GROUPS
    store = Store(store_dir)
    bins = reference_bins.frozen_bins(store, DATASET).coarse
    t0 = time.perf_counter()
    cols = ["ts", "user_group", *bins]
    prod = pd.concat([pd.read_parquet(p, columns=cols) for p in store.files(DATASET, "production")],
                     ignore_index=True)
    ref = pd.concat([pd.read_parquet(p, columns=cols) for p in store.files(DATASET, "reference")],
                    ignore_index=True)
    prod["month"] = prod["ts"].dt.to_period("M")
    cells = 0
    for group in [None, *GROUPS]:
        p = prod if group is None else prod[prod["user_group"] == group]
        r = ref if group is None else ref[ref["user_group"] == group]
        ref_counts = {f: b.counts(r[f]) for f, b in bins.items()}
        for _, window in p.groupby("month"):
            for f, b in bins.items():
                stats.psi(ref_counts[f], b.counts(window[f]))
                cells += 1
    return {"pandas_s": time.perf_counter() - t0, "cells": cells, "peak_rss_mb": peak_rss_mb(),
            "rows_checked": int(len(prod))}


def phase_ours_1m(store_dir: str) -> dict:
    import ibis

    import analysis.drift  # noqa: F401  (loaded in a running dashboard)
    from analysis import heatmap, reference_bins
    from analysis.queries import Filters
    from analysis.store import Store
    from bench.widegen import DATASET
    ibis.duckdb.connect().disconnect()
    store = Store(store_dir)
    bins = reference_bins.frozen_bins(store, DATASET)
    end = _one_million_end(store)
    t = time.perf_counter()
    table = heatmap.binned_drift_table(store, DATASET, Filters(end=end), bins=bins)
    elapsed = time.perf_counter() - t
    t = time.perf_counter()
    rows = heatmap.binned_drift_table(store, DATASET, Filters(end=end), bins=bins, profiles=False)
    from_rows = time.perf_counter() - t
    import numpy as np
    # both paths count the same rows: the statistics agree up to summation order
    assert np.allclose(rows["statistic"].to_numpy(float), table["statistic"].to_numpy(float),
                       rtol=1e-9, atol=1e-12, equal_nan=True)
    return {"ours_1m_s": elapsed, "ours_1m_from_rows_s": from_rows,
            "drifted": int(table["drifted"].fillna(False).sum()), "peak_rss_mb": peak_rss_mb()}


def _one_million_end(store):
    """The timestamp before which the first 1M production rows lie."""
    import duckdb

    from bench.widegen import DATASET
    files = ", ".join(f"'{p}'" for p in store.files(DATASET, "production"))
    with duckdb.connect() as con:
        return con.execute(f"SELECT max(ts) + INTERVAL 1 MICROSECOND FROM (SELECT ts FROM "
                           f"read_parquet([{files}]) ORDER BY ts LIMIT 1000000)").fetchone()[0]


def phase_evidently(store_dir: str) -> dict:
    import duckdb

    from analysis.store import Store
    from bench.evidently_env import evidently_python
    from bench.widegen import CATEGORICAL, DATASET, NUMERIC
    store = Store(store_dir)
    end = _one_million_end(store)
    cols = ", ".join(NUMERIC + CATEGORICAL)
    with tempfile.TemporaryDirectory() as tmp, duckdb.connect() as con:
        for slice_, where in (("reference", ""), ("production", f"WHERE ts < '{end}'")):
            files = ", ".join(f"'{p}'" for p in store.files(DATASET, slice_))
            con.execute(f"COPY (SELECT {cols} FROM read_parquet([{files}]) {where}) "
                        f"TO '{tmp}/{slice_}.parquet' (FORMAT parquet)")
        out = subprocess.run([str(evidently_python()), "-c", EVIDENTLY_SIDE,
                              f"{tmp}/reference.parquet", f"{tmp}/production.parquet",
                              json.dumps(NUMERIC), json.dumps(CATEGORICAL)],
                             check=True, capture_output=True, text=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"evidently_1m_s": result["seconds"], "evidently_drifted": result["drifted"],
            "evidently_peak_rss_mb": result["peak_rss_mb"]}


PHASES = {"floor": phase_floor, "codes": phase_codes, "ours": phase_ours, "pandas": phase_pandas,
          "ours_1m": phase_ours_1m, "evidently": phase_evidently}


def run_phase(name: str, store_dir: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--store", str(store_dir)],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure_store(rows: int) -> Path:
    from analysis import profiles, reference_bins
    from analysis.store import Store
    from bench import widegen
    folder = ROOT / "bench" / "data" / f"wide-{rows}"
    store = Store(folder)
    if widegen.DATASET not in store.datasets() or not (folder / ".complete").exists():
        print(f"building {folder} ({rows:,} production rows)…", flush=True)
        t = time.perf_counter()
        widegen.build(store, rows)
        print(f"built in {time.perf_counter() - t:.0f} s", flush=True)
        (folder / ".complete").write_text("ok")
    t = time.perf_counter()
    bins = reference_bins.frozen_bins(store, widegen.DATASET)
    print(f"reference bin edges (computed once, persisted): {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    for slice_ in ("reference", "production"):
        profiles.ensure_codes(store, widegen.DATASET, bins, slice=slice_)
    print(f"bin codes and profiles of every snapshot (once per snapshot and reference; "
          f"0 when already written): {time.perf_counter() - t:.2f} s")
    from analysis import heatmap
    t = time.perf_counter()
    heatmap.build_cube(store, widegen.DATASET, "user_group", "coarse", "day", bins=bins)
    print(f"first heatmap aggregation in this set-up (compiles and persists its SQL when "
          f"absent): {time.perf_counter() - t:.2f} s")
    from analysis.queries import Filters
    t = time.perf_counter()
    end = _one_million_end(store)
    for with_profiles in (True, False):
        heatmap.binned_drift_table(store, widegen.DATASET, Filters(end=end), bins=bins,
                                   profiles=with_profiles)
    print(f"first 1M-row drift tables in this set-up (compile and persist their SQL when "
          f"absent): {time.perf_counter() - t:.2f} s")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--no-pandas", action="store_true")
    parser.add_argument("--phase", choices=list(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.store)))
        return
    folder = ensure_store(args.rows)
    floor = run_phase("floor", folder)
    print(f"plain DuckDB scan (floor): {floor['floor_s']:.2f} s "
          f"(first run {floor['floor_first_s']:.2f} s)")
    codes = run_phase("codes", folder)
    print(f"writing every snapshot's bin codes and profile (once per snapshot and reference): "
          f"{codes['codes_s']:.2f} s = {codes['codes_s'] / floor['floor_s']:.1f}x the floor")
    ours = run_phase("ours", folder)
    print(f"heatmap cold: {ours['heatmap_cold_s']:.2f} s = {ours['heatmap_cold_s'] / floor['floor_s']:.1f}x "
          f"the floor (aggregation {ours['aggregate_s']:.2f} s, {ours['cells']} cells in "
          f"{ours['grids_s']:.2f} s); warm re-render: {ours['heatmap_warm_s']:.3f} s; "
          f"peak memory {ours['peak_rss_mb']:.0f} MB; recounted from the bin codes instead "
          f"of profiles: {ours['heatmap_from_codes_s']:.2f} s = "
          f"{ours['heatmap_from_codes_s'] / floor['floor_s']:.1f}x the floor")
    pandas_s = None
    if not args.no_pandas:
        pandas = run_phase("pandas", folder)
        pandas_s = pandas["pandas_s"]
        print(f"per-cell pandas + scipy: {pandas_s:.1f} s = {pandas_s / ours['heatmap_cold_s']:.1f}x "
              f"ours (peak memory {pandas['peak_rss_mb']:.0f} MB)")
    ours_1m = run_phase("ours_1m", folder)
    evidently_s = None
    if not args.no_evidently:
        ev = run_phase("evidently", folder)
        evidently_s = ev["evidently_1m_s"]
        print(f"one drift table at 1M rows: Evidently DataDriftPreset {evidently_s:.1f} s "
              f"({ev['evidently_peak_rss_mb']:.0f} MB, {ev['evidently_drifted']:.0f} drifted), "
              f"ours {ours_1m['ours_1m_s']:.2f} s ({ours_1m['drifted']} drifted) = "
              f"{evidently_s / ours_1m['ours_1m_s']:.0f}x faster; ours binning every row "
              f"{ours_1m['ours_1m_from_rows_s']:.2f} s = "
              f"{evidently_s / ours_1m['ours_1m_from_rows_s']:.0f}x faster")
    else:
        print(f"one drift table at 1M rows: ours {ours_1m['ours_1m_s']:.2f} s; binning every "
              f"row {ours_1m['ours_1m_from_rows_s']:.2f} s")
    print(json.dumps({
        "rows": args.rows, "heatmap_cold_s": ours["heatmap_cold_s"],
        "heatmap_warm_s": ours["heatmap_warm_s"], "floor_s": floor["floor_s"],
        "heatmap_from_codes_s": ours["heatmap_from_codes_s"],
        "cold_over_floor": ours["heatmap_cold_s"] / floor["floor_s"],
        "codes_once_s": codes["codes_s"], "pandas_s": pandas_s,
        "pandas_over_ours": pandas_s / ours["heatmap_cold_s"] if pandas_s else None,
        "evidently_1m_s": evidently_s, "ours_1m_s": ours_1m["ours_1m_s"],
        "ours_1m_from_rows_s": ours_1m["ours_1m_from_rows_s"],
        "evidently_over_ours_1m": evidently_s / ours_1m["ours_1m_s"] if evidently_s else None,
        "peak_rss_mb": ours["peak_rss_mb"]}))


if __name__ == "__main__":
    main()
