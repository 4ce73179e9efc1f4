"""The ``stream`` command: a simulated scenario's events ingested durably, as they happen
(real clock) or as fast as they can be made (simulated clock).

::

    python -m analysis stream --scenario ecommerce [--rate R] [--seed N]
        [--fault SPEC [--at T] [--until T]] ... [--clock real|simulated] [--start ISO]
        [--duration S] [--store DIR] [--name NAME] [--progress S]

Faults
------
``--fault`` may repeat; an ``--at`` or ``--until`` belongs to the ``--fault`` just
before it. ``T`` is a time after the stream's start, in seconds (``600``) or with a unit
(``90s``, ``15m``, ``2h``), or an ISO date-time (naive times are UTC). Without
``--at`` a fault is active from the start; without ``--until``, to the end. The specs
are the scenario's (:func:`analysis.scenarios.ecommerce.parse_fault`), e.g.
``null:user_affinity:0.3``, ``stale:recent_clicks:0.5``, ``latency:0.2``,
``segment_mix:new=0.5``, ``score:0.3``.

Clocks
------
*real* (default): stream time runs with the wall clock, from ``--start`` (default: now).
Every :data:`TICK` seconds the events of the elapsed interval are generated and
appended; it runs for ``--duration`` seconds, or until Ctrl-C or SIGTERM, then stops
generating, makes every acknowledged event visible, and exits 0.

*simulated*: from ``--start`` (default: the scenario's start) to ``--start`` +
``--duration`` seconds (default one hour) of stream time, as fast as it goes, in batches
of about :data:`BATCH_EVENTS` events, each durable before the next is made.

Alerts
------
Every :data:`ALERT_EVERY` seconds, and once at the end, the detectors re-run over the
stream's complete minutes; every alert is kept in the folder's ``alerts.json`` and a new
one is printed as an ``ALERT`` line (:mod:`analysis.streaming.alerts`).

Restarting
----------
A stream folder that exists is resumed: the options left out are taken from its
``meta.json``, the ones given must agree with it (else exit 2). Because the scenario's
events are a function of the seed and the second, the stream continues after the newest
stored event and, since every acknowledged event survives a crash, the result is the
stream that would have been written without the interruption. A real-clock stream
first catches up with the clock (as fast as it goes); a simulated one finishes its
duration.
"""
from __future__ import annotations

import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from analysis.store import DEFAULT_STORE
from analysis.streaming.alerts import AlertWatcher
from analysis.streaming.ingest import (StreamBusy, StreamIngest, read_meta, stream_folder,
                                       write_meta)
from analysis.streaming.parts import iso, naive_utc
from analysis.tables import InputError

SCENARIOS = ("ecommerce",)
CLOCKS = ("real", "simulated")
#: the dashboard page that shows a stream
DASHBOARD_PAGE = "Stream monitoring"
#: real clock: seconds between batches
TICK = 0.2
#: simulated clock: events per batch, about
BATCH_EVENTS = 20_000
#: stream seconds per batch while a real-clock stream catches up after a restart
CATCH_UP_SECONDS = 10.0
#: seconds between re-runs of the detectors over the stream (alerts.json, ALERT lines)
ALERT_EVERY = 5.0
DEFAULT_RATE, DEFAULT_SEED, DEFAULT_DURATION = 1000.0, 0, 3600.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_OFFSET = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*$")


@dataclass
class StreamOptions:
    """The command's options; None means "not given" (a default, or the stream's own
    value when it is resumed). ``fault_args`` lists ``(option, value)`` in command-line
    order: ``("--fault", spec)``, ``("--at", T)``, ``("--until", T)``."""

    scenario: str = "ecommerce"
    rate: float | None = None
    seed: int | None = None
    fault_args: list = field(default_factory=list)
    clock: str | None = None
    start: str | None = None
    duration: float | None = None
    store: Path = DEFAULT_STORE
    name: str = "ecommerce"
    progress: float = 5.0
    compact_interval: float = 1.0


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def parse_when(text: str, start: datetime, option: str) -> datetime:
    """A fault time: seconds after ``start`` (``600``, ``90s``, ``15m``, ``2h``) or an
    ISO date-time."""
    m = _OFFSET.match(text)
    if m:
        return start + timedelta(seconds=float(m.group(1)) * {"": 1, "s": 1, "m": 60,
                                                               "h": 3600}[m.group(2)])
    try:
        return naive_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise InputError(f"{option} {text!r}: expected seconds after the start (600, 15m, "
                         "2h) or an ISO date-time") from None


def pair_faults(fault_args: list) -> list[dict]:
    """``--fault``/``--at``/``--until`` in command-line order, as one dict per fault."""
    faults: list[dict] = []
    for option, value in fault_args:
        if option == "--fault":
            faults.append({"spec": value, "--at": None, "--until": None})
            continue
        if not faults:
            raise InputError(f"{option} {value}: give --fault SPEC before its {option}")
        if faults[-1][option] is not None:
            raise InputError(f"--fault {faults[-1]['spec']} has two {option}: give each "
                             "fault at most one")
        faults[-1][option] = value
    return faults


