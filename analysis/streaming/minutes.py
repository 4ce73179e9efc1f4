"""The aggregates as dense arrays over minutes, and the reference that turns bins into
categories (fresh, stale or null; quantile groups).

:class:`MinuteCube` holds, per signal, two arrays ``n[minute, segment, bin]`` and
``clicks[minute, segment, bin]`` over every minute from the first to the last (minutes
without events are zeros, so a quiet minute is seen as one). :class:`Reference` is what a
stretch of normal traffic says: each feature's stale-age threshold (its 99th percentile
age), the deciles of latency and score. Both are plain numbers; everything the detectors
and the cause ranking need is a sum over these arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.streaming.events import (LATENCY_SIGNAL, NULL_BIN, SCORE_SIGNAL, bin_edges,
                                       unit_of)

#: quantile of a feature's age (in the reference) above which a value is stale
STALE_QUANTILE = 0.99
#: cut points of the quantile groups of latency and score (deciles and the 99th)
GROUP_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
FRESH, STALE, NULL = 0, 1, 2
STATE_NAMES = ("fresh", "stale", "null")


@dataclass
class SignalCounts:
    """One signal's sums: ``n`` and ``clicks`` of shape (minutes, segments, bins)."""

    bins: np.ndarray
    n: np.ndarray
    clicks: np.ndarray


@dataclass
class MinuteCube:
    """Dense per-minute sums of an aggregate table (see the module docstring)."""

    minutes: np.ndarray              # datetime64[us], one per minute, consecutive
    segments: list[str]
    signals: dict[str, SignalCounts]
    features: list[str]

    @property
    def size(self) -> int:
        return len(self.minutes)

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        """Requests and clicks per minute and segment, shape (minutes, segments)."""
        counts = self.signals[LATENCY_SIGNAL]
        return counts.n.sum(axis=2), counts.clicks.sum(axis=2)

    def slice(self, stop: int) -> "MinuteCube":
        """The cube of the first ``stop`` minutes (what was known at that time)."""
        return MinuteCube(self.minutes[:stop], self.segments,
                          {k: SignalCounts(v.bins, v.n[:stop], v.clicks[:stop])
                           for k, v in self.signals.items()}, self.features)


