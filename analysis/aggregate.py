"""Binned counts per feature x window x segment x bin, computed inside the engine.

The aggregation is written once, with Ibis, over the DuckDB connection; nothing here
touches pandas until the small result comes back (``to_pyarrow`` at the edge). The
same expressions compile for other Ibis backends (Spark, ClickHouse...), which is why
bins are plain CASE expressions over **frozen** reference edges passed as literals:
every engine then puts every row in the same bin.

Frozen bins (:func:`frozen_bins`) are computed once per reference (its snapshot ids)
and persisted next to the dataset as ``bins/<reference token>.json``:

* ``coarse``: our default drift bins: reference deciles (numeric), reference levels +
  other + missing (categorical). PSI, Jensen-Shannon, Hellinger, chi-square use these.
* ``fine``: for numeric features, :class:`analysis.binning.FineBins`: every interval
  between the reference's min, deciles and max split into 100 equal widths (up to 1000
  bins). KS and Wasserstein are computed from these counts with the observed min, max
  and sum of every bin. (Fine bins at 1000 reference quantiles would need a 1000-leaf
  CASE tree per feature, which the engine evaluates 15x slower than a decile tree plus
  one floor().)

Counts are aggregated at the finest grain asked for and rolled up by summing (all
segments = sum over segment values; a coarser window = sum of finer windows).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import ibis
import numpy as np
import pandas as pd

from analysis.binning import CategoricalBins, FineBins, NumericBins, fine_bins
from analysis.queries import Filters
from analysis.store import Store

MISSING_SEGMENT = "(missing)"
#: Ibis truncate units for our window names
UNIT_CODES = {"hour": "h", "day": "D", "week": "W", "month": "M"}


@dataclass(frozen=True)
class FrozenBins:
    """A reference's frozen bins for every feature."""

    token: str
    coarse: dict[str, NumericBins | CategoricalBins]
    fine: dict[str, FineBins]

    def to_json(self) -> str:
        return json.dumps({
            "token": self.token,
            "coarse": {f: ({"edges": list(b.edges)} if isinstance(b, NumericBins)
                           else {"categories": list(b.categories)}) for f, b in self.coarse.items()},
            "fine": {f: {"anchors": list(b.anchors), "per_interval": b.per_interval}
                     for f, b in self.fine.items()},
        })

    @classmethod
    def from_json(cls, text: str) -> "FrozenBins":
        raw = json.loads(text)
        coarse = {f: (NumericBins(tuple(v["edges"])) if "edges" in v
                      else CategoricalBins(tuple(v["categories"]))) for f, v in raw["coarse"].items()}
        fine = {f: FineBins(tuple(v["anchors"]), v["per_interval"]) for f, v in raw["fine"].items()}
        return cls(raw["token"], coarse, fine)


SOURCE_VIEW = "slice_source"
_SQL_CACHE: "OrderedDict[tuple, str]" = OrderedDict()
_SQL_CACHE_SIZE = 64
_LOCAL = threading.local()
_CODES_LOCK = threading.Lock()
#: Compiled SQL depends on the code that builds it: a change to this module invalidates it.
_BUILDER_VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def _connect(store: Store, dataset: str, slice: str):
    """An Ibis DuckDB connection with the slice's snapshots as the view ``slice_source``.

    The view name is fixed so that compiled SQL does not depend on the file list and can
    be reused (compiling a 1000-leaf bin tree costs more than running it)."""
    files = [str(p) for p in store.files(dataset, slice)]
    if not files:
        return None, None
    # one connection per thread (a DuckDB connection is not thread-safe), reused
    con = getattr(_LOCAL, "con", None)
    if con is None:
        con = _LOCAL.con = ibis.duckdb.connect()
        con.raw_sql("SET enable_progress_bar = false")
    paths = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con.raw_sql(f"CREATE OR REPLACE VIEW {SOURCE_VIEW} AS SELECT * FROM "
                f"read_parquet([{paths}], union_by_name = true)")
    return con, con.table(SOURCE_VIEW)


def _run(con, key: tuple, build, folder: Path | None = None):
    """Execute the expression ``build()`` returns, compiling it once per ``key``.

    Compiled SQL is kept in memory (bounded) and, when ``folder`` is given (the frozen
    bins' folder; callers pass it for unfiltered queries only), on disk: it is a pure
    function of the frozen bins and the query's shape, and compiling large bin trees
    costs more than running them."""
    key = (_BUILDER_VERSION, *key)
    sql = _SQL_CACHE.get(key)
    path = None
    if sql is None and folder is not None:
        path = folder / f"sql-{hashlib.sha256(repr(key).encode()).hexdigest()[:20]}.sql"
        if path.is_file():
            sql = path.read_text()
    if sql is None:
        sql = str(ibis.to_sql(build(), dialect="duckdb"))
        if path is not None:
            _write_text_atomic(path, sql)
    _SQL_CACHE[key] = sql
    _SQL_CACHE.move_to_end(key)
    while len(_SQL_CACHE) > _SQL_CACHE_SIZE:
        _SQL_CACHE.popitem(last=False)
    return con.con.sql(sql).to_arrow_table()


