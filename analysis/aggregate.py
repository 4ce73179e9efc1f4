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
segments = sum over segment values; a coarser window = sum of finer windows). Each
snapshot's bin codes and profile (its counts at the finest grain, fine-bin ranges and
moments; :func:`ensure_codes`) are written once, so most questions sum small profiles
instead of binning rows again: :func:`day_counts` (the heatmap's cube),
:func:`whole_counts` (a drift table) and :func:`reference_moments`.
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
from datetime import date
from pathlib import Path
from typing import Sequence

import ibis
import numpy as np
import pandas as pd

from analysis.binning import CategoricalBins, FineBins, NumericBins, fine_bins
from analysis.queries import Filters, parquet_source
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


def _local_con():
    """This thread's Ibis DuckDB connection (a DuckDB connection is not thread-safe)."""
    con = getattr(_LOCAL, "con", None)
    if con is None:
        con = _LOCAL.con = ibis.duckdb.connect()
        con.raw_sql("SET enable_progress_bar = false")
    return con


def _connect(store: Store, dataset: str, slice: str, filters: Filters | None = None,
             files: Sequence[Path] | None = None):
    """An Ibis DuckDB connection with the slice's snapshots (or ``files``), filtered by
    ``filters``, as the view ``slice_source``.

    The view name is fixed and the filters live in the view, so that compiled SQL depends
    on neither the file list nor the filter values and can be reused (compiling a
    1000-leaf bin tree costs more than running it)."""
    files = [str(p) for p in (store.files(dataset, slice) if files is None else files)]
    if not files:
        return None, None
    con = _local_con()
    source = f"SELECT * FROM {parquet_source(files)}"
    if filters is not None and (filters.segments or (
            slice == "production" and (filters.start is not None or filters.end is not None))):
        rows = _view(con, f"{SOURCE_VIEW}_rows", source)
        source = str(ibis.to_sql(_filtered(rows, store, dataset, slice, filters),
                                 dialect="duckdb"))
    return con, _view(con, SOURCE_VIEW, source)


def _view(con, name: str, sql: str):
    """(Re)define the view ``name`` as ``sql`` and return it as an Ibis table."""
    con.raw_sql(f"CREATE OR REPLACE VIEW {name} AS {sql}")
    return con.table(name)


def _compiled(key: tuple, build, folder: Path | None = None) -> str:
    """The DuckDB SQL of the expression ``build()`` returns, compiled once per ``key``.

    Compiled SQL is kept in memory (bounded) and, when ``folder`` is given (the frozen
    bins' folder), on disk: it is a pure function of the frozen bins and the query's
    shape (never of filter values, which live in the source view), and compiling large
    bin trees costs more than running them."""
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
    return sql


def _run(con, key: tuple, build, folder: Path | None = None):
    """Execute the expression ``build()`` returns (compiled once, see :func:`_compiled`)."""
    return con.con.sql(_compiled(key, build, folder)).to_arrow_table()


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
                  filters: Filters | None = None, with_range: bool = False,
                  files: Sequence[Path] | None = None) -> pd.DataFrame:
    """Counts per (window, segment, feature, bin) in one engine query.

    Parameters
    ----------
    bins : feature -> frozen bins (coarse or fine)
    unit : calendar window ('hour', 'day', 'week', 'month') or None for one window
    segment : segment column to split by, or None
    with_range : also return the min, max and sum of every numeric (window, segment, bin)
    files : count these snapshot files of ``slice`` only (default: all of them)

    Returns a long frame: ``window`` (timestamp or NaT), ``segment`` (str, or "all"),
    ``feature``, ``bin`` (int), ``n``, and ``lo``/``hi``/``sum`` when asked.
    """
    cols = ["window", "segment", "feature", "bin", "n"] + (["lo", "hi", "sum"] if with_range else [])
    con, t = _connect(store, dataset, slice, filters, files)
    if t is None or not bins:
        return pd.DataFrame(columns=cols)
    roles = store.dataset(dataset).roles
    bins_key = tuple((f, b) for f, b in bins.items())
    # the filters are in the view: the compiled SQL does not depend on them
    key = ("binned", str(store.root), dataset, slice, bins_key, unit, segment, with_range,
           roles.timestamp)

    def build():
        tt = t
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

    table = _run(con, key, build, store.root / dataset / "bins")
    out = _to_frame(table)
    names = np.array(list(bins), dtype=object)
    out["feature"] = pd.Categorical.from_codes(out["feature"].to_numpy(dtype=int),
                                               categories=list(names))
    out["bin"] = out["bin"].astype(int)
    out["n"] = out["n"].astype(np.int64)
    return out


