"""Feature x window drift grids from binned counts (the heatmap and segments pages).

The engine returns long binned counts (:mod:`analysis.counts`); here they become
dense numpy cubes ``[window, segment, bin]`` and every statistic is computed from them.
Roll-ups are sums: "all groups" sums the segment axis, weeks and months sum days.

Metrics and where they come from:

==============  ===============================  =====================================
metric          counts                           bands (stable / moderate / major)
==============  ===============================  =====================================
psi             coarse (reference deciles)       < 0.1 / 0.1-0.25 / > 0.25 (convention)
jensenshannon   coarse                           < 0.1 / 0.1-0.2 / > 0.2
wasserstein     fine (1000 quantile bins,        < 0.1 / 0.1-0.25 / > 0.25 (normed)
                with per-bin min, max, sum)
ks              fine                             < 0.05 / 0.05-0.1 / > 0.1 (D)
==============  ===============================  =====================================

Coarse statistics are exact on their bins. KS from fine bins is exact at the ~1000 edges
and at most :func:`analysis.stats.ks_from_bins`' bound below the exact D; Wasserstein
from fine bins is exact except where the two CDFs cross inside a bin
(:func:`analysis.stats.wasserstein_from_bins`).

A cell is judged by :func:`analysis.noise.verdict`: fewer than 50 rows on a side, not
judged; otherwise drift when the value is at or above the lower band (material) and
above the cell's noise level at its sizes (:func:`cell_noise_level`). Only drifted cells
take the moderate and major colours.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from analysis import noise, stats
from analysis.calendar_windows import window_start
from analysis.counts import binned_counts, day_counts, reference_moments, whole_counts
from analysis.drift import TESTS, FeatureDrift, judge_distance
from analysis.engine import Engine
from analysis.queries import Filters
from analysis.reference_bins import FrozenBins, frozen_bins, n_bins
from analysis.stats import pool_moments
from analysis.store import Store

METRICS = {
    "psi": ("PSI", "coarse", (0.1, 0.25)),
    "jensenshannon": ("Jensen-Shannon distance", "coarse", (0.1, 0.2)),
    "wasserstein": ("Wasserstein distance (normed)", "fine", (0.1, 0.25)),
    "ks": ("KS statistic D", "fine", (0.05, 0.1)),
}
ALL = "all"


@dataclass
class Cube:
    """Counts ``[window, segment, bin]`` with every feature's bins side by side."""

    windows: np.ndarray
    segments: list[str]
    offsets: dict[str, tuple[int, int]]
    counts: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # lo / hi / sum (fine)
    reference: np.ndarray | None = None                          # [segment, bin]
    reference_extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return list(self.offsets)


def _layout(bins: dict) -> tuple[dict[str, tuple[int, int]], int]:
    offsets, pos = {}, 0
    for feature, b in bins.items():
        offsets[feature] = (pos, n_bins(b))
        pos += n_bins(b)
    return offsets, pos


def _fill(frame: pd.DataFrame, offsets, width, windows, segments, with_range):
    shape = (len(windows), len(segments), width)
    counts = np.zeros(shape)
    extra = {}
    if frame.empty:
        return counts, extra
    wi = np.searchsorted(windows, frame["window"].to_numpy(dtype="datetime64[us]"))
    seg = frame["segment"]
    if isinstance(seg.dtype, pd.CategoricalDtype):
        si = pd.Index(segments).get_indexer(seg.cat.categories.astype(str))[seg.cat.codes.to_numpy()]
    else:
        si = pd.Index(segments).get_indexer(pd.Index(seg))
    # the engine returns features as a categorical: map its few categories, not every row
    feature = frame["feature"]
    start = np.array([offsets[f][0] for f in feature.cat.categories])[feature.cat.codes.to_numpy()]
    bi = start + frame["bin"].to_numpy(dtype=int)
    np.add.at(counts, (wi, si, bi), frame["n"].to_numpy(dtype=float))
    if with_range:
        lo = np.full(shape, np.inf)
        hi = np.full(shape, -np.inf)
        total = np.zeros(shape)
        np.minimum.at(lo, (wi, si, bi), frame["lo"].to_numpy(dtype=float, na_value=np.inf))
        np.maximum.at(hi, (wi, si, bi), frame["hi"].to_numpy(dtype=float, na_value=-np.inf))
        np.add.at(total, (wi, si, bi), frame["sum"].to_numpy(dtype=float, na_value=0.0))
        extra = {"lo": lo, "hi": hi, "sum": total}
    return counts, extra


