"""The ``heatmap`` command: the drift heatmap's cells from a store, on DuckDB or Spark.

``python -m analysis heatmap --store DIR --dataset NAME [--unit day|week|month]
[--metric psi|jensenshannon|wasserstein|ks] [--segment COL [--group G]]
[--engine duckdb|spark [--spark-master URL] [--spark-table NAME]] [--json]``

The cells are the Drift heatmap page's (:func:`heatmap_cells`): the same cube
(:func:`analysis.heatmap.build_cube`, aggregated by the chosen engine), roll-ups and
statistics (numpy, in this process, whichever engine counted). Bad input (unknown
dataset, metric, unit, segment column or group; no timestamp or reference; Spark
without Java) prints one line on stderr and exits 2.
"""
from __future__ import annotations

import json
import math

import pandas as pd

from analysis import formats
from analysis.engine import ENGINES, Engine, engine_from_config
from analysis.heatmap import METRICS, build_cube, grid, pooled_std, select
from analysis.counts import reference_moments
from analysis.reference_bins import frozen_bins
from analysis.store import DEFAULT_STORE, Store
from analysis.tables import InputError

UNITS = ("day", "week", "month")
CELL_FIELDS = ["feature", "window_start", "group", "value", "rows"]
ALL_GROUPS = "all"


def heatmap_cells(store: Store, dataset: str, unit: str = "month", metric: str = "psi",
                  segment: str | None = None, group: str | None = None,
                  engine: Engine | None = None) -> pd.DataFrame:
    """Every heatmap cell: feature x window for all groups together (``group`` 'all')
    and, with a ``segment`` column, for each of its values (or only ``group``).

    Returns the columns of :func:`analysis.heatmap.grid` plus ``group``. The counts are
    aggregated once on ``engine`` (day grain on the coarse bins for PSI and
    Jensen-Shannon, ``unit`` grain on the fine bins for KS and Wasserstein); every group
    and window is then a numpy sum of that cube, as on the page."""
    roles = _check(store, dataset, unit, metric, segment, group)
    _, resolution, _ = METRICS[metric]
    try:
        bins = frozen_bins(store, dataset, engine=engine)
    except ValueError as exc:  # no reference snapshot
        raise InputError(str(exc)) from None
    cube = build_cube(store, dataset, segment, resolution,
                      "day" if resolution == "coarse" else unit, bins=bins, engine=engine)
    if group is not None and group not in cube.segments:
        raise InputError(f"segment column {segment!r} has no group {group!r} (groups: "
                         f"{', '.join(cube.segments)})")
    groups = [group] if group is not None else [ALL_GROUPS] + (cube.segments if segment else [])
    moments = (reference_moments(store, dataset, segment, engine=engine)
               if metric == "wasserstein" and roles.numeric else None)
    frames = []
    for name in groups:
        chosen = None if name == ALL_GROUPS else [name]
        std = pooled_std(moments, chosen) if moments is not None else None
        cells = grid(select(cube, unit, segments=chosen), metric, bins, std)
        frames.append(cells.assign(group=name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=[*CELL_FIELDS, "verdict"])


def _check(store: Store, dataset: str, unit: str, metric: str, segment: str | None,
           group: str | None):
    """The dataset's roles, once the request is known to make sense (else InputError)."""
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r} (choose {', '.join(METRICS)})")
    if unit not in UNITS:
        raise InputError(f"unknown unit {unit!r} (choose {', '.join(UNITS)})")
    roles = store.dataset(dataset).roles  # StoreError names the datasets there are
    if roles.timestamp is None:
        raise InputError(f"dataset {dataset!r} has no timestamp column: no time windows")
    if segment is not None and segment not in roles.segments:
        raise InputError(f"dataset {dataset!r} has no segment column {segment!r} "
                         f"(segments: {', '.join(roles.segments) or 'none'})")
    if group is not None and segment is None:
        raise InputError("--group needs --segment (the column the group belongs to)")
    return roles


