"""Frozen reference bins: numpy's quantiles of the reference, and the engine's bin
expressions put every value where numpy's bins do."""
import numpy as np
import pytest

from analysis import counts, reference_bins

DATASET = "rental_pricing"

def test_frozen_edges_are_numpy_quantiles_of_the_reference(bins, raw):
    ref, _ = raw
    for feature in ("area_sqm", "distance_to_center_km", "bedrooms"):
        values = ref[feature].to_numpy(float)
        assert bins.coarse[feature].edges == pytest.approx(
            tuple(np.unique(np.quantile(values, np.arange(1, 10) / 10))), rel=1e-12)
        anchors = np.unique(np.r_[values.min(), np.quantile(values, np.arange(1, 10) / 10),
                                  values.max()])
        assert np.allclose(bins.fine[feature].anchors, anchors, rtol=1e-12)
    assert set(bins.coarse["neighborhood"].categories) == set(ref["neighborhood"].unique())


@pytest.mark.parametrize("feature", ["area_sqm", "distance_to_center_km", "amenities_score",
                                     "bedrooms"])
def test_engine_bins_every_value_as_numpy_does(demo_store, bins, raw, feature):
    ref, prod = raw
    for slice_, frame, kind in (("reference", ref, "fine"), ("production", prod, "fine"),
                                ("production", prod, "coarse")):
        b = (bins.fine if kind == "fine" else bins.coarse)[feature]
        binned = counts.binned_counts(demo_store, DATASET, slice_, {feature: b})
        engine = np.zeros(reference_bins.n_bins(b))
        np.add.at(engine, binned["bin"].to_numpy(), binned["n"].to_numpy())
        assert np.array_equal(engine, b.counts(frame[feature])), (slice_, kind)


def test_frozen_bins_are_persisted_once_per_reference(tmp_path):
    import pyarrow as pa

    from analysis.store import Roles, Store
    store = Store(tmp_path)
    store.create_dataset("d", Roles(numeric=["x"], categorical=["c"]))
    store.add_snapshot("d", "reference", pa.table({"x": [float(v) for v in range(100)],
                                                   "c": ["a", "b"] * 50}), source="r")
    unsaved = reference_bins.frozen_bins(store, "d", persist=False)
    assert not (tmp_path / "d" / "bins").exists()
    bins = reference_bins.frozen_bins(store, "d")
    assert bins == unsaved and (tmp_path / "d" / "bins" / f"{bins.token}.json").is_file()
    assert reference_bins.FrozenBins.from_json(bins.to_json()) == bins
    assert bins.coarse["c"].categories == ("a", "b")
    assert reference_bins.n_bins(bins.coarse["x"]) == len(bins.coarse["x"].edges) + 2
    assert reference_bins.n_bins(bins.fine["x"]) == bins.fine["x"].n + 1
