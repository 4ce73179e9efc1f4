"""One pass over a snapshot's rows writes its bin codes and its whole profile.

The engine's writers (:func:`analysis.codes.write_codes`, then
:func:`analysis.profiles.write_profile`) run one query per feature and grouping:
more than 60 scans of the snapshot, each evaluating a CASE tree per row. Here the
snapshot's columns are read once (Arrow; text columns as their Parquet dictionaries,
so a category is mapped once, not once per row) and everything is computed from
those arrays with numpy, the features spread over a few threads:

* coarse codes: for a numeric feature, the number of frozen edges <= x (what the
  engine's tree of ``x < edge`` tests gives); for a categorical one, the level's
  position, looked up once per dictionary entry;
* ``days``: one ``bincount`` per feature of (day x segment cell, coarse bin);
* ``fine``: the present values sorted once; :meth:`analysis.binning.FineBins.lower_bounds`
  split them into the fine bins by ``searchsorted``: counts, min, max and sums without
  any per-value arithmetic;
* ``moments``: two passes per segment column (means, then squared deviations), as
  exact as the engine's ``var_pop``; all rows pooled from one segment column's.

The bins are the same as the engine's because the arithmetic is (the bounds reproduce
``floor((x - a) / w)`` exactly; the literals in the engine's SQL parse to the same
doubles), which the tests check file by file against the engine's writers. Columns of
other types than the store's own (timestamps with a time zone, text timestamps,
decimal numbers, non-text categories) are cast by DuckDB with the engine's casts.
"""
from __future__ import annotations

import os
import tempfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.binning import CategoricalBins, FineBins, NumericBins
from analysis.codes import (CELL_SHIFT, CODES_DAY, code_slots, extend_dictionary, profile_paths,
                            write_meta)
from analysis.engine import epoch_us, new_con
from analysis.queries import quote
from analysis.reference_bins import FrozenBins, n_bins
from analysis.stats import pool_moments

#: microseconds per unit of an Arrow timestamp (ns: divided instead); units per day
_US_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}
_UNITS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000,
                  "ns": 86_400_000_000_000}
#: cells x bins above which days are counted through np.unique instead of a dense range
_DENSE_LIMIT = 1 << 24
#: rows per block of the blocked passes (their buffers stay in the core's cache)
_BLOCK = 1 << 16
DAYS_SCHEMA = pa.schema([("seg", pa.int16()), ("cell", pa.int64()), ("feature", pa.int16()),
                         ("bin", pa.int16()), ("n", pa.int64())])
FINE_SCHEMA = pa.schema([("feature", pa.int16()), ("bin", pa.int16()), ("n", pa.int64()),
                         ("lo", pa.float64()), ("hi", pa.float64()), ("sum", pa.float64())])
MOMENTS_SCHEMA = pa.schema([("segcol", pa.string()), ("segment", pa.string()),
                            ("feature", pa.string()), ("n", pa.int64()),
                            ("mean", pa.float64()), ("m2", pa.float64())])


@dataclass
class Rows:
    """A snapshot's columns as arrays: ``day`` (days since 1970, int64; ``dated`` says
    where it is known), ``segments`` (column -> (dictionary values, per-row index into
    them, -1 for NULL)), ``numeric`` (float64, NaN for NULL), ``categorical`` (as
    segments), and the first and last timestamp in microseconds (None when unknown)."""

    n: int
    day: np.ndarray
    dated: np.ndarray
    segments: dict
    numeric: dict
    categorical: dict
    first_us: int | None
    last_us: int | None


@dataclass
class Cells:
    """One grouping of the rows into day x segment cells: ``seg`` (the index of segment
    ``column``; -1 and None for days only), per-row dense cell ``index``, each dense
    cell's ``value`` as written in the codes file (day x 2**20 + segment index) and the
    dense cell of rows without a timestamp (``undated``, None when there are none), and
    the per-row segment index ``group`` into ``labels`` and the rows of each label,
    ``sizes`` (None for days only)."""

    seg: int
    column: str | None
    index: np.ndarray
    value: np.ndarray
    undated: int | None
    group: np.ndarray | None = None
    labels: list | None = None
    sizes: np.ndarray | None = None


