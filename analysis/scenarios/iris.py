"""The Iris scenario: a classifier of iris species served behind a REST API.

The data is the Iris set that ships with scikit-learn (150 flowers, 50 per species, four
lengths in cm), so nothing is downloaded. The model is a multinomial logistic regression
on the four measurements, standardised (:func:`estimator`). Its **training rows are the reference slice** of the dataset
``iris-api`` (with out-of-fold class probabilities, 5-fold cross-fitting, so the
reference accuracy is an honest held-out level), and every prediction the service
answers becomes a **production row**.

The fitted model is kept as plain numbers (coefficients, intercepts, classes) in
``<store>/iris-api/model/model.json``: the service computes the class probabilities
from them with numpy (``softmax(X W' + b)``, the scaler folded into ``W`` and ``b``; equal
to the scikit-learn pipeline's ``predict_proba`` to 1e-9, tested), which costs microseconds per request instead of scikit-learn's
per-call validation.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.store import Roles, Store

DATASET = "iris-api"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
UNIT = "cm"
CLASSES = ("setosa", "versicolor", "virginica")
TARGET = "species"
PREDICTION = "predicted_class"
TIMESTAMP = "ts"
ID = "request_id"
VERSION = "model_version"
EDGE = "edge_violations"
#: margin of the edge rule: a value is plausible within the training range widened by
#: this share of the range on each side (see :class:`PlausibleRanges`)
EDGE_MARGIN = 0.10
SEED = 0


def probability_column(label: str) -> str:
    return f"proba_{label}"


def roles() -> Roles:
    """Column roles of ``iris-api``: the four lengths are the features, the predicted
    class the prediction, the species the target (it arrives later, as feedback)."""
    return Roles(timestamp=TIMESTAMP, numeric=list(FEATURES), prediction=PREDICTION,
                 target=TARGET, id=ID,
                 probabilities={c: probability_column(c) for c in CLASSES},
                 extra=[VERSION, EDGE])


def iris_frame() -> pd.DataFrame:
    """The 150 Iris flowers: the four lengths (cm) and ``species``."""
    from sklearn.datasets import load_iris
    raw = load_iris()
    frame = pd.DataFrame(raw.data, columns=list(FEATURES))
    frame[TARGET] = np.asarray(raw.target_names)[raw.target]
    return frame


@dataclass
class PlausibleRanges:
    """Edge expectations: what the training data makes plausible, per feature.

    The rule: with ``lo`` and ``hi`` the smallest and largest training value of a
    feature and ``m`` the margin (:data:`EDGE_MARGIN`, 10 %), a value ``x`` is plausible
    when ``lo - m (hi - lo) <= x <= hi + m (hi - lo)``, the lower bound raised to 0 when
    every training value is at least 0 (a length: a negative one is never plausible).
    Values outside are served, but counted and flagged, never refused (an unusual or
    mistyped measurement still gets its prediction; a non-finite number is not a
    measurement and is refused before this rule is applied).
    """

    low: dict[str, float]
    high: dict[str, float]
    margin: float = EDGE_MARGIN

    @classmethod
    def fit(cls, frame: pd.DataFrame, features, margin: float = EDGE_MARGIN) -> "PlausibleRanges":
        low, high = {}, {}
        for f in features:
            lo, hi = float(frame[f].min()), float(frame[f].max())
            pad = margin * (hi - lo)
            low[f], high[f] = (lo - pad if lo < 0 else max(lo - pad, 0.0)), hi + pad
        return cls(low, high, margin)

    def violations(self, X: np.ndarray, features) -> tuple[np.ndarray, np.ndarray]:
        """Boolean matrices (below, above) of the rows x features outside the range."""
        lo = np.array([self.low[f] for f in features])
        hi = np.array([self.high[f] for f in features])
        return X < lo, X > hi


@dataclass
class LinearModel:
    """A fitted multinomial logistic regression as plain numbers."""

    features: list[str]
    classes: list[str]
    coef: list[list[float]]          # classes x features
    intercept: list[float]
    version: str = ""
    trained_at: str = ""
    ranges: PlausibleRanges | None = None
    reference_accuracy: float | None = None
    _W: np.ndarray = field(default=None, repr=False, compare=False)
    _b: np.ndarray = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self._W = np.asarray(self.coef, dtype=float).T.copy()
        self._b = np.asarray(self.intercept, dtype=float)
        if not self.version:
            digest = hashlib.sha256(json.dumps([self.coef, self.intercept, self.classes]).encode())
            self.version = "logreg-" + digest.hexdigest()[:10]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, ``softmax(X W' + b)`` row by row."""
        z = np.asarray(X, dtype=float) @ self._W + self._b
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def to_json(self) -> str:
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "LinearModel":
        d = json.loads(text)
        ranges = d.pop("ranges", None)
        model = cls(**d)
        model.ranges = PlausibleRanges(**ranges) if ranges else None
        return model


