"""What the pages show, computed from the store for the analyst's filters."""
from __future__ import annotations

import pandas as pd

from analysis import noise
from analysis.drift import (TESTS, ReferenceProfile, describe_tests, drift_table,
                            holm_adjusted)
from analysis.formats import error, of_total, rows
from analysis.queries import Filters, load_frame, load_windows, window_metrics
from analysis.reference_bins import frozen_bins
from analysis.stats import EmptySampleError
from analysis.store import Store

SUMMARY_COLUMNS = ["window_start", "rows", "labelled", "mae", "mape", "drifted_features",
                   "judged_features", "drifted_list", "tests", "note"]


def _window_table(profile: ReferenceProfile | None, window: pd.DataFrame, test: str | None,
                  binning: str, min_rows: int) -> tuple[pd.DataFrame | None, str]:
    """(drift table or None, note) of one window; None when the window or the reference
    is too small to judge."""
    if profile is None:
        return None, "not judged: the reference has no rows"
    if len(window) < min_rows:
        return None, f"not judged: {rows(len(window))} (fewer than {min_rows})"
    table = profile.table(window, test=test, binning=binning, min_rows=min_rows)
    if table["drifted"].notna().any():
        return table, ""
    return None, table["note"].iloc[0] if len(table) else "no features"


def _drift_counts(table: pd.DataFrame | None, note: str) -> tuple:
    """(drifted count or None, judged count, drifted names, tests run, note)."""
    if table is None:
        return None, 0, "", "", note
    judged = table[table["drifted"].notna()]
    drifted = judged[judged["drifted"].astype(bool)]["feature"].tolist()
    tests = ", ".join(t for t in TESTS if t in set(judged["test"]))
    return len(drifted), len(judged), ", ".join(drifted), tests, ""


def window_summary(store: Store, dataset: str, unit: str = "month",
                   filters: Filters | None = None, test: str | None = None,
                   binning: str = "quantile", min_rows: int = noise.MIN_ROWS) -> pd.DataFrame:
    """Per production window: volume, model error and how many features drifted.

    Each window's features are compared with the (segment-filtered) reference by the
    default test per column, or ``test`` when given, on the whole reference's frozen
    bins, with the drift table's rule (a distance must also be beyond its noise level).
    Tests with a p-value are judged together over all windows and features
    (:func:`analysis.drift.holm_adjusted`: family-wise 5 %), since the chart shows them
    all at once. A window with fewer than ``min_rows`` rows is not judged:
    ``drifted_features`` None, ``judged_features`` 0 and the reason in ``note``.
    Returns the columns of ``SUMMARY_COLUMNS``; ``drifted_list`` names the drifted
    features, comma-separated, and ``tests`` the tests that ran (see
    :func:`tests_caption`).
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
    starts, tables, notes = [], [], []
    for start, window in production.groupby("window_start", sort=True):
        table, note = _window_table(profile, window, test, binning, min_rows)
        starts.append(start)
        tables.append(table)
        notes.append(note)
    judged = holm_adjusted([t for t in tables if t is not None])
    tables = [None if t is None else judged.pop(0) for t in tables]
    drift = pd.DataFrame([(s, *_drift_counts(t, n)) for s, t, n in zip(starts, tables, notes)],
                         columns=["window_start", "drifted_features", "judged_features",
                                  "drifted_list", "tests", "note"])
    drift["drifted_features"] = drift["drifted_features"].astype("float")
    merged = metrics.merge(drift, on="window_start", how="left")
    return merged.fillna({"drifted_list": "", "tests": "", "note": ""})[SUMMARY_COLUMNS]


def latest_window(summary: pd.DataFrame, min_rows: int = noise.MIN_ROWS) -> pd.Series:
    """The row of the latest window with at least ``min_rows`` rows (a trailing window of
    a few rows says little), or the latest window when none has that many."""
    large = summary[summary["rows"] >= min_rows]
    return (large if not large.empty else summary).iloc[-1]


def latest_window_note(summary: pd.DataFrame, unit: str, min_rows: int = noise.MIN_ROWS) -> str:
    """Which window :func:`latest_window` picked, in words, for the metric cards."""
    row = latest_window(summary, min_rows)
    text = f"The {unit} starting {pd.Timestamp(row['window_start']):%Y-%m-%d}"
    if row["window_start"] != summary["window_start"].iloc[-1]:
        text += f", the latest with at least {min_rows} rows"
    return text + "."


def per_window_table(summary: pd.DataFrame, n_features: int) -> pd.DataFrame:
    """:func:`window_summary`'s frame as the Overview lists it: every column under a
    readable name, MAE and MAPE with 2 decimals (an em dash without labels), ``drifted``
    as "2 of 10" or "not judged", and ``which``: the drifted features, or why the window
    was not judged."""
    return summary.rename(columns={"window_start": "window start", "labelled": "labelled rows",
                                   "drifted_features": "drifted features",
                                   "judged_features": "features tested"}).assign(
        MAE=summary["mae"].map(error), MAPE=summary["mape"].map(error),
        drifted=[of_total(d, n_features) for d in summary["drifted_features"]],
        which=summary["drifted_list"].where(summary["note"] == "", summary["note"]))


def tests_run(summary: pd.DataFrame) -> list[str]:
    """The tests that ran in any window of :func:`window_summary`'s frame."""
    names = set()
    for tests in summary.get("tests", pd.Series(dtype=object)).dropna():
        names |= {t.strip() for t in tests.split(",") if t.strip()}
    return [t for t in TESTS if t in names]


def tests_caption(summary: pd.DataFrame) -> str:
    """What the Overview's drift column means, built from the tests that actually ran."""
    return ("Each window's features are compared with the reference rows of the same groups. "
            + describe_tests(tests_run(summary), holm_over="every window and feature shown"))


def filtered_drift_table(store: Store, dataset: str, filters: Filters | None = None,
                         test: str | None = None, binning: str = "quantile") -> pd.DataFrame:
    """Drift table of the filtered production rows against the segment-filtered reference.

    Binned statistics use the whole reference's frozen bins, so a segment's numbers are
    the same here and on the heatmap. The p-values of the table's tests are judged
    together (:func:`analysis.drift.holm_adjusted`, column ``p_adjusted``): the page
    shows them all at once.

    Raises :class:`EmptySampleError` with a message naming the empty side.
    """
    features = store.dataset(dataset).roles.features
    reference = load_frame(store, dataset, "reference", list(features), filters)
    production = load_frame(store, dataset, "production", list(features), filters)
    if reference.empty:
        raise EmptySampleError("the reference has no rows for the selected segments")
    if production.empty:
        raise EmptySampleError("no production rows in the selected time range and segments")
    table = drift_table(reference, production, features, test=test, binning=binning,
                        bins=frozen_bins(store, dataset).coarse)
    return holm_adjusted([table])[0]


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
    feature (``a`` plays the reference), on the reference's frozen bins; p-values
    Holm-adjusted over the features as in :func:`filtered_drift_table`."""
    frame_a, frame_b = cell_frames(store, dataset, [a, b])
    if frame_a.empty:
        raise EmptySampleError("cell A has no production rows")
    if frame_b.empty:
        raise EmptySampleError("cell B has no production rows")
    features = store.dataset(dataset).roles.features
    table = drift_table(frame_a, frame_b, features, test=test,
                        bins=frozen_bins(store, dataset).coarse)
    return holm_adjusted([table])[0]
