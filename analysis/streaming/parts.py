"""The files of a stream folder and how to read them while a stream is being written.

A stream folder ``<store>/streams/<name>/`` holds its events and their per-minute
aggregates as *parts*: one pair of Parquet files with the same name,
``aggregates/<part>.parquet`` and ``events/<part>.parquet``. The ingest
(:mod:`analysis.streaming.ingest`) writes them; everything here only reads, from any
process, at any time.

Part names
----------
A part holds the events of the write-ahead-log records in a half-open range of log
positions ``(start, end]`` (a position is ``(segment, offset)``, see
:mod:`analysis.serving.wal`), and its name says so::

    p<level>-<start seq>.<start offset>-<end seq>.<end offset>.parquet

with fixed-width numbers. Level 0 is one compaction pass; a merge of parts of level
``k`` is a part of level ``k + 1`` whose range covers theirs. Because the name is a
function of the log range, a pass re-run after a crash writes the same names (and the
same bytes), so nothing is stored twice.

What a reader sees
------------------
There is no manifest: the two folders are it. A part is *visible* when both of its
files exist (the ingest writes the aggregates first and the events last, so the events
file marks a finished part); a visible part whose range lies inside another visible
part's range is a piece of a merge that has not been deleted yet, and is skipped. So a
reader sees a merged part or its pieces, never both. The visible parts' ranges must
chain from the log's first position without a gap; a listing that raced a merge (the
merged part not yet listed, its pieces already deleted) shows a gap, and a file that
vanishes between the listing and the read raises ``FileNotFoundError``: either way the
reader lists again (:func:`visible_parts`, :func:`_retrying`). Files whose names do not
follow the pattern (written by other tools) are read as they are, after the stream's own.

:func:`stream_status` sums up a stream for the dashboard and the command line: what is
stored, and, from the running ingest's ``status.json``, what is acknowledged, pending and
how fast it arrives.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from analysis.serving import wal as wallib
from analysis.streaming.events import AGGREGATE_SCHEMA, TIMESTAMP, merge

EVENTS, AGGREGATES = "events", "aggregates"
CHECKPOINT, META, STATUS = "checkpoint.json", "meta.json", "status.json"
#: key of a part's own figures (events, first and last event time) in its Parquet schema
PART_KEY = b"drift_stream_part"
#: rows per Parquet row group of an events part (time-ordered, so a time range reads
#: only the groups it touches)
ROW_GROUP_ROWS = 131_072
_NAME = re.compile(r"^p(\d+)-(\d+)\.(\d+)-(\d+)\.(\d+)\.parquet$")
T = TypeVar("T")


class ListingRaced(RuntimeError):
    """A listing caught the folders in the middle of a merge; list again."""


@dataclass(frozen=True)
class Part:
    """One part of a stream: its file name and, for the stream's own parts, the level
    and the log range ``(start, end]`` it holds."""

    name: str
    level: int | None = None
    start: tuple = ()
    end: tuple = ()

    @property
    def own(self) -> bool:
        return self.level is not None

    def covers(self, other: "Part") -> bool:
        """Whether ``other`` is a piece of this part (its range lies within ours)."""
        return (self.own and other.own and other.name != self.name
                and self.start <= other.start and other.end <= self.end)


def part_name(level: int, start, end) -> str:
    """The file name of the part of ``level`` holding the log range ``(start, end]``."""
    (s_seq, s_off), (e_seq, e_off) = start, end
    return f"p{level}-{s_seq:010d}.{s_off:010d}-{e_seq:010d}.{e_off:010d}.parquet"


def parse_part(name: str) -> Part:
    m = _NAME.match(name)
    if not m:
        return Part(name)
    level, s_seq, s_off, e_seq, e_off = (int(g) for g in m.groups())
    return Part(name, level, (s_seq, s_off), (e_seq, e_off))


def _names(folder: Path) -> set[str]:
    try:
        return {e.name for e in os.scandir(folder)
                if e.name.endswith(".parquet") and not e.name.startswith(".")}
    except FileNotFoundError:
        return set()


def list_parts(folder: str | Path) -> tuple[list[Part], list[Part]]:
    """(parts whose two files exist, aggregate files without their events file): the
    first are the finished parts, pieces included; the second are orphans of a pass or
    merge that stopped half-way. The aggregates folder is listed first: a part seen
    there and then in the events folder is finished."""
    folder = Path(folder)
    aggregates = _names(folder / AGGREGATES)
    events = _names(folder / EVENTS)
    finished = [parse_part(n) for n in sorted(aggregates & events)]
    orphans = [parse_part(n) for n in sorted(aggregates - events)]
    return finished, orphans


def maximal(parts: list[Part]) -> list[Part]:
    """The parts not covered by another (merged pieces dropped), own parts in log
    order then the others by name."""
    own = sorted((p for p in parts if p.own), key=lambda p: (p.start, p.end))
    kept = [p for p in own if not any(q.covers(p) for q in own)]
    return kept + [p for p in parts if not p.own]


def visible_parts(folder: str | Path) -> list[Part]:
    """The parts a reader reads now (see the module docstring); :class:`ListingRaced`
    when the listing raced a merge."""
    finished, _ = list_parts(folder)
    parts = maximal(finished)
    edge = wallib.START
    for p in parts:
        if not p.own:
            break
        if p.start != edge:
            raise ListingRaced(f"gap before {p.name}")
        edge = p.end
    return parts


def _retrying(read: Callable[[], T], attempts: int = 50) -> T:
    """``read()`` again while it meets a listing that raced the writer (rare: a merge
    has to happen between two directory listings, or between a listing and a read)."""
    for attempt in range(attempts):
        try:
            return read()
        except (ListingRaced, FileNotFoundError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


# -- times ------------------------------------------------------------------------------
def naive_utc(when) -> datetime | None:
    """A datetime (or ISO text, or pandas Timestamp) as naive UTC, the events' clock."""
    if when is None:
        return None
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if hasattr(when, "to_pydatetime"):
        when = when.to_pydatetime()
    if not isinstance(when, datetime):
        raise TypeError(f"expected a datetime, got {when!r}")
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return when


