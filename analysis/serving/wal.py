"""A write-ahead log with group commit: what makes an acknowledged prediction durable.

Layout: a folder of segment files ``<seq>.wal`` (12 digits, increasing). A record is
framed as ``length (4 bytes, little-endian) | crc32 of the payload (4 bytes) | payload``.
A *position* is ``(seq, offset)``: the end of a record in its segment; positions
compare as tuples, so "everything up to position P" is well defined across segments.

Group commit
------------
Callers hand records to :meth:`WriteAheadLog.submit` and wait. One writer thread takes
everything queued (under load waiting at most ``commit_delay`` seconds for more once it
has one),
writes it with a single ``write`` and makes it durable with one ``fsync``, then tells
every waiter of the batch. So a request waits a few milliseconds at most, and one fsync
pays for every request that arrived meanwhile: throughput grows with load instead of
being capped at one fsync per request. Nothing is acknowledged before its fsync returned;
if the fsync fails, every waiter of the batch gets the error (the service answers 500).

Crash safety
------------
A crash (``kill -9``, power loss) can leave the last record half-written. Reading stops
at the first record whose frame is short or whose crc does not match; that tail was
never acknowledged (its fsync had not returned). On open the log truncates such a tail
and always starts a new segment, so a new record never follows garbage.
"""
from __future__ import annotations

import asyncio
import os
import queue
import struct
import threading
import time
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

HEADER = struct.Struct("<II")
#: a record larger than this is refused (and a frame claiming more is corrupt)
MAX_RECORD = 16 << 20
SEGMENT_BYTES = 64 << 20
Position = tuple  # (seq, offset)
START: Position = (0, 0)


class LogClosed(RuntimeError):
    """The log no longer accepts records (the service is shutting down)."""


def frame(payload: bytes) -> bytes:
    """One record as written: length, crc32, payload."""
    if len(payload) > MAX_RECORD:
        raise ValueError(f"record of {len(payload):,} bytes exceeds {MAX_RECORD:,}")
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def segments(folder: Path) -> list[tuple[int, Path]]:
    """The log's segments, oldest first, as (seq, path)."""
    out = []
    for path in Path(folder).glob("*.wal"):
        try:
            out.append((int(path.stem), path))
        except ValueError:
            continue
    return sorted(out)


def _scan(data: bytes) -> Iterator[tuple[bytes, int]]:
    """(payload, end offset) of each intact record of one segment's bytes, stopping at
    the first torn or corrupt one."""
    offset, n = 0, len(data)
    while offset + HEADER.size <= n:
        length, crc = HEADER.unpack_from(data, offset)
        start, end = offset + HEADER.size, offset + HEADER.size + length
        if length > MAX_RECORD or end > n:
            return
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            return
        yield payload, end
        offset = end


def read_records(folder: Path, after: Position = START) -> Iterator[tuple[bytes, Position]]:
    """Every intact record whose position is after ``after``, in log order, with its
    position. Never modifies the log (safe while a service writes it)."""
    for seq, path in segments(folder):
        if seq < after[0]:
            continue
        try:
            data = path.read_bytes()
        except FileNotFoundError:      # removed by retention meanwhile
            continue
        for payload, end in _scan(data):
            if (seq, end) > tuple(after):
                yield payload, (seq, end)


def _intact_length(path: Path) -> int:
    end = 0
    for _payload, end in _scan(path.read_bytes()):
        pass
    return end


@dataclass
class _Item:
    data: bytes
    n: int
    done: Callable[[Position | None, BaseException | None], None]
    items: list = field(default_factory=list)   # what on_commit receives


