"""A group's windows as one sequence: drift that grows slowly (which no single window
shows beyond noise), and when a change began, to a finer unit than the windows."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.attribution.cells import Cell
from analysis.attribution.problem import AUC_MIN, CONCEPT_MIN

FINER = {"month": "day", "week": "day", "day": "hour", "hour": "hour", None: "day"}


@dataclass
class SeriesTest:
    """One family's test over one group's sequence of windows.

    ``split`` is the position (in ``cells``) of the first window of the pooled stretch;
    ``flagged`` is set by the Holm step."""

    family: str                  # "data" or "concept"
    segment: str
    cells: list[Cell]
    p_value: float
    big: bool
    split: int
    statistics: dict = field(default_factory=dict)
    flagged: bool = False


def pooled_after_split(estimates: np.ndarray, ses: np.ndarray) -> tuple[int, float, float, float]:
    """The stretch from some window to the last whose inverse-variance pooled estimate
    is furthest from 0 in SE units.

    For each split ``k``, ``m_k = sum_{i>=k} u_i d_i / sum_{i>=k} u_i`` with
    ``u_i = 1 / se_i^2``, ``se(m_k) = (sum_{i>=k} u_i)^(-1/2)`` and ``z_k = m_k / se(m_k)``.
    Returns ``(k, m_k, z_k, p)`` for the largest ``|z_k|``, with the two-sided normal
    p-value multiplied by the number of splits tried (Bonferroni, as the split is chosen
    by the data), capped at 1.
    """
    d, se = np.asarray(estimates, float), np.asarray(ses, float)
    u = 1.0 / se ** 2
    num, den = np.cumsum((u * d)[::-1])[::-1], np.cumsum(u[::-1])[::-1]
    z = num / np.sqrt(den)
    k = int(np.argmax(np.abs(z)))
    p = min(1.0, 2 * float(sps.norm.sf(abs(z[k]))) * len(d))
    return k, float(num[k] / den[k]), float(z[k]), p


def trend(estimates: np.ndarray, ses: np.ndarray) -> tuple[float, float, float]:
    """Weighted least-squares slope of the estimates on the window's position
    ``t = 0, 1, ...`` (weights ``1 / se^2``), its z-score and two-sided p-value:
    ``b = sum u (t - tbar)(d - dbar) / S``, ``se(b) = S^(-1/2)``, ``S = sum u (t - tbar)^2``
    with ``tbar``, ``dbar`` the weighted means."""
    d, se = np.asarray(estimates, float), np.asarray(ses, float)
    u = 1.0 / se ** 2
    t = np.arange(len(d), dtype=float)
    tbar, dbar = np.average(t, weights=u), np.average(d, weights=u)
    s = float(np.sum(u * (t - tbar) ** 2))
    if s <= 0:
        return 0.0, 0.0, 1.0
    b = float(np.sum(u * (t - tbar) * (d - dbar)) / s)
    z = b * math.sqrt(s)
    return b, z, float(2 * sps.norm.sf(abs(z)))


def concept_series(segment: str, cells: list[Cell]) -> SeriesTest | None:
    """Did the concept drift over the group's windows as a whole: the loss change's
    pooled estimate after a change point, or its linear trend (the smaller p-value,
    times 2). It matters when the pooled change (or the trend's value at the last
    window) reaches ``CONCEPT_MIN`` of the reference model's error."""
    judged = [c for c in cells if c.concept.get("judged") and np.isfinite(c.concept.get("loss_se", np.nan))
              and c.concept["loss_se"] > 0]
    if len(judged) < 2:
        return None
    d = np.array([c.concept["loss_change"] for c in judged])
    se = np.array([c.concept["loss_se"] for c in judged])
    base = float(np.median([c.concept["reference_model_error"] for c in judged]))
    k, pooled, z, p_pool = pooled_after_split(d, se)
    slope, z_trend, p_trend = trend(d, se)
    last = float(np.average(d, weights=1 / se ** 2) + slope * (len(d) - 1 - np.average(
        np.arange(len(d)), weights=1 / se ** 2)))
    p = min(1.0, 2 * min(p_pool, p_trend))
    big = abs(pooled) >= CONCEPT_MIN * base if p_pool <= p_trend else abs(last) >= CONCEPT_MIN * base
    if p_trend < p_pool:
        # a trend's stretch: from the first window whose fitted change is material
        fitted = last + slope * (np.arange(len(d)) - (len(d) - 1))
        k = int(np.argmax(np.abs(fitted) >= CONCEPT_MIN * base)) if big else 0
    return SeriesTest("concept", segment, judged, p, bool(big), k,
                      {"pooled_change": pooled, "pooled_z": z, "pooled_p": p_pool,
                       "trend_per_window": slope, "trend_z": z_trend, "trend_p": p_trend})


