"""Rental-pricing demo scenario: a rent regression model facing data and concept drift.

Deterministic for a given seed and size. The ground truth (which drift, which features,
which segment, since when) lives in ``rental_ground_truth.json`` beside this file; the
generator reads its months and segments from there, so the file and the data agree.

Listings over one calendar year; each row is a listing rented by one user group.

* Base listings (all months): neighborhood, distance from it, property type and its
  bedrooms and area, building age; bathrooms, floor, furnished, pets allowed and an
  amenities score drawn independently of the listing's kind.
* Data drift (from ``data_drift.from_month``): a share of the drift segments' listings are
  new developments in a new neighborhood, Eastgate Docks, far out: three in four are
  micro-studio new builds, the rest converted warehouses drawn like any listing. The
  price rule applies to them unchanged. The independent features are drawn exactly as before,
  so their distributions do not move.
* Concept drift (from ``concept_drift.from_month``): for the concept segment, rent stops
  depending on distance to the centre. Their inputs are generated as before.

The model (histogram gradient boosting on log rent) is trained on the reference months
only. Reference rows carry out-of-fold predictions (5-fold cross-fitting) so that the
reference error is an honest out-of-sample level; production rows carry the predictions
of the model fitted on the whole reference.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from analysis.store import Roles, Store

GROUND_TRUTH_PATH = Path(__file__).with_name("rental_ground_truth.json")

NUMERIC = ["area_sqm", "bedrooms", "bathrooms", "distance_to_center_km", "floor",
           "building_age_years", "amenities_score"]
CATEGORICAL = ["neighborhood", "property_type", "furnished", "pets_allowed"]

# neighborhood -> (typical distance to the centre in km, share of base listings)
NEIGHBORHOODS = {
    "Old Town": (1.2, 0.14), "University Quarter": (2.8, 0.17), "Riverside": (4.0, 0.20),
    "Harbor": (5.5, 0.16), "Hillside": (7.0, 0.15), "Suburbs": (10.5, 0.18),
}
NEW_NEIGHBORHOOD = "Eastgate Docks"
NEW_PROPERTY_TYPE = "micro-studio"
MICRO_STUDIO_SHARE = 0.75  # of the new developments; the rest are converted warehouses
PROPERTY_TYPES = ["apartment", "house", "studio", "loft"]
# user group -> probabilities of PROPERTY_TYPES for base listings (constant over time)
TYPE_MIX = {
    "students": [0.45, 0.05, 0.40, 0.10],
    "families": [0.55, 0.35, 0.02, 0.08],
    "professionals": [0.60, 0.10, 0.15, 0.15],
    "relocating": [0.60, 0.10, 0.20, 0.10],
}
GROUP_SHARES = {"students": 0.25, "families": 0.25, "professionals": 0.30, "relocating": 0.20}
DEFAULT_REFERENCE_ROWS = 180_000
DEFAULT_PRODUCTION_ROWS = 540_000


def ground_truth() -> dict:
    """The scenario's documented ground truth."""
    return json.loads(GROUND_TRUTH_PATH.read_text())


def roles() -> Roles:
    gt = ground_truth()
    return Roles(timestamp=gt["timestamp"], segments=[gt["segment"]], numeric=list(NUMERIC),
                 categorical=list(CATEGORICAL), prediction=gt["prediction"],
                 target=gt["target"], id="listing_id")


def _timestamps(rng: np.random.Generator, n: int, start: pd.Timestamp, end: pd.Timestamp
                ) -> pd.DatetimeIndex:
    span = int((end - start).total_seconds())
    seconds = np.sort(rng.integers(0, span, size=n))
    return pd.DatetimeIndex(start + pd.to_timedelta(seconds, unit="s"))


