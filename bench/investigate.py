"""Investigate benchmark: the data-vs-concept investigation on cases with many windows
and groups and on the rental demo, against the method before the shared fit and a
plain per-feature baseline, in one run.

    .venv/bin/python bench/investigate.py [--cases gen-20k,gen-200k,demo-x1,demo-x10]
                                          [--no-before] [--repeat N]

Cases
-----
gen-20k    10,000 reference + 10,000 production rows over 28 days, 4 groups (generated)
gen-200k   50,000 reference + 150,000 production rows over 90 days, 8 groups (generated)
demo-x1    the rental demo (180k + 540k rows, 9 months, 3 groups)
demo-x10   the demo at ten times its size (7.2M rows)

The generated cases (:func:`generated`) have data drift in one group from the middle of
the period and concept drift in another from two thirds of it. Every (case, method) runs
in a fresh Python process so its peak memory is its own; the process reads the data
(Parquet files, or the store) and investigates:

* ``ours``: the current code (``investigate_store`` for the demo, which samples inside
  DuckDB; :func:`analysis.attribution.investigate` on the generated files);
* ``before``: the method as it was before the shared fit (commit ``BEFORE``), extracted
  from git into ``bench/data/before-<commit>`` and run the same way on pandas frames;
* ``plain``: the baseline to beat: per-feature two-sample tests (KS, chi-square) of all
  production against the reference, and an importance-weighted error comparison from
  one domain classifier (no windows, no groups, no intervals).

``--repeat N`` runs ours and the method before N times each, in turn, and reports each
one's median run: runs on this machine vary by up to a fifth from one to the next.

Per case the table gives rows, cells, seconds (in brackets: after the libraries every
method loads were imported, about 2 s) and peak memory of each method, whether
the verdicts (overall and every cell's) equal those of ``before``, and the ratios
``before / ours`` (to be >= 5) and ``ours / plain`` (to be <= 4). Every method runs on
one OpenMP thread, so the ratios compare methods (the threads are a separate matter:
see :func:`analysis.attribution.investigate`). The last line is JSON: one object per
case. Not a test.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._venv import use_project_python  # noqa: E402

use_project_python()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

BEFORE = "966f5ec"   # the last commit with analysis/attribution.py as one module
DATA = ROOT / "bench" / "data"

RUN = r"""
import json, sys, time
kind, where, method = sys.argv[1], sys.argv[2], sys.argv[3]
t = time.perf_counter()
# the libraries every method loads, imported first so their start-up (about 2 s, the
# same for every method) can be told apart from the method's own time
import pandas, scipy.stats, sklearn.ensemble  # noqa: E401,F401
import analysis.attribution  # noqa: F401
if kind == "store" and method != "before":
    import analysis.investigation, analysis.queries  # noqa: E401,F401
if method == "plain":
    import bench.investigate  # noqa: F401
ready = time.perf_counter()
if kind == "store" and method == "ours":
    from analysis.investigation import investigate_store
    from analysis.store import Store
    result = investigate_store(Store(where), "rental_pricing", path=__import__("pathlib").Path(sys.argv[4]))
else:
    import pandas as pd
    if kind == "store" and method == "before":
        # the frames this code would load, exported once by the current code (the old
        # code cannot read today's store)
        spec = json.load(open(f"{where}/frames/problem.json"))
        from analysis.attribution import Problem
        problem = Problem(**spec)
        ref = pd.read_parquet(f"{where}/frames/reference.parquet")
        prod = pd.read_parquet(f"{where}/frames/production.parquet")
    elif kind == "store":
        from analysis import queries
        from analysis.investigation import store_problem
        from analysis.store import Store
        store = Store(where)
        problem = store_problem(store, "rental_pricing")
        cols = list(problem.features) + [problem.target, problem.prediction,
                                         problem.timestamp, problem.segment]
        ref = queries.load_frame(store, "rental_pricing", "reference", cols)
        prod = queries.load_frame(store, "rental_pricing", "production", cols)
    else:
        from analysis.attribution import problem_from_frames
        ref = pd.read_parquet(f"{where}/reference.parquet")
        prod = pd.read_parquet(f"{where}/production.parquet")
        problem, _ = problem_from_frames(ref, prod, target="y", prediction="prediction",
                                         timestamp="ts", segment="group")
    if method == "plain":
        from bench.investigate import plain_baseline
        result = plain_baseline(ref, prod, problem)
    else:
        from analysis.attribution import investigate
        result = investigate(ref, prod, problem).to_dict()