def _to_frame(table) -> pd.DataFrame:
    """Arrow -> pandas with the segment labels as a categorical (few distinct values, many
    rows: converting them one string at a time is the slow part)."""
    if "segment" in table.column_names:
        i = table.column_names.index("segment")
        table = table.set_column(i, "segment", table.column("segment").dictionary_encode())
    return table.to_pandas(types_mapper={}.get)


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def reference_token(store: Store, dataset: str) -> str:
    """Identifies the reference's content: changes when a reference snapshot does."""
    digests = sorted(s.sha256 for s in store.snapshots(dataset, "reference"))
    return hashlib.sha256("|".join(digests).encode()).hexdigest()[:16]


def _present(col):
    """Non-missing: not NULL and, for floats, not NaN or +-inf."""
    cond = col.notnull()
    if col.type().is_floating():
        cond = cond & ~col.isnan() & ~col.isinf()
    return cond


def frozen_bins(store: Store, dataset: str, persist: bool = True) -> FrozenBins:
    """The reference's frozen bins, computed with the engine once and persisted (unless
    ``persist`` is false: then nothing is written)."""
    token = reference_token(store, dataset)
    folder = store.root / dataset / "bins"
    path = folder / f"{token}.json"
    if path.is_file():
        return FrozenBins.from_json(path.read_text())
    roles = store.dataset(dataset).roles
    con, t = _connect(store, dataset, "reference")
    if t is None:
        raise ValueError(f"dataset {dataset!r} has no reference snapshot")
    coarse: dict = {}
    fine: dict = {}
    deciles = [k / 10 for k in range(1, 10)]
    if roles.numeric:
        aggs = {}
        for f in roles.numeric:
            col = t[f].cast("float64")
            aggs[f"{f}__d"] = col.quantile(deciles, where=_present(col))
            aggs[f"{f}__lo"] = col.min(where=_present(col))
            aggs[f"{f}__hi"] = col.max(where=_present(col))
        row = con.to_pyarrow(t.aggregate(**aggs)).to_pylist()[0]
        for f in roles.numeric:
            d = row[f"{f}__d"]
            if d is None:  # no values: a single bin plus missing
                coarse[f], fine[f] = NumericBins(()), fine_bins(0.0, [], 0.0)
                continue
            coarse[f] = NumericBins(tuple(float(x) for x in np.unique(d)))
            fine[f] = fine_bins(row[f"{f}__lo"], d, row[f"{f}__hi"])
    for f in roles.categorical:
        levels = con.to_pyarrow(t.select(v=t[f].cast("string")).filter(ibis._.v.notnull())
                                .distinct()).column("v").to_pylist()
        coarse[f] = CategoricalBins(tuple(sorted(levels)))
    bins = FrozenBins(token, coarse, fine)
    if persist:
        _write_text_atomic(path, bins.to_json())
        _remove_stale(folder, token)
    return bins


def _remove_stale(folder: Path, token: str) -> None:
    """Drop what an earlier reference left: its bins, bin codes and compiled SQL."""
    for entry in folder.iterdir():
        if entry.name == f"{token}.json" or entry.name.startswith(f"codes-{token}-"):
            continue
        if entry.is_dir() and entry.name.startswith("codes-"):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.suffix in (".json", ".sql"):
            entry.unlink(missing_ok=True)


