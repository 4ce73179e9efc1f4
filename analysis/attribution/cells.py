"""Judging one window x group cell, and the multiple testing over all cells."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import stats
from analysis.attribution.domain import _within_overlap, auc_test
from analysis.attribution.encoding import clean_values
from analysis.attribution.samples import Side
from analysis.attribution.estimates import (_anchored, _decompose, _support_aware,
                                            effective_sample_size, interval, null_se,
                                            two_sided_p, weighted_means)
from analysis.attribution.problem import (ALPHA, AUC_MIN, BIAS_MIN, CLIP, CONCEPT_MIN,
                                          MIN_ROWS, PSI_MIN, SUPPORT_RATIO, Problem)
from analysis.drift import NUMERIC
from analysis.stats import holm


def feature_test(reference: pd.Series, window: pd.Series, kind: str, bins) -> dict:
    """One feature's drift evidence between two samples.

    PSI on the frozen reference bins (deciles plus missing; levels plus other and
    missing; epsilon as in :func:`analysis.stats.psi`) is the effect size. The p-value
    is the chi-square homogeneity test on the same bins; for numeric features combined
    with the two-sample KS test (asymptotic p-value) by Bonferroni,
    ``min(1, 2 min(p_chi2, p_KS))``.
    """
    ref_counts, win_counts = bins.counts(clean_values(reference, kind)), bins.counts(clean_values(window, kind))
    psi = stats.psi(ref_counts, win_counts) if ref_counts.sum() and win_counts.sum() else float("nan")
    _, p = stats.chisquare_homogeneity(ref_counts, win_counts)
    if kind == NUMERIC:
        a = clean_values(reference, kind).dropna()
        b = clean_values(window, kind).dropna()
        if len(a) and len(b):
            p = min(1.0, 2 * min(p, stats.ks_test(a, b, method="asymp")[1]))
    return {"psi": float(psi), "p_value": float(p)}


@dataclass
class Cell:
    segment: str
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    rows: int
    labelled_rows: int = 0
    data: dict = field(default_factory=dict)
    concept: dict = field(default_factory=dict)
    decomposition: dict | None = None
    verdict: str = "none"
    notes: list[str] = field(default_factory=list)
    #: accuracy estimated without labels (CBPE) when the prediction is a probability
    estimated: dict | None = None
    # internals used after the Holm step
    _data_tests: list = field(default_factory=list, repr=False)
    _concept_tests: list = field(default_factory=list, repr=False)
    _window: int = -1
    _rep: dict = field(default_factory=dict, repr=False)
    _where: dict = field(default_factory=dict, repr=False)
    _examined: bool = True
    _held_concept_tests: list = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return {
            "segment": self.segment,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "rows": int(self.rows), "labelled_rows": int(self.labelled_rows),
            "verdict": self.verdict, "data": self.data, "concept": self.concept,
            "decomposition": self.decomposition, "notes": list(self.notes),
            **estimate_keys(self.estimated),
        }


def estimate_keys(estimated: dict | None) -> dict:
    """``estimated_accuracy`` and its 95 % interval ``estimated_accuracy_ci`` ([low,
    high]); None when the prediction is not a probability."""
    if not estimated or estimated.get("value") is None:
        return {"estimated_accuracy": None, "estimated_accuracy_ci": None}
    return {"estimated_accuracy": estimated["value"],
            "estimated_accuracy_ci": [estimated["low"], estimated["high"]]}


def binned_feature_test(ref_codes: np.ndarray, win_codes: np.ndarray, n_bins: int,
                        ref_values: np.ndarray, win_values: np.ndarray, kind: str,
                        with_p: bool = True) -> dict:
    """:func:`feature_test` from precomputed frozen-bin codes (``np.bincount`` of the
    codes gives the bins' counts) and cleaned values; ``with_p=False`` skips the tests
    (PSI only, ``p_value`` None) for a cell that is not examined."""
    ref_counts = np.bincount(ref_codes, minlength=n_bins).astype(float)
    win_counts = np.bincount(win_codes, minlength=n_bins).astype(float)
    psi = stats.psi(ref_counts, win_counts) if ref_counts.sum() and win_counts.sum() else float("nan")
    if not with_p:
        return {"psi": float(psi), "p_value": None}
    _, p = stats.chisquare_homogeneity(ref_counts, win_counts)
    if kind == NUMERIC:
        a, b = ref_values[~np.isnan(ref_values)], win_values[~np.isnan(win_values)]
        if len(a) and len(b):
            p = min(1.0, 2 * min(p, stats.ks_test(a, b, method="asymp")[1]))
    return {"psi": float(psi), "p_value": float(p)}


@dataclass
class CellRows:
    """A cell's rows on both sides (indices into the sampled sides) and what the domain
    model says of them: out-of-fold scores, folds, and ``pi = r / (1 + r)`` with ``r``
    the cell's density ratio (the group's prior shift taken out)."""

    ref: np.ndarray
    win: np.ndarray
    score_ref: np.ndarray
    score_win: np.ndarray
    fold_ref: np.ndarray
    fold_win: np.ndarray
    pi_ref: np.ndarray
    pi_win: np.ndarray
    anchors: tuple[float, float] | None = None


def judge_data(cell: Cell, p: Problem, ref: Side, win: Side, rows: CellRows, bins: dict,
               examined: bool) -> None:
    """Did P(x) change in the cell: the domain model's AUC (tested against 0.5), the
    importance weights' diagnostics and each feature's PSI (tested when ``examined``)."""
    r_ref, r_win = rows.pi_ref / (1 - rows.pi_ref), rows.pi_win / (1 - rows.pi_win)
    is_w = np.r_[np.zeros(len(rows.ref), bool), np.ones(len(rows.win), bool)]
    auc, auc_p = auc_test(np.r_[rows.score_ref, rows.score_win], is_w,
                          np.r_[rows.fold_ref, rows.fold_win])
    weights = np.minimum(r_ref, CLIP)
    features = _feature_tests(p, ref, win, rows, bins, examined)
    ess = effective_sample_size(weights)
    cell.data = {
        "judged": True, "examined": examined, "auc": auc, "auc_p": auc_p,
        "ess": ess, "ess_share": ess / len(weights),
        "clipped_share": float((r_ref > CLIP).mean()),
        "out_of_support_share": float((r_win > SUPPORT_RATIO).mean()),
        "features": features,
    }
    cell._examined = examined
    cell._data_tests = _data_tests(cell.data) if examined else []
    if cell.data["out_of_support_share"] >= 0.05:
        cell.notes.append(
            f"{cell.data['out_of_support_share']:.0%} of the window's rows lie where the "
            "reference has (almost) no data: new inputs, whose concept cannot be judged "
            "from the reference")


def _feature_tests(p: Problem, ref: Side, win: Side, rows: CellRows, bins: dict,
                   with_p: bool) -> dict:
    """Every feature's :func:`binned_feature_test` between the cell's rows."""
    return {col: binned_feature_test(ref.codes[col][rows.ref], win.codes[col][rows.win],
                                     len(bins[col].labels), ref.values[col][rows.ref],
                                     win.values[col][rows.win], kind, with_p=with_p)
            for col, kind in p.features.items()}


def _data_tests(data: dict) -> list:
    """The data family's tests of a cell: (name, p-value, effect large enough)."""
    return [("auc", data["auc_p"], data["auc"] >= AUC_MIN)] + [
        (col, f["p_value"], f["psi"] >= PSI_MIN) for col, f in data["features"].items()]


