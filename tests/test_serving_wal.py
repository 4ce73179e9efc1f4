"""The write-ahead log and compaction, without a network: framing, torn tails, group
commit under concurrency, exactly-once replay, roll-ups, pending rows counted."""
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

from analysis.catalog import datasets_table
from analysis.queries import parquet_source
from analysis.scenarios import iris
from analysis.serving import compaction, wal
from analysis.serving.compaction import FEEDBACK, PREDICTION, Compactor
from analysis.serving.service import encode, label_schema, predict_rows
from analysis.store import Store


def test_records_read_back_in_order_with_positions(tmp_path):
    log = wal.WriteAheadLog(tmp_path, commit_delay=0).open()
    p1 = log.append([b"a", b"bb"])
    p2 = log.append([b"ccc"])
    log.close()
    got = list(wal.read_records(tmp_path))
    assert [r for r, _ in got] == [b"a", b"bb", b"ccc"]
    assert got[1][1] == p1 and got[2][1] == p2 and p1 < p2
    assert [r for r, _ in wal.read_records(tmp_path, after=p1)] == [b"ccc"]


def test_a_torn_tail_is_ignored_then_truncated_and_a_new_segment_started(tmp_path):
    log = wal.WriteAheadLog(tmp_path).open()
    log.append([b"kept-1", b"kept-2"])
    log.close()
    (seq, path), = wal.segments(tmp_path)
    whole = path.read_bytes()
    # a crash in the middle of the next record: its header and half its payload
    path.write_bytes(whole + wal.frame(b"never acknowledged")[:12])
    assert [r for r, _ in wal.read_records(tmp_path)] == [b"kept-1", b"kept-2"]
    # a corrupt byte inside a record: reading stops before it
    broken = tmp_path / "x"
    broken.mkdir()
    (broken / "000000000001.wal").write_bytes(wal.frame(b"ok") + wal.frame(b"bad")[:-1] + b"!")
    assert [r for r, _ in wal.read_records(broken)] == [b"ok"]
    log = wal.WriteAheadLog(tmp_path).open()
    assert path.read_bytes() == whole                     # truncated to the intact records
    log.append([b"after"])
    log.close()
    assert [r for r, _ in wal.read_records(tmp_path)] == [b"kept-1", b"kept-2", b"after"]
    assert len(wal.segments(tmp_path)) == 2


def test_group_commit_batches_concurrent_writers_and_loses_none(tmp_path):
    batches = []
    log = wal.WriteAheadLog(tmp_path, commit_delay=0.002,
                            on_batch=lambda n, s: batches.append(n)).open()

    def writer(i):
        return log.append([f"r{i}".encode()])
    with ThreadPoolExecutor(32) as pool:
        positions = list(pool.map(writer, range(2000)))
    log.close()
    got = [r for r, _ in wal.read_records(tmp_path)]
    assert sorted(got) == sorted(f"r{i}".encode() for i in range(2000))
    assert sum(batches) == 2000
    assert len(batches) < 2000 and max(batches) > 1       # several requests per fsync
    assert max(positions) == log.position


def test_a_closed_log_refuses_records(tmp_path):
    log = wal.WriteAheadLog(tmp_path).open()
    log.close()
    with pytest.raises(wal.LogClosed):
        log.append([b"late"])


def test_segments_rotate_and_compacted_ones_are_dropped(tmp_path):
    log = wal.WriteAheadLog(tmp_path, segment_bytes=200).open()
    for i in range(30):
        log.append([b"x" * 50])
    assert len(wal.segments(tmp_path)) > 3
    log.drop_before(log.position)
    assert [s for s, _ in wal.segments(tmp_path)] == [log.position[0]]
    log.close()


# -- compaction: exactly once ---------------------------------------------------------
def _rows(model, n, prefix):
    X = iris.iris_frame()[list(iris.FEATURES)].to_numpy()[:n]
    rows, *_ = predict_rows(model, X, 1_767_600_000_000_000, [f"{prefix}{i}" for i in range(n)])
    return rows


def _stored_ids(store):
    files = store.files(iris.DATASET, "production")
    with duckdb.connect() as con:
        return [r[0] for r in con.execute(f"SELECT {iris.ID} FROM {parquet_source(files)}").fetchall()]


def _log_rows(folder, rows, labels=()):
    log = wal.WriteAheadLog(folder).open()
    log.append([encode(PREDICTION, r) for r in rows])
    if labels:
        log.append([encode(FEEDBACK, r) for r in labels])
    log.close()


def _compact_recovered(store, folder):
    preds, labels, end = compaction.recover(store, iris.DATASET, folder, iris.ID)
    c = Compactor(store, iris.DATASET, folder, iris.row_schema(), label_schema())
    c.accept([(PREDICTION, r) for r in preds] + [(FEEDBACK, r) for r in labels], end)
    c.run_once()
    return len(preds), len(labels)