def bin_expr(col, bins: NumericBins | CategoricalBins):
    """Ibis expression for the bin index of ``col``, laid out as ``bins.counts``:
    numeric bins 0..len(edges), then missing; categories, then other, then missing."""
    if isinstance(bins, FineBins):
        x = col.cast("float64")
        a, w, k = bins.anchors, bins.widths, bins.per_interval

        def leaf(i: int):
            # greatest/least rather than clip(): Ibis expands clip() into a NULL-guarding
            # nest that evaluates the floor six times (x is known present here)
            sub = ibis.greatest(0, ibis.least(k - 1, ((x - a[i]) / w[i]).floor()))
            return (sub + i * k).cast("int16")

        def interval(lo: int, hi: int):
            # intervals lo..hi; interval i holds a[i] <= x < a[i+1] (ends open outwards)
            if lo == hi:
                return leaf(lo)
            mid = (lo + hi + 1) // 2
            return ibis.ifelse(x < a[mid], interval(lo, mid - 1), interval(mid, hi))

        return ibis.ifelse(_present(x), interval(0, len(a) - 2),
                           ibis.literal(bins.n, type="int16"))
    if isinstance(bins, NumericBins):
        edges = bins.edges
        missing = len(edges) + 1
        x = col.cast("float64")

        def tree(lo: int, hi: int):
            # bins lo..hi; bin i holds edges[i-1] <= x < edges[i]
            if lo == hi:
                return ibis.literal(lo, type="int16")
            mid = (lo + hi + 1) // 2
            return ibis.ifelse(x < edges[mid - 1], tree(lo, mid - 1), tree(mid, hi))

        return ibis.ifelse(_present(x), tree(0, len(edges)), ibis.literal(missing, type="int16"))
    cats = bins.categories
    s = col.cast("string")
    if not cats:
        known = ibis.literal(0, type="int16")
    else:
        known = ibis.cases(*[(s == c, ibis.literal(i, type="int16")) for i, c in enumerate(cats)],
                           else_=ibis.literal(len(cats), type="int16"))
    return ibis.ifelse(s.isnull(), ibis.literal(len(cats) + 1, type="int16"), known)


def _filtered(t, store: Store, dataset: str, slice: str, filters: Filters | None):
    roles = store.dataset(dataset).roles
    if filters is None:
        return t
    if slice == "production" and roles.timestamp:
        if filters.start is not None:
            t = t.filter(t[roles.timestamp] >= filters.start)
        if filters.end is not None:
            t = t.filter(t[roles.timestamp] < filters.end)
    for column, values in filters.segments.items():
        t = t.filter(t[column].cast("string").isin([str(v) for v in values]))
    return t


def binned_counts(store: Store, dataset: str, slice: str, bins: dict, *,
                  unit: str | None = None, segment: str | None = None,
                  filters: Filters | None = None, with_range: bool = False) -> pd.DataFrame:
    """Counts per (window, segment, feature, bin) in one engine query.

    Parameters
    ----------
    bins : feature -> frozen bins (coarse or fine)
    unit : calendar window ('hour', 'day', 'week', 'month') or None for one window
    segment : segment column to split by, or None
    with_range : also return the min, max and sum of every numeric (window, segment, bin)

    Returns a long frame: ``window`` (timestamp or NaT), ``segment`` (str, or "all"),
    ``feature``, ``bin`` (int), ``n``, and ``lo``/``hi``/``sum`` when asked.
    """
    cols = ["window", "segment", "feature", "bin", "n"] + (["lo", "hi", "sum"] if with_range else [])
    con, t = _connect(store, dataset, slice)
    if t is None or not bins:
        return pd.DataFrame(columns=cols)
    roles = store.dataset(dataset).roles
    bins_key = tuple((f, b) for f, b in bins.items())
    key = ("binned", str(store.root), dataset, slice, bins_key, unit, segment, with_range,
           filters.key() if filters is not None else None, roles.timestamp)

    def build():
        tt = _filtered(t, store, dataset, slice, filters)
        keys = {}
        if unit is not None:
            keys["window"] = tt[roles.timestamp].truncate(UNIT_CODES[unit])
        else:
            keys["window"] = ibis.null("timestamp")
        if segment is not None:
            keys["segment"] = tt[segment].cast("string").fill_null(MISSING_SEGMENT)
        else:
            keys["segment"] = ibis.literal("all")
        parts = []
        for index, (feature, fbins) in enumerate(bins.items()):
            grouped = tt.group_by(**keys, bin=bin_expr(tt[feature], fbins))
            aggs = {"n": ibis._.count()}
            if with_range:
                x = (tt[feature].cast("float64")
                     if isinstance(fbins, (NumericBins, FineBins)) else None)
                for name, fn in (("lo", "min"), ("hi", "max"), ("sum", "sum")):
                    aggs[name] = (getattr(x, fn)(where=_present(x)) if x is not None
                                  else ibis.null("float64"))
            parts.append(grouped.aggregate(**aggs).mutate(
                feature=ibis.literal(index, type="int16")))
        expr = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
        return expr.select(*cols)

    # persist only unfiltered shapes: one file per filter would grow without bound
    table = _run(con, key, build, store.root / dataset / "bins" if filters is None else None)
    out = _to_frame(table)
    names = np.array(list(bins), dtype=object)
    out["feature"] = pd.Categorical.from_codes(out["feature"].to_numpy(dtype=int),
                                               categories=list(names))
    out["bin"] = out["bin"].astype(int)
    out["n"] = out["n"].astype(np.int64)
    return out


