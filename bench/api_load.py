"""Load benchmark of the model service: requests/s and latency while every prediction is
logged durably, then what was logged, then our label-free accuracy estimate against
NannyML's CBPE on shifted traffic.

    .venv/bin/python bench/api_load.py [--url URL] [--duration 30] [--connections 32]

1. Without ``--url`` it starts ``python -m analysis serve`` on a fresh store (a temporary
   folder) at 127.0.0.1 on a free port.
2. Two runs of ``--duration`` seconds each on loopback against ``POST /predict``:
   as fast as it goes (Debian's ``wrk``, ``--connections`` connections, bodies rotating
   over the 150 Iris flowers, a Lua script counting the 200s; without wrk an async
   Python client), then at a fixed offered rate (``--rate``, default 1,000 requests/s,
   Debian's ``hey`` with ``--workers`` rate-limited workers, every request's latency
   from its CSV). wrk and hey are installed with apt-get when missing and possible.
3. The service is stopped (SIGTERM: it drains and compacts) and the rows in the store
   are counted: ``lost = acknowledged - logged`` (never negative: requests in flight when
   the load stopped may be logged without their answer being counted).
4. Unless ``--no-cbpe``: a fresh service gets shifted traffic with every label sent back
   (``new-cluster`` and ``petal-scale``), and per chunk of rows our estimate
   (:mod:`analysis.monitoring.cbpe`) is compared with NannyML 0.13.1's CBPE (in its own
   virtual environment, ``bench/nannyml_env.py``) and with the realized accuracy.

Prints a table per part and, last, one JSON line with ``requests_per_s``, ``p50_ms``,
``p99_ms`` (of the fixed-rate run), ``max_requests_per_s`` and ``max_p99_ms`` (of the
run as fast as it goes), ``acknowledged``, ``logged``, ``lost`` (both runs), CPU seconds
of client and server, the machine's load average, and the CBPE comparison. Loopback only; every process it starts, it stops.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _venv import ROOT, use_project_python  # noqa: E402

use_project_python()
sys.path.insert(0, str(ROOT))

LUA = r"""
local bodies = {BODIES}
local n = #bodies
local i = 0
counts = {}
request = function()
  i = i + 1
  return wrk.format("POST", "/predict", {["Content-Type"] = "application/json"},
                    bodies[(i % n) + 1])
