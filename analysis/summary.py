"""What the pages show, computed from the store for the analyst's filters."""
from __future__ import annotations

import pandas as pd

from analysis.aggregate import frozen_bins
from analysis.drift import ReferenceProfile, drift_table
from analysis.queries import Filters, load_frame, load_windows, window_metrics
from analysis.stats import EmptySampleError
from analysis.store import Store

SUMMARY_COLUMNS = ["window_start", "rows", "labelled", "mae", "mape", "drifted_features",
                   "judged_features", "drifted_list"]


def window_summary(store: Store, dataset: str, unit: str = "month",
                   filters: Filters | None = None, test: str | None = None,
                   binning: str = "quantile") -> pd.DataFrame:
    """Per production window: volume, model error and how many features drifted.

    Each window's features are compared with the (segment-filtered) reference by the
    default test per column, or ``test`` when given, on the whole reference's frozen bins. Returns the columns of
    ``SUMMARY_COLUMNS``; ``drifted_list`` names the drifted features, comma-separated.
    """
    roles = store.dataset(dataset).roles
    metrics = window_metrics(store, dataset, unit, filters)
    if metrics.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    features = roles.features
    reference = load_frame(store, dataset, "reference", list(features), filters)
    production = load_windows(store, dataset, list(features), unit, filters)
    bins = frozen_bins(store, dataset).coarse if not reference.empty else None
    profile = ReferenceProfile(reference, features, bins) if bins is not None else None
    counts = []
    for start, window in production.groupby("window_start", sort=True):
        if profile is None:
            counts.append((start, None, 0, ""))
            continue
        table = profile.table(window, test=test, binning=binning)
        judged = table[table["drifted"].notna()]
        drifted = judged[judged["drifted"].astype(bool)]["feature"].tolist()
        counts.append((start, len(drifted), len(judged), ", ".join(drifted)))
    drift = pd.DataFrame(counts, columns=["window_start", "drifted_features", "judged_features",
                                          "drifted_list"])
    return metrics.merge(drift, on="window_start", how="left")[SUMMARY_COLUMNS]


def filtered_drift_table(store: Store, dataset: str, filters: Filters | None = None,
                         test: str | None = None, binning: str = "quantile") -> pd.DataFrame:
    """Drift table of the filtered production rows against the segment-filtered reference.

    Binned statistics use the whole reference's frozen bins, so a segment's numbers are
    the same here and on the heatmap.

    Raises :class:`EmptySampleError` with a message naming the empty side.
    """
    features = store.dataset(dataset).roles.features
    reference = load_frame(store, dataset, "reference", list(features), filters)
    production = load_frame(store, dataset, "production", list(features), filters)
    if reference.empty:
        raise EmptySampleError("the reference has no rows for the selected segments")
    if production.empty:
        raise EmptySampleError("no production rows in the selected time range and segments")
    return drift_table(reference, production, features, test=test, binning=binning,
                       bins=frozen_bins(store, dataset).coarse)


def feature_samples(store: Store, dataset: str, feature: str,
                    filters: Filters | None = None) -> tuple[pd.Series, pd.Series]:
    """The reference and production values of one feature under the filters."""
    ref = load_frame(store, dataset, "reference", [feature], filters)[feature]
    prod = load_frame(store, dataset, "production", [feature], filters)[feature]
    return ref, prod



def cell_frames(store: Store, dataset: str, cells: list[Filters]) -> list[pd.DataFrame]:
    """The feature rows of each production cell (time range + segment values)."""
    features = list(store.dataset(dataset).roles.features)
    return [load_frame(store, dataset, "production", features, f) for f in cells]


def compare_cells(store: Store, dataset: str, a: Filters, b: Filters,
                  test: str | None = None) -> pd.DataFrame:
    """Drift table of production cell ``b`` against production cell ``a``, feature by
    feature (``a`` plays the reference), on the reference's frozen bins."""
    frame_a, frame_b = cell_frames(store, dataset, [a, b])
    if frame_a.empty:
        raise EmptySampleError("cell A has no production rows")
    if frame_b.empty:
        raise EmptySampleError("cell B has no production rows")
    features = store.dataset(dataset).roles.features
    return drift_table(frame_a, frame_b, features, test=test,
                       bins=frozen_bins(store, dataset).coarse)