def build_cube(store: Store, dataset: str, segment: str | None, resolution: str,
               unit: str = "day", filters: Filters | None = None,
               bins: FrozenBins | None = None, engine: Engine | None = None,
               profiles: bool = True) -> Cube:
    """Production counts at ``unit`` grain per ``segment`` value, and reference counts
    per segment value, on the frozen ``resolution`` ('coarse' or 'fine') bins.

    Two engine queries (production, reference) on ``engine`` (None: the embedded
    DuckDB); everything after is numpy, the same for every engine. ``profiles=False``
    bins every row instead of summing the snapshots' profiles (what a first look at
    new data, or a production table on Spark, costs).
    """
    bins = bins or frozen_bins(store, dataset, engine=engine)
    chosen = bins.coarse if resolution == "coarse" else bins.fine
    with_range = resolution == "fine"
    offsets, width = _layout(chosen)
    day_aligned = filters is None or all(
        v is None or (v.hour, v.minute, v.second, v.microsecond) == (0, 0, 0, 0)
        for v in (filters.start, filters.end))
    if resolution == "coarse" and unit == "day" and day_aligned and profiles:
        # the heatmap's cube: sum the snapshots' profiles (or count their bin codes)
        # instead of re-binning rows
        prod = day_counts(store, dataset, bins, segment, filters, engine=engine)
    else:
        prod = binned_counts(store, dataset, "production", chosen, unit=unit, segment=segment,
                             filters=filters, with_range=with_range, engine=engine)
    if resolution == "coarse" and profiles:
        ref = day_counts(store, dataset, bins, segment, slice="reference", engine=engine)
    else:
        ref = binned_counts(store, dataset, "reference", chosen, unit=None, segment=segment,
                            with_range=with_range, engine=engine)
    segments = sorted(set(prod["segment"].astype(str).unique()) |
                      set(ref["segment"].astype(str).unique())) or [ALL]
    windows = np.unique(prod["window"].to_numpy(dtype="datetime64[us]"))
    counts, extra = _fill(prod, offsets, width, windows, segments, with_range)
    ref_counts, ref_extra = _fill(ref.assign(window=np.datetime64("1970-01-01", "us")),
                                  offsets, width, np.array(["1970-01-01"], dtype="datetime64[us]"),
                                  segments, with_range)
    return Cube(windows, segments, offsets, counts, extra, ref_counts[0],
                {k: v[0] for k, v in ref_extra.items()})


def select(cube: Cube, unit: str, start: datetime | None = None, end: datetime | None = None,
           segments: list[str] | None = None) -> Cube:
    """Roll a day-grain cube up to ``unit`` windows within [start, end), summing the
    kept segments into one (reference too). Pure numpy: this is the warm path."""
    keep_w = np.ones(len(cube.windows), dtype=bool)
    if start is not None:
        keep_w &= cube.windows >= np.datetime64(start, "us")
    if end is not None:
        keep_w &= cube.windows < np.datetime64(end, "us")
    seg_idx = [i for i, s in enumerate(cube.segments) if segments is None or s in segments]
    counts = cube.counts[keep_w][:, seg_idx].sum(axis=1)
    ref = cube.reference[seg_idx].sum(axis=0)
    starts = window_start(cube.windows[keep_w], unit)
    windows, inverse = np.unique(starts, return_inverse=True)
    rolled = np.zeros((len(windows), counts.shape[1]))
    np.add.at(rolled, inverse, counts)
    extra, ref_extra = {}, {}
    if cube.extra:
        for name, reduce_, fill in (("lo", np.minimum, np.inf), ("hi", np.maximum, -np.inf),
                                    ("sum", np.add, 0.0)):
            part = cube.extra[name][keep_w][:, seg_idx]
            part = reduce_.reduce(part, axis=1)
            out = np.full((len(windows), part.shape[1]), fill)
            reduce_.at(out, inverse, part)
            extra[name] = out
            ref_extra[name] = reduce_.reduce(cube.reference_extra[name][seg_idx], axis=0)
    return Cube(windows, ["selected"], cube.offsets, rolled[:, None, :],
                {k: v[:, None, :] for k, v in extra.items()}, ref[None, :],
                {k: v[None, :] for k, v in ref_extra.items()})


