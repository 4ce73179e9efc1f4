"""Data drift versus concept drift: attribute a model's error change per segment x window.

For every production window (and every segment within it) we ask two questions:

* **Did P(x) change?** (data drift) A *domain classifier* learns to tell the window's
  rows from the reference's. Its cross-fitted AUC, tested against 0.5, and per-feature
  tests (KS and chi-square, with PSI as the effect size) are the evidence.
* **Did P(y|x) change?** (concept drift) On the region both populations share, the
  error of an independent, cross-fitted reference model (refitted here on the reference
  rows; see :func:`fit_reference_model`) is compared between reference and window.

Density ratio
-------------
The domain classifier is a gradient-boosted tree model with balanced class weights,
cross-fitted over 2 folds and Platt-calibrated on its out-of-fold scores, so that
``pi(x) = P(window | x)`` on balanced classes and ``r(x) = pi / (1 - pi)`` estimates the
density ratio ``q(x) / p(x)`` (window over reference). For one segment ``s`` of a window,
``r_s(x) = r(x, s) * p(s) / q(s)`` with ``p(s)``, ``q(s)`` the segment's shares of the
classifier's reference and window rows (the segment is one of its inputs).

Decompositions of the error change (``L`` = mean per-row loss of the user's model)
-------------------------------------------------------------------------------
*Importance weighting (IW)*: expected error under covariate shift alone
``E = sum_i w_i l_i / sum_i w_i`` over reference rows with ``w = min(r, CLIP)``; the
data part is ``E - L_ref`` and the concept part ``L_window - E``. Where the inputs only
partly overlap, IW books the error of inputs the reference never had as "concept".

*Headline (support-aware IW)*: window rows outside the reference's support
(``r > SUPPORT_RATIO``; share ``o``) keep their realized loss ``L_out`` as data drift, the
others get the IW estimate: ``expected = (1 - o) E + o L_out``. With full overlap this is
IW; the concept part is ``(1 - o)`` times the extra error on window rows the reference
can speak for.

*Shared region (DISDE; Cai, Namkoong & Yadlowsky 2023)*: the shared distribution has
density proportional to ``p q / (p + q)``; reference rows reach it with weights
proportional to ``r / (1 + r)`` and window rows with ``1 / (1 + r)``. With ``S_ref`` and
``S_win`` the two self-normalised weighted mean losses on it::

    L_window - L_ref = (S_ref - L_ref)        shift into the shared region   (data)
                     + (S_win - S_ref)        concept change on the shared region
                     + (L_window - S_win)     shift out of the shared region (data)

Its concept term is measured on the shared region, not on the window's population, so
it is reported beside the headline rather than as it. The **verdict's concept test**
compares on this shared region (restricted to density ratios within ``OVERLAP`` of 1),
with an independent model of P(y|x) rather than the user's (see :func:`investigate`).
Intervals are percentile intervals of a Poisson bootstrap (B = 200) with the density
ratio held fixed.

Verdicts and thresholds
-----------------------
Every cell's tests form two families (data: AUC and per-feature tests; concept: the
change on the shared region of the reference model's loss, of its mean residual (bias)
and of its residual's covariance with its prediction, divided by the prediction's
standard deviation (slope)), each controlled with Holm's procedure at ``ALPHA`` over
all cells, so a dataset without drift gets ``none`` everywhere with probability at
least 1 - 2 * ALPHA. A test counts only when its effect is also large enough to matter:
AUC >= ``AUC_MIN`` or a feature's PSI >= ``PSI_MIN`` for data drift; a change of at
least ``CONCEPT_MIN`` of the reference model's error (loss) or ``BIAS_MIN`` of its mean
absolute residual (bias, slope) for concept drift.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.tree import DecisionTreeRegressor

from analysis import noise, stats
from analysis.binning import bins_for
from analysis.drift import CATEGORICAL, NUMERIC
from analysis.formats import decimals_for, window_label
from analysis.heatmap import window_end, window_start
from analysis.monitoring.cbpe import (ASSUMPTIONS, CBPE, binary_matrix,
                                      estimate_from_confidence, looks_like_probability)
from analysis.stats import holm
from analysis.tables import InputError

ALL = "all"
UNITS = ("hour", "day", "week", "month")
METRICS = {
    "mae": "mean absolute error",
    "rmse": "root mean squared error",
    "mape": "mean absolute percentage error (%)",
    "accuracy": "accuracy",
    "logloss": "log loss (nats)",
}
REGRESSION_METRICS = ("mae", "rmse", "mape")
CLASSIFICATION_METRICS = ("accuracy", "logloss")

ALPHA = 0.01          # family-wise error rate of each family of tests (Holm)
AUC_MIN = 0.55        # domain-classifier AUC that counts as a changed P(x)
PSI_MIN = 0.1         # per-feature PSI that counts (the conventional "moderate" level)
CONCEPT_MIN = 0.10    # loss change on the shared region, as a share of the reference's
BIAS_MIN = 0.10       # residual-mean change, as a share of the mean absolute residual
CLIP = 20.0           # importance weights are clipped at this density ratio
SUPPORT_RATIO = 20.0  # window rows with r(x) above this lie outside the reference support
OVERLAP = 5.0         # the concept test compares rows whose density ratio is within 5x of 1
MIN_ROWS = noise.MIN_ROWS  # fewer window rows (or labelled rows) in a cell: not judged
CELL_ROWS = 2 * MIN_ROWS  # rows a typical cell should hold for `auto` to pick a unit
SAMPLE_CAP = 30_000   # rows per side used by the classifiers and the bootstrap
BOOTSTRAP = 200
MAX_LEVELS = 200      # categorical levels kept per feature (the rest pooled as "other")
PROBABILITY_EPS = 1e-6


class AttributionError(InputError):
    """Input the analysis cannot run on; the message says what and where."""


# --------------------------------------------------------------------------- problem

@dataclass
class Problem:
    """What to analyse: the columns' roles and the error metric.

    ``positive`` is the class whose probability a classification ``prediction`` column
    holds (None when the predictions are labels).
    """

    features: dict[str, str]
    target: str | None = None
    prediction: str | None = None
    timestamp: str | None = None
    segment: str | None = None
    task: str = "regression"
    metric: str | None = None
    positive: object = None

    @property
    def labelled(self) -> bool:
        return self.target is not None

    @property
    def has_model(self) -> bool:
        return self.target is not None and self.prediction is not None


def label_text(values) -> np.ndarray:
    """Labels as comparable text: 1, 1.0 and "1" all read "1", True reads "True";
    missing values are None. Classes, segments and predicted labels are compared in
    this form, so a column that pandas read as float (because some values are missing)
    still matches the same column read as integers."""
    s = pd.Series(values).reset_index(drop=True)
    missing = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s):
        out = s.astype(str).to_numpy(dtype=object)
    elif pd.api.types.is_numeric_dtype(s):
        v = s.to_numpy(dtype=float, na_value=np.nan)
        whole = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2 ** 53)
        out = np.where(whole, np.where(whole, v, 0).astype(np.int64).astype(str),
                       v.astype(str)).astype(object)
    elif pd.api.types.infer_dtype(s, skipna=True) == "string":
        out = s.astype(str).to_numpy(dtype=object)
    else:
        def one(v):
            if isinstance(v, (bool, np.bool_)):
                return str(bool(v))
            if isinstance(v, (int, float, np.number)) and float(v).is_integer():
                return str(int(v))
            return str(v)
        out = np.array([one(v) for v in s.to_numpy(dtype=object)], dtype=object)
    out[missing] = None
    return out


def infer_task(target: pd.Series, prediction: pd.Series | None = None) -> str:
    """'classification' for text/boolean targets, 0/1 targets, and integer targets with
    at most 20 levels whose predictions are among those levels; else 'regression'."""
    y = target.dropna()
    if y.empty:
        return "regression"
    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        return "classification"
    values = set(np.unique(y.to_numpy(dtype=float)).tolist())
    if values <= {0.0, 1.0}:
        return "classification"
    if len(values) <= 20 and all(float(v).is_integer() for v in values) and prediction is not None:
        p = pd.to_numeric(prediction, errors="coerce").dropna()
        if not p.empty and set(np.unique(p.to_numpy(dtype=float)).tolist()) <= values:
            return "classification"
    return "regression"


def prediction_kind(target: pd.Series, prediction: pd.Series) -> tuple[str, object]:
    """('probability', positive class) or ('label', None) for a classification model.

    A numeric prediction in [0, 1] for a two-class target that is not itself among the
    target's labels is read as the probability of the larger label (1, True, or the
    second in sorted order, e.g. "yes" over "no").
    """
    raw = pd.Series(target.dropna().unique())
    order = np.argsort(raw.to_numpy(dtype=float)) if pd.api.types.is_numeric_dtype(raw) \
        else np.argsort(label_text(raw).astype(str))
    labels = list(label_text(raw)[order])
    p = prediction.dropna()
    if pd.api.types.is_numeric_dtype(p) and not pd.api.types.is_bool_dtype(p):
        values = p.to_numpy(dtype=float)
        as_labels = set(label_text(pd.Series(np.unique(values)))) <= set(labels)
        if len(labels) <= 2 and values.size and values.min() >= 0 and values.max() <= 1 \
                and not as_labels:
            return "probability", (labels[-1] if labels else "1")
    return "label", None


def default_metric(task: str, kind: str = "label") -> str:
    if task == "regression":
        return "mae"
    return "logloss" if kind == "probability" else "accuracy"


def row_losses(y: pd.Series, prediction: pd.Series, metric: str, positive=None) -> np.ndarray:
    """Per-row loss whose mean gives the metric; NaN where the row has no label.

    * mae: ``|y - yhat|``; rmse: ``(y - yhat)^2`` (the metric is the root of the mean);
    * mape: ``100 |y - yhat| / |y|`` (rows with y = 0 are NaN: undefined);
    * accuracy: ``1[y != yhat]`` (the metric is one minus the mean); with probabilities
      of ``positive``, ``yhat`` is ``positive`` when ``p >= 0.5``;
    * logloss: ``-ln max(p_y, 1e-6)`` with ``p_y`` the predicted probability of the
      observed class (binary: ``p`` for ``positive``, ``1 - p`` otherwise).
    """
    if metric not in METRICS:
        raise AttributionError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if metric in REGRESSION_METRICS:
        yv = pd.to_numeric(y, errors="coerce").to_numpy(dtype=float)
        pv = pd.to_numeric(prediction, errors="coerce").to_numpy(dtype=float)
        err = yv - pv
        if metric == "mae":
            return np.abs(err)
        if metric == "rmse":
            return err ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 100.0 * np.abs(err) / np.abs(yv)
        out[yv == 0] = np.nan
        return out
    missing = (y.isna() | prediction.isna()).to_numpy()
    if metric == "accuracy" and positive is not None:
        # probabilities: the predicted class is the positive one when p >= 0.5
        p = pd.to_numeric(prediction, errors="coerce").to_numpy(dtype=float)
        out = ((label_text(y) == str(positive)) != (p >= 0.5)).astype(float)
    elif metric == "accuracy":
        out = (label_text(y) != label_text(prediction)).astype(float)
    else:
        p = pd.to_numeric(prediction, errors="coerce").to_numpy(dtype=float)
        is_pos = label_text(y) == str(positive)
        p_obs = np.where(is_pos, p, 1.0 - p)
        out = -np.log(np.clip(p_obs, PROBABILITY_EPS, 1.0))
    out[missing] = np.nan
    return out


def metric_level(mean_loss, metric: str):
    """The metric from the mean per-row loss (see :func:`row_losses`)."""
    mean_loss = np.asarray(mean_loss, dtype=float)
    if metric == "rmse":
        return np.sqrt(np.maximum(mean_loss, 0.0))
    if metric == "accuracy":
        return 1.0 - mean_loss
    return mean_loss


# --------------------------------------------------------------------------- windows

def cell_sizes(timestamps, segments=None) -> dict[str, dict[str, float]]:
    """Per calendar unit: ``windows`` (how many), ``window_rows`` (the median rows of a
    window) and ``cell_rows`` (the median rows of a window x group cell; the window's
    when there is no segment), over the rows with a timestamp."""
    stamps = pd.to_datetime(pd.Series(timestamps), errors="coerce")
    ok = stamps.notna().to_numpy()
    ts = stamps[ok].to_numpy(dtype="datetime64[us]")
    groups = None if segments is None else np.asarray(segments, dtype=object)[ok]
    out = {}
    for u in UNITS:
        starts = window_start(ts, u)
        window_rows = pd.Series(starts).value_counts()
        cell_rows = (window_rows if groups is None else
                     pd.DataFrame({"w": starts, "g": groups}).value_counts())
        out[u] = {"windows": int(window_rows.size),
                  "window_rows": float(window_rows.median()) if window_rows.size else 0.0,
                  "cell_rows": float(cell_rows.median()) if cell_rows.size else 0.0}
    return out


def choose_unit(timestamps, unit: str = "auto", segments=None) -> str | None:
    """The calendar unit: as given, or for ``auto`` one the data can support.

    ``auto`` looks first at units whose median window x group cell holds at least
    ``CELL_ROWS`` rows (``segments``: each row's group, optional), then at units whose
    median window does, then at units whose median window holds ``MIN_ROWS`` (enough to
    judge the all-groups cells); among the first such tier it takes the unit giving 8-30
    windows (nearest to 15 in ratio when several do; the nearest to that range in ratio
    when none does). When even the coarsest unit leaves the median window below
    ``MIN_ROWS``, it returns None: one window over the whole production period.
    """
    if unit != "auto":
        if unit not in UNITS:
            raise AttributionError(f"unknown window {unit!r}; choose auto or one of {', '.join(UNITS)}")
        return unit
    return unit_for(cell_sizes(timestamps, segments))


def unit_for(sizes: dict[str, dict[str, float]]) -> str | None:
    """``auto``'s choice (see :func:`choose_unit`) from :func:`cell_sizes`."""
    def distance(u: str) -> tuple[float, float]:
        n = sizes[u]["windows"]
        outside = 0.0 if 8 <= n <= 30 else min(abs(math.log(max(n, 1) / 8)), abs(math.log(max(n, 1) / 30)))
        return outside, abs(math.log(max(n, 1) / 15))

    tiers = ([u for u in UNITS if sizes[u]["cell_rows"] >= CELL_ROWS],
             [u for u in UNITS if sizes[u]["window_rows"] >= CELL_ROWS],
             [u for u in UNITS if sizes[u]["window_rows"] >= MIN_ROWS])
    for tier in tiers:
        if tier:
            return min(tier, key=distance)
    return None


def _sizes_text(sizes: dict, unit: str, segment: str | None) -> str:
    """'9 windows, a median 60,000 rows each (15,000 per user_group)'."""
    s = sizes[unit]
    text = f"{s['windows']} windows, a median {s['window_rows']:,.0f} rows each"
    if segment is not None:
        text += f" ({s['cell_rows']:,.0f} per {segment})"
    return text


# --------------------------------------------------------------------------- encoding

class Encoder:
    """Features as a float matrix for the tree models: numbers as they are (inf as
    missing), categories as codes of their most frequent levels in reference and
    production together (the rest pooled as one "other" code), missing as NaN."""

    def __init__(self, frames: list[pd.DataFrame], columns: Mapping[str, str]):
        self.columns = dict(columns)
        self.levels: dict[str, pd.Index] = {}
        for col, kind in self.columns.items():
            if kind == CATEGORICAL:
                counts = pd.Series(np.concatenate([label_text(f[col]) for f in frames])).value_counts()
                self.levels[col] = pd.Index(counts.index[:MAX_LEVELS].astype(str))

    @property
    def categorical_mask(self) -> np.ndarray:
        return np.array([k == CATEGORICAL for k in self.columns.values()], dtype=bool)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(self.columns)), dtype=float)
        for j, (col, kind) in enumerate(self.columns.items()):
            if kind == CATEGORICAL:
                text = label_text(frame[col])
                codes = self.levels[col].get_indexer(text).astype(float)
                codes[codes < 0] = len(self.levels[col])   # other
                codes[pd.isna(text)] = np.nan
                out[:, j] = codes
            else:
                v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, copy=True)
                v[~np.isfinite(v)] = np.nan
                out[:, j] = v
        return out

    def one_hot(self, frame: pd.DataFrame, top: int = 20) -> tuple[np.ndarray, list[str]]:
        """Readable design matrix for rules and surrogates: numbers as they are (missing
        as the median), categories as indicators of their ``top`` levels."""
        parts, names = [], []
        for col, kind in self.columns.items():
            if kind == CATEGORICAL:
                text = label_text(frame[col])
                text[pd.isna(text)] = "(missing)"
                for level in self.levels[col][:top]:
                    parts.append((text == level).astype(float))
                    names.append(f"{col} = {level}")
            else:
                v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, copy=True)
                v[~np.isfinite(v)] = np.nan
                fill = np.nanmedian(v) if np.isfinite(v).any() else 0.0
                parts.append(np.where(np.isnan(v), fill, v))
                names.append(col)
        return (np.column_stack(parts) if parts else np.empty((len(frame), 0))), names


