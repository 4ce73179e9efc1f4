"""Durable ingest of event batches into a stream folder, and what a reader needs of it.

:class:`StreamIngest` takes batches of events (``pyarrow`` tables in the event schema of
:mod:`analysis.streaming.events`), makes each durable before :meth:`~StreamIngest.append`
returns, and turns them, in a background thread, into the Parquet parts the dashboard
and the command line read (:mod:`analysis.streaming.parts`: :func:`read_aggregates`,
:func:`read_events`; :func:`stream_status` here).

Folder layout (``<store>/streams/<name>/``)
-------------------------------------------
=====================  ==============================================================
``meta.json``          what the stream is (scenario, seed, rate, faults, clock...),
                       written once when it starts (:func:`write_meta`)
``wal/<seq>.wal``      the write-ahead log (:mod:`analysis.serving.wal`): one record
                       per batch, the batch as one Arrow IPC stream
``aggregates/<p>``     per part, the per-minute sums of its events (zstd Parquet)
``events/<p>``         per part, its raw events (zstd Parquet, time-ordered)
``checkpoint.json``    the log position up to which every record is in a part, and
                       the stored totals (events, first and last event time)
``status.json``        live figures of the running ingest (acknowledged, pending,
                       rate), rewritten every pass; not needed for correctness
=====================  ==============================================================

Exactly once
------------
A batch is acknowledged once its log record is fsynced (group commit: one fsync for
every batch that arrived meanwhile). Every ``compact_interval`` seconds the batches
committed since the last pass, log range ``(start, end]``, become one part named after
that range (:func:`~analysis.streaming.parts.part_name`): its aggregates file, then its
events file, each written under a temporary name, fsynced and renamed, then
``checkpoint.json`` (``end``). The events file finishes a part; readers ignore an
aggregates file without it. On :meth:`~StreamIngest.open` the consumed position is the
largest of the checkpoint and the ends of the finished parts, so a crash between a
part and its checkpoint replays nothing twice; a crash between the two files of a part
leaves its aggregates file, and recovery re-runs that very range first, so it is
rewritten under the same name with the same bytes; everything after is replayed from
the log. Every acknowledged batch is thus in exactly one visible part, and the
aggregates are always those of the stored events.

Merges
------
Passes make small parts. When :data:`FANOUT` consecutive parts of one level exist,
they become one part of the next level (aggregates summed with
:func:`~analysis.streaming.events.merge`, events concatenated row group by row group,
at most :data:`MAX_PART_EVENTS` events), named after the range they cover. The merged
part is written (aggregates, then events) and then its pieces deleted. No manifest is
kept: a reader keeps the parts not covered by another (see
:mod:`analysis.streaming.parts`), so it sees the merged part or its pieces, never both,
and a listing that raced a deletion is detected (a gap in the ranges, or a vanished
file) and retried. A manifest would be one more file to keep in step with the parts
and one more place for a crash to leave them disagreeing; the names already say
everything a reader needs.
"""
from __future__ import annotations

import collections
import fcntl
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analysis.serving import wal as wallib
from analysis.streaming import events as ev
from analysis.streaming.parts import (AGGREGATES, CHECKPOINT, EVENTS, META, ROW_GROUP_ROWS,
                                      STATUS, Part, decode, fsync_folder, iso, list_parts,
                                      maximal, naive_utc, part_figures, part_name,
                                      read_aggregates, read_events, read_figures, read_json,
                                      stored_figures, stream_status, with_figures,
                                      write_atomic, write_json)

__all__ = ["StreamIngest", "StreamBusy", "read_aggregates", "read_events", "stream_status", "write_meta",
           "read_meta", "stream_folder"]

#: parts of one level merged into one of the next
FANOUT = 16
#: a merge that would hold more events than this is not made
MAX_PART_EVENTS = 5_000_000
#: appends wait while this many bytes of committed batches await compaction
MAX_PENDING_BYTES = 128 << 20
#: recovery compacts the replayed log in parts of at most this many bytes
REPLAY_BYTES = 64 << 20
#: seconds over which the ingest rate is measured
RATE_WINDOW = 10.0


