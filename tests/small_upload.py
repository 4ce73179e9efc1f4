"""A small upload like issue #10's: about 240 reference and 200 production rows of
scikit-learn's diabetes data over 3 months (about 65 production rows a month, then one
row in a fourth month), 10 numeric features, optionally two of them shifted in
production (``bmi`` x 1.25, ``s5`` + 0.5)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SHIFTED = ("bmi", "s5")


def diabetes_frames(seed: int, shifted: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, production) frames: a random split of the 442 rows, a linear model
    fitted on the reference as the prediction, timestamps every 9 h from January
    (reference) and every 11 h from April (production)."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    data = load_diabetes(as_frame=True, scaled=False).frame
    order = np.random.default_rng(seed).permutation(len(data))
    ref, prod = data.iloc[order[:242]].copy(), data.iloc[order[242:]].copy()
    features = [c for c in data.columns if c != "target"]
    model = LinearRegression().fit(ref[features], ref["target"])
    if shifted:
        prod["bmi"] = prod["bmi"] * 1.25
        prod["s5"] = prod["s5"] + 0.5
    ref["prediction"] = model.predict(ref[features]).round(2)
    prod["prediction"] = model.predict(prod[features]).round(2)
    ref["ts"] = pd.date_range("2025-01-01", periods=len(ref), freq="9h")
    prod["ts"] = pd.date_range("2025-04-01", periods=len(prod), freq="11h")
    return ref.reset_index(drop=True), prod.reset_index(drop=True)


def diabetes_store(folder: Path, seed: int, shifted: bool = True, dataset: str = "diab"):
    """A store in ``folder`` holding the two frames as dataset ``dataset``, ingested the
    way an upload is (roles inferred)."""
    from analysis.ingest import ingest
    from analysis.store import Store

    folder.mkdir(parents=True, exist_ok=True)
    store = Store(folder / "store")
    ref, prod = diabetes_frames(seed, shifted)
    for slice_, frame in (("reference", ref), ("production", prod)):
        path = folder / f"{slice_}.csv"
        frame.to_csv(path, index=False)
        result = ingest(store, dataset, slice_, path)
        assert result.snapshot is not None, [str(f) for f in result.findings]
    return store