CODES_DAY = "__day"


CODES_FORMAT = 2          # bump when the layout of a codes file changes
CELL_SHIFT = 1 << 20      # cell = days since 1970 * CELL_SHIFT + segment index


def _codes_folder(store: Store, dataset: str, bins: FrozenBins) -> Path:
    return store.root / dataset / "bins" / f"codes-{bins.token}-v{CODES_FORMAT}"


def _segment_dictionary(folder: Path, segments: list[str], con, t) -> dict[str, list[str]]:
    """Append-only value -> index dictionaries of the segment columns, extended with the
    values of table ``t`` and persisted in ``folder/segments.json`` (indices never move)."""
    path = folder / "segments.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    changed = False
    for column in segments:
        values = known.setdefault(column, [MISSING_SEGMENT])
        seen = set(values)
        expr = t.select(v=t[column].cast("string")).filter(ibis._.v.notnull()).distinct()
        for value in sorted(con.to_pyarrow(expr).column("v").to_pylist()):
            if value not in seen:
                values.append(value)
                seen.add(value)
                changed = True
        if len(values) >= CELL_SHIFT:
            raise ValueError(f"segment column {column!r} has too many distinct values")
    if changed or not path.is_file():
        _write_text_atomic(path, json.dumps(known))
    return known


def ensure_codes(store: Store, dataset: str, bins: FrozenBins, progress=None,
                 slice: str = "production") -> list[Path]:
    """Each snapshot's coarse bin codes, written once per reference.

    A codes file holds, per row, the day (``__day``), the segment columns, for each
    segment column an integer cell ``__cell<i>`` = days since 1970 x 2**20 + the value's
    index in the folder's segment dictionary (grouping on one integer is faster than on
    a date and a string), and the coarse bin index of every feature (``b0``, ``b1``... in
    ``bins.coarse`` order, laid out as ``bins.counts``). It is computed by the engine from the snapshot and the
    frozen bins (the same Ibis bin expressions) and written under a temporary name, then
    renamed. Counting codes skips re-binning every row on every cold start; a new
    reference (new token) gets new codes. Returns the files of the current snapshots of
    ``slice``, in snapshot order.
    """
    roles = store.dataset(dataset).roles
    folder = _codes_folder(store, dataset, bins)
    for old in folder.parent.glob(f"codes-{bins.token}-*"):
        if old != folder:  # an earlier layout of the same codes
            shutil.rmtree(old, ignore_errors=True)
    snaps = store.snapshots(dataset, slice)
    out = [folder / f"{snap.id}.parquet" for snap in snaps]
    if all(p.is_file() for p in out):
        return out
    folder.mkdir(parents=True, exist_ok=True)
    # one writer at a time (threads of one dashboard, or another process): the segment
    # dictionary is append-only and every codes file must agree with it
    with _CODES_LOCK, open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for snap, path in zip(snaps, out):
            if not path.is_file():
                _write_codes(folder, snap, path, roles, bins)
                if progress:
                    progress(f"binned snapshot {snap.id} ({snap.rows:,} rows)")
    return out