CODES_DAY = "__day"


CODES_FORMAT = 3          # bump when the layout of a codes file changes
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
    """Each snapshot's coarse bin codes and profile, written once per reference.

    A codes file holds, per row, the day (``__day``), the segment columns, for each
    segment column an integer cell ``__cell<i>`` = days since 1970 x 2**20 + the value's
    index in the folder's segment dictionary (grouping on one integer is faster than on
    a date and a string), and the coarse bin index of every feature (``b0``, ``b1``... in
    ``bins.coarse`` order, laid out as ``bins.counts``). It is computed by the engine from the snapshot and the
    frozen bins (the same Ibis bin expressions) and written under a temporary name, then
    renamed. Counting codes skips re-binning every row on every cold start; a new
    reference (new token) gets new codes. Next to it goes the snapshot's profile
    (:func:`_write_profile`). Returns the codes files of the current snapshots of
    ``slice``, in snapshot order.
    """
    roles = store.dataset(dataset).roles
    folder = _codes_folder(store, dataset, bins)
    for old in folder.parent.glob(f"codes-{bins.token}-*"):
        if old != folder:  # an earlier layout of the same codes
            shutil.rmtree(old, ignore_errors=True)
    every = store.snapshots(dataset)
    snaps = [snap for snap in every if snap.slice == slice]
    out = [folder / f"{snap.id}.parquet" for snap in snaps]
    current = {snap.id for snap in every}
    if not _leftovers(folder, current) and all(
            p.is_file() and _profile_complete(folder, snap.id) for p, snap in zip(out, snaps)):
        return out
    folder.mkdir(parents=True, exist_ok=True)
    # one writer at a time (threads of one dashboard, or another process): the segment
    # dictionary is append-only and every codes file must agree with it
    with _CODES_LOCK, open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for entry in _leftovers(folder, current):
            entry.unlink(missing_ok=True)
        for snap, path in zip(snaps, out):
            if not path.is_file():
                _write_codes(folder, snap, path, roles, bins)
                if progress:
                    progress(f"binned snapshot {snap.id} ({snap.rows:,} rows)")
            if not _profile_complete(folder, snap.id):
                _write_profile(folder, snap, path, roles, bins)
                if progress:
                    progress(f"profiled snapshot {snap.id}")
    return out


def prepare(store: Store, progress=print) -> None:
    """Freeze the bins and write the codes and profile of every snapshot of every dataset
    with a timestamp and a reference, so pages open without binning rows first."""
    for dataset in store.datasets():
        if store.dataset(dataset).roles.timestamp is None or not store.files(dataset,
                                                                             "reference"):
            continue
        bins = frozen_bins(store, dataset)
        for slice_ in ("reference", "production"):
            ensure_codes(store, dataset, bins,
                         progress=lambda m: progress(f"  {dataset}: {m}"), slice=slice_)


def _leftovers(folder: Path, current: set[str]) -> list[Path]:
    """Codes and profile files of snapshots no longer in the store (any slice)."""
    if not folder.is_dir():
        return []
    return [entry for entry in folder.iterdir()
            if entry.name.split(".")[0] not in current | {"", "segments"}
            and not entry.name.endswith(".tmp")]


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
    _copy_to(con, str(ibis.to_sql(t.select(**columns), dialect="duckdb")), path)