cells = result.get("cells", [])

from bench._venv import peak_rss_mb
print(json.dumps({"seconds": round(time.perf_counter() - t, 2),
                  "compute_seconds": round(time.perf_counter() - ready, 2),
                  "peak_rss_mb": round(peak_rss_mb()),
                  "verdict": result["verdict"], "cells": len(cells), "window": result.get("window"),
                  "cell_verdicts": {f"{c['segment']} {c['start']}": c["verdict"] for c in cells}}))
"""


# --------------------------------------------------------------------------- cases

def generated(reference_rows: int, production_rows: int, days: int, groups: int,
              seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A regression case: six numeric features and one categorical, ``groups`` user
    groups; in group ``g1`` x1 shifts by 1 SD from the middle of the production period
    (data drift), in group ``g2`` the rule's x2 coefficient halves from two thirds of it
    (concept drift). A gradient-boosted model fitted on the reference predicts."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-03-03")
    names = [f"g{i}" for i in range(groups)]

    def table(n: int, first: pd.Timestamp, span: int, production: bool) -> pd.DataFrame:
        t = np.sort(rng.uniform(0, span * 86400, n))
        ts = first + pd.to_timedelta(t, unit="s")
        group = rng.choice(names, n)
        x = rng.normal(0, 1, (n, 6))
        share = t / (span * 86400)
        data = production & (group == "g1") & (share >= 0.5)
        concept = production & (group == "g2") & (share >= 2 / 3)
        x[data, 0] += 1.0
        colour = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
        slope = np.where(concept, 1.0, 2.0)
        y = 3 * x[:, 0] + slope * x[:, 1] + np.sin(x[:, 2]) + (colour == "red") + rng.normal(0, 0.5, n)
        frame = pd.DataFrame(x, columns=[f"x{i + 1}" for i in range(6)])
        frame["colour"], frame["group"], frame["ts"], frame["y"] = colour, group, ts, y
        return frame

    reference = table(reference_rows, start - pd.Timedelta(days=28), 28, False)
    production = table(production_rows, start, days, True)
    design = lambda f: pd.get_dummies(f[[f"x{i + 1}" for i in range(6)] + ["colour"]],  # noqa: E731
                                      dtype=float).reindex(columns=columns, fill_value=0.0)
    columns = pd.get_dummies(reference[[f"x{i + 1}" for i in range(6)] + ["colour"]], dtype=float).columns
    model = HistGradientBoostingRegressor(random_state=seed).fit(design(reference), reference["y"])
    for frame in (reference, production):
        frame["prediction"] = model.predict(design(frame))
    return reference, production


CASES = {
    "gen-20k": ("files", dict(reference_rows=10_000, production_rows=10_000, days=28, groups=4)),
    "gen-200k": ("files", dict(reference_rows=50_000, production_rows=150_000, days=90, groups=8)),
    "demo-x1": ("store", 1),
    "demo-x10": ("store", 10),
}


def ensure_case(name: str) -> tuple[str, Path, int]:
    """(kind, folder, rows) of a case, building it once under bench/data."""
    kind, spec = CASES[name]
    folder = DATA / name
    if kind == "files":
        if not (folder / "production.parquet").is_file():
            print(f"generating {name} in {folder} (once)", flush=True)
            folder.mkdir(parents=True, exist_ok=True)
            ref, prod = generated(**spec)
            ref.to_parquet(folder / "reference.parquet")
            prod.to_parquet(folder / "production.parquet")
        return kind, folder, spec["reference_rows"] + spec["production_rows"]
    if not (folder / "rental_pricing" / "dataset.json").is_file():
        print(f"building the demo at scale {spec} in {folder} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "analysis", "demo", "--store", str(folder),
                        "--scale", str(spec)], check=True, cwd=ROOT)
    if not (folder / "frames" / "production.parquet").is_file():
        export_frames(folder)
    return kind, folder, 720_000 * spec


def export_frames(folder: Path) -> None:
    """The demo's two slices and its problem as files the code before the shared fit can
    read (its store reader does not know today's store)."""
    from analysis.investigation import load_slices, store_problem
    from analysis.store import Store

    store = Store(folder)
    problem = store_problem(store, "rental_pricing")
    ref, prod = load_slices(store, "rental_pricing", problem)
    out = folder / "frames"
    out.mkdir(exist_ok=True)
    for name, frame in (("reference", ref), ("production", prod)):
        # plain strings, as the old loader gave them
        frame.astype({c: str for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
                     ).to_parquet(out / f"{name}.parquet")
    (out / "problem.json").write_text(json.dumps({
        "features": problem.features, "target": problem.target,
        "prediction": problem.prediction, "timestamp": problem.timestamp,
        "segment": problem.segment, "task": problem.task, "metric": problem.metric}))


def before_code() -> Path:
    """The analysis package as of ``BEFORE``, extracted from git once."""
    folder = DATA / f"before-{BEFORE}"
    if not (folder / "analysis" / "attribution.py").is_file():
        archive = subprocess.run(["git", "archive", BEFORE, "analysis"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
    return folder


# --------------------------------------------------------------------------- baseline

def plain_baseline(reference: pd.DataFrame, production: pd.DataFrame, problem) -> dict:
    """The plain answer to the overall question: each feature's two-sample test over all
    production rows (KS for numbers, chi-square on the levels for categories; drifted at
    p < 0.01 after Bonferroni), and the error change split by importance weighting with
    one domain classifier (not cross-fitted). No windows, groups or intervals."""
    from scipy import stats as sps
    from sklearn.ensemble import HistGradientBoostingClassifier

    drifted = []
    for col, kind in problem.features.items():
        a, b = reference[col], production[col]
        if kind == "numeric":
            p = sps.ks_2samp(a.dropna(), b.dropna(), method="asymp").pvalue
        else:
            table = pd.concat([a.astype(str).value_counts(), b.astype(str).value_counts()],
                              axis=1).fillna(0).to_numpy()
            p = sps.chi2_contingency(table)[1]
        if p * len(problem.features) < 0.01:
            drifted.append(col)
    cols = list(problem.features)
    both = pd.concat([reference[cols], production[cols]], ignore_index=True)
    X = pd.get_dummies(both, dtype=float).to_numpy()
    y = np.r_[np.zeros(len(reference)), np.ones(len(production))]
    clf = HistGradientBoostingClassifier(max_iter=100, class_weight="balanced").fit(X, y)
    pi = np.clip(clf.predict_proba(X[:len(reference)])[:, 1], 1e-6, 1 - 1e-6)
    w = np.minimum(pi / (1 - pi), 20)
    loss_ref = np.abs(reference[problem.target] - reference[problem.prediction]).to_numpy()
    loss_prod = np.abs(production[problem.target] - production[problem.prediction]).to_numpy()
    expected = float(np.sum(w * loss_ref) / np.sum(w))
    concept = float(loss_prod.mean()) - expected
    verdict = ("both" if drifted and concept > 0.1 * loss_ref.mean() else "data" if drifted
               else "concept" if concept > 0.1 * loss_ref.mean() else "none")
    return {"verdict": verdict, "drifted_features": drifted, "expected": expected}


# --------------------------------------------------------------------------- the run

def run(kind: str, folder: Path, method: str) -> dict:
    import os

    # one OpenMP thread for every method (ours uses one anyway), so the ratios compare
    # the methods, not the threading
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if method == "before":
        env["PYTHONPATH"] = f"{before_code()}:{ROOT}"
    result = DATA / "bench-result.json"
    result.unlink(missing_ok=True)
    out = subprocess.run([sys.executable, "-c", RUN, kind, str(folder), method, str(result)],
                         check=True, cwd=ROOT if method != "before" else DATA,
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--no-before", action="store_true",
                        help="skip the method before the shared fit (slow on big cases)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of ours and of the method before per case, taken in turn; "
                             "each figure is its method's median run (by compute seconds)")
    args = parser.parse_args()
    rows_out = []
    print(f"{'case':<10} {'rows':>10} {'cells':>6} {'ours s':>13} {'MB':>6} {'before s':>13} "
          f"{'MB':>6} {'plain s':>13} {'before/ours':>13} {'ours/plain':>10}  same verdicts")
    print(f"{'':<10} {'':>10} {'':>6} {'(compute)':>13} {'':>6} {'(compute)':>13} {'':>6} "
          f"{'(compute)':>13} {'(compute)':>13}")
    for name in args.cases.split(","):
        kind, folder, rows = ensure_case(name)
        runs: dict[str, list[dict]] = {"ours": [], "before": []}
        for _ in range(max(1, args.repeat)):
            # in turn, so a machine that slows down for a while slows both alike
            for method in ("ours",) if args.no_before else ("ours", "before"):
                runs[method].append(run(kind, folder, method))
        ours, before = median_run(runs["ours"]), median_run(runs["before"])
        plain = run(kind, folder, "plain")
        same = None if before is None else (ours["verdict"] == before["verdict"] and
                                            ours["cell_verdicts"] == before["cell_verdicts"])
        figures = _figures(name, rows, ours, plain, before, same)
        rows_out.append(figures)
        print(_table_row(figures), flush=True)
    print(json.dumps(rows_out))


def median_run(runs: list[dict]) -> dict | None:
    """The run with the median compute time (the lower middle one of an even count),
    its other figures with it."""
    if not runs:
        return None
    ordered = sorted(runs, key=lambda r: r["compute_seconds"])
    return ordered[(len(ordered) - 1) // 2]


def _figures(name: str, rows: int, ours: dict, plain: dict, before: dict | None,
             same: bool | None) -> dict:
    """One case's JSON: seconds from the process's start (what a user waits) and
    ``compute_seconds`` after the common libraries were imported (the method's own)."""
    ratio = lambda a, b: round(a / b, 2)  # noqa: E731
    figures = {"case": name, "rows": rows, "cells": ours["cells"], "window": ours["window"],
               "seconds": ours["seconds"], "compute_seconds": ours["compute_seconds"],
               "peak_rss_mb": ours["peak_rss_mb"], "verdict": ours["verdict"],
               "plain_seconds": plain["seconds"],
               "plain_compute_seconds": plain["compute_seconds"],
               "ours_over_plain": ratio(ours["seconds"], plain["seconds"]),
               "before_seconds": None, "before_compute_seconds": None,
               "before_peak_rss_mb": None, "before_over_ours": None,
               "before_over_ours_compute": None, "verdicts_equal": same}
    if before is not None:
        figures.update(before_seconds=before["seconds"],
                       before_compute_seconds=before["compute_seconds"],
                       before_peak_rss_mb=before["peak_rss_mb"],
                       before_over_ours=ratio(before["seconds"], ours["seconds"]),
                       before_over_ours_compute=ratio(before["compute_seconds"],
                                                      ours["compute_seconds"]))
        if not same:
            figures["differences"] = {k: (v, ours["cell_verdicts"].get(k))
                                      for k, v in before["cell_verdicts"].items()
                                      if ours["cell_verdicts"].get(k) != v}
    return figures


def _table_row(f: dict) -> str:
    both = lambda a, b: "-" if a is None else f"{a} ({b})"  # noqa: E731
    return (f"{f['case']:<10} {f['rows']:>10,} {f['cells']:>6} "
            f"{both(f['seconds'], f['compute_seconds']):>13} {f['peak_rss_mb']:>6} "
            f"{both(f['before_seconds'], f['before_compute_seconds']):>13} "
            f"{'-' if f['before_peak_rss_mb'] is None else f['before_peak_rss_mb']:>6} "
            f"{both(f['plain_seconds'], f['plain_compute_seconds']):>13} "
            f"{both(f['before_over_ours'], f['before_over_ours_compute']):>13} "
            f"{f['ours_over_plain']:>10}  {'-' if f['verdicts_equal'] is None else f['verdicts_equal']}")


if __name__ == "__main__":
    main()