def iso(when: datetime | None) -> str | None:
    # always with microseconds, so that ISO texts compare as the times do
    return None if when is None else when.isoformat(timespec="microseconds")


# -- writing (the ingest's side, here so both sides agree on the format) ----------------
def fsync_folder(folder: Path) -> None:
    """Make the folder's entries (a rename, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[object], None]) -> None:
    """Write ``path`` whole or not at all: ``write(file)`` into a hidden temporary file,
    fsync, rename over ``path``, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_folder(path.parent)


def write_json(path: Path, data: dict, durable: bool = True) -> None:
    body = json.dumps(data, indent=1).encode()
    if durable:
        write_atomic(path, lambda fh: fh.write(body))
        return
    tmp = path.with_name(f".{path.name}.tmp")   # atomic, not fsynced (live figures)
    tmp.write_bytes(body)
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def part_figures(table: pa.Table) -> dict:
    """What a part's schema records about its events: count, first and last time."""
    if table.num_rows == 0:
        return {"events": 0, "first": None, "last": None}
    import pyarrow.compute as pc
    lo, hi = pc.min_max(table[TIMESTAMP]).values()
    return {"events": table.num_rows, "first": iso(lo.as_py()), "last": iso(hi.as_py())}


def with_figures(schema: pa.Schema, figures: dict) -> pa.Schema:
    return schema.with_metadata({**(schema.metadata or {}), PART_KEY: json.dumps(figures)})


def read_figures(path: Path) -> dict:
    """A part's figures from its footer (for a file written elsewhere: its row count)."""
    raw = (pq.read_schema(path).metadata or {}).get(PART_KEY)
    if raw:
        return json.loads(raw)
    return {"events": pq.read_metadata(path).num_rows, "first": None, "last": None}