def write_snapshots(folder: Path, snaps: list, roles, bins: FrozenBins, progress=None,
                    workers: int | None = None) -> None:
    """Write the codes file and profile of each of ``snaps`` (the caller holds the codes
    lock), a few snapshots at a time.

    Snapshots are read one after the other, each extending the segment dictionary in
    snapshot order (indices then do not depend on which snapshot finishes first); each
    is then binned and written in a worker thread while the next one is read."""
    workers = min(len(snaps), workers or _workers())
    if workers <= 1:
        for snap in snaps:
            write_snapshot(folder, snap, roles, bins)
            _tell(progress, snap)
        return
    with ThreadPoolExecutor(workers) as pool:
        running: deque = deque()
        for snap in snaps:
            rows = read_rows(snap.path, roles, threads=False)
            dictionary = extend_dictionary(folder, {c: _used_values(*rows.segments[c])
                                                    for c in roles.segments})
            running.append((snap, pool.submit(_write_rows, folder, snap, rows, dictionary,
                                              roles, bins, 1)))
            while len(running) >= workers or (running and running[0][1].done()):
                done, future = running.popleft()
                future.result()
                _tell(progress, done)
        for done, future in running:
            future.result()
            _tell(progress, done)


def _tell(progress, snap) -> None:
    if progress:
        progress(f"binned and profiled snapshot {snap.id} ({snap.rows:,} rows)")


def _workers() -> int:
    """Threads for the features of one snapshot, or for snapshots side by side: numpy
    and the Parquet reader and writer release the GIL, so threads use the cores."""
    return min(4, os.cpu_count() or 1)


def write_snapshot(folder: Path, snap, roles, bins: FrozenBins,
                   workers: int | None = None) -> None:
    """Write one snapshot's codes file and profile from one read of its rows, its
    features spread over ``workers`` threads (the caller holds the codes lock; the
    profile's ``profile.json`` is written last)."""
    workers = workers or _workers()
    rows = read_rows(snap.path, roles, threads=workers > 1)
    dictionary = extend_dictionary(folder, {c: _used_values(*rows.segments[c])
                                            for c in roles.segments})
    _write_rows(folder, snap, rows, dictionary, roles, bins, workers)


def _write_rows(folder: Path, snap, rows: Rows, dictionary: dict, roles, bins: FrozenBins,
                workers: int) -> None:
    """Bin the snapshot's ``rows``, then write its codes file and profile."""
    groupings = _groupings(rows, roles.segments, dictionary)
    features = list(bins.coarse)
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda f: _feature(f, features.index(f), rows, bins, groupings),
                              features))
    _write_codes(folder / f"{snap.id}.parquet", rows, roles.segments, groupings,
                 [p[0] for p in parts], bins, threads=workers)
    paths = profile_paths(folder, snap.id)
    write_part(paths["days"], [t for p in parts for t in p[1]], DAYS_SCHEMA)
    write_part(paths["fine"], [p[2] for p in parts if p[2] is not None], FINE_SCHEMA)
    write_part(paths["moments"], [t for p in parts for t in p[3]], MOMENTS_SCHEMA)
    write_meta(paths["meta"], rows.n, int(rows.n - rows.dated.sum()), rows.first_us,
               rows.last_us)


def _feature(feature: str, index: int, rows: Rows, bins: FrozenBins, groupings: list):
    """One feature's coarse codes and its days, fine and moments parts."""
    coarse = bins.coarse[feature]
    if feature in bins.fine:
        x = rows.numeric[feature]
        ok = np.isfinite(x)
        codes = numeric_codes(x, ok, coarse)
        moments = _moments(x, ok, feature, [g for g in groupings if g.labels is not None])
        # last: x is not needed after this, so a copy of our own is sorted in place
        fine = fine_summary(x, ok, bins.fine[feature], overwrite=x.flags.writeable)
        fine = fine.append_column("feature", pa.array(np.full(fine.num_rows, list(
            bins.fine).index(feature), np.int16))).select(FINE_SCHEMA.names)
    else:
        codes = categorical_codes(*rows.categorical[feature], coarse)
        fine, moments = None, []
    days = [day_table(codes, n_bins(coarse), index, g) for g in groupings]
    return codes, days, fine, moments


