r"""Confidence-based performance estimation (CBPE): a classifier's accuracy without labels.

If a classifier's probabilities are **calibrated** -- among the rows to which it gives
probability :math:`c` for the class it predicts, a share :math:`c` really is of that
class -- then the chance that row :math:`i` is predicted correctly is its *confidence*
:math:`c_i = \hat p_i(\hat y_i)`, the calibrated probability of the predicted class. The
expected accuracy of a window of :math:`n` rows is therefore

.. math::  \widehat{\mathrm{acc}} = \frac{1}{n} \sum_{i=1}^n c_i

and it can be computed the moment the predictions are made, days before the labels come
back. This is the idea of NannyML's CBPE (the binary and multiclass accuracy estimators).

Calibration
-----------
Probabilities are calibrated on the reference, where labels are known: one isotonic
regression per class of the indicator :math:`1[y = k]` on :math:`\hat p(k)`
(one-vs-rest; for two classes only the positive class, the other being its complement),
rows renormalised to sum to one. It needs at least :data:`MIN_CALIBRATION_ROWS`
labelled reference rows; with fewer (or no labels at all) the probabilities are taken as
calibrated as they are, and the result says so.

Interval
--------
Given the confidences, the number of correct predictions is a sum of independent
Bernoulli(:math:`c_i`) draws (a Poisson binomial), so the realized accuracy of the window
has mean :math:`\widehat{\mathrm{acc}}` and standard deviation

.. math::  s = \frac{1}{n} \sqrt{\sum_i c_i (1 - c_i)}

and the interval is :math:`\widehat{\mathrm{acc}} \pm z_{0.975}\, s`, clipped to [0, 1]:
where the realized accuracy of this window should fall (95 %) if the assumptions hold.
It does not include the uncertainty of the calibration map itself, which a small
reference (Iris: 150 rows) adds.

Assumptions (say them wherever the estimate is shown: :data:`ASSUMPTIONS`)
-----------------------------------------------------------------------------
1. the calibrated probabilities stay calibrated in production: P(y | x) has not changed
   (no concept drift), only the mix of inputs may have;
2. the inputs lie where the reference had data, so the calibration map learned there
   applies (far outside it the model's confidence means nothing);
3. rows are independent (for the interval).

A shift that changes what an input means (a sensor that reads 40 % high) breaks 1: the
model stays confident, the estimate stays high, and only labels show the drop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054
MIN_CALIBRATION_ROWS = 100

ASSUMPTIONS = (
    "Estimated from the model's own probabilities (confidence-based performance "
    "estimation, as NannyML's CBPE): each prediction is counted right with the calibrated "
    "probability of the class it predicts. It holds while (1) P(label | inputs) has not "
    "changed: no concept drift, only the mix of inputs may move; (2) inputs stay where the "
    "reference had data, so the calibration learned there applies; (3) rows are "
    "independent. The interval (95 %) is where the realized accuracy should fall if they "
    "hold; it leaves out the calibration's own uncertainty. A shift that changes what an "
    "input means (an instrument reading too high) keeps the model confident and the "
    "estimate high: only labels show that drop.")


@dataclass(frozen=True)
class Estimate:
    """An accuracy estimate with its 95 % interval over ``rows`` rows."""

    value: float
    low: float
    high: float
    rows: int
    se: float

    def to_dict(self) -> dict:
        f = lambda v: None if v is None or not math.isfinite(v) else float(v)  # noqa: E731
        return {"value": f(self.value), "low": f(self.low), "high": f(self.high),
                "rows": int(self.rows)}


EMPTY = Estimate(math.nan, math.nan, math.nan, 0, math.nan)


def estimate_from_confidence(confidence, z: float = Z95) -> Estimate:
    r"""Expected accuracy and its interval from per-row confidences :math:`c_i`.

    ``value = mean(c)``, ``se = sqrt(sum c (1 - c)) / n``, interval ``value +- z se``
    clipped to [0, 1] (see the module docstring). Missing confidences are dropped; no row
    gives :data:`EMPTY` (NaN).
    """
    c = np.asarray(confidence, dtype=float)
    c = c[np.isfinite(c)]
    n = c.size
    if n == 0:
        return EMPTY
    value = float(c.mean())
    se = float(math.sqrt(float(np.sum(c * (1.0 - c)))) / n)
    return Estimate(value, max(0.0, value - z * se), min(1.0, value + z * se), n, se)


def realized_accuracy(correct, z: float = Z95) -> Estimate:
    r"""Accuracy of labelled rows (``correct`` a boolean per row) with its Wilson score
    interval: centre :math:`(\hat a + z^2/2n) / (1 + z^2/n)`, half-width
    :math:`z \sqrt{\hat a (1 - \hat a)/n + z^2/4n^2} / (1 + z^2/n)`."""
    x = np.asarray(correct, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return EMPTY
    a = float(x.mean())
    denom = 1 + z * z / n
    centre = (a + z * z / (2 * n)) / denom
    half = z * math.sqrt(a * (1 - a) / n + z * z / (4 * n * n)) / denom
    return Estimate(a, max(0.0, centre - half), min(1.0, centre + half), n,
                    math.sqrt(a * (1 - a) / n))


def _isotonic(p: np.ndarray, hit: np.ndarray):
    from sklearn.isotonic import IsotonicRegression
    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, hit)


class Calibrator:
    """Per-class isotonic calibration of class probabilities, fitted on the reference
    (see the module docstring); the identity until fitted."""

    def __init__(self):
        self.maps: list | None = None
        self.fitted = False

    def fit(self, proba: np.ndarray, labels: np.ndarray) -> "Calibrator":
        """``proba``: rows x classes; ``labels``: the true class's column index per row
        (negative or NaN where unknown: left out)."""
        proba = np.asarray(proba, dtype=float)
        labels = np.asarray(labels, dtype=float)
        ok = np.isfinite(labels) & (labels >= 0) & np.isfinite(proba).all(axis=1)
        if ok.sum() < MIN_CALIBRATION_ROWS:
            return self
        P, y = proba[ok], labels[ok].astype(int)
        k = P.shape[1]
        columns = [1] if k == 2 else range(k)
        self.maps = [None] * k
        for j in columns:
            self.maps[j] = _isotonic(P[:, j], (y == j).astype(float))
        self.fitted = True
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        proba = np.asarray(proba, dtype=float)
        if not self.fitted:
            return proba
        out = proba.copy()
        k = proba.shape[1]
        if k == 2:
            out[:, 1] = self.maps[1].predict(proba[:, 1])
            out[:, 0] = 1.0 - out[:, 1]
            return out
        for j in range(k):
            out[:, j] = self.maps[j].predict(proba[:, j])
        total = out.sum(axis=1, keepdims=True)
        bad = ~(total[:, 0] > 0)
        out[~bad] /= total[~bad]
        out[bad] = proba[bad]            # all maps at 0: keep the model's own
        return out


class CBPE:
    """Accuracy estimation without labels for a classifier with class probabilities.

    ``fit(proba, labels)`` learns the calibration on the reference (skipped when it has
    too few labels); ``estimate(proba, predicted)`` gives the window's :class:`Estimate`.
    ``predicted`` is the class index the model answered (default: the most probable).
    """

    def __init__(self):
        self.calibrator = Calibrator()

    @property
    def calibrated(self) -> bool:
        return self.calibrator.fitted

    def fit(self, proba: np.ndarray, labels: np.ndarray | None = None) -> "CBPE":
        if labels is not None:
            self.calibrator.fit(proba, labels)
        return self

    def confidence(self, proba: np.ndarray, predicted: np.ndarray | None = None) -> np.ndarray:
        """Per row, the calibrated probability of the predicted class (NaN where the
        probabilities are missing)."""
        proba = np.asarray(proba, dtype=float)
        if proba.size == 0:
            return np.empty(0)
        finite = np.isfinite(proba).all(axis=1)
        P = self.calibrator.transform(np.where(finite[:, None], proba, 0.0))
        if predicted is None:
            predicted = proba.argmax(axis=1)
        predicted = np.asarray(predicted)
        valid = finite & (predicted >= 0)
        out = np.full(len(P), np.nan)
        out[valid] = P[np.flatnonzero(valid), predicted[valid].astype(int)]
        return out

    def estimate(self, proba: np.ndarray, predicted: np.ndarray | None = None) -> Estimate:
        return estimate_from_confidence(self.confidence(proba, predicted))


def binary_matrix(p) -> np.ndarray:
    """Rows x 2 probabilities [1 - p, p] from the positive class's probability ``p``."""
    p = np.asarray(p, dtype=float)
    return np.column_stack([1.0 - p, p])


def looks_like_probability(values) -> bool:
    """Numbers in [0, 1] that are not all 0 or 1: a positive class's probability."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size) and v.min() >= 0 and v.max() <= 1 and not np.isin(v, (0.0, 1.0)).all()
