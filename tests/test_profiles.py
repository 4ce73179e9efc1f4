"""Per-snapshot profiles: written for every snapshot, by ingest for a new one."""
from analysis import codes, profiles, reference_bins

def test_prepare_writes_every_snapshots_codes_and_profile(snapshots_store):
    messages = []
    profiles.prepare(snapshots_store, progress=messages.append)
    assert snapshots_store.datasets()
    for dataset in snapshots_store.datasets():
        bins = reference_bins.frozen_bins(snapshots_store, dataset)
        folder = codes.codes_folder(snapshots_store, dataset, bins)
        for snap in snapshots_store.snapshots(dataset):
            assert (folder / f"{snap.id}.parquet").is_file()
            assert codes.profile_complete(folder, snap.id)


def test_ensure_codes_knows_its_methods(snapshots_store):
    import pytest
    bins = reference_bins.frozen_bins(snapshots_store, "d")
    with pytest.raises(ValueError, match="method"):
        profiles.ensure_codes(snapshots_store, "d", bins, method="fast")


def test_prepare_dataset_needs_a_timestamp_and_a_reference(tmp_path):
    import pyarrow as pa

    from analysis.store import Roles, Store
    store = Store(tmp_path)
    store.create_dataset("untimed", Roles(numeric=["x"]))
    store.add_snapshot("untimed", "reference", pa.table({"x": [1.0, 2.0]}), source="r")
    assert not profiles.prepare_dataset(store, "untimed")
    store.create_dataset("early", Roles(timestamp="ts", numeric=["x"]))
    table = pa.table({"ts": pa.array([0, 1], pa.timestamp("us")), "x": [1.0, 2.0]})
    store.add_snapshot("early", "production", table, source="p")
    assert not profiles.prepare_dataset(store, "early")   # no reference yet
    assert not (tmp_path / "early" / "bins").exists()
    store.add_snapshot("early", "reference", pa.table({
        "ts": pa.array([5, 6], pa.timestamp("us")), "x": [3.0, 4.0]}), source="r")
    assert profiles.prepare_dataset(store, "early")
    bins = reference_bins.frozen_bins(store, "early")
    folder = codes.codes_folder(store, "early", bins)
    assert all(codes.profile_complete(folder, s.id) for s in store.snapshots("early"))
