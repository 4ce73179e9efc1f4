"""Binned counts per feature x window x segment x bin: the queries the pages ask.

Counts are aggregated at the finest grain asked for and rolled up by summing (all
segments = sum over segment values; a coarser window = sum of finer windows). Most
questions sum the snapshots' small profiles (:mod:`analysis.profiles`) instead of
binning rows again: :func:`day_counts` (the heatmap's cube), :func:`whole_counts` (a
drift table) and :func:`reference_moments`; a segment filter, which profiles do not
split by, counts the bin codes (:func:`day_counts_from_codes`); anything else bins rows
in the engine (:func:`binned_counts`). Nothing here touches pandas until the small
result comes back (``to_pyarrow`` at the edge).

Every query takes an ``engine`` (:class:`analysis.engine.Engine`; None: the embedded
DuckDB) and runs the same Ibis expressions on it. Spark has no bin codes (a per-row
file is not worth writing from a cluster), so what DuckDB counts from codes Spark bins
from rows (:func:`binned_counts`, tested equal); a Spark engine reading production
rows from a table has no snapshot profiles either and bins those rows too.
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Sequence

import ibis
import numpy as np
import pandas as pd

from analysis.binning import FineBins, NumericBins
from analysis.codes import (CELL_SHIFT, CODES_DAY, code_expr, code_slots, codes_folder,
                            profile_paths)
from analysis.engine import (MISSING_SEGMENT, UNIT_CODES, Engine, connect, connect_slice,
                             epoch_us, files_view, local_con, present, present_or_null, run,
                             runs_on_spark, shape_of, to_arrow, to_frame, unpivot)
from analysis.profiles import ensure_codes
from analysis.queries import Filters
from analysis.reference_bins import FrozenBins, bin_expr, frozen_bins, n_bins
from analysis.stats import pool_moments
from analysis.store import Store

COLUMNS = ["window", "segment", "feature", "bin", "n"]


def binned_counts(store: Store, dataset: str, slice: str, bins: dict, *,
                  unit: str | None = None, segment: str | None = None,
                  filters: Filters | None = None, with_range: bool = False,
                  files: Sequence[Path] | None = None, engine: Engine | None = None
                  ) -> pd.DataFrame:
    """Counts per (window, segment, feature, bin) in one engine query.

    Parameters
    ----------
    bins : feature -> frozen bins (coarse or fine)
    unit : calendar window ('hour', 'day', 'week', 'month') or None for one window
    segment : segment column to split by, or None
    with_range : also return the min, max and sum of every numeric (window, segment, bin)
    files : count these snapshot files of ``slice`` only (default: all of them)
    engine : where the query runs (None: the embedded DuckDB)

    Returns a long frame: ``window`` (timestamp or NaT), ``segment`` (str, or "all"),
    ``feature``, ``bin`` (int), ``n``, and ``lo``/``hi``/``sum`` when asked.
    """
    cols = COLUMNS + (["lo", "hi", "sum"] if with_range else [])
    con, t = connect_slice(store, dataset, slice, filters, files, engine)
    if t is None or not bins:
        return pd.DataFrame(columns=cols)
    roles = store.dataset(dataset).roles
    # the filters are in the view: the compiled SQL does not depend on them
    shape = shape_of(engine)
    key = ("binned", str(store.root), dataset, slice, tuple(bins.items()), unit, segment,
           with_range, roles.timestamp) + (
        (engine.table,) if engine is not None and engine.table else ()) + (
        (shape,) if shape != "union" else ())
    build = _binned_expr if shape == "union" else _binned_long_expr
    table = run(con, key, lambda: build(t, bins, roles.timestamp if unit else None, unit,
                                        segment, with_range),
                store.root / dataset / "bins")
    out = to_frame(table)
    out["feature"] = pd.Categorical.from_codes(out["feature"].to_numpy(dtype=int),
                                               categories=list(bins))
    out["bin"] = out["bin"].astype(int)
    out["n"] = out["n"].astype(np.int64)
    return out


def _keys(t, timestamp: str | None, unit: str | None, segment: str | None) -> dict:
    """The window and segment keys of a binned count over the rows ``t``."""
    return {"window": (t[timestamp].truncate(UNIT_CODES[unit]) if unit is not None
                       else ibis.null("timestamp")),
            "segment": (t[segment].cast("string").fill_null(MISSING_SEGMENT)
                        if segment is not None else ibis.literal("all"))}


def _binned_long_expr(t, bins: dict, timestamp: str | None, unit: str | None,
                      segment: str | None, with_range: bool):
    """:func:`_binned_expr`'s counts from one scan ("unpivot" shape): each row unnested
    into one (feature, bin[, x]) row per feature, then one aggregation."""
    keys = _keys(t, timestamp, unit, segment)
    parts = []
    for index, (feature, fbins) in enumerate(bins.items()):
        part = {"feature": ibis.literal(index, type="int16"), "bin": bin_expr(t[feature], fbins)}
        if with_range:
            part["x"] = (present_or_null(t[feature].cast("float64"))
                         if isinstance(fbins, (NumericBins, FineBins)) else ibis.null("float64"))
        parts.append(part)
    long = unpivot(t, keys, parts)
    aggs = {"n": ibis._.count()}
    if with_range:
        aggs.update(lo=long.x.min(), hi=long.x.max(), sum=long.x.sum())
    expr = long.group_by("window", "segment", "feature", "bin").aggregate(**aggs)
    return expr.select(*COLUMNS, *(["lo", "hi", "sum"] if with_range else []))


def _binned_expr(t, bins: dict, timestamp: str | None, unit: str | None,
                 segment: str | None, with_range: bool):
    """The union, over features, of counts per (window, segment, bin) of table ``t``."""
    keys = _keys(t, timestamp, unit, segment)
    parts = []
    for index, (feature, fbins) in enumerate(bins.items()):
        grouped = t.group_by(**keys, bin=bin_expr(t[feature], fbins))
        aggs = {"n": ibis._.count()}
        if with_range:
            x = (t[feature].cast("float64")
                 if isinstance(fbins, (NumericBins, FineBins)) else None)
            for name, fn in (("lo", "min"), ("hi", "max"), ("sum", "sum")):
                aggs[name] = (getattr(x, fn)(where=present(x)) if x is not None
                              else ibis.null("float64"))
        parts.append(grouped.aggregate(**aggs).mutate(feature=ibis.literal(index, type="int16")))
    expr = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    return expr.select(*COLUMNS, *(["lo", "hi", "sum"] if with_range else []))


def profile_split(store: Store, dataset: str, bins: FrozenBins, slice: str,
                  filters: Filters | None, engine: Engine | None = None):
    """Which snapshots of ``slice`` a query with ``filters`` takes whole from their
    profiles, and which it must read (cut by the time range).

    Returns ``(whole, cut)``: profile paths of the wholly covered snapshots and the
    files of the cut ones (snapshots wholly outside the range are in neither); or None
    when profiles cannot answer (no timestamp column, or segment filters, which profiles
    do not split by)."""
    roles = store.dataset(dataset).roles
    if roles.timestamp is None or (filters is not None and filters.segments) or \
            _from_table(engine, slice):
        return None
    ensure_codes(store, dataset, bins, slice=slice, engine=engine)
    folder = codes_folder(store, dataset, bins)
    timed = slice == "production" and filters is not None and (
        filters.start is not None or filters.end is not None)
    whole, cut = [], []
    for snap in store.snapshots(dataset, slice):
        paths = profile_paths(folder, snap.id)
        cover = _coverage(json.loads(paths["meta"].read_text()), filters) if timed else "whole"
        if cover == "whole":
            whole.append(paths)
        elif cover == "cut":
            cut.append(snap.path)
    return whole, cut


def _from_table(engine: Engine | None, slice: str) -> bool:
    """Whether the engine reads this slice's rows from a table (no snapshot profiles)."""
    return engine is not None and engine.table is not None and slice == "production"


