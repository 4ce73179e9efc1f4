"""A recommendation-event generator written independently of the product's simulator
(other segments, features, rates and mechanisms), so the detectors are tested on
streams they were not built around.

Clicks: a per-segment base CTR with a daily rhythm; a fault lowers the click probability
of exactly the requests it touches (``alpha`` null or stale, slow lookups) or moves the
mix towards a segment that clicks less. ``beta`` is a feature nothing depends on.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SEGMENT_CTR = {"web": 0.04, "app": 0.06, "email": 0.03}
SEGMENT_SHARE = {"web": 0.5, "app": 0.35, "email": 0.15}
FAULTS = ("alpha_null", "beta_null", "both_null", "alpha_stale", "latency", "mix")


def _rhythm(hour, peak, amplitude):
    return 1 + amplitude * np.sin(2 * np.pi * (hour - peak + 6) / 24)


def generate(seed: int = 0, hours: float = 2.0, rate: float = 300.0, fault: str | None = None,
             at_minute: int = 70, start: str = "2026-03-01 06:00") -> pd.DataFrame:
    """Events in the stream schema; ``fault`` (one of :data:`FAULTS`) from ``at_minute``."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    secs = int(hours * 3600)
    hour_of_sec = (t0.hour + t0.minute / 60 + np.arange(secs) / 3600.0) % 24
    sec = np.repeat(np.arange(secs), rng.poisson(rate * _rhythm(hour_of_sec, 14, 0.3)))
    n = len(sec)
    hour = hour_of_sec[sec]
    segments = np.array(list(SEGMENT_SHARE))
    seg = segments[rng.choice(len(segments), n, p=list(SEGMENT_SHARE.values()))]
    after = sec >= at_minute * 60
    if fault == "mix":
        seg = np.where(after & (rng.uniform(size=n) < 0.4), "email", seg)
    p = np.vectorize(SEGMENT_CTR.get)(seg) * _rhythm(hour, 20, 0.15)
    alpha = np.where(rng.uniform(size=n) < 0.001, np.nan, rng.normal(size=n))
    beta = np.where(rng.uniform(size=n) < 0.001, np.nan, rng.normal(size=n))
    alpha_age, beta_age = rng.gamma(2, 30, n), rng.gamma(2, 100, n)
    latency = rng.lognormal(np.log(12), 0.3, n)
    if fault in ("alpha_null", "both_null"):
        hit = after & (rng.uniform(size=n) < 0.25)
        alpha[hit] = np.nan
        p[hit] *= 0.6
    if fault in ("beta_null", "both_null"):
        beta[after & (rng.uniform(size=n) < 0.5)] = np.nan
    if fault == "alpha_stale":
        hit = after & (rng.uniform(size=n) < 0.3)
        alpha_age[hit] += 7200
        p[hit] *= 0.65
    if fault == "latency":
        hit = after & (rng.uniform(size=n) < 0.2)
        latency[hit] *= 15
        p[hit] *= 0.5
    logit = np.log(p / (1 - p)) + rng.normal(0, 0.3, n)
    return pd.DataFrame({
        "timestamp": t0 + pd.to_timedelta(sec + rng.uniform(0, 1, n), unit="s"),
        "request_id": [f"r{i}" for i in range(n)], "segment": seg,
        "clicked": (rng.uniform(size=n) < p).astype(int), "latency_ms": latency,
        "score": 1 / (1 + np.exp(-logit)),
        "alpha": alpha, "alpha_age_s": np.where(np.isnan(alpha), np.nan, alpha_age),
        "beta": beta, "beta_age_s": np.where(np.isnan(beta), np.nan, beta_age)})
