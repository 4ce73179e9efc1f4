"""The investigation: the steps of the method, in order (see the package docstring).

1. set-up: check the problem, assign windows, sample both sides and encode them once;
2. the independent reference model of P(y|x) (once);
3. one domain model for every window and group (:func:`fit_shared_domain`);
4. the cells, tested windows first and groups where flagged, with each group's windows
   also tested as a sequence (:mod:`analysis.attribution.testing`);
5. when each change began, to a finer unit than the windows;
6. which features drifted (root causes first) and where the concept changed;
7. the overall decomposition, what could be judged, and the text.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from analysis.attribution.cells import Cell, estimate_keys
from analysis.attribution.domain import fit_shared_domain
from analysis.attribution.encoding import Encoder, GroupCodes, _sample, clean_values
from analysis.attribution.estimates import _LossLevels, _overall_decomposition, cbpe_confidence
from analysis.attribution.features import _concept_regions, _drifted_features
from analysis.attribution.problem import (ALL, ALPHA, AUC_MIN, BIAS_MIN, BOOTSTRAP, CLIP,
                                          CLASSIFICATION_METRICS, CONCEPT_MIN, METRICS,
                                          MIN_ROWS, PSI_MIN, REGRESSION_METRICS, SAMPLE_CAP,
                                          WINDOW_CAP,
                                          SUPPORT_RATIO, AttributionError, Problem,
                                          as_float, default_metric, prediction_kind)
from analysis.attribution.reference_model import score_reference_model
from analysis.attribution.samples import make_side
from analysis.attribution.testing import CellJudge, date_changes, judge_all
from analysis.attribution.text import _cell_notes, _judged, _perfect, verdict_text
from analysis.attribution.windows import assign_windows
from analysis.binning import bins_for, quantile_bins
from analysis.drift import CATEGORICAL, NUMERIC
from analysis.monitoring.cbpe import estimate_from_confidence

THREADS = int(os.environ.get("DRIFT_THREADS", "1"))


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
    change_points: list[dict] = field(default_factory=list)
    sequences: list[dict] = field(default_factory=list)
    #: overall accuracy estimated without labels, and how (None: not a probability)
    estimated: dict | None = None
    estimation: dict | None = None

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
            "change_points": self.change_points, "sequences": self.sequences,
            "thresholds": {"alpha": ALPHA, "auc_min": AUC_MIN, "psi_min": PSI_MIN,
                           "concept_min": CONCEPT_MIN, "bias_min": BIAS_MIN,
                           "weight_clip": CLIP, "support_ratio": SUPPORT_RATIO,
                           "min_rows": MIN_ROWS, "bootstrap": BOOTSTRAP},
            "notes": self.notes,
            **estimate_keys(self.estimated),
            "estimation": self.estimation,
        }


class Steps:
    """Progress messages numbered "[i/n] stage" (the page's progress bar reads the
    fraction): the set-up, the two models, one step per window, then the sequences, the
    dating and the features."""

    def __init__(self, progress: Callable[[str], None] | None, total: int):
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, message: str) -> None:
        self.done = min(self.done + 1, self.total)
        if self.progress is not None:
            self.progress(f"[{self.done}/{self.total}] {message}")


def _check(reference: pd.DataFrame, production: pd.DataFrame, p: Problem) -> None:
    """Refuse what cannot be investigated; settle the metric and the positive class."""
    if len(reference) == 0:
        raise AttributionError("the reference has no rows")
    if len(production) == 0:
        raise AttributionError("the production data has no rows")
    if not p.features:
        raise AttributionError("no feature columns to compare")
    if not p.has_model:
        return
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


def _drop_empty_features(reference: pd.DataFrame, p: Problem, notes: list[str]) -> None:
    empty = [c for c in p.features if reference[c].isna().all()
             or (p.features[c] == NUMERIC and not np.isfinite(as_float(reference[c])).any())]
    if empty:
        notes.append(f"no reference values, not compared: {', '.join(empty)}")
        p.features = {c: k for c, k in p.features.items() if c not in empty}
        if not p.features:
            raise AttributionError("no feature has values in the reference")


def _production_sample(window_of: np.ndarray, n_windows: int, rng: np.random.Generator
                       ) -> np.ndarray:
    """At most ``WINDOW_CAP`` production rows per window, at random, in window order."""
    parts = []
    for w in range(n_windows):
        rows = np.flatnonzero(window_of == w)
        parts.append(rows[_sample(rows.size, WINDOW_CAP, rng)])
    return np.concatenate(parts) if parts else np.array([], dtype=int)


def investigate(reference: pd.DataFrame, production: pd.DataFrame, problem: Problem,
                unit: str = "auto", seed: int = 0,
                progress: Callable[[str], None] | None = None,
                fetch_production: Callable[[np.ndarray], pd.DataFrame] | None = None
                ) -> Investigation:
    """Attribute drift per segment x window; see the package docstring for the method.

    ``reference`` and ``production`` hold the columns named by ``problem``. Windows are
    calendar units of ``problem.timestamp`` (one window over everything without it).
    The expensive parts are fitted once (one domain model, one reference model), so the
    cost follows the rows sampled, not the number of windows x groups.

    The tree models run on ``THREADS`` OpenMP threads (environment variable
    ``DRIFT_THREADS``, default 1): their many small fits gain little from a second
    thread, and when other work shares the cores (a dashboard, a second job) OpenMP's
    spinning threads made them ten times slower.

    ``fetch_production``: when given, ``production`` need only hold the timestamp, group,
    target and prediction of every row, and ``fetch_production(positions)`` returns
    those rows (positions in ``production``) with every column, in that order: the
    features are read for the sampled rows only (see
    :func:`analysis.investigation.investigate_store`).
    """
    take = fetch_production or (lambda rows: production.iloc[rows])
    with threadpool_limits(limits=THREADS, user_api="openmp"):
        return _investigate(reference, production, problem, unit, seed, progress, take)


def _investigate(reference: pd.DataFrame, production: pd.DataFrame, problem: Problem,
                 unit: str, seed: int, progress: Callable[[str], None] | None,
                 take: Callable[[np.ndarray], pd.DataFrame]) -> Investigation:
    """:func:`investigate`'s steps (see the module docstring). Longer than most
    functions on purpose: it is the method's table of contents, one call per step, so
    the order can be read in one place."""
    rng = np.random.default_rng(seed)
    p = problem
    _check(reference, production, p)
    notes: list[str] = []
    groups = GroupCodes.of(production, p.segment)   # every production row's group
    windows = assign_windows(production, p.timestamp, p.segment, groups.codes, unit, notes)
    say = Steps(progress, len(windows.starts) + 7)   # the last step ends with the result
    _drop_empty_features(reference, p, notes)

    # ---- 1. samples of both sides, encoded once
    say("sampling and encoding the rows")
    ref_rows = _sample(len(reference), SAMPLE_CAP, rng)
    prod_rows = _production_sample(windows.of, len(windows.starts), rng)
    columns = dict(p.features)
    if p.segment is not None:
        columns = {**columns, p.segment: CATEGORICAL}
    ref_frame, prod_frame = reference.iloc[ref_rows], take(prod_rows)
    encoder = Encoder([ref_frame, prod_frame], columns)
    bins = {c: reference_bins(reference[c], k) for c, k in p.features.items()}
    ref = make_side(ref_frame, p, encoder, bins, rng)
    win = make_side(prod_frame, p, encoder, bins, rng)
    win.window, win.position = windows.of[prod_rows], prod_rows

    # ---- 2. and 3. the two models, each fitted once
    g_model = score_reference_model(ref, win, p, encoder.categorical_mask, seed, rng, notes, say)
    say(f"fitting the domain model (one for all {len(windows.starts)} windows)")
    domain = fit_shared_domain(ref.X, win.X, win.window, encoder.categorical_mask, seed)
    # the user's model's mean loss on every row (not only the samples) of each group's
    # reference and each cell's window: the decomposition's levels are anchored to them,
    # so they are the numbers the other pages show (see _anchored)
    levels = _LossLevels(reference, production, p, groups, windows.of,
                         len(windows.starts)) if p.has_model else None
    confidence, estimation = cbpe_confidence(reference, production, p)
    if estimation is not None:
        notes.append(estimation["note"])

    # ---- 4. and 5. the cells, and when the changes began
    judge = CellJudge(p, ref, win, domain, bins, windows, levels, groups, confidence)
    cells, tests = judge_all(judge, say)
    say("dating the changes")
    change_points = date_changes(judge, cells)

    # ---- 6. features
    say("locating the concept change and ranking the features")
    concept_features = _concept_regions(cells, p, encoder, g_model, seed, win)
    drifted = _drifted_features(cells, p, reference, take, seed, windows.of, groups)
    for c in cells:
        c._where = {}

    # ---- 7. the whole period, and what it says
    mixture = [(c.rows, c._rep) for c in cells if c.segment == ALL and c._rep]
    decomposition = _overall_decomposition(p, mixture)
    judged = _judged(cells, p, decomposition, windows.unit, windows.sizes)
    notes.extend(_problem_notes(p, decomposition))
    notes.extend(_cell_notes(cells, p))
    inv = Investigation(_overall_verdict(cells, judged), "", p, windows.unit, judged, drifted,
                        concept_features, decomposition, cells, notes, len(reference),
                        len(production), change_points, [_sequence(t) for t in tests])
    if confidence is not None:
        inv.estimated = estimate_from_confidence(confidence[windows.of >= 0]).to_dict()
        inv.estimation = {k: v for k, v in estimation.items() if k != "note"}
    inv.summary = verdict_text(inv)
    return inv


def reference_bins(column: pd.Series, kind: str):
    """A feature's bins from every reference row: :func:`analysis.binning.bins_for` of
    its cleaned values (numbers: the finite ones). Numbers are read without the cleaned
    copies, which at millions of rows cost more than the quantiles; a categorical
    column's bins are its levels present, read from its categories (each once) rather
    than from a label per row."""
    if kind != NUMERIC:
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy()
            present = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories)) > 0
            column = pd.Series(column.cat.categories[present])
        return bins_for(clean_values(column, kind), kind)
    values = as_float(column)
    return quantile_bins(values[np.isfinite(values)])


def _problem_notes(p: Problem, decomposition: dict | None) -> list[str]:
    out = []
    if not p.labelled:
        out.append("no target column: concept drift (P(y|x)) is not judged; the verdict is "
                   "data or none from the inputs alone")
    if not p.has_model:
        missing = "prediction" if p.labelled else \
            ("target" if p.prediction else "target or prediction")
        out.append(f"no {missing} column: the model's error change cannot be decomposed")
    if decomposition is not None and _perfect(decomposition["reference"]["value"], p.metric):
        out.append(f"the model's reference {METRICS[p.metric]} is perfect "
                   f"({decomposition['reference']['value']:g}): its reference predictions look "
                   "in-sample (made by a model trained on those rows), so the decomposition "
                   "books its honest out-of-sample error as drift")
    return out


def _overall_verdict(cells: list[Cell], judged: dict) -> str:
    flags = [c.verdict for c in cells]
    has_data = any(v in ("data", "both") for v in flags)
    has_concept = any(v in ("concept", "both") for v in flags)
    return "both" if has_data and has_concept else "data" if has_data else \
        "concept" if has_concept else "none" if judged["data"] else "not_judged"


def _sequence(test) -> dict:
    """A sequence test as JSON: its group, family, p-values, whether it flagged, and the
    window its drifting stretch starts at."""
    first = test.cells[test.split] if test.cells else None
    return {"segment": test.segment, "kind": test.family, "flagged": test.flagged,
            "p_value": test.p_value, "material": test.big,
            "from_window": None if first is None or first.start is None else first.start.isoformat(),
            **{k: float(v) for k, v in test.statistics.items()}}