def records(cells: pd.DataFrame) -> list[dict]:
    """The cells as JSON-ready objects: feature, window_start (ISO date), group, value
    (null where a side has no rows), rows."""
    out = []
    for row in cells.itertuples(index=False):
        value = float(row.value)
        out.append({"feature": row.feature,
                    "window_start": pd.Timestamp(row.window_start).isoformat(),
                    "group": row.group, "value": None if math.isnan(value) else value,
                    "rows": int(row.rows)})
    return out


def format_cells(cells: pd.DataFrame, metric: str) -> str:
    """A readable table: one line per cell, grouped by group and feature."""
    header = ("group", "feature", "window", METRICS[metric][0], "rows", "verdict")
    rows = [header] + [(r.group, r.feature, formats.window_label(pd.Timestamp(r.window_start)),
                        formats.statistic(r.value), formats.count(r.rows), r.verdict)
                       for r in cells.itertuples(index=False)]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in rows)


def choose_engine(name: str | None, master: str | None = None, table: str | None = None
                  ) -> Engine:
    """The engine the options name (``--engine``, ``--spark-master``, ``--spark-table``),
    else the configuration's (:func:`analysis.engine.engine_from_config`)."""
    configured = engine_from_config()
    name = name or configured.name
    if name not in ENGINES:
        raise InputError(f"unknown engine {name!r} (choose {' or '.join(ENGINES)})")
    if name != "spark":
        if master or table:
            raise InputError("--spark-master and --spark-table need --engine spark")
        return Engine(name)
    try:
        return Engine("spark", master or configured.master, table or configured.table)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def run_on(engine: Engine, work):
    """``work()``'s result; on Spark within a session this command starts and ends, a
    Spark that cannot start being a one-line :class:`InputError`."""
    if not engine.spark:
        return work()
    from analysis import spark
    try:
        with spark.scoped():
            return work()
    except spark.SparkUnavailable as exc:
        raise InputError(str(exc)) from None


def cmd_heatmap(args) -> int:
    engine = choose_engine(args.engine, args.spark_master, args.spark_table)
    store = Store(args.store)
    cells = run_on(engine, lambda: heatmap_cells(store, args.dataset, args.unit, args.metric,
                                                 args.segment, args.group, engine))
    if args.json:
        print(json.dumps(records(cells), indent=2))
        return 0
    print(format_cells(cells, args.metric))
    print(f"\n{len(cells)} cells · {engine.label}")
    return 0


def add_parser(sub) -> None:
    """Register ``heatmap`` on the command line's subparsers."""
    p = sub.add_parser("heatmap", help="the drift heatmap's cells (feature x window x group), "
                                       "aggregated on DuckDB or Spark")
    p.add_argument("--store", default=str(DEFAULT_STORE),
                   help="store directory (default: %(default)s)")
    p.add_argument("--dataset", required=True, help="dataset name")
    p.add_argument("--unit", default="month", help=f"window: {', '.join(UNITS)} "
                                                   "(default: %(default)s)")
    p.add_argument("--metric", default="psi", help=f"{', '.join(METRICS)} (default: "
                                                   "%(default)s)")
    p.add_argument("--segment", help="segment column: cells for each of its groups too")
    p.add_argument("--group", help="only this group of --segment")
    add_engine_options(p)
    p.add_argument("--json", action="store_true", help="print a JSON list of cells")
    p.set_defaults(func=cmd_heatmap)


def add_engine_options(p) -> None:
    """``--engine``, ``--spark-master`` and ``--spark-table`` (see :func:`choose_engine`)."""
    p.add_argument("--engine", help="duckdb (embedded) or spark (default: DRIFT_ENGINE, "
                                    "else duckdb)")
    p.add_argument("--spark-master", help="local[N], a cluster master URL or a Spark "
                                          "Connect URL sc://host:port (default: "
                                          "DRIFT_SPARK_MASTER, else local[*])")
    p.add_argument("--spark-table", help="read production rows from this Spark table "
                                         "instead of the store's snapshots")
