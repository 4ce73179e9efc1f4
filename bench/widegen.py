"""A wide generated store for benchmarks: 25 features, 12 monthly windows, 5 user groups.

Production: ``rows`` listings over 2025; reference: ``min(1M, max(100k, rows / 10))``
rows over 2024-Q4. 20 numeric features (normal, lognormal, counts, uniform, rounded)
and 5 categorical ones (3 to 12 levels). From July, two groups see shifted inputs on a
handful of features, so the heatmap has something to show. Written month by month, so
memory stays bounded at any size.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.store import Roles, Store

GROUPS = ["g1", "g2", "g3", "g4", "g5"]
NUMERIC = [f"x{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
LEVELS = [3, 5, 8, 10, 12]
DATASET = "wide"


def roles() -> Roles:
    return Roles(timestamp="ts", segments=["user_group"], numeric=list(NUMERIC),
                 categorical=list(CATEGORICAL), prediction="pred", target="y")


def _chunk(rng: np.random.Generator, n: int, start: pd.Timestamp, end: pd.Timestamp,
           drift: bool) -> pa.Table:
    span = int((end - start).total_seconds())
    ts = start + pd.to_timedelta(np.sort(rng.integers(0, span, n)), unit="s")
    group = rng.choice(GROUPS, n)
    shifted = drift & np.isin(group, ["g2", "g4"])
    cols: dict = {"ts": ts.values.astype("datetime64[us]"), "user_group": group}
    for i, name in enumerate(NUMERIC):
        kind = i % 4
        if kind == 0:
            x = rng.normal(i, 1 + i / 10, n)
        elif kind == 1:
            x = rng.lognormal(0, 0.5 + i / 40, n)
        elif kind == 2:
            x = rng.poisson(2 + i / 4, n).astype(float)
        else:
            x = np.round(rng.uniform(0, 100, n), 1)
        if i < 6:
            x = np.where(shifted, x * 1.3 + 0.5, x)
        cols[name] = x
    for i, (name, k) in enumerate(zip(CATEGORICAL, LEVELS)):
        p = np.linspace(1, 2, k)
        p = p / p.sum()
        v = rng.choice(k, n, p=p)
        if i < 2:
            v = np.where(shifted & (rng.random(n) < 0.4), k - 1, v)
        cols[name] = np.array([f"{name}_{j}" for j in range(k)], dtype=object)[v]
    signal = cols["x00"] + 0.1 * cols["x01"] + 0.05 * cols["x03"]
    cols["y"] = signal + rng.normal(0, 1, n)
    cols["pred"] = signal
    return pa.table(cols)


def build(store: Store, rows: int, seed: int = 7, progress=print) -> None:
    """Write the wide dataset into ``store`` (replacing it)."""
    if DATASET in store.datasets():
        store.drop_dataset(DATASET)
    rng = np.random.default_rng(seed)
    store.create_dataset(DATASET, roles(), description="wide benchmark data")
    ref_rows = min(1_000_000, max(100_000, rows // 10))
    for m, part in enumerate(np.array_split(np.arange(ref_rows), 3)):
        start = pd.Timestamp(2024, 10 + m, 1)
        end = pd.Timestamp(2024, 11 + m, 1) if m < 2 else pd.Timestamp(2025, 1, 1)
        store.add_snapshot(DATASET, "reference", _chunk(rng, len(part), start, end, False),
                           source=f"widegen reference {start:%Y-%m}")
    for m, part in enumerate(np.array_split(np.arange(rows), 12), start=1):
        start = pd.Timestamp(2025, m, 1)
        end = pd.Timestamp(2025, m + 1, 1) if m < 12 else pd.Timestamp(2026, 1, 1)
        store.add_snapshot(DATASET, "production", _chunk(rng, len(part), start, end, m >= 7),
                           source=f"widegen production {start:%Y-%m}")
        progress(f"  month {m:2d}: {len(part):,} rows")