# --------------------------------------------------------------------------- models

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


@dataclass
class ReferenceModel:
    """An independent model of P(y | x) fitted on the reference, cross-fitted.

    ``predict_reference`` holds the out-of-fold predictions of the reference rows it saw;
    window rows are predicted by a fold model chosen at random, so both sides are scored
    by models of the same quality.
    """

    task: str
    models: list
    classes: np.ndarray | None
    positive_index: int | None

    def predict(self, X: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Predictions (regression) or class probabilities (n x classes)."""
        width = None if self.task == "regression" else len(self.classes)
        out = np.empty(len(X)) if width is None else np.empty((len(X), width))
        for k, model in enumerate(self.models):
            m = which == k
            if m.any():
                out[m] = model.predict(X[m]) if width is None else model.predict_proba(X[m])
        return out


def target_codes(y: pd.Series, classes: np.ndarray) -> np.ndarray:
    return pd.Index(classes).get_indexer(label_text(y))


def fit_reference_model(X: np.ndarray, y: pd.Series, task: str, cat_mask: np.ndarray,
                        seed: int = 0, n_folds: int = 3) -> tuple[ReferenceModel, np.ndarray]:
    """Fit the reference model; returns it and the out-of-fold predictions of ``X``."""
    folds = np.empty(len(X), dtype=int)
    splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    models = []
    if task == "regression":
        target = pd.to_numeric(y, errors="coerce").to_numpy(dtype=float)
        oof = np.empty(len(X))
        classes = None
    else:
        classes = np.array(sorted(set(label_text(y)) - {None}))
        target = target_codes(y, classes)
        oof = np.empty((len(X), len(classes)))
    for k, (train, test) in enumerate(splitter.split(X)):
        params = dict(max_iter=200, learning_rate=0.1, max_leaf_nodes=31,
                      min_samples_leaf=max(20, len(train) // 2000),
                      categorical_features=cat_mask if cat_mask.any() else None,
                      early_stopping=len(train) >= 200, validation_fraction=0.1,
                      n_iter_no_change=10, random_state=seed)
        if task == "regression":
            model = HistGradientBoostingRegressor(**params).fit(X[train], target[train])
            oof[test] = model.predict(X[test])
        else:
            model = HistGradientBoostingClassifier(**params).fit(X[train], target[train])
            proba = np.zeros((len(test), len(classes)))
            proba[:, model.classes_] = model.predict_proba(X[test])
            oof[test] = proba
            model = _FullProba(model, len(classes))
        models.append(model)
        folds[test] = k
    positive = len(classes) - 1 if classes is not None and len(classes) == 2 else None
    return ReferenceModel(task, models, classes, positive), oof


class _FullProba:
    """A classifier whose probabilities cover every reference class."""

    def __init__(self, model, width: int):
        self.model, self.width = model, width

    def predict_proba(self, X):
        out = np.zeros((len(X), self.width))
        out[:, self.model.classes_] = self.model.predict_proba(X)
        return out


@dataclass
class _ExpectedGivenX:
    """E[loss | x] and E[residual | x] of the reference model under the reference's
    concept. Classification: from the model's own probabilities (calibrated: Brier
    ``sum_k p_k (1 - p_k)``, residual 0). Regression: outcome models fitted on the
    reference's out-of-fold losses and residuals (2-fold cross-fitted)."""

    reference_loss: np.ndarray
    reference_resid: np.ndarray | float
    loss_model: ReferenceModel | None = None
    resid_model: ReferenceModel | None = None

    def window(self, predicted: np.ndarray, X: np.ndarray, rng: np.random.Generator):
        if self.loss_model is None:
            return (predicted * (1 - predicted)).sum(axis=1), 0.0
        which = rng.integers(0, 2, size=len(X))
        return (self.loss_model.predict(X, which),
                self.resid_model.predict(X, which) if self.resid_model else 0.0)


