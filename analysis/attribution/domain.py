"""The domain model: P(window | x), its density ratios and its AUC test."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from analysis.attribution.problem import OVERLAP


def _classifier(cat_mask: np.ndarray, seed: int, n: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, max_leaf_nodes=15,
        min_samples_leaf=max(20, n // 1000), l2_regularization=1.0, class_weight="balanced",
        categorical_features=cat_mask if cat_mask.any() else None,
        early_stopping=n >= 200, validation_fraction=0.15, n_iter_no_change=5,
        random_state=seed)


@dataclass
class DomainFit:
    """Out-of-fold, calibrated P(window | x) on balanced classes, and the fold of each row."""

    pi: np.ndarray
    score: np.ndarray
    fold: np.ndarray


def fit_domain(X: np.ndarray, is_window: np.ndarray, cat_mask: np.ndarray, seed: int = 0,
               n_folds: int = 2) -> DomainFit:
    """Cross-fitted domain classifier (see the module docstring).

    Platt scaling of the out-of-fold decision scores, with balanced class weights, turns
    the scores into ``pi(x)`` whose odds estimate the density ratio ``q(x) / p(x)``.
    """
    y = is_window.astype(int)
    n = len(y)
    score = np.zeros(n)
    fold = np.zeros(n, dtype=int)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(splitter.split(X, y)):
        model = _classifier(cat_mask, seed, len(train)).fit(X[train], y[train])
        score[test] = model.decision_function(X[test])
        fold[test] = k
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    if np.ptp(score) < 1e-12:
        pi = np.full(n, 0.5)
    else:
        platt = LogisticRegression(C=1e4).fit(score[:, None], y, sample_weight=weight)
        pi = platt.predict_proba(score[:, None])[:, 1]
    return DomainFit(np.clip(pi, 1e-6, 1 - 1e-6), score, fold)


def auc_test(score: np.ndarray, is_window: np.ndarray, fold: np.ndarray) -> tuple[float, float]:
    """Cross-fitted AUC and its one-sided p-value against 0.5.

    Per fold, the Mann-Whitney U of the out-of-fold scores (window above reference),
    ``AUC_k = U_k / (n1 n0)`` with its asymptotic p-value (ties corrected); the AUC is
    the mean over folds and the p-value combines the folds' z-scores (Stouffer).
    """
    aucs, zs = [], []
    for k in np.unique(fold):
        m = fold == k
        a, b = score[m & is_window], score[m & ~is_window]
        if len(a) == 0 or len(b) == 0:
            continue
        if np.ptp(np.concatenate([a, b])) == 0:
            aucs.append(0.5)
            zs.append(0.0)
            continue
        res = sps.mannwhitneyu(a, b, alternative="greater", method="asymptotic")
        aucs.append(res.statistic / (len(a) * len(b)))
        zs.append(float(sps.norm.isf(np.clip(res.pvalue, 1e-300, 1.0))))
    if not aucs:
        return float("nan"), 1.0
    z = sum(zs) / math.sqrt(len(zs))
    return float(np.mean(aucs)), float(sps.norm.sf(z))


def _cell_pi(domain: DomainFit, n_ref: int, in_ref: np.ndarray, in_win: np.ndarray,
             by_segment: bool) -> tuple[np.ndarray, np.ndarray]:
    """pi for the cell's reference and window rows, with the segment's prior shift taken
    out: r_s = r * p(s) / q(s) (see the module docstring)."""
    pi_ref, pi_win = domain.pi[:n_ref][in_ref], domain.pi[n_ref:][in_win]
    if not by_segment:
        return pi_ref, pi_win
    factor = (in_ref.mean()) / (in_win.mean())
    to_pi = lambda pi: 1.0 / (1.0 + (1.0 - pi) / (pi * factor))  # noqa: E731
    return to_pi(pi_ref), to_pi(pi_win)


def _within_overlap(ratio: np.ndarray) -> np.ndarray:
    """Rows whose density ratio lies within ``OVERLAP`` of 1 (either way)."""
    return (ratio <= OVERLAP) & (ratio >= 1.0 / OVERLAP)