def examine(cell: Cell, p: Problem, ref: Side, win: Side, rows: CellRows, bins: dict) -> None:
    """Examine a cell judged cheaply: run its feature tests and put its tests (AUC,
    features, and the concept tests already computed) in the Holm families."""
    cell.data["features"] = _feature_tests(p, ref, win, rows, bins, with_p=True)
    cell.data["examined"] = cell._examined = True
    cell._data_tests = _data_tests(cell.data)
    cell._concept_tests, cell._held_concept_tests = cell._held_concept_tests, []


def decompose_cell(cell: Cell, p: Problem, ref: Side, win: Side, rows: CellRows) -> None:
    """The user's model's error change in the cell split into a data and a concept part
    (see :func:`analysis.attribution.estimates._decompose`)."""
    lr_, lw_ = ref.loss[rows.ref], win.loss[rows.win]
    m_r, m_w = np.isfinite(lr_), np.isfinite(lw_)
    if m_r.sum() < 1 or m_w.sum() < 1:
        return
    pi_ref, pi_win = rows.pi_ref[m_r], rows.pi_win[m_w]
    loss_ref, loss_win = lr_[m_r], lw_[m_w]
    weights = np.minimum(pi_ref / (1 - pi_ref), CLIP)
    lp, e_iw, sr = weighted_means([(loss_ref, np.ones(len(loss_ref))), (loss_ref, weights),
                                   (loss_ref, pi_ref)], ref.replicates(rows.ref[m_r]))
    outside = (pi_win / (1 - pi_win) > SUPPORT_RATIO).astype(float)
    ones = np.ones(len(loss_win))
    lq, sw, o, o_loss = weighted_means([(loss_win, ones), (loss_win, 1 - pi_win),
                                        (outside, ones), (outside * loss_win, ones)],
                                       win.replicates(rows.win[m_w]))
    e_sa = _support_aware(e_iw, o, o_loss)
    lp, e_iw, e_sa, sr, lq, sw = _anchored(rows.anchors, lp, e_iw, e_sa, sr, lq, sw)
    cell.decomposition = _decompose(p.metric, lp, lq, e_sa, e_iw, sr, sw)
    cell._rep = {"lp": lp, "lq": lq, "e_sa": e_sa, "e_iw": e_iw, "sr": sr, "sw": sw}