def _moments(x: np.ndarray, ok: np.ndarray, feature: str, groupings: list[Cells]) -> list:
    """The moments rows of one feature: all rows (pooled from the first segment column's
    values when there is one, :func:`analysis.stats.pool_moments`), then per value of
    every segment column."""
    parts = [(g, segment_moments(x, ok, g)) for g in groupings]
    if parts:
        total, mean, variance = pool_moments(*parts[0][1])
        whole = np.array([total]), np.array([mean]), np.array([variance * total])
    else:
        whole = overall_moments(x, ok)
    return [moments_table(feature, "", ["all"], np.array([x.size]), *whole)] + [
        moments_table(feature, g.column, g.labels, g.sizes, *m) for g, m in parts]


def numeric_codes(x: np.ndarray, ok: np.ndarray, bins: NumericBins) -> np.ndarray:
    """Coarse bin of every value (uint8): the number of edges <= x, missing (not
    finite) last; the engine's ``x < edge`` tree gives the same (one comparison per
    edge here, which vectorises better than a binary search over nine edges)."""
    codes = np.zeros(x.size, np.uint8)   # at most nine edges: bytes add fastest
    above = np.empty(x.size, bool)
    for edge in bins.edges:
        np.greater_equal(x, edge, out=above)
        np.add(codes, above.view(np.uint8), out=codes)
    np.logical_not(ok, out=above)
    codes[above] = len(bins.edges) + 1
    return codes


def categorical_codes(values: list, index: np.ndarray, bins: CategoricalBins) -> np.ndarray:
    """Bin of every row from its dictionary ``index`` (-1 for NULL): each dictionary
    value is looked up once (a level, else other); NULL is missing."""
    position = {c: i for i, c in enumerate(bins.categories)}
    other = len(bins.categories)
    lookup = np.array([position.get(v, other) for v in values] + [other + 1],
                      np.uint8 if other + 2 <= 256 else np.int16)
    return lookup[index]  # index -1 takes the trailing missing entry


def fine_summary(x: np.ndarray, ok: np.ndarray, bins: FineBins, overwrite: bool = False
                 ) -> pa.Table:
    """Count, min, max and sum of the present values in each non-empty fine bin, and
    the count of missing values in bin ``bins.n`` (no min, max or sum): columns bin, n,
    lo, hi, sum, as the engine's GROUP BY gives them. ``overwrite``: sort ``x`` in place
    (a fresh copy costs as much as the sort, in page faults)."""
    if not ok.all():
        values = x[ok]
        values.sort()
    elif overwrite:
        values = x
        values.sort()
    else:
        values = np.sort(x)
    edges = np.searchsorted(values, bins.lower_bounds(), side="left")
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [values.size]])
    full = np.flatnonzero(ends > starts)
    first, last = starts[full], ends[full]
    sums = np.add.reduceat(values, first) if full.size else np.zeros(0)
    n, lo, hi = last - first, values[first], values[last - 1]
    missing = x.size - values.size
    if missing:
        full, n = np.append(full, bins.n), np.append(n, missing)
        lo, hi, sums = (np.append(v, np.nan) for v in (lo, hi, sums))
    nulls = full == bins.n
    return pa.table({"bin": pa.array(full.astype(np.int16)), "n": pa.array(n.astype(np.int64)),
                     "lo": pa.array(lo, mask=nulls), "hi": pa.array(hi, mask=nulls),
                     "sum": pa.array(sums, mask=nulls)})


