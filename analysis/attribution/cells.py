"""Judging one window x group cell, and the multiple testing over all cells."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import stats
from analysis.attribution.domain import DomainFit, _cell_pi, _within_overlap, auc_test
from analysis.attribution.encoding import clean_values
from analysis.attribution.estimates import (_anchored, _decompose, _support_aware,
                                            effective_sample_size, interval, null_se,
                                            two_sided_p, weighted_mean)
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
    # internals used after the Holm step
    _data_tests: list = field(default_factory=list, repr=False)
    _concept_tests: list = field(default_factory=list, repr=False)
    _window: int = -1
    _rep: dict = field(default_factory=dict, repr=False)
    _where: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {
            "segment": self.segment,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "rows": int(self.rows), "labelled_rows": int(self.labelled_rows),
            "verdict": self.verdict, "data": self.data, "concept": self.concept,
            "decomposition": self.decomposition, "notes": list(self.notes),
        }


def _judge_cell(cell: Cell, p: Problem, domain: DomainFit, n_ref: int, in_ref, in_win,
                by_segment: bool, ref: pd.DataFrame, win: pd.DataFrame, bins, ref_loss, win_loss,
                anchors: tuple[float, float] | None, g_ref: tuple, g_win: tuple, ref_reps,
                win_reps) -> None:
    g_ref_loss, g_ref_loss_adj, g_ref_resid, g_ref_resid_adj, g_ref_pred = g_ref
    g_win_loss, g_win_loss_adj, g_win_resid, g_win_resid_adj, g_win_pred = g_win
    pi_ref, pi_win = _cell_pi(domain, n_ref, in_ref, in_win, by_segment)
    cell._where["pi_win"] = pi_win
    r_ref, r_win = pi_ref / (1 - pi_ref), pi_win / (1 - pi_win)

    # ---- data: domain classifier and per-feature tests
    score = np.r_[domain.score[:n_ref][in_ref], domain.score[n_ref:][in_win]]
    fold = np.r_[domain.fold[:n_ref][in_ref], domain.fold[n_ref:][in_win]]
    is_w = np.r_[np.zeros(int(in_ref.sum()), bool), np.ones(int(in_win.sum()), bool)]
    auc, auc_p = auc_test(score, is_w, fold)
    weights = np.minimum(r_ref, CLIP)
    ref_part, win_part = ref.iloc[np.flatnonzero(in_ref)], win.iloc[np.flatnonzero(in_win)]
    features = {}
    for col, kind in p.features.items():
        features[col] = feature_test(ref_part[col], win_part[col], kind, bins[col])
    cell.data = {
        "judged": True, "auc": auc, "auc_p": auc_p,
        "ess": effective_sample_size(weights), "ess_share": effective_sample_size(weights) / len(weights),
        "clipped_share": float((r_ref > CLIP).mean()),
        "out_of_support_share": float((r_win > SUPPORT_RATIO).mean()),
        "features": features,
    }
    cell._data_tests = [("auc", auc_p, auc >= AUC_MIN)] + [
        (col, f["p_value"], f["psi"] >= PSI_MIN) for col, f in features.items()]
    if cell.data["out_of_support_share"] >= 0.05:
        cell.notes.append(
            f"{cell.data['out_of_support_share']:.0%} of the window's rows lie where the "
            "reference has (almost) no data: new inputs, whose concept cannot be judged "
            "from the reference")

    if not p.labelled or g_ref_loss is None:
        cell.concept = {"judged": False,
                        "reason": "no_target" if not p.labelled else "reference_labels"}
        return
    ref_rows, win_rows = np.flatnonzero(in_ref), np.flatnonzero(in_win)
    gl_ref, gl_win = g_ref_loss[ref_rows], g_win_loss[win_rows]
    lab_r, lab_w = np.isfinite(gl_ref), np.isfinite(gl_win)
    cell.labelled_rows = int(round(lab_w.sum() * cell.rows / max(len(win_rows), 1)))
    if lab_w.sum() < MIN_ROWS or lab_r.sum() < MIN_ROWS:
        cell.concept = {"judged": False, "reason": "labels"}
        cell.notes.append(f"{int(lab_w.sum())} labelled rows: too few to judge concept drift")
        return
    if p.has_model:
        lr_, lw_ = ref_loss[ref_rows], win_loss[win_rows]
        m_r, m_w = np.isfinite(lr_), np.isfinite(lw_)
        rr2, rw2 = ref_reps[:, ref_rows][:, m_r], win_reps[:, win_rows][:, m_w]
        lp = weighted_mean(lr_[m_r], np.ones(int(m_r.sum())), rr2)
        lq = weighted_mean(lw_[m_w], np.ones(int(m_w.sum())), rw2)
        e_iw = weighted_mean(lr_[m_r], weights[m_r], rr2)
        e_sa = _support_aware(e_iw, lw_[m_w], r_win[m_w] > SUPPORT_RATIO, rw2)
        sr = weighted_mean(lr_[m_r], pi_ref[m_r], rr2)
        sw = weighted_mean(lw_[m_w], 1 - pi_win[m_w], rw2)
        lp, e_iw, e_sa, sr, lq, sw = _anchored(anchors, lp, e_iw, e_sa, sr, lq, sw)
        cell.decomposition = _decompose(p.metric, lp, lq, e_sa, e_iw, sr, sw)
        cell._rep = {"lp": lp, "lq": lq, "e_sa": e_sa, "e_iw": e_iw, "sr": sr, "sw": sw}

    rr, rw = ref_reps[:, ref_rows][:, lab_r], win_reps[:, win_rows][:, lab_w]
    share_r, share_w = pi_ref[lab_r], 1 - pi_win[lab_w]
    # the test keeps to where both populations are well represented (density ratio
    # within OVERLAP of 1): at the edge of the reference's support every model of the
    # reference is an extrapolation, and its errors there are not a changed concept
    core_r = _within_overlap(r_ref[lab_r])
    core_w = _within_overlap(r_win[lab_w])
    if core_r.sum() < MIN_ROWS or core_w.sum() < MIN_ROWS:
        cell.concept = {"judged": False, "reason": "overlap"}
        cell.notes.append("too few rows where the window's and the reference's inputs overlap "
                          "to judge concept drift")
        return
    t_r, t_w = share_r * core_r, share_w * core_w

    # augmented comparison: the loss minus its expected value given x under the
    # reference (out of fold), so the shared-region weights need only be roughly right
    adj_ref, adj_win = g_ref_loss_adj[ref_rows][lab_r], g_win_loss_adj[win_rows][lab_w]
    s_ref = weighted_mean(adj_ref, t_r, rr)
    s_win = weighted_mean(adj_win, t_w, rw)
    base = float(np.mean(gl_ref[lab_r]))
    loss_change = s_win[0] - s_ref[0]
    # two classes: under the reference's concept (calibrated p) each row's variance is
    # known, which keeps small cells of confident predictions honest
    binary = p.task == "classification" and g_ref_pred is not None
    if binary:
        p_r = np.clip(g_ref_pred[ref_rows][lab_r], 0, 1)
        p_w = np.clip(g_win_pred[win_rows][lab_w], 0, 1)
        v_r, v_w = p_r * (1 - p_r), p_w * (1 - p_w)
        # the two-class Brier score is 2 (y - p)^2: variance 4 p (1 - p) (1 - 2p)^2
        loss_floor = null_se(4 * v_r * (1 - 2 * p_r) ** 2, t_r, 4 * v_w * (1 - 2 * p_w) ** 2, t_w)
    loss_p = two_sided_p(loss_change, s_win[1] - s_ref[1], loss_floor if binary else 0.0)
    concept = {"judged": True, "loss_change": loss_change,
               "loss_change_interval": interval(s_win[1] - s_ref[1]), "loss_p": loss_p,
               "reference_model_error": base,
               "shared_weight_window": float(share_w.sum() / len(share_w))}
    tests = [("loss", loss_p, abs(loss_change) >= CONCEPT_MIN * base)]
    if g_ref_resid is not None:
        res_r = g_ref_resid[ref_rows][lab_r]
        b_ref = weighted_mean(g_ref_resid_adj[ref_rows][lab_r], t_r, rr)
        b_win = weighted_mean(g_win_resid_adj[win_rows][lab_w], t_w, rw)
        scale = float(np.mean(np.abs(res_r)))
        bias_change = b_win[0] - b_ref[0]
        bias_p = two_sided_p(bias_change, b_win[1] - b_ref[1],
                             null_se(v_r, t_r, v_w, t_w) if binary else 0.0)
        concept.update(bias_change=bias_change, bias_p=bias_p,
                       bias_change_interval=interval(b_win[1] - b_ref[1]))
        tests.append(("bias", bias_p, abs(bias_change) >= BIAS_MIN * scale))
        # slope: the residual's covariance with the (centred) prediction. A rule that
        # got weaker or stronger leaves the mean residual alone but tilts it against
        # the prediction, first order in the change
        pred_r = g_ref_pred[ref_rows][lab_r]
        pred_w = g_win_pred[win_rows][lab_w]
        centre = float(np.average(pred_r, weights=t_r)) if t_r.sum() > 0 else float(pred_r.mean())
        spread = float(np.std(pred_r)) or 1.0
        c_ref = weighted_mean(g_ref_resid_adj[ref_rows][lab_r] * (pred_r - centre), t_r, rr)
        c_win = weighted_mean(g_win_resid_adj[win_rows][lab_w] * (pred_w - centre), t_w, rw)
        slope_change = (c_win[0] - c_ref[0]) / spread
        slope_p = two_sided_p(slope_change, (c_win[1] - c_ref[1]) / spread,
                              null_se(v_r * (pred_r - centre) ** 2, t_r,
                                      v_w * (pred_w - centre) ** 2, t_w) / spread
                              if binary else 0.0)
        concept.update(slope_change=slope_change, slope_p=slope_p,
                       slope_change_interval=interval((c_win[1] - c_ref[1]) / spread))
        tests.append(("slope", slope_p, abs(slope_change) >= BIAS_MIN * scale))
    cell.concept = concept
    cell._concept_tests = tests


def _verdicts(cells: list[Cell], p: Problem) -> None:
    """Holm over all cells per family, then each cell's verdict."""
    for family in ("_data_tests", "_concept_tests"):
        entries = [(c, i) for c in cells for i in range(len(getattr(c, family)))]
        adjusted = holm([getattr(c, family)[i][1] for c, i in entries])
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
    for c in cells:
        data = bool(c.data.get("judged")) and (
            c.data.get("auc_flagged", False)
            or any(f.get("drifted") for f in c.data.get("features", {}).values()))
        concept = bool(c.concept.get("judged")) and (
            c.concept.get("loss_flagged", False) or c.concept.get("bias_flagged", False)
            or c.concept.get("slope_flagged", False))
        c.data["flagged"] = data
        c.concept["flagged"] = concept
        if c.data.get("judged"):
            c.data["drifted_features"] = sorted(
                (k for k, f in c.data["features"].items() if f.get("drifted")),
                key=lambda k: -c.data["features"][k]["psi"])
        c.verdict = "both" if data and concept else "data" if data else \
            "concept" if concept else "none" if c.data.get("judged") else "not_judged"