def _expected_given_x(model: ReferenceModel, oof: np.ndarray, X: np.ndarray, loss: np.ndarray,
                      resid: np.ndarray | None, cat_mask: np.ndarray, seed: int) -> _ExpectedGivenX:
    if model.task != "regression":
        return _ExpectedGivenX((oof * (1 - oof)).sum(axis=1), 0.0)
    loss_model, m_loss = fit_reference_model(X, pd.Series(loss), "regression", cat_mask, seed,
                                             n_folds=2)
    resid_model, m_resid = fit_reference_model(X, pd.Series(resid), "regression", cat_mask,
                                               seed, n_folds=2)
    return _ExpectedGivenX(m_loss, m_resid, loss_model, resid_model)


def prediction_scale(model: ReferenceModel, predicted: np.ndarray) -> np.ndarray | None:
    """The model's prediction as one number per row (the value, or the positive class's
    probability for two classes; None for more)."""
    if model.task == "regression":
        return predicted
    return None if model.positive_index is None else predicted[:, model.positive_index]


def model_loss_and_residual(model: ReferenceModel, predicted: np.ndarray, y: pd.Series
                            ) -> tuple[np.ndarray, np.ndarray | None]:
    """The reference model's per-row loss and signed residual.

    Regression: absolute error ``|y - yhat|`` and ``y - yhat``. Classification: the
    Brier score ``sum_k (1[y = k] - p_k)^2`` (bounded by 2, so a few confident mistakes
    cannot dominate a small cell's mean as they would with log loss; a class the
    reference never had counts as a full miss) and, for two classes,
    ``1[positive] - p`` (None for more)."""
    if model.task == "regression":
        resid = pd.to_numeric(y, errors="coerce").to_numpy(dtype=float) - predicted
        return np.abs(resid), resid
    codes = target_codes(y, model.classes)
    onehot = np.zeros_like(predicted)
    known = codes >= 0
    onehot[np.flatnonzero(known), codes[known]] = 1.0
    loss = ((onehot - predicted) ** 2).sum(axis=1) + (~known) * 1.0
    if model.positive_index is None:
        return loss, None
    resid = (codes == model.positive_index).astype(float) - predicted[:, model.positive_index]
    return loss, resid