def cube_from_aggregates(table: pa.Table | pd.DataFrame, features=None) -> MinuteCube:
    """Turn an aggregate table into a :class:`MinuteCube`.

    ``features`` fixes the feature signals (and their order); by default every signal
    other than latency and score is a feature."""
    frame = table.to_pandas() if isinstance(table, pa.Table) else table
    if frame.empty:
        raise ValueError("no events: the aggregates are empty")
    minute = frame["minute"].to_numpy().astype("datetime64[us]")
    first, last = minute.min(), minute.max()
    minutes = np.arange(first, last + np.timedelta64(1, "m"), np.timedelta64(1, "m"))
    m_index = ((minute - first) // np.timedelta64(1, "m")).astype(np.int64)
    segments = sorted(frame["segment"].astype(str).unique())
    s_index = pd.Index(segments).get_indexer(frame["segment"].astype(str))
    names = list(pd.unique(frame["signal"]))
    if features is None:
        features = [s for s in names if s not in (LATENCY_SIGNAL, SCORE_SIGNAL)]
    signals = {}
    for name in [LATENCY_SIGNAL, SCORE_SIGNAL, *features]:
        mask = (frame["signal"] == name).to_numpy()
        bins_raw = frame["bin"].to_numpy()[mask].astype(np.int64)
        bins = np.unique(np.append(bins_raw, NULL_BIN))
        b_index = np.searchsorted(bins, bins_raw)
        shape = (len(minutes), len(segments), len(bins))
        n = np.zeros(shape, dtype=np.int64)
        clicks = np.zeros(shape, dtype=np.int64)
        np.add.at(n, (m_index[mask], s_index[mask], b_index), frame["n"].to_numpy()[mask])
        np.add.at(clicks, (m_index[mask], s_index[mask], b_index),
                  frame["clicks"].to_numpy()[mask])
        signals[name] = SignalCounts(bins, n, clicks)
    return MinuteCube(minutes, segments, signals, list(features))


def _quantile_bin(bins: np.ndarray, counts: np.ndarray, q: float) -> int:
    """The bin holding the q-quantile of non-null values (NULL_BIN when none)."""
    keep = bins != NULL_BIN
    b, c = bins[keep], counts[keep]
    if c.sum() == 0:
        return NULL_BIN
    cdf = np.cumsum(c) / c.sum()
    return int(b[min(np.searchsorted(cdf, q - 1e-12), len(b) - 1)])


@dataclass
class Reference:
    """What normal traffic looks like: thresholds in bins, per signal.

    ``stale_bin[f]``: a value of ``f`` is stale when its age's bin is above it (the bin
    of the reference's :data:`STALE_QUANTILE` age). ``cuts[s]``: bins of the
    :data:`GROUP_QUANTILES` of latency and score; a value's group is the number of cuts
    below its bin (0 to len(cuts)), null values form one more group at the end.
    """

    stale_bin: dict[str, int]
    cuts: dict[str, np.ndarray]
    minutes: int
    requests: int

    def stale_age_s(self, feature: str) -> float:
        """The stale threshold of ``feature`` in seconds (the upper edge of its bin)."""
        return float(bin_edges([self.stale_bin[feature]], unit_of(feature))[1][0])

    def cut_values(self, signal: str) -> np.ndarray:
        return bin_edges(self.cuts[signal], unit_of(signal))[1]


def reference_from(cube: MinuteCube, start: int = 0, stop: int | None = None) -> Reference:
    """The :class:`Reference` of minutes ``[start, stop)`` of ``cube``."""
    stop = cube.size if stop is None else stop
    if stop <= start:
        raise ValueError("the reference period holds no minute")
    stale, cuts = {}, {}
    for f in cube.features:
        counts = cube.signals[f]
        stale[f] = _quantile_bin(counts.bins, counts.n[start:stop].sum(axis=(0, 1)),
                                 STALE_QUANTILE)
    for name in (LATENCY_SIGNAL, SCORE_SIGNAL):
        counts = cube.signals[name]
        total = counts.n[start:stop].sum(axis=(0, 1))
        cuts[name] = np.array([_quantile_bin(counts.bins, total, q) for q in GROUP_QUANTILES])
    requests = int(cube.signals[LATENCY_SIGNAL].n[start:stop].sum())
    return Reference(stale, cuts, stop - start, requests)


def categories(cube: MinuteCube, reference: Reference, signal: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A signal's counts grouped into categories: ``n`` and ``clicks`` of shape
    (minutes, segments, categories) and the categories' names.

    Features: fresh, stale, null. Latency and score: the reference's quantile groups
    (``"<= p10"``, ..., ``"> p99"``) and null."""
    counts = cube.signals[signal]
    bins = counts.bins
    if signal in reference.stale_bin:
        threshold = reference.stale_bin[signal]
        group = np.where(bins == NULL_BIN, NULL,
                         np.where((threshold != NULL_BIN) & (bins > threshold), STALE, FRESH))
        names = list(STATE_NAMES)
    else:
        cuts = reference.cuts[signal]
        group = np.searchsorted(cuts, bins, side="left")
        group = np.where(bins == NULL_BIN, len(cuts) + 1, group)
        labels = [f"p{round(q * 100)}" for q in GROUP_QUANTILES]
        names = ([f"<= {labels[0]}"] + [f"{a}-{b}" for a, b in zip(labels, labels[1:])]
                 + [f"> {labels[-1]}", "null"])
    k = len(names)
    onehot = np.zeros((len(bins), k))
    onehot[np.arange(len(bins)), group] = 1.0
    return counts.n @ onehot, counts.clicks @ onehot, names
