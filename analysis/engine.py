"""The engine plumbing shared by the binned-count modules: Ibis DuckDB connections, the
slice source view, compiled-SQL caching and atomic file writes.

Nothing here knows about bins or profiles. The aggregation modules
(:mod:`analysis.reference_bins`, :mod:`analysis.codes`, :mod:`analysis.profiles`,
:mod:`analysis.counts`) build Ibis expressions over the view this module defines, so
the same expressions compile for other Ibis backends; this is the only place that
knows the backend is an embedded DuckDB.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import ibis
import pandas as pd

from analysis.queries import Filters, parquet_source
from analysis.store import Store

#: The segment label of rows whose segment column is NULL.
MISSING_SEGMENT = "(missing)"
#: Ibis truncate units for our window names
UNIT_CODES = {"hour": "h", "day": "D", "week": "W", "month": "M"}
SOURCE_VIEW = "slice_source"

_SQL_CACHE: "OrderedDict[tuple, str]" = OrderedDict()
_SQL_CACHE_SIZE = 64
_LOCAL = threading.local()
#: The modules whose expressions compile to cached SQL: a change to any of them
#: invalidates the cache (memory and disk).
_BUILDERS = ("engine.py", "reference_bins.py", "codes.py", "profiles.py", "counts.py")
_BUILDER_VERSION = hashlib.sha256(b"".join(
    (Path(__file__).parent / name).read_bytes() for name in _BUILDERS)).hexdigest()[:12]


def local_con():
    """This thread's Ibis DuckDB connection (a DuckDB connection is not thread-safe)."""
    con = getattr(_LOCAL, "con", None)
    if con is None:
        con = _LOCAL.con = new_con()
    return con


def new_con():
    """A new Ibis DuckDB connection without a progress bar.

    Ibis sets the session time zone to UTC: day truncation of a timestamp with a time
    zone happens in UTC, which the one-pass profiler (:mod:`analysis.onepass`) relies on.
    """
    con = ibis.duckdb.connect()
    con.raw_sql("SET enable_progress_bar = false")
    return con


def connect_slice(store: Store, dataset: str, slice: str, filters: Filters | None = None,
                  files: Sequence[Path] | None = None):
    """An Ibis DuckDB connection with the slice's snapshots (or ``files``), filtered by
    ``filters``, as the view ``slice_source``; ``(None, None)`` when there is no file.

    The view name is fixed and the filters live in the view, so that compiled SQL depends
    on neither the file list nor the filter values and can be reused (compiling a
    1000-leaf bin tree costs more than running it)."""
    files = [str(p) for p in (store.files(dataset, slice) if files is None else files)]
    if not files:
        return None, None
    con = local_con()
    source = f"SELECT * FROM {parquet_source(files)}"
    if filters is not None and (filters.segments or (
            slice == "production" and (filters.start is not None or filters.end is not None))):
        rows = view(con, f"{SOURCE_VIEW}_rows", source)
        source = str(ibis.to_sql(filtered(rows, store, dataset, slice, filters),
                                 dialect="duckdb"))
    return con, view(con, SOURCE_VIEW, source)


def view(con, name: str, sql: str):
    """(Re)define the view ``name`` as ``sql`` and return it as an Ibis table."""
    con.raw_sql(f"CREATE OR REPLACE VIEW {name} AS {sql}")
    return con.table(name)


def filtered(t, store: Store, dataset: str, slice: str, filters: Filters | None):
    """``t`` restricted to the time range (production only) and segment values."""
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


def present(col):
    """Non-missing: not NULL and, for floats, not NaN or +-inf."""
    cond = col.notnull()
    if col.type().is_floating():
        cond = cond & ~col.isnan() & ~col.isinf()
    return cond


def compiled(key: tuple, build, folder: Path | None = None) -> str:
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
            write_text_atomic(path, sql)
    _SQL_CACHE[key] = sql
    _SQL_CACHE.move_to_end(key)
    while len(_SQL_CACHE) > _SQL_CACHE_SIZE:
        _SQL_CACHE.popitem(last=False)
    return sql


def run(con, key: tuple, build, folder: Path | None = None):
    """Execute the expression ``build()`` returns (compiled once, see :func:`compiled`)."""
    return con.con.sql(compiled(key, build, folder)).to_arrow_table()


def to_frame(table) -> pd.DataFrame:
    """Arrow -> pandas with the segment labels as a categorical (few distinct values, many
    rows: converting them one string at a time is the slow part)."""
    if "segment" in table.column_names:
        i = table.column_names.index("segment")
        table = table.set_column(i, "segment", table.column("segment").dictionary_encode())
    return table.to_pandas(types_mapper={}.get)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` under a temporary name, then rename (readers never see
    half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def copy_to(con, sql: str, path: Path) -> None:
    """Write the result of ``sql`` on the raw DuckDB connection ``con`` to ``path``
    (Parquet, zstd) under a temporary name, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        con.sql(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def epoch_us(value) -> int | None:
    """Microseconds since 1970 of a naive timestamp or a date; None for anything else
    (a timezone-aware value has no single naive reading)."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        return None
    return int(stamp.value // 1000)