# --------------------------------------------------------------------------- statistics

def weighted_mean(values: np.ndarray, weights: np.ndarray, replicates: np.ndarray | None = None):
    """Self-normalised ``sum w v / sum w`` for the point estimate, and for each bootstrap
    replicate (rows of ``replicates``: per-row resampling counts) when given."""
    point = float(np.dot(weights, values) / weights.sum()) if weights.sum() > 0 else float("nan")
    if replicates is None:
        return point
    num = replicates @ (weights * values)
    den = replicates @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        return point, num / den


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
    return float(2 * sps.norm.sf(abs(estimate) / se))


def null_se(var_ref: np.ndarray, w_ref: np.ndarray, var_win: np.ndarray, w_win: np.ndarray
            ) -> float:
    """SE of a difference of two self-normalised weighted means whose rows have variances
    ``var`` under the null: ``sqrt(sum w_w^2 v_w / (sum w_w)^2 + sum w_r^2 v_r / (sum w_r)^2)``."""
    total = 0.0
    for var, w in ((var_ref, w_ref), (var_win, w_win)):
        if w.sum() > 0:
            total += float(np.dot(w * w, var)) / float(w.sum()) ** 2
    return math.sqrt(total)


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


def clean_values(values: pd.Series, kind: str) -> pd.Series:
    if kind == NUMERIC:
        v = pd.to_numeric(values, errors="coerce").astype(float)
        return v.where(np.isfinite(v))
    return pd.Series(label_text(values), index=values.index, dtype=object)


# --------------------------------------------------------------------------- the cells

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

    def to_dict(self) -> dict:
        return {
            "segment": self.segment,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "rows": int(self.rows), "labelled_rows": int(self.labelled_rows),
            "verdict": self.verdict, "data": self.data, "concept": self.concept,
            "decomposition": self.decomposition, "notes": list(self.notes),
            **_estimate_keys(self.estimated),
        }


def _estimate_keys(estimated: dict | None) -> dict:
    """``estimated_accuracy`` and its 95 % interval ``estimated_accuracy_ci`` ([low,
    high]); None when the prediction is not a probability."""
    if not estimated or estimated.get("value") is None:
        return {"estimated_accuracy": None, "estimated_accuracy_ci": None}
    return {"estimated_accuracy": estimated["value"],
            "estimated_accuracy_ci": [estimated["low"], estimated["high"]]}


def segments_of(frame: pd.DataFrame, segment: str | None) -> np.ndarray:
    if segment is None:
        return np.full(len(frame), ALL, dtype=object)
    text = label_text(frame[segment])
    text[pd.isna(text)] = "(missing)"
    return text


def _sample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=cap, replace=False)) if n > cap else np.arange(n)


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
            "thresholds": {"alpha": ALPHA, "auc_min": AUC_MIN, "psi_min": PSI_MIN,
                           "concept_min": CONCEPT_MIN, "bias_min": BIAS_MIN,
                           "weight_clip": CLIP, "support_ratio": SUPPORT_RATIO,
                           "min_rows": MIN_ROWS, "bootstrap": BOOTSTRAP},
            "notes": self.notes,
            **_estimate_keys(self.estimated),
            "estimation": self.estimation,
        }


class _LossLevels:
    """The user's model's mean loss over *every* row of a group's reference and of a
    cell's window (the investigation itself works on samples)."""

    def __init__(self, reference: pd.DataFrame, production: pd.DataFrame, p: Problem,
                 seg_prod: np.ndarray):
        self.ref_loss = row_losses(reference[p.target], reference[p.prediction], p.metric,
                                   p.positive)
        self.prod_loss = row_losses(production[p.target], production[p.prediction], p.metric,
                                    p.positive)
        self.seg_ref = segments_of(reference, p.segment)
        self.seg_prod = seg_prod

    @staticmethod
    def _mean(values: np.ndarray) -> float:
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else math.nan

    def of(self, ref_segment: str, win_segment: str, rows: np.ndarray) -> tuple[float, float]:
        """(reference level of ``ref_segment``, level of ``win_segment`` in window ``rows``);
        ALL takes every group."""
        ref = self.ref_loss if ref_segment == ALL else self.ref_loss[self.seg_ref == ref_segment]
        win = self.prod_loss[rows]
        if win_segment != ALL:
            win = win[self.seg_prod[rows] == win_segment]
        return self._mean(ref), self._mean(win)


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


def _support_aware(e_iw: tuple, loss_win: np.ndarray, outside: np.ndarray,
                   win_reps: np.ndarray) -> tuple:
    """Expected mean loss when the window's rows outside the reference's support keep
    their realized loss and the others get the importance-weighted reference loss:
    ``(1 - o) E_iw + o L_out`` with ``o`` the outside share (point, replicates)."""
    out = outside.astype(float)
    n = len(loss_win)
    point = (1 - out.mean()) * e_iw[0] + float(np.dot(out, loss_win)) / n
    totals = win_reps.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = (1 - (win_reps @ out) / totals) * e_iw[1] + (win_reps @ (out * loss_win)) / totals
    return point, reps