def segment_moments(x: np.ndarray, ok: np.ndarray, cells: Cells
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and M2 (sum of squared deviations from the mean) of the present
    values in each segment value of ``cells``: two passes, as exact as the engine's
    ``var_pop`` (NaN mean and M2 where a value has no present row)."""
    complete = ok.all()
    size = len(cells.labels)
    n = cells.sizes if complete else np.bincount(cells.group, weights=ok, minlength=size
                                                 ).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(cells.group, weights=x if complete else np.where(ok, x, 0.0),
                           minlength=size) / n
    m2 = _squared_deviations(x, None if complete else ok, cells.group, mean)
    return n, mean, np.where(n > 0, m2, np.nan)


def overall_moments(x: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and M2 of all present values (as one-element arrays)."""
    values = x if ok.all() else x[ok]
    if not values.size:
        return np.array([0]), np.array([np.nan]), np.array([np.nan])
    mean = values.sum() / values.size
    deviation = values - mean
    return np.array([values.size]), np.array([mean]), np.array([np.dot(deviation, deviation)])


def moments_table(feature: str, column: str, labels: list, sizes: np.ndarray, n, mean, m2
                  ) -> pa.Table:
    """The profile's moments rows of one feature and segment ``column`` ('' for all
    rows): one per label with rows (``sizes``), NULL mean and M2 where n is 0."""
    keep = np.flatnonzero(sizes)
    empty = n[keep] == 0
    return pa.table({"segcol": pa.array([column] * keep.size, pa.string()),
                     "segment": pa.array([labels[k] for k in keep], pa.string()),
                     "feature": pa.array([feature] * keep.size, pa.string()),
                     "n": pa.array(np.asarray(n)[keep].astype(np.int64)),
                     "mean": pa.array(mean[keep], mask=empty),
                     "m2": pa.array(m2[keep], mask=empty)})


def _squared_deviations(x: np.ndarray, ok: np.ndarray | None, group: np.ndarray,
                        mean: np.ndarray) -> np.ndarray:
    """Sum of (x - mean of its group)**2 per group over the present values, a block of
    rows at a time into one buffer (fresh full-size temporaries cost more in page
    faults than the arithmetic)."""
    total = np.zeros(mean.size)
    buffer = np.empty(min(_BLOCK, x.size))
    for start in range(0, x.size, _BLOCK):
        g = group[start:start + _BLOCK]
        d = buffer[:g.size]
        np.take(mean, g, out=d, mode="clip")
        np.subtract(x[start:start + _BLOCK], d, out=d)
        np.multiply(d, d, out=d)
        if ok is not None:
            d[~ok[start:start + _BLOCK]] = 0.0
        total += np.bincount(g, weights=d, minlength=mean.size)
    return total


def day_table(codes: np.ndarray, width: int, feature: int, cells: Cells) -> pa.Table:
    """Counts per (cell, coarse bin) of one feature's ``codes`` (``width`` bins): the
    feature's rows of the profile's ``days`` part for one grouping."""
    position, n = _count_pairs(cells.index, codes, width, cells.value.size * width)
    cell = position // width
    return pa.table({"seg": pa.array(np.full(cell.size, cells.seg, np.int16)),
                     "cell": pa.array(cells.value[cell], mask=cell == (
                         -1 if cells.undated is None else cells.undated)),
                     "feature": pa.array(np.full(cell.size, feature, np.int16)),
                     "bin": pa.array((position % width).astype(np.int16)),
                     "n": pa.array(n.astype(np.int64))})


def _count_pairs(index: np.ndarray, codes: np.ndarray, width: int, size: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys ``index * width + codes`` (all in [0, size)) and how often each
    occurs: bincounts a block at a time when the range is small, else a sort."""
    if size > _DENSE_LIMIT:
        return np.unique(index * width + codes, return_counts=True)
    counts = np.zeros(size, np.int64)
    buffer = np.empty(min(_BLOCK, index.size), np.intp)
    for start in range(0, index.size, _BLOCK):
        key = buffer[:index[start:start + _BLOCK].size]
        np.multiply(index[start:start + _BLOCK], width, out=key)
        np.add(key, codes[start:start + _BLOCK], out=key)
        counts += np.bincount(key, minlength=size)
    position = np.flatnonzero(counts)
    return position, counts[position]


def _groupings(rows: Rows, segments: list[str], dictionary: dict) -> list[Cells]:
    """The day x segment cells of every segment column (days only when there is none)."""
    if not segments:
        return [_cells(rows, np.zeros(rows.n, np.int64), 1, -1, None, None)]
    out = []
    for i, column in enumerate(segments):
        values, index = rows.segments[column]
        labels = dictionary[column]
        position = {v: k for k, v in enumerate(labels)}
        lookup = np.array([position[v] if v in position else 0 for v in values] + [0], np.int64)
        out.append(_cells(rows, lookup[index], len(labels), i, column, labels))
    return out


def _cells(rows: Rows, group: np.ndarray, size: int, seg: int, column, labels) -> Cells:
    """Dense cells of (day, ``group``): rows without a day share one cell."""
    dated = rows.dated
    first = int(rows.day[dated].min()) if dated.any() else 0
    span = int(rows.day[dated].max()) - first + 1 if dated.any() else 0
    key = np.where(dated, (rows.day - first) * size + group, span * size)
    if span * size < _DENSE_LIMIT:
        used = np.bincount(key, minlength=span * size + 1) > 0
        position = np.flatnonzero(used)
        index = (np.cumsum(used) - 1)[key]
    else:
        position, index = np.unique(key, return_inverse=True)
    undated = int(position.size - 1) if position.size and position[-1] == span * size else None
    day = first + position // size
    value = day * CELL_SHIFT + position % size
    if labels is None:
        return Cells(seg, column, index, value, undated)
    return Cells(seg, column, index, value, undated, group, labels,
                 np.bincount(group, minlength=len(labels)))


def _used_values(values: list, index: np.ndarray) -> list:
    """The dictionary ``values`` some row uses (a Parquet dictionary may hold more)."""
    used = np.bincount(index[index >= 0], minlength=len(values)) > 0
    return [v for v, u in zip(values, used) if u]


def read_rows(path: Path, roles, threads: bool = True) -> Rows:
    """The role columns of one snapshot file as :class:`Rows`, read once.

    Columns of the store's own types (naive timestamps or dates, text, integer or float
    numbers) are read by Arrow, text as its Parquet dictionary; any other column is
    cast by DuckDB with the engine's casts (in UTC, as the engine's connection)."""
    meta = pq.read_metadata(path)
    schema = meta.schema.to_arrow_schema()
    kind = {f: schema.field(f).type for f in [roles.timestamp, *roles.segments,
                                               *roles.numeric, *roles.categorical] if f}
    text = [c for c in (*roles.segments, *roles.categorical) if _is_text(kind[c])]
    fast = [c for c in kind if c in text or (c in roles.numeric and _is_number(kind[c]))
            or (c == roles.timestamp and _is_plain_time(kind[c]))]
    table = pq.read_table(path, columns=fast, read_dictionary=text, use_threads=threads)
    slow = _cast_by_engine(path, roles, [c for c in kind if c not in fast])
    column = {**{c: table.column(c) for c in fast}, **slow}
    if roles.timestamp is None:
        day, dated, first, last = np.zeros(meta.num_rows, np.int64), np.zeros(
            meta.num_rows, bool), None, None
    elif roles.timestamp in fast:
        day, dated, first, last = _days(column[roles.timestamp])
    else:
        day, dated, first, last = slow["__days"]
    return Rows(meta.num_rows, day, dated,
                {c: _dictionary(column[c]) for c in roles.segments},
                {c: column[c].cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
                 for c in roles.numeric},
                {c: _dictionary(column[c]) for c in roles.categorical}, first, last)


def _is_text(t) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_number(t) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _is_plain_time(t) -> bool:
    return (pa.types.is_timestamp(t) and t.tz is None) or pa.types.is_date32(t)


def _days(column) -> tuple[np.ndarray, np.ndarray, int | None, int | None]:
    """Days since 1970 (floored, as DATE_TRUNC), where known, and the first and last
    value in microseconds, of a naive timestamp or date column."""
    column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    dated = column.is_valid().to_numpy(zero_copy_only=False)
    kind = column.type
    if pa.types.is_date32(kind):
        column = column.cast(pa.int32())
    raw = column.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    if pa.types.is_date32(kind):
        day, per_us = raw, None
    else:
        day = np.floor_divide(raw, _UNITS_PER_DAY[kind.unit])
        per_us = _US_PER_UNIT[kind.unit]
    if not dated.any():
        return day, dated, None, None
    ends = [int(raw[dated].min()), int(raw[dated].max())]
    if pa.types.is_date32(kind):
        ends = [v * 86_400_000_000 for v in ends]
    else:
        ends = [v // 1000 if per_us is None else v * per_us for v in ends]
    return day, dated, ends[0], ends[1]


def _dictionary(column) -> tuple[list, np.ndarray]:
    """A text column as (dictionary values, per-row index into them, -1 for NULL)."""
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    column = column.unify_dictionaries()
    if column.num_chunks == 0:
        return [], np.zeros(0, np.int64)
    values = column.chunk(0).dictionary.to_pylist()
    index = np.concatenate([chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False)
                            for chunk in column.chunks]).astype(np.int64)
    return values, index


def _cast_by_engine(path: Path, roles, columns: list[str]) -> dict:
    """``columns`` of the file cast by DuckDB as the engine casts them: text to VARCHAR,
    numbers to DOUBLE, the timestamp to its day (and its first and last value)."""
    if not columns:
        return {}
    con = new_con()
    source = f"read_parquet('{str(path)}')"
    parts = []
    for c in columns:
        q = quote(c)
        if c == roles.timestamp:
            parts.append(f"DATE_DIFF('DAY', MAKE_DATE(1970, 1, 1), CAST(DATE_TRUNC('DAY', {q})"
                         f" AS DATE)) AS {q}")
        elif c in roles.numeric:
            parts.append(f"CAST({q} AS DOUBLE) AS {q}")
        else:
            parts.append(f"CAST({q} AS VARCHAR) AS {q}")
    table = con.con.sql(f"SELECT {', '.join(parts)} FROM {source}").to_arrow_table()
    out = {c: table.column(c) for c in columns}
    if roles.timestamp in columns:
        days = out.pop(roles.timestamp)
        dated = days.is_valid().to_numpy(zero_copy_only=False)
        q = quote(roles.timestamp)
        first, last = con.con.sql(f"SELECT min({q}), max({q}) FROM {source}").fetchall()[0]
        out["__days"] = (days.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64),
                         dated, epoch_us(first), epoch_us(last))
    return out


def _packed(codes: list[np.ndarray], slots: list) -> dict[str, np.ndarray]:
    """The codes columns (int32) holding every feature's ``codes`` at its slot."""
    out: dict[str, np.ndarray] = {}
    for code, (column, shift) in zip(codes, slots):
        value = code.astype(np.int32)
        if shift:
            value <<= shift
            out[column] |= value
        else:
            out[column] = value
    return out


