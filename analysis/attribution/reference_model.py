"""The independent reference model of P(y | x), cross-fitted on the reference."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import KFold

from analysis.attribution.problem import MIN_ROWS, Problem, label_text
from analysis.attribution.samples import Side


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


#: boosting's step size. At 0.2 early stopping ends after about half the trees 0.1
#: needs, which halves both the fit and every prediction of the window rows, for an
#: out-of-fold error 2-4 % higher (measured on the demo and bench/investigate.py's
#: generated cases); the concept tests compare both sides through the same model, so a
#: slightly less sharp model costs them a little power, not their level
LEARNING_RATE = 0.2

#: rounds without improvement on the validation split before boosting stops. The trees
#: grown while waiting are kept, so a shorter wait leaves fewer trees past the best one:
#: at 5 rather than 10 the out-of-fold error was the same or lower (mean absolute error
#: 0.4653 against 0.4652 on bench/investigate.py's 20k case, 0.4415 against 0.4422 on its
#: 200k case, 66.42 against 66.35 on the demo; Brier 0.2347 against 0.2371 on the tests'
#: classification case) with about 15 % fewer trees to fit and to predict with, and
#: every cell verdict of those cases the same
PATIENCE = 5


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
        params = dict(max_iter=200, learning_rate=LEARNING_RATE, max_leaf_nodes=31,
                      min_samples_leaf=max(20, len(train) // 2000),
                      categorical_features=cat_mask if cat_mask.any() else None,
                      early_stopping=len(train) >= 200, validation_fraction=0.1,
                      n_iter_no_change=PATIENCE, random_state=seed)
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


def score_reference_model(ref: Side, win: Side, p: Problem, cat_mask: np.ndarray, seed: int,
                          rng: np.random.Generator, notes: list[str],
                          say=lambda _m: None) -> ReferenceModel | None:
    """Fit the independent reference model on the reference sample's labelled rows and
    fill both sides' ``model`` dict: per-row ``loss`` and ``resid`` (out of fold on the
    reference; a fold model chosen at random on production), ``pred`` (the prediction
    as one number; None for more than two classes) and ``loss_adj``/``resid_adj`` (minus
    what x alone predicts of them under the reference, see :class:`_ExpectedGivenX`).
    Returns None (and notes why) when there are too few labelled reference rows."""
    if not p.labelled:
        say("no target: no reference model of P(y|x)")
        return None
    y_ref = ref.frame[p.target]
    labelled = y_ref.notna().to_numpy().copy()
    if ref.loss is not None:
        labelled &= np.isfinite(ref.loss)
    if labelled.sum() < MIN_ROWS:
        say("too few labelled reference rows for a reference model of P(y|x)")
        notes.append(f"the reference has {int(labelled.sum())} labelled rows: too few "
                     "to judge concept drift")
        return None
    say("fitting the reference model of P(y|x) (3-fold cross-fitting)")
    model, oof = fit_reference_model(ref.X[labelled], y_ref[labelled], p.task,
                                     cat_mask, seed)
    loss, resid = model_loss_and_residual(model, oof, y_ref[labelled])
    expect = _expected_given_x(model, oof, ref.X[labelled], loss, resid, cat_mask, seed)
    ref.model = _per_row(len(ref.frame), labelled, model, oof, loss, resid,
                         loss - expect.reference_loss,
                         None if resid is None else resid - expect.reference_resid)
    y_win = win.frame[p.target]
    lab = y_win.notna().to_numpy().copy()
    if win.loss is not None:
        lab &= np.isfinite(win.loss)
    win.model = _per_row(len(win.frame), lab, model, None, None, None, None, None)
    if lab.any():
        which = rng.integers(0, len(model.models), size=int(lab.sum()))
        pred = model.predict(win.X[lab], which)
        w_loss, w_resid = model_loss_and_residual(model, pred, y_win[lab])
        loss_x, resid_x = expect.window(pred, win.X[lab], rng)
        win.model = _per_row(len(win.frame), lab, model, pred, w_loss, w_resid, w_loss - loss_x,
                             None if w_resid is None else w_resid - resid_x)
    return model


def _per_row(n: int, rows: np.ndarray, model: ReferenceModel, predicted, loss, resid,
             loss_adj, resid_adj) -> dict:
    """Per-row arrays over all ``n`` rows of a side, NaN where ``rows`` is False."""
    def full(values):
        out = np.full(n, np.nan)
        if values is not None:
            out[rows] = values
        return out

    scalar = model.task == "regression" or model.positive_index is not None
    return {"loss": full(loss), "loss_adj": full(loss_adj),
            "resid": full(resid) if scalar else None,
            "resid_adj": full(resid_adj) if scalar else None,
            "pred": full(None if predicted is None else prediction_scale(model, predicted))
            if scalar else None}
