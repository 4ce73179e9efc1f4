"""Weighted means, bootstrap intervals and the error's decomposition into parts."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special

from analysis.attribution.encoding import GroupCodes
from analysis.attribution.problem import ALL, Problem, label_text, metric_level, row_losses


def weighted_mean(values: np.ndarray, weights: np.ndarray, replicates: np.ndarray | None = None):
    """Self-normalised ``sum w v / sum w`` for the point estimate, and for each bootstrap
    replicate (rows of ``replicates``: per-row resampling counts) when given."""
    if replicates is None:
        return _point(values, weights)
    return weighted_means([(values, weights)], replicates)[0]


def _point(values: np.ndarray, weights: np.ndarray) -> float:
    total = weights.sum()
    return float(np.dot(weights, values) / total) if total > 0 else float("nan")


def weighted_means(pairs: list[tuple[np.ndarray, np.ndarray]], replicates: np.ndarray
                   ) -> list[tuple[float, np.ndarray]]:
    """:func:`weighted_mean` of several (values, weights) pairs of the same rows, with
    their bootstrap replicates from one matrix product: each pair adds the columns
    ``w v`` and ``w`` (a weights array shared by pairs adds one column), so the counts
    (B x n, the dominant cost; an array or a
    :class:`analysis.attribution.samples.RowReplicates`) are read once rather than
    twice per mean."""
    columns, weight_column, spec = [], {}, []
    for values, weights in pairs:
        if id(weights) not in weight_column:
            weight_column[id(weights)] = len(columns)
            columns.append(weights)
        spec.append((len(columns), weight_column[id(weights)]))
        columns.append(weights * values)
    sums = replicates @ np.column_stack(columns)
    with np.errstate(invalid="ignore", divide="ignore"):
        return [(_point(values, weights), sums[:, num] / sums[:, den])
                for (values, weights), (num, den) in zip(pairs, spec)]


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``."""
    w = np.asarray(weights, dtype=float)
    s2 = float(np.dot(w, w))
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def interval(replicates: np.ndarray) -> tuple[float | None, float | None]:
    r = np.asarray(replicates, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 10:
        return None, None
    lo, hi = np.percentile(r, [2.5, 97.5])
    return float(lo), float(hi)


def two_sided_p(estimate: float, replicates: np.ndarray, se_floor: float = 0.0) -> float:
    """Normal-approximation p-value of ``estimate`` against 0 with the bootstrap's SE, or
    ``se_floor`` when larger (a model-based SE under the null: a bootstrap of a small,
    skewed sample that happens to lack its rare values underestimates the SE)."""
    r = np.asarray(replicates, dtype=float)
    r = r[np.isfinite(r)]
    if not np.isfinite(estimate) or r.size < 10:
        return float("nan")
    se = max(float(r.std(ddof=1)), se_floor)
    if se <= 0:
        return 0.0 if estimate != 0 else 1.0
    return float(2 * special.ndtr(-abs(estimate) / se))   # the normal sf, without its wrapper


def null_se(var_ref: np.ndarray, w_ref: np.ndarray, var_win: np.ndarray, w_win: np.ndarray
            ) -> float:
    """SE of a difference of two self-normalised weighted means whose rows have variances
    ``var`` under the null: ``sqrt(sum w_w^2 v_w / (sum w_w)^2 + sum w_r^2 v_r / (sum w_r)^2)``."""
    total = 0.0
    for var, w in ((var_ref, w_ref), (var_win, w_win)):
        if w.sum() > 0:
            total += float(np.dot(w * w, var)) / float(w.sum()) ** 2
    return math.sqrt(total)


def group_tallies(values: np.ndarray, keys: np.ndarray, size: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the finite ``values`` per integer key in ``range(size)`` (rows
    with a negative key are left out): one pass over millions of rows, after which any
    group's mean is a ratio of two numbers."""
    ok = np.isfinite(values) & (keys >= 0)
    if not ok.all():
        keys, values = keys[ok], values[ok]
    return (np.bincount(keys, values, minlength=size),
            np.bincount(keys, minlength=size).astype(float))


class _LossLevels:
    """The user's model's mean loss over *every* row of a group's reference and of a
    window x group cell (the investigation itself works on samples), from the losses'
    sums and counts per reference group and per production window x group."""

    def __init__(self, reference: pd.DataFrame, production: pd.DataFrame, p: Problem,
                 groups: GroupCodes, window_of: np.ndarray, n_windows: int):
        ref_groups = GroupCodes.of(reference, p.segment)
        self.ref_groups, self.groups = ref_groups, groups
        ref_loss = row_losses(reference[p.target], reference[p.prediction], p.metric, p.positive)
        prod_loss = row_losses(production[p.target], production[p.prediction], p.metric,
                               p.positive)
        self._ref = group_tallies(ref_loss, ref_groups.codes, len(ref_groups.names))
        width = len(groups.names)
        sums, counts = group_tallies(prod_loss, groups.cell_keys(window_of), n_windows * width)
        self._win = sums.reshape(n_windows, width), counts.reshape(n_windows, width)

    @staticmethod
    def _level(tally: tuple[np.ndarray, np.ndarray], code: int | None) -> float:
        """Mean of one entry of ``tally`` (None: of all; -1, a group without rows: NaN)."""
        sums, counts = tally
        if code is not None:
            if code < 0:
                return math.nan
            sums, counts = sums[code], counts[code]
        n = counts.sum()
        return float(sums.sum() / n) if n > 0 else math.nan

    def of(self, ref_segment: str, win_segment: str, window: int) -> tuple[float, float]:
        """(reference level of ``ref_segment``, level of ``win_segment`` in ``window``);
        ALL takes every group."""
        ref_code = None if ref_segment == ALL else self.ref_groups.code(ref_segment)
        win_code = None if win_segment == ALL else self.groups.code(win_segment)
        return (self._level(self._ref, ref_code),
                self._level((self._win[0][window], self._win[1][window]), win_code))


def _anchored(anchors: tuple[float, float] | None, lp: tuple, e_iw: tuple, e_sa: tuple,
              sr: tuple, lq: tuple, sw: tuple) -> tuple:
    """The mean losses (point, replicates) with the levels anchored to every row.

    The estimates come from samples (at most ``SAMPLE_CAP`` rows a side), so the sample's
    reference error differs a little from the reference error over all its rows, which
    is what the other pages show. A control-variate shift fixes that without touching the
    parts: with ``d_ref = L_ref(all rows) - L_ref(sample)`` and ``d_win`` likewise for the
    window, every reference-side mean (reference, expected, shared-region reference) moves
    by ``d_ref`` and every window-side mean (realized, shared-region window) by ``d_win``.
    The data part ``expected - reference`` is unchanged; the concept part absorbs
    ``d_win - d_ref``. A level that is not finite leaves its side as it was."""
    if anchors is None:
        return lp, e_iw, e_sa, sr, lq, sw
    d_ref = anchors[0] - lp[0] if np.isfinite(anchors[0]) and np.isfinite(lp[0]) else 0.0
    d_win = anchors[1] - lq[0] if np.isfinite(anchors[1]) and np.isfinite(lq[0]) else 0.0
    shift = lambda t, d: (t[0] + d, t[1] + d)  # noqa: E731
    return (shift(lp, d_ref), shift(e_iw, d_ref), shift(e_sa, d_ref), shift(sr, d_ref),
            shift(lq, d_win), shift(sw, d_win))


def _part(point: float, reps: np.ndarray) -> dict:
    lo, hi = interval(reps)
    return {"value": None if not np.isfinite(point) else float(point), "low": lo, "high": hi}


def _decompose(metric: str, lp: tuple, lq: tuple, e_sa: tuple, e_iw: tuple, s_ref: tuple,
               s_win: tuple) -> dict:
    """The decompositions in metric units from (point, replicates) mean losses: the
    headline one (importance weighting with inputs outside the reference's support
    counted as data drift), plain importance weighting, and the shared-region terms."""
    f = lambda v: metric_level(v, metric)  # noqa: E731
    ref, real = (f(lp[0]), f(lp[1])), (f(lq[0]), f(lq[1]))
    exp_sa, exp_iw = (f(e_sa[0]), f(e_sa[1])), (f(e_iw[0]), f(e_iw[1]))
    sr, sw = (f(s_ref[0]), f(s_ref[1])), (f(s_win[0]), f(s_win[1]))
    on_shared = (sw[0] - sr[0], sw[1] - sr[1])
    return {
        "estimator": "importance weighting; window inputs outside the reference's support "
                     "count as data drift",
        "reference": _part(*ref), "expected": _part(*exp_sa), "realized": _part(*real),
        "data_part": _part(exp_sa[0] - ref[0], exp_sa[1] - ref[1]),
        "concept_part": _part(real[0] - exp_sa[0], real[1] - exp_sa[1]),
        "shared_region": {
            "shift_into_shared": _part(sr[0] - ref[0], sr[1] - ref[1]),
            "concept_on_shared": _part(*on_shared),
            "shift_out_of_shared": _part(real[0] - sw[0], real[1] - sw[1]),
            "expected": _part(real[0] - on_shared[0], real[1] - on_shared[1]),
        },
        "importance_weighting": {
            "expected": _part(*exp_iw),
            "data_part": _part(exp_iw[0] - ref[0], exp_iw[1] - ref[1]),
            "concept_part": _part(real[0] - exp_iw[0], real[1] - exp_iw[1]),
        },
    }


def _support_aware(e_iw: tuple, outside: tuple, outside_loss: tuple) -> tuple:
    """Expected mean loss when the window's rows outside the reference's support keep
    their realized loss and the others get the importance-weighted reference loss:
    ``(1 - o) E_iw + L_out`` with ``o`` the outside share and ``L_out`` the mean of the
    loss times the outside indicator over the window's rows (each a (point,
    replicates) pair, as :func:`weighted_means` gives with unit weights)."""
    return ((1 - outside[0]) * e_iw[0] + outside_loss[0],
            (1 - outside[1]) * e_iw[1] + outside_loss[1])


def _overall_decomposition(p: Problem, mixture: list[tuple[int, dict]]) -> dict | None:
    """The 'all' cells' mean losses averaged over windows, weighted by rows: the
    decomposition of the whole production period."""
    if not p.has_model or not mixture:
        return None
    total = sum(n for n, _ in mixture)

    def mix(key):
        point = sum(n * rep[key][0] for n, rep in mixture) / total
        reps = sum(n * rep[key][1] for n, rep in mixture) / total
        return point, reps

    return _decompose(p.metric, mix("lp"), mix("lq"), mix("e_sa"), mix("e_iw"), mix("sr"),
                      mix("sw"))


def cbpe_confidence(reference: pd.DataFrame, production: pd.DataFrame, p: Problem
                    ) -> tuple[np.ndarray | None, dict | None]:
    """Per production row, the probability that the model is right (CBPE,
    :mod:`analysis.monitoring.cbpe`), when the prediction column holds a two-class
    probability; calibrated on the reference when it has labels. (None, None) otherwise."""
    from analysis.monitoring.cbpe import ASSUMPTIONS, CBPE, binary_matrix, looks_like_probability

    if p.prediction is None or p.task != "classification":
        return None, None
    p_ref = pd.to_numeric(reference[p.prediction], errors="coerce")
    p_prod = pd.to_numeric(production[p.prediction], errors="coerce")
    if not looks_like_probability(pd.concat([p_ref, p_prod]).to_numpy(dtype=float)):
        return None, None
    model = CBPE()
    if p.target is not None and p.positive is not None:
        y = label_text(reference[p.target])
        labels = np.where(pd.isna(y), np.nan, (y == str(p.positive)).astype(float))
        model.fit(binary_matrix(p_ref.to_numpy(dtype=float)), labels)
    how = ("calibrated on the reference's labels (isotonic)" if model.calibrated else
           "taken as calibrated (no labelled reference to calibrate them)")
    note = (f"accuracy estimated without labels from {p.prediction!r} (CBPE: each prediction "
            f"counts as right with its probability, {how}; assumes P(y|x) unchanged; "
            "'estimated_accuracy' and its 95 % interval in every cell)")
    return model.confidence(binary_matrix(p_prod.to_numpy(dtype=float))), {
        "method": "CBPE", "calibrated": model.calibrated, "threshold": 0.5, "note": note,
        "assumptions": ASSUMPTIONS}
