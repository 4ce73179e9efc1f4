"""Alerts from a stream's aggregates: the detectors on CTR and every upstream signal,
and the cause ranking of every CTR change.

Signals watched (each a count out of the minute's requests, see
:mod:`analysis.streaming.detectors`):

* ``ctr``: clicks;
* each feature ``f``: requests whose value of ``f`` was null or stale (older than the
  reference's 99th percentile age);
* ``latency``: lookups slower than the reference's 99th percentile;
* ``score``: scores at or below the reference's median;
* ``segment_mix``: each segment's requests (one detector per segment).

The *reference* (stale and slow thresholds, score median) comes from a baseline
recording when one is given, else from the stream's first :data:`WARMUP` minutes. A
baseline of at least :data:`PROFILE_HOURS` hours also gives each signal a time-of-day
profile (its rate per :data:`SLOT_MINUTES`-minute slot relative to its mean), so a
rhythm sharper than the detectors' trend can follow (a shop that opens at nine) is not
an alarm either.

Everything is computed as it would have been live: an alert raised at minute ``m`` used
only minutes up to ``m`` (its ``detected_at`` is the end of that minute), and its causes
only the upstream alarms raised by then.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from analysis.streaming.causes import rank_causes
from analysis.streaming.detectors import Alarm, Design, cusum
from analysis.streaming.events import LATENCY_SIGNAL, SCORE_SIGNAL, SEGMENT_MIX
from analysis.streaming.minutes import (MinuteCube, Reference, categories,
                                        reference_from)

CTR = "ctr"
#: minutes at the start of a stream that set the reference when no baseline is given
WARMUP = 15
#: a baseline this long (hours) gives time-of-day profiles
PROFILE_HOURS = 23
SLOT_MINUTES = 15
#: least events of a signal per slot for the slot's own profile value (fewer: 1)
PROFILE_MIN_EVENTS = 200
#: tuned to a 10 % change of CTR; upstream shares by a third of their level or 0.5 points
CTR_DESIGN = Design(relative=0.10, absolute=0.0, threshold=12.0)
#: a second CTR design for smaller, slower-to-prove changes (a bank of two CUSUMs)
CTR_SMALL_DESIGN = Design(relative=0.04, absolute=0.0, threshold=14.0)
UPSTREAM_DESIGN = Design(relative=1 / 3, absolute=0.005, threshold=14.0)
#: two segment-mix alarms less than this many minutes apart are one change
MERGE_MINUTES = 10


@dataclass
class Series:
    """One watched count: ``x`` out of ``n`` per minute."""

    signal: str
    detail: str
    x: np.ndarray
    n: np.ndarray
    rate_name: str


@dataclass
class Alert:
    """A detected change of one signal (times as ISO strings, UTC)."""

    signal: str
    detected_at: str
    start: str
    magnitude: float              # relative change of the watched rate
    before: float                 # the baseline rate over the changed minutes
    after: float                  # the observed rate over them
    direction: str                # "up" or "down"
    confidence: float
    z: float
    statistic: float
    rate: str                     # what the rate is
    detail: str = ""
    ranked_causes: list[str] = field(default_factory=list)
    evidence: list[dict] = field(default_factory=list)
    start_minute: int = 0
    detected_minute: int = 0

    def as_dict(self) -> dict:
        out = asdict(self)
        for key in ("start_minute", "detected_minute"):
            out.pop(key)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in out.items()}


def watched_series(cube: MinuteCube, reference: Reference) -> list[Series]:
    """Every count the detectors watch (see the module docstring)."""
    n_seg, c_seg = cube.totals()
    n = n_seg.sum(1).astype(float)
    out = [Series(CTR, "", c_seg.sum(1).astype(float), n, "clicks per request")]
    for f in cube.features:
        cn, _, names = categories(cube, reference, f)
        out.append(Series(f, "", cn[:, :, 1:].sum(axis=(1, 2)), n, f"share of {f} null or stale"))
    cn, _, names = categories(cube, reference, LATENCY_SIGNAL)
    out.append(Series(LATENCY_SIGNAL, "", cn[:, :, len(names) - 2].sum(1), n,
                      "share of lookups slower than the reference's p99"))
    cn, _, names = categories(cube, reference, SCORE_SIGNAL)
    out.append(Series(SCORE_SIGNAL, "", cn[:, :, :5].sum(axis=(1, 2)), n,
                      "share of scores at or below the reference's median"))
    for k, seg in enumerate(cube.segments):
        out.append(Series(SEGMENT_MIX, seg, n_seg[:, k].astype(float), n,
                          f"share of segment {seg}"))
    return out


def time_of_day_profile(baseline: MinuteCube, baseline_series: Series,
                        minutes: np.ndarray) -> np.ndarray | None:
    """A signal's rate per time-of-day slot in the baseline over its mean, read at
    ``minutes``; None when the baseline is shorter than :data:`PROFILE_HOURS`."""
    if baseline.size < PROFILE_HOURS * 60:
        return None
    slots = 24 * 60 // SLOT_MINUTES
    tod = _slot(baseline.minutes)
    x = np.bincount(tod, weights=baseline_series.x, minlength=slots)
    n = np.bincount(tod, weights=baseline_series.n, minlength=slots)
    mean = baseline_series.x.sum() / max(baseline_series.n.sum(), 1)
    if mean <= 0:
        return None
    ratio = np.divide(x, n * mean, out=np.ones(slots), where=n > 0)
    ratio = np.where(x >= PROFILE_MIN_EVENTS, ratio, 1.0)
    return ratio[_slot(minutes)]


def _slot(minutes: np.ndarray) -> np.ndarray:
    of_day = (minutes - minutes.astype("datetime64[D]")) // np.timedelta64(1, "m")
    return (of_day // SLOT_MINUTES).astype(np.int64)


def _iso(minute: np.datetime64) -> str:
    return pd.Timestamp(minute).isoformat()


def _to_alert(series: Series, alarm: Alarm, cube: MinuteCube) -> Alert:
    return Alert(signal=series.signal, detail=series.detail,
                 detected_at=_iso(cube.minutes[alarm.detected] + np.timedelta64(1, "m")),
                 start=_iso(cube.minutes[alarm.start]), magnitude=float(alarm.magnitude),
                 before=alarm.before, after=alarm.after,
                 direction="up" if alarm.direction > 0 else "down",
                 confidence=alarm.confidence, z=alarm.z, statistic=alarm.statistic,
                 rate=series.rate_name, start_minute=alarm.start,
                 detected_minute=alarm.detected)


def _merge_mix(alerts: list[Alert]) -> list[Alert]:
    """One segment-mix alert per change (each segment has its own detector)."""
    kept: list[Alert] = []
    for a in sorted(alerts, key=lambda a: a.detected_minute):
        if a.signal == SEGMENT_MIX and any(
                k.signal == SEGMENT_MIX and abs(k.start_minute - a.start_minute) <= MERGE_MINUTES
                for k in kept):
            continue
        kept.append(a)
    return kept


def detect_alerts(cube: MinuteCube, baseline: MinuteCube | None = None,
                  ctr_design: Design | tuple[Design, ...] = (CTR_DESIGN, CTR_SMALL_DESIGN),
                  upstream_design: Design = UPSTREAM_DESIGN) -> tuple[list[Alert], dict]:
    """All alerts of a stream, CTR's with their ranked causes.

    Returns the alerts (sorted by detection time) and what the detectors saw: per
    watched series its name, rate and baseline (for the charts)."""
    if baseline is not None:
        reference = reference_from(baseline)
        begin = 0
    else:
        if cube.size <= WARMUP:
            raise ValueError(f"the stream spans {cube.size} minute(s): at least "
                             f"{WARMUP + 1} are needed without a baseline (the first "
                             f"{WARMUP} set the reference)")
        reference = reference_from(cube, 0, WARMUP)
        begin = WARMUP
    base_series = ({(s.signal, s.detail): s for s in watched_series(baseline, reference)}
                   if baseline is not None else {})
    alerts, seen = [], {}
    for s in watched_series(cube, reference):
        key = (s.signal, s.detail)
        profile = (time_of_day_profile(baseline, base_series[key], cube.minutes)
                   if key in base_series else None)
        design = ctr_design if s.signal == CTR else upstream_design
        alarms, expected = cusum(s.x, s.n, design, profile=profile, begin=begin)
        seen[key] = {"signal": s.signal, "detail": s.detail, "rate": s.rate_name,
                     "x": s.x, "n": s.n, "expected": expected}
        alerts.extend(_to_alert(s, a, cube) for a in alarms)
    alerts = _merge_mix(alerts)
    for alert in alerts:
        if alert.signal == CTR:
            _attach_causes(alert, alerts, cube, reference)
    alerts.sort(key=lambda a: (a.detected_minute, a.signal != CTR))
    return alerts, {"reference": reference, "series": seen}


def _attach_causes(alert: Alert, alerts: list[Alert], cube: MinuteCube,
                   reference: Reference) -> None:
    known = cube.slice(alert.detected_minute + 1)
    starts: dict[str, int] = {}
    for other in alerts:
        if other.signal != CTR and other.detected_minute <= alert.detected_minute:
            # the upstream alarm nearest the CTR change stands for the signal
            prev = starts.get(other.signal)
            if prev is None or abs(other.start_minute - alert.start_minute) < abs(prev - alert.start_minute):
                starts[other.signal] = other.start_minute
    change = alert.after - alert.before
    names, evidence = rank_causes(known, reference, alert.start_minute,
                                  alert.detected_minute, change, starts)
    alert.ranked_causes = names
    alert.evidence = [_evidence_dict(e, cube) for e in evidence]


def _evidence_dict(e, cube: MinuteCube) -> dict:
    return {"signal": e.signal, "role": e.role, "explained": e.explained,
            "explained_se": e.explained_se, "share_of_change": e.share_of_change,
            "affected": e.affected, "affected_before": e.affected_before,
            "affected_after": e.affected_after, "change_z": e.change_z,
            "ctr_affected": e.ctr_affected, "ctr_unaffected": e.ctr_unaffected,
            "alarm_start": None if e.alarm_start is None else _iso(cube.minutes[e.alarm_start])}
