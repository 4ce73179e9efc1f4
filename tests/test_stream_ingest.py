"""The stream ingest: what is appended is read back once, aggregates are those of the
stored events (merges included, readers never see a merge and its pieces together),
``kill -9`` at any moment loses no acknowledged event and stores none twice, and the
``stream`` command's options. Every process started here is stopped here."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from analysis import cli
from analysis.scenarios.ecommerce import EcommerceSimulator, parse_fault
from analysis.streaming import events as ev
from analysis.streaming.ingest import (StreamBusy, StreamIngest, read_aggregates, read_events,
                                       stream_status, write_meta)
from analysis.streaming.parts import list_parts, sum_parts, visible_parts

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 2, 6, 0)
THROUGH = re.compile(r"acknowledged ([\d,]+) events through (\S+);")


def batches(count: int, seconds: float = 5.0, seed: int = 7, rate: float = 300.0):
    """``count`` consecutive batches of the scenario's events, ``seconds`` each."""
    sim = EcommerceSimulator(seed=seed, rate=rate, start=START)
    return [sim.events(START + timedelta(seconds=i * seconds),
                       START + timedelta(seconds=(i + 1) * seconds)) for i in range(count)]


def assert_same_aggregates(stored: pa.Table, expected: pa.Table) -> None:
    keys = [("minute", "ascending"), ("signal", "ascending"), ("segment", "ascending"),
            ("bin", "ascending")]
    a, b = stored.sort_by(keys), expected.sort_by(keys)
    assert a.num_rows == b.num_rows
    assert a.equals(b), "the aggregates differ from those of the stored events"


def assert_exactly(folder: Path, expected: pa.Table) -> pa.Table:
    """The stream holds exactly ``expected``'s events, each once, and its aggregates are
    theirs."""
    stored = read_events(folder)
    ids = stored["request_id"]
    assert pc.count_distinct(ids).as_py() == stored.num_rows, "a request id stored twice"
    assert stored.num_rows == expected.num_rows
    assert set(ids.to_pylist()) == set(expected["request_id"].to_pylist())
    assert_same_aggregates(read_aggregates(folder), ev.aggregate_events(stored))
    assert_same_aggregates(read_aggregates(folder), ev.aggregate_events(expected))
    return stored


# -- in process ----------------------------------------------------------------------------
def test_appended_events_read_back_and_merges_keep_totals(tmp_path):
    folder = tmp_path / "s"
    parts = batches(26)
    with StreamIngest(folder, compact_interval=30.0, fanout=4) as ingest:
        total = 0
        for table in parts:
            total += table.num_rows
            assert ingest.append(table) == total
            ingest.flush()                      # one part per batch: merges are due
        assert ingest.merges >= 7               # 24 level-0 parts -> 6 -> 1, and more
        assert ingest.pending == 0
    expected = pa.concat_tables(parts)
    stored = assert_exactly(folder, expected)
    # in ingest order, with every column as appended
    assert stored["request_id"].to_pylist() == expected["request_id"].to_pylist()
    assert stored.column_names == expected.column_names
    levels = sorted(p.level for p in visible_parts(folder))
    assert max(levels) == 2 and len(levels) < 8
    finished, orphans = list_parts(folder)
    assert not orphans and len(finished) == len(levels), "merged pieces left behind"
    # time ranges and column choice
    lo, hi = START + timedelta(seconds=12), START + timedelta(seconds=47)
    window = read_events(folder, start=lo, end=hi, columns=["request_id", "timestamp"])
    mask = pc.and_(pc.greater_equal(expected["timestamp"], pa.scalar(lo, pa.timestamp("us"))),
                   pc.less(expected["timestamp"], pa.scalar(hi, pa.timestamp("us"))))
    assert window.column_names == ["request_id", "timestamp"]
    assert window.num_rows == pc.sum(mask).as_py() > 0
    since = read_aggregates(folder, since=START + timedelta(seconds=90))
    assert pc.min(since["minute"]).as_py() == START + timedelta(minutes=1)
    status = stream_status(folder)
    assert status["events"] == status["acknowledged"] == expected.num_rows
    assert status["pending_events"] == 0 and not status["running"]
    assert status["parts"] == len(levels)


