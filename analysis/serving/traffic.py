"""Traffic for a running service: Iris records at a steady rate, an input shift from a
chosen moment, and true labels for a share of them, sent later.

Records are Iris flowers drawn at random, measured again: normal noise of sd
:data:`JITTER` cm, rounded to 0.1 cm as the Iris data is. Shifts, from ``shift_at``
seconds on:

``petal-scale``
    petal lengths and widths read 40 % too large (a miscalibrated instrument, or another
    unit in one feed). Labels stay the flowers' true species, so a versicolor now looks
    like a virginica: the model is confidently wrong, and no label-free estimate can tell
    (the relation between inputs and labels changed).
``new-cluster``
    flowers from where versicolor and virginica overlap (petal length 4.5 to 5.1 cm and
    width 1.5 to 1.9 cm; 25 of the 150 training flowers), arrive in numbers (a new
    cultivar). Labels are their true species; the model is less sure there, says so,
    and is wrong more often.

Bounded: at most :data:`MAX_RATE` requests/s for at most :data:`MAX_DURATION` s, and to a
loopback address unless ``allow_remote``.
"""
from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np

from analysis.scenarios import iris

SHIFTS = ("petal-scale", "new-cluster")
JITTER = 0.1
PETAL_SCALE = 1.4
OVERLAP_LENGTH = (4.5, 5.1)
OVERLAP_WIDTH = (1.5, 1.9)
MAX_RATE = 5000.0
MAX_DURATION = 3600.0
MAX_IN_FLIGHT = 64