def _feature_slice(cube: Cube, feature: str) -> slice:
    start, length = cube.offsets[feature]
    return slice(start, start + length)


def cell_statistic(metric: str, bins, ref_counts, prod_counts, ref_extra=None,
                   prod_extra=None, ref_std: float | None = None) -> float:
    """One cell's statistic from its count vectors (laid out as ``bins.counts``)."""
    if prod_counts.sum() == 0 or ref_counts.sum() == 0:
        return np.nan
    if metric == "psi":
        return stats.psi(ref_counts, prod_counts)
    if metric == "jensenshannon":
        return stats.jensenshannon_distance(ref_counts, prod_counts)
    # fine metrics: numeric only, missing bin excluded
    r, p = ref_counts[:-1], prod_counts[:-1]
    if r.sum() == 0 or p.sum() == 0:
        return np.nan
    if metric == "ks":
        return stats.ks_from_bins(r, p)[0]
    if metric == "wasserstein":
        ref = {"n": r, **{k: v[:-1] for k, v in ref_extra.items()}}
        prod = {"n": p, **{k: v[:-1] for k, v in prod_extra.items()}}
        w = stats.wasserstein_from_bins(bins.edges, ref, prod)
        return w / max(ref_std, 1e-3)
    raise ValueError(f"unknown metric {metric!r}")


def _judged_sizes(metric: str, ref_counts: np.ndarray, prod_counts: np.ndarray
                  ) -> tuple[float, float]:
    """Reference and production sizes a cell's statistic sees: every row for the coarse
    metrics (missing values have a bin), non-missing values for the fine ones."""
    if METRICS[metric][1] == "coarse":
        return float(ref_counts.sum()), float(prod_counts.sum())
    return float(ref_counts[:-1].sum()), float(prod_counts[:-1].sum())


def cell_noise_level(metric: str, ref_counts, prod_counts, ref_extra=None,
                     ref_std: float | None = None, alpha: float = noise.ALPHA) -> float:
    """A cell's noise level (:mod:`analysis.noise`): the 1 - ``alpha`` quantile of
    ``metric`` between two samples of the cell's sizes drawn from the reference.

    PSI and Jensen-Shannon on the reference's coarse bin shares; KS its critical value;
    Wasserstein on the reference's fine bins, each bin's mass at its mean (sum / count).
    """
    n, m = _judged_sizes(metric, ref_counts, prod_counts)
    if metric in ("psi", "jensenshannon"):
        return noise.binned_noise_level(metric, ref_counts, m, alpha)
    if metric == "ks":
        return noise.ks_critical_value(n, m, alpha)
    if metric == "wasserstein":
        return _fine_wasserstein_noise(ref_counts, ref_extra["sum"], m, ref_std, alpha)
    raise ValueError(f"unknown metric {metric!r}")


def _fine_wasserstein_noise(counts, sums, m: int, ref_std: float | None,
                            alpha: float = noise.ALPHA) -> float:
    """Wasserstein's noise level from the reference's fine bins (the last one, missing
    values, left out), each bin's mass at its mean value (sum / count)."""
    r = np.asarray(counts, dtype=float)[:-1]
    live = r > 0
    points = np.asarray(sums, dtype=float)[:-1][live] / r[live]
    return noise.wasserstein_noise_level(points, r[live], m, max(ref_std or 0.0, 1e-3), alpha)


GRID_COLUMNS = ["feature", "window_start", "value", "rows", "reference_rows", "noise",
                "verdict"]


