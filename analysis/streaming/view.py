"""What the Stream monitoring page shows, as plain tables: read a stream folder, run the
detectors on it, and lay out CTR, its baseline band, the upstream signals, the alerts,
the ranked causes of a CTR alert and a signal's drill-down.

Nothing here draws; :mod:`analysis.streaming.figures` turns these frames into charts.

A stream folder (``<store>/streams/<name>/``) holds ``aggregates/*.parquet`` parts in
the aggregate schema of :mod:`analysis.streaming.events` (one per ingest pass; parts may
overlap minutes, they are summed), optionally ``events/*.parquet`` (the raw events) and
``meta.json``. :func:`load_stream` is the one reader of the aggregates.

Rates are shown in percent; "points" are percentage points. Times are UTC, naive.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.streaming import events as ev
from analysis.streaming import causes as _causes
from analysis.streaming.causes import affected_label, affected_mask
from analysis.streaming.detect import (CTR, CTR_DESIGN, CTR_SMALL_DESIGN, UPSTREAM_DESIGN,
                                       WARMUP, Alert, detect_alerts, watched_series)
from analysis.streaming.detectors import GAP, WINDOW
from analysis.streaming.parts import read_aggregates
from analysis.streaming.parts import stream_status as read_stream_status
from analysis.streaming.minutes import (GROUP_QUANTILES, MinuteCube, Reference, categories,
                                        cube_from_aggregates, reference_from)

STREAMS = "streams"
#: the page's time ranges: minutes before the stream's newest minute (None: all)
RANGES = {"last hour": 60, "last 6 h": 360, "all": None}
#: minutes before the newest (complete) one over which events per second are counted
RATE_MINUTES = 5
#: the multiple of the binomial standard error drawn around the baseline
BAND_SE = 2.0
START_COMMAND = "python -m analysis stream --scenario ecommerce"
_MINUTE = np.timedelta64(1, "m")

METHOD = f"""**Baseline and band.** Each minute's expected CTR is forecast from minutes at
least {GAP} old: a line weighted by requests through the {WINDOW} minutes ending {GAP}
minutes earlier, so a change cannot hide in its own baseline. The band is that forecast
± {BAND_SE:g} binomial standard errors for the minute's requests, √(p(1 − p)/n): a quiet
minute has a wide band.

