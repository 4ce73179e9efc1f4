"""Synthetic cases with a known answer for the data-vs-concept tests.

Written for the tests, independently of the demo scenario. Every case has a reference
month and ten production weeks; drift (when any) starts with week ``DRIFT_WEEK`` and is
confined to one user group. A scikit-learn model is fitted on the reference and
predicts both tables; its reference predictions are *in-sample* on purpose (as many
pipelines store them), which must not be mistaken for concept drift.

Cases
-----
none       nothing changes
covariate  group "north": x1 shifts by 1.5 sd (partial overlap), x4 = x1 + noise moves
           with it, category "c" becomes common; the labelling rule is unchanged
concept    group "south": the rule's x1 coefficient halves; the inputs are unchanged
both       group "east": x2 shifts by 1.2 sd and the rule's x1 coefficient halves
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LogisticRegression

GROUPS = ["north", "south", "east"]
WEEKS = 10
DRIFT_WEEK = 4                       # 0-based: the fifth production week
PRODUCTION_START = pd.Timestamp("2024-02-05")   # a Monday
FEATURES = ["x1", "x2", "x3", "x4", "c"]


@dataclass
class Case:
    reference: pd.DataFrame
    production: pd.DataFrame
    kind: str
    group: str | None           # the affected group
    drift_start: pd.Timestamp   # first production instant with drift
    data_features: list[str]    # features whose distribution changes
    root_cause: str | None
    concept_feature: str | None


def _inputs(rng: np.random.Generator, n: int, shift_x1: np.ndarray, shift_x2: np.ndarray,
            c_shift: np.ndarray) -> pd.DataFrame:
    x1 = rng.normal(0, 1, n) + shift_x1
    x2 = rng.normal(0, 1, n) + shift_x2
    x3 = rng.normal(0, 1, n)
    x4 = x1 + rng.normal(0, 0.6, n)
    p_c = np.where(c_shift, 0.6, 0.1)
    u = rng.random(n)
    c = np.where(u < p_c, "c", np.where(u < p_c + (1 - p_c) / 2, "a", "b"))
    return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "x4": x4, "c": c})


def _signal(x: pd.DataFrame, slope_x1: np.ndarray) -> np.ndarray:
    return slope_x1 * x["x1"] + 2 * np.sin(x["x2"]) + 1.5 * (x["c"] == "b") + 0.5 * x["x3"]


def make_case(kind: str, seed: int = 0, task: str = "regression",
              reference_rows: int = 6000, weekly_rows: int = 1200) -> Case:
    """Reference and production tables of one case (see the module docstring)."""
    if kind not in ("none", "covariate", "concept", "both"):
        raise ValueError(kind)
    rng = np.random.default_rng(seed)
    group = {"none": None, "covariate": "north", "concept": "south", "both": "east"}[kind]

    def table(n: int, start: pd.Timestamp, days: int, production: bool) -> pd.DataFrame:
        seconds = np.sort(rng.integers(0, days * 86400, n))
        ts = start + pd.to_timedelta(seconds, unit="s")
        groups = rng.choice(GROUPS, n)
        drifting = np.zeros(n, bool)
        if production and group is not None:
            drifting = (ts >= PRODUCTION_START + pd.Timedelta(weeks=DRIFT_WEEK)) & (groups == group)
        x = _inputs(rng, n,
                    shift_x1=np.where(drifting & (kind == "covariate"), 1.5, 0.0),
                    shift_x2=np.where(drifting & (kind == "both"), 1.2, 0.0),
                    c_shift=drifting & (kind == "covariate"))
        slope = np.where(drifting & (kind in ("concept", "both")), 1.5, 3.0)
        signal = _signal(x, slope)
        if task == "regression":
            y = signal + rng.normal(0, 0.5, n)
        else:
            y = (rng.random(n) < 1 / (1 + np.exp(-(signal - 1.0)))).astype(int)
        frame = pd.DataFrame({"event_time": ts, "region": groups, "row_id": np.arange(n)})
        frame = pd.concat([frame, x], axis=1)
        frame["y"] = y
        return frame

    reference = table(reference_rows, PRODUCTION_START - pd.Timedelta(days=28), 28, False)
    production = table(weekly_rows * WEEKS, PRODUCTION_START, 7 * WEEKS, True)
    production["row_id"] += reference_rows
    X_ref = pd.get_dummies(reference[FEATURES], columns=["c"], dtype=float)
    X_prod = pd.get_dummies(production[FEATURES], columns=["c"], dtype=float).reindex(
        columns=X_ref.columns, fill_value=0.0)
    if task == "regression":
        model = (RandomForestRegressor(n_estimators=60, min_samples_leaf=2, random_state=seed)
                 if kind in ("none", "covariate")
                 else HistGradientBoostingRegressor(random_state=seed))
        model.fit(X_ref, reference["y"])
        reference["prediction"] = model.predict(X_ref)
        production["prediction"] = model.predict(X_prod)
    else:
        model = LogisticRegression(max_iter=1000).fit(X_ref, reference["y"])
        reference["prediction"] = model.predict_proba(X_ref)[:, 1]
        production["prediction"] = model.predict_proba(X_prod)[:, 1]
    data_features = {"none": [], "covariate": ["x1", "x4", "c"], "concept": [],
                     "both": ["x2"]}[kind]
    return Case(reference, production, kind, group,
                PRODUCTION_START + pd.Timedelta(weeks=DRIFT_WEEK), data_features,
                {"covariate": "x1", "both": "x2"}.get(kind),
                "x1" if kind in ("concept", "both") else None)


@dataclass
class LinearShift:
    """A case with a closed-form answer.

    y = beta x + e, e ~ N(0, sigma^2); the model predicts b x. Reference x ~ N(0, 1);
    production x ~ N(mu, 1) and slope beta_new. With MSE as the loss:

    * reference:  (beta - b)^2 + sigma^2
    * expected under covariate shift alone (importance weighting):
      (beta - b)^2 (1 + mu^2) + sigma^2
    * realized:   (beta_new - b)^2 (1 + mu^2) + sigma^2
    * on the shared region s(x) ~ p q / (p + q): E_s[x^2] (beta - b)^2 + sigma^2 for the
      reference's rule and E_s[x^2] (beta_new - b)^2 + sigma^2 for production's.
    """

    beta: float = 2.0
    b: float = 1.5
    beta_new: float = 2.5
    sigma: float = 1.0
    mu: float = 1.0

    def tables(self, n_reference: int = 30_000, n_production: int = 30_000, seed: int = 0):
        rng = np.random.default_rng(seed)
        x_ref = rng.normal(0, 1, n_reference)
        x_prod = rng.normal(self.mu, 1, n_production)
        ref = pd.DataFrame({"x": x_ref, "y": self.beta * x_ref + rng.normal(0, self.sigma, n_reference)})
        prod = pd.DataFrame({"x": x_prod,
                             "y": self.beta_new * x_prod + rng.normal(0, self.sigma, n_production)})
        ref["prediction"] = self.b * ref["x"]
        prod["prediction"] = self.b * prod["x"]
        return ref, prod

    def shared_second_moment(self) -> float:
        """E_s[x^2] under s(x) ~ p(x) q(x) / (p(x) + q(x)), by quadrature."""
        from scipy import integrate, stats

        def s(x):
            p, q = stats.norm.pdf(x), stats.norm.pdf(x, self.mu)
            return p * q / (p + q)

        lo, hi = -12.0, 12.0 + self.mu   # beyond these s(x) < 1e-30
        mass = integrate.quad(s, lo, hi, points=[0.0, self.mu])[0]
        return integrate.quad(lambda x: x * x * s(x), lo, hi, points=[0.0, self.mu])[0] / mass

    def mse(self) -> dict:
        gap, gap_new, s2 = (self.beta - self.b) ** 2, (self.beta_new - self.b) ** 2, self.sigma ** 2
        m2 = 1 + self.mu ** 2
        shared = self.shared_second_moment()
        return {"reference": gap + s2, "expected_iw": gap * m2 + s2, "realized": gap_new * m2 + s2,
                "shared_reference": gap * shared + s2, "shared_production": gap_new * shared + s2}


def make_gradual(seed: int = 0, ramp: bool = True, weekly_rows: int = 300, weeks: int = 8,
                 start_error: float = 0.05, end_error: float = 0.11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A concept drift that grows slowly: two-class labels follow ``x1 + 0.5 x2 > 0``,
    flipped at random with a probability that rises linearly from ``start_error`` at
    the first production week to ``end_error`` at the last (``ramp=False``: it stays at
    ``start_error``, the control). The inputs never change. A logistic regression fitted
    on the reference predicts the positive class's probability."""
    rng = np.random.default_rng(seed)

    def table(n: int, start: pd.Timestamp, days: int, flip) -> pd.DataFrame:
        seconds = np.sort(rng.integers(0, days * 86400, n))
        ts = start + pd.to_timedelta(seconds, unit="s")
        x = rng.normal(0, 1, (n, 3))
        share = flip(seconds / (days * 86400))
        y = ((x[:, 0] + 0.5 * x[:, 1] > 0) ^ (rng.random(n) < share)).astype(int)
        return pd.DataFrame({"ts": ts, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y})

    reference = table(4000, PRODUCTION_START - pd.Timedelta(days=28), 28,
                      lambda t: np.full(t.shape, start_error))
    rise = (lambda t: start_error + (end_error - start_error) * t) if ramp else \
        (lambda t: np.full(t.shape, start_error))
    production = table(weekly_rows * weeks, PRODUCTION_START, 7 * weeks, rise)
    model = LogisticRegression().fit(reference[["x1", "x2", "x3"]], reference["y"])
    for frame in (reference, production):
        frame["prediction"] = model.predict_proba(frame[["x1", "x2", "x3"]])[:, 1]
    return reference, production