def grid(cube: Cube, metric: str, bins: FrozenBins, reference_std: dict[str, float] | None = None,
         *, min_rows: int = noise.MIN_ROWS, alpha: float = noise.ALPHA) -> pd.DataFrame:
    """Metric per feature x window of a selected (one-segment) cube, and each cell's
    verdict.

    Returns a long frame with ``GRID_COLUMNS``: feature, window_start, value, rows
    (production rows in the cell), reference_rows, noise (the cell's noise level, computed
    where the value reaches the lower band; NaN elsewhere) and verdict ('not judged',
    'stable', 'within noise', 'drift'; :func:`analysis.noise.verdict`). Features the
    metric does not apply to (categorical for KS/Wasserstein) are left out.
    ``reference_std`` (population sd of each numeric feature in the selected reference)
    is needed for Wasserstein.
    """
    label, resolution, (low, _) = METRICS[metric]
    chosen = bins.coarse if resolution == "coarse" else bins.fine
    std = reference_std or {}
    rows = []
    for feature in cube.features:
        if feature not in chosen:
            continue
        sl = _feature_slice(cube, feature)
        ref = cube.reference[0, sl]
        ref_extra = {k: v[0, sl] for k, v in cube.reference_extra.items()}
        for w, start in enumerate(cube.windows):
            prod = cube.counts[w, 0, sl]
            prod_extra = {k: v[w, 0, sl] for k, v in cube.extra.items()}
            value = cell_statistic(metric, chosen[feature], ref, prod, ref_extra, prod_extra,
                                   std.get(feature))
            n, m = _judged_sizes(metric, ref, prod)
            level = np.nan
            if min(n, m) >= min_rows and not np.isnan(value) and value >= low:
                level = cell_noise_level(metric, ref, prod, ref_extra, std.get(feature), alpha)
            verdict = noise.verdict(value, low, level, m, n, min_rows)
            rows.append((feature, pd.Timestamp(start), value, int(prod.sum()), int(ref.sum()),
                         level, verdict))
    return pd.DataFrame(rows, columns=GRID_COLUMNS)


def cell_class(metric: str, value: float, verdict: str) -> str:
    """What a heatmap cell shows: 'not judged', 'stable', 'within noise', or the band of
    a drifted cell ('moderate', 'major')."""
    if verdict == noise.DRIFT:
        return band(metric, value)
    return verdict


def grid_caption(cells: pd.DataFrame, metric: str, min_rows: int = noise.MIN_ROWS,
                 alpha: float = noise.ALPHA) -> str:
    """The heatmap's caption: how many cells drifted (by band), how many are within
    noise or not judged, and the rule."""
    label, _, (low, high) = METRICS[metric]
    classes = [cell_class(metric, v, d) for v, d in zip(cells["value"], cells["verdict"])]
    tally = {c: classes.count(c) for c in ("major", "moderate", "within noise", "not judged")}
    return (f"{tally['major']} of {len(cells)} cells in the major band (> {high:g}), "
            f"{tally['moderate']} moderate ({low:g}–{high:g}); {tally['within noise']} reach "
            f"{low:g} but within noise (pale); {tally['not judged']} with fewer than {min_rows} "
            f"rows on a side, not judged (grey). " + drift_rule(metric, min_rows, alpha)
            + " The numbers in the cells (and on hover): production rows.")


def drift_rule(metric: str, min_rows: int = noise.MIN_ROWS, alpha: float = noise.ALPHA) -> str:
    """The rule that calls a cell drift, in a sentence."""
    label, _, (low, _) = METRICS[metric]
    return (f"A cell is drift when its {label} is at least {low:g} and above its noise level, "
            f"the {noise.percentile_name(alpha)} of the {label} between two samples of the "
            f"cell's sizes drawn from the reference; cells with fewer than {min_rows} rows "
            "are not judged.")


def pooled_std(moments: pd.DataFrame, segments: list[str] | None) -> dict[str, float]:
    """Population sd of each feature over the chosen segments, pooled from per-segment
    (n, mean, variance) by :func:`analysis.stats.pool_moments` (M2 = variance x n)."""
    part = moments if segments is None else moments[moments["segment"].isin(segments)]
    out = {}
    for feature, g in part.groupby("feature"):
        n = g["n"].to_numpy(float)
        total, _, var = pool_moments(n, g["mean"].to_numpy(float), g["var"].to_numpy(float) * n)
        if total > 0:
            out[feature] = float(np.sqrt(var))
    return out


