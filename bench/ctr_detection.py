"""CTR change detection on the simulated recommender: delay, false alarms, root cause,
and the ingest rate, against a plain fixed-threshold alert in the same runs.

    .venv/bin/python bench/ctr_detection.py [--seeds 20] [--hours 24] [--null-seeds 5]

1. **Fault runs** (``--seeds``): each seed picks a time of day at random and a fault
   whose share is set (by the simulator's expected CTR) to lower CTR by 10 % relative;
   the kinds rotate over a used feature going null, a used feature going stale, a
   latency spike, a broken model version, and a used feature going null together with
   ``weather_index`` (which the model barely uses) going null for half the requests.
   The stream runs on the simulated clock at 1,000 requests/s from 60 minutes before
   the fault to 20 minutes after it; the detectors see its per-minute aggregates
   without a baseline file (the first 15 minutes set the reference), exactly as
   ``python -m analysis detect`` does.
2. **Fault-free runs** (``--null-seeds`` x ``--hours``): CTR alerts there are false alarms.
3. **Smallest drop**: drops of 2 % to 10 % over a few seeds; the smallest whose every
   run was detected within 5 minutes.
4. **Fixed threshold** (what a plain dashboard alert does): alert while the 5-minute
   moving CTR is below 90 % of the stream's mean CTR over its first hour; its delay and
   false alarms on the same runs.
5. **Ingest**: events/s sustained by the durable ingest (write-ahead log with fsync,
   Parquet parts, aggregates) while a reader keeps reading the aggregates.

Prints a table per part and, last, one JSON line with ``median_delay_min``,
``max_delay_min``, ``false_alarms``, ``fault_free_hours``, ``root_cause_top1_share``,
``smallest_drop_within_5min``, ``ingest_events_per_s`` and the threshold alert's figures.
Delays are from the fault's start to ``detected_at``, in simulated minutes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _venv import ROOT, use_project_python  # noqa: E402

use_project_python()
sys.path.insert(0, str(ROOT))

from analysis.scenarios import ecommerce  # noqa: E402
from analysis.streaming import events, minutes  # noqa: E402
from analysis.streaming.detect import CTR, detect_alerts  # noqa: E402

RATE = 1000.0
BEFORE_MIN, AFTER_MIN = 60, 20
KINDS = (("null", "user_affinity"), ("stale", "item_popularity"), ("latency", None),
         ("score", None), ("null+unused", "recent_clicks"))
DROPS = (0.02, 0.03, 0.04, 0.05, 0.07, 0.10)


def stream_aggregates(sim, start: datetime, end: datetime, step=timedelta(minutes=30)):
    """The simulator's events from start to end, aggregated in steps and merged."""
    parts, t = [], start
    while t < end:
        stop = min(t + step, end)
        parts.append(events.aggregate_events(sim.events(t, stop)))
        t = stop
    return events.merge(parts)


def _faults(kind: str, target: str | None, drop: float, at: datetime, seed: int):
    probe = ecommerce.EcommerceSimulator(seed=seed, rate=RATE)
    base_kind = kind.split("+")[0]
    share = probe.share_for_drop(base_kind, target, drop, at)
    spec = f"{base_kind}:{target}:{share:.4f}" if target else f"{base_kind}:{share:.4f}"
    faults = [ecommerce.parse_fault(spec, at)]
    if kind.endswith("+unused"):
        faults.append(ecommerce.parse_fault("null:weather_index:0.5", at))
    return faults, spec, ("latency" if base_kind == "latency" else
                          "score" if base_kind == "score" else target)


def threshold_alerts(cube, hour_minutes=60, window=5, ratio=0.9):
    """Minutes at which a fixed-threshold alert on the 5-minute moving CTR fires (first
    minute of each run of minutes below the threshold)."""
    n, c = cube.totals()
    n, c = n.sum(1).astype(float), c.sum(1).astype(float)
    level = c[:hour_minutes].sum() / n[:hour_minutes].sum()
    kernel = np.ones(window)
    moving = np.convolve(c, kernel)[:len(c)] / np.maximum(np.convolve(n, kernel)[:len(n)], 1)
    below = moving < ratio * level
    below[:hour_minutes] = False
    return [int(m) for m in range(len(below)) if below[m] and (m == 0 or not below[m - 1])]


def fault_run(seed: int, kind: str, target: str | None, drop: float = 0.10) -> dict:
    rng = np.random.default_rng(seed)
    day = datetime(2026, 11, 2)
    at = day + timedelta(minutes=int(rng.integers(BEFORE_MIN, 24 * 60)))
    faults, spec, cause = _faults(kind, target, drop, at, seed)
    sim = ecommerce.EcommerceSimulator(seed=seed, rate=RATE, start=at - timedelta(minutes=BEFORE_MIN),
                                       faults=faults)
    agg = stream_aggregates(sim, at - timedelta(minutes=BEFORE_MIN), at + timedelta(minutes=AFTER_MIN))
    cube = minutes.cube_from_aggregates(agg, list(ecommerce.FEATURES))
    alerts = [a for a in detect_alerts(cube)[0] if a.signal == CTR]
    hit = next((a for a in alerts if np.datetime64(a.detected_at) > np.datetime64(at)), None)
    fixed = [m for m in threshold_alerts(cube) if cube.minutes[m] >= np.datetime64(at)]
    fault_minute = BEFORE_MIN
    return {"seed": seed, "kind": kind, "spec": spec, "cause": cause, "at": at.isoformat(),
            "detected": hit is not None,
            "delay_min": _minutes(hit.detected_at, at) if hit else None,
            "start_error_min": _minutes(hit.start, at) if hit else None,
            "top1": bool(hit and hit.ranked_causes[:1] == [cause]),
            "ranked": hit.ranked_causes if hit else [],
            "early_alerts": int(sum(np.datetime64(a.detected_at) <= np.datetime64(at) for a in alerts)),
            "fixed_delay_min": int(fixed[0] + 1 - fault_minute) if fixed else None}