class WriteAheadLog:
    """An append-only log with group commit (see the module docstring).

    Parameters
    ----------
    folder : the log's folder (created if needed)
    commit_delay : seconds the writer waits for more records once it has one, when the
        previous batch held several requests (under load); a lone request is written at
        once. Batches also form by themselves while an fsync is in progress
    segment_bytes : a new segment starts when the current one reaches this size
    on_commit : called in the writer thread after each durable batch with the batch's
        items (the ``items`` given to :meth:`submit`, concatenated) and its end position
    """

    def __init__(self, folder: str | os.PathLike, *, commit_delay: float = 0.002,
                 segment_bytes: int = SEGMENT_BYTES,
                 on_commit: Callable[[list, Position], None] | None = None,
                 on_batch: Callable[[int, float], None] | None = None):
        self.folder = Path(folder)
        self.commit_delay = float(commit_delay)
        self.segment_bytes = int(segment_bytes)
        self.on_commit = on_commit
        self.on_batch = on_batch        # (records in the batch, fsync seconds)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._fd: int | None = None
        self._seq = 0
        self._size = 0
        self._thread: threading.Thread | None = None
        self.position: Position = START
        self.records = 0
        self._last_batch = 0

    # -- lifecycle -------------------------------------------------------------------
    def open(self) -> "WriteAheadLog":
        """Truncate a torn tail of the last segment, start a new segment, start writing."""
        self.folder.mkdir(parents=True, exist_ok=True)
        existing = segments(self.folder)
        if existing:
            seq, last = existing[-1]
            good = _intact_length(last)
            if good < last.stat().st_size:
                with open(last, "r+b") as fh:
                    fh.truncate(good)
                    fh.flush()
                    os.fsync(fh.fileno())
            self.position = (seq, good)
        self._seq = existing[-1][0] + 1 if existing else 1
        self._start_segment(self._seq)
        self._thread = threading.Thread(target=self._run, name="wal-writer", daemon=True)
        self._thread.start()
        return self

    def _start_segment(self, seq: int) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
        path = self.folder / f"{seq:012d}.wal"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._seq, self._size = seq, 0
        # the new file's directory entry must be durable too
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        """Stop accepting records, write and fsync everything queued, stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    @property
    def closed(self) -> bool:
        return self._closed

    # -- appending -------------------------------------------------------------------
    def submit(self, payloads: list[bytes],
               done: Callable[[Position | None, BaseException | None], None],
               items: list | None = None) -> None:
        """Queue ``payloads`` (one record each); ``done(position, None)`` is called from
        the writer thread once they are durable, or ``done(None, error)``."""
        if self._closed:
            raise LogClosed("the log is closed")
        data = b"".join(frame(p) for p in payloads)
        self._queue.put(_Item(data, len(payloads), done, list(items or [])))

    def append(self, payloads: list[bytes], items: list | None = None,
               timeout: float | None = 30.0) -> Position:
        """Append and wait until durable (for threads); returns the end position."""
        fut: Future = Future()

        def done(pos, err):
            fut.set_exception(err) if err else fut.set_result(pos)
        self.submit(payloads, done, items)
        return fut.result(timeout)

    async def commit(self, payloads: list[bytes], items: list | None = None) -> Position:
        """Append and wait until durable (for asyncio handlers)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def settle(pos, err):
            if fut.done():
                return
            fut.set_exception(err) if err else fut.set_result(pos)

        def done(pos, err):
            loop.call_soon_threadsafe(settle, pos, err)
        self.submit(payloads, done, items)
        return await fut

    # -- the writer thread -------------------------------------------------------------
    def _take_batch(self) -> tuple[list[_Item], bool]:
        first = self._queue.get()
        if first is None:
            batch, stop = [], True
        else:
            batch, stop = [first], False
        # wait for company only under load (the last batch had several records), so a
        # lone request is not delayed
        delay = self.commit_delay if self._last_batch > 1 else 0.0
        deadline = time.monotonic() + delay
        while not stop:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    break
            if item is None:
                stop = True
            else:
                batch.append(item)
        if stop:   # closing: take whatever is still queued
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    batch.append(item)
        return batch, stop

    def _run(self) -> None:
        while True:
            batch, stop = self._take_batch()
            if batch:
                self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Item]) -> None:
        data = b"".join(item.data for item in batch)
        try:
            if self._size and self._size + len(data) > self.segment_bytes:
                self._start_segment(self._seq + 1)
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            started = time.perf_counter()
            os.fsync(self._fd)
            fsync_s = time.perf_counter() - started
        except BaseException as exc:   # noqa: BLE001 - every waiter must hear of it
            for item in batch:
                item.done(None, exc)
            return
        self._size += len(data)
        self.position = (self._seq, self._size)
        count = sum(item.n for item in batch)
        self._last_batch = len(batch)
        self.records += count
        if self.on_batch is not None:
            self.on_batch(count, fsync_s)
        if self.on_commit is not None:
            self.on_commit([x for item in batch for x in item.items], self.position)
        for item in batch:
            item.done(self.position, None)

    # -- retention -------------------------------------------------------------------
    def drop_before(self, position: Position) -> list[Path]:
        """Delete whole segments that end at or before ``position`` (compacted), never
        the one being written."""
        gone = []
        for seq, path in segments(self.folder):
            if seq < position[0] and seq != self._seq:
                path.unlink(missing_ok=True)
                gone.append(path)
        return gone
