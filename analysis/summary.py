"""What the pages show, computed from the store for the analyst's filters."""
from __future__ import annotations

import pandas as pd

from analysis import noise, slices
from analysis.counts import binned_counts, reference_moments, whole_counts
from analysis.drift import (TESTS, ReferenceProfile, describe_tests, drift_table,
                            holm_adjusted)
from analysis.engine import Engine, runs_on_spark, sample_rows
from analysis.formats import error, of_total, rows
from analysis.heatmap import binned_drift_table, drift_table_from_counts, pooled_std
from analysis.queries import Filters, load_frame, load_windows
from analysis.reference_bins import frozen_bins
from analysis.stats import EmptySampleError
from analysis.store import Store

SUMMARY_COLUMNS = ["window_start", "rows", "labelled", "mae", "mape", "drifted_features",
                   "judged_features", "drifted_list", "tests", "note"]
#: The values of a feature's distribution picture drawn from a Spark engine.
SAMPLE_ROWS = 100_000


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
                   binning: str = "quantile", min_rows: int = noise.MIN_ROWS,
                   engine: Engine | None = None) -> pd.DataFrame:
    """Per production window: volume, model error and how many features drifted.

    On the Spark engine, :func:`binned_window_summary` (aggregates only; ``test`` and
    ``binning`` must be left at their defaults); otherwise as follows.

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
    if runs_on_spark(engine):
        _only_default_test(test, binning)
        return binned_window_summary(store, dataset, unit, filters, engine, min_rows)
    roles = store.dataset(dataset).roles
    metrics = slices.window_metrics(store, dataset, unit, filters)
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


def binned_window_summary(store: Store, dataset: str, unit: str = "month",
                          filters: Filters | None = None, engine: Engine | None = None,
                          min_rows: int = noise.MIN_ROWS) -> pd.DataFrame:
    """:func:`window_summary` from engine aggregates alone, for data too large to pull
    into this process (the Spark engine): every window's features are judged by
    :func:`analysis.heatmap.binned_drift_table`'s default tests (Wasserstein on the fine
    bins for numeric features with more than 5 values, else Jensen-Shannon on the coarse
    bins; both distances by the noise rule, so there is no p-value to adjust). Two
    queries bin the production rows by window (fine with ranges, coarse), the reference
    is summed from its profiles, and the model error comes from
    :func:`analysis.slices.window_metrics`. Same columns as :func:`window_summary`."""
    metrics = slices.window_metrics(store, dataset, unit, filters, engine)
    if metrics.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    roles = store.dataset(dataset).roles
    bins = frozen_bins(store, dataset, engine=engine)
    reference = whole_counts(store, dataset, bins, "reference", filters, engine=engine)
    std = pooled_std(reference_moments(store, dataset, None, engine=engine), None)
    fine = binned_counts(store, dataset, "production", bins.fine, unit=unit, filters=filters,
                         with_range=True, engine=engine)
    coarse = binned_counts(store, dataset, "production", bins.coarse, unit=unit,
                           filters=filters, engine=engine)
    reference_rows = int(reference[1].groupby("feature", observed=True)["n"].sum().max()
                         if len(reference[1]) else 0)
    drift = []
    for start, size in zip(metrics["window_start"], metrics["rows"]):
        table, note = None, ""
        if reference_rows == 0:
            note = "not judged: the reference has no rows"
        elif size < min_rows:
            note = f"not judged: {rows(int(size))} (fewer than {min_rows})"
        else:
            window = (fine[fine["window"] == start], coarse[coarse["window"] == start])
            table = drift_table_from_counts(bins, roles.features, reference, window, std)
            if not table["drifted"].notna().any():
                table, note = None, table["note"].iloc[0] if len(table) else "no features"
        drift.append((start, *_drift_counts(table, note)))
    drift = pd.DataFrame(drift, columns=["window_start", "drifted_features", "judged_features",
                                         "drifted_list", "tests", "note"])
    drift["drifted_features"] = drift["drifted_features"].astype("float")
    return metrics.merge(drift, on="window_start", how="left")[SUMMARY_COLUMNS]


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


def _only_default_test(test: str | None, binning: str) -> None:
    if test is not None or binning != "quantile":
        raise ValueError("on the Spark engine the drift tests are the default ones, "
                         "computed from binned counts (no other test or binning)")


def filtered_drift_table(store: Store, dataset: str, filters: Filters | None = None,
                         test: str | None = None, binning: str = "quantile",
                         engine: Engine | None = None) -> pd.DataFrame:
    """Drift table of the filtered production rows against the segment-filtered reference.

    On the Spark engine, :func:`analysis.heatmap.binned_drift_table` (from aggregates;
    default tests only, so ``p_adjusted`` is absent); otherwise as follows.

    Binned statistics use the whole reference's frozen bins, so a segment's numbers are
    the same here and on the heatmap. The p-values of the table's tests are judged
    together (:func:`analysis.drift.holm_adjusted`, column ``p_adjusted``): the page
    shows them all at once.

    Raises :class:`EmptySampleError` with a message naming the empty side.
    """
    if runs_on_spark(engine):
        _only_default_test(test, binning)
        counts = slices.row_counts(store, dataset, filters, engine)
        _raise_when_empty(counts["reference"], counts["production"])
        return binned_drift_table(store, dataset, filters, engine=engine)
    features = store.dataset(dataset).roles.features
    reference = load_frame(store, dataset, "reference", list(features), filters)
    production = load_frame(store, dataset, "production", list(features), filters)
    _raise_when_empty(len(reference), len(production))
    table = drift_table(reference, production, features, test=test, binning=binning,
                        bins=frozen_bins(store, dataset).coarse)
    return holm_adjusted([table])[0]


def _raise_when_empty(reference_rows: int, production_rows: int) -> None:
    if reference_rows == 0:
        raise EmptySampleError("the reference has no rows for the selected segments")
    if production_rows == 0:
        raise EmptySampleError("no production rows in the selected time range and segments")


def feature_samples(store: Store, dataset: str, feature: str, filters: Filters | None = None,
                    engine: Engine | None = None) -> tuple[pd.Series, pd.Series]:
    """The reference and production values of one feature under the filters; on the
    Spark engine a sample of each side of at most about
    ``SAMPLE_ROWS`` values (:func:`analysis.engine.sample_rows`), for the pictures."""
    if runs_on_spark(engine):
        return tuple(sample_rows(store, dataset, side, [feature], filters, engine,
                                 SAMPLE_ROWS)[feature] for side in ("reference", "production"))
    ref = load_frame(store, dataset, "reference", [feature], filters)[feature]
    prod = load_frame(store, dataset, "production", [feature], filters)[feature]
    return ref, prod



def cell_frames(store: Store, dataset: str, cells: list[Filters]) -> list[pd.DataFrame]:
    """The feature rows of each production cell (time range + segment values)."""
    features = list(store.dataset(dataset).roles.features)
    return [load_frame(store, dataset, "production", features, f) for f in cells]


def compare_cells(store: Store, dataset: str, a: Filters, b: Filters,
                  test: str | None = None, engine: Engine | None = None) -> pd.DataFrame:
    """Drift table of production cell ``b`` against production cell ``a``, feature by
    feature (``a`` plays the reference), on the reference's frozen bins; p-values
    Holm-adjusted over the features as in :func:`filtered_drift_table`. On the Spark
    engine, :func:`binned_compare_cells` (default tests only)."""
    if runs_on_spark(engine):
        _only_default_test(test, "quantile")
        return binned_compare_cells(store, dataset, a, b, engine)
    frame_a, frame_b = cell_frames(store, dataset, [a, b])
    if frame_a.empty:
        raise EmptySampleError("cell A has no production rows")
    if frame_b.empty:
        raise EmptySampleError("cell B has no production rows")
    features = store.dataset(dataset).roles.features
    table = drift_table(frame_a, frame_b, features, test=test,
                        bins=frozen_bins(store, dataset).coarse)
    return holm_adjusted([table])[0]


def binned_compare_cells(store: Store, dataset: str, a: Filters, b: Filters,
                         engine: Engine | None = None) -> pd.DataFrame:
    """:func:`compare_cells` from engine aggregates: the default tests of
    :func:`analysis.heatmap.binned_drift_table`, with cell ``a``'s counts in the
    reference's place (the Wasserstein distance still normed by the reference's
    standard deviation)."""
    bins = frozen_bins(store, dataset, engine=engine)
    counts_a, counts_b = (whole_counts(store, dataset, bins, "production", cell, engine=engine)
                          for cell in (a, b))
    for name, (_, coarse) in (("A", counts_a), ("B", counts_b)):
        if coarse["n"].sum() == 0:
            raise EmptySampleError(f"cell {name} has no production rows")
    std = pooled_std(reference_moments(store, dataset, None, engine=engine), None)
    return drift_table_from_counts(bins, store.dataset(dataset).roles.features, counts_a,
                                   counts_b, std)
