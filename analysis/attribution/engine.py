"""The investigation: the steps of the method, in order (see the package docstring)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from analysis.attribution.cells import Cell, _judge_cell, _verdicts
from analysis.attribution.domain import fit_domain
from analysis.attribution.encoding import Encoder, _sample, clean_values, segments_of
from analysis.attribution.estimates import _LossLevels, _overall_decomposition
from analysis.attribution.features import _concept_regions, _drifted_features
from analysis.attribution.problem import (ALL, ALPHA, AUC_MIN, BIAS_MIN, BOOTSTRAP, CLIP,
                                          CLASSIFICATION_METRICS, CONCEPT_MIN, METRICS,
                                          MIN_ROWS, PSI_MIN, REGRESSION_METRICS, SAMPLE_CAP,
                                          SUPPORT_RATIO, UNITS, AttributionError, Problem,
                                          default_metric, prediction_kind, row_losses)
from analysis.attribution.reference_model import (_expected_given_x, fit_reference_model,
                                                  model_loss_and_residual, prediction_scale)
from analysis.attribution.text import _cell_notes, _judged, _perfect, verdict_text
from analysis.attribution.windows import _sizes_text, cell_sizes, choose_unit, unit_for
from analysis.binning import bins_for
from analysis.drift import CATEGORICAL, NUMERIC
from analysis.heatmap import window_end, window_start


@dataclass
class Investigation:
    """The result; :meth:`to_dict` is the JSON the command line prints."""

    verdict: str
    summary: str
    problem: Problem
    unit: str | None
    judged: dict
    drifted_features: list[dict]
    concept_features: list[dict]
    decomposition: dict | None
    cells: list[Cell]
    notes: list[str]
    reference_rows: int
    production_rows: int

    def to_dict(self) -> dict:
        p = self.problem
        return {
            "verdict": self.verdict, "summary": self.summary,
            "window": self.unit, "task": p.task, "metric": p.metric,
            "metric_label": METRICS.get(p.metric or "", None),
            "target": p.target, "prediction": p.prediction, "timestamp": p.timestamp,
            "segment": p.segment, "reference_rows": self.reference_rows,
            "production_rows": self.production_rows, "judged": self.judged,
            "drifted_features": self.drifted_features,
            "concept_features": self.concept_features,
            "decomposition": self.decomposition,
            "cells": [c.to_dict() for c in self.cells],
            "thresholds": {"alpha": ALPHA, "auc_min": AUC_MIN, "psi_min": PSI_MIN,
                           "concept_min": CONCEPT_MIN, "bias_min": BIAS_MIN,
                           "weight_clip": CLIP, "support_ratio": SUPPORT_RATIO,
                           "min_rows": MIN_ROWS, "bootstrap": BOOTSTRAP},
            "notes": self.notes,
        }


def investigate(reference: pd.DataFrame, production: pd.DataFrame, problem: Problem,
                unit: str = "auto", seed: int = 0,
                progress: Callable[[str], None] | None = None) -> Investigation:
    """Attribute drift per segment x window; see the module docstring for the method.

    ``reference`` and ``production`` hold the columns named by ``problem``. Windows are
    calendar units of ``problem.timestamp`` (one window over everything without it).
    """
    say = progress or (lambda _m: None)
    rng = np.random.default_rng(seed)
    p = problem
    if len(reference) == 0:
        raise AttributionError("the reference has no rows")
    if len(production) == 0:
        raise AttributionError("the production data has no rows")
    if not p.features:
        raise AttributionError("no feature columns to compare")
    if p.has_model:
        kind = "label"
        if p.task == "classification" and p.positive is None:
            kind, p.positive = prediction_kind(reference[p.target], reference[p.prediction])
        elif p.positive is not None:
            kind = "probability"
        p.metric = p.metric or default_metric(p.task, kind)
        if p.metric not in (REGRESSION_METRICS if p.task == "regression" else CLASSIFICATION_METRICS):
            raise AttributionError(f"metric {p.metric} does not apply to {p.task}")
        if p.metric == "logloss" and kind != "probability":
            raise AttributionError(f"log loss needs predicted probabilities; {p.prediction!r} "
                                   "holds labels")
    notes: list[str] = []

    # ---- sample both sides; the reference sample is shared by every window
    ref_idx = _sample(len(reference), SAMPLE_CAP, rng)
    ref = reference.iloc[ref_idx].reset_index(drop=True)
    prod = production
    seg_prod = segments_of(prod, p.segment)
    if p.timestamp is not None:
        stamps = pd.to_datetime(prod[p.timestamp], errors="coerce", utc=None)
        if isinstance(stamps.dtype, pd.DatetimeTZDtype):
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)   # windows in UTC
        if stamps.isna().all():
            raise AttributionError(f"timestamp column {p.timestamp!r} has no parseable dates")
        if stamps.isna().any():
            notes.append(f"{int(stamps.isna().sum()):,} production rows without a parseable "
                         f"{p.timestamp} were left out")
        asked = unit
        ok = stamps.notna().to_numpy()
        sizes = cell_sizes(stamps[ok], seg_prod[ok] if p.segment else None)
        unit = unit_for(sizes) if unit == "auto" else choose_unit(stamps[ok], unit)
        if unit is None:
            notes.append(f"too few production rows for calendar windows (a {UNITS[-1]} holds "
                         f"a median {sizes[UNITS[-1]]['window_rows']:,.0f} rows; at least "
                         f"{MIN_ROWS} are needed to judge one): judged as one window over "
                         "the whole production period")
            window_starts = np.array([np.datetime64("NaT")])
            window_of = np.where(ok, 0, -1)
        else:
            if asked == "auto":
                notes.append(f"window: {unit} (auto: windows that hold enough rows to judge; "
                             f"{_sizes_text(sizes, unit, p.segment)})")
            starts = np.full(len(prod), np.datetime64("NaT"), dtype="datetime64[us]")
            starts[ok] = window_start(stamps[ok].to_numpy(dtype="datetime64[us]"), unit)
            window_starts = np.unique(starts[ok])
            window_of = np.full(len(prod), -1)
            window_of[ok] = np.searchsorted(window_starts, starts[ok])
    else:
        unit = sizes = None
        window_starts = np.array([np.datetime64("NaT")])
        window_of = np.zeros(len(prod), dtype=int)

    empty = [c for c in p.features if reference[c].isna().all()
             or (p.features[c] == NUMERIC and not np.isfinite(
                 pd.to_numeric(reference[c], errors="coerce")).any())]
    if empty:
        notes.append(f"no reference values, not compared: {', '.join(empty)}")
        p.features = {c: k for c, k in p.features.items() if c not in empty}
        if not p.features:
            raise AttributionError("no feature has values in the reference")
    columns = dict(p.features)
    if p.segment is not None:
        columns = {**columns, p.segment: CATEGORICAL}
    encoder = Encoder([ref, prod], columns)
    cat_mask = encoder.categorical_mask
    X_ref = encoder.transform(ref)
    seg_ref = segments_of(ref, p.segment)
    segments = sorted(set(seg_ref) | set(seg_prod)) if p.segment else []
    bins = {c: bins_for(clean_values(reference[c], k), k) for c, k in p.features.items()}

    # ---- labels: the user's model's losses, and the independent reference model
    ref_loss = None
    g_ref_loss = g_ref_resid = g_ref_loss_adj = g_ref_resid_adj = g_ref_pred = None
    g_model = None
    if p.labelled:
        y_ref = ref[p.target]
        labelled_ref = y_ref.notna().to_numpy().copy()
        if p.has_model:
            ref_loss = row_losses(y_ref, ref[p.prediction], p.metric, p.positive)
            labelled_ref &= np.isfinite(ref_loss)
        if labelled_ref.sum() < MIN_ROWS:
            notes.append(f"the reference has {int(labelled_ref.sum())} labelled rows: too few "
                         "to judge concept drift")
        else:
            say("fitting the reference model of P(y|x) (3-fold cross-fitting)")
            g_model, oof = fit_reference_model(X_ref[labelled_ref], y_ref[labelled_ref], p.task,
                                               cat_mask, seed)
            g_ref_loss = np.full(len(ref), np.nan)
            g_ref_resid = np.full(len(ref), np.nan)
            loss, resid = model_loss_and_residual(g_model, oof, y_ref[labelled_ref])
            g_ref_loss[labelled_ref] = loss
            g_ref_pred = None
            if resid is not None:
                g_ref_resid[labelled_ref] = resid
                g_ref_pred = np.full(len(ref), np.nan)
                g_ref_pred[labelled_ref] = prediction_scale(g_model, oof)
            else:
                g_ref_resid = None
            # what x alone predicts of the reference model's loss and residual, taken off
            # before comparing (see _judge_cell), so the shared-region weights need only
            # be roughly right
            expect = _expected_given_x(g_model, oof, X_ref[labelled_ref], loss, resid,
                                       cat_mask, seed)
            g_ref_loss_adj = np.full(len(ref), np.nan)
            g_ref_loss_adj[labelled_ref] = loss - expect.reference_loss
            g_ref_resid_adj = None
            if resid is not None:
                g_ref_resid_adj = np.full(len(ref), np.nan)
                g_ref_resid_adj[labelled_ref] = resid - expect.reference_resid
    # the user's model's mean loss on every row (not only the samples) of each group's
    # reference and each cell's window: the decomposition's levels are anchored to them,
    # so they are the numbers the other pages show (see _anchored)
    levels = _LossLevels(reference, production, p, seg_prod) if p.has_model else None
    # float64 so the replicate sums are matrix-vector products without conversion
    ref_replicates = rng.poisson(1.0, size=(BOOTSTRAP, len(ref))).astype(float)

    cells: list[Cell] = []
    mixture: list[tuple[int, dict]] = []   # per window: rows and the "all" replicates
    for w, w_start in enumerate(window_starts):
        rows_w = np.flatnonzero(window_of == w)
        if rows_w.size == 0:
            continue
        start = None if np.isnat(w_start) else pd.Timestamp(w_start)
        end = None if start is None else pd.Timestamp(window_end(w_start, unit))
        label = "all production" if start is None else f"window {start:%Y-%m-%d %H:%M}"
        say(f"[{w + 1}/{len(window_starts)}] {label}: {rows_w.size:,} rows")
        take = rows_w[_sample(rows_w.size, SAMPLE_CAP, rng)]
        win = prod.iloc[take].reset_index(drop=True)
        X_win = encoder.transform(win)
        seg_win = seg_prod[take]
        seg_rows_full = pd.Series(seg_prod[rows_w]).value_counts() \
            if p.segment else None
        win_replicates = rng.poisson(1.0, size=(BOOTSTRAP, len(win))).astype(float)

        # reference rows for this window's classifier: the whole sample, or fewer (but
        # at least 5000) when the window is small, to keep the fit quick
        n_ref_fit = min(len(ref), max(4 * len(win), 5000))
        ref_fit = np.arange(n_ref_fit)
        X = np.vstack([X_ref[ref_fit], X_win])
        is_win = np.r_[np.zeros(n_ref_fit, bool), np.ones(len(win), bool)]
        small = len(win) < MIN_ROWS
        domain = None if small else fit_domain(X, is_win, cat_mask, seed)

        win_loss = g_win_loss = g_win_resid = g_win_loss_adj = g_win_resid_adj = None
        g_win_pred = None
        if p.labelled and g_model is not None:
            y_win = win[p.target]
            lab_win = y_win.notna().to_numpy().copy()
            if p.has_model:
                win_loss = row_losses(y_win, win[p.prediction], p.metric, p.positive)
                lab_win &= np.isfinite(win_loss)
            g_win_loss = np.full(len(win), np.nan)
            g_win_resid = np.full(len(win), np.nan) if g_ref_resid is not None else None
            if lab_win.any():
                which = rng.integers(0, len(g_model.models), size=int(lab_win.sum()))
                pred = g_model.predict(X_win[lab_win], which)
                loss, resid = model_loss_and_residual(g_model, pred, y_win[lab_win])
                g_win_loss[lab_win] = loss
                loss_x, resid_x = expect.window(pred, X_win[lab_win], rng)
                g_win_loss_adj = np.full(len(win), np.nan)
                g_win_loss_adj[lab_win] = loss - loss_x
                if g_win_resid is not None:
                    g_win_resid[lab_win] = resid
                    g_win_pred = np.full(len(win), np.nan)
                    g_win_pred[lab_win] = prediction_scale(g_model, pred)
                    g_win_resid_adj = np.full(len(win), np.nan)
                    g_win_resid_adj[lab_win] = resid - resid_x

        for seg in ([ALL] + segments):
            in_ref = np.ones(n_ref_fit, bool) if seg == ALL else (seg_ref[:n_ref_fit] == seg)
            in_win = np.ones(len(win), bool) if seg == ALL else (seg_win == seg)
            full_rows = rows_w.size if seg == ALL else int(seg_rows_full.get(seg, 0))
            if full_rows == 0:
                continue
            cell = Cell(seg, start, end, full_rows, _window=w)
            cells.append(cell)
            new_group = seg != ALL and not in_ref.any()
            if new_group:
                cell.notes.append(f"no reference rows for {p.segment} = {seg}: a new group, "
                                  "judged against the whole reference")
                in_ref = np.ones(n_ref_fit, bool)
            if small or in_win.sum() < MIN_ROWS:
                cell.notes.append(f"{int(in_win.sum())} rows: too few to judge (at least "
                                  f"{MIN_ROWS} needed)")
                cell.data = {"judged": False, "reason": "rows"}
                cell.concept = {"judged": False, "reason": "rows"}
                continue
            by_segment = seg != ALL and not new_group
            anchors = None if levels is None else levels.of(seg if by_segment else ALL, seg, rows_w)
            _judge_cell(cell, p, domain, n_ref_fit, in_ref, in_win, by_segment, ref, win, bins,
                        ref_loss, win_loss, anchors,
                        (g_ref_loss, g_ref_loss_adj, g_ref_resid, g_ref_resid_adj, g_ref_pred),
                        (g_win_loss, g_win_loss_adj, g_win_resid, g_win_resid_adj, g_win_pred),
                        ref_replicates[:, :n_ref_fit], win_replicates)
            if seg == ALL and cell._rep:
                mixture.append((rows_w.size, cell._rep))
            # what locating a concept change needs, should this cell be flagged
            cell._where.update(win=win, X_win=X_win, in_win=in_win)

    _verdicts(cells, p)
    say("locating the concept change and ranking the features")
    concept_features = _concept_regions(cells, p, encoder, g_model, seed)
    drifted = _drifted_features(cells, p, reference, production, seed, window_of, seg_prod)
    for c in cells:
        c._where = {}
    decomposition = _overall_decomposition(p, mixture)
    judged = _judged(cells, p, decomposition, unit, sizes)
    if not p.labelled:
        notes.append("no target column: concept drift (P(y|x)) is not judged; the verdict is "
                     "data or none from the inputs alone")
    if not p.has_model:
        notes.append("no " + ("prediction" if p.labelled else "target or prediction") +
                     " column: the model's error change cannot be decomposed")
    notes.extend(_cell_notes(cells, p))
    if decomposition is not None and _perfect(decomposition["reference"]["value"], p.metric):
        notes.append(f"the model's reference {METRICS[p.metric]} is perfect "
                     f"({decomposition['reference']['value']:g}): its reference predictions look "
                     "in-sample (made by a model trained on those rows), so the decomposition "
                     "books its honest out-of-sample error as drift")
    flags = [c.verdict for c in cells]
    has_data = any(v in ("data", "both") for v in flags)
    has_concept = any(v in ("concept", "both") for v in flags)
    verdict = "both" if has_data and has_concept else "data" if has_data else \
        "concept" if has_concept else "none" if judged["data"] else "not_judged"
    inv = Investigation(verdict, "", p, unit, judged, drifted, concept_features, decomposition,
                        cells, notes, len(reference), len(production))
    inv.summary = verdict_text(inv)
    return inv