def _listings(rng: np.random.Generator, groups: np.ndarray, new_mask: np.ndarray) -> pd.DataFrame:
    """Draw listing features; rows where ``new_mask`` holds are new developments."""
    n = len(groups)
    names = list(NEIGHBORHOODS)
    hood_p = np.array([NEIGHBORHOODS[h][1] for h in names])
    hood = rng.choice(names, size=n, p=hood_p / hood_p.sum())
    centre = np.array([NEIGHBORHOODS[h][0] for h in names])[
        pd.Index(names).get_indexer(hood)]
    distance = np.clip(centre * rng.lognormal(0.0, 0.25, n), 0.2, None)

    ptype = np.empty(n, dtype=object)
    for group, mix in TYPE_MIX.items():
        idx = np.flatnonzero(groups == group)
        ptype[idx] = rng.choice(PROPERTY_TYPES, size=idx.size, p=mix)
    u = rng.random(n)
    bedrooms = np.select(
        [ptype == "studio", ptype == "loft", ptype == "apartment"],
        [0, 1 + (u < 0.4), 1 + (u > 0.4) + (u > 0.8)],
        default=2 + (u > 0.3) + (u > 0.7) + (u > 0.92),
    ).astype(int)

    # new developments, all in Eastgate Docks: mostly micro-studio new builds, the rest
    # converted warehouses whose type, size and age are drawn as for any listing (so only
    # the neighborhood tells them apart: it is the root cause the others move with)
    k = int(new_mask.sum())
    hood[new_mask] = NEW_NEIGHBORHOOD
    distance[new_mask] = rng.uniform(9.0, 14.0, k)
    micro = new_mask.copy()
    micro[new_mask] = rng.random(k) < MICRO_STUDIO_SHARE
    m = int(micro.sum())
    ptype[micro] = NEW_PROPERTY_TYPE
    bedrooms[micro] = 0

    type_extra = np.select([ptype == "loft", ptype == "house"], [15.0, 20.0], 0.0)
    area = np.clip(24 + 20 * bedrooms + type_extra + rng.normal(0, 8, n), 15, None)
    area[micro] = np.clip(rng.normal(24, 4, m), 15, None)
    age = np.clip(np.round(rng.gamma(2.0, 18.0, n)), 0, 120)
    age[micro] = rng.integers(0, 4, m)

    # independent of the listing's kind: identical distributions for new developments
    bathrooms = rng.choice([1, 2, 3], size=n, p=[0.6, 0.32, 0.08])
    floor = np.minimum(rng.geometric(0.25, n) - 1, 20)
    furnished = np.where(rng.random(n) < 0.4, "yes", "no")
    pets = np.where(rng.random(n) < 0.3, "yes", "no")
    amenities = np.round(10 * rng.beta(2.0, 2.0, n), 1)

    return pd.DataFrame({
        "area_sqm": np.round(area, 1), "bedrooms": bedrooms, "bathrooms": bathrooms.astype(int),
        "distance_to_center_km": np.round(distance, 2), "floor": floor.astype(int),
        "building_age_years": age.astype(int), "amenities_score": amenities,
        "neighborhood": hood, "property_type": ptype, "furnished": furnished,
        "pets_allowed": pets,
    })


def central_premium(distance_km: np.ndarray) -> np.ndarray:
    """Multiplier for living centrally: 1.3 at the centre, falling towards 0.7."""
    return 0.7 + 0.6 * np.exp(-np.asarray(distance_km) / 3.5)