def _cbpe_confidence(reference: pd.DataFrame, production: pd.DataFrame, p: Problem
                     ) -> tuple[np.ndarray | None, dict | None]:
    """Per production row, the probability that the model is right (CBPE,
    :mod:`analysis.monitoring.cbpe`), when the prediction column holds a two-class
    probability; calibrated on the reference when it has labels. (None, None) otherwise."""
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
    confidence, estimation = _cbpe_confidence(reference, production, p)
    if estimation is not None:
        notes.append(estimation["note"])
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
            if confidence is not None:
                conf = confidence[rows_w] if seg == ALL else \
                    confidence[rows_w][seg_prod[rows_w] == seg]
                cell.estimated = estimate_from_confidence(conf).to_dict()
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
        missing = "prediction" if p.labelled else \
            ("target" if p.prediction else "target or prediction")
        notes.append(f"no {missing} column: the model's error change cannot be decomposed")
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
    if confidence is not None:
        inv.estimated = estimate_from_confidence(confidence[window_of >= 0]).to_dict()
        inv.estimation = {k: v for k, v in estimation.items() if k != "note"}
    inv.summary = verdict_text(inv)
    return inv


def _perfect(level: float | None, metric: str) -> bool:
    """A metric level no honest held-out prediction reaches: accuracy 1, an error 0."""
    if level is None or not math.isfinite(level):
        return False
    return level >= 1 - 1e-12 if metric == "accuracy" else abs(level) <= 1e-12


def _coarser_advice(sizes: dict | None, unit: str | None) -> str:
    """What to do when cells are too small: the first coarser unit whose median window
    holds ``MIN_ROWS`` rows, else ``auto``'s single window."""
    if sizes is None or unit is None:
        return ""
    for u in UNITS[UNITS.index(unit) + 1:]:
        if sizes[u]["window_rows"] >= MIN_ROWS:
            return (f"; choose a coarser window: a {u} holds a median "
                    f"{sizes[u]['window_rows']:,.0f} rows")
    return "; choose window auto to judge the whole period as one window"


_CONCEPT_REASONS = {
    "no_target": "no target column",
    "reference_labels": f"fewer than {MIN_ROWS} labelled reference rows",
    "no_labels": "no production row has a label yet",
    "labels": f"no judged cell has {MIN_ROWS} labelled rows (labels may not have arrived yet)",
    "overlap": f"no judged cell has {MIN_ROWS} labelled rows where its inputs overlap the "
               "reference's",
}


def _judged(cells: list[Cell], p: Problem, decomposition: dict | None, unit: str | None,
            sizes: dict | None) -> dict:
    """What could be judged: ``data``, ``concept`` and ``decomposition`` (booleans),
    ``cells`` and ``total_cells`` (cells whose inputs were judged, of all cells), and
    ``reasons``: for each of the three that is False, why, and what to do."""
    judged_cells = [c for c in cells if c.data.get("judged")]
    data = bool(judged_cells)
    concept = any(c.concept.get("judged") for c in cells)
    reasons: dict[str, str | None] = {"data": None, "concept": None, "decomposition": None}
    if not data:
        biggest = max((c.rows for c in cells), default=0)
        reasons["data"] = (f"every cell has fewer than {MIN_ROWS} rows (the largest has "
                           f"{biggest:,})" + _coarser_advice(sizes, unit))
    if not concept:
        if not data and p.labelled:
            reasons["concept"] = reasons["data"]
        else:
            found = [c.concept.get("reason") for c in judged_cells] or ["no_target"]
            unlabelled = all(c.labelled_rows == 0 for c in judged_cells)
            key = "no_target" if not p.labelled else next(
                (r for r in ("reference_labels", "overlap") if r in found),
                "no_labels" if unlabelled else "labels")
            reasons["concept"] = _CONCEPT_REASONS[key]
    if decomposition is None:
        if not p.labelled:
            reasons["decomposition"] = "no target column"
        elif not p.has_model:
            reasons["decomposition"] = "no prediction column"
        else:
            reasons["decomposition"] = reasons["concept"] or "no cell could be decomposed"
    return {"data": data, "concept": concept, "decomposition": decomposition is not None,
            "cells": len(judged_cells), "total_cells": len(cells), "reasons": reasons}


def _too_small_note(cells: list[Cell], p: Problem) -> str | None:
    """One note naming the cells left unjudged for too few rows, by window."""
    small = [c for c in cells if c.data.get("reason") == "rows"]
    if not small:
        return None
    parts = []
    for c in small[:8]:
        who = "all groups" if c.segment == ALL or p.segment is None else f"{p.segment} = {c.segment}"
        parts.append(f"{window_label(c.start and c.start.isoformat())} {who} ({c.rows:,} row{'s' if c.rows != 1 else ''})")
    more = f" and {len(small) - 8} more" if len(small) > 8 else ""
    return (f"{len(small)} of {len(cells)} cells not judged, fewer than {MIN_ROWS} rows: "
            + "; ".join(parts) + more)


