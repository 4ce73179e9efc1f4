"""A small seeded recommender stream for the stream page's tests: events in the event
schema of :mod:`analysis.streaming.events`, and a stream folder written by the real
ingest (:class:`analysis.streaming.ingest.StreamIngest`), part by part, optionally from a background thread. The events come from
the small generator here (its mechanism is known, so tests can count by hand) or from
the product's e-commerce simulator (:func:`simulated_events`).

The traffic: three segments with their own click rates; two features (``user_emb``,
``item_pop``) whose values are occasionally stale; clicks less likely when a feature is
stale or null; the score follows the click probability. A *null fault* makes a chosen
feature null for a share of the requests from a chosen minute on.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.scenarios.ecommerce import EcommerceSimulator, parse_fault
from analysis.streaming.ingest import StreamIngest, write_meta

START = pd.Timestamp("2026-01-05 10:00:00")
SEGMENTS = ("new", "returning", "mobile")
SEGMENT_SHARES = (0.3, 0.5, 0.2)
SEGMENT_CTR = {"new": 0.04, "returning": 0.07, "mobile": 0.05}
FEATURES = ("user_emb", "item_pop")
#: how much a stale or null value of each feature multiplies the click probability
STALE_FACTOR = {"user_emb": 0.8, "item_pop": 0.9}
NULL_FACTOR = {"user_emb": 0.35, "item_pop": 0.8}


@dataclass(frozen=True)
class NullFault:
    """``feature`` is null for ``share`` of the requests from minute ``at`` on."""

    feature: str = "user_emb"
    at: int = 40
    share: float = 0.6


def generate_events(minutes: int, rate: int = 1500, seed: int = 0, start=START,
                    first_minute: int = 0, fault: NullFault | None = NullFault()
                    ) -> pa.Table:
    """Events of minutes ``[first_minute, first_minute + minutes)`` after ``start``,
    about ``rate`` per minute (Poisson), in the event schema."""
    rng = np.random.default_rng([seed, first_minute])
    counts = rng.poisson(rate, minutes)
    n = int(counts.sum())
    minute = np.repeat(np.arange(first_minute, first_minute + minutes), counts)
    seconds = rng.uniform(0, 60, n)
    ts = (pd.Timestamp(start) + pd.to_timedelta(minute * 60 + seconds, unit="s")).to_numpy()
    segment = rng.choice(SEGMENTS, n, p=SEGMENT_SHARES)
    p = np.array([SEGMENT_CTR[s] for s in segment])
    columns = {}
    for f in FEATURES:
        age = rng.exponential(120.0, n)
        stale = rng.random(n) < 0.03
        age[stale] = rng.uniform(3_000, 20_000, stale.sum())
        null = rng.random(n) < 0.005
        if fault is not None and fault.feature == f:
            null |= (minute >= fault.at) & (rng.random(n) < fault.share)
        value = rng.normal(0, 1, n)
        value[null] = np.nan
        p = p * np.where(null, NULL_FACTOR[f], np.where(stale, STALE_FACTOR[f], 1.0))
        columns[f] = pa.array(value, mask=null)
        columns[f + "_age_s"] = pa.array(age)
    clicked = (rng.random(n) < p).astype(np.int8)
    score = np.clip(p * 10 + rng.normal(0, 0.05, n), 0.001, 0.999)
    latency = rng.lognormal(np.log(8.0), 0.4, n)
    order = np.argsort(ts, kind="stable")
    table = pa.table({
        "timestamp": pa.array(ts[order].astype("datetime64[us]")),
        "request_id": pa.array([f"r{seed}-{first_minute}-{i}" for i in range(n)]),
        "segment": pa.array(segment[order]),
        "clicked": pa.array(clicked[order]),
        "latency_ms": pa.array(latency[order]),
        "score": pa.array(score[order]),
        **{k: v.take(pa.array(order)) for k, v in columns.items()},
    })
    return table


def simulated_events(minutes: int, first_minute: int = 0, rate: float = 25.0, seed: int = 0,
                     fault: str | None = "null:user_affinity:0.8", fault_at: int = 40,
                     start=START) -> pa.Table:
    """The e-commerce simulator's events of minutes ``[first_minute, first_minute +
    minutes)`` after ``start`` (``rate`` requests per second), ``fault`` (its spec, see
    :func:`analysis.scenarios.ecommerce.parse_fault`) from minute ``fault_at``."""
    t0 = pd.Timestamp(start).to_pydatetime()
    faults = [parse_fault(fault, t0 + pd.Timedelta(minutes=fault_at))] if fault else []
    sim = EcommerceSimulator(seed=seed, rate=rate, start=t0, faults=faults)
    return sim.events(t0 + pd.Timedelta(minutes=first_minute),
                      t0 + pd.Timedelta(minutes=first_minute + minutes))


def write_part(folder: Path, events: pa.Table, index: int = 0) -> None:
    """Append ``events`` to the stream in ``folder`` through the real ingest (durable
    log, then a compaction into one part) and record the stream's meta.json."""
    if not (folder / "meta.json").exists():
        write_meta(folder, {"scenario": "test"})
    with StreamIngest(folder) as ingest:
        ingest.append(events)


def make_stream(store_root: Path, name: str = "shop", minutes: int = 60,
                minutes_per_part: int = 10, source=generate_events,
                **kwargs) -> tuple[Path, pa.Table]:
    """A stream folder ``<store_root>/streams/<name>`` of ``minutes`` minutes written in
    parts, events from ``source(minutes, first_minute=..., **kwargs)``; returns the
    folder and every event written."""
    folder = Path(store_root) / "streams" / name
    written = []
    for i, first in enumerate(range(0, minutes, minutes_per_part)):
        events = source(min(minutes_per_part, minutes - first), first_minute=first, **kwargs)
        write_part(folder, events, i)
        written.append(events)
    return folder, pa.concat_tables(written)


class StreamWriter(threading.Thread):
    """Appends one simulated minute of events to a stream folder every ``every``
    seconds until :meth:`stop` (then joined), events from ``source(1, first_minute=...,
    **kwargs)``. Starts after the folder's last part."""

    def __init__(self, folder: Path, first_minute: int, every: float = 1.0,
                 source=generate_events, **kwargs):
        super().__init__(daemon=True, name=f"stream-writer-{folder.name}")
        self.folder, self.minute, self.every = Path(folder), first_minute, every
        self.source, self.kwargs = source, kwargs
        self.written = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.wait(self.every):
                events = self.source(1, first_minute=self.minute, **self.kwargs)
                write_part(self.folder, events)
                self.minute += 1
                self.written += events.num_rows
        except BaseException as exc:       # surfaced by the test through .error
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(30)
