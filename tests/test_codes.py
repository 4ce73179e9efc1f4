"""Bin codes: written once per snapshot and reference, following the store's snapshots."""
import numpy as np
import pandas as pd

from analysis import codes, counts, profiles, reference_bins

def test_codes_follow_snapshots_and_the_reference(tmp_path):
    import pyarrow as pa
    from analysis.store import Roles, Store
    rng = np.random.default_rng(3)

    def table(n, start):
        return pa.Table.from_pandas(pd.DataFrame({
            "ts": pd.date_range(start, periods=n, freq="h"), "g": rng.choice(["a", "b", None], n),
            "x": rng.normal(size=n), "c": rng.choice(["u", "v", None], n)}))

    store = Store(tmp_path)
    store.create_dataset("d", Roles(timestamp="ts", segments=["g"], numeric=["x"],
                                    categorical=["c"]))
    store.add_snapshot("d", "reference", table(500, "2025-01-01"), source="r")
    first = store.add_snapshot("d", "production", table(300, "2025-03-01"), source="p1")
    bins = reference_bins.frozen_bins(store, "d")
    assert [p.stem for p in profiles.ensure_codes(store, "d", bins)] == [first.id]
    second = store.add_snapshot("d", "production", table(200, "2025-04-01"), source="p2")
    files = profiles.ensure_codes(store, "d", bins)
    assert [p.stem for p in files] == [first.id, second.id] and all(p.exists() for p in files)
    coded = counts.day_counts_from_codes(store, "d", bins, "g")
    assert coded.groupby("feature", observed=True)["n"].sum().tolist() == [500, 500]
    rows = counts.binned_counts(store, "d", "production", bins.coarse, unit="day", segment="g")
    key = ["window", "segment", "feature", "bin"]
    norm = [f.assign(segment=f.segment.astype(str), feature=f.feature.astype(str))
            .sort_values(key).reset_index(drop=True)[key + ["n"]] for f in (coded, rows)]
    assert norm[0].equals(norm[1]) and "(missing)" in set(norm[0].segment)
    store.remove_snapshot("d", first.id)
    assert counts.day_counts_from_codes(store, "d", bins, "g")["n"].sum() == 2 * 200
    # the removed snapshot's codes and profile went with it
    assert not list(files[0].parent.glob(f"{first.id}.*"))
    assert (files[0].parent / f"{second.id}.profile.json").is_file()
    # a new reference freezes new bins, and new codes with them
    store.add_snapshot("d", "reference", table(100, "2025-02-01"), source="r2")
    new_bins = reference_bins.frozen_bins(store, "d")
    assert new_bins.token != bins.token
    assert profiles.ensure_codes(store, "d", new_bins)[0].parent.name.startswith(
        f"codes-{new_bins.token}-")
    leftovers = {p.name for p in (tmp_path / "d" / "bins").iterdir()}
    assert not any(n.startswith(f"codes-{bins.token}") for n in leftovers)
    assert f"{bins.token}.json" not in leftovers


def test_segment_dictionary_is_append_only(tmp_path):
    first = codes.extend_dictionary(tmp_path, {"g": ["b", "a"]})
    assert first == {"g": ["(missing)", "a", "b"]}
    # a later snapshot's new values come after, sorted among themselves: indices never move
    assert codes.extend_dictionary(tmp_path, {"g": ["c", "a", "0"]}) == {
        "g": ["(missing)", "a", "b", "0", "c"]}
    assert codes.extend_dictionary(tmp_path, {}) == {"g": ["(missing)", "a", "b", "0", "c"]}


def test_leftovers_are_files_of_snapshots_gone(tmp_path):
    for name in ("s1.parquet", "s1.profile.json", "s2.days.parquet", "segments.json",
                 ".lock", "x.tmp"):
        (tmp_path / name).write_text("")
    assert sorted(p.name for p in codes.leftovers(tmp_path, {"s1"})) == ["s2.days.parquet"]
    assert codes.leftovers(tmp_path / "absent", set()) == []


def test_codes_share_columns_three_to_a_column_unless_wide():
    from analysis.binning import CategoricalBins, NumericBins
    from analysis.reference_bins import FrozenBins
    coarse = {"a": NumericBins((1.0,)), "b": NumericBins((1.0, 2.0)),
              "wide": CategoricalBins(tuple(f"v{i}" for i in range(300))),
              "c": CategoricalBins(("x",)), "d": NumericBins(())}
    assert codes.code_slots(FrozenBins("t", coarse, {})) == [
        ("c0", 0), ("c0", 8), ("w2", None), ("c0", 16), ("c1", 0)]