def test_summing_parts_equals_merging_them():
    parts = [ev.aggregate_events(t) for t in batches(12, seconds=15.0)]
    assert len({pc.min(p["minute"]).as_py() for p in parts}) < len(parts)  # shared minutes
    assert sum_parts(parts).equals(ev.merge(parts))
    # however the rows are spread over parts (interleaved, repeated)
    halves = [p.take(pa.array(range(k, p.num_rows, 2))) for p in parts for k in (0, 1)]
    assert sum_parts(halves[::-1] + parts[:3]).equals(ev.merge(halves + parts[:3]))
    assert sum_parts(parts[:1]).equals(parts[0]) and sum_parts([]).num_rows == 0


def test_readers_never_see_a_merge_and_its_pieces(tmp_path):
    folder = tmp_path / "s"
    parts = batches(40, seconds=2.0)
    prefixes = {0}
    total = 0
    for table in parts:
        total += table.num_rows
        prefixes.add(total)
    seen, failures, done = [], [], threading.Event()

    def reader():
        while not done.is_set():
            try:
                aggregates = read_aggregates(folder)
                latency = aggregates.filter(pc.equal(aggregates["signal"], "latency"))
                seen.append(pc.sum(latency["n"]).as_py() or 0)
                time.sleep(0.002)
            except Exception as exc:           # noqa: BLE001 - reported below
                failures.append(repr(exc))
    with StreamIngest(folder, compact_interval=0.05, fanout=3) as ingest:
        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for table in parts:
                ingest.append(table)
                time.sleep(0.02)
        finally:
            done.set()
            thread.join(30)
    assert not failures, failures[:3]
    assert len(seen) > 20
    # every read is the sum of a prefix of the batches: nothing counted twice or skipped
    assert set(seen) <= prefixes
    assert seen == sorted(seen)


def test_bad_batches_are_refused_before_logging(tmp_path):
    table = batches(1)[0]
    with StreamIngest(tmp_path / "s") as ingest:
        with pytest.raises(ValueError, match="missing column"):
            ingest.append(table.drop_columns(["clicked"]))
        with pytest.raises(ValueError, match="0 and 1"):
            ingest.append(table.set_column(table.column_names.index("clicked"), "clicked",
                                           pa.array([2] * table.num_rows, pa.int8())))
        with pytest.raises(ValueError, match="timestamp"):
            ingest.append(table.set_column(0, "timestamp",
                                           pc.cast(table["timestamp"], pa.string())))
        with pytest.raises(StreamBusy):        # one writer per stream
            StreamIngest(tmp_path / "s").open()
        assert ingest.acknowledged == 0
        assert ingest.append(table) == table.num_rows
        with pytest.raises(ValueError, match="extra: shop"):
            ingest.append(table.append_column("shop", pa.array(["a"] * table.num_rows)))
        # a zoned clock is read as UTC; the stream keeps naive UTC microseconds
        later = batches(2)[1]
        zoned = pc.cast(later["timestamp"], pa.timestamp("ns", tz="UTC"))
        ingest.append(later.set_column(0, "timestamp", pc.cast(zoned, pa.timestamp(
            "ns", tz="Asia/Tokyo"))))
    stored = read_events(tmp_path / "s")
    assert stored.num_rows == table.num_rows + later.num_rows
    assert stored["timestamp"].type == pa.timestamp("us")
    assert stored["timestamp"].to_pylist()[table.num_rows:] == later["timestamp"].to_pylist()