# -- readers ---------------------------------------------------------------------------
class _TableCache:
    """Aggregate parts read before, by path, size and modification time: a part's
    content never changes under its name, so the dashboard's polling reads each once."""

    def __init__(self, size: int = 1024):
        self.size = size
        self._tables: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: Path) -> pa.Table:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._tables:
                self._tables.move_to_end(key)
                return self._tables[key]
        table = pq.read_table(path).cast(AGGREGATE_SCHEMA)
        with self._lock:
            self._tables[key] = table
            while len(self._tables) > self.size:
                self._tables.popitem(last=False)
        return table


_AGGREGATES = _TableCache()


def sum_parts(tables: list[pa.Table]) -> pa.Table:
    """What :func:`~analysis.streaming.events.merge` gives for aggregate parts (each
    sorted, each key once, as every part is written), without summing all of them:
    parts of a stream cover consecutive stretches of time and share only the minutes
    at their edges, so only those go through ``merge``; the other rows are already
    final and are put in order by a stable sort on the minute."""
    tables = [t for t in tables if t.num_rows]
    if len(tables) <= 1:
        return tables[0] if tables else AGGREGATE_SCHEMA.empty_table()
    import pyarrow.compute as pc
    spans = [tuple(x.as_py() for x in pc.min_max(t["minute"]).values()) for t in tables]
    shared = [(max(a[0], b[0]), min(a[1], b[1])) for i, a in enumerate(spans)
              for b in spans[i + 1:] if max(a[0], b[0]) <= min(a[1], b[1])]
    alone, together = [], []
    for t in tables:
        if not shared:
            alone.append(t)
            continue
        masks = [pc.and_(pc.greater_equal(t["minute"], pa.scalar(lo, t["minute"].type)),
                         pc.less_equal(t["minute"], pa.scalar(hi, t["minute"].type)))
                 for lo, hi in shared]
        mask = masks[0]
        for m in masks[1:]:
            mask = pc.or_(mask, m)
        alone.append(t.filter(pc.invert(mask)))
        together.append(t.filter(mask))
    out = pa.concat_tables(alone + [merge(together)])
    # within a minute every row comes from one sorted source, so ordering by minute
    # alone (stable) gives the order of (minute, signal, segment, bin)
    return out.take(pc.sort_indices(out, [("minute", "ascending")]))


def read_aggregates(folder: str | Path, since=None) -> pa.Table:
    """The stream's aggregates (:data:`~analysis.streaming.events.AGGREGATE_SCHEMA`),
    all visible parts summed; with ``since``, only the minutes from the one holding it.
    Safe while the stream is written; an empty table when nothing is stored yet."""
    folder = Path(folder)
    since = naive_utc(since)

    def read() -> pa.Table:
        tables = [_AGGREGATES.read(folder / AGGREGATES / p.name) for p in visible_parts(folder)]
        if since is not None:
            import pyarrow.compute as pc
            edge = pa.scalar(since.replace(second=0, microsecond=0), pa.timestamp("us"))
            tables = [t.filter(pc.greater_equal(t["minute"], edge)) for t in tables]
        return sum_parts(tables)
    return _retrying(read)


def read_events(folder: str | Path, start=None, end=None, columns=None) -> pa.Table:
    """The stream's stored events with ``start <= timestamp < end`` (either bound may be
    None), in the order they were ingested; ``columns`` picks columns. Safe while the
    stream is written; a table without columns when nothing is stored yet."""
    folder = Path(folder)
    start, end = naive_utc(start), naive_utc(end)
    filters = []
    if start is not None:
        filters.append((TIMESTAMP, ">=", pa.scalar(start, pa.timestamp("us"))))
    if end is not None:
        filters.append((TIMESTAMP, "<", pa.scalar(end, pa.timestamp("us"))))
    columns = list(columns) if columns is not None else None

    def read() -> pa.Table:
        tables = [pq.read_table(folder / EVENTS / p.name, columns=columns,
                                filters=filters or None) for p in visible_parts(folder)]
        if not tables:
            return pa.table({})
        return pa.concat_tables(tables, promote_options="permissive")
    return _retrying(read)


