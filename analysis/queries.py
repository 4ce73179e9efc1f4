"""DuckDB queries over a dataset's snapshots. Work happens in SQL; pandas only at the edge.

Every function opens its own in-memory DuckDB connection (cheap, and a connection is
not thread-safe), reads the slice's Parquet files with ``read_parquet``, and returns a
small pandas frame or plain values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Mapping, Sequence

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis.store import Store

WINDOW_UNITS = ("hour", "day", "week", "month")


@dataclass(frozen=True)
class Filters:
    """What the analyst selected: a production time range and segment values.

    ``start`` is inclusive and ``end`` exclusive. ``segments`` maps a segment column to
    the values kept; a column absent from the mapping is not filtered. Segment filters
    apply to the reference too, so a group is compared with the same group.
    """

    start: datetime | None = None
    end: datetime | None = None
    segments: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def key(self) -> tuple:
        return (self.start, self.end, tuple(sorted((k, tuple(v)) for k, v in self.segments.items())))


def cell_key(key: tuple, segment: str | None, value: str | None, start, end) -> tuple:
    """The filter key ``(start, end, segments)`` of one window ``[start, end)`` and one
    value of ``segment``, inside the sidebar's ``key``: the window is cut to the
    sidebar's time range, filters on other segment columns are kept, and with ``value``
    None (all groups) the sidebar's choice on ``segment`` itself is kept too."""
    lo, hi = pd.Timestamp(start).to_pydatetime(), pd.Timestamp(end).to_pydatetime()
    side_start, side_end, side_segments = key
    if side_start is not None:
        lo = max(lo, side_start)
    if side_end is not None:
        hi = min(hi, side_end)
    if value is None:
        return (lo, hi, tuple(side_segments))
    segments = [(c, v) for c, v in side_segments if c != segment]
    if segment is not None:
        segments.append((segment, (value,)))
    return (lo, hi, tuple(segments))


def quote(identifier: str) -> str:
    """A SQL identifier, double-quoted."""
    return '"' + identifier.replace('"', '""') + '"'


def path_list(files) -> str:
    """The paths of ``files`` as a SQL list literal."""
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "]"


def parquet_source(files) -> str:
    """SQL reading the Parquet ``files`` as one table (columns matched by name)."""
    return f"read_parquet({path_list(files)}, union_by_name = true)"


def _source(store: Store, dataset: str, slice: str) -> str | None:
    files = store.files(dataset, slice)
    return parquet_source(files) if files else None


