"""The ``detect`` command: the stream detectors and cause ranking over a recorded file.

``python -m analysis detect --events FILE [--baseline FILE] [--all] [--json]``

Prints the CTR alerts (the business KPI), each with its ranked causes; ``--all`` adds
the upstream signals' own alerts (a feature going null, a latency rise, a mix change).
JSON: a list of objects with ``detected_at``, ``start``, ``signal``, ``magnitude``
(relative change of the watched rate), ``ranked_causes`` and the evidence.
"""
from __future__ import annotations

import json

from analysis.streaming.detect import CTR, WARMUP, Alert, detect_alerts
from analysis.streaming.events import aggregate_file
from analysis.streaming.minutes import cube_from_aggregates
from analysis.tables import InputError


def alerts_of_files(events: str, baseline: str | None = None) -> list[Alert]:
    """Every alert of a recorded event file (upstream ones included)."""
    table, columns = aggregate_file(events, "events")
    cube = cube_from_aggregates(table, columns.features)
    base = None
    if baseline:
        base_table, base_columns = aggregate_file(baseline, "baseline")
        missing = sorted(set(columns.features) - set(base_columns.features))
        if missing:
            raise InputError(f"baseline: feature(s) {', '.join(missing)} of the events file "
                             "are not in the baseline")
        base = cube_from_aggregates(base_table, columns.features)
    try:
        alerts, _ = detect_alerts(cube, base)
    except ValueError as exc:
        raise InputError(f"events: {exc}") from None
    return alerts


def _percent(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} %"


def format_alerts(alerts: list[Alert]) -> str:
    """Alerts as text for a terminal."""
    if not alerts:
        return "no alert: CTR and the upstream signals stayed at their baselines"
    lines = []
    for a in alerts:
        head = (f"{a.detected_at}  {a.signal}{' ' + a.detail if a.detail else ''}: "
                f"{a.direction} {_percent(a.magnitude)} since {a.start} "
                f"({a.before:.4g} -> {a.after:.4g} {a.rate}; confidence {a.confidence:.4f})")
        lines.append(head)
        if a.signal == CTR:
            if not a.ranked_causes:
                lines.append("    causes: no upstream signal changed with it")
            for rank, name in enumerate(a.ranked_causes, 1):
                e = next(x for x in a.evidence if x["signal"] == name)
                lines.append(
                    f"    {rank}. {name} ({e['role']}): {e['affected']} "
                    f"{e['affected_before'] * 100:.2f} % -> {e['affected_after'] * 100:.2f} % of "
                    f"requests; CTR {e['ctr_affected'] * 100:.2f} % vs {e['ctr_unaffected'] * 100:.2f} %; "
                    f"explains {e['share_of_change'] * 100:.0f} % of the change")
    return "\n".join(lines)


def cmd_detect(args) -> int:
    alerts = alerts_of_files(args.events, args.baseline)
    if not args.all:
        alerts = [a for a in alerts if a.signal == CTR]
    if args.json:
        print(json.dumps([a.as_dict() for a in alerts], indent=2))
    else:
        print(format_alerts(alerts))
    return 0


def add_parser(sub) -> None:
    """Register ``detect`` on the command line's subparsers."""
    p = sub.add_parser("detect", help="CTR change detection and cause ranking over a "
                                      "recorded event stream")
    p.add_argument("--events", required=True,
                   help="recorded events (Parquet or CSV; schema in docs/streaming.md)")
    p.add_argument("--baseline", help="a fault-free recording that sets the reference and, "
                                      "when it spans a day, the time-of-day profile "
                                      f"(default: the events' first {WARMUP} minutes)")
    p.add_argument("--all", action="store_true",
                   help="also print the upstream signals' own alerts")
    p.add_argument("--json", action="store_true", help="print a JSON list of alerts")
    p.set_defaults(func=cmd_detect)
