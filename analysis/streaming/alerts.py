"""Alert records of a running stream.

While ``python -m analysis stream`` runs, :class:`AlertWatcher` re-runs the detectors
(:func:`analysis.streaming.detect.detect_alerts`) over the stream's visible aggregates
every few seconds, on complete minutes only (the minute being written would change
under it), and keeps every alert in the stream folder's ``alerts.json``: signal, start,
detection time, magnitude, confidence and, for CTR, the ranked causes with their
evidence. The detectors are deterministic on the minutes they see, so rewriting the
whole list is idempotent: a restarted stream finds the same alerts again and announces
only new ones.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from analysis.streaming.detect import CTR, WARMUP, Alert, detect_alerts
from analysis.streaming.minutes import cube_from_aggregates
from analysis.streaming.parts import read_aggregates, read_json, write_json

ALERTS = "alerts.json"


def alert_key(alert: dict) -> tuple:
    """What makes two records the same alert."""
    return (alert["signal"], alert.get("detail", ""), alert["start"], alert["direction"])


def read_alerts(folder: str | Path) -> list[dict]:
    """The alert records kept for a stream (empty before the first)."""
    return list(read_json(Path(folder) / ALERTS).get("alerts", []))


def describe(alert: dict) -> str:
    """One line for a terminal."""
    what = alert["signal"] + (f" {alert['detail']}" if alert.get("detail") else "")
    line = (f"ALERT {what} {alert['direction']} {alert['magnitude'] * 100:+.1f} % since "
            f"{alert['start']} (detected {alert['detected_at']})")
    if alert["signal"] == CTR:
        line += "; causes: " + (", ".join(alert["ranked_causes"]) or "none found")
    return line


def current_alerts(folder: str | Path, complete_only: bool = True) -> list[Alert]:
    """The detectors' alerts over the stream's visible aggregates (without the newest
    minute when ``complete_only``); empty while the stream is too short."""
    table = read_aggregates(folder)
    if table.num_rows == 0:
        return []
    cube = cube_from_aggregates(table)
    if complete_only:
        cube = cube.slice(cube.size - 1)
    if cube.size <= WARMUP:
        return []
    return detect_alerts(cube)[0]


class AlertWatcher:
    """Re-runs the detectors every ``every`` seconds (see the module docstring);
    calling it returns the alerts not seen before, and prints them to ``out``."""

    def __init__(self, folder: str | Path, every: float = 5.0, out=None):
        self.folder = Path(folder)
        self.every, self.out = every, out
        self.seen = {alert_key(a) for a in read_alerts(self.folder)}
        self.next = time.monotonic() + every

    def __call__(self, force: bool = False, complete_only: bool = True) -> list[dict]:
        now = time.monotonic()
        if not force and now < self.next:
            return []
        self.next = now + self.every
        records = [a.as_dict() for a in current_alerts(self.folder, complete_only)]
        if not records and not (self.folder / ALERTS).exists():
            return []
        write_json(self.folder / ALERTS, {
            "updated_at": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(),
            "alerts": records}, durable=False)
        new = [a for a in records if alert_key(a) not in self.seen]
        self.seen.update(alert_key(a) for a in new)
        if self.out is not None:
            for a in new:
                print(describe(a), file=self.out, flush=True)
        return new