def estimator():
    """The scikit-learn model: standardised lengths, then a multinomial logistic
    regression (L2, C = 1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=1.0))


def train(frame: pd.DataFrame | None = None, seed: int = SEED) -> tuple[LinearModel, np.ndarray]:
    """Fit the classifier on ``frame`` (default: all 150 flowers); returns the model and
    the out-of-fold class probabilities of its training rows (5-fold, stratified)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    frame = iris_frame() if frame is None else frame
    X, y = frame[list(FEATURES)].to_numpy(float), frame[TARGET].to_numpy()
    fitted = estimator().fit(X, y)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    oof = cross_val_predict(estimator(), X, y, cv=folds, method="predict_proba")
    scaler, logreg = fitted[0], fitted[-1]
    # the scaler folded into the coefficients: w'x + b on standardised x is
    # (w / sd)'x + (b - w'(mean / sd)) on the lengths in cm
    coef = logreg.coef_ / scaler.scale_
    intercept = logreg.intercept_ - (logreg.coef_ * (scaler.mean_ / scaler.scale_)).sum(axis=1)
    classes = [str(c) for c in logreg.classes_]
    model = LinearModel(list(FEATURES), classes, coef.tolist(), intercept.tolist(),
                        trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        ranges=PlausibleRanges.fit(frame, FEATURES))
    model.reference_accuracy = float(np.mean(np.asarray(classes)[oof.argmax(1)] == y))
    return model, oof


def row_schema() -> pa.Schema:
    """The columns of every ``iris-api`` row, reference and production alike."""
    return pa.schema([(ID, pa.string()), (TIMESTAMP, pa.timestamp("us")),
                      *[(f, pa.float64()) for f in FEATURES], (PREDICTION, pa.string()),
                      (TARGET, pa.string()),
                      *[(probability_column(c), pa.float64()) for c in CLASSES],
                      (VERSION, pa.string()), (EDGE, pa.string())])


def reference_table(frame: pd.DataFrame, model: LinearModel, oof: np.ndarray) -> pa.Table:
    """The training rows as the reference slice: inputs, out-of-fold prediction and
    probabilities, the true species, ids ``train-000``..., the training time as ``ts``."""
    trained = pd.Timestamp(model.trained_at).tz_convert("UTC").tz_localize(None)
    X = frame[list(FEATURES)].to_numpy(float)
    below, above = model.ranges.violations(X, FEATURES)
    edge = [",".join(f for f, b in zip(FEATURES, row) if b) for row in (below | above)]
    data = {ID: [f"train-{i:03d}" for i in range(len(frame))],
            TIMESTAMP: [trained.to_pydatetime()] * len(frame),
            **{f: frame[f].astype(float).tolist() for f in FEATURES},
            PREDICTION: [model.classes[i] for i in oof.argmax(1)],
            TARGET: frame[TARGET].astype(str).tolist(),
            **{probability_column(c): oof[:, j].tolist() for j, c in enumerate(model.classes)},
            VERSION: [model.version] * len(frame), EDGE: edge}
    return pa.Table.from_pydict(data, schema=row_schema())


def model_path(store: Store) -> Path:
    return store.root / DATASET / "model" / "model.json"


def prepare(store: Store, say=print) -> LinearModel:
    """The served model: loaded from the store when trained before, else trained now,
    with the training rows stored as the reference slice of ``iris-api``."""
    path = model_path(store)
    if path.is_file():
        model = LinearModel.from_json(path.read_text())
        say(f"loaded model {model.version} (trained {model.trained_at}) from {path}")
        return model
    frame = iris_frame()
    model, oof = train(frame)
    if DATASET not in store.datasets():
        store.create_dataset(DATASET, roles(), task="classification",
                             description="Iris species classifier behind a REST API "
                                         "(python -m analysis serve --scenario iris): the "
                                         "training rows are the reference, served "
                                         "predictions the production rows; lengths in cm")
    if not store.snapshots(DATASET, "reference"):
        store.add_snapshot(DATASET, "reference", reference_table(frame, model, oof),
                           source=f"training rows of {model.version}",
                           meta={"model_version": model.version})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(model.to_json())
    os.replace(tmp, path)
    say(f"trained model {model.version} on {len(frame)} rows (reference accuracy "
        f"{model.reference_accuracy:.3f}, out of fold); stored as {path}")
    return model