# -- crashes at chosen points (a subprocess that dies with os._exit) -------------------------
CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    from datetime import datetime, timedelta
    from analysis.scenarios.ecommerce import EcommerceSimulator
    from analysis.streaming import ingest as ig

    folder, point = sys.argv[1], sys.argv[2]
    real_write, real_delete = ig.write_atomic, ig._delete_part

    def write_atomic(path, write):
        real_write(path, write)
        if point == "between-files" and path.parent.name == "aggregates" \\
                and path.name.startswith("p0-") and count() == 6:
            print("orphan", path.name, flush=True)
            one_more()
            os._exit(9)
        if point == "merge-aggregates" and path.parent.name == "aggregates" \\
                and path.name.startswith("p1-"):
            os._exit(9)

    def delete_part(folder, part):
        if point == "merge-pieces":
            os._exit(9)
        real_delete(folder, part)

    def checkpoint(self):
        if point == "before-checkpoint" and count() == 6:
            one_more()
            os._exit(9)
        real_checkpoint(self)

    state = {"flushes": 0}
    def count():
        return state["flushes"]

    def one_more():
        # a batch committed after the part being written: the log now reaches past it
        i = count()
        ingest.append(sim.events(start + timedelta(seconds=4 * i),
                                 start + timedelta(seconds=4 * (i + 1))))
        print("acked", i, flush=True)

    real_checkpoint = ig.StreamIngest._write_checkpoint
    ig.write_atomic, ig._delete_part = write_atomic, delete_part
    ig.StreamIngest._write_checkpoint = checkpoint
    start = datetime(2026, 11, 2, 6, 0)
    sim = EcommerceSimulator(seed=11, rate=200, start=start)
    ingest = ig.StreamIngest(folder, compact_interval=600, fanout=4).open()
    for i in range(9):
        ingest.append(sim.events(start + timedelta(seconds=4 * i),
                                 start + timedelta(seconds=4 * (i + 1))))
        print("acked", i, flush=True)
        state["flushes"] = i + 1
        ingest.flush()
    ingest.close()
    print("done", flush=True)
