"""Recommendation events: their fixed schema, reading a recorded file, and the
per-minute aggregates every detector, chart and cause ranking reads.

Event schema
------------
One row per request. Required columns:

==============  =====================================================================
``timestamp``   when the request was served (a timestamp, an ISO string, or epoch
                seconds, milliseconds, micro- or nanoseconds); read as UTC
``request_id``  any type; unique per request
``segment``     the user group (text); empty is read as ``(none)``
``clicked``     0/1 (or true/false): whether the shown item was clicked
``latency_ms``  the feature-store lookup latency in milliseconds
``score``       the model's score for the shown item
``f``           for every feature ``f``: its value, empty (null) when the lookup
                returned nothing
``f_age_s``     seconds since the value of ``f`` was computed
==============  =====================================================================

A feature is any column ``f`` that has a companion ``f_age_s``. Other columns (the shown
item, a user id) are allowed and ignored.

Aggregates
----------
The events are summed into a long table with one row per ``(minute, segment, signal,
bin)``: ``n`` requests and ``clicks`` among them. Each request counts once per signal:

* ``latency``: its lookup latency's bin;
* ``score``: its score's bin;
* one signal per feature ``f``: the bin of ``f_age_s``, or :data:`NULL_BIN` when the
  value of ``f`` is null.

Every number on the stream pages follows from these sums: CTR (clicks/n over any one
signal's bins), the segment mix, a feature's null and stale shares, latency and score
quantiles, and the CTR of requests with a feature null, stale or fresh in one segment.
Because they are sums, a minute, an hour and a day come from the same pieces, and the
parts written by several ingest passes add up (:func:`merge`).

Bins
----
One log-spaced rule for every continuous signal, with a per-signal unit ``s``::

    bin(x) = sign(x) * floor(BINS_PER_OCTAVE * log2(1 + |x| / s))

so bins are about 9 % wide (8 per doubling) above ``s`` and finer below it; its lower
edge is ``sign(b) * s * (2 ** (|b| / BINS_PER_OCTAVE) - 1)`` (:func:`bin_edges`). Units:
1 ms for latency, 1 s for ages, 0.001 for scores (so probabilities from 0.001 to 1 get
80 bins; a score on another scale, such as a logit, still bins sensibly).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from analysis.queries import quote
from analysis.tables import InputError, not_a_table_message, sniff_format

TIMESTAMP, ID, SEGMENT, CLICKED = "timestamp", "request_id", "segment", "clicked"
LATENCY, SCORE = "latency_ms", "score"
#: signal names of the lookup latency and the score in the aggregates and the alerts
LATENCY_SIGNAL, SCORE_SIGNAL = "latency", "score"
REQUIRED = (TIMESTAMP, ID, SEGMENT, CLICKED, LATENCY, SCORE)
AGE_SUFFIX = "_age_s"
#: the bin of a null value (a feature the lookup did not return, a missing number)
NULL_BIN = -32768
BINS_PER_OCTAVE = 8
#: unit ``s`` of each signal's bins (see the module docstring); features use AGE_UNIT
UNITS = {LATENCY_SIGNAL: 1.0, SCORE_SIGNAL: 0.001}
AGE_UNIT = 1.0
NO_SEGMENT = "(none)"
#: the name of the segment mix as a signal (it is read from any signal's per-segment sums)
SEGMENT_MIX = "segment_mix"
AGGREGATE_SCHEMA = pa.schema([("minute", pa.timestamp("us")), ("segment", pa.string()),
                              ("signal", pa.string()), ("bin", pa.int16()),
                              ("n", pa.int64()), ("clicks", pa.int64())])


def feature_names(columns) -> list[str]:
    """The features among ``columns``: every ``f`` with a companion ``f_age_s``, in
    the columns' order."""
    names = set(columns)
    return [c for c in columns if not c.endswith(AGE_SUFFIX) and c + AGE_SUFFIX in names
            and c not in REQUIRED and c not in (LATENCY_SIGNAL, SEGMENT_MIX)]


def unit_of(signal: str) -> float:
    return UNITS.get(signal, AGE_UNIT)