end
response = function(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, string.format('"%d": %d', k, v)) end
  io.write(string.format('CODES {%s}\n', table.concat(parts, ", ")))
  io.write(string.format('LATENCY_US %d %d %d %d\n', latency:percentile(50),
           latency:percentile(90), latency:percentile(99), latency.max))
  io.write(string.format('REQUESTS %d ERRORS %d %d %d %d\n', summary.requests,
           summary.errors.connect, summary.errors.read, summary.errors.write,
           summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(store: Path, log: Path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "analysis", "serve", "--store", str(store),
                             "--port", str(port)], cwd=ROOT, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the service did not start; see {log}")


def stop_service(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ensure_wrk() -> str | None:
    if shutil.which("wrk"):
        return shutil.which("wrk")
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's wrk (apt-get)", file=sys.stderr)
        for cmd in (["apt-get", "install", "-y", "-q", "wrk"],
                    ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "wrk"]):
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if shutil.which("wrk"):
                break
    return shutil.which("wrk")


def bodies() -> list[str]:
    from analysis.scenarios import iris
    frame = iris.iris_frame()
    return [json.dumps(dict(zip(iris.FEATURES, map(float, row))))
            for row in frame[list(iris.FEATURES)].to_numpy()]


def run_wrk(url: str, duration: float, connections: int, threads: int, workdir: Path) -> dict:
    script = workdir / "predict.lua"
    lua_bodies = "{" + ", ".join(json.dumps(b) for b in bodies()) + "}"
    script.write_text(LUA.replace("{BODIES}", lua_bodies))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections),
                          "-d", f"{int(duration)}s", "--timeout", "5s", "-s", str(script), url],
                         capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = out.stdout
    codes = json.loads(re.search(r"CODES (\{.*\})", text).group(1))
    p50, p90, p99, pmax = map(int, re.search(r"LATENCY_US (\d+) (\d+) (\d+) (\d+)", text).groups())
    m = re.search(r"REQUESTS (\d+) ERRORS (\d+) (\d+) (\d+) (\d+)", text)
    requests = int(m.group(1))
    return {"tool": "wrk", "requests": requests, "codes": codes,
            "acknowledged": int(codes.get("200", 0)),
            "socket_errors": sum(int(x) for x in m.groups()[1:]),
            "p50_ms": p50 / 1000, "p90_ms": p90 / 1000, "p99_ms": p99 / 1000,
            "max_ms": pmax / 1000,
            "client_cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "raw": text}


def ensure_hey() -> str | None:
    if not shutil.which("hey") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's hey (apt-get)", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "hey"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return shutil.which("hey")


def run_hey(url: str, duration: float, rate: float, workers: int, workdir: Path) -> dict:
    """A fixed offered rate: ``workers`` each limited to ``rate / workers`` requests/s;
    every request's latency from hey's CSV output."""
    import numpy as np
    body = workdir / "body.json"
    body.write_text(bodies()[0])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["hey", "-z", f"{int(duration)}s", "-c", str(workers),
                          "-q", f"{rate / workers:g}", "-m", "POST", "-T", "application/json",
                          "-D", str(body), "-t", "5", "-o", "csv", url + "/predict"],
                         capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [ln.split(",") for ln in out.stdout.strip().splitlines()[1:] if ln]
    seconds = np.array([float(x[0]) for x in lines])
    codes = [x[6] for x in lines]
    counts = {c: codes.count(c) for c in set(codes)}
    q = np.quantile(seconds * 1000, [0.5, 0.9, 0.99]) if len(seconds) else [None] * 3
    return {"tool": "hey", "offered_rate": rate, "requests": len(lines), "codes": counts,
            "acknowledged": counts.get("200", 0), "socket_errors": 0,
            "p50_ms": round(float(q[0]), 3), "p90_ms": round(float(q[1]), 3),
            "p99_ms": round(float(q[2]), 3),
            "max_ms": round(float(seconds.max() * 1000), 3) if len(seconds) else None,
            "client_cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def run_python_client(url: str, duration: float, connections: int) -> dict:
    """Fallback without wrk: the project's async traffic client at its top rate."""
    from analysis.serving import traffic
    before = resource.getrusage(resource.RUSAGE_SELF)
    report = traffic.run(url, rate=traffic.MAX_RATE, duration=duration)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"tool": "python (httpx)", "requests": report.sent, "codes": report.codes,
            "acknowledged": report.acknowledged, "socket_errors": report.failures,
            "p50_ms": report.latency_ms.get("p50"), "p90_ms": report.latency_ms.get("p90"),
            "p99_ms": report.latency_ms.get("p99"), "max_ms": None,
            "client_cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def count_logged(store: Path) -> tuple[int, int]:
    from analysis.catalog import datasets_table
    from analysis.store import Store
    row = next(r for r in datasets_table(Store(store)) if r["name"] == "iris-api")
    return row["production_rows"], row["production_rows_pending"]


def load_phase(args, workdir: Path) -> dict:
    store = workdir / "store-load"
    proc = None
    url = args.url
    if url is None:
        proc, url = start_service(store, workdir / "service-load.log")
    health = json.loads(urllib.request.urlopen(url + "/health").read())
    logged_before = health["rows_logged"]
    server_cpu0 = cpu_seconds(proc.pid) if proc else None
    if ensure_wrk():
        res = run_wrk(url, args.duration, args.connections, args.threads, workdir)
    else:
        print("wrk unavailable: using the Python client (its own CPU limits the rate)",
              file=sys.stderr)
        res = run_python_client(url, args.duration, args.connections)
    res["server_cpu_s"] = cpu_seconds(proc.pid) - server_cpu0 if proc else None
    res["requests_per_s"] = res["acknowledged"] / args.duration
    # the same service at a fixed offered rate: the latency a client sees at that load
    fixed = None
    if args.rate and ensure_hey():
        cpu0 = cpu_seconds(proc.pid) if proc else None
        fixed = run_hey(url, args.duration, args.rate, args.workers, workdir)
        fixed["server_cpu_s"] = cpu_seconds(proc.pid) - cpu0 if proc else None
        fixed["requests_per_s"] = fixed["acknowledged"] / args.duration
    metrics = urllib.request.urlopen(url + "/metrics").read().decode()
    batches = re.search(r"model_service_wal_batch_records_count (\S+)", metrics)
    records = re.search(r"model_service_wal_batch_records_sum (\S+)", metrics)
    res["fsyncs"] = int(float(batches.group(1))) if batches else None
    res["records_per_fsync"] = (float(records.group(1)) / float(batches.group(1))
                                if batches and float(batches.group(1)) else None)
    if proc is not None:
        res["exit_code"] = stop_service(proc)
        logged, pending = count_logged(store)
    else:   # someone else's service: what its log says, once compacted
        time.sleep(3)
        health = json.loads(urllib.request.urlopen(url + "/health").read())
        logged, pending = health["rows_logged"] - logged_before, health["rows_pending"]
    acknowledged = res["acknowledged"] + (fixed["acknowledged"] if fixed else 0)
    return {"max": res, "fixed": fixed, "acknowledged": acknowledged, "logged": logged,
            "pending_after_stop": pending, "lost": max(0, acknowledged - logged),
            "exit_code": res.get("exit_code")}


def cbpe_phase(args, workdir: Path) -> dict:
    """Shifted traffic with every label; ours vs NannyML's CBPE per chunk of rows."""
    import numpy as np
    import pandas as pd

    from analysis.monitoring import cbpe as cb
    from analysis.monitoring.live import LiveMonitor
    from analysis.queries import load_frame
    from analysis.scenarios import iris
    from analysis.serving import traffic
    from analysis.store import Store
    from nannyml_env import nannyml_python

    python = nannyml_python()
    out = {}
    for shift in ("new-cluster", "petal-scale"):
        store = workdir / f"store-{shift}"
        proc, url = start_service(store, workdir / f"service-{shift}.log")
        try:
            traffic.run(url, rate=args.cbpe_rate, duration=args.cbpe_duration,
                        shift_at=args.cbpe_duration / 2, shift=shift, feedback_share=1.0,
                        feedback_delay=0.5, seed=7)
        finally:
            stop_service(proc)
        s = Store(store)
        monitor = LiveMonitor(s, iris.DATASET)
        columns = [iris.ID, iris.TIMESTAMP, *iris.FEATURES, iris.PREDICTION,
                   *[iris.probability_column(c) for c in iris.CLASSES]]
        prod = load_frame(s, iris.DATASET, "production", columns).sort_values(iris.TIMESTAMP)
        labels = pd.concat([pd.read_parquet(p.path) for p in s.labels(iris.DATASET)])
        prod = prod.merge(labels[[iris.ID, iris.TARGET]], on=iris.ID, how="left")
        ref = load_frame(s, iris.DATASET, "reference", columns + [iris.TARGET])
        ref_path, prod_path = workdir / f"ref-{shift}.parquet", workdir / f"prod-{shift}.parquet"
        ref.to_parquet(ref_path)
        prod.drop(columns=[iris.TARGET]).reset_index(drop=True).to_parquet(prod_path)
        res = subprocess.run([str(python), str(Path(__file__).parent / "_nannyml_cbpe.py"),
                              str(ref_path), str(prod_path), str(args.chunk),
                              ",".join(iris.CLASSES)], capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"NannyML failed:\n{res.stderr[-3000:]}")
        theirs = json.loads(res.stdout.strip().splitlines()[-1])
        P, predicted = monitor._proba(prod)
        conf = monitor.cbpe.confidence(P, predicted)
        correct = (prod[iris.PREDICTION] == prod[iris.TARGET]).to_numpy(float)
        correct[prod[iris.TARGET].isna().to_numpy()] = np.nan
        chunks = []
        for c in theirs["chunks"]:
            sl = slice(c["start_index"], c["end_index"] + 1)
            ours = cb.estimate_from_confidence(conf[sl])
            real = cb.realized_accuracy(correct[sl])
            chunks.append({"rows": c["end_index"] - c["start_index"] + 1,
                           "shifted": bool(c["start_index"] >= len(prod) / 2),
                           "ours": round(ours.value, 4),
                           "ours_ci": [round(ours.low, 4), round(ours.high, 4)],
                           "nannyml": round(c["value"], 4),
                           "nannyml_ci": [round(c["low"], 4), round(c["high"], 4)],
                           "realized": round(real.value, 4)})
        diffs = [abs(c["ours"] - c["nannyml"]) for c in chunks]
        out[shift] = {"rows": len(prod), "chunks": chunks, "nannyml": theirs["nannyml"],
                      "max_abs_difference": round(max(diffs), 4) if diffs else None,
                      "calibrated": monitor.cbpe.calibrated}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running service (default: start one on a fresh store)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="offered requests/s of the fixed-rate run (hey; 0 to skip)")
    parser.add_argument("--workers", type=int, default=20, help="hey workers")
    parser.add_argument("--no-cbpe", action="store_true", help="skip the CBPE comparison")
    parser.add_argument("--cbpe-rate", type=float, default=50.0)
    parser.add_argument("--cbpe-duration", type=float, default=40.0)
    parser.add_argument("--chunk", type=int, default=250, help="rows per CBPE chunk")
    args = parser.parse_args()
    if args.url:
        from analysis.serving.traffic import is_loopback
        if not is_loopback(args.url):
            raise SystemExit("--url must be a loopback address (127.0.0.1, ::1, localhost)")
    with tempfile.TemporaryDirectory(prefix="api-load-") as tmp:
        workdir = Path(tmp)
        load = load_phase(args, workdir)
        runs = [("as fast as it goes", load["max"])]
        if load["fixed"]:
            runs.append((f"at a fixed {args.rate:g} requests/s", load["fixed"]))
        print(f"POST /predict on loopback for {args.duration:g} s per run, every answer logged "
              "durably (fsync before 200)")
        for title, r in runs:
            other = {k: v for k, v in r["codes"].items() if k != "200"}
            rows = [("load generator", f"{r['tool']}"
                     + (f", {args.connections} connections" if r["tool"] == "wrk" else
                        f", {args.workers} workers" if r["tool"] == "hey" else "")),
                    ("requests/s (acknowledged)", f"{r['requests_per_s']:,.0f}"),
                    ("latency p50 / p90 / p99 / max (ms)",
                     f"{r['p50_ms']} / {r['p90_ms']} / {r['p99_ms']} / {r['max_ms']}"),
                    ("acknowledged (200)", f"{r['acknowledged']:,}"),
                    ("other answers, socket errors", f"{other or 'none'}, {r['socket_errors']}"),
                    ("CPU s: client, server", f"{r['client_cpu_s']:.1f}, "
                     + (f"{r['server_cpu_s']:.1f}" if r.get("server_cpu_s") is not None else "-"))]
            if r.get("fsyncs"):
                rows.append(("fsyncs, records per fsync (both runs so far)",
                             f"{r['fsyncs']:,}, {r['records_per_fsync']:.1f}"))
            print(f"\n{title}:")
            width = max(len(x[0]) for x in rows)
            for name, value in rows:
                print(f"  {name:<{width}}  {value}")
        print(f"\nafter stopping the service (SIGTERM, exit {load['exit_code']}): acknowledged "
              f"{load['acknowledged']:,}, logged {load['logged']:,}, lost {load['lost']:,}")
        headline = load["fixed"] or load["max"]
        result = {"requests_per_s": round(headline["requests_per_s"], 1),
                  "p50_ms": headline["p50_ms"], "p99_ms": headline["p99_ms"],
                  "acknowledged": load["acknowledged"], "logged": load["logged"],
                  "lost": load["lost"],
                  "max_requests_per_s": round(load["max"]["requests_per_s"], 1),
                  "max_p99_ms": load["max"]["p99_ms"],
                  "runs": {"max": {k: v for k, v in load["max"].items() if k != "raw"},
                           "fixed": load["fixed"]},
                  "machine": {"cores": os.cpu_count(), "load_average": os.getloadavg()}}
        if not args.no_cbpe:
            cbpe = cbpe_phase(args, workdir)
            result["cbpe"] = cbpe
            for shift, r in cbpe.items():
                print(f"\nCBPE on {shift} traffic ({r['rows']:,} rows, every label sent back; "
                      f"shift from the middle): ours vs NannyML {r['nannyml']}, per chunk")
                print(f"  {'chunk':>5}  {'shifted':>7}  {'ours [95%]':>24}  "
                      f"{'NannyML [band]':>24}  {'realized':>8}")
                for i, c in enumerate(r["chunks"]):
                    print(f"  {i:>5}  {str(c['shifted']):>7}  "
                          f"{c['ours']:.3f} [{c['ours_ci'][0]:.3f}, {c['ours_ci'][1]:.3f}]  "
                          f"{c['nannyml']:.3f} [{c['nannyml_ci'][0]:.3f}, {c['nannyml_ci'][1]:.3f}]  "
                          f"{c['realized']:>8.3f}")
                print(f"  largest |ours - NannyML|: {r['max_abs_difference']}")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