def segment_drift(cube: Cube, bins: FrozenBins, unit: str, start=None, end=None,
                  segments: list[str] | None = None, metric: str = "psi") -> pd.DataFrame:
    """Per segment value x window: the largest ``metric`` over features (``max_value``),
    which feature it is (``top_feature``), and the share of judged features that drifted
    by :func:`grid`'s rule (``drifted_share``: at or above the metric's lower band, e.g.
    PSI >= 0.1, and above the noise level). A cell whose window has fewer than
    :data:`analysis.noise.MIN_ROWS` rows is not judged: NaN values, ``judged`` False."""
    out = []
    for segment in cube.segments:
        if segments is not None and segment not in segments:
            continue
        g = grid(select(cube, unit, start, end, [segment]), metric, bins)
        for window, part in g.groupby("window_start"):
            values = part[part["verdict"] != noise.NOT_JUDGED].dropna(subset=["value"])
            rows = int(part["rows"].max())
            if values.empty:
                out.append((window, segment, np.nan, "", np.nan, rows, False))
                continue
            top = values.loc[values["value"].idxmax()]
            out.append((window, segment, float(top["value"]), top["feature"],
                        float((values["verdict"] == noise.DRIFT).mean()), rows, True))
    return pd.DataFrame(out, columns=["window_start", "segment", "max_value", "top_feature",
                                      "drifted_share", "rows", "judged"])


def binned_drift_table(store: Store, dataset: str, filters: Filters | None = None,
                       bins: FrozenBins | None = None, profiles: bool = True,
                       engine: Engine | None = None) -> pd.DataFrame:
    """The default drift table (Evidently's rule for a reference over 1000 rows) computed
    from engine aggregates alone, for data too large to pull into memory.

    Numeric features with more than 5 distinct values: Wasserstein (normed) from the
    fine bins; the rest: Jensen-Shannon on the coarse bins. Distinct values are counted
    from the fine bins (a bin whose min equals its max holds one value), which is exact
    whenever a column has 5 values or fewer. Fine and coarse counts of production
    (filtered) and reference come from :func:`analysis.counts.whole_counts`: summed
    from the snapshots' profiles, binning rows only of snapshots the time range cuts
    (``profiles=False``: binning every row, as when no profile exists yet). The counts
    run on ``engine`` (None: the embedded DuckDB); the statistics here, the same for
    every engine.
    """

    bins = bins or frozen_bins(store, dataset, engine=engine)
    production = whole_counts(store, dataset, bins, "production", filters, profiles, engine)
    reference = whole_counts(store, dataset, bins, "reference", filters, profiles, engine)
    std = pooled_std(reference_moments(store, dataset, None, profiles, engine), None)
    return drift_table_from_counts(bins, store.dataset(dataset).roles.features, reference,
                                   production, std)


def _count_vectors(frame: pd.DataFrame, feature: str, width: int, with_range: bool) -> dict:
    """One feature's long counts as dense vectors over its ``width`` bins: ``n``, and
    ``lo``/``hi``/``sum`` when ``with_range`` (NaN, NaN, 0 where a bin is empty)."""
    part = frame[frame["feature"] == feature]
    idx = part["bin"].to_numpy(dtype=int)
    out = {"n": np.zeros(width)}
    np.add.at(out["n"], idx, part["n"].to_numpy(dtype=float))
    if with_range:
        for name, fill in (("lo", np.nan), ("hi", np.nan), ("sum", 0.0)):
            out[name] = np.full(width, fill)
            out[name][idx] = part[name].to_numpy(dtype=float, na_value=fill)
    return out


def _distinct_values(r: dict, p: dict) -> int:
    """A lower bound of the distinct values in two fine-bin vectors: a bin whose min
    equals its max holds one value, any other at least two (exact up to 5 values)."""
    single = (r["lo"] == r["hi"]) | (r["n"] == 0)
    single_p = (p["lo"] == p["hi"]) | (p["n"] == 0)
    values = set(r["lo"][(r["n"] > 0) & single]) | set(p["lo"][(p["n"] > 0) & single_p])
    return len(values) + 2 * int((~single).sum() + (~single_p).sum())