def test_replaying_the_log_any_number_of_times_stores_each_id_once(tmp_path):
    store = Store(tmp_path / "store")
    model = iris.prepare(store, say=lambda m: None)
    folder = store.root / iris.DATASET / "wal"
    rows = _rows(model, 40, "a")
    labels = [{iris.ID: "a1", iris.TARGET: "setosa", "labelled_at": 1_767_600_000_000_000}]
    _log_rows(folder, rows, labels)
    assert datasets_table(store)[0]["production_rows_pending"] == 40
    assert datasets_table(store)[0]["production_rows"] == 40
    assert _compact_recovered(store, folder) == (40, 1)
    for _ in range(3):                                   # restarts: nothing new
        assert _compact_recovered(store, folder) == (0, 0)
    assert sorted(_stored_ids(store)) == sorted(r[iris.ID] for r in rows)
    # even without the checkpoints (deleted), ids already stored are not added again
    (folder / "checkpoint.json").unlink()
    for snap in store.snapshots(iris.DATASET, "production"):
        manifest = snap.path.with_suffix(".json")
        raw = json.loads(manifest.read_text())
        raw["meta"].pop("wal")
        manifest.write_text(json.dumps(raw))
    assert _compact_recovered(store, folder)[0] == 0
    ids = _stored_ids(store)
    assert len(ids) == len(set(ids)) == 40
    table = datasets_table(store)[0]
    assert (table["production_rows"], table["production_rows_pending"]) == (40, 0)


def test_rows_logged_after_a_compaction_are_the_only_ones_replayed(tmp_path):
    store = Store(tmp_path / "store")
    model = iris.prepare(store, say=lambda m: None)
    folder = store.root / iris.DATASET / "wal"
    first, second = _rows(model, 10, "a"), _rows(model, 7, "b")
    _log_rows(folder, first)
    _compact_recovered(store, folder)
    _log_rows(folder, second)                            # a second run, then a crash
    assert datasets_table(store)[0]["production_rows_pending"] == 7
    assert _compact_recovered(store, folder) == (7, 0)
    assert sorted(_stored_ids(store)) == sorted(r[iris.ID] for r in first + second)


def test_rollups_merge_small_snapshots_and_readers_never_see_both(tmp_path, monkeypatch):
    monkeypatch.setattr(compaction, "GRACE", 0.0)
    store = Store(tmp_path / "store")
    model = iris.prepare(store, say=lambda m: None)
    folder = store.root / iris.DATASET / "wal"
    folder.mkdir(parents=True)
    c = Compactor(store, iris.DATASET, folder, iris.row_schema(), label_schema())
    every = []
    for k in range(compaction.FANOUT + 3):
        rows = _rows(model, 5, f"p{k}-")
        every += rows
        c.accept([(PREDICTION, r) for r in rows], (1, 100 * (k + 1)))
        c.run_once()
        ids = _stored_ids(store)
        assert sorted(ids) == sorted(r[iris.ID] for r in every)   # once each, at every step
    snaps = store.snapshots(iris.DATASET, "production")
    levels = sorted(s.meta["level"] for s in snaps)
    assert levels == [0, 0, 0, 1]
    merged = [s for s in snaps if s.meta["level"] == 1][0]
    assert merged.rows == 5 * compaction.FANOUT and len(merged.meta["replaces"]) == compaction.FANOUT
    # the parts' files are gone (grace 0 here), the merged snapshot is time-ordered
    files = {p.stem for p in (store.root / iris.DATASET / "snapshots").glob("*.parquet")}
    assert not set(merged.meta["replaces"]) & files
    assert merged.meta["wal"] == [1, 100 * compaction.FANOUT]


def test_a_failed_write_keeps_the_rows_for_the_next_pass(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    model = iris.prepare(store, say=lambda m: None)
    folder = store.root / iris.DATASET / "wal"
    folder.mkdir(parents=True)
    c = Compactor(store, iris.DATASET, folder, iris.row_schema(), label_schema())
    rows = _rows(model, 3, "f")
    c.accept([(PREDICTION, r) for r in rows], (1, 10))
    real = store.add_snapshot
    monkeypatch.setattr(store, "add_snapshot", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    assert c.run_once() == (0, 0) and c.errors == 1 and c.pending() == (3, 0)
    monkeypatch.setattr(store, "add_snapshot", real)
    assert c.run_once() == (3, 0) and c.pending() == (0, 0)
    assert sorted(_stored_ids(store)) == sorted(r[iris.ID] for r in rows)


def test_readers_never_see_a_half_written_snapshot_while_compaction_runs(tmp_path):
    store = Store(tmp_path / "store")
    model = iris.prepare(store, say=lambda m: None)
    folder = store.root / iris.DATASET / "wal"
    folder.mkdir(parents=True)
    c = Compactor(store, iris.DATASET, folder, iris.row_schema(), label_schema())
    stop = threading.Event()
    seen = []

    def read():
        while not stop.is_set():
            ids = _stored_ids(store) if store.files(iris.DATASET, "production") else []
            seen.append(len(ids))
            assert len(ids) == len(set(ids)) and len(ids) % 5 == 0
    reader = threading.Thread(target=read)
    reader.start()
    for k in range(40):
        c.accept([(PREDICTION, r) for r in _rows(model, 5, f"r{k}-")], (1, k + 1))
        c.run_once()
    stop.set()
    reader.join()
    assert seen and max(seen) <= 200