def data_series(segment: str, cells: list[Cell]) -> SeriesTest | None:
    """Did the inputs drift over the group's windows as a whole: the domain model's
    per-window AUC tests combined after a change point (Stouffer:
    ``Z_k = sum_{i>=k} z_i / sqrt(K - k)`` with ``z_i`` the one-sided AUC test's z-score),
    the split with the largest ``Z_k`` (p-value times the splits tried). It matters when
    the stretch's row-weighted AUC reaches ``AUC_MIN``."""
    judged = [c for c in cells if c.data.get("judged") and np.isfinite(c.data.get("auc", np.nan))]
    if len(judged) < 2:
        return None
    z = sps.norm.isf(np.clip([c.data["auc_p"] for c in judged], 1e-300, 1.0))
    z = np.minimum(z, 37.0)
    stretch = np.cumsum(z[::-1])[::-1] / np.sqrt(np.arange(len(z), 0, -1))
    k = int(np.argmax(stretch))
    p = min(1.0, float(sps.norm.sf(stretch[k])) * len(z))
    rows = np.array([c.rows for c in judged[k:]], dtype=float)
    auc = float(np.average([c.data["auc"] for c in judged[k:]], weights=rows))
    return SeriesTest("data", segment, judged, p, auc >= AUC_MIN, k,
                      {"pooled_auc": auc, "pooled_z": float(stretch[k])})


OWN_Z = 1.645   # a cell of a flagged stretch counts when its own estimate is this many SEs out


def mark(test: SeriesTest) -> None:
    """A flagged series flags its stretch's cells whose own estimate points the same
    way at the one-sided 5% level (``OWN_Z`` SEs): the sequence is the evidence of drift,
    the cell's own estimate says whether this window took part in it."""
    if not test.flagged:
        return
    sign = np.sign(test.statistics.get("pooled_change", 1.0) or 1.0)
    for c in test.cells[test.split:]:
        if test.family == "data" and c.data.get("auc_p", 1.0) < sps.norm.sf(OWN_Z):
            c.data["series_flagged"] = True
        elif test.family == "concept" and sign * c.concept.get("loss_change", 0.0) \
                >= OWN_Z * c.concept.get("loss_se", np.inf):
            c.concept["series_flagged"] = True


def change_point(baseline: np.ndarray, evidence: np.ndarray) -> int | None:
    """Where in ``evidence`` (time-ordered) its mean shifts, after a ``baseline`` known
    to precede the change: the CUSUM estimate of a single change in mean,
    ``argmax_k |S_k - (k / n) S_n| / sqrt(k (n - k) / n)`` over the concatenation (``S_k``
    the sum of its first ``k`` values), restricted to changes at or after the baseline's
    end. Returns the position in ``evidence`` of the first changed row (None when there
    is too little evidence)."""
    e = np.concatenate([baseline, evidence]).astype(float)
    ok = np.isfinite(e)
    n0 = int(np.isfinite(baseline).sum())
    e = e[ok]
    n = len(e)
    if n0 < 2 or n - n0 < 2:
        return None
    s = np.cumsum(e)
    k = np.arange(n0, n)
    stat = np.abs(s[k - 1] - k / n * s[-1]) / np.sqrt(k * (n - k) / n)
    first = int(k[int(np.argmax(stat))]) - n0
    # back to a position among all of ``evidence`` (missing values were skipped)
    kept = np.flatnonzero(np.isfinite(np.asarray(evidence, float)))
    return int(kept[min(first, len(kept) - 1)])


def floor_to(stamp: pd.Timestamp, unit: str) -> pd.Timestamp:
    """The start of the ``unit`` (hour or day) holding ``stamp``."""
    return stamp.floor("h" if unit == "hour" else "D")
