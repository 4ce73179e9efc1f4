"""Compaction: logged rows into the store's snapshots, in a background thread.

The write-ahead log makes a row durable; compaction makes it *visible*: every
``interval`` seconds the rows committed since the last pass become one production
snapshot of the dataset (Parquet written under a temporary name and renamed, the
manifest last, exactly as :meth:`analysis.store.Store.add_snapshot` writes any
snapshot), and the labels that arrived become one label part. The dashboard and the
command line read them like any snapshot, while the service keeps answering: serving
only appends to an in-memory list under a lock held for microseconds.

Exactly once
------------
Each snapshot's manifest records the log position it covers (``meta["wal"]``), in the
same atomic rename that publishes its rows, and after every pass ``checkpoint.json`` in
the log's folder records the position up to which everything was consumed. On restart
the log is replayed from the larger of the two, per kind (predictions, labels), so a
row is compacted once however often the service stops; rows whose ``request_id`` the
store already holds are dropped as well (:func:`recover`).

Roll-ups
--------
Small snapshots are merged so that a service running for days leaves tens of files,
not tens of thousands: when :data:`FANOUT` snapshots of one level exist, the oldest
:data:`FANOUT` become one snapshot of the next level (up to :data:`MAX_ROLLUP_ROWS`
rows), whose manifest ``replaces`` them; readers see the parts or the merged snapshot,
never both, and the parts' files are deleted :data:`GRACE` seconds later.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analysis.queries import parquet_source, quote
from analysis.serving import wal as wallib
from analysis.store import Store

FANOUT = 16
MAX_ROLLUP_ROWS = 2_000_000
GRACE = 30.0
KIND = "_k"             # record kind in a log payload: "p" prediction, "f" feedback
PREDICTION, FEEDBACK = "p", "f"


def _pos(value) -> tuple:
    return tuple(value) if value else wallib.START


def read_checkpoint(folder: Path) -> dict[str, tuple]:
    try:
        raw = json.loads((folder / "checkpoint.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {PREDICTION: wallib.START, FEEDBACK: wallib.START}
    return {PREDICTION: _pos(raw.get("predictions")), FEEDBACK: _pos(raw.get("labels"))}


def write_checkpoint(folder: Path, predictions: tuple, labels: tuple) -> None:
    path = folder / "checkpoint.json"
    tmp = folder / ".checkpoint.json.tmp"
    with open(tmp, "w") as fh:
        json.dump({"predictions": list(predictions), "labels": list(labels)}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def checkpoints(store: Store, dataset: str, wal_folder: Path) -> dict[str, tuple]:
    """Per kind, the log position up to which rows are in the store."""
    cp = read_checkpoint(wal_folder)
    for snap in store.snapshots(dataset, "production"):
        cp[PREDICTION] = max(cp[PREDICTION], _pos(snap.meta.get("wal")))
    for part in store.labels(dataset):
        cp[FEEDBACK] = max(cp[FEEDBACK], _pos(part.meta.get("wal")))
    return cp


def stored_ids(files: list[Path], column: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` the Parquet ``files`` hold in ``column``."""
    if not files or not ids:
        return set()
    with duckdb.connect() as con:
        con.register("wanted", pa.table({"id": pa.array(ids, pa.string())}))
        rows = con.execute(f"SELECT DISTINCT {quote(column)} FROM {parquet_source(files)} "
                           f"WHERE {quote(column)} IN (SELECT id FROM wanted)").fetchall()
    return {r[0] for r in rows}


def pending_records(store: Store, dataset: str, wal_folder: Path) -> tuple[list[dict], list[dict], tuple]:
    """Rows logged but not yet in the store: (predictions, labels, log end), read
    without touching the log (safe while a service writes it)."""
    cp = checkpoints(store, dataset, wal_folder)
    preds, labels, end = [], [], min(cp.values())
    for payload, pos in wallib.read_records(wal_folder, min(cp.values())):
        rec = json.loads(payload)
        kind = rec.pop(KIND, PREDICTION)
        if pos > cp[kind]:
            (preds if kind == PREDICTION else labels).append(rec)
        end = pos
    return preds, labels, end


def recover(store: Store, dataset: str, wal_folder: Path, id_column: str
            ) -> tuple[list[dict], list[dict], tuple]:
    """The logged rows the store lacks, to compact before serving: those after the
    checkpoints, less any whose id the store already holds (and repeats)."""
    preds, labels, end = pending_records(store, dataset, wal_folder)
    have = stored_ids(store.files(dataset, "production"), id_column,
                      [r[id_column] for r in preds])
    seen: set[str] = set()
    kept = []
    for r in preds:
        if r[id_column] not in have and r[id_column] not in seen:
            seen.add(r[id_column])
            kept.append(r)
    return kept, labels, end


