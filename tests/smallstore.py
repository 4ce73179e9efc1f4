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


def diabetes_frames(seed: int = 1, shift: bool = True):
    """A small upload like a user's first one: scikit-learn's diabetes data (442 rows, 10
    numeric features, a regression target), 242 reference rows (January to March) and 200
    production rows (April to June, about 65 a month), a linear model's predictions. With
    ``shift`` the production ``bmi`` is scaled by 1.25 and ``s5`` raised by 0.5 (two
    features shifted); without it production is a plain sample of the same data."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    data = load_diabetes(as_frame=True, scaled=False).frame
    order = np.random.default_rng(seed).permutation(len(data))
    ref, prod = data.iloc[order[:242]].copy(), data.iloc[order[242:]].copy()
    features = [c for c in data.columns if c != "target"]
    model = LinearRegression().fit(ref[features], ref["target"])
    if shift:
        prod["bmi"] = prod["bmi"] * 1.25
        prod["s5"] = prod["s5"] + 0.5
    for frame in (ref, prod):
        frame["prediction"] = model.predict(frame[features]).round(2)
    ref["ts"] = pd.date_range("2025-01-01", periods=len(ref), freq="9h")
    prod["ts"] = pd.date_range("2025-04-01", periods=len(prod), freq="10h")
    return ref.reset_index(drop=True), prod.reset_index(drop=True)


def make_diabetes_store(folder: Path, shift: bool = True):
    """A store holding :func:`diabetes_frames` as the dataset 'diabetes' (ingested from CSV
    as an upload would be)."""
    from analysis.ingest import ingest
    from analysis.store import Roles

    store = Store(folder / "store")
    ref, prod = diabetes_frames(shift=shift)
    features = [c for c in ref.columns if c not in ("target", "prediction", "ts")]
    roles = Roles(timestamp="ts", segments=[], numeric=features, categorical=[],
                  prediction="prediction", target="target")
    for slice_, frame in (("reference", ref), ("production", prod)):
        path = folder / f"diabetes-{slice_}.csv"
        frame.to_csv(path, index=False)
        result = ingest(store, "diabetes", slice_, path, roles if slice_ == "reference" else None)
        assert result.snapshot is not None, [str(f) for f in result.findings]
    return store