def _coverage(meta: dict, filters: Filters) -> str:
    """'whole', 'cut' or 'outside': how the time range of ``filters`` meets a snapshot
    whose profile meta is ``meta``."""
    start = epoch_us(filters.start) if filters.start is not None else None
    end = epoch_us(filters.end) if filters.end is not None else None
    first, last = meta["first_us"], meta["last_us"]
    # rows without a timestamp fall outside every time range: such a snapshot is cut
    known = first is not None and not meta["undated"] and (
        filters.start is None or start is not None) and (filters.end is None or end is not None)
    if known and ((end is not None and first >= end) or (start is not None and last < start)):
        return "outside"
    if known and (start is None or first >= start) and (end is None or last < end):
        return "whole"
    return "cut"


def whole_counts(store: Store, dataset: str, bins: FrozenBins, slice: str,
                 filters: Filters | None = None, profiles: bool = True,
                 engine: Engine | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fine and coarse counts per (feature, bin) of one slice within ``filters``, with no
    window or segment split: the frames :func:`binned_counts` returns with ``unit=None,
    segment=None`` for ``bins.fine`` (numeric features, with ``lo``, ``hi``, ``sum``) and
    for ``bins.coarse`` (every feature).

    Snapshots the filters cover whole are summed from their profiles; only the snapshots
    the time range cuts are binned from their rows, and there the coarse counts of a
    numeric feature whose fine bins refine its coarse bins
    (:meth:`analysis.binning.FineBins.coarse_map`) are summed from its fine counts
    instead of binning the rows twice. Sums and extremes of the parts give the numbers
    binning every row gives (tested); ``profiles=False`` bins every row. ``engine``
    runs the queries (the small parts are merged in this process's DuckDB)."""
    split = profile_split(store, dataset, bins, slice, filters, engine) if profiles else None
    if split is None:
        return (binned_counts(store, dataset, slice, bins.fine, filters=filters,
                              with_range=True, engine=engine),
                binned_counts(store, dataset, slice, bins.coarse, filters=filters,
                              engine=engine))
    whole, cut = split
    fine_parts, coarse_parts = [], []
    if whole:
        segmented = bool(store.dataset(dataset).roles.segments)
        fine, coarse = _profile_sums(connect(engine), whole, bins, segmented)
        fine_parts.append(fine)
        coarse_parts.append(coarse)
    if cut:
        fine, coarse = _cut_counts(store, dataset, bins, slice, filters, cut, engine)
        fine_parts.append(fine)
        coarse_parts += coarse
    con = local_con()
    return (_merged(con, fine_parts, list(bins.fine), True),
            _merged(con, coarse_parts, list(bins.coarse), False))


def _profile_sums(con, whole: list[dict], bins: FrozenBins, segmented: bool
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fine and coarse counts per (feature, bin) summed over the profiles ``whole``."""
    fine = files_view(con, "profile_fine", [p["fine"] for p in whole])
    fine = to_arrow(con, fine.group_by("feature", "bin").aggregate(
        n=fine.n.sum(), lo=fine.lo.min(), hi=fine.hi.max(), sum=fine["sum"].sum())).to_pandas()
    days = files_view(con, "profile_days", [p["days"] for p in whole])
    # every segment column's part counts every row: take the first one's
    days = days.filter(days.seg == (0 if segmented else -1))
    coarse = to_arrow(con, days.group_by("feature", "bin").aggregate(
        n=days.n.sum())).to_pandas()
    for frame, names in ((fine, list(bins.fine)), (coarse, list(bins.coarse))):
        frame["feature"] = np.asarray(names, dtype=object)[frame["feature"].to_numpy(int)]
    return fine, coarse


def _cut_counts(store: Store, dataset: str, bins: FrozenBins, slice: str,
                filters: Filters | None, cut: list[Path], engine: Engine | None = None
                ) -> tuple[pd.DataFrame, list]:
    """Fine counts and coarse count parts of the snapshots ``cut`` by the time range,
    binned from their rows (coarse from fine where the fine bins refine the coarse)."""
    live = binned_counts(store, dataset, slice, bins.fine, filters=filters,
                         with_range=True, files=cut, engine=engine)
    live["feature"] = live["feature"].astype(str)
    coarse = []
    maps = {f: bins.fine[f].coarse_map(bins.coarse[f]) for f in bins.fine}
    for feature, part in live.groupby("feature", sort=False):
        if maps.get(feature) is not None:
            n = np.bincount(maps[feature][part["bin"].to_numpy(int)],
                            weights=part["n"].to_numpy(float),
                            minlength=n_bins(bins.coarse[feature]))
            coarse.append(pd.DataFrame({"feature": feature, "bin": np.arange(n.size), "n": n}))
    direct = {f: b for f, b in bins.coarse.items() if maps.get(f) is None}
    if direct:
        rows = binned_counts(store, dataset, slice, direct, filters=filters, files=cut,
                             engine=engine)
        rows["feature"] = rows["feature"].astype(str)
        coarse.append(rows[["feature", "bin", "n"]])
    return live[["feature", "bin", "n", "lo", "hi", "sum"]], coarse


def _merged(con, parts: list[pd.DataFrame], features: list[str], with_range: bool
            ) -> pd.DataFrame:
    """Sum counts (and sums) and take extremes of (feature, bin) rows from several parts."""
    cols = ["feature", "bin", "n"] + (["lo", "hi", "sum"] if with_range else [])
    parts = [p[cols] for p in parts if len(p)]
    if parts:
        t = ibis.memtable(pd.concat(parts, ignore_index=True).astype(
            {"feature": str, "bin": np.int64, "n": np.float64}))
        aggs = {"n": t.n.sum()}
        if with_range:
            aggs.update(lo=t.lo.min(), hi=t.hi.max(), sum=t["sum"].sum())
        out = con.to_pyarrow(t.group_by("feature", "bin").aggregate(**aggs)).to_pandas()
    else:
        out = pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    out.insert(0, "window", pd.NaT)
    out.insert(1, "segment", "all")
    out["feature"] = pd.Categorical(out["feature"], categories=features)
    out["bin"] = out["bin"].astype(int)
    out["n"] = out["n"].astype(np.int64)
    return out


def _decode_cells(table, labels: list[str] | None, bins: FrozenBins, by_day: bool
                  ) -> pd.DataFrame:
    """The long (window, segment, feature, bin, n) frame of a (cell, feature, bin, n)
    result: cell = day x 2**20 + segment index (``labels`` decodes it; None: 'all')."""
    out = table.to_pandas(types_mapper={}.get)
    cell = out.pop("cell").to_numpy(dtype=np.int64)
    days = cell // CELL_SHIFT
    out.insert(0, "window", (np.datetime64("1970-01-01", "D") + days).astype("datetime64[us]")
               if by_day else pd.NaT)
    if labels is not None:
        out.insert(1, "segment", pd.Categorical.from_codes(cell % CELL_SHIFT, categories=labels))
    else:
        out.insert(1, "segment", "all")
    out["feature"] = pd.Categorical.from_codes(out["feature"].to_numpy(dtype=int),
                                               categories=list(bins.coarse))
    out["bin"] = out["bin"].astype(int)
    out["n"] = out["n"].astype(np.int64)
    return out[COLUMNS]


def day_counts(store: Store, dataset: str, bins: FrozenBins, segment: str | None,
               filters: Filters | None = None, slice: str = "production",
               engine: Engine | None = None) -> pd.DataFrame:
    """Counts per (day, segment, feature, coarse bin): the long frame of
    :func:`binned_counts` with ``unit='day'`` (``unit=None`` for the reference, whose
    window is NULL), at day-aligned filters.

    Summed from the snapshots' profiles (their ``days`` part) when the filters select
    days only; with segment filters (which profiles do not split by), or rows without
    a timestamp, counted from the bin codes (:func:`day_counts_from_codes`). Neither
    re-bins a row. On Spark (``engine``), which keeps no bin codes, those two cases
    and a production table bin the rows instead (:func:`binned_counts`)."""
    if filters is not None and filters.segments:
        return day_counts_from_codes(store, dataset, bins, segment, filters, slice, engine)
    if _from_table(engine, slice):
        return _day_counts_from_rows(store, dataset, bins, segment, filters, slice, engine)
    roles = store.dataset(dataset).roles
    files = ensure_codes(store, dataset, bins, slice=slice, engine=engine)
    if not files:
        return pd.DataFrame(columns=COLUMNS)
    folder = files[0].parent
    if any(json.loads(profile_paths(folder, p.stem)["meta"].read_text())["undated"]
           for p in files):
        # rows without a day have no cell in the profile: count the codes as they are
        return day_counts_from_codes(store, dataset, bins, segment, filters, slice, engine)
    paths = [profile_paths(folder, p.stem)["days"] for p in files]
    by_day = slice == "production"
    con = connect(engine)
    t = files_view(con, "profile_days", paths)
    t = t.filter(t.seg == (roles.segments.index(segment) if segment else
                           (0 if roles.segments else -1)))
    epoch = date(1970, 1, 1)
    if filters is not None and by_day:
        if filters.start is not None:
            t = t.filter(t.cell >= (filters.start.date() - epoch).days * CELL_SHIFT)
        if filters.end is not None:
            t = t.filter(t.cell < (filters.end.date() - epoch).days * CELL_SHIFT)
    if segment:
        cell = t.cell if by_day else t.cell % CELL_SHIFT
    else:
        cell = (t.cell // CELL_SHIFT) * CELL_SHIFT if by_day else ibis.literal(0, type="int64")
    expr = t.group_by(cell=cell, feature=t.feature, bin=t.bin).aggregate(n=t.n.sum())
    labels = json.loads((folder / "segments.json").read_text())[segment] if segment else None
    return _decode_cells(to_arrow(con, expr), labels, bins, by_day)


def _day_counts_from_rows(store: Store, dataset: str, bins: FrozenBins, segment: str | None,
                          filters: Filters | None, slice: str, engine: Engine | None
                          ) -> pd.DataFrame:
    """:func:`day_counts`' frame binned from the rows (what Spark does where DuckDB
    counts bin codes): windows as naive days, segments as a categorical."""
    out = binned_counts(store, dataset, slice, bins.coarse,
                        unit="day" if slice == "production" else None, segment=segment,
                        filters=filters, engine=engine)
    out["window"] = out["window"].to_numpy(dtype="datetime64[us]")
    out["segment"] = out["segment"].astype(str).astype("category")
    return out[COLUMNS]


def day_counts_from_codes(store: Store, dataset: str, bins: FrozenBins,
                          segment: str | None, filters: Filters | None = None,
                          slice: str = "production", engine: Engine | None = None
                          ) -> pd.DataFrame:
    """Counts per (day, segment, feature, coarse bin) from the bin codes: the same long
    frame as :func:`binned_counts` with ``unit='day'`` (``unit=None`` for the reference,
    whose window is NULL), without re-binning; on Spark (which keeps no codes) binned
    from the rows."""
    if runs_on_spark(engine):
        return _day_counts_from_rows(store, dataset, bins, segment, filters, slice, engine)
    files = ensure_codes(store, dataset, bins, slice=slice)
    if not files:
        return pd.DataFrame(columns=COLUMNS)
    con = local_con()
    t = files_view(con, "codes_source", files)
    by_day = slice == "production"
    roles = store.dataset(dataset).roles
    key = ("codes", str(store.root), dataset, bins.token, segment, slice,
           filters.key() if filters is not None else None, tuple(roles.segments))
    table = run(con, key, lambda: _codes_expr(t, bins, roles.segments, segment, filters, by_day),
                store.root / dataset / "bins" if filters is None else None)
    labels = json.loads((files[0].parent / "segments.json").read_text())[segment] \
        if segment else None
    return _decode_cells(table, labels, bins, by_day)


def _codes_expr(t, bins: FrozenBins, segments: list[str], segment: str | None,
                filters: Filters | None, by_day: bool):
    """The union, over features, of counts per (cell, bin) of the codes table ``t``."""
    if filters is not None and by_day:
        if filters.start is not None:
            t = t.filter(t[CODES_DAY] >= filters.start.date())
        if filters.end is not None:
            t = t.filter(t[CODES_DAY] < filters.end.date())
        for column, values in filters.segments.items():
            t = t.filter(t[column].isin([str(v) for v in values]))
    # one integer key per row: the day x segment cell (decoded after the aggregation)
    if segment:
        cell = t[f"__cell{segments.index(segment)}"]
        if not by_day:
            cell = cell % CELL_SHIFT
    else:
        cell = t[CODES_DAY].delta(ibis.date(1970, 1, 1), unit="day").cast("int64") * \
            CELL_SHIFT if by_day else ibis.literal(0, type="int64")
    parts = [t.group_by(cell=cell, bin=code_expr(t, slot)).aggregate(n=ibis._.count())
             .mutate(feature=ibis.literal(i, type="int16"))
             for i, slot in enumerate(code_slots(bins))]
    union = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    return union.select("cell", "feature", "bin", "n")


def reference_moments(store: Store, dataset: str, segment: str | None,
                      profiles: bool = True, engine: Engine | None = None) -> pd.DataFrame:
    """Count, mean and population variance of each numeric feature in the reference, per
    segment value: columns segment, feature, n, mean, var.

    Pooled (:func:`pool_moments`) from the reference snapshots' profiles; one engine
    query over the rows where the dataset has no timestamp (no profiles) or
    ``profiles`` is false."""
    roles = store.dataset(dataset).roles
    cols = ["segment", "feature", "n", "mean", "var"]
    if not roles.numeric or not store.files(dataset, "reference"):
        return pd.DataFrame(columns=cols)
    if roles.timestamp is not None and profiles:
        bins = frozen_bins(store, dataset, engine=engine)
        files = ensure_codes(store, dataset, bins, slice="reference", engine=engine)
        paths = [profile_paths(files[0].parent, p.stem)["moments"] for p in files]
        con = connect(engine)
        t = files_view(con, "profile_moments", paths)
        parts = to_arrow(con, t.filter(t.segcol == (segment or ""))).to_pandas()
        out = []
        for (value, feature), g in parts.groupby(["segment", "feature"], sort=True):
            n, mean, var = pool_moments(g["n"], g["mean"], g["m2"])
            out.append((value, feature, int(n), mean, var))
        return pd.DataFrame(out, columns=cols)
    con, t = connect_slice(store, dataset, "reference", engine=engine)
    key = t[segment].cast("string").fill_null(MISSING_SEGMENT) if segment else ibis.literal("all")
    parts = []
    for f in roles.numeric:
        x = t[f].cast("float64")
        ok = present(x)
        parts.append(t.group_by(segment=key).aggregate(
            n=x.count(where=ok), mean=x.mean(where=ok), var=x.var(how="pop", where=ok))
            .mutate(feature=ibis.literal(f)))
    expr = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    return to_arrow(con, expr.select(*cols)).to_pandas()