def _cell_notes(cells: list[Cell], p: Problem) -> list[str]:
    """Notes that summarise the cells: inputs outside the reference's support, and
    reference predictions that look in-sample."""
    out = [n for n in [_too_small_note(cells, p)] if n]
    by_segment: dict[str, list[float]] = {}
    for c in cells:
        share = c.data.get("out_of_support_share", 0.0)
        if share >= 0.05:
            by_segment.setdefault(c.segment, []).append(share)
    for seg, shares in sorted(by_segment.items()):
        who = "all rows" if seg == ALL else f"{p.segment} = {seg}"
        span = f"{min(shares):.0%}" if min(shares) == max(shares) else f"{min(shares):.0%}-{max(shares):.0%}"
        out.append(f"{who}: {span} of the rows in {len(shares)} window(s) lie where the reference "
                   "has (almost) no data (density ratio above "
                   f"{SUPPORT_RATIO:g}); these are new inputs whose concept cannot be judged from "
                   "the reference, and the shared-region decomposition counts them as data drift")
    if p.has_model:
        quiet = [c for c in cells if c.decomposition and not c.concept.get("flagged")
                 and c.concept.get("judged")]
        raised = [c for c in quiet if (c.decomposition["concept_part"]["low"] or 0) > 0]
        if quiet and len(raised) >= max(2, len(quiet) // 2):
            out.append(
                f"in {len(raised)} of {len(quiet)} cells without concept drift the model's error "
                "on inputs like the reference's is still above its reference error, while an "
                "independently cross-fitted model shows no change: the reference predictions "
                "look in-sample (made by a model trained on those rows), so the decomposition's "
                "concept part overstates the concept drift by that optimism")
    return out


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



def _within_overlap(ratio: np.ndarray) -> np.ndarray:
    """Rows whose density ratio lies within ``OVERLAP`` of 1 (either way)."""
    return (ratio <= OVERLAP) & (ratio >= 1.0 / OVERLAP)


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


# --------------------------------------------------------------------------- where / which

def disagreement_tree(X: np.ndarray, disagreement: np.ndarray, weights: np.ndarray,
                      names: list[str], max_depth: int = 3) -> tuple[DecisionTreeRegressor, str]:
    """A shallow tree on the (weighted) disagreement between the retrained and the
    reference model, and the rule of the leaf carrying the most of it
    (weight x |mean disagreement|)."""
    leaf = max(20, len(X) // 50)
    tree = DecisionTreeRegressor(max_depth=max_depth, min_samples_leaf=leaf, random_state=0)
    tree.fit(X, disagreement, sample_weight=weights)
    t = tree.tree_
    leaves = np.flatnonzero(t.children_left == -1)
    mass = t.weighted_n_node_samples[leaves] * np.abs(t.value[leaves, 0, 0])
    target = leaves[int(np.argmax(mass))]
    # walk from the root to the chosen leaf
    parent = {}
    for node in range(t.node_count):
        for child, side in ((t.children_left[node], "le"), (t.children_right[node], "gt")):
            if child != -1:
                parent[child] = (node, side)
    path = []
    node = target
    while node in parent:
        up, side = parent[node]
        path.append((names[t.feature[up]], side, float(t.threshold[up])))
        node = up
    rule = describe_path(reversed(path)) or "everywhere"
    return tree, f"{rule}: mean disagreement {t.value[target, 0, 0]:+.4g}"


def describe_path(path) -> str:
    """Readable conjunction of tree splits: (name, 'le'|'gt', threshold) steps, where an
    indicator column is named 'column = level'. Bounds on one feature are merged."""
    lower: dict[str, float] = {}
    upper: dict[str, float] = {}
    levels: dict[str, tuple[set, set]] = {}
    order: list[str] = []
    for name, side, thr in path:
        col = name.split(" = ", 1)[0]
        if col not in order:
            order.append(col)
        if " = " in name:
            is_, not_ = levels.setdefault(col, (set(), set()))
            (not_ if side == "le" else is_).add(name.split(" = ", 1)[1])
        elif side == "le":
            upper[name] = min(upper.get(name, math.inf), thr)
        else:
            lower[name] = max(lower.get(name, -math.inf), thr)
    parts = []
    for col in order:
        if col in levels:
            is_, not_ = levels[col]
            if is_:
                parts.append(f"{col} = {', '.join(sorted(is_))}")
            elif not_:
                parts.append(f"{col} not in {{{', '.join(sorted(not_))}}}")
            continue
        lo, hi = lower.get(col), upper.get(col)
        if lo is not None and hi is not None:
            parts.append(f"{lo:.4g} < {col} <= {hi:.4g}")
        elif hi is not None:
            parts.append(f"{col} <= {hi:.4g}")
        elif lo is not None:
            parts.append(f"{col} > {lo:.4g}")
    return " and ".join(parts)


def _concept_regions(cells: list[Cell], p: Problem, encoder: Encoder, g_model,
                     seed: int) -> list[dict]:
    """For each concept-flagged cell: retrain on the window (2-fold cross-fitted), fit a
    shallow tree on the disagreement with the reference model over the shared region,
    record its rule; rank the features by the trees' importances (rows-weighted)."""
    flagged = [c for c in cells if c.concept.get("flagged") and c._where]
    if not flagged or g_model is None:
        return []
    importance: dict[str, float] = {}
    total_rows = 0
    for c in flagged:
        rows = c._where["in_win"]
        win, Xw, pi_win = c._where["win"][rows], c._where["X_win"][rows], c._where["pi_win"]
        lab = win[p.target].notna().to_numpy()
        if lab.sum() < 2 * MIN_ROWS:
            continue
        win, Xw, pi_win = win[lab], Xw[lab], pi_win[lab]
        # out-of-fold predictions of the retrained model: no row scores itself
        retrained, new = fit_reference_model(Xw, win[p.target], p.task, encoder.categorical_mask,
                                             seed, n_folds=2)
        old = g_model.predict(Xw, np.arange(len(Xw)) % len(g_model.models))
        if p.task == "regression":
            d = new - old
        elif g_model.positive_index is not None and retrained.positive_index is not None \
                and list(retrained.classes) == list(g_model.classes):
            d = new[:, retrained.positive_index] - old[:, g_model.positive_index]
        else:
            common = [i for i, k in enumerate(g_model.classes) if k in set(retrained.classes)]
            idx = pd.Index(retrained.classes).get_indexer(g_model.classes[common])
            d = 0.5 * np.abs(new[:, idx] - old[:, common]).sum(axis=1)
        design, names = encoder.one_hot(win)
        tree, rule = disagreement_tree(design, d, 1 - pi_win, names)
        c.concept["where"] = rule
        c.concept["retrained_disagreement"] = float(np.average(np.abs(d), weights=1 - pi_win))
        by_column: dict[str, float] = {}
        for name, imp in zip(names, tree.feature_importances_):
            col = name.split(" = ", 1)[0]
            by_column[col] = by_column.get(col, 0.0) + float(imp)
        c.concept["feature_importance"] = {k: v for k, v in sorted(
            by_column.items(), key=lambda kv: -kv[1]) if v > 0}
        for col, imp in by_column.items():
            if col in p.features:
                importance[col] = importance.get(col, 0.0) + imp * c.rows
        total_rows += c.rows
    if not total_rows:
        return []
    ranked = sorted(((k, v / total_rows) for k, v in importance.items()), key=lambda kv: -kv[1])
    return [{"feature": k, "importance": v,
             "cells": sum(1 for c in flagged if c.concept.get("feature_importance", {}).get(k, 0) > 0.1)}
            for k, v in ranked if v >= 0.1]


def _drifted_features(cells: list[Cell], p: Problem, reference: pd.DataFrame,
                      production: pd.DataFrame, seed: int, window_of: np.ndarray,
                      seg_prod: np.ndarray) -> list[dict]:
    """Features that drifted in some data-flagged cell, root causes first.

    A feature is a root cause when its distribution *given the other drifted features*
    changed: leaving it out of a domain classifier that sees the others makes the
    classifier's cross-fitted log loss worse by at least 0.005 nats and 5% of what all
    of them together gain over guessing. A feature that only moved with others (its
    conditional distribution unchanged) adds nothing once they are known. Ties keep
    the order of the strongest PSI.
    """
    stats_by: dict[str, dict] = {}
    for c in cells:
        if not c.data.get("flagged"):
            continue
        for col, f in c.data["features"].items():
            if not f.get("drifted"):
                continue
            s = stats_by.setdefault(col, {"feature": col, "max_psi": 0.0, "cells": 0,
                                          "first_window": None, "segments": set()})
            s["max_psi"] = max(s["max_psi"], f["psi"])
            s["cells"] += 1
            s["segments"].add(c.segment)
            if c.start is not None and (s["first_window"] is None or c.start.isoformat() < s["first_window"]):
                s["first_window"] = c.start.isoformat()
    if not stats_by:
        return []
    ranked = sorted(stats_by.values(), key=lambda s: -s["max_psi"])
    contribution, roots = _conditional_contributions(
        cells, p, reference, production, [s["feature"] for s in ranked][:12], seed, window_of,
        seg_prod)
    for s in ranked:
        s["segments"] = sorted(s["segments"])
        s["conditional_contribution"] = contribution.get(s["feature"])
        s["role"] = "root cause" if s["feature"] in roots else "moved with others"
    if not roots:
        # the drifted features move together so tightly that none adds anything given
        # the others: the strongest one leads, and says so
        ranked[0]["role"] = "root cause (undetermined: the drifted features move together)"
    ranked.sort(key=lambda s: (not s["role"].startswith("root cause"),
                               -(s["conditional_contribution"] or 0.0)
                               if s["role"] == "root cause" else 0.0,
                               -s["max_psi"]))
    return ranked


def _conditional_contributions(cells: list[Cell], p: Problem, reference: pd.DataFrame,
                               production: pd.DataFrame, features: list[str], seed: int,
                               window_of: np.ndarray, seg_prod: np.ndarray
                               ) -> tuple[dict[str, float], list[str]]:
    """Leave-one-feature-out log-loss increase of a domain classifier over the drifted
    rows (production rows of the data-flagged cells against reference rows of the same
    segments; segment an input when there is one), and the features that are roots."""
    rng = np.random.default_rng(seed + 1)
    if len(features) < 2:
        return {}, list(features)
    flagged = [c for c in cells if c.data.get("flagged")]
    mask = np.zeros(len(production), bool)
    seg_names = set()
    for c in flagged:
        in_window = window_of == c._window
        mask |= in_window if c.segment == ALL else (in_window & (seg_prod == c.segment))
        seg_names.add(c.segment)
    if ALL in seg_names or p.segment is None:
        ref_mask = np.ones(len(reference), bool)
    else:
        ref_mask = np.isin(segments_of(reference, p.segment), sorted(seg_names))
    cap = 20_000
    prod_rows = np.flatnonzero(mask)
    prod_rows = prod_rows[_sample(prod_rows.size, cap, rng)]
    ref_rows = np.flatnonzero(ref_mask)
    ref_rows = ref_rows[_sample(ref_rows.size, cap, rng)]
    frame = pd.concat([reference.iloc[ref_rows], production.iloc[prod_rows]], ignore_index=True)
    y = np.r_[np.zeros(ref_rows.size, int), np.ones(prod_rows.size, int)]
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    base_cols = {c: p.features[c] for c in features}
    if p.segment is not None:
        base_cols[p.segment] = CATEGORICAL

    def cv_logloss(cols: dict) -> float:
        enc = Encoder([frame], cols)
        X = enc.transform(frame)
        prob = np.zeros(len(y))
        for train, test in StratifiedKFold(2, shuffle=True, random_state=seed).split(X, y):
            model = _classifier(enc.categorical_mask, seed, len(train)).fit(X[train], y[train])
            prob[test] = model.predict_proba(X[test])[:, 1]
        prob = np.clip(prob, 1e-6, 1 - 1e-6)
        return float(np.average(-(y * np.log(prob) + (1 - y) * np.log(1 - prob)), weights=weight))

    full = cv_logloss(base_cols)
    gain = math.log(2) - full
    contribution = {col: cv_logloss({k: v for k, v in base_cols.items() if k != col}) - full
                    for col in features}
    roots = [col for col, c in contribution.items() if c >= max(0.005, 0.05 * gain)]
    return contribution, roots


# --------------------------------------------------------------------------- text

def _fmt(v, places: int = 2, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:{'+' if signed else ''},.{places}f}"


def _span(cells: list[Cell]) -> str:
    starts = sorted(c.start for c in cells if c.start is not None)
    if not starts:
        return ""
    return f" from the window starting {starts[0]:%Y-%m-%d}"


def _names(features: list[dict], limit: int = 8) -> str:
    names = [f["feature"] for f in features]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def verdict_text(inv: Investigation) -> str:
    """Plain-language verdict an analyst can paste into a postmortem."""
    p = inv.problem
    reasons = inv.judged.get("reasons", {})
    if inv.verdict == "not_judged":
        return (f"Not judged: {reasons.get('data')}. Neither the inputs (P(x)) nor the "
                "relationship to the target (P(y|x)) could be tested.")
    parts = []
    def groups(kind: str) -> tuple[list[str], list[Cell]]:
        """The groups whose cells show ``kind``; [ALL] when only all groups together do."""
        hit = [c for c in inv.cells if c.segment != ALL and c.verdict in (kind, "both")]
        if not hit:
            hit = [c for c in inv.cells if c.segment == ALL and c.verdict in (kind, "both")]
        return sorted({c.segment for c in hit}), hit

    data_groups, data_cells = groups("data")
    concept_groups, concept_cells = groups("concept")
    who = lambda g: "" if g == [ALL] or not p.segment else f" in {p.segment} {', '.join(g)}"  # noqa
    concept_reason = reasons.get("concept") or "no labels"
    if inv.verdict == "none":
        if inv.judged["concept"]:
            parts.append("No drift found: neither the inputs (P(x)) nor, where labels exist, "
                         "the relationship to the target (P(y|x)) changed beyond noise in any "
                         "judged window or group.")
        else:
            parts.append("No data drift found: the inputs (P(x)) did not change beyond noise "
                         "in any judged window or group.")
    if data_groups:
        roots = [f["feature"] for f in inv.drifted_features if f.get("role") == "root cause"]
        parts.append(f"Data drift (P(x) changed){who(data_groups)}{_span(data_cells)}"
                     + (f": {_names(inv.drifted_features)}" if inv.drifted_features else "")
                     + (f" (root cause: {', '.join(roots)})" if roots and len(inv.drifted_features) > 1 else "")
                     + ".")
    if concept_groups:
        names = ", ".join(f["feature"] for f in inv.concept_features[:3])
        parts.append(f"Concept drift (P(y|x) changed){who(concept_groups)}{_span(concept_cells)}"
                     + (f", along {names}" if names else "") + ".")
    elif inv.judged["concept"] and inv.verdict != "none":
        parts.append("The relationship between inputs and target (P(y|x)) did not change "
                     "beyond noise.")
    d = inv.decomposition
    if d is not None and d["reference"]["value"] is not None:
        label = METRICS[p.metric]
        k = decimals_for(d["reference"]["value"])
        part = lambda key: (f"{_fmt(d[key]['value'], k, True)} [{_fmt(d[key]['low'], k, True)}, "  # noqa: E731
                            f"{_fmt(d[key]['high'], k, True)}]")
        rest = (f"concept drift for {part('concept_part')}" if inv.judged["concept"] else
                f"the rest, {part('concept_part')}, is not explained by the inputs' shift "
                "(not tested as concept drift)")
        parts.append(
            f"Over the production period the {label} went from {_fmt(d['reference']['value'], k)} "
            f"(reference) to {_fmt(d['realized']['value'], k)}; data drift accounts for "
            f"{part('data_part')} and {rest} (95% intervals).")
    if not inv.judged["concept"]:
        parts.append(f"Concept drift (P(y|x)) was not judged: {concept_reason}.")
    total, judged = inv.judged.get("total_cells", 0), inv.judged.get("cells", 0)
    if judged < total:
        parts.append(f"{total - judged} of {total} window x group cells had too few rows to "
                     "judge (see the notes).")
    return " ".join(parts)


# --------------------------------------------------------------------------- set-up

ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid)$|^(id|index)$", re.IGNORECASE)


def looks_like_id(reference: pd.Series, production: pd.Series) -> bool:
    """A row identifier rather than a feature: integer or text values named like one
    (``id``, ``user_id``, ``uuid``...), or (almost) all distinct in both tables, at least
    50 rows each."""
    discrete = all(pd.api.types.is_integer_dtype(s) or pd.api.types.is_string_dtype(s)
                   or pd.api.types.is_object_dtype(s) for s in (reference, production))
    if discrete and ID_NAME.search(str(reference.name)):
        return True
    def unique_share(s: pd.Series) -> float:
        s = s.dropna()
        return s.nunique() / len(s) if len(s) else 0.0

    kinds_ok = all(pd.api.types.is_integer_dtype(s) or pd.api.types.is_string_dtype(s)
                   or pd.api.types.is_object_dtype(s) for s in (reference, production))
    big = min(reference.notna().sum(), production.notna().sum()) >= 50
    return kinds_ok and big and unique_share(reference) >= 0.99 and unique_share(production) >= 0.99


def problem_from_frames(reference: pd.DataFrame, production: pd.DataFrame, *,
                        target: str | None = None, prediction: str | None = None,
                        timestamp: str | None = None, segment: str | None = None,
                        features: list[str] | None = None, exclude: list[str] | None = None,
                        task: str | None = None, metric: str | None = None
                        ) -> tuple[Problem, list[str]]:
    """The :class:`Problem` for two user tables, and notes on what was decided.

    Features default to every column both tables share except the named roles,
    timestamp-like columns, written row indexes, row identifiers (:func:`looks_like_id`)
    and columns constant within each table (such as a "partition" column that only
    says which file a row came from). Raises :class:`AttributionError` with a one-line
    message for a named column that is missing or unusable. ``production`` is updated
    in place: the timestamp column parsed, and a target or prediction column it lacks
    added as missing values (labels not arrived yet).
    """
    from analysis.tables import column_kinds, looks_like_index, looks_like_timestamp

    notes: list[str] = []
    for role, col in (("target", target), ("prediction", prediction)):
        if col is not None and col in reference.columns and col not in production.columns:
            # labels (or scores) that have not arrived yet: the rows count as unlabelled
            production[col] = pd.Series(np.nan, index=production.index,
                                        dtype=reference[col].dtype if role == "target"
                                        and pd.api.types.is_float_dtype(reference[col]) else object)
            notes.append(f"the production file has no {role} column {col!r}: its rows count as "
                         + ("unlabelled (concept drift not judged)" if role == "target"
                            else "unscored (the error cannot be decomposed)"))
    for role, col in (("target", target), ("prediction", prediction), ("timestamp", timestamp),
                      ("segment", segment)):
        if col is None:
            continue
        where = [n for n, f in (("reference", reference), ("production", production))
                 if col not in f.columns and (n == "production" or role != "timestamp")]
        if where:
            raise AttributionError(f"--{role} column {col!r} is not in the {' and '.join(where)} "
                                   f"file (columns: {', '.join(map(str, production.columns[:20]))})")
    if timestamp is None:
        found = [c for c in production.columns if c not in (target, prediction, segment)
                 and looks_like_timestamp(production[c])]
        if len(found) == 1:
            timestamp = found[0]
            notes.append(f"using {timestamp!r} as the timestamp (pass --timestamp to choose)")
        elif len(found) > 1:
            notes.append(f"several timestamp-like columns ({', '.join(found)}); none used: "
                         "pass --timestamp for windows over time")
    if timestamp is not None:
        parsed = pd.to_datetime(production[timestamp], errors="coerce", format="mixed")
        if parsed.isna().all():
            raise AttributionError(f"--timestamp column {timestamp!r} holds no dates "
                                   f"(first value {production[timestamp].iloc[0]!r})")
        production[timestamp] = parsed
    roles = {c for c in (target, prediction, timestamp, segment) if c is not None}
    common = [c for c in reference.columns if c in set(production.columns) and c not in roles]
    if features:
        missing = [c for c in features if c not in common]
        if missing:
            raise AttributionError(f"unknown feature(s) {', '.join(map(repr, missing))}: not in "
                                   "both files, or named as a role")
        chosen = list(features)
    else:
        excluded = set(exclude or [])
        chosen, skipped = [], []
        for c in common:
            r, q = reference[c], production[c]
            if c in excluded:
                continue
            if looks_like_timestamp(r) or looks_like_index(r, q):
                skipped.append(f"{c} (timestamp or row index)")
            elif looks_like_id(r, q):
                skipped.append(f"{c} (row identifier)")
            elif r.nunique(dropna=False) <= 1 and q.nunique(dropna=False) <= 1:
                skipped.append(f"{c} (constant within each file)")
            else:
                chosen.append(c)
        if skipped:
            notes.append("not used as features: " + ", ".join(skipped))
    if not chosen:
        raise AttributionError("no feature columns left to compare (the shared columns are all "
                               "roles, timestamps, identifiers or constants)")
    try:
        kinds = column_kinds(reference, production, chosen)
    except ValueError as exc:
        raise AttributionError(str(exc)) from None

    if target is not None:
        inferred = infer_task(reference[target], reference[prediction] if prediction else None)
        task = task or inferred
        if task == "regression":
            for name, col in (("target", target), ("prediction", prediction)):
                if col is None:
                    continue
                for label, frame in (("reference", reference), ("production", production)):
                    values = frame[col]
                    bad = values.notna() & pd.to_numeric(values, errors="coerce").isna()
                    if bad.any():
                        i = int(np.flatnonzero(bad.to_numpy())[0])
                        raise AttributionError(
                            f"--{name} column {col!r} must be numeric for a regression; the "
                            f"{label} file has {int(bad.sum())} non-numeric value(s), first "
                            f"{values.iloc[i]!r} at data row {i + 1}")
    else:
        if prediction is not None and task is None and looks_like_probability(
                pd.to_numeric(reference[prediction], errors="coerce").to_numpy(dtype=float)):
            task = "classification"
            notes.append(f"no target: {prediction!r} (numbers in [0, 1]) read as the positive "
                         "class's probability, predicting it at 0.5 or more")
        task = task or "regression"
    positive = None
    if metric is not None:
        allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
        if metric not in allowed:
            raise AttributionError(f"--metric {metric} does not apply to {task}; choose one of "
                                   f"{', '.join(allowed)}")
    if target is not None and prediction is not None and task == "classification":
        kind, positive = prediction_kind(reference[target], reference[prediction])
        if kind == "probability" and not features:
            # the model's predicted label beside its probability is an output, not an input
            said = pd.Series(label_text(reference[prediction].ge(0.5).where(
                reference[prediction].notna())))
            for c in list(kinds):
                col = pd.Series(label_text(reference[c]))
                if col.nunique() == 2 and len(col) >= MIN_ROWS:
                    hits = col.eq(str(positive)).astype(str).eq(said.astype(str))
                    if hits.mean() >= 0.99:
                        kinds.pop(c)
                        notes.append(f"not used as a feature: {c} (the model's predicted label)")
            if not kinds:
                raise AttributionError("no feature columns left to compare")
        if metric == "logloss" and kind != "probability":
            raise AttributionError(f"--metric logloss needs predicted probabilities; "
                                   f"{prediction!r} holds labels")
        metric = metric or default_metric(task, kind)
        if kind == "probability":
            notes.append(f"{prediction!r} read as the probability of {target} = {positive!r}")
    elif target is not None and prediction is not None:
        metric = metric or "mae"
        if metric == "mape" and (pd.to_numeric(reference[target], errors="coerce") == 0).any():
            notes.append("rows whose target is 0 are left out of the MAPE")
    return Problem(kinds, target, prediction, timestamp, segment, task, metric, positive), notes