def _concept_rows(cell: Cell, ref: Side, win: Side, rows: CellRows):
    """The labelled rows the concept test may use, or None with the reason recorded."""
    gl_ref, gl_win = ref.model["loss"][rows.ref], win.model["loss"][rows.win]
    lab_r, lab_w = np.isfinite(gl_ref), np.isfinite(gl_win)
    cell.labelled_rows = int(round(lab_w.sum() * cell.rows / max(len(rows.win), 1)))
    if lab_w.sum() < MIN_ROWS or lab_r.sum() < MIN_ROWS:
        cell.concept = {"judged": False, "reason": "labels"}
        cell.notes.append(f"{int(lab_w.sum())} labelled rows: too few to judge concept drift")
        return None
    # the test keeps to where both populations are well represented (density ratio
    # within OVERLAP of 1): at the edge of the reference's support every model of the
    # reference is an extrapolation, and its errors there are not a changed concept
    pi_r, pi_w = rows.pi_ref[lab_r], rows.pi_win[lab_w]
    core_r = _within_overlap(pi_r / (1 - pi_r))
    core_w = _within_overlap(pi_w / (1 - pi_w))
    if core_r.sum() < MIN_ROWS or core_w.sum() < MIN_ROWS:
        cell.concept = {"judged": False, "reason": "overlap"}
        cell.notes.append("too few rows where the window's and the reference's inputs overlap "
                          "to judge concept drift")
        return None
    return rows.ref[lab_r], rows.win[lab_w], pi_r * core_r, (1 - pi_w) * core_w, pi_w


