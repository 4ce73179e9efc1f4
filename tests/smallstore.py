"""A small store for tests that write (upload, ingest) and must not touch the demo."""
from pathlib import Path

from analysis.store import Store


def make_small_store(folder: Path):
    """A store with one small dataset, 'shop' (1,500 reference rows: ts, group, x, c), and
    a function making more rows of it: ``frame(n, start, shift)`` (x shifted by ``shift``)."""
    import numpy as np
    import pandas as pd

    from analysis.ingest import ingest
    from analysis.store import Roles
    rng = np.random.default_rng(9)

    def frame(n, start, shift=0.0):
        return pd.DataFrame({
            "ts": pd.date_range(start, periods=n, freq="h").strftime("%Y-%m-%d %H:%M"),
            "group": rng.choice(["a", "b"], n), "x": np.round(rng.normal(shift, 1, n), 3),
            "c": rng.choice(["u", "v"], n)})

    store = Store(folder / "store")
    frame(1500, "2025-01-01").to_csv(folder / "ref.csv", index=False)
    result = ingest(store, "shop", "reference", folder / "ref.csv",
                    Roles(timestamp="ts", segments=["group"], numeric=["x"], categorical=["c"]))
    assert result.snapshot is not None, [str(f) for f in result.findings]
    return store, frame