def _scenario(name: str):
    if name not in SCENARIOS:
        raise InputError(f"unknown scenario {name!r}; scenarios: {', '.join(SCENARIOS)}")
    from analysis.scenarios import ecommerce
    return ecommerce


def _faults(module, pairs: list[dict], start: datetime) -> list:
    out = []
    for f in pairs:
        at = parse_when(f["--at"], start, "--at") if f["--at"] else start
        until = parse_when(f["--until"], start, "--until") if f["--until"] else None
        try:
            out.append(module.parse_fault(f["spec"], at, until))
        except ValueError as exc:
            raise InputError(f"--fault {f['spec']}: {exc}") from None
    return out


def _check_numbers(o: StreamOptions) -> None:
    if o.rate is not None and not (o.rate > 0):
        raise InputError(f"--rate {o.rate:g}: expected a positive number of events per second")
    if o.seed is not None and o.seed < 0:
        raise InputError(f"--seed {o.seed}: expected a non-negative integer")
    if o.duration is not None and not (o.duration > 0):
        raise InputError(f"--duration {o.duration:g}: expected a positive number of seconds")
    if not (o.compact_interval > 0):
        raise InputError(f"--compact-interval {o.compact_interval:g}: expected positive seconds")
    if not (o.progress >= 0):
        raise InputError(f"--progress {o.progress:g}: expected seconds (0: every batch)")
    if o.clock is not None and o.clock not in CLOCKS:
        raise InputError(f"--clock {o.clock!r}: expected one of {', '.join(CLOCKS)}")
    if not _NAME.match(o.name):
        raise InputError(f"--name {o.name!r}: use letters, digits, '.', '_' or '-' "
                         "(at most 64, starting with a letter or digit)")


@dataclass
class Plan:
    """What to run: the stream's folder and meta, its simulator and where it ends."""

    folder: Path
    meta: dict
    simulator: object
    clock: str
    start: datetime
    end: datetime | None          # simulated clock: the last instant (exclusive)
    resumed: bool


def plan(o: StreamOptions) -> Plan:
    """Check the options against each other and against an existing stream."""
    _check_numbers(o)
    module = _scenario(o.scenario)
    folder = stream_folder(o.store, o.name)
    old = read_meta(folder)
    if old and old.get("scenario") != o.scenario:
        raise InputError(f"stream {folder} holds scenario {old.get('scenario')!r}, not "
                         f"{o.scenario!r}; choose another --name")
    clock = o.clock or old.get("clock") or "real"
    if o.start is not None:
        try:
            start = naive_utc(datetime.fromisoformat(o.start))
        except ValueError:
            raise InputError(f"--start {o.start!r}: expected an ISO date-time") from None
    elif old:
        start = naive_utc(old["started_at"])
    else:
        start = _now() if clock == "real" else module.DEFAULT_START
    rate = o.rate if o.rate is not None else old.get("rate", DEFAULT_RATE)
    seed = o.seed if o.seed is not None else old.get("seed", DEFAULT_SEED)
    pairs = pair_faults(o.fault_args)
    if not pairs and old:
        pairs = [{"spec": f["spec"], "--at": f["at"], "--until": f["until"]}
                 for f in old.get("faults", [])]
    faults = _faults(module, pairs, start)
    try:
        simulator = module.EcommerceSimulator(seed=seed, rate=rate, start=start, faults=faults)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    meta = {"scenario": o.scenario, "seed": seed, "rate": rate,
            "faults": [f.to_dict() for f in faults], "clock": clock,
            "started_at": iso(start), "features": list(module.FEATURES)}
    if old:
        _check_same(folder, old, meta)
        meta = {**old, **{k: v for k, v in meta.items() if k not in old}}
    else:
        meta["created_at"] = iso(_now())
        if clock == "real":   # stream time minus wall time: 0 unless --start moved it
            meta["clock_offset_s"] = (start - _now()).total_seconds()
    end = None
    if clock == "simulated":
        duration = o.duration or meta.get("duration_s") or DEFAULT_DURATION
        meta.setdefault("duration_s", duration)
        end = start + timedelta(seconds=duration)
    return Plan(folder, meta, simulator, clock, start, end, bool(old))


def _check_same(folder: Path, old: dict, new: dict) -> None:
    def faults(meta):
        return [(f["spec"], f["at"], f.get("until")) for f in meta.get("faults", [])]
    for key, label in (("clock", "clock"), ("seed", "seed"), ("rate", "rate"),
                       ("started_at", "start")):
        if old.get(key) != new[key] and not (key == "rate" and
                                             float(old.get(key, 0)) == float(new[key])):
            raise InputError(f"stream {folder} was started with {label} {old.get(key)}, not "
                             f"{new[key]}: repeat its options (or leave them out) to resume "
                             "it, or choose another --name")
    if faults(old) != faults(new):
        raise InputError(f"stream {folder} was started with other faults "
                         f"({', '.join(f[0] for f in faults(old)) or 'none'}): leave --fault "
                         "out to resume it, or choose another --name")


