"""Investigate benchmark: a full data-vs-concept run on the rental demo, at its default
size and at a multiple of it.

    .venv/bin/python bench/investigate.py [--scales 1,10]

For each scale, builds (or reuses) ``bench/data/rental-x<scale>`` with the demo
generator (180k reference + 540k production rows at scale 1) and times, in a fresh
Python process, what ``python -m analysis investigate`` does after reading its files:
loading both slices from the store into pandas (``load_s``) and the investigation
itself (``investigate_s``: domain classifiers per window, the cross-fitted reference
model, bootstrap, root causes, the disagreement trees), with the process's peak memory.
The last line printed is JSON: one object per scale. Not a test.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._venv import use_project_python  # noqa: E402

use_project_python()

RUN = """
import json, resource, sys, time
from analysis import queries
from analysis.attribution import investigate
from analysis.investigation import store_problem
from analysis.store import Store
store = Store(sys.argv[1])
problem = store_problem(store, "rental_pricing")
cols = list(problem.features) + [problem.target, problem.prediction, problem.timestamp,
                                 problem.segment]
t = time.perf_counter()
ref = queries.load_frame(store, "rental_pricing", "reference", cols)
prod = queries.load_frame(store, "rental_pricing", "production", cols)
load = time.perf_counter() - t
t = time.perf_counter()
result = investigate(ref, prod, problem).to_dict()
print(json.dumps({"rows": len(ref) + len(prod), "reference_rows": len(ref),
                  "production_rows": len(prod), "load_s": round(load, 2),
                  "investigate_s": round(time.perf_counter() - t, 2),
                  "cells": len(result["cells"]), "verdict": result["verdict"],
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def ensure_store(scale: float) -> Path:
    folder = ROOT / "bench" / "data" / f"rental-x{scale:g}"
    if not (folder / "rental_pricing" / "dataset.json").is_file():
        print(f"building the demo at scale {scale:g} in {folder} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "analysis", "demo", "--store", str(folder),
                        "--scale", str(scale)], check=True, cwd=ROOT)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10", help="comma-separated size multipliers")
    args = parser.parse_args()
    results = []
    for scale in (float(s) for s in args.scales.split(",")):
        folder = ensure_store(scale)
        out = subprocess.run([sys.executable, "-c", RUN, str(folder)], check=True, cwd=ROOT,
                             capture_output=True, text=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        figures["scale"] = scale
        print(f"scale {scale:g}: {figures['rows']:,} rows ({figures['reference_rows']:,} "
              f"reference), load {figures['load_s']} s, investigate {figures['investigate_s']} s "
              f"over {figures['cells']} cells, peak {figures['peak_rss_mb']} MB, "
              f"verdict {figures['verdict']}", flush=True)
        results.append(figures)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