**Alerts.** Every signal has a two-sided binomial CUSUM against its forecast: each
minute adds the log-likelihood ratio of its count between "as forecast" and "moved by the
design shift" (CTR by {CTR_DESIGN.relative:.0%}, and by {CTR_SMALL_DESIGN.relative:.0%} in a
second sum that finds smaller changes more slowly; an upstream share by
{UPSTREAM_DESIGN.relative:.0%} of its level, at least {100 * UPSTREAM_DESIGN.absolute:g} points);
an alert is raised when the sum passes its threshold. Shaded: from the minute the
evidence began to accumulate (the change's start) to the minute that raised it. Without
a baseline recording the stream's first {WARMUP} minutes set what normal is: each
feature's stale age (its 99th percentile), latency's 99th percentile, the score's median.

**Ranked causes.** For a CTR alert, each upstream signal's requests are put in
categories (fresh, stale, null; quantile groups; segments) and the {_causes.BEFORE} minutes
before the change are compared with the minutes since. Within each segment, the part of
the CTR change the shift between categories accounts for is their change of share times
how their CTR differs from the segment's: *explained*. A signal explains the change when
that part has the change's sign, is at least {_causes.MIN_SHARE:.0%} of it and
{_causes.MIN_Z:g} standard errors from 0; the score, computed from the features, is then
a consequence. When nothing explains it, signals whose own share moved at the same time
are listed (aligned in time only). Only the change between the minutes before CTR's
change and the minutes from it to its detection counts, so a signal that changed hours
earlier (and stayed) or only after the detection is not a cause.

**Affected against unaffected CTR.** Within each segment the CTR of the group's
requests, then averaged over the segments with their share of all requests of those
minutes as weights: both lines carry the same segment mix, so a change of the mix does
not read as a difference between them."""


# -- the stream folder ----------------------------------------------------------------------
def streams_root(store_root) -> Path:
    return Path(store_root) / STREAMS


def list_streams(store_root) -> list[str]:
    """The streams of a store, the most recently written first."""
    root = streams_root(store_root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir()
             if p.is_dir() and not p.name.startswith(".")
             and ((p / "aggregates").is_dir() or (p / "meta.json").is_file())]
    return [p.name for p in sorted(found, key=lambda p: (-_written(p), p.name))]


def _written(folder: Path) -> float:
    parts = [p.stat().st_mtime for p in _parts(folder / "aggregates")]
    return max(parts, default=folder.stat().st_mtime)


def _parts(folder: Path) -> list[Path]:
    """Finished Parquet parts of a folder (a writer's hidden temporary files excluded)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))


def part_listing(folder) -> tuple:
    """(name, size, mtime_ns) of every aggregate and event part and of meta.json: a
    cache key that changes whenever the stream does."""
    folder = Path(folder)
    out = []
    for path in [*_parts(folder / "aggregates"), *_parts(folder / "events"),
                 folder / "meta.json"]:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out.append((str(path.relative_to(folder)), st.st_size, st.st_mtime_ns))
    return tuple(out)


def load_stream(folder) -> pa.Table:
    """The stream's aggregates, its parts summed (empty when there is none yet)."""
    return read_aggregates(folder)


def last_event_time(folder) -> pd.Timestamp | None:
    """The newest stored event's timestamp (None without)."""
    last = read_stream_status(folder).get("last_event")
    return pd.Timestamp(last) if last else None


# -- the analysed stream ------------------------------------------------------------------
@dataclass
class StreamView:
    """A stream as the page sees it: its per-minute cube, the detectors' alerts and
    what they watched, and its status."""

    name: str
    cube: MinuteCube | None
    reference: Reference | None
    alerts: list[Alert] = field(default_factory=list)
    series: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ctr_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.signal == CTR]


def analyse(aggregates: pa.Table, name: str = "", last_event=None) -> StreamView:
    """Run the detectors on a stream's aggregates (see :mod:`analysis.streaming.detect`).

    A stream of at most :data:`WARMUP` minutes has no alerts yet: its series are shown
    against no baseline and the reference is its minutes so far."""
    if aggregates.num_rows == 0:
        return StreamView(name, None, None, status=stream_status(None, last_event, []),
                          notes=["No events yet."])
    cube = cube_from_aggregates(aggregates)
    notes = []
    if cube.size > WARMUP:
        alerts, seen = detect_alerts(cube)
        reference, series = seen["reference"], seen["series"]
    else:
        alerts, reference = [], reference_from(cube)
        series = {(s.signal, s.detail): {"signal": s.signal, "detail": s.detail,
                                         "rate": s.rate_name, "x": s.x, "n": s.n,
                                         "expected": np.full(cube.size, np.nan)}
                  for s in watched_series(cube, reference)}
        notes.append(f"Alerts need more than {WARMUP} minutes of traffic (the first {WARMUP} "
                     f"set the reference): {cube.size} so far.")
    return StreamView(name, cube, reference, alerts, series,
                      stream_status(cube, last_event, alerts), notes)


def open_stream(folder) -> StreamView:
    """Read and analyse a stream folder."""
    folder = Path(folder)
    return analyse(load_stream(folder), folder.name, last_event_time(folder))


def stream_status(cube: MinuteCube | None, last_event, alerts) -> dict:
    """Events so far, events per second over the latest complete minutes, the newest
    event's time (else the end of the newest minute), alert counts."""
    ctr = sum(a.signal == CTR for a in alerts)
    out = {"events": 0, "events_per_s": None, "rate_minutes": 0, "first_minute": None,
           "last_minute": None, "last_event": None, "last_event_exact": False,
           "ctr_alerts": ctr, "upstream_alerts": len(alerts) - ctr}
    if cube is None:
        return out
    n = cube.totals()[0].sum(1)
    complete = n[:-1][-RATE_MINUTES:]
    out.update(events=int(n.sum()), first_minute=pd.Timestamp(cube.minutes[0]),
               last_minute=pd.Timestamp(cube.minutes[-1]), rate_minutes=len(complete))
    if len(complete):
        out["events_per_s"] = float(complete.sum()) / (60.0 * len(complete))
    if last_event is not None:
        out.update(last_event=pd.Timestamp(last_event), last_event_exact=True)
    else:
        out["last_event"] = pd.Timestamp(cube.minutes[-1] + _MINUTE)
    return out


def status_cards(view: StreamView) -> list[tuple[str, str, str]]:
    """(label, value, help) of the page's metric cards."""
    s = view.status
    rate = s["events_per_s"]
    last = s["last_event"]
    cards = [("Events", f"{s['events']:,}",
              "Requests in the stream so far" + (
                  f", from {s['first_minute']:%Y-%m-%d %H:%M} UTC" if s["first_minute"] is not None
                  else "")),
             ("Events/s", "—" if rate is None else f"{rate:,.1f}",
              f"Mean over the latest {s['rate_minutes']} complete minute(s) of stream time"
              if rate is not None else "Needs one complete minute")]
    if last is None:
        cards.append(("Last event (UTC)", "—", "No event yet"))
    else:
        cards.append((f"Last event (UTC, {last:%Y-%m-%d})",
                      f"{last:%H:%M:%S}" if s["last_event_exact"] else f"{last:%H:%M}",
                      "The newest event's timestamp" if s["last_event_exact"] else
                      "The end of the newest minute in the aggregates (no raw events kept)"))
    cards.append(("Alerts: CTR · upstream", f"{s['ctr_alerts']} · {s['upstream_alerts']}",
                  "Changes found by the detectors over the whole stream: on CTR, and on "
                  "its upstream signals (features null or stale, slow lookups, low scores, "
                  "segment mix)"))
    return cards


# -- time range ---------------------------------------------------------------------------
def range_start(view: StreamView, choice: str) -> pd.Timestamp | None:
    """The first minute shown for a :data:`RANGES` choice (relative to the stream's
    newest minute, so a replayed recording reads the same as a live stream)."""
    if view.cube is None:
        return None
    minutes = RANGES.get(choice)
    first = view.cube.minutes[0]
    if minutes is None:
        return pd.Timestamp(first)
    return pd.Timestamp(max(first, view.cube.minutes[-1] - (minutes - 1) * _MINUTE))


def time_window(view: StreamView, choice: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The x range of the charts: the first minute shown to the end of the newest."""
    start = range_start(view, choice)
    if start is None:
        return None
    return start, pd.Timestamp(view.cube.minutes[-1] + _MINUTE)


def _keep(frame: pd.DataFrame, start) -> pd.DataFrame:
    if start is None:
        return frame
    return frame[frame["minute"] >= start].reset_index(drop=True)


# -- CTR and upstream series -----------------------------------------------------------------
def _band(x, n, expected):
    """Observed rate, and the baseline ± BAND_SE binomial standard errors, all in %."""
    x, n, p = (np.asarray(a, float) for a in (x, n, expected))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n > 0, x / n, np.nan)
        se = np.where(n > 0, np.sqrt(p * (1 - p) / n), np.nan)
    low = np.clip(p - BAND_SE * se, 0, 1)
    high = np.clip(p + BAND_SE * se, 0, 1)
    return 100 * rate, 100 * p, 100 * low, 100 * high


def ctr_frame(view: StreamView, start=None) -> pd.DataFrame:
    """CTR per minute: requests, clicks, CTR, the detector's forecast baseline and its
    band (baseline ± 2 binomial standard errors for the minute's requests), in %."""
    s = view.series[(CTR, "")]
    ctr, exp, low, high = _band(s["x"], s["n"], s["expected"])
    frame = pd.DataFrame({"minute": pd.to_datetime(view.cube.minutes),
                          "requests": s["n"].astype(np.int64), "clicks": s["x"].astype(np.int64),
                          "ctr_pct": ctr, "expected_pct": exp, "low_pct": low,
                          "high_pct": high})
    return _keep(frame, start)


def signal_rows(view: StreamView) -> list[dict]:
    """The upstream rows of the timeline, in order: each feature's null-or-stale share,
    slow lookups, low scores, the segment mix. Each: signal, title, axis."""
    ref = view.reference
    rows = []
    for f in view.cube.features:
        rows.append({"signal": f, "axis": "null/stale (%)",
                     "title": f"{f}: requests whose value was null or older than "
                              f"{_seconds(ref.stale_age_s(f))} (the reference's p99 age)"})
    slow = ref.cut_values(ev.LATENCY_SIGNAL)[-1]
    rows.append({"signal": ev.LATENCY_SIGNAL, "axis": "slow (%)",
                 "title": f"latency: lookups slower than {slow:,.1f} ms (the reference's p99)"})
    median = ref.cut_values(ev.SCORE_SIGNAL)[GROUP_QUANTILES.index(0.5)]
    rows.append({"signal": ev.SCORE_SIGNAL, "axis": "low (%)",
                 "title": f"score: scores at or below {median:.3g} (the reference's median)"})
    rows.append({"signal": ev.SEGMENT_MIX, "axis": "share (%)",
                 "title": "segment mix: each segment's share of the requests"})
    return rows


def _seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:,.1f} h"
    if s >= 120:
        return f"{s / 60:,.0f} min"
    return f"{s:,.0f} s"


def upstream_frame(view: StreamView, start=None) -> pd.DataFrame:
    """Every upstream series per minute (long): minute, signal, detail (the segment of a
    segment-mix series), observed share and the detector's baseline, in %."""
    minutes = pd.to_datetime(view.cube.minutes)
    parts = []
    for (signal, detail), s in view.series.items():
        if signal == CTR:
            continue
        share, exp, low, high = _band(s["x"], s["n"], s["expected"])
        parts.append(pd.DataFrame({"minute": minutes, "signal": signal, "detail": detail,
                                   "requests": s["n"].astype(np.int64), "share_pct": share,
                                   "expected_pct": exp, "low_pct": low, "high_pct": high}))
    return _keep(pd.concat(parts, ignore_index=True), start)


def alert_frame(view: StreamView, start=None) -> pd.DataFrame:
    """One row per alert: which signal (and segment), when its change began and when it
    was detected, its direction and size, and a one-line description."""
    rows = []
    for i, a in enumerate(view.alerts):
        rows.append({"id": i, "signal": a.signal, "detail": a.detail,
                     "start": pd.Timestamp(a.start), "detected_at": pd.Timestamp(a.detected_at),
                     "direction": a.direction, "before_pct": 100 * a.before,
                     "after_pct": 100 * a.after, "magnitude_pct": 100 * a.magnitude,
                     "confidence": a.confidence, "text": alert_text(a)})
    cols = ["id", "signal", "detail", "start", "detected_at", "direction", "before_pct",
            "after_pct", "magnitude_pct", "confidence", "text"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["start"] = pd.to_datetime(frame["start"])
    frame["detected_at"] = pd.to_datetime(frame["detected_at"])
    if start is not None and len(frame):
        frame = frame[frame["detected_at"] > start].reset_index(drop=True)
    return frame


def alert_table(view: StreamView) -> pd.DataFrame:
    """Every alert for the page's table, the newest first."""
    frame = alert_frame(view)
    return pd.DataFrame({
        "signal": [("CTR" if s == CTR else s) for s in frame["signal"]],
        "segment": frame["detail"].replace("", "—"),
        "change from (UTC)": frame["start"].dt.strftime("%Y-%m-%d %H:%M"),
        "detected (UTC)": frame["detected_at"].dt.strftime("%Y-%m-%d %H:%M"),
        "direction": frame["direction"],
        "baseline (%)": frame["before_pct"], "observed (%)": frame["after_pct"],
        "change (%)": frame["magnitude_pct"], "confidence (%)": 100 * frame["confidence"],
    }).iloc[::-1].reset_index(drop=True)


def alert_id(a: Alert) -> str:
    """A CTR alert's identity across refreshes (detection is causal: an alert, once
    raised, keeps its dates as the stream grows)."""
    return f"{a.signal}/{a.detail}/{a.start}/{a.detected_at}"


def _name(a: Alert) -> str:
    if a.signal == CTR:
        return "CTR"
    return f"segment {a.detail} share" if a.signal == ev.SEGMENT_MIX else a.signal


def alert_text(a: Alert) -> str:
    """E.g. "CTR fell 31 % (5.70 % → 3.93 %) from 10:40, detected 10:47 UTC"; an
    upstream share's change in points ("user_emb rose 58.1 points (1.4 % → 59.5 %)")."""
    verb = "rose" if a.direction == "up" else "fell"
    if a.signal != CTR:
        size = f" {abs(100 * (a.after - a.before)):,.1f} points"
    else:
        size = "" if not math.isfinite(a.magnitude) else f" {abs(100 * a.magnitude):,.0f} %"
    return (f"{_name(a)} {verb}{size} ({_pct(a.before)} → {_pct(a.after)}) from "
            f"{pd.Timestamp(a.start):%H:%M}, detected {pd.Timestamp(a.detected_at):%H:%M} UTC")


def _pct(x: float, digits: int = 2) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f} %"


# -- causes -----------------------------------------------------------------------------------
#: a role in the causes table, and what it means (its column's help)
ROLES = {"explains": "explains", "aligned": "aligned in time", "downstream": "consequence",
         "": "—"}
ROLE_HELP = ("explains: accounts for at least a fifth of the change, significantly · aligned "
             "in time: nothing explains the change, this changed in the same minutes · "
             "consequence: the score, computed from a feature that explains the change · "
             "—: no evidence")
#: a short name of each signal's affected requests (features: "null or stale")
AFFECTED_SHORT = {ev.LATENCY_SIGNAL: "slow (> p99)", ev.SCORE_SIGNAL: "low (≤ median)"}
LATEST = "latest"


def alert_choices(view: StreamView) -> list[tuple[str, str]]:
    """(:func:`alert_id`, label) of every CTR alert, the newest first."""
    return [(alert_id(a), alert_text(a)) for a in reversed(view.alerts) if a.signal == CTR]


def find_alert(view: StreamView, key: str) -> Alert | None:
    """The alert of an :func:`alert_id` (:data:`LATEST`: the latest CTR alert)."""
    if key == LATEST:
        return latest_ctr_alert(view)
    return next((a for a in view.alerts if alert_id(a) == key), None)


def latest_ctr_alert(view: StreamView) -> Alert | None:
    alerts = view.ctr_alerts
    return max(alerts, key=lambda a: a.detected_minute) if alerts else None


def alert_summary(a: Alert) -> str:
    """The alert in one paragraph: what changed, when, how sure, and its ranked causes."""
    text = f"**{alert_text(a)}**, confidence {100 * a.confidence:.2f} %."
    ranked = [e for e in a.evidence if e["signal"] in a.ranked_causes]
    if not ranked:
        return text + " No upstream signal explains it or changed with it."
    top = ranked[0]
    why = (f"explains {100 * top['share_of_change']:.0f} % of the change"
           if top["role"] == "explains" else "changed at the same time")
    rest = ", ".join(f"`{e['signal']}`" for e in ranked[1:])
    return (text + f" Most likely cause: `{top['signal']}` ({why}; {top['affected']}: "
            f"{_pct(top['affected_before'], 1)} → {_pct(top['affected_after'], 1)} of "
            "requests)" + (f", then {rest}." if rest else "."))


def causes_table(a: Alert) -> pd.DataFrame:
    """The evidence of every upstream signal for a CTR alert, ranked causes first:
    rank, role (:data:`ROLES`), the CTR change it explains (points, ± its standard
    error, and as a share of the observed change), its affected requests and their share
    before → after, the CTR of affected and of unaffected requests since the change
    (segment-weighted), and when its own alarm began."""
    rows = []
    for e in a.evidence:
        ranked = e["signal"] in a.ranked_causes
        rows.append({
            "rank": str(a.ranked_causes.index(e["signal"]) + 1) if ranked else "",
            "signal": e["signal"], "role": ROLES.get(e["role"], e["role"]),
            "explained (points)": 100 * e["explained"],
            "± (points)": 100 * e["explained_se"],
            "share of change (%)": 100 * e["share_of_change"],
            "affected": (e["affected"] if e["signal"] == ev.SEGMENT_MIX
                         else AFFECTED_SHORT.get(e["signal"], e["affected"])),
            "affected share": f"{_pct(e['affected_before'], 1)} → {_pct(e['affected_after'], 1)}",
            "CTR affected vs unaffected": (f"{_pct(e['ctr_affected'])} vs "
                                           f"{_pct(e['ctr_unaffected'])}"),
            "CTR affected (%)": 100 * e["ctr_affected"],
            "CTR unaffected (%)": 100 * e["ctr_unaffected"],
            "own alarm from (UTC)": (f"{pd.Timestamp(e['alarm_start']):%H:%M}"
                                     if e.get("alarm_start") else "—"),
        })
    return pd.DataFrame(rows)


# -- drill-down ----------------------------------------------------------------------------------
def signal_choices(view: StreamView) -> list[tuple[str, str]]:
    """(signal, label) of every upstream signal the drill-down can show."""
    out = [(f, f"{f} (feature: fresh, stale, null)") for f in view.cube.features]
    out += [(ev.LATENCY_SIGNAL, "latency (lookup time groups)"),
            (ev.SCORE_SIGNAL, "score (score groups)"),
            (ev.SEGMENT_MIX, "segment mix")]
    return out


def _grouped(view: StreamView, signal: str):
    """n and clicks of shape (minutes, segments, categories) and the categories."""
    if signal == ev.SEGMENT_MIX:
        n, c = view.cube.totals()
        k = len(view.cube.segments)
        eye = np.eye(k)
        return n[:, :, None] * eye, c[:, :, None] * eye, list(view.cube.segments)
    n3, c3, names = categories(view.cube, view.reference, signal)
    return n3, c3, names


def _blocks(view: StreamView, start, every: int) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Each minute's block of ``every`` minutes counted from ``start`` (-1 before it),
    and the blocks' first minutes."""
    minutes = pd.to_datetime(view.cube.minutes)
    first = minutes[0] if start is None else max(pd.Timestamp(start), minutes[0])
    offset = ((minutes - first) // pd.Timedelta(minutes=1)).to_numpy()
    block = np.where(offset >= 0, offset // max(1, every), -1)
    count = int(block.max()) + 1 if len(block) else 0
    return block, pd.DatetimeIndex([first + pd.Timedelta(minutes=k * every)
                                    for k in range(count)])


def _sum_blocks(a: np.ndarray, block: np.ndarray, count: int) -> np.ndarray:
    out = np.zeros((count,) + a.shape[1:], dtype=a.dtype)
    keep = block >= 0
    np.add.at(out, block[keep], a[keep])
    return out


def signal_timeline(view: StreamView, signal: str, start=None, every: int = 1) -> pd.DataFrame:
    """A signal's own timeline (long): per ``every`` minutes from ``start`` and per
    category (fresh, stale, null for a feature; the reference's quantile groups for
    latency and score; the segments for the mix) its requests and their share of all
    requests in %. Categories without a request in the range are left out."""
    n3, _, names = _grouped(view, signal)
    block, firsts = _blocks(view, start, every)
    n = _sum_blocks(n3.sum(axis=1), block, len(firsts))        # (blocks, categories)
    used = n.sum(axis=0) > 0
    n, names = n[:, used], [c for c, u in zip(names, used) if u]
    total = n.sum(axis=1, keepdims=True)
    share = 100 * np.divide(n, total, out=np.full(n.shape, np.nan), where=total > 0)
    frame = pd.DataFrame({"minute": np.repeat(firsts, len(names)),
                          "category": np.tile(np.array(names, dtype=object), len(firsts)),
                          "requests": n.ravel().astype(np.int64), "share_pct": share.ravel()})
    frame["category"] = pd.Categorical(frame["category"], categories=names, ordered=True)
    return frame


AFFECTED, UNAFFECTED = "affected", "unaffected"


def affected_description(signal: str) -> tuple[str, str]:
    """What a signal's affected and unaffected requests are."""
    if signal == ev.LATENCY_SIGNAL:
        return "lookup slower than the reference's p99", "the other lookups"
    if signal == ev.SCORE_SIGNAL:
        return "score at or below the reference's median", "scores above it"
    if signal == ev.SEGMENT_MIX:
        return "", ""
    return f"{signal} {affected_label(signal)}", f"{signal} fresh"


def affected_ctr(view: StreamView, signal: str, start=None, every: int = 1) -> pd.DataFrame:
    """CTR per ``every`` minutes from ``start`` of :data:`AFFECTED` and
    :data:`UNAFFECTED` requests in the same segment mix (long: minute, group, requests,
    clicks, ctr_pct).

    Within each segment, the CTR of the group's requests; then the segments weighted by
    their share of all requests of those minutes (so both groups carry the same mix),
    over the segments where the group has requests; NaN where it has none. For the
    segment mix itself the groups are the segments, each with its own CTR."""
    n3, c3, names = _grouped(view, signal)
    block, firsts = _blocks(view, start, every)
    n3, c3 = _sum_blocks(n3, block, len(firsts)), _sum_blocks(c3, block, len(firsts))
    if signal == ev.SEGMENT_MIX:
        groups = [(name, n3[:, :, k], c3[:, :, k]) for k, name in enumerate(names)]
    else:
        mask = affected_mask(signal, names)
        groups = [(AFFECTED, n3[:, :, mask].sum(2), c3[:, :, mask].sum(2)),
                  (UNAFFECTED, n3[:, :, ~mask].sum(2), c3[:, :, ~mask].sum(2))]
    seg_n = n3.sum(axis=2).astype(float)
    seg_total = seg_n.sum(1, keepdims=True)
    weight = np.divide(seg_n, seg_total, out=np.zeros(seg_n.shape), where=seg_total > 0)
    parts = []
    for name, gn, gc in groups:
        q = np.divide(gc, gn, out=np.zeros(gn.shape), where=gn > 0)
        w = np.where(gn > 0, weight, 0.0)
        wsum = w.sum(1)
        ctr = np.divide((w * q).sum(1), wsum, out=np.full(len(wsum), np.nan), where=wsum > 0)
        parts.append(pd.DataFrame({"minute": firsts, "group": name,
                                   "requests": gn.sum(1).astype(np.int64),
                                   "clicks": gc.sum(1).astype(np.int64), "ctr_pct": 100 * ctr}))
    return pd.concat(parts, ignore_index=True)


def signal_alerts(view: StreamView, signal: str, start=None) -> pd.DataFrame:
    """The alerts of one signal (every segment's for the mix), as :func:`alert_frame`."""
    frame = alert_frame(view, start)
    return frame[frame["signal"] == signal].reset_index(drop=True)
