"""The service's work, as plain functions and one state object; the HTTP layer
(:mod:`analysis.serving.routers`) only translates.

Life of a prediction: the records (already validated) become a matrix, the model gives
class probabilities, the edge rule flags implausible values, each record gets a
``request_id`` and becomes one log row; the rows are handed to the write-ahead log and
the answer waits until their group commit's fsync returned. Only then is the id known to
``/feedback`` and the answer sent. The compactor thread later moves the rows into the
store; a drift thread updates the drift gauges from the most recent rows.
"""
from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.scenarios import iris
from analysis.serving import compaction
from analysis.serving.compaction import FEEDBACK, KIND, PREDICTION, Compactor
from analysis.serving.metrics import ServiceMetrics
from analysis.serving.schemas import FeedbackRecorded, Prediction, Record
from analysis.serving.wal import LogClosed, WriteAheadLog
from analysis.store import Store

SCENARIOS = ("iris",)
LABELLED_AT = "labelled_at"


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP code."""

    status = 400

    def __init__(self, reason: str, field: str = "body"):
        super().__init__(reason)
        self.reason, self.field = reason, field


class UnknownRequest(ServiceError):
    status = 404


class AlreadyLabelled(ServiceError):
    status = 409


class InvalidLabel(ServiceError):
    status = 422


class Unavailable(ServiceError):
    status = 503


@dataclass
class ServiceConfig:
    """How to run the service. Times in seconds."""

    store: Path
    scenario: str = "iris"
    commit_delay: float = 0.002      # group commit: wait at most this for more records
    compact_interval: float = 1.0    # rows reach the store's snapshots this often
    drift_interval: float = 10.0     # drift gauges recomputed this often
    drift_rows: int = 1000           # ... from this many most recent predictions
    id_memory: int = 1_000_000       # request ids kept in memory for /feedback


class RequestIndex:
    """Request id -> labelled?, for the most recent ``capacity`` predictions; older ids
    are looked up in the store (see :meth:`Service.lookup`)."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self._ids: OrderedDict[str, bool] = OrderedDict()

    def add(self, ids, labelled: bool = False) -> None:
        for i in ids:
            self._ids[i] = labelled
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def get(self, request_id: str) -> bool | None:
        """None: not in memory; else whether it has a label."""
        return self._ids.get(request_id)

    def set(self, request_id: str, labelled: bool) -> None:
        if request_id in self._ids:
            self._ids[request_id] = labelled
        else:
            self.add([request_id], labelled)

    def __len__(self) -> int:
        return len(self._ids)


def predict_rows(model: iris.LinearModel, X: np.ndarray, now_us: int,
                 ids: list[str]) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    """The log rows of a batch: (rows, probabilities, below, above), where below/above
    are the edge rule's flags per record and feature."""
    proba = model.predict_proba(X)
    best = proba.argmax(axis=1)
    below, above = model.ranges.violations(X, model.features)
    outside = below | above
    rows = []
    for i, rid in enumerate(ids):
        row = {iris.ID: rid, iris.TIMESTAMP: now_us}
        row.update(zip(model.features, X[i].tolist()))
        row[iris.PREDICTION] = model.classes[best[i]]
        row[iris.TARGET] = None
        row.update(zip((iris.probability_column(c) for c in model.classes), proba[i].tolist()))
        row[iris.VERSION] = model.version
        row[iris.EDGE] = ",".join(f for f, o in zip(model.features, outside[i]) if o)
        rows.append(row)
    return rows, proba, below, above


def encode(kind: str, row: dict) -> bytes:
    """A log payload: the row as compact JSON with its kind."""
    return json.dumps({KIND: kind, **row}, separators=(",", ":")).encode()


def label_schema() -> pa.Schema:
    return pa.schema([(iris.ID, pa.string()), (iris.TARGET, pa.string()),
                      (LABELLED_AT, pa.timestamp("us"))])