class Compactor:
    """Turns committed log records into snapshots (see the module docstring).

    ``accept(items, position)`` is the log's ``on_commit``: items are ``(kind, row)``
    pairs. ``run_once()`` does one pass; ``start()`` runs passes every ``interval``
    seconds in a daemon thread until ``stop()``, which does a last pass.
    """

    def __init__(self, store: Store, dataset: str, wal_folder: Path, schema: pa.Schema,
                 label_schema: pa.Schema, *, interval: float = 1.0, timestamp: str = "ts",
                 source: str = "model service",
                 on_pass: Callable[[int, int, int, int], None] | None = None,
                 drop_segments: Callable[[tuple], None] | None = None):
        self.store, self.dataset, self.wal_folder = store, dataset, Path(wal_folder)
        self.schema, self.label_schema = schema, label_schema
        self.interval, self.timestamp, self.source = float(interval), timestamp, source
        self.on_pass = on_pass     # (rows written, labels written, rows pending, labels pending)
        self.drop_segments = drop_segments
        self._lock = threading.Lock()
        self._preds: list[dict] = []
        self._labels: list[dict] = []
        self._position = wallib.START
        self._cp = {PREDICTION: wallib.START, FEEDBACK: wallib.START}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pass_lock = threading.Lock()
        self.errors = 0
        self.last_error: str = ""
        self.compacted_rows = 0
        self.compacted_labels = 0

    # -- intake ------------------------------------------------------------------
    def accept(self, items: list, position: tuple) -> None:
        with self._lock:
            for kind, row in items:
                (self._preds if kind == PREDICTION else self._labels).append(row)
            self._position = max(self._position, tuple(position))

    def pending(self) -> tuple[int, int]:
        with self._lock:
            return len(self._preds), len(self._labels)

    # -- passes ------------------------------------------------------------------
    def run_once(self) -> tuple[int, int]:
        """Compact what was committed so far; (rows, labels) written."""
        with self._pass_lock:
            with self._lock:
                preds, labels, position = self._preds, self._labels, self._position
                self._preds, self._labels = [], []
            wrote = (0, 0)
            try:
                wrote = self._write(preds, labels, position)
            except Exception as exc:   # noqa: BLE001 - keep the rows, retry next pass
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self._preds[:0] = preds
                    self._labels[:0] = labels
            if self.on_pass is not None:
                p, f = self.pending()
                self.on_pass(wrote[0], wrote[1], p, f)
            return wrote

    def _write(self, preds: list[dict], labels: list[dict], position: tuple) -> tuple[int, int]:
        if preds:
            table = pa.Table.from_pylist(preds, schema=self.schema)
            ts = table[self.timestamp]
            self.store.add_snapshot(
                self.dataset, "production", table, source=self.source, check_duplicate=False,
                meta={"level": 0, "wal": list(position),
                      "first": str(pc.min(ts).as_py()), "last": str(pc.max(ts).as_py())})
            self._cp[PREDICTION] = position
            self.compacted_rows += len(preds)
        if labels:
            table = pa.Table.from_pylist(labels, schema=self.label_schema)
            self.store.add_labels(self.dataset, table, source=self.source,
                                  meta={"level": 0, "wal": list(position)})
            self._cp[FEEDBACK] = position
            self.compacted_labels += len(labels)
        if position > min(self._cp.values()):
            # everything committed up to ``position`` is now in the store
            self._cp = {k: max(v, position) for k, v in self._cp.items()}
            write_checkpoint(self.wal_folder, self._cp[PREDICTION], self._cp[FEEDBACK])
            if self.drop_segments is not None:
                self.drop_segments(min(self._cp.values()))
        self.rollup()
        self.store.purge_replaced(self.dataset, GRACE)
        return len(preds), len(labels)

    def rollup(self) -> int:
        """Merge :data:`FANOUT` snapshots (and label parts) of a level into one of the
        next; returns how many merges were made."""
        merges = 0
        for parts, write in ((self.store.snapshots(self.dataset, "production"), self._merge_rows),
                             (self.store.labels(self.dataset), self._merge_labels)):
            levels: dict[int, list] = {}
            for s in parts:
                if "level" in s.meta and s.meta.get("wal"):
                    levels.setdefault(int(s.meta["level"]), []).append(s)
            for level, group in sorted(levels.items()):
                group.sort(key=lambda s: _pos(s.meta["wal"]))
                while len(group) >= FANOUT:
                    chunk, group = group[:FANOUT], group[FANOUT:]
                    if sum(s.rows for s in chunk) > MAX_ROLLUP_ROWS:
                        break
                    write(chunk, level + 1)
                    merges += 1
        return merges

    def _merged(self, chunk, level: int) -> tuple[pa.Table, dict]:
        table = pa.concat_tables([pq.read_table(s.path) for s in chunk], promote_options="default")
        meta = {"level": level, "replaces": [s.id for s in chunk],
                "wal": list(max(_pos(s.meta["wal"]) for s in chunk))}
        return table, meta

    def _merge_rows(self, chunk, level: int) -> None:
        table, meta = self._merged(chunk, level)
        table = table.take(pc.sort_indices(table, [(self.timestamp, "ascending")]))
        ts = table[self.timestamp]
        meta.update(first=str(pc.min(ts).as_py()), last=str(pc.max(ts).as_py()))
        self.store.add_snapshot(self.dataset, "production", table, source=self.source,
                                check_duplicate=False, meta=meta)

    def _merge_labels(self, chunk, level: int) -> None:
        table, meta = self._merged(chunk, level)
        self.store.add_labels(self.dataset, table, source=self.source, meta=meta)

    # -- the thread ----------------------------------------------------------------
    def start(self, checkpoints_now: dict[str, tuple] | None = None) -> "Compactor":
        if checkpoints_now:
            self._cp = dict(checkpoints_now)
            self._position = max(self._position, max(self._cp.values()))
        self._thread = threading.Thread(target=self._loop, name="compactor", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def stop(self) -> None:
        """Stop the thread after a last pass (everything committed is then stored)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.run_once()
        deadline = time.monotonic() + 5
        while any(self.pending()) and time.monotonic() < deadline:   # a failed write: retry
            time.sleep(0.2)
            self.run_once()