def judge_concept(cell: Cell, p: Problem, ref: Side, win: Side, rows: CellRows,
                  examined: bool) -> None:
    """Did P(y|x) change in the cell: the independent reference model's loss, mean
    residual (bias) and residual-prediction covariance (slope), compared between
    reference and window on their shared region (weights ``pi`` and ``1 - pi``), each
    minus its expected value given x under the reference."""
    if not p.labelled or not ref.model:
        cell.concept = {"judged": False,
                        "reason": "no_target" if not p.labelled else "reference_labels"}
        return
    found = _concept_rows(cell, ref, win, rows)
    if found is None:
        return
    r_rows, w_rows, t_r, t_w, pi_w = found
    gr, gw = ref.model, win.model
    centre = None   # the reference's prediction mean on the shared region
    if gr.get("resid") is not None:
        pred_r = gr["pred"][r_rows]
        centre = float(np.average(pred_r, weights=t_r)) if t_r.sum() > 0 else float(pred_r.mean())
    means = _concept_means(gr, gw, r_rows, w_rows, t_r, t_w, centre, ref.replicates(r_rows),
                           win.replicates(w_rows))
    s_ref, s_win = means["loss"]
    base = float(np.mean(gr["loss"][r_rows]))
    loss_change = s_win[0] - s_ref[0]
    # two classes: under the reference's concept (calibrated p) each row's variance is
    # known, which keeps small cells of confident predictions honest
    binary = p.task == "classification" and gr.get("pred") is not None
    floors = _null_floors(gr, gw, r_rows, w_rows, t_r, t_w) if binary else {}
    reps = s_win[1] - s_ref[1]
    loss_p = two_sided_p(loss_change, reps, floors.get("loss", 0.0))
    concept = {"judged": True, "loss_change": loss_change,
               "loss_change_interval": interval(reps), "loss_p": loss_p,
               "loss_se": _se(reps, floors.get("loss", 0.0)),
               "reference_model_error": base,
               "shared_weight_window": float((1 - pi_w).sum() / len(pi_w))}
    tests = [("loss", loss_p, abs(loss_change) >= CONCEPT_MIN * base)]
    if centre is not None:
        tests += _residual_tests(concept, means, centre, gr, gw, r_rows, w_rows, t_r, t_w,
                                 floors)
    cell.concept = concept
    cell._concept_tests = tests if examined else []
    cell._held_concept_tests = [] if examined else tests


def _se(replicates: np.ndarray, floor: float) -> float:
    r = np.asarray(replicates, dtype=float)
    r = r[np.isfinite(r)]
    return max(float(r.std(ddof=1)) if r.size >= 10 else float("nan"), floor)


def _null_floors(gr: dict, gw: dict, r_rows, w_rows, t_r, t_w) -> dict:
    """Model-based SEs under the null for two classes (see :func:`null_se`): the
    two-class Brier score ``2 (y - p)^2`` has variance ``4 p (1 - p) (1 - 2p)^2``, the
    residual ``p (1 - p)``."""
    p_r = np.clip(gr["pred"][r_rows], 0, 1)
    p_w = np.clip(gw["pred"][w_rows], 0, 1)
    v_r, v_w = p_r * (1 - p_r), p_w * (1 - p_w)
    return {"loss": null_se(4 * v_r * (1 - 2 * p_r) ** 2, t_r, 4 * v_w * (1 - 2 * p_w) ** 2, t_w),
            "v_r": v_r, "v_w": v_w}


def _concept_means(gr: dict, gw: dict, r_rows, w_rows, t_r, t_w, centre: float | None,
                   rr, rw) -> dict:
    """The concept tests' weighted means of the reference model's adjusted loss, and
    when it has residuals (``centre`` not None) of the adjusted residual and its product
    with the prediction minus ``centre``: name -> (reference, window), each (point,
    replicates)."""
    names, ref_pairs, win_pairs = ["loss"], [(gr["loss_adj"][r_rows], t_r)], \
        [(gw["loss_adj"][w_rows], t_w)]
    if centre is not None:
        names += ["bias", "covariance"]
        ref_pairs += [(gr["resid_adj"][r_rows], t_r),
                      (gr["resid_adj"][r_rows] * (gr["pred"][r_rows] - centre), t_r)]
        win_pairs += [(gw["resid_adj"][w_rows], t_w),
                      (gw["resid_adj"][w_rows] * (gw["pred"][w_rows] - centre), t_w)]
    return dict(zip(names, zip(weighted_means(ref_pairs, rr), weighted_means(win_pairs, rw))))