def _where(store: Store, dataset: str, slice: str, filters: Filters | None
           ) -> tuple[str, list]:
    roles = store.dataset(dataset).roles
    clauses, params = [], []
    if filters is not None:
        if slice == "production" and roles.timestamp:
            if filters.start is not None:
                clauses.append(f"{quote(roles.timestamp)} >= ?")
                params.append(filters.start)
            if filters.end is not None:
                clauses.append(f"{quote(roles.timestamp)} < ?")
                params.append(filters.end)
        for column, values in filters.segments.items():
            values = list(values)
            if not values:
                clauses.append("FALSE")
                continue
            clauses.append(f"CAST({quote(column)} AS VARCHAR) IN ({', '.join('?' * len(values))})")
            params.extend(str(v) for v in values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _query(sql: str, params: Sequence = ()) -> pd.DataFrame:
    with duckdb.connect() as con:
        return con.execute(sql, list(params)).df()


def load_frame(store: Store, dataset: str, slice: str, columns: Sequence[str],
               filters: Filters | None = None, categories: bool = False) -> pd.DataFrame:
    """Rows of a slice (selected columns only), filtered; empty frame when no snapshot.

    ``categories``: text columns as pandas categoricals, dictionary-encoded in Arrow
    before they reach pandas, so millions of rows of a few distinct labels cost a byte
    or two each rather than a string each."""
    src = _source(store, dataset, slice)
    if src is None:
        return pd.DataFrame(columns=list(columns))
    where, params = _where(store, dataset, slice, filters)
    cols = ", ".join(quote(c) for c in columns)
    sql = f"SELECT {cols} FROM {src}{where}"
    if not categories:
        return _query(sql, params)
    return _categorical_frame(sql, params)


def _categorical_frame(sql: str, params: Sequence = (), tables: Mapping | None = None
                       ) -> pd.DataFrame:
    """The query's rows with text columns as categoricals: read batch by batch, so only
    one batch of raw strings is ever held, dictionary-encoded in Arrow, then converted to
    pandas while the Arrow columns are freed. ``tables``: Arrow tables to register."""
    text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)

    def encoded(batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(
            [pc.dictionary_encode(c) if any(t(c.type) for t in text) else c for c in batch.columns],
            names=batch.schema.names)

    with duckdb.connect() as con:
        for name, table in (tables or {}).items():
            con.register(name, table)
        reader = con.sql(sql, params=list(params)).to_arrow_reader(500_000)
        batches = [encoded(b) for b in reader]
        if not batches:
            return reader.schema.empty_table().to_pandas()
        table = pa.Table.from_batches(batches).unify_dictionaries()
    return table.to_pandas(self_destruct=True, split_blocks=True)


ROW_FILE, ROW_NUMBER = "__drift_file", "file_row_number"
_ROW_PATH = "__drift_path"


def _keyed_source(files) -> str:
    """:func:`parquet_source` with each row's key: its file (its position in ``files``)
    and its row number in that file, both as 32-bit integers. Integers rather than the
    file's name: a name is a string per row, which at millions of rows cost the reader
    several times the columns it was asked for."""
    # the file's name under a name no data column has (DuckDB's own file_index would
    # be shadowed by a data column of that name), turned into its position once per
    # chunk of rows (the name is one value per chunk)
    source = parquet_source(files)[:-1] + f", filename = '{_ROW_PATH}', file_row_number = true)"
    return (f"(SELECT * EXCLUDE ({_ROW_PATH}) REPLACE ({ROW_NUMBER}::UINTEGER AS {ROW_NUMBER}), "
            f"(list_position({path_list(files)}, {_ROW_PATH}) - 1)::UINTEGER AS {ROW_FILE} "
            f"FROM {source})")


def load_keyed(store: Store, dataset: str, slice: str, columns: Sequence[str],
               filters: Filters | None = None, files: Sequence[Path] | None = None
               ) -> pd.DataFrame:
    """:func:`load_frame` (text as categoricals) plus each row's key (``ROW_FILE``, the
    file's position in ``files``, and ``ROW_NUMBER``), so that :func:`fetch_rows` can
    read chosen rows' other columns later: a caller needing a few columns of every row
    and every column of a sample never holds every column of every row. ``files``: the
    slice's snapshot files (default: the store's list now); pass the same list to
    :func:`fetch_rows`."""
    files = store.files(dataset, slice) if files is None else list(files)
    if not files:
        return pd.DataFrame(columns=[*columns, ROW_FILE, ROW_NUMBER])
    where, params = _where(store, dataset, slice, filters)
    cols = ", ".join(quote(c) for c in [*columns, ROW_FILE, ROW_NUMBER])
    return _categorical_frame(f"SELECT {cols} FROM {_keyed_source(files)}{where}", params)


def fetch_rows(store: Store, dataset: str, slice: str, columns: Sequence[str],
               keys: pd.DataFrame, files: Sequence[Path] | None = None) -> pd.DataFrame:
    """The rows named by ``keys`` (columns ``ROW_FILE``, ``ROW_NUMBER`` as
    :func:`load_keyed` gave them for the same ``files``), with ``columns``, in the keys'
    order."""
    files = store.files(dataset, slice) if files is None else list(files)
    wanted = pa.table({ROW_FILE: pa.array(keys[ROW_FILE].to_numpy(dtype="uint32")),
                       ROW_NUMBER: pa.array(keys[ROW_NUMBER].to_numpy(dtype="uint32")),
                       "__position": pa.array(range(len(keys)), pa.int64())})
    cols = ", ".join(f"t.{quote(c)}" for c in columns)
    sql = (f"SELECT {cols} FROM {_keyed_source(files)} AS t "
           f"JOIN __wanted AS w ON t.{ROW_FILE} = w.{ROW_FILE} AND t.{ROW_NUMBER} = w.{ROW_NUMBER} "
           "ORDER BY w.__position")
    return _categorical_frame(sql, (), {"__wanted": wanted}).reset_index(drop=True)


def window_start_sql(timestamp: str, unit: str) -> str:
    if unit not in WINDOW_UNITS:
        raise ValueError(f"window unit must be one of {WINDOW_UNITS}, got {unit!r}")
    return f"date_trunc('{unit}', {quote(timestamp)})"


def load_windows(store: Store, dataset: str, columns: Sequence[str], unit: str,
                 filters: Filters | None = None) -> pd.DataFrame:
    """Production rows with a ``window_start`` column (calendar unit) added."""
    roles = store.dataset(dataset).roles
    src = _source(store, dataset, "production")
    if src is None or roles.timestamp is None:
        return pd.DataFrame(columns=["window_start", *columns])
    where, params = _where(store, dataset, "production", filters)
    cols = ", ".join(quote(c) for c in columns)
    w = window_start_sql(roles.timestamp, unit)
    return _query(f"SELECT {w} AS window_start, {cols} FROM {src}{where}", params)
