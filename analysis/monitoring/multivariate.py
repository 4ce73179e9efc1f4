r"""Multivariate drift: can a classifier tell a window's inputs from the reference's?

A *domain classifier* (the investigation's: gradient-boosted trees, balanced classes,
2-fold cross-fitting, :func:`analysis.attribution.fit_domain`) learns to separate the
window's rows from the reference's on all features at once; its cross-fitted AUC is
about 0.5 when the joint distribution did not move, and grows toward 1 as it does,
including changes no single feature shows (a correlation that broke).

The AUC is the mean of the two folds' AUCs, each the Mann-Whitney statistic of its
out-of-fold scores. Its standard error comes from Hanley & McNeil (1982) per fold,

.. math::

    SE^2(A) = \frac{A(1-A) + (n_1 - 1)(Q_1 - A^2) + (n_0 - 1)(Q_2 - A^2)}{n_1 n_0},
    \quad Q_1 = \frac{A}{2 - A}, \quad Q_2 = \frac{2A^2}{1 + A},

with :math:`n_1` window and :math:`n_0` reference rows in the fold; the folds are
disjoint, so the mean's variance is :math:`\sum_k SE_k^2 / K^2`. The 95 % interval is
:math:`A \pm 1.96\, SE`. The p-value (one-sided, against 0.5) combines the folds'
Mann-Whitney tests (:func:`analysis.attribution.auc_test`).

Verdict: drift when the AUC is at least :data:`AUC_MIN` (0.55, the investigation's
threshold) and the p-value, Holm-adjusted over the windows shown, is below
:data:`ALPHA` (0.01).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from analysis import attribution as at
from analysis.monitoring.cbpe import Z95

AUC_MIN = at.AUC_MIN
ALPHA = at.ALPHA
#: rows per side the classifier sees (a random sample beyond that)
SAMPLE_CAP = 5000


def hanley_mcneil_se(auc: float, n_positive: int, n_negative: int) -> float:
    """Standard error of an AUC from ``n_positive`` and ``n_negative`` scores."""
    a = float(auc)
    if n_positive < 1 or n_negative < 1 or not math.isfinite(a):
        return math.nan
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_positive - 1) * (q1 - a * a)
           + (n_negative - 1) * (q2 - a * a)) / (n_positive * n_negative)
    return math.sqrt(max(var, 0.0))


def _fold_aucs(score: np.ndarray, is_window: np.ndarray, fold: np.ndarray):
    out = []
    for k in np.unique(fold):
        m = fold == k
        a, b = score[m & is_window], score[m & ~is_window]
        if len(a) == 0 or len(b) == 0:
            continue
        ranks = pd.Series(np.concatenate([a, b])).rank().to_numpy()
        u = ranks[:len(a)].sum() - len(a) * (len(a) + 1) / 2
        out.append((u / (len(a) * len(b)), len(a), len(b)))
    return out


def domain_auc(reference: pd.DataFrame, window: pd.DataFrame, features: dict[str, str],
               seed: int = 0, cap: int = SAMPLE_CAP) -> dict:
    """The domain classifier's cross-fitted AUC of ``window`` against ``reference``:
    ``{"auc", "low", "high", "se", "p_value", "reference_rows", "window_rows"}`` (NaN
    when a side has fewer than 10 rows)."""
    rng = np.random.default_rng(seed)
    if len(reference) > cap:
        reference = reference.iloc[np.sort(rng.choice(len(reference), cap, replace=False))]
    if len(window) > cap:
        window = window.iloc[np.sort(rng.choice(len(window), cap, replace=False))]
    out = {"auc": math.nan, "low": math.nan, "high": math.nan, "se": math.nan,
           "p_value": math.nan, "reference_rows": len(reference), "window_rows": len(window)}
    if len(reference) < 10 or len(window) < 10:
        return out
    encoder = at.Encoder([reference, window], features)
    X = np.vstack([encoder.transform(reference), encoder.transform(window)])
    is_window = np.r_[np.zeros(len(reference), bool), np.ones(len(window), bool)]
    # one thread: on a few thousand rows OpenMP's threads cost more than they give,
    # and far more on a busy machine (measured: 0.3 s alone, 2 s with threads)
    with threadpool_limits(limits=1, user_api="openmp"):
        fit = at.fit_domain(X, is_window, encoder.categorical_mask, seed)
    auc, p_value = at.auc_test(fit.score, is_window, fit.fold)
    folds = _fold_aucs(fit.score, is_window, fit.fold)
    if folds:
        se = math.sqrt(sum(hanley_mcneil_se(a, n1, n0) ** 2 for a, n1, n0 in folds)) / len(folds)
        out.update(se=se, low=max(0.0, auc - Z95 * se), high=min(1.0, auc + Z95 * se))
    out.update(auc=float(auc), p_value=float(p_value))
    return out