class _Progress:
    """A progress line every ``every`` seconds (0: after every batch)."""

    def __init__(self, ingest: StreamIngest, clock: str, every: float, out):
        self.ingest, self.clock, self.every, self.out = ingest, clock, every, out
        self.started = time.monotonic()
        self.next = self.started + every

    def __call__(self, through: datetime, clock_now: datetime | None = None,
                 force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self.next:
            return
        self.next = now + self.every
        i = self.ingest
        line = (f"acknowledged {i.acknowledged:,} events through {iso(through)}; "
                f"{i.rate():,.0f} events/s; visible {i.visible:,}, pending {i.pending:,}")
        if clock_now is not None:
            line += f"; clock lag {max(0.0, (clock_now - through).total_seconds()):.2f} s"
        print(line, file=self.out, flush=True)


def _resume_point(ingest: StreamIngest, start: datetime) -> datetime:
    # events are t0 <= timestamp < t1 and every batch is durable whole, so everything
    # up to the newest stored event is stored and nothing after it
    last = ingest.last_event_time
    return start if last is None else max(start, last + timedelta(microseconds=1))


def run(o: StreamOptions, out=None) -> int:
    """Run the command (see the module docstring); 0 when it stopped cleanly."""
    out = out or sys.stdout
    p = plan(o)
    if not p.resumed:
        write_meta(p.folder, p.meta)
    try:
        ingest = StreamIngest(p.folder, compact_interval=o.compact_interval).open()
    except StreamBusy as exc:
        raise InputError(str(exc)) from None
    stop = threading.Event()
    restore = _handle_signals(stop)
    try:
        cursor = _resume_point(ingest, p.start)
        _announce(p, o, ingest, cursor, out)
        report = _Progress(ingest, p.clock, o.progress, out)
        watcher = AlertWatcher(p.folder, every=ALERT_EVERY, out=out)

        def progress(through: datetime, clock_now: datetime | None = None,
                     force: bool = False) -> None:
            report(through, clock_now, force)
            watcher()
        if p.clock == "real":
            cursor = _run_real(p, o, ingest, cursor, stop, progress)
        else:
            cursor = _run_simulated(p, ingest, cursor, stop, progress)
    finally:
        restore()
        ingest.close()
    # every acknowledged event is visible now: the last alerts, on every minute written
    watcher(force=True, complete_only=False)
    print(f"stopped: {ingest.acknowledged:,} events stored through {iso(cursor)} "
          f"({ingest.visible:,} visible)" + (f"; compaction errors: {ingest.last_error}"
                                             if ingest.errors else ""), file=out, flush=True)
    return 0


def _run_real(p: Plan, o: StreamOptions, ingest: StreamIngest, cursor: datetime,
              stop: threading.Event, progress) -> datetime:
    offset = timedelta(seconds=float(p.meta.get("clock_offset_s") or 0.0))
    deadline = time.monotonic() + o.duration if o.duration else None
    while not stop.is_set():
        clock_now = _now() + offset
        upto = min(clock_now, cursor + timedelta(seconds=CATCH_UP_SECONDS))
        if upto > cursor:
            table = p.simulator.events(cursor, upto)
            if table.num_rows:
                ingest.append(table)
            cursor = upto
        progress(cursor, clock_now)
        if deadline is not None and time.monotonic() >= deadline:
            break
        if upto >= clock_now:              # caught up with the clock
            stop.wait(TICK)
    return cursor


def _run_simulated(p: Plan, ingest: StreamIngest, cursor: datetime, stop: threading.Event,
                   progress) -> datetime:
    span = timedelta(seconds=min(60.0, max(0.5, BATCH_EVENTS / p.meta["rate"])))
    while cursor < p.end and not stop.is_set():
        upto = min(cursor + span, p.end)
        table = p.simulator.events(cursor, upto)
        if table.num_rows:
            ingest.append(table)
        cursor = upto
        progress(cursor)
    progress(cursor, force=True)
    return cursor


def _announce(p: Plan, o: StreamOptions, ingest: StreamIngest, cursor: datetime, out) -> None:
    m = p.meta
    how = ("real clock; Ctrl-C or SIGTERM stops it cleanly" if p.clock == "real"
           else f"simulated clock, until {iso(p.end)}")
    print(f"stream {o.name!r}: scenario {m['scenario']}, seed {m['seed']}, "
          f"{m['rate']:,.0f} events/s, {how}", file=out)
    print(f"folder: {p.folder}", file=out)
    for f in m["faults"]:
        print(f"fault {f['spec']} from {f['at']}" + (f" until {f['until']}" if f["until"]
                                                     else ""), file=out)
    if p.resumed:
        print(f"resuming after {iso(ingest.last_event_time) or 'the start'} "
              f"({ingest.acknowledged:,} events stored); continuing from {iso(cursor)}",
              file=out)
    print(f"dashboard: bash scripts/run.sh, then the {DASHBOARD_PAGE!r} page, stream "
          f"{o.name!r} (store {o.store})", file=out, flush=True)


def _handle_signals(stop: threading.Event):
    """SIGTERM and Ctrl-C stop the stream cleanly (a second Ctrl-C interrupts)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum, frame):
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for s in previous:
        signal.signal(s, handler)

    def restore():
        for s, h in previous.items():
            signal.signal(s, h)
    return restore