def _minutes(when: str, at: datetime) -> float:
    return float((np.datetime64(when) - np.datetime64(at)) / np.timedelta64(60, "s"))


def fault_free_run(seed: int, hours: float) -> dict:
    start = datetime(2026, 11, 2)
    sim = ecommerce.EcommerceSimulator(seed=1000 + seed, rate=RATE, start=start)
    agg = stream_aggregates(sim, start, start + timedelta(hours=hours), step=timedelta(hours=1))
    cube = minutes.cube_from_aggregates(agg, list(ecommerce.FEATURES))
    alerts = detect_alerts(cube)[0]
    return {"seed": seed, "hours": hours,
            "ctr_alerts": sum(a.signal == CTR for a in alerts),
            "upstream_alerts": sum(a.signal != CTR for a in alerts),
            "fixed_alerts": len(threshold_alerts(cube))}


def ingest_rate(seconds: float) -> dict:
    from stream_ingest import ingest_benchmark
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        return ingest_benchmark(seconds, Path(tmp) / "stream")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="fault runs (default: %(default)s)")
    ap.add_argument("--null-seeds", type=int, default=5, help="fault-free runs")
    ap.add_argument("--hours", type=float, default=24.0, help="hours per fault-free run")
    ap.add_argument("--drop-seeds", type=int, default=3, help="runs per drop size")
    ap.add_argument("--ingest-seconds", type=float, default=20.0)
    args = ap.parse_args()
    t0 = time.time()

    runs = []
    print(f"{'seed':>4}  {'fault':<38} {'delay':>6} {'start':>6} {'fixed':>6}  ranked causes")
    for seed in range(args.seeds):
        kind, target = KINDS[seed % len(KINDS)]
        r = fault_run(seed, kind, target)
        runs.append(r)
        print(f"{seed:>4}  {r['spec'] + (' +weather' if '+' in kind else ''):<38} "
              f"{r['delay_min'] if r['delay_min'] is not None else '-':>6} "
              f"{r['start_error_min'] if r['start_error_min'] is not None else '-':>6} "
              f"{r['fixed_delay_min'] if r['fixed_delay_min'] is not None else '-':>6}  "
              f"{','.join(r['ranked'][:3])}{'' if r['top1'] else '  <- expected ' + str(r['cause'])}")
    quiet = []
    for seed in range(args.null_seeds):
        q = fault_free_run(seed, args.hours)
        quiet.append(q)
        print(f"fault-free seed {seed}: {q['hours']:g} h, CTR alerts {q['ctr_alerts']}, "
              f"upstream alerts {q['upstream_alerts']}, fixed-threshold alerts {q['fixed_alerts']}")
    smallest = None
    for drop in DROPS:
        delays = [fault_run(500 + s, "null", "user_affinity", drop)["delay_min"]
                  for s in range(args.drop_seeds)]
        ok = all(d is not None and d <= 5 for d in delays)
        print(f"drop {drop:.0%}: delays {delays}")
        if ok and smallest is None:
            smallest = drop
    ingest = ingest_rate(args.ingest_seconds)
    print(f"ingest: {ingest}")

    delays = [r["delay_min"] for r in runs if r["delay_min"] is not None]
    fixed = [r["fixed_delay_min"] for r in runs if r["fixed_delay_min"] is not None]
    summary = {
        "fault_runs": len(runs), "detected": len(delays),
        "median_delay_min": statistics.median(delays) if delays else None,
        "max_delay_min": max(delays) if delays else None,
        "false_alarms": sum(q["ctr_alerts"] for q in quiet) + sum(r["early_alerts"] for r in runs),
        "fault_free_hours": sum(q["hours"] for q in quiet),
        "upstream_false_alarms": sum(q["upstream_alerts"] for q in quiet),
        "root_cause_top1_share": sum(r["top1"] for r in runs) / len(runs) if runs else None,
        "smallest_drop_within_5min": smallest,
        "ingest_events_per_s": ingest.get("visible_per_s"),
        "ingest_acknowledged_per_s": ingest.get("events_per_s"),
        "fixed_threshold": {"detected": len(fixed), "median_delay_min":
                            statistics.median(fixed) if fixed else None,
                            "false_alarms": sum(q["fixed_alerts"] for q in quiet)},
        "seconds": round(time.time() - t0, 1)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
