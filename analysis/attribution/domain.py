"""The domain model: P(window | x), its density ratios and its AUC test."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from analysis.attribution.problem import OVERLAP
from analysis.stats import mann_whitney_greater


#: most distinct values a numeric input keeps (the trees' own number of bins)
MAX_VALUES = 255


@dataclass
class Quantizer:
    """Numeric inputs cut at their quantiles into at most :data:`MAX_VALUES` values.

    The domain classifiers are fitted with balanced class weights, and with sample
    weights scikit-learn finds each input's bin edges by weighted percentiles, which
    cost more than the fit itself. Given inputs that already hold at most 255 distinct
    values, the trees take each value as its own bin and skip that search. The cut is at
    the unweighted quantiles of the fitting rows (the trees' own bins are quantiles too),
    so the models are the same up to where, inside a bin of 1/255 of the rows, a split
    falls. Columns with few distinct values are left alone."""

    edges: dict

    @classmethod
    def fit(cls, X: np.ndarray, cat_mask: np.ndarray) -> "Quantizer":
        edges = {}
        cuts = np.linspace(0, 1, MAX_VALUES + 1)[1:-1]
        for j in np.flatnonzero(~np.asarray(cat_mask, bool)):
            col = X[:, j]
            col = col[~np.isnan(col)]
            if len(np.unique(col)) > MAX_VALUES:
                edges[int(j)] = np.unique(np.quantile(col, cuts))
        return cls(edges)

    def transform(self, X: np.ndarray) -> np.ndarray:
        if not self.edges:
            return X
        out = np.array(X, dtype=float, copy=True)
        for j, e in self.edges.items():
            col = out[:, j]
            ok = ~np.isnan(col)
            col[ok] = np.searchsorted(e, col[ok], side="right")
        return out


#: boosting's step size for the domain (and root-cause) classifiers. At 0.2 early
#: stopping ends after about half the trees 0.1 needs, for the same out-of-fold log loss
#: within 0.002 nats (0.5859 against 0.5856 on the demo; measured with
#: bench/investigate.py's cases too), and every reference row is scored once per window
LEARNING_RATE = 0.2


def _classifier(cat_mask: np.ndarray, seed: int, n: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=100, learning_rate=LEARNING_RATE, max_leaf_nodes=15,
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
    X = Quantizer.fit(X, cat_mask).transform(X)
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
        u, z = mann_whitney_greater(a, b)
        aucs.append(u / (len(a) * len(b)))
        zs.append(z)
    if not aucs:
        return float("nan"), 1.0
    z = sum(zs) / math.sqrt(len(zs))
    return float(np.mean(aucs)), float(special.ndtr(-z))   # the normal sf, without its wrapper


def _cell_pi(domain: DomainFit, n_ref: int, in_ref: np.ndarray, in_win: np.ndarray,
             by_segment: bool) -> tuple[np.ndarray, np.ndarray]:
    """pi for the cell's reference and window rows, with the segment's prior shift taken
    out: r_s = r * p(s) / q(s) (see the module docstring)."""
    pi_ref, pi_win = domain.pi[:n_ref][in_ref], domain.pi[n_ref:][in_win]
    if not by_segment:
        return pi_ref, pi_win
    return (group_pi(pi_ref, in_ref.mean(), in_win.mean()),
            group_pi(pi_win, in_ref.mean(), in_win.mean()))


def group_pi(pi: np.ndarray, ref_share: float, win_share: float) -> np.ndarray:
    """``pi`` of a group's density ratio: ``r_s = r p(s) / q(s)`` with ``p(s)`` and
    ``q(s)`` the group's shares of the reference and of the window."""
    factor = ref_share / win_share
    return 1.0 / (1.0 + (1.0 - pi) / (pi * factor))


def _within_overlap(ratio: np.ndarray) -> np.ndarray:
    """Rows whose density ratio lies within ``OVERLAP`` of 1 (either way)."""
    return (ratio <= OVERLAP) & (ratio >= 1.0 / OVERLAP)


# --------------------------------------------------------------------------- shared model

FIT_ROWS = 60_000   # production rows the shared domain classifier is fitted on, at most


def _with_window(X: np.ndarray, window: np.ndarray) -> np.ndarray:
    """The inputs with the window's index as a last (ordinal) column."""
    return np.column_stack([X, np.asarray(window, dtype=float)])


def allocate_windows(n: int, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give ``n`` rows a window each, in proportion to ``counts`` (exactly, up to
    rounding), at random."""
    cut = np.cumsum(counts / counts.sum()) * n
    out = np.empty(n, dtype=int)
    out[rng.permutation(n)] = np.minimum(np.searchsorted(cut, np.arange(n), side="right"),
                                         len(counts) - 1)
    return out


@dataclass
class SharedDomain:
    """One cross-fitted domain classifier for every window (see :func:`fit_shared_domain`).

    ``prod_score`` and ``prod_fold`` hold each production row's out-of-fold decision score
    (at its own window) and fold; :meth:`ref_score` scores the reference as if it were in
    a given window, with the model that did not see each row.
    """

    models: list
    platt: tuple[float, float]
    X_ref: np.ndarray
    ref_fold: np.ndarray
    ref_window: np.ndarray
    prod_score: np.ndarray
    prod_fold: np.ndarray
    window_factor: np.ndarray
    #: the inputs' cut (``X_ref`` is stored cut; :meth:`score_at` cuts what it is given)
    quantizer: Quantizer | None = None
    _ref_scores: dict = field(default_factory=dict, repr=False)

    def ref_score(self, window: int | None) -> np.ndarray:
        """Out-of-fold scores of every reference row placed in ``window`` (None: in the
        window it was given for the fit)."""
        key = -1 if window is None else int(window)
        if key not in self._ref_scores:
            where = self.ref_window if window is None else np.full(len(self.X_ref), window)
            X = _with_window(self.X_ref, where)
            out = np.empty(len(X))
            for k, model in enumerate(self.models):
                rows = self.ref_fold == k
                if rows.any():
                    out[rows] = model.decision_function(X[rows])
            self._ref_scores[key] = out
        return self._ref_scores[key]

    def score_at(self, X: np.ndarray, fold: np.ndarray, window: int) -> np.ndarray:
        """Out-of-fold scores of rows ``X`` (their folds ``fold``) placed in ``window``."""
        if self.quantizer is not None:
            X = self.quantizer.transform(X)
        out = np.empty(len(X))
        for k, model in enumerate(self.models):
            rows = fold == k
            if rows.any():
                out[rows] = model.decision_function(_with_window(X[rows], np.full(rows.sum(), window)))
        return out

    def pi(self, score: np.ndarray, window) -> np.ndarray:
        """Calibrated ``pi = r / (1 + r)`` with ``r`` the density ratio of ``window``
        (an index, or one per row) over the reference."""
        a, b = self.platt
        log_odds = np.clip(a * np.asarray(score) + b, -30, 30) - np.log(self.window_factor[window])
        return np.clip(1.0 / (1.0 + np.exp(-log_odds)), 1e-6, 1 - 1e-6)


def fit_shared_domain(X_ref: np.ndarray, X_prod: np.ndarray, prod_window: np.ndarray,
                      cat_mask: np.ndarray, seed: int = 0, n_folds: int = 2,
                      fit_rows: int = FIT_ROWS) -> SharedDomain:
    """One domain classifier for all windows: reference or production, given x, the
    group (one of the columns of ``X``) and the window.

    Every reference row is given a window at random, in proportion to the production
    rows' windows, so that within each window reference and production rows are in the
    same ratio as overall; the reference's window carries no information about x, so
    ``P(production | x, w)`` on balanced classes has odds ``q_w(x) / p(x)``, the window's
    density ratio. Trees split on the window only where the windows differ, so windows
    that drift alike share their evidence. Cross-fitted over ``n_folds`` (stratified),
    Platt-scaled on the out-of-fold scores with balanced class weights (as
    :func:`fit_domain`); at most ``fit_rows`` production rows (at random) enter the fit,
    the rest are scored by a fold model chosen at random. ``window_factor`` corrects each
    window's odds for the rounding of the allocation and for that subsample:
    ``f_w = (n_fit,w / n_fit) / (m_w / m)`` (production fit rows and reference rows).
    """
    rng = np.random.default_rng(seed + 11)
    n_windows = int(prod_window.max()) + 1 if len(prod_window) else 1
    counts = np.bincount(prod_window, minlength=n_windows).astype(float)
    ref_window = allocate_windows(len(X_ref), counts, rng)
    fit = np.sort(rng.choice(len(X_prod), fit_rows, replace=False)) \
        if len(X_prod) > fit_rows else np.arange(len(X_prod))
    quantizer = Quantizer.fit(np.vstack([X_ref, X_prod[fit]]), cat_mask)
    X_ref, X_prod = quantizer.transform(X_ref), quantizer.transform(X_prod)
    X = np.vstack([_with_window(X_ref, ref_window), _with_window(X_prod[fit], prod_window[fit])])
    y = np.r_[np.zeros(len(X_ref), int), np.ones(len(fit), int)]
    mask = np.r_[cat_mask, False]
    score = np.zeros(len(y))
    fold = np.zeros(len(y), dtype=int)
    models = []
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(splitter.split(X, y)):
        model = _classifier(mask, seed, len(train)).fit(X[train], y[train])
        score[test] = model.decision_function(X[test])
        fold[test] = k
        models.append(model)
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    if np.ptp(score) < 1e-12:
        platt = (0.0, 0.0)
    else:
        lr = LogisticRegression(C=1e4).fit(score[:, None], y, sample_weight=weight)
        platt = (float(lr.coef_[0, 0]), float(lr.intercept_[0]))
    prod_fold = rng.integers(0, n_folds, size=len(X_prod))
    prod_fold[fit] = fold[len(X_ref):]
    prod_score = np.empty(len(X_prod))
    prod_score[fit] = score[len(X_ref):]
    rest = np.setdiff1d(np.arange(len(X_prod)), fit, assume_unique=True)
    for k, model in enumerate(models):
        rows = rest[prod_fold[rest] == k]
        if rows.size:
            prod_score[rows] = model.decision_function(_with_window(X_prod[rows], prod_window[rows]))
    fit_counts = np.bincount(prod_window[fit], minlength=n_windows).astype(float)
    ref_counts = np.bincount(ref_window, minlength=n_windows).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = (fit_counts / max(len(fit), 1)) / (ref_counts / max(len(X_ref), 1))
    factor = np.where(np.isfinite(factor) & (factor > 0), factor, 1.0)
    return SharedDomain(models, platt, X_ref, fold[:len(X_ref)], ref_window, prod_score,
                        prod_fold, factor, quantizer)