""")


@pytest.mark.parametrize("point", ["between-files", "before-checkpoint", "merge-aggregates",
                                   "merge-pieces"])
def test_a_crash_at_each_step_recovers_exactly_once(tmp_path, point):
    folder = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(folder), point], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 9, run.stderr[-2000:]
    acked = [int(line.split()[1]) for line in run.stdout.splitlines() if line.startswith("acked")]
    sim = EcommerceSimulator(seed=11, rate=200, start=START)
    expected = sim.events(START, START + timedelta(seconds=4 * (acked[-1] + 1)))
    StreamIngest(folder).open().close()           # recovery alone, nothing appended
    assert_exactly(folder, expected)
    finished, orphans = list_parts(folder)
    assert not orphans and len(finished) == len(visible_parts(folder))
    if point == "between-files":                  # the interrupted pass, same name
        orphan = run.stdout.split("orphan ")[1].split()[0]
        assert (folder / "events" / orphan).exists()


# -- the stream command --------------------------------------------------------------------
def _start_stream(args: list[str], lines: list[str]) -> tuple[subprocess.Popen, threading.Thread]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "analysis", "stream", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)

    def pump():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return proc, thread


def _wait_for(lines: list[str], pattern: re.Pattern, count: int, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while sum(bool(pattern.search(x)) for x in lines) < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("the stream did not make progress:\n" + "\n".join(lines[-20:]))
        time.sleep(0.02)


def _stop(proc: subprocess.Popen, sig=signal.SIGKILL) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


def _acknowledged_through(lines: list[str]) -> datetime:
    return max(datetime.fromisoformat(m.group(2)) for m in map(THROUGH.search, lines) if m)


def test_kill_9_loses_nothing_acknowledged(tmp_path):
    store = tmp_path / "store"
    folder = store / "streams" / "k9"
    end = START + timedelta(minutes=80)
    args = ["--clock", "simulated", "--store", str(store), "--name", "k9", "--rate", "200",
            "--seed", "3", "--start", START.isoformat(), "--duration", "4800",
            "--progress", "0", "--compact-interval", "0.2",
            "--fault", "null:user_affinity:0.4", "--at", "30m", "--until", "50m"]
    sim = EcommerceSimulator(seed=3, rate=200, start=START, faults=[
        parse_fault("null:user_affinity:0.4", START + timedelta(minutes=30),
                    START + timedelta(minutes=50))])
    procs = []
    try:
        for round_ in range(2):                  # two crashes, at different moments
            lines: list[str] = []
            proc, pump = _start_stream(args, lines)
            procs.append(proc)
            _wait_for(lines, THROUGH, 8 + 12 * round_, proc)
            assert _stop(proc) == -signal.SIGKILL, "the stream ended before the kill"
            pump.join(10)
            through = _acknowledged_through(lines)
            assert through < end
            status = stream_status(folder)
            assert not status["running"]
            assert status["acknowledged"] == status["events"] + status["pending_events"]
            # recovery alone (nothing new generated): every acknowledged event is back
            with StreamIngest(folder):
                pass
            stored = read_events(folder, columns=["request_id", "timestamp"])
            assert pc.count_distinct(stored["request_id"]).as_py() == stored.num_rows
            acknowledged = sim.events(START, through)["request_id"].to_pylist()
            missing = set(acknowledged) - set(stored["request_id"].to_pylist())
            assert not missing, f"{len(missing)} acknowledged event(s) lost"
        # a last start resumes after the newest stored event and finishes the duration
        lines = []
        proc, pump = _start_stream(args, lines)
        procs.append(proc)
        assert proc.wait(120) == 0, "\n".join(lines[-20:])
        pump.join(10)
        assert any(x.startswith("resuming after") for x in lines)
        assert_exactly(folder, sim.events(START, end))
        assert json.loads((folder / "meta.json").read_text())["faults"][0]["spec"] == \
            "null:user_affinity:0.4"
    finally:
        for proc in procs:
            _stop(proc)


def test_real_clock_stops_cleanly_on_sigterm(tmp_path):
    store = tmp_path / "store"
    lines: list[str] = []
    proc, pump = _start_stream(["--store", str(store), "--name", "live", "--rate", "400",
                                "--progress", "0.3"], lines)
    try:
        _wait_for(lines, THROUGH, 3, proc)
        assert _stop(proc, signal.SIGTERM) == 0
        pump.join(10)
    finally:
        _stop(proc)
    folder = store / "streams" / "live"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["clock"] == "real" and meta["rate"] == 400
    stopped = [x for x in lines if x.startswith("stopped:")]
    assert stopped and any(str(folder) in x for x in lines)
    through = datetime.fromisoformat(stopped[0].split(" through ")[1].split()[0])
    start = datetime.fromisoformat(meta["started_at"])
    sim = EcommerceSimulator(seed=0, rate=400, start=start)
    assert_exactly(folder, sim.events(start, through))
    assert stream_status(folder)["pending_events"] == 0


@pytest.mark.parametrize("argv, message", [
    (["--fault", "null:no_such_feature:0.3"], "unknown feature"),
    (["--fault", "explode:0.3"], "unknown fault kind"),
    (["--fault", "null:user_affinity:1.5"], "outside"),
    (["--rate", "-5"], "--rate -5"),
    (["--rate", "0"], "--rate 0"),
    (["--at", "10m"], "give --fault SPEC before"),
    (["--fault", "latency:0.2", "--at", "soon"], "--at 'soon'"),
    (["--fault", "latency:0.2", "--at", "10m", "--at", "20m"], "two --at"),
    (["--fault", "latency:0.2", "--at", "20m", "--until", "10m"], "not after"),
    (["--duration", "0"], "--duration 0"),
    (["--seed", "-1"], "--seed -1"),
    (["--name", "../elsewhere"], "--name"),
    (["--start", "yesterday"], "--start 'yesterday'"),
])
def test_stream_argument_errors(tmp_path, capsys, argv, message):
    code = cli.main(["stream", "--store", str(tmp_path), "--clock", "simulated", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "streams").exists(), "nothing is written for a refused command"


def test_resuming_with_other_options_is_refused(tmp_path, capsys):
    folder = tmp_path / "streams" / "ecommerce"
    write_meta(folder, {"scenario": "ecommerce", "seed": 0, "rate": 1000.0, "faults": [],
                        "clock": "simulated", "started_at": "2026-11-02T00:00:00.000000"})
    assert cli.main(["stream", "--store", str(tmp_path), "--seed", "4"]) == 2
    assert "was started with seed 0" in capsys.readouterr().err
    assert cli.main(["stream", "--store", str(tmp_path), "--fault", "score:0.2"]) == 2
    assert "other faults" in capsys.readouterr().err