def bin_index(values, unit: float) -> np.ndarray:
    """Bins of ``values`` by the module's rule (NaN gives :data:`NULL_BIN`)."""
    x = np.asarray(values, dtype=float)
    out = np.full(x.shape, NULL_BIN, dtype=np.int64)
    ok = np.isfinite(x)
    out[ok] = np.sign(x[ok]) * np.floor(BINS_PER_OCTAVE * np.log2(1 + np.abs(x[ok]) / unit))
    return out


def bin_edges(bins, unit: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edges of ``bins`` (for a negative bin the edge nearer zero is
    the upper one)."""
    b = np.asarray(bins, dtype=float)

    def edge(k):
        return np.sign(k) * unit * (2.0 ** (np.abs(k) / BINS_PER_OCTAVE) - 1)
    lower = np.where(b >= 0, edge(b), edge(b - 1))
    upper = np.where(b >= 0, edge(b + 1), edge(b))
    return lower, upper


def _bin_sql(expr: str, unit: float) -> str:
    # the same rule as bin_index, in SQL (isnan only applies to floating values)
    x = f"TRY_CAST({expr} AS DOUBLE)"
    return (f"CASE WHEN {x} IS NULL OR isnan({x}) OR isinf({x}) THEN {NULL_BIN} "
            f"ELSE CAST(sign({x}) * floor({BINS_PER_OCTAVE} * log2(1 + abs({x}) / {unit!r}))"
            f" AS SMALLINT) END")


@dataclass(frozen=True)
class EventColumns:
    """How a relation's columns map to the event schema (after validation)."""

    timestamp_sql: str
    features: tuple[str, ...]
    #: DuckDB type of each feature's value column (a feature may be text: a category)
    feature_types: tuple[str, ...] = ()


def _null_sql(column: str, kind: str) -> str:
    """SQL true where a feature's value is missing: NULL, NaN for numbers, an empty or
    blank text for text (a text value is never cast: a category is a value too)."""
    col = quote(column)
    if kind in ("FLOAT", "DOUBLE", "REAL") or kind.startswith("DECIMAL"):
        return f"({col} IS NULL OR isnan(CAST({col} AS DOUBLE)))"
    if kind == "VARCHAR":
        return f"({col} IS NULL OR trim({col}) = '' OR lower(trim({col})) IN ('nan', 'null'))"
    return f"({col} IS NULL)"


def aggregate_sql(source: str, columns: EventColumns) -> str:
    """SQL summing the events in ``source`` (a table, view or ``read_parquet(...)``)
    into the aggregate table (see the module docstring)."""
    minute = f"date_trunc('minute', {columns.timestamp_sql})"
    segment = f"coalesce(CAST({quote(SEGMENT)} AS VARCHAR), '{NO_SEGMENT}')"
    clicked = f"CAST({quote(CLICKED)} AS BIGINT)"
    parts = [(LATENCY_SIGNAL, _bin_sql(quote(LATENCY), UNITS[LATENCY_SIGNAL])),
             (SCORE_SIGNAL, _bin_sql(quote(SCORE), UNITS[SCORE_SIGNAL]))]
    kinds = columns.feature_types or ("DOUBLE",) * len(columns.features)
    for f, kind in zip(columns.features, kinds):
        parts.append((f, f"CASE WHEN {_null_sql(f, kind)} THEN {NULL_BIN} "
                         f"ELSE {_bin_sql(quote(f + AGE_SUFFIX), AGE_UNIT)} END"))
    selects = [f"SELECT {minute} AS minute, {segment} AS segment, "
               f"'{name.replace(chr(39), chr(39) * 2)}' AS signal, "
               f"CAST({expr} AS SMALLINT) AS bin, count(*) AS n, "
               f"CAST(sum({clicked}) AS BIGINT) AS clicks FROM {source} GROUP BY ALL"
               for name, expr in parts]
    return "\nUNION ALL\n".join(selects)


def aggregate(con: duckdb.DuckDBPyConnection, source: str, columns: EventColumns) -> pa.Table:
    """The aggregate table of ``source``, sorted by minute, signal, segment and bin."""
    sql = (f"SELECT minute, segment, signal, bin, n, clicks FROM ({aggregate_sql(source, columns)}) "
           "ORDER BY minute, signal, segment, bin")
    return con.sql(sql).to_arrow_table().cast(AGGREGATE_SCHEMA)


def aggregate_events(events: pa.Table, checked: bool = False) -> pa.Table:
    """The aggregate table of an in-memory batch of events (the live ingest's path;
    the same SQL as a recorded file's). ``checked``: the batch was already checked
    against the schema (the ingest checks every batch before logging it), so only its
    column types are read, not its rows."""
    con = duckdb.connect()
    try:
        con.register("events", events)
        if checked:
            types = _types(con, "events")
            features = tuple(feature_names(list(types)))
            columns = EventColumns(_timestamp_sql(types[TIMESTAMP]), features,
                                   tuple(types[f] for f in features))
        else:
            columns = validate(con, "events")
        return aggregate(con, "events", columns)
    finally:
        con.close()


def merge(tables) -> pa.Table:
    """Sum aggregate tables (parts of the same or overlapping minutes) into one."""
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return AGGREGATE_SCHEMA.empty_table()
    con = duckdb.connect()
    try:
        con.register("parts", pa.concat_tables([t.cast(AGGREGATE_SCHEMA) for t in tables]))
        return con.sql("SELECT minute, segment, signal, bin, sum(n)::BIGINT AS n, "
                       "sum(clicks)::BIGINT AS clicks FROM parts GROUP BY ALL "
                       "ORDER BY minute, signal, segment, bin").to_arrow_table() \
            .cast(AGGREGATE_SCHEMA)
    finally:
        con.close()


def rollup(table: pa.Table, every: str = "1 hour") -> pa.Table:
    """Aggregates summed into coarser periods (``every`` as DuckDB reads an interval:
    ``"5 minutes"``, ``"1 hour"``, ``"1 day"``); ``minute`` then holds each period's
    start. Periods start at midnight UTC and their multiples."""
    con = duckdb.connect()
    try:
        con.register("parts", table.cast(AGGREGATE_SCHEMA))
        return con.execute(
            "SELECT time_bucket(CAST(? AS INTERVAL), minute, TIMESTAMP '2000-01-01') AS minute, "
            "segment, signal, bin, sum(n)::BIGINT AS n, sum(clicks)::BIGINT AS clicks "
            "FROM parts GROUP BY ALL ORDER BY minute, signal, segment, bin", [every]
        ).to_arrow_table().cast(AGGREGATE_SCHEMA)
    finally:
        con.close()


# -- reading and checking a recorded file -------------------------------------------------
def _types(con, source: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    return {r[0]: str(r[1]).upper() for r in rows}


def _timestamp_sql(kind: str) -> str:
    col = quote(TIMESTAMP)
    if kind.startswith("TIMESTAMP WITH TIME ZONE") or kind == "TIMESTAMPTZ":
        return f"timezone('UTC', {col})"
    if kind.startswith("TIMESTAMP") or kind == "DATE":
        return f"CAST({col} AS TIMESTAMP)"
    if kind in ("VARCHAR", "STRING"):
        return f"CAST(TRY_CAST({col} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)"
    if _is_numeric(kind):
        # epoch seconds, or milli-, micro- or nanoseconds told by their size (a number of
        # seconds above 1e11 would be after the year 5000)
        x = f"CAST({col} AS DOUBLE)"
        seconds = (f"CASE WHEN abs({x}) >= 1e17 THEN {x} / 1e9 WHEN abs({x}) >= 1e14 "
                   f"THEN {x} / 1e6 WHEN abs({x}) >= 1e11 THEN {x} / 1e3 ELSE {x} END")
        return f"CAST(to_timestamp({seconds}) AT TIME ZONE 'UTC' AS TIMESTAMP)"
    raise InputError(f"column {TIMESTAMP!r} has type {kind}: expected a timestamp, an ISO "
                     "date-time text or epoch seconds")


_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL")


def _is_numeric(kind: str) -> bool:
    return any(kind.startswith(t) for t in _NUMERIC)


def _first_bad(con, source: str, condition: str) -> tuple | None:
    rows = con.execute(f"SELECT * FROM (SELECT row_number() OVER () AS row, * FROM {source}) "
                       f"WHERE {condition} LIMIT 1").fetchall()
    return rows[0] if rows else None


def validate(con: duckdb.DuckDBPyConnection, source: str, label: str = "events") -> EventColumns:
    """Check ``source`` against the event schema; raise :class:`InputError` naming the
    first problem (missing columns, wrong types, values outside their range, with the
    row number) or return how to read its columns."""
    types = _types(con, source)
    missing = [c for c in REQUIRED if c not in types]
    if missing:
        raise InputError(f"{label}: missing column(s) {', '.join(missing)}; the event "
                         f"schema needs {', '.join(REQUIRED)} and, per feature f, f and "
                         f"f{AGE_SUFFIX} (found: {', '.join(list(types)[:12])})")
    ts_sql = _timestamp_sql(types[TIMESTAMP])
    features = tuple(feature_names(list(types)))
    numeric = [LATENCY, SCORE] + [f + AGE_SUFFIX for f in features]
    for col in numeric:
        if not (_is_numeric(types[col]) or types[col] in ("VARCHAR", "NULL", '"NULL"')):
            raise InputError(f"{label}: column {col!r} has type {types[col]}: expected numbers")
        if types[col] == "VARCHAR":
            bad = _first_bad(con, source, f"{quote(col)} IS NOT NULL AND trim({quote(col)}) <> '' "
                                          f"AND TRY_CAST({quote(col)} AS DOUBLE) IS NULL")
            if bad is not None:
                raise InputError(f"{label}: column {col!r} row {bad[0]}: not a number")
    bad = _first_bad(con, source, f"{ts_sql} IS NULL")
    if bad is not None:
        raise InputError(f"{label}: column {TIMESTAMP!r} row {bad[0]}: not a date-time")
    clicked = quote(CLICKED)
    bad = _first_bad(con, source, f"TRY_CAST({clicked} AS INTEGER) IS NULL "
                                  f"OR TRY_CAST({clicked} AS INTEGER) NOT IN (0, 1)")
    if bad is not None:
        raise InputError(f"{label}: column {CLICKED!r} row {bad[0]}: expected 0 or 1")
    return EventColumns(timestamp_sql=ts_sql, features=features,
                        feature_types=tuple(types[f] for f in features))


def event_source(path: str | Path, label: str = "events") -> str:
    """A DuckDB table expression reading a recorded event file (Parquet or CSV, told by
    its first bytes); :class:`InputError` when it is neither or is empty."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{label}: no such file: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{label}: {path.name} is empty")
    with open(path, "rb") as fh:
        kind, what = sniff_format(fh.read(1 << 16))
    literal = "'" + str(path).replace("'", "''") + "'"
    if kind == "parquet":
        return f"read_parquet({literal})"
    if kind == "text":
        return f"read_csv({literal}, header=true, sample_size=-1)"
    raise InputError(f"{label}: {not_a_table_message(what)}")


def aggregate_file(path: str | Path, label: str = "events") -> tuple[pa.Table, EventColumns]:
    """Validate and aggregate a recorded event file.

    A CSV is parsed once into a temporary Parquet file (every check and every signal's
    sum is a scan, and re-parsing text for each would cost most of the time)."""
    con = duckdb.connect()
    try:
        source = event_source(path, label)
        with tempfile.TemporaryDirectory(prefix="drift-events-") as tmp:
            try:
                if source.startswith("read_csv"):
                    parsed = Path(tmp) / "events.parquet"
                    con.execute(f"COPY (SELECT * FROM {source}) TO '{parsed}' (FORMAT parquet)")
                    source = f"read_parquet('{parsed}')"
                con.execute(f"CREATE VIEW events AS SELECT * FROM {source}")
                columns = validate(con, "events", label)
                if con.execute("SELECT count(*) FROM events").fetchall()[0][0] == 0:
                    raise InputError(f"{label}: the file has a header but no events")
                return aggregate(con, "events", columns), columns
            except duckdb.Error as exc:
                raise InputError(f"{label}: cannot read {Path(path).name}: "
                                 f"{str(exc).splitlines()[0]}") from None
    finally:
        con.close()