def _write_codes(folder: Path, snap, path: Path, roles, bins: FrozenBins) -> None:
    """Write one snapshot's codes file (caller holds the codes lock)."""
    con = ibis.duckdb.connect()
    con.raw_sql("SET enable_progress_bar = false")
    t = con.read_parquet(str(snap.path))
    dictionary = _segment_dictionary(folder, roles.segments, con, t)
    day = t[roles.timestamp].truncate("D").cast("date")
    columns = {CODES_DAY: day}
    day_number = day.delta(ibis.date(1970, 1, 1), unit="day").cast("int64")
    for i, column in enumerate(roles.segments):
        value = t[column].cast("string")
        index = ibis.cases(*[(value == v, k) for k, v in enumerate(dictionary[column])
                             if k > 0], else_=0) if len(dictionary[column]) > 1 else 0
        columns[column] = value
        columns[f"__cell{i}"] = day_number * CELL_SHIFT + index
    for index, (feature, fbins) in enumerate(bins.coarse.items()):
        columns[f"b{index}"] = bin_expr(t[feature], fbins)
    sql = str(ibis.to_sql(t.select(**columns), dialect="duckdb"))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        con.con.sql(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def day_counts_from_codes(store: Store, dataset: str, bins: FrozenBins,
                          segment: str | None, filters: Filters | None = None,
                          slice: str = "production") -> pd.DataFrame:
    """Counts per (day, segment, feature, coarse bin) from the bin codes: the same long
    frame as :func:`binned_counts` with ``unit='day'`` (``unit=None`` for the reference,
    whose window is NULL), without re-binning."""
    cols = ["window", "segment", "feature", "bin", "n"]
    files = ensure_codes(store, dataset, bins, slice=slice)
    if not files:
        return pd.DataFrame(columns=cols)
    con = getattr(_LOCAL, "con", None)
    if con is None:
        con = _LOCAL.con = ibis.duckdb.connect()
        con.raw_sql("SET enable_progress_bar = false")
    paths = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    con.raw_sql(f"CREATE OR REPLACE VIEW codes_source AS SELECT * FROM read_parquet([{paths}])")
    t = con.table("codes_source")
    by_day = slice == "production"
    roles = store.dataset(dataset).roles
    key = ("codes", str(store.root), dataset, bins.token, segment, slice,
           filters.key() if filters is not None else None, tuple(roles.segments))

    def build():
        tt = t
        if filters is not None and by_day:
            if filters.start is not None:
                tt = tt.filter(tt[CODES_DAY] >= filters.start.date())
            if filters.end is not None:
                tt = tt.filter(tt[CODES_DAY] < filters.end.date())
            for column, values in filters.segments.items():
                tt = tt.filter(tt[column].isin([str(v) for v in values]))
        # one integer key per row: the day x segment cell (decoded after the aggregation)
        if segment:
            cell = tt[f"__cell{roles.segments.index(segment)}"]
            if not by_day:
                cell = cell % CELL_SHIFT
        else:
            cell = tt[CODES_DAY].delta(ibis.date(1970, 1, 1), unit="day").cast("int64") * \
                CELL_SHIFT if by_day else ibis.literal(0, type="int64")
        parts = [tt.group_by(cell=cell, bin=tt[f"b{i}"]).aggregate(n=ibis._.count())
                 .mutate(feature=ibis.literal(i, type="int16")) for i in range(len(bins.coarse))]
        union = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
        return union.select("cell", "feature", "bin", "n")

    table = _run(con, key, build, store.root / dataset / "bins" if filters is None else None)
    out = table.to_pandas(types_mapper={}.get)
    cell = out.pop("cell").to_numpy(dtype=np.int64)
    days = cell // CELL_SHIFT
    out.insert(0, "window", (np.datetime64("1970-01-01", "D") + days).astype("datetime64[us]")
               if by_day else pd.NaT)
    if segment:
        labels = json.loads((files[0].parent / "segments.json").read_text())[segment]
        out.insert(1, "segment", pd.Categorical.from_codes(cell % CELL_SHIFT, categories=labels))
    else:
        out.insert(1, "segment", "all")
    out["feature"] = pd.Categorical.from_codes(out["feature"].to_numpy(dtype=int),
                                               categories=list(bins.coarse))
    out["bin"] = out["bin"].astype(int)
    out["n"] = out["n"].astype(np.int64)
    return out


def reference_moments(store: Store, dataset: str, segment: str | None) -> pd.DataFrame:
    """Count, mean and population variance of each numeric feature in the reference, per
    segment value: columns segment, feature, n, mean, var (one engine query)."""
    con, t = _connect(store, dataset, "reference")
    roles = store.dataset(dataset).roles
    if t is None or not roles.numeric:
        return pd.DataFrame(columns=["segment", "feature", "n", "mean", "var"])
    key = t[segment].cast("string").fill_null(MISSING_SEGMENT) if segment else ibis.literal("all")
    parts = []
    for f in roles.numeric:
        x = t[f].cast("float64")
        ok = _present(x)
        parts.append(t.group_by(segment=key).aggregate(
            n=x.count(where=ok), mean=x.mean(where=ok), var=x.var(how="pop", where=ok))
            .mutate(feature=ibis.literal(f)))
    expr = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    return con.to_pyarrow(expr.select("segment", "feature", "n", "mean", "var")).to_pandas()


def n_bins(bins) -> int:
    """Length of the count vector of ``bins`` (including other/missing)."""
    if isinstance(bins, FineBins):
        return bins.n + 1
    if isinstance(bins, NumericBins):
        return len(bins.edges) + 2
    return len(bins.categories) + 2


__all__: Sequence[str] = ["FrozenBins", "frozen_bins", "binned_counts", "bin_expr",
                          "ensure_codes", "day_counts_from_codes", "n_bins",
                          "reference_moments", "reference_token"]