def _write_codes(path: Path, rows: Rows, segments: list[str], groupings: list[Cells],
                 codes: list[np.ndarray], bins: FrozenBins, threads: int = 1) -> None:
    """The codes file, laid out as the engine writes it (:mod:`analysis.codes`)."""
    undated = ~rows.dated
    columns = {CODES_DAY: pa.array(rows.day.astype(np.int32), mask=undated).cast(pa.date32())}
    for i, column in enumerate(segments):
        values, index = rows.segments[column]
        columns[column] = pa.DictionaryArray.from_arrays(
            pa.array(index.astype(np.int32), mask=index < 0), pa.array(values, pa.string()))
        cell = rows.day * CELL_SHIFT + groupings[i].group
        columns[f"__cell{i}"] = pa.array(cell, mask=undated)
    for column, code in _packed(codes, code_slots(bins)).items():
        columns[column] = pa.array(code)
    table = pa.table(columns)
    with duckdb.connect(config={"threads": max(1, threads)}) as con:
        con.execute("SET enable_progress_bar = false")
        con.register("codes_rows", table)
        _replace(path, lambda tmp: con.execute(
            f"COPY codes_rows TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)"))


def write_part(path: Path, parts: list[pa.Table], schema: pa.Schema) -> None:
    """One profile part: the ``parts`` stacked, as Parquet with ``schema``."""
    table = pa.concat_tables([p.cast(schema) for p in parts]) if parts else schema.empty_table()
    _replace(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def _replace(path: Path, write) -> None:
    """Run ``write(tmp)`` for a temporary name beside ``path``, then rename it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