def _residual_tests(concept: dict, means: dict, centre: float, gr: dict, gw: dict, r_rows,
                    w_rows, t_r, t_w, floors: dict) -> list:
    """Bias (the mean residual) and slope (the residual's covariance with the centred
    prediction, over the prediction's SD: a rule that got weaker or stronger leaves the
    mean residual alone but tilts it against the prediction) changes, with p-values;
    ``means`` from :func:`_concept_means` with the same ``centre``."""
    res_r = gr["resid"][r_rows]
    b_ref, b_win = means["bias"]
    scale = float(np.mean(np.abs(res_r)))
    bias_change = b_win[0] - b_ref[0]
    binary = "v_r" in floors
    v_r, v_w = floors.get("v_r"), floors.get("v_w")
    bias_p = two_sided_p(bias_change, b_win[1] - b_ref[1],
                         null_se(v_r, t_r, v_w, t_w) if binary else 0.0)
    concept.update(bias_change=bias_change, bias_p=bias_p,
                   bias_change_interval=interval(b_win[1] - b_ref[1]))
    pred_r, pred_w = gr["pred"][r_rows], gw["pred"][w_rows]
    spread = float(np.std(pred_r)) or 1.0
    c_ref, c_win = means["covariance"]
    slope_change = (c_win[0] - c_ref[0]) / spread
    slope_p = two_sided_p(slope_change, (c_win[1] - c_ref[1]) / spread,
                          null_se(v_r * (pred_r - centre) ** 2, t_r,
                                  v_w * (pred_w - centre) ** 2, t_w) / spread if binary else 0.0)
    concept.update(slope_change=slope_change, slope_p=slope_p,
                   slope_change_interval=interval((c_win[1] - c_ref[1]) / spread))
    return [("bias", bias_p, abs(bias_change) >= BIAS_MIN * scale),
            ("slope", slope_p, abs(slope_change) >= BIAS_MIN * scale)]


def holm_step(cells: list[Cell], extra=()) -> None:
    """Holm over the given cells' tests, per family (data, concept): each test gets its
    adjusted p-value and counts when that is below ``ALPHA`` and its effect is large
    enough. Cells that were not examined have no tests and keep their flags off.
    ``extra``: sequence tests (:class:`analysis.attribution.series.SeriesTest`) in the
    same families; their ``flagged`` is set likewise."""
    for family in ("_data_tests", "_concept_tests"):
        entries = [(c, i) for c in cells for i in range(len(getattr(c, family)))]
        more = [t for t in extra if t.family == family.split("_")[1]]
        adjusted = holm([getattr(c, family)[i][1] for c, i in entries] + [t.p_value for t in more])
        for t, padj in zip(more, adjusted[len(entries):]):
            t.statistics["p_adjusted"] = float(padj)
            t.flagged = bool(np.isfinite(padj) and padj < ALPHA and t.big)
        for (c, i), padj in zip(entries, adjusted):
            name, _p, big = getattr(c, family)[i]
            hit = bool(np.isfinite(padj) and padj < ALPHA and big)
            if family == "_data_tests":
                if name == "auc":
                    c.data["auc_p_adjusted"] = float(padj)
                    c.data["auc_flagged"] = hit
                else:
                    c.data["features"][name]["p_adjusted"] = float(padj)
                    c.data["features"][name]["drifted"] = hit
            else:
                c.concept[f"{name}_p_adjusted"] = float(padj)
                c.concept[f"{name}_flagged"] = hit


def settle(cells: list[Cell]) -> None:
    """Each cell's flags and verdict from its tests after the Holm steps (and from a
    series test that flagged it, see :mod:`analysis.attribution.series`)."""
    for c in cells:
        data = bool(c.data.get("judged")) and (
            c.data.get("auc_flagged", False) or c.data.get("series_flagged", False)
            or any(f.get("drifted") for f in c.data.get("features", {}).values()))
        concept = bool(c.concept.get("judged")) and (
            c.concept.get("loss_flagged", False) or c.concept.get("bias_flagged", False)
            or c.concept.get("slope_flagged", False) or c.concept.get("series_flagged", False))
        c.data["flagged"] = data
        c.concept["flagged"] = concept
        if c.data.get("judged"):
            c.data["drifted_features"] = sorted(
                (k for k, f in c.data["features"].items() if f.get("drifted")),
                key=lambda k: -c.data["features"][k]["psi"])
        c.verdict = "both" if data and concept else "data" if data else \
            "concept" if concept else "none" if c.data.get("judged") else "not_judged"