class StreamBusy(RuntimeError):
    """Another process is writing the stream (two writers would interleave two logs)."""


def stream_folder(store: str | os.PathLike, name: str) -> Path:
    """The folder of stream ``name`` in ``store``."""
    return Path(store) / "streams" / name


def write_meta(folder: str | os.PathLike, meta: dict) -> None:
    """Write the stream's ``meta.json`` (atomically, durably)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / META, meta)


def read_meta(folder: str | os.PathLike) -> dict:
    """The stream's ``meta.json`` (empty when there is none)."""
    return read_json(Path(folder) / META)


# -- batches in and out of the log --------------------------------------------------------
def encode(table: pa.Table) -> list[bytes]:
    """A batch as log payloads: one Arrow IPC stream, or several when it would exceed
    the log's record size (each then holds a slice of the rows)."""
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    rows = max(1, (wallib.MAX_RECORD // 2) // per_row)
    payloads = []
    for offset in range(0, max(1, table.num_rows), rows):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table.slice(offset, rows))
        payloads.append(sink.getvalue().to_pybytes())
    return payloads


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)


def normalize(table: pa.Table | pa.RecordBatch) -> pa.Table:
    """Check a batch against the event schema and put its clock in naive UTC
    microseconds; ValueError naming the first problem (nothing is logged then, so a
    bad batch can never block compaction)."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise ValueError(f"expected a pyarrow Table of events, got {type(table).__name__}")
    names = table.column_names
    missing = [c for c in ev.REQUIRED if c not in names]
    if missing:
        raise ValueError(f"events: missing column(s) {', '.join(missing)}")
    ts = table[ev.TIMESTAMP]
    if not pa.types.is_timestamp(ts.type):
        raise ValueError(f"events: column {ev.TIMESTAMP!r} has type {ts.type}: expected a "
                         "timestamp")
    if ts.type != pa.timestamp("us"):
        # microseconds are the events' precision (finer digits are dropped); a zoned
        # instant becomes its UTC clock reading
        if ts.type.tz is not None:
            ts = pc.cast(ts, pa.timestamp("us", tz="UTC"), safe=False).cast(pa.timestamp("us"))
        else:
            ts = pc.cast(ts, pa.timestamp("us"), safe=False)
        table = table.set_column(names.index(ev.TIMESTAMP), ev.TIMESTAMP, ts)
    if ts.null_count:
        raise ValueError(f"events: {ts.null_count} row(s) without a {ev.TIMESTAMP}")
    # a feature's value may be text (a category); its age, latency and score are numbers
    for col in [ev.LATENCY, ev.SCORE] + [f + ev.AGE_SUFFIX for f in ev.feature_names(names)]:
        if not _is_number(table[col].type):
            raise ValueError(f"events: column {col!r} has type {table[col].type}: expected "
                             "numbers")
    clicked = table[ev.CLICKED]
    if not (pa.types.is_integer(clicked.type) or pa.types.is_boolean(clicked.type)):
        raise ValueError(f"events: column {ev.CLICKED!r} has type {clicked.type}: expected "
                         "0/1")
    if table.num_rows:
        lo, hi = pc.min_max(pc.cast(clicked, pa.int64())).values()
        if clicked.null_count or lo.as_py() < 0 or hi.as_py() > 1:
            raise ValueError(f"events: column {ev.CLICKED!r} holds values other than 0 and 1")
    return table.replace_schema_metadata(None)


# -- the ingest ---------------------------------------------------------------------------
class StreamIngest:
    """Durable ingest into a stream folder (see the module docstring).

    Parameters
    ----------
    folder : the stream folder (created when missing)
    compact_interval : seconds between compaction passes
    fanout, max_part_events : merge policy (:data:`FANOUT`, :data:`MAX_PART_EVENTS`)
    commit_delay : the log's group-commit wait under load (seconds)
    max_pending_bytes : appends wait while more than this awaits compaction

    Use ``open()``, then ``append(table)`` from any thread, then ``close()``; or as a
    context manager.
    """

    def __init__(self, folder: str | os.PathLike, compact_interval: float = 1.0, *,
                 fanout: int = FANOUT, max_part_events: int = MAX_PART_EVENTS,
                 commit_delay: float = 0.002, max_pending_bytes: int = MAX_PENDING_BYTES):
        if compact_interval <= 0:
            raise ValueError("compact_interval must be positive")
        if fanout < 2:
            raise ValueError("fanout must be at least 2")
        self.folder = Path(folder)
        self.compact_interval = float(compact_interval)
        self.fanout, self.max_part_events = int(fanout), int(max_part_events)
        self.commit_delay, self.max_pending_bytes = commit_delay, int(max_pending_bytes)
        self._wal: wallib.WriteAheadLog | None = None
        self._schema: pa.Schema | None = None
        self._lock = threading.Lock()             # the committed-batch queue and counters
        self._room = threading.Condition(self._lock)
        self._pass_lock = threading.Lock()        # one pass (or merge) at a time
        self._pending: list[pa.Table] = []
        self._pending_end = wallib.START
        self._pending_bytes = 0
        self._retry: tuple | None = None          # a pass that failed, redone as it was
        self._start = wallib.START                # log position consumed by the parts
        self._figures: dict[str, dict] = {}       # part name -> its figures
        self._rates: collections.deque = collections.deque()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock_fd: int | None = None
        self.acknowledged = 0                      # events durable (this run and before)
        self.visible = 0                           # events in visible parts
        self.last_event_time: datetime | None = None   # newest acknowledged event
        self.last_visible_time: datetime | None = None
        self.passes = self.merges = self.errors = 0
        self.last_error = ""

    # -- lifecycle -------------------------------------------------------------------
    def open(self) -> "StreamIngest":
        """Recover (finish what a crash interrupted, replay the log after the
        checkpoint, each record exactly once), then start the log and the compactor."""
        for sub in (EVENTS, AGGREGATES, "wal"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self._take_writer_lock()
        try:
            self._recover()
        except BaseException:
            if self._wal is not None:
                self._wal.close()
                self._wal = None
            os.close(self._lock_fd)
            self._lock_fd = None
            raise
        self._thread = threading.Thread(target=self._loop, name="stream-compactor", daemon=True)
        self._thread.start()
        return self

    def _recover(self) -> None:
        for sub in (self.folder, self.folder / EVENTS, self.folder / AGGREGATES):
            for tmp in sub.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)      # a write that never finished
        with self._pass_lock:
            redo = self._recover_parts()
            self._keep_log_ahead()
            self._wal = wallib.WriteAheadLog(self.folder / "wal", commit_delay=self.commit_delay,
                                             on_commit=self._accept)
            self._wal.open()
            self._replay(redo)
            figures = stored_figures(self.folder)
            self.visible = self.acknowledged = int(figures["events"])
            self.last_event_time = self.last_visible_time = naive_utc(figures["last_event"])
            self._write_checkpoint()
            self._write_status()

    def close(self) -> None:
        """Stop accepting batches, make everything queued durable, compact everything,
        stop the compactor (a last pass makes every acknowledged event visible)."""
        if self._closed or self._wal is None:
            return
        self._closed = True
        self._wal.close()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for attempt in range(5):                   # a failed write: retry a few times
            self._pass()
            if self.pending == 0 and self._retry is None:
                break
            time.sleep(0.2 * (attempt + 1))
        while self._merge_once():
            pass
        self._write_status(running=False)
        os.close(self._lock_fd)
        self._lock_fd = None

    def _take_writer_lock(self) -> None:
        """An exclusive lock on ``.writer.lock``, held until close (the kernel drops it
        when the process dies, so a crashed writer never blocks a restart)."""
        fd = os.open(self.folder / ".writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StreamBusy(f"stream {self.folder} is being written by another process "
                             f"(pid {holder})") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def __enter__(self) -> "StreamIngest":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Events acknowledged and not yet in a visible part."""
        return self.acknowledged - self.visible

    # -- appending -------------------------------------------------------------------
    def append(self, table: pa.Table) -> int:
        """Log a batch of events; returns once it is durable (fsynced), with the
        stream's acknowledged total (this batch included). ValueError for a batch
        that does not fit the event schema or the stream's columns."""
        if self._wal is None or self._closed:
            raise wallib.LogClosed("the stream ingest is not open")
        table = self._conform(normalize(table))
        if table.num_rows == 0:
            return self.acknowledged
        with self._room:
            while self._pending_bytes > self.max_pending_bytes and not self._closed:
                self._wake.set()                  # compaction is behind: run it now
                self._room.wait(0.5)
        self._wal.append(encode(table), items=[table], timeout=300.0)
        return self.acknowledged

    def flush(self) -> None:
        """Compact what is committed now (normally the compactor thread's job)."""
        self._pass()

    def _conform(self, table: pa.Table) -> pa.Table:
        with self._lock:
            if self._schema is None:
                self._schema = table.schema
                return table
            schema = self._schema
        if table.schema.equals(schema):
            return table
        extra = sorted(set(table.column_names) - set(schema.names))
        missing = sorted(set(schema.names) - set(table.column_names))
        if extra or missing:
            raise ValueError(f"events: the batch's columns differ from the stream's (extra: "
                             f"{', '.join(extra) or '-'}; missing: {', '.join(missing) or '-'})")
        try:
            return table.select(schema.names).cast(schema)
        except (KeyError, ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
            kinds = [f"{f.name} {f.type} (stream: {schema.field(f.name).type})"
                     for f in table.schema if f.type != schema.field(f.name).type]
            raise ValueError("events: column types the stream's cannot hold: "
                             + ", ".join(kinds)) from None

    def _accept(self, items: list, position: tuple) -> None:
        """The log's on_commit: batches durable up to ``position``."""
        rows = sum(t.num_rows for t in items)
        newest = max((pc.max(t[ev.TIMESTAMP]).as_py() for t in items if t.num_rows),
                     default=None)
        with self._lock:
            self._pending.extend(items)
            self._pending_end = max(self._pending_end, tuple(position))
            self._pending_bytes += sum(t.nbytes for t in items)
            self.acknowledged += rows
            if newest is not None and (self.last_event_time is None
                                       or newest > self.last_event_time):
                self.last_event_time = newest
            now = time.monotonic()
            self._rates.append((now, self.acknowledged))
            while self._rates and now - self._rates[0][0] > RATE_WINDOW:
                self._rates.popleft()
        if self._pending_bytes > self.max_pending_bytes // 2:
            self._wake.set()

    def rate(self) -> float:
        """Events acknowledged per second over the last :data:`RATE_WINDOW` seconds."""
        with self._lock:
            if len(self._rates) < 2:
                return 0.0
            (t0, a0), (t1, a1) = self._rates[0], self._rates[-1]
            if time.monotonic() - t1 > RATE_WINDOW:
                return 0.0
        return (a1 - a0) / max(t1 - t0, 1e-3)

    # -- compaction --------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.compact_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self._pass()

    def _take(self) -> tuple | None:
        with self._lock:
            if not self._pending:
                return None
            batch = (self._pending, self._start, self._pending_end)
            self._pending, self._pending_bytes = [], 0
            self._room.notify_all()
        return batch

    def _pass(self) -> None:
        """One pass: the committed batches into a part, then the merges due."""
        with self._pass_lock:
            batch = self._retry or self._take()
            if batch is not None:
                tables, start, end = batch
                try:
                    self._compact(tables, start, end)
                    self._retry = None
                    self._consumed(end)
                except Exception as exc:   # noqa: BLE001 - kept, redone as it was
                    self._retry = batch
                    self._failed(exc)
            try:
                while self._merge_once():
                    pass
            except Exception as exc:       # noqa: BLE001 - merges are redone later
                self._failed(exc)
            self.passes += 1
            self._write_status()

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _compact(self, tables: list[pa.Table], start: tuple, end: tuple) -> None:
        """Write the part of log range ``(start, end]``: aggregates, then events."""
        events = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        name = part_name(0, start, end)
        figures = part_figures(events)
        aggregates = ev.aggregate_events(events, checked=True)
        write_atomic(self.folder / AGGREGATES / name,
                     lambda fh: pq.write_table(aggregates, fh, compression="zstd"))
        schema = with_figures(events.schema, figures)
        write_atomic(self.folder / EVENTS / name,
                     lambda fh: pq.write_table(events.replace_schema_metadata(schema.metadata),
                                               fh, compression="zstd",
                                               row_group_size=ROW_GROUP_ROWS))
        self._figures[name] = figures
        with self._lock:
            self.visible += events.num_rows
            last = naive_utc(figures["last"])
            if last is not None and (self.last_visible_time is None
                                     or last > self.last_visible_time):
                self.last_visible_time = last

    def _consumed(self, end: tuple) -> None:
        """Everything up to ``end`` is in parts: checkpoint it, drop the log before it."""
        self._start = end
        self._write_checkpoint()
        if self._wal is not None:
            self._wal.drop_before(end)

    def _write_checkpoint(self) -> None:
        write_json(self.folder / CHECKPOINT, {
            "position": list(self._start), "events": self.visible,
            "last_event": iso(self.last_visible_time),
            "updated_at": iso(datetime.now(timezone.utc).replace(tzinfo=None))})

    def _write_status(self, running: bool = True) -> None:
        write_json(self.folder / STATUS, {
            "pid": os.getpid(), "running": running, "acknowledged": self.acknowledged,
            "visible": self.visible, "pending": self.pending, "rate": round(self.rate(), 1),
            "last_acknowledged_event": iso(self.last_event_time),
            "compact_interval": self.compact_interval, "passes": self.passes,
            "merges": self.merges, "errors": self.errors, "last_error": self.last_error,
            "updated_at": iso(datetime.now(timezone.utc).replace(tzinfo=None))},
            durable=False)

    # -- merges ------------------------------------------------------------------------
    def _events_of(self, part: Part) -> int:
        if part.name not in self._figures:
            self._figures[part.name] = read_figures(self.folder / EVENTS / part.name)
        return int(self._figures[part.name]["events"])

    def _merge_once(self) -> bool:
        """Merge the first run of :attr:`fanout` chained parts of one level that fits
        in :attr:`max_part_events`; whether one was made."""
        finished, _ = list_parts(self.folder)
        parts = [p for p in maximal(finished) if p.own]
        for level in sorted({p.level for p in parts}):
            group = [p for p in parts if p.level == level]
            for i in range(len(group) - self.fanout + 1):
                chunk = group[i:i + self.fanout]
                chained = all(a.end == b.start for a, b in zip(chunk, chunk[1:]))
                if chained and sum(map(self._events_of, chunk)) <= self.max_part_events:
                    self._merge(chunk, level + 1)
                    return True
        return False

    def _merge(self, chunk: list[Part], level: int) -> None:
        name = part_name(level, chunk[0].start, chunk[-1].end)
        aggregates = ev.merge([pq.read_table(self.folder / AGGREGATES / p.name)
                               for p in chunk])
        write_atomic(self.folder / AGGREGATES / name,
                     lambda fh: pq.write_table(aggregates, fh, compression="zstd"))
        figures = [self._figures.get(p.name) or read_figures(self.folder / EVENTS / p.name)
                   for p in chunk]
        firsts = [f["first"] for f in figures if f.get("first")]
        lasts = [f["last"] for f in figures if f.get("last")]
        merged = {"events": sum(int(f["events"]) for f in figures),
                  "first": min(firsts, default=None), "last": max(lasts, default=None)}
        paths = [self.folder / EVENTS / p.name for p in chunk]
        write_atomic(self.folder / EVENTS / name,
                     lambda fh: _concatenate(paths, fh, merged))
        self._figures[name] = merged
        for p in chunk:                  # events first: a piece left half-deleted is an
            _delete_part(self.folder, p)  # orphan aggregates file, which readers ignore
            self._figures.pop(p.name, None)
        self.merges += 1

    # -- recovery ----------------------------------------------------------------------
    def _recover_parts(self) -> Part | None:
        """Tidy what a crash left and set the consumed position; returns the pass to
        re-run under its own name (an aggregates file whose events file is missing,
        starting where the finished parts end), if any."""
        checkpoint = read_json(self.folder / CHECKPOINT)
        start = tuple(checkpoint.get("position") or wallib.START)
        finished, orphans = list_parts(self.folder)
        kept = maximal(finished)
        for p in finished:
            if p.own and p not in kept:
                _delete_part(self.folder, p)      # a merge finished, its pieces not deleted
        start = max([start] + [p.end for p in kept if p.own])
        redo = None
        for p in orphans:
            if p.own and p.level == 0 and p.start == start and redo is None:
                redo = p
            else:                                 # an unfinished merge or a stray piece
                (self.folder / AGGREGATES / p.name).unlink(missing_ok=True)
        self._start = start
        last = [p for p in kept if p.own]
        if last:
            self._schema = pq.read_schema(self.folder / EVENTS / last[-1].name) \
                .remove_metadata()
        return redo

    def _keep_log_ahead(self) -> None:
        """A log folder emptied by hand would number its records from the start again,
        behind the parts; an empty segment at the consumed position keeps it ahead."""
        folder = self.folder / "wal"
        if not wallib.segments(folder) and self._start > wallib.START:
            (folder / f"{self._start[0]:012d}.wal").touch()
            fsync_folder(folder)

    def _replay(self, redo: Part | None) -> None:
        """Compact the log's records after the consumed position (the open log's
        writer is idle: nothing was appended yet)."""
        tables, size, end = [], 0, self._start
        for payload, position in wallib.read_records(self.folder / "wal", self._start):
            table = decode(payload)
            if self._schema is None:
                self._schema = table.schema
            tables.append(table.cast(self._schema) if not table.schema.equals(self._schema)
                          else table)
            size, end = size + table.nbytes, position
            if (redo is not None and position == redo.end) or size >= REPLAY_BYTES:
                self._compact(tables, self._start, end)
                self._consumed(end)
                tables, size = [], 0
        if tables:
            self._compact(tables, self._start, end)
            self._consumed(end)
        if redo is not None and not (self.folder / EVENTS / redo.name).exists():
            (self.folder / AGGREGATES / redo.name).unlink(missing_ok=True)


def _delete_part(folder: Path, part: Part) -> None:
    (folder / EVENTS / part.name).unlink(missing_ok=True)
    (folder / AGGREGATES / part.name).unlink(missing_ok=True)


def _concatenate(paths: list[Path], fh, figures: dict) -> None:
    """Events files one after the other into one Parquet file, re-cut into row groups
    of :data:`ROW_GROUP_ROWS` (a few batches in memory at a time, however large)."""
    schema = pq.read_schema(paths[0]).remove_metadata()
    with pq.ParquetWriter(fh, with_figures(schema, figures), compression="zstd") as writer:
        buffered, rows = [], 0
        for path in paths:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
                buffered.append(batch)
                rows += batch.num_rows
                if rows >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(buffered).cast(schema),
                                       row_group_size=ROW_GROUP_ROWS)
                    buffered, rows = [], 0
        if buffered:
            writer.write_table(pa.Table.from_batches(buffered).cast(schema),
                               row_group_size=ROW_GROUP_ROWS)