def rent_rule(frame: pd.DataFrame, no_central_premium: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """Monthly rent in EUR. Rows in ``no_central_premium`` pay the far-out level wherever
    they live (the concept drift)."""
    base = 280 + 14 * frame["area_sqm"] + 70 * frame["bedrooms"] + 60 * (frame["bathrooms"] - 1)
    central = np.where(no_central_premium, 0.78, central_premium(frame["distance_to_center_km"]))
    factor = (central
              * (1 - 0.0025 * np.minimum(frame["building_age_years"], 80))
              * np.where(frame["furnished"] == "yes", 1.08, 1.0)
              * np.where(frame["pets_allowed"] == "yes", 1.03, 1.0)
              * (0.94 + 0.012 * frame["amenities_score"])
              * (1 + 0.006 * np.minimum(frame["floor"], 10))
              * frame["property_type"].map({"loft": 1.10, "house": 1.04}).fillna(1.0))
    noise = rng.lognormal(0.0, 0.07, len(frame))
    return np.round(np.asarray(base * factor * noise, dtype=float), 2)


def make_model() -> Pipeline:
    """The rent model: ordinal-encoded categories + gradient boosting on log rent."""
    encode = ColumnTransformer(
        [("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                encoded_missing_value=np.nan), CATEGORICAL)],
        remainder="passthrough", verbose_feature_names_out=False)
    model = HistGradientBoostingRegressor(
        max_iter=200, learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=40,
        categorical_features=list(range(len(CATEGORICAL))), random_state=0)
    return Pipeline([("encode", encode), ("model", model)])


@dataclass
class RentalData:
    reference: pd.DataFrame
    production: pd.DataFrame


def generate(reference_rows: int = DEFAULT_REFERENCE_ROWS,
             production_rows: int = DEFAULT_PRODUCTION_ROWS,
             seed: int | None = None) -> RentalData:
    """Generate the scenario's reference and production slices, with model predictions."""
    gt = ground_truth()
    rng = np.random.default_rng(gt["seed"] if seed is None else seed)
    year = gt["year"]
    prod_start_month = max(gt["reference_months"]) + 1
    ref_ts = _timestamps(rng, reference_rows, pd.Timestamp(year, 1, 1),
                         pd.Timestamp(year, prod_start_month, 1))
    prod_ts = _timestamps(rng, production_rows, pd.Timestamp(year, prod_start_month, 1),
                          pd.Timestamp(year + 1, 1, 1))
    ts = ref_ts.append(prod_ts)
    n = len(ts)
    months = ts.month.to_numpy()
    groups = rng.choice(list(GROUP_SHARES), size=n, p=list(GROUP_SHARES.values()))

    data_from = gt["data_drift"]["from_month"]
    share_by_group = gt["data_drift"]["new_listing_share"]
    new_share = np.array([share_by_group.get(g, 0.0) for g in GROUP_SHARES])[
        pd.Index(list(GROUP_SHARES)).get_indexer(groups)]
    new_mask = (months >= data_from) & (rng.random(n) < new_share)
    frame = _listings(rng, groups, new_mask)

    concept = gt["concept_drift"]
    no_premium = (months >= concept["from_month"]) & np.isin(groups, concept["segments"])
    frame[gt["target"]] = rent_rule(frame, no_premium, rng)
    frame.insert(0, gt["segment"], groups)
    frame.insert(0, gt["timestamp"], ts.as_unit("us"))
    frame.insert(0, "listing_id", np.arange(1, n + 1, dtype=np.int64))

    is_ref = np.arange(n) < reference_rows
    features = NUMERIC + CATEGORICAL
    x_ref, y_ref = frame.loc[is_ref, features], np.log(frame.loc[is_ref, gt["target"]])
    model = make_model()
    folds = KFold(n_splits=5, shuffle=True, random_state=0)
    oof = cross_val_predict(model, x_ref, y_ref, cv=folds)
    model.fit(x_ref, y_ref)
    prediction = np.empty(n)
    prediction[is_ref] = np.exp(oof)
    prediction[~is_ref] = np.exp(model.predict(frame.loc[~is_ref, features]))
    frame[gt["prediction"]] = np.round(prediction, 2)

    ordered = roles().columns
    frame = frame[ordered]
    return RentalData(frame[is_ref].reset_index(drop=True),
                      frame[~is_ref].reset_index(drop=True))


def build_store(store: Store, reference_rows: int = DEFAULT_REFERENCE_ROWS,
                production_rows: int = DEFAULT_PRODUCTION_ROWS, progress=print) -> None:
    """Write the scenario into ``store`` as dataset ``rental_pricing``: one reference
    snapshot and one production snapshot per month (as a pipeline would land them)."""
    gt = ground_truth()
    name = gt["dataset"]
    if name in store.datasets():
        store.drop_dataset(name)
    progress(f"generating {reference_rows:,} reference + {production_rows:,} production rows")
    data = generate(reference_rows, production_rows)
    store.create_dataset(name, roles(), task=gt["task"],
                         description="Rental-price regression demo with known drift "
                                     "(see rental_ground_truth.json)")
    store.add_snapshot(name, "reference", pa.Table.from_pandas(data.reference, preserve_index=False),
                       source="rental demo generator: reference (months 1-3)")
    month = data.production[gt["timestamp"]].dt.month
    for m in sorted(month.unique()):
        part = data.production[month == m]
        store.add_snapshot(name, "production", pa.Table.from_pandas(part, preserve_index=False),
                           source=f"rental demo generator: production month {m}")
    progress(f"stored dataset {name!r} in {store.root}")