class Service:
    """Model, log, compactor, metrics and the request index of one running service."""

    def __init__(self, config: ServiceConfig, metrics: ServiceMetrics | None = None,
                 say: Callable[[str], None] = print):
        if config.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {config.scenario!r}; choose one of "
                             f"{', '.join(SCENARIOS)}")
        self.config = config
        self.metrics = metrics or ServiceMetrics()
        self.say = say
        self.store = Store(config.store)
        self.dataset = iris.DATASET
        self.wal_folder = self.store.root / self.dataset / "wal"
        self.model: iris.LinearModel | None = None
        self.wal: WriteAheadLog | None = None
        self.compactor: Compactor | None = None
        self.index = RequestIndex(config.id_memory)
        self.recent: deque = deque(maxlen=config.drift_rows)
        self.started = time.monotonic()
        self.draining = False
        self.rows_logged = 0
        self._stop = threading.Event()
        self._drift_thread: threading.Thread | None = None
        self._profile = None
        self._reference_shares = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> "Service":
        """Load or train the model, put logged rows the store lacks into it, open the log
        and start the background threads."""
        self.model = iris.prepare(self.store, say=self.say)
        m = self.metrics
        m.info.labels(self.model.version, self.dataset).set(1)
        self.compactor = Compactor(
            self.store, self.dataset, self.wal_folder, iris.row_schema(), label_schema(),
            interval=self.config.compact_interval, timestamp=iris.TIMESTAMP,
            source=f"served by {self.model.version}", on_pass=self._on_pass)
        self.wal_folder.mkdir(parents=True, exist_ok=True)
        preds, labels, end = compaction.recover(self.store, self.dataset, self.wal_folder, iris.ID)
        if preds or labels:
            self.compactor.accept([(PREDICTION, r) for r in preds] +
                                  [(FEEDBACK, r) for r in labels], end)
            self.compactor.run_once()
            self.say(f"replayed the log: {len(preds):,} prediction(s) and {len(labels):,} "
                     f"label(s) into the store")
        cp = compaction.checkpoints(self.store, self.dataset, self.wal_folder)
        self.wal = WriteAheadLog(self.wal_folder, commit_delay=self.config.commit_delay,
                                 on_commit=self._on_commit, on_batch=self._on_batch).open()
        self.compactor.drop_segments = self.wal.drop_before
        self.compactor.start(cp)
        self._load_reference()
        self._drift_thread = threading.Thread(target=self._drift_loop, name="drift",
                                              daemon=True)
        self._drift_thread.start()
        # the libraries loaded so far (scikit-learn, pandas, scipy...) are hundreds of
        # thousands of objects that never die: keep them out of the garbage collector's
        # full passes, which otherwise pause every request for tens of milliseconds
        gc.collect()
        gc.freeze()
        return self

    def stop(self) -> None:
        """Drain: refuse new work, make everything queued durable, compact it all."""
        self.draining = True
        if self.wal is not None:
            self.wal.close()
        self._stop.set()
        if self.compactor is not None:
            self.compactor.stop()
        if self._drift_thread is not None:
            self._drift_thread.join(timeout=10)
        self.say(f"stopped: {self.compactor.compacted_rows if self.compactor else 0:,} "
                 "prediction(s) compacted this run; nothing pending")

    # -- callbacks from the writer and compactor threads -------------------------------
    def _on_commit(self, items: list, position: tuple) -> None:
        self.compactor.accept(items, position)
        n_pred = 0
        for kind, row in items:
            if kind == PREDICTION:
                n_pred += 1
                self.recent.append(row)
        if n_pred:
            self.rows_logged += n_pred
            self.metrics.rows_logged.inc(n_pred)
        if len(items) - n_pred:
            self.metrics.labels_logged.inc(len(items) - n_pred)
        p, f = self.compactor.pending()
        self.metrics.rows_pending.set(p)
        self.metrics.labels_pending.set(f)

    def _on_batch(self, records: int, fsync_s: float) -> None:
        self.metrics.wal_batch.observe(records)
        self.metrics.wal_fsync.observe(fsync_s)

    def _on_pass(self, rows: int, labels: int, pending_rows: int, pending_labels: int) -> None:
        if rows:
            self.metrics.rows_compacted.inc(rows)
        self.metrics.rows_pending.set(pending_rows)
        self.metrics.labels_pending.set(pending_labels)
        errors = self.compactor.errors if self.compactor else 0
        seen = getattr(self, "_errors_seen", 0)
        if errors > seen:
            self.metrics.compaction_errors.inc(errors - seen)
            self._errors_seen = errors

    # -- drift gauges ------------------------------------------------------------------
    def _load_reference(self) -> None:
        from analysis.drift import ReferenceProfile
        from analysis.queries import load_frame
        features = {f: "numeric" for f in self.model.features}
        ref = load_frame(self.store, self.dataset, "reference",
                         [*self.model.features, iris.PREDICTION])
        if len(ref):
            self._profile = ReferenceProfile(ref, features)
            shares = ref[iris.PREDICTION].value_counts()
            self._reference_shares = shares.reindex(self.model.classes, fill_value=0).to_numpy(float)

    def update_drift(self) -> None:
        """Set the drift gauges from the most recent predictions (at least 50)."""
        from analysis.stats import jensenshannon_distance
        rows = list(self.recent)
        if self._profile is None or len(rows) < 50:
            return
        frame = pd.DataFrame(rows)
        table = self._profile.table(frame[self.model.features])
        for r in table.itertuples(index=False):
            if r.statistic is not None and np.isfinite(r.statistic):
                self.metrics.input_drift.labels(r.feature, r.test).set(r.statistic)
            if r.p_value is not None and np.isfinite(r.p_value):
                self.metrics.input_drift_p.labels(r.feature, r.test).set(r.p_value)
        counts = frame[iris.PREDICTION].value_counts().reindex(self.model.classes, fill_value=0)
        self.metrics.prediction_drift.labels("jensenshannon").set(
            jensenshannon_distance(self._reference_shares, counts.to_numpy(float)))
        self.metrics.drift_rows.set(len(rows))

    def _drift_loop(self) -> None:
        while not self._stop.wait(self.config.drift_interval):
            try:
                self.update_drift()
            except Exception as exc:   # noqa: BLE001 - a gauge must not stop the service
                self.say(f"drift gauges not updated: {exc}")

    # -- requests --------------------------------------------------------------------
    async def predict(self, records: list[Record]) -> list[Prediction]:
        """Answer ``records``; returns after their rows are durable in the log."""
        if self.draining or self.wal is None or self.wal.closed:
            raise Unavailable("the service is shutting down")
        model = self.model
        X = np.array([[getattr(r, f) for f in model.features] for r in records], dtype=float)
        ids = [uuid.uuid4().hex for _ in records]
        rows, proba, below, above = predict_rows(model, X, time.time_ns() // 1000, ids)
        try:
            await self.wal.commit([encode(PREDICTION, r) for r in rows],
                                  [(PREDICTION, r) for r in rows])
        except LogClosed:
            raise Unavailable("the service is shutting down") from None
        self.index.add(ids)
        m = self.metrics
        out = []
        for i, row in enumerate(rows):
            m.predictions.labels(model.version, row[iris.PREDICTION]).inc()
            edge = row[iris.EDGE].split(",") if row[iris.EDGE] else []
            if edge:
                m.edge_rows.inc()
                for j, f in enumerate(model.features):
                    if below[i, j]:
                        m.edge.labels(f, "below").inc()
                    elif above[i, j]:
                        m.edge.labels(f, "above").inc()
            out.append(Prediction(request_id=row[iris.ID], predicted_class=row[iris.PREDICTION],
                                  probabilities=dict(zip(model.classes, proba[i].tolist())),
                                  model_version=model.version, edge_violations=edge))
        return out

    def lookup(self, request_id: str) -> bool | None:
        """Whether an id the index no longer holds is in the store: None (unknown),
        False (no label yet) or True (labelled). Reads Parquet; run it off the loop."""
        files = self.store.files(self.dataset, "production")
        if not compaction.stored_ids(files, iris.ID, [request_id]):
            return None
        labels = [p.path for p in self.store.labels(self.dataset)]
        return bool(compaction.stored_ids(labels, iris.ID, [request_id]))

    async def feedback(self, request_id: str, label: str) -> FeedbackRecorded:
        """Record the true ``label`` of an earlier prediction (durably)."""
        if self.draining or self.wal is None or self.wal.closed:
            raise Unavailable("the service is shutting down")
        if label not in self.model.classes:
            raise InvalidLabel(f"unknown class {label!r}; one of: {', '.join(self.model.classes)}",
                               field="label")
        state = self.index.get(request_id)
        if state is None:
            state = await asyncio.get_running_loop().run_in_executor(None, self.lookup, request_id)
            if self.index.get(request_id):       # labelled meanwhile by another request
                state = True
        if state is None:
            raise UnknownRequest(f"no prediction with request_id {request_id!r}",
                                 field="request_id")
        if state:
            raise AlreadyLabelled(f"request {request_id!r} already has a label; a label is "
                                  "recorded once", field="request_id")
        self.index.set(request_id, True)   # before waiting: a second label now gets 409
        row = {iris.ID: request_id, iris.TARGET: label, LABELLED_AT: time.time_ns() // 1000}
        try:
            await self.wal.commit([encode(FEEDBACK, row)], [(FEEDBACK, row)])
        except BaseException:
            self.index.set(request_id, False)
            raise
        return FeedbackRecorded(request_id=request_id, label=label)

    def health(self) -> dict:
        p, _ = self.compactor.pending() if self.compactor else (0, 0)
        return {"status": "draining" if self.draining else "ok",
                "model_version": self.model.version if self.model else "",
                "dataset": self.dataset, "rows_logged": self.rows_logged,
                "rows_pending": p, "uptime_s": round(time.monotonic() - self.started, 3)}