def drift_table_from_counts(bins: FrozenBins, features: dict, reference: tuple,
                            production: tuple, std: dict[str, float]) -> pd.DataFrame:
    """:func:`binned_drift_table`'s table from the counts: ``reference`` and
    ``production`` are each (fine, coarse) long frames of ``feature``, ``bin``, ``n``
    (and ``lo``, ``hi``, ``sum`` for fine), as :func:`analysis.counts.whole_counts`
    returns; ``std`` the reference's standard deviation per numeric feature (the
    Wasserstein distance's scale). Pure numpy: the same on every engine."""
    (fine_r, coarse_r), (fine_p, coarse_p) = reference, production
    rows = []
    for feature, kind in features.items():
        test, r = "jensenshannon", None
        if feature in bins.fine:
            width = n_bins(bins.fine[feature])
            r = _count_vectors(fine_r, feature, width, True)
            p = _count_vectors(fine_p, feature, width, True)
            if _distinct_values(r, p) > 5:
                test = "wasserstein"
        spec = TESTS[test]
        width = n_bins(bins.coarse[feature])
        ref_coarse = _count_vectors(coarse_r, feature, width, False)["n"]
        prod_coarse = _count_vectors(coarse_p, feature, width, False)["n"]
        # the last coarse bin counts missing values
        row = FeatureDrift(feature, kind, test, None, None, spec.threshold, None,
                           int(ref_coarse[:-1].sum()), int(prod_coarse[:-1].sum()))
        if test == "wasserstein":
            r_trim = {k: v[:-1] for k, v in r.items()}
            p_trim = {k: v[:-1] for k, v in p.items()}
            sizes = (r_trim["n"].sum(), p_trim["n"].sum())
            if p_trim["n"].sum() and r_trim["n"].sum():
                w = stats.wasserstein_from_bins(bins.fine[feature].edges, r_trim, p_trim)
                row.statistic = w / max(std.get(feature, 0.0), 1e-3)
        else:
            sizes = (ref_coarse.sum(), prod_coarse.sum())
            if prod_coarse.sum() and ref_coarse.sum():
                row.statistic = stats.jensenshannon_distance(ref_coarse, prod_coarse)
        _judge_binned_row(row, sizes, ref_coarse, r, std.get(feature))
        rows.append(row.as_dict())
    return pd.DataFrame(rows, columns=list(FeatureDrift.__dataclass_fields__))


def _judge_binned_row(row, sizes, ref_coarse, ref_fine, ref_std: float | None) -> None:
    """:func:`binned_drift_table`'s verdict by the drift table's rule
    (:func:`analysis.drift.judge_distance`): Jensen-Shannon's noise level on the coarse
    bins, Wasserstein's on the fine bins (each bin's mass at its mean)."""
    if row.statistic is None:
        return
    if row.test == "wasserstein":
        level = lambda m: _fine_wasserstein_noise(ref_fine["n"], ref_fine["sum"], m, ref_std)  # noqa: E731
    else:
        level = lambda m: noise.binned_noise_level("jensenshannon", ref_coarse, m)  # noqa: E731
    judge_distance(row, sizes, level)


def sort_features(grid_frame: pd.DataFrame, by: str = "max") -> list[str]:
    """Features ordered by their largest value over windows (descending), or by name."""
    if by == "name":
        return sorted(grid_frame["feature"].unique())
    order = grid_frame.groupby("feature")["value"].max().sort_values(ascending=False,
                                                                     na_position="last")
    return list(order.index)


def band(metric: str, value: float) -> str:
    """'stable', 'moderate' or 'major' for a metric value (NaN: 'no data')."""
    if value is None or np.isnan(value):
        return "no data"
    low, high = METRICS[metric][2]
    return "stable" if value < low else ("moderate" if value <= high else "major")


__all__ = ["METRICS", "Cube", "build_cube", "select", "grid", "segment_drift",
           "sort_features", "band", "cell_class", "grid_caption", "drift_rule", "pooled_std",
           "cell_statistic", "cell_noise_level",
           "binned_drift_table", "drift_table_from_counts"]
