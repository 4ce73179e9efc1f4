"""The store: catalog, snapshots, duplicates, and a writer process beside a reader."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analysis import slices
from analysis.store import Roles, Store, StoreError

ROOT = Path(__file__).resolve().parent.parent
ROLES = Roles(timestamp="ts", segments=["group"], numeric=["x"], categorical=["c"],
              prediction="pred", target="y")


def _table(n: int, seed: int, start="2025-01-01") -> pa.Table:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ts": pd.date_range(start, periods=n, freq="h"),
        "group": rng.choice(["a", "b"], n), "x": rng.normal(size=n),
        "c": rng.choice(["u", "v"], n), "pred": rng.normal(10, 1, n), "y": rng.normal(10, 1, n),
    })
    return pa.Table.from_pandas(frame, preserve_index=False)


def test_catalog_roundtrip_and_snapshots(tmp_path):
    store = Store(tmp_path)
    store.create_dataset("shop", ROLES, description="test")
    assert store.datasets() == ["shop"]
    ds = store.dataset("shop")
    assert ds.roles == ROLES and ds.roles.features == {"x": "numeric", "c": "categorical"}
    first = store.add_snapshot("shop", "reference", _table(50, 1), source="ref.csv")
    second = store.add_snapshot("shop", "production", _table(30, 2), source="p.csv")
    assert [s.id for s in store.snapshots("shop")] == [first.id, second.id]
    assert store.snapshots("shop", "production")[0].rows == 30
    assert slices.row_counts(store, "shop") == {"reference": 50, "production": 30}
    store.remove_snapshot("shop", second.id)
    assert slices.row_counts(store, "shop") == {"reference": 50, "production": 0}


def test_duplicate_content_is_refused_and_store_unchanged(tmp_path):
    store = Store(tmp_path)
    store.create_dataset("shop", ROLES)
    snap = store.add_snapshot("shop", "production", _table(20, 3), source="a.csv")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(StoreError, match=f"already stored as snapshot {snap.id}"):
        store.add_snapshot("shop", "production", _table(20, 3), source="copy.csv")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_bad_requests_are_refused(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(StoreError, match="no dataset"):
        store.dataset("nope")
    with pytest.raises(StoreError, match="one role only"):
        store.create_dataset("d", Roles(numeric=["x"], categorical=["x"]))
    with pytest.raises(StoreError, match="dataset name"):
        store.create_dataset("../evil", ROLES)
    store.create_dataset("d", ROLES)
    with pytest.raises(StoreError, match="already exists"):
        store.create_dataset("d", ROLES)
    with pytest.raises(StoreError, match="lacks columns"):
        store.add_snapshot("d", "production", _table(5, 1).drop(["y"]), source="s")
    with pytest.raises(StoreError, match="slice"):
        store.add_snapshot("d", "staging", _table(5, 1), source="s")
    assert store.snapshots("d") == []


def test_writer_process_adds_snapshots_while_reader_queries(tmp_path):
    """Another process appends while we read: every read sees whole snapshots only."""
    store = Store(tmp_path)
    store.create_dataset("live", ROLES)
    store.add_snapshot("live", "reference", _table(100, 0), source="ref")
    writer = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        import numpy as np, pandas as pd, pyarrow as pa
        from analysis.store import Store
        store = Store({str(tmp_path)!r})
        for i in range(8):
            n = 5000
            rng = np.random.default_rng(i + 10)
            frame = pd.DataFrame({{"ts": pd.date_range("2025-02-01", periods=n, freq="min"),
                "group": rng.choice(["a", "b"], n), "x": rng.normal(size=n),
                "c": rng.choice(["u", "v"], n), "pred": rng.normal(size=n), "y": rng.normal(size=n)}})
            store.add_snapshot("live", "production", pa.Table.from_pandas(frame), source=f"w{{i}}")
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer])
    seen = set()
    while proc.poll() is None:
        seen.add(slices.row_counts(store, "live")["production"])
    assert proc.wait() == 0
    seen.add(slices.row_counts(store, "live")["production"])
    assert seen <= {5000 * k for k in range(9)}, seen  # never a partial snapshot
    assert max(seen) == 40_000
    assert len(store.snapshots("live", "production")) == 8


def test_version_changes_when_snapshots_change(tmp_path):
    store = Store(tmp_path)
    store.create_dataset("d", ROLES)
    v0 = store.version("d")
    snap = store.add_snapshot("d", "production", _table(5, 1), source="s")
    v1 = store.version("d")
    store.remove_snapshot("d", snap.id)
    assert len({v0, v1, store.version("d")}) >= 2 and v0 != v1


def test_derived_files_leave_the_version_alone(tmp_path):
    store = Store(tmp_path)
    store.create_dataset("d", Roles(numeric=["x"]))
    store.add_snapshot("d", "reference", pa.table({"x": [1.0, 2.0]}), source="t")
    before = store.version("d")
    (tmp_path / "d" / "bins").mkdir()
    (tmp_path / "d" / "bins" / "abc.json").write_text("{}")
    assert store.version("d") == before == store.version("d")
    store.add_snapshot("d", "production", pa.table({"x": [3.0]}), source="t")
    assert store.version("d") != before