def make_midweek_change(seed: int = 0, kind: str = "data", weekly_rows: int = 1400,
                        change: pd.Timestamp = PRODUCTION_START + pd.Timedelta(days=23, hours=12)
                        ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """An abrupt change in the middle of a week (default: Wednesday noon of the fourth
    production week, 2024-02-28 12:00): from then on ``x1`` shifts by 1 SD (``data``)
    or the rule's ``x1`` coefficient halves (``concept``). Six production weeks, one
    group; a linear model fitted on the reference predicts."""
    rng = np.random.default_rng(seed)

    def table(n: int, start: pd.Timestamp, days: int) -> pd.DataFrame:
        seconds = np.sort(rng.integers(0, days * 86400, n))
        ts = start + pd.to_timedelta(seconds, unit="s")
        after = ts >= change
        x = rng.normal(0, 1, (n, 3))
        if kind == "data":
            x[after, 0] += 1.0
        slope = np.where(after & (kind == "concept"), 1.5, 3.0)
        y = slope * x[:, 0] + x[:, 1] + rng.normal(0, 0.5, n)
        return pd.DataFrame({"ts": ts, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y})

    reference = table(6000, PRODUCTION_START - pd.Timedelta(days=28), 28)
    production = table(weekly_rows * 6, PRODUCTION_START, 42)
    from sklearn.linear_model import LinearRegression
    model = LinearRegression().fit(reference[["x1", "x2", "x3"]], reference["y"])
    for frame in (reference, production):
        frame["prediction"] = model.predict(frame[["x1", "x2", "x3"]])
    return reference, production, change