PROFILE_PARTS = ("days", "fine", "moments")


def _profile_paths(folder: Path, snap_id: str) -> dict[str, Path]:
    paths = {part: folder / f"{snap_id}.{part}.parquet" for part in PROFILE_PARTS}
    paths["meta"] = folder / f"{snap_id}.profile.json"
    return paths


def _profile_complete(folder: Path, snap_id: str) -> bool:
    return all(p.is_file() for p in _profile_paths(folder, snap_id).values())


def _copy_to(con, sql: str, path: Path) -> None:
    """Write the result of ``sql`` to ``path`` (Parquet) under a temporary name, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        con.con.sql(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _epoch_us(value) -> int | None:
    """Microseconds since 1970 of a naive timestamp or a date; None for anything else
    (a timezone-aware value has no single naive reading)."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        return None
    return int(stamp.value // 1000)


def _write_profile(folder: Path, snap, codes_path: Path, roles, bins: FrozenBins) -> None:
    """Write one snapshot's profile (caller holds the codes lock).

    A profile holds the snapshot's sufficient statistics on the frozen bins, so that any
    aggregate over whole snapshots is a sum of profiles (as mergeable as the counts
    themselves) and never touches the rows again:

    * ``days``: counts per segment column ``seg`` (its index in the dataset's segment
      columns; -1 with a day-only cell when there is none), ``cell`` (as in the codes
      file), ``feature`` (index in ``bins.coarse``) and coarse ``bin``; counted from the
      codes file;
    * ``fine``: per numeric ``feature`` (index in ``bins.fine``) and fine ``bin``: the
      count ``n`` and the ``lo``, ``hi`` and ``sum`` of the present values (NULL in the
      missing bin), exactly what :func:`binned_counts` returns with ``with_range``;
    * ``moments``: per segment column ``segcol`` ('' for all rows) and value
      ``segment``, per numeric ``feature``: count ``n``, ``mean`` and ``m2`` (sum of
      squared deviations from the mean) of the present values;
    * ``profile.json``, written last (its presence marks a complete profile): the row
      count, the count of rows without a timestamp, and the first and last timestamp in
      microseconds since 1970 (null for timezone-aware columns), which say whether a time
      filter covers the whole snapshot.
    """
    paths = _profile_paths(folder, snap.id)
    con = ibis.duckdb.connect()
    con.raw_sql("SET enable_progress_bar = false")
    codes = con.read_parquet(str(codes_path))
    if roles.segments:
        cells = [(i, codes[f"__cell{i}"]) for i in range(len(roles.segments))]
    else:
        cells = [(-1, codes[CODES_DAY].delta(ibis.date(1970, 1, 1), unit="day").cast("int64")
                  * CELL_SHIFT)]
    parts = [codes.group_by(cell=cell, bin=codes[f"b{j}"]).aggregate(n=ibis._.count())
             .mutate(seg=ibis.literal(i, type="int16"), feature=ibis.literal(j, type="int16"))
             for i, cell in cells for j in range(len(bins.coarse))]
    days = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    _copy_to(con, str(ibis.to_sql(days.select("seg", "cell", "feature", "bin", "n"),
                                  dialect="duckdb")), paths["days"])

    t = _view(con, "profile_source", f"SELECT * FROM {parquet_source([snap.path])}")
    fine_key = ("profile-fine", bins.token, tuple(bins.fine.items()))

    def build_fine():
        parts = []
        for index, (feature, fbins) in enumerate(bins.fine.items()):
            x = t[feature].cast("float64")
            ok = _present(x)
            parts.append(t.group_by(bin=bin_expr(t[feature], fbins)).aggregate(
                n=ibis._.count(), lo=x.min(where=ok), hi=x.max(where=ok), sum=x.sum(where=ok))
                .mutate(feature=ibis.literal(index, type="int16")))
        if not parts:
            return ibis.memtable({"feature": [], "bin": [], "n": [], "lo": [], "hi": [],
                                  "sum": []}, schema={"feature": "int16", "bin": "int16",
                                                      "n": "int64", "lo": "float64",
                                                      "hi": "float64", "sum": "float64"})
        union = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
        return union.select("feature", "bin", "n", "lo", "hi", "sum")

    _copy_to(con, _compiled(fine_key, build_fine, folder.parent), paths["fine"])

    def build_moments():
        groupings = [("", ibis.literal("all"))] + [
            (c, t[c].cast("string").fill_null(MISSING_SEGMENT)) for c in roles.segments]
        parts = []
        for column, key in groupings:
            for feature in bins.fine:
                x = t[feature].cast("float64")
                ok = _present(x)
                parts.append(t.group_by(segment=key).aggregate(
                    n=x.count(where=ok), mean=x.mean(where=ok),
                    m2=x.var(how="pop", where=ok) * x.count(where=ok))
                    .mutate(segcol=ibis.literal(column), feature=ibis.literal(feature)))
        if not parts:
            return ibis.memtable({"segcol": [], "segment": [], "feature": [], "n": [],
                                  "mean": [], "m2": []},
                                 schema={"segcol": "string", "segment": "string",
                                         "feature": "string", "n": "int64",
                                         "mean": "float64", "m2": "float64"})
        union = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
        return union.select("segcol", "segment", "feature", "n", "mean", "m2")

    moments_key = ("profile-moments", bins.token, tuple(bins.fine), tuple(roles.segments))
    _copy_to(con, _compiled(moments_key, build_moments, folder.parent), paths["moments"])

    ts = t[roles.timestamp]
    rows, dated, first, last = con.to_pyarrow(t.aggregate(
        rows=ibis._.count(), dated=ts.count(), first=ts.min(), last=ts.max())
    ).to_pylist()[0].values()
    _write_text_atomic(paths["meta"], json.dumps({
        "rows": rows, "undated": rows - dated, "first_us": _epoch_us(first),
        "last_us": _epoch_us(last)}))


def _profile_split(store: Store, dataset: str, bins: FrozenBins, slice: str,
                   filters: Filters | None):
    """Which snapshots of ``slice`` a query with ``filters`` takes whole from their
    profiles, and which it must read (cut by the time range).

    Returns ``(whole, cut)``: profile paths of the wholly covered snapshots and the
    files of the cut ones (snapshots wholly outside the range are in neither); or None
    when profiles cannot answer (no timestamp column, or segment filters, which profiles
    do not split by)."""
    roles = store.dataset(dataset).roles
    if roles.timestamp is None or (filters is not None and filters.segments):
        return None
    ensure_codes(store, dataset, bins, slice=slice)
    folder = _codes_folder(store, dataset, bins)
    start = end = None
    timed = slice == "production" and filters is not None and (
        filters.start is not None or filters.end is not None)
    if timed:
        start = _epoch_us(filters.start) if filters.start is not None else None
        end = _epoch_us(filters.end) if filters.end is not None else None
    whole, cut = [], []
    for snap in store.snapshots(dataset, slice):
        paths = _profile_paths(folder, snap.id)
        if not timed:
            whole.append(paths)
            continue
        meta = json.loads(paths["meta"].read_text())
        first, last = meta["first_us"], meta["last_us"]
        # rows without a timestamp fall outside every time range: such a snapshot is cut
        known = first is not None and not meta["undated"] and (
            filters.start is None or start is not None) and (filters.end is None or end is not None)
        if known and ((end is not None and first >= end) or (start is not None and last < start)):
            continue
        if known and (start is None or first >= start) and (end is None or last < end):
            whole.append(paths)
        else:
            cut.append(snap.path)
    return whole, cut


def whole_counts(store: Store, dataset: str, bins: FrozenBins, slice: str,
                 filters: Filters | None = None, profiles: bool = True
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fine and coarse counts per (feature, bin) of one slice within ``filters``, with no
    window or segment split: the frames :func:`binned_counts` returns with ``unit=None,
    segment=None`` for ``bins.fine`` (numeric features, with ``lo``, ``hi``, ``sum``) and
    for ``bins.coarse`` (every feature).

    Snapshots the filters cover whole are summed from their profiles; only the snapshots
    the time range cuts are binned from their rows, and there the coarse counts of a
    numeric feature whose fine bins refine its coarse bins
    (:meth:`analysis.binning.FineBins.coarse_map`) are summed from its fine counts
    instead of binning the rows twice. Sums and extremes of the parts give the numbers
    binning every row gives (tested); ``profiles=False`` bins every row."""
    split = _profile_split(store, dataset, bins, slice, filters) if profiles else None
    if split is None:
        return (binned_counts(store, dataset, slice, bins.fine, filters=filters,
                              with_range=True),
                binned_counts(store, dataset, slice, bins.coarse, filters=filters))
    whole, cut = split
    fine_parts, coarse_parts = [], []
    con = _local_con()
    if whole:
        fine = _view(con, "profile_fine", f"SELECT * FROM "
                     f"{parquet_source([p['fine'] for p in whole])}")
        fine_parts.append(con.to_pyarrow(fine.group_by("feature", "bin").aggregate(
            n=fine.n.sum(), lo=fine.lo.min(), hi=fine.hi.max(), sum=fine["sum"].sum())
        ).to_pandas())
        days = _view(con, "profile_days", f"SELECT * FROM "
                     f"{parquet_source([p['days'] for p in whole])}")
        days = days.filter(days.seg == (0 if store.dataset(dataset).roles.segments else -1))
        coarse_parts.append(con.to_pyarrow(days.group_by("feature", "bin").aggregate(
            n=days.n.sum())).to_pandas())
        for frame, names in ((fine_parts[-1], list(bins.fine)),
                             (coarse_parts[-1], list(bins.coarse))):
            frame["feature"] = np.asarray(names, dtype=object)[frame["feature"].to_numpy(int)]
    if cut:
        live = binned_counts(store, dataset, slice, bins.fine, filters=filters,
                             with_range=True, files=cut)
        live["feature"] = live["feature"].astype(str)
        fine_parts.append(live[["feature", "bin", "n", "lo", "hi", "sum"]])
        maps = {f: bins.fine[f].coarse_map(bins.coarse[f]) for f in bins.fine}
        for feature, part in live.groupby("feature", sort=False):
            if maps.get(feature) is not None:
                n = np.bincount(maps[feature][part["bin"].to_numpy(int)],
                                weights=part["n"].to_numpy(float),
                                minlength=n_bins(bins.coarse[feature]))
                coarse_parts.append(pd.DataFrame({"feature": feature, "bin": np.arange(n.size),
                                                  "n": n}))
        direct = {f: b for f, b in bins.coarse.items() if maps.get(f) is None}
        if direct:
            rows = binned_counts(store, dataset, slice, direct, filters=filters, files=cut)
            rows["feature"] = rows["feature"].astype(str)
            coarse_parts.append(rows[["feature", "bin", "n"]])
    return (_merged(con, fine_parts, list(bins.fine), True),
            _merged(con, coarse_parts, list(bins.coarse), False))


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
    return out[["window", "segment", "feature", "bin", "n"]]


def day_counts(store: Store, dataset: str, bins: FrozenBins, segment: str | None,
               filters: Filters | None = None, slice: str = "production") -> pd.DataFrame:
    """Counts per (day, segment, feature, coarse bin): the long frame of
    :func:`binned_counts` with ``unit='day'`` (``unit=None`` for the reference, whose
    window is NULL), at day-aligned filters.

    Summed from the snapshots' profiles (their ``days`` part) when the filters select
    days only; with segment filters (which profiles do not split by), or rows without
    a timestamp, counted from the bin codes (:func:`day_counts_from_codes`). Neither
    re-bins a row."""
    if filters is not None and filters.segments:
        return day_counts_from_codes(store, dataset, bins, segment, filters, slice)
    roles = store.dataset(dataset).roles
    files = ensure_codes(store, dataset, bins, slice=slice)
    if not files:
        return pd.DataFrame(columns=["window", "segment", "feature", "bin", "n"])
    folder = files[0].parent
    if any(json.loads(_profile_paths(folder, p.stem)["meta"].read_text())["undated"]
           for p in files):
        # rows without a day have no cell in the profile: count the codes as they are
        return day_counts_from_codes(store, dataset, bins, segment, filters, slice)
    paths = [_profile_paths(folder, p.stem)["days"] for p in files]
    by_day = slice == "production"
    con = _local_con()
    t = _view(con, "profile_days", f"SELECT * FROM {parquet_source(paths)}")
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
    return _decode_cells(con.to_pyarrow(expr), labels, bins, by_day)


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
    con = _local_con()
    t = _view(con, "codes_source", f"SELECT * FROM {parquet_source(files)}")
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
    labels = json.loads((files[0].parent / "segments.json").read_text())[segment] \
        if segment else None
    return _decode_cells(table, labels, bins, by_day)


def pool_moments(n, mean, m2) -> tuple[float, float, float]:
    r"""Pool per-part (count, mean, M2) into the whole's (count, mean, population variance).

    Chan et al.'s parallel formula, which loses no precision to cancellation:
    :math:`N = \sum n_i`, :math:`\bar x = \sum n_i \bar x_i / N`,
    :math:`M_2 = \sum M_{2,i} + \sum n_i (\bar x_i - \bar x)^2`, variance
    :math:`M_2 / N` (NaN mean and variance when N = 0). Parts with no values are ignored.
    """
    n = np.asarray(n, dtype=float)
    keep = n > 0
    n, mean, m2 = n[keep], np.asarray(mean, float)[keep], np.asarray(m2, float)[keep]
    total = n.sum()
    if total == 0:
        return 0.0, np.nan, np.nan
    pooled = float(np.dot(n, mean) / total)
    return float(total), pooled, float((m2.sum() + np.dot(n, (mean - pooled) ** 2)) / total)


def reference_moments(store: Store, dataset: str, segment: str | None,
                      profiles: bool = True) -> pd.DataFrame:
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
        bins = frozen_bins(store, dataset)
        files = ensure_codes(store, dataset, bins, slice="reference")
        paths = [_profile_paths(files[0].parent, p.stem)["moments"] for p in files]
        con = _local_con()
        t = _view(con, "profile_moments", f"SELECT * FROM {parquet_source(paths)}")
        parts = con.to_pyarrow(t.filter(t.segcol == (segment or ""))).to_pandas()
        out = []
        for (value, feature), g in parts.groupby(["segment", "feature"], sort=True):
            n, mean, var = pool_moments(g["n"], g["mean"], g["m2"])
            out.append((value, feature, int(n), mean, var))
        return pd.DataFrame(out, columns=cols)
    con, t = _connect(store, dataset, "reference")
    key = t[segment].cast("string").fill_null(MISSING_SEGMENT) if segment else ibis.literal("all")
    parts = []
    for f in roles.numeric:
        x = t[f].cast("float64")
        ok = _present(x)
        parts.append(t.group_by(segment=key).aggregate(
            n=x.count(where=ok), mean=x.mean(where=ok), var=x.var(how="pop", where=ok))
            .mutate(feature=ibis.literal(f)))
    expr = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    return con.to_pyarrow(expr.select(*cols)).to_pandas()


def n_bins(bins) -> int:
    """Length of the count vector of ``bins`` (including other/missing)."""
    if isinstance(bins, FineBins):
        return bins.n + 1
    if isinstance(bins, NumericBins):
        return len(bins.edges) + 2
    return len(bins.categories) + 2


__all__: Sequence[str] = ["FrozenBins", "frozen_bins", "binned_counts", "bin_expr",
                          "ensure_codes", "day_counts", "day_counts_from_codes", "n_bins",
                          "pool_moments", "reference_moments", "reference_token",
                          "whole_counts"]