class TrafficError(ValueError):
    """Traffic that will not be sent (a non-loopback URL, a rate beyond the bound...)."""


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RecordSampler:
    """Draws Iris records (and their true species), shifted or not."""

    def __init__(self, seed: int = 0):
        frame = iris.iris_frame()
        self.X = frame[list(iris.FEATURES)].to_numpy(float)
        self.y = frame[iris.TARGET].to_numpy()
        pl = self.X[:, iris.FEATURES.index("petal_length")]
        pw = self.X[:, iris.FEATURES.index("petal_width")]
        self.band = np.flatnonzero((pl >= OVERLAP_LENGTH[0]) & (pl <= OVERLAP_LENGTH[1])
                                   & (pw >= OVERLAP_WIDTH[0]) & (pw <= OVERLAP_WIDTH[1]))
        self.rng = np.random.default_rng(seed)

    def draw(self, n: int, shift: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` records (rows x the four lengths, cm) and their species."""
        if shift is not None and shift not in SHIFTS:
            raise TrafficError(f"unknown shift {shift!r}; choose one of {', '.join(SHIFTS)}")
        pool = self.band if shift == "new-cluster" else np.arange(len(self.X))
        pick = self.rng.choice(pool, size=n)
        X = self.X[pick] + self.rng.normal(0.0, JITTER, size=(n, len(iris.FEATURES)))
        if shift == "petal-scale":
            X[:, 2:] *= PETAL_SCALE
        X = np.maximum(np.round(X, 1), 0.1)
        return X, self.y[pick]


def record(x) -> dict:
    return dict(zip(iris.FEATURES, (float(v) for v in x)))


@dataclass
class TrafficReport:
    """What was sent and answered."""

    url: str
    rate: float
    duration: float
    shift: str | None
    shift_at: float | None
    sent: int = 0
    acknowledged: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    failures: int = 0                     # no answer (connection refused, reset, timeout)
    labels_sent: int = 0
    labels_acknowledged: int = 0
    shifted: int = 0
    elapsed_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    acknowledged_ids: list[str] = field(default_factory=list, repr=False)

    def to_dict(self, ids: bool = False) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "acknowledged_ids"}
        if ids:
            out["acknowledged_ids"] = list(self.acknowledged_ids)
        return out


async def run_traffic(url: str, rate: float = 20.0, duration: float = 60.0,
                      shift_at: float | None = None, shift: str | None = None,
                      feedback_share: float = 0.0, feedback_delay: float = 2.0, seed: int = 0,
                      allow_remote: bool = False, timeout: float = 10.0,
                      stop: asyncio.Event | None = None) -> TrafficReport:
    """Send ``rate`` single-record predictions per second for ``duration`` s to ``url``,
    shifted from ``shift_at`` s on; a ``feedback_share`` of the acknowledged ones get
    their true label ``feedback_delay`` s (on average) later."""
    import httpx

    if not allow_remote and not is_loopback(url):
        raise TrafficError(f"{url} is not a loopback address; traffic goes to 127.0.0.1, "
                           "::1 or localhost unless allowed explicitly")
    if not 0 < rate <= MAX_RATE:
        raise TrafficError(f"--rate must be in (0, {MAX_RATE:g}] requests/s")
    if not 0 < duration <= MAX_DURATION:
        raise TrafficError(f"--duration must be in (0, {MAX_DURATION:g}] s")
    if not 0 <= feedback_share <= 1:
        raise TrafficError("--feedback-share must be between 0 and 1")
    if shift is not None and shift not in SHIFTS:
        raise TrafficError(f"unknown shift {shift!r}; choose one of {', '.join(SHIFTS)}")
    if shift is None and shift_at is not None:
        raise TrafficError("--shift-at needs --shift (petal-scale or new-cluster)")
    if shift_at is not None and not 0 <= shift_at <= duration:
        raise TrafficError(f"--shift-at must be between 0 and the duration ({duration:g} s)")
    if shift is not None and shift_at is None:
        shift_at = 0.0
    base = url.rstrip("/")
    report = TrafficReport(base, rate, duration, shift, shift_at)
    sampler = RecordSampler(seed)
    chooser = random.Random(seed + 1)
    latencies: list[float] = []
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    labels: list[asyncio.Task] = []
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)

    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        async def send_label(request_id: str, label: str, delay: float) -> None:
            await asyncio.sleep(delay)
            report.labels_sent += 1
            try:
                r = await client.post(f"{base}/feedback",
                                      json={"request_id": request_id, "label": label})
                if r.status_code == 200:
                    report.labels_acknowledged += 1
            except httpx.HTTPError:
                pass

        async def one(x, label: str) -> None:
            async with gate:
                report.sent += 1
                started = time.perf_counter()
                try:
                    r = await client.post(f"{base}/predict", json=record(x))
                except httpx.HTTPError:
                    report.failures += 1
                    return
                latencies.append(time.perf_counter() - started)
                code = str(r.status_code)
                report.codes[code] = report.codes.get(code, 0) + 1
                if r.status_code == 200:
                    rid = r.json()["request_id"]
                    report.acknowledged += 1
                    report.acknowledged_ids.append(rid)
                    if feedback_share and chooser.random() < feedback_share:
                        delay = feedback_delay * chooser.uniform(0.5, 1.5)
                        labels.append(asyncio.create_task(send_label(rid, str(label), delay)))

        t0 = time.perf_counter()
        total = int(round(rate * duration))
        tasks = []
        for i in range(total):
            due = t0 + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            if stop is not None and stop.is_set():
                break
            shifted = shift is not None and (due - t0) >= shift_at
            X, y = sampler.draw(1, shift if shifted else None)
            report.shifted += int(shifted)
            tasks.append(asyncio.create_task(one(X[0], y[0])))
            if len(tasks) >= 4 * MAX_IN_FLIGHT:
                tasks = [t for t in tasks if not t.done()]
        await asyncio.gather(*tasks)
        if labels:
            await asyncio.wait_for(asyncio.gather(*labels, return_exceptions=True),
                                   timeout=feedback_delay * 1.5 + timeout + 5)
        report.elapsed_s = round(time.perf_counter() - t0, 3)
    if latencies:
        q = np.quantile(np.array(latencies) * 1000, [0.5, 0.9, 0.99])
        report.latency_ms = {"p50": round(float(q[0]), 2), "p90": round(float(q[1]), 2),
                             "p99": round(float(q[2]), 2)}
    return report


def run(url: str, **kwargs) -> TrafficReport:
    """:func:`run_traffic` from synchronous code (its own event loop, in a thread of its
    own when this thread already runs one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_traffic(url, **kwargs))
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run_traffic(url, **kwargs)).result()


def format_report(report: TrafficReport) -> str:
    codes = ", ".join(f"{c}: {n:,}" for c, n in sorted(report.codes.items())) or "none"
    lines = [f"sent {report.sent:,} prediction request(s) to {report.url} in "
             f"{report.elapsed_s:.1f} s (target {report.rate:g}/s for {report.duration:g} s)",
             f"answers by code: {codes}; no answer: {report.failures:,}",
             f"acknowledged (200, logged durably): {report.acknowledged:,}"]
    if report.shift:
        lines.append(f"shift {report.shift} from {report.shift_at:g} s: {report.shifted:,} "
                     "shifted record(s)")
    if report.labels_sent:
        lines.append(f"labels sent: {report.labels_sent:,} (recorded: "
                     f"{report.labels_acknowledged:,})")
    if report.latency_ms:
        lines.append("latency: p50 {p50} ms, p90 {p90} ms, p99 {p99} ms".format(**report.latency_ms))
    return "\n".join(lines)