def stored_figures(folder: str | Path) -> dict:
    """Events, parts, first and last event time of the visible parts (from footers)."""
    folder = Path(folder)

    def read() -> dict:
        parts = visible_parts(folder)
        figures = [read_figures(folder / EVENTS / p.name) for p in parts]
        firsts = [f["first"] for f in figures if f.get("first")]
        lasts = [f["last"] for f in figures if f.get("last")]
        return {"events": sum(int(f["events"]) for f in figures), "parts": len(parts),
                "first_event": min(firsts) if firsts else None,
                "last_event": max(lasts) if lasts else None}
    return _retrying(read)


def decode(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(payload).read_all()


# -- status --------------------------------------------------------------------------------
def _pending_log(folder: Path, after: tuple, count: bool) -> tuple[int, int | None]:
    """Bytes of log after ``after`` and, when ``count``, the events they hold."""
    size = 0
    for seq, path in wallib.segments(folder / "wal"):
        try:
            length = path.stat().st_size
        except FileNotFoundError:
            continue
        if seq > after[0]:
            size += length
        elif seq == after[0]:
            size += max(0, length - after[1])
    if not count:
        return size, None
    events = sum(decode(p).num_rows for p, _ in wallib.read_records(folder / "wal", after))
    return size, events


def _seconds(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return round((datetime.fromisoformat(a) - datetime.fromisoformat(b)).total_seconds(), 3)


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def stream_status(folder: str | os.PathLike) -> dict:
    """What a stream holds and how its ingest is doing, read from another process.

    ``events`` (visible), ``parts``, ``first_event`` and ``last_event`` (ISO, stream
    time) come from the parts; ``running``, ``acknowledged``, ``pending_events``
    (acknowledged, not yet visible), ``rate`` (events/s acknowledged over the last
    10 s) from the running ingest's ``status.json``; for a stopped stream,
    ``pending_events`` counts the log records a restart will replay. ``lag_s``: how far
    the visible events trail the acknowledged ones (stream seconds); ``clock_lag_s``,
    for a running real-clock stream: how far the acknowledged events trail the clock.
    """
    folder = Path(folder)
    meta, live = read_json(folder / META), read_json(folder / STATUS)
    checkpoint = read_json(folder / CHECKPOINT)

    def read() -> tuple[list[Part], dict]:
        return visible_parts(folder), stored_figures(folder)
    parts, figures = _retrying(read)
    consumed = max([tuple(checkpoint.get("position") or wallib.START)]
                   + [p.end for p in parts if p.own])
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    updated = live.get("updated_at")
    fresh = bool(updated) and (now - datetime.fromisoformat(updated)).total_seconds() \
        < max(5.0, 3 * float(live.get("compact_interval") or 1.0))
    running = bool(live.get("running")) and fresh and _alive(live.get("pid"))
    pending_bytes, replay = _pending_log(folder, consumed, count=not running)
    if running:
        acknowledged = max(int(live.get("acknowledged") or 0), figures["events"])
        pending = acknowledged - figures["events"]
        newest = live.get("last_acknowledged_event") or figures["last_event"]
    else:
        pending = int(replay or 0)
        acknowledged = figures["events"] + pending
        newest = figures["last_event"]
    status = {
        "folder": str(folder), "name": folder.name, "meta": meta, "running": running,
        "events": figures["events"], "acknowledged": acknowledged, "pending_events": pending,
        "pending_log_bytes": pending_bytes, "parts": figures["parts"],
        "first_event": figures["first_event"], "last_event": figures["last_event"],
        "last_acknowledged_event": newest,
        "lag_s": max(0.0, _seconds(newest, figures["last_event"]) or 0.0),
        "rate": float(live.get("rate") or 0.0) if running else 0.0,
        "errors": int(live.get("errors") or 0), "last_error": live.get("last_error") or "",
        "updated_at": updated}
    if running and meta.get("clock") == "real" and newest:
        clock = now + timedelta(seconds=float(meta.get("clock_offset_s") or 0.0))
        status["clock_lag_s"] = max(0.0, _seconds(iso(clock), newest) or 0.0)
    return status
