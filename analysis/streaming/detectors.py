"""Sequential change detection on a per-minute rate: a binomial CUSUM against a
forecast baseline.

Why this method
---------------
The monitored quantities are counts out of requests: clicks out of impressions, nulls
out of lookups, slow lookups out of lookups. The binomial log-likelihood ratio of a
minute's count between "the rate is the baseline's" and "it moved by the design shift"
is the optimal evidence for that shift (Page's CUSUM is the sequential test with the
shortest worst-case delay for a given false-alarm rate, Lorden 1971), and it weighs a
busy minute more than a quiet one by itself. A detector on a moving average with a fixed
threshold (a plain dashboard alert) cannot follow the day's rhythm and cannot say how
sure it is; ADWIN (River) compares sub-windows of one stream assuming no trend inside
them, so the evening's rise in CTR reads as a change.

Baseline
--------
The expected rate of minute ``m`` is a forecast from minutes that are at least
:data:`GAP` old: a weighted least-squares line (level and slope, weights the requests)
through the last :data:`WINDOW` minutes ending :data:`GAP` minutes before ``m``, times
an optional time-of-day ``profile`` learnt from a baseline recording. The gap keeps a
change that began less than ``GAP`` minutes ago out of its own baseline; the slope
follows the daily rhythm (over an hour the day's curve is nearly straight). The
baseline needs :data:`MIN_BASELINE` minutes; with fewer than :data:`MIN_TREND` it is a
level only (a slope from fewer minutes, extrapolated, is mostly noise).

The statistic
-------------
For design rates ``p1 = p0 (1 ± delta)`` (clipped to (0, 1)), a minute with ``x`` out of
``n`` adds::

    llr = [x log(p1/p0) + (n - x) log((1 - p1)/(1 - p0))] / phi

to ``S = max(0, S + llr)`` (one sum for a rise, one for a fall), where ``phi >= 1`` is
the over-dispersion of the baseline window (Pearson chi-square over its degrees of
freedom) times ``1 + spread``, the forecast's own variance relative to the minute's
binomial variance: noisier-than-binomial traffic, and a baseline known less well (a
short window, a slope extrapolated far), need more evidence. An alarm is raised when
``S`` exceeds ``threshold``; the change is dated by the likelihood ratio of a step
(:func:`date_change`) around the minute after ``S`` last was 0.
After an alarm the baseline restarts at that date, so the new level is learnt, not
alarmed on again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: minutes between the newest minute of the baseline window and the minute tested
GAP = 10
#: minutes in the baseline window
WINDOW = 60
#: fewest minutes with requests in the window for a forecast
MIN_BASELINE = 10
#: fewest minutes for a slope (fewer: a level only)
MIN_TREND = 45
#: minutes before the CUSUM's own start searched for the change's first minute
DATING_WINDOW = 10
#: the smallest forecast rate (a share that was 0 in the window still has a baseline)
MIN_RATE = 1e-5


@dataclass(frozen=True)
class Design:
    """The change a detector is tuned to find and how much evidence it needs.

    ``relative``: the design shift as a share of the baseline rate; ``absolute``: a
    floor on the shift (for rates near 0, where a relative shift is nothing);
    ``threshold``: the CUSUM's alarm level in log-likelihood units (``exp(threshold)``
    is roughly the average run length between false alarms, in minutes, for one
    direction)."""

    relative: float = 0.10
    absolute: float = 0.0
    threshold: float = 12.0


@dataclass
class Alarm:
    """A change found by :func:`cusum`: minutes are indices into the series."""

    start: int            # first minute of the changed rate, as dated by the CUSUM
    detected: int         # the minute whose count raised the alarm
    direction: int        # +1 rise, -1 fall
    statistic: float      # S at the alarm
    before: float         # the baseline rate over [start, detected]
    after: float          # the observed rate over [start, detected]
    z: float              # (observed - expected) / its standard error, over [start, detected]

    @property
    def magnitude(self) -> float:
        """The relative change of the rate, ``after / before - 1``."""
        return self.after / self.before - 1 if self.before > 0 else math.inf

    @property
    def confidence(self) -> float:
        """``1 - p`` of the two-sided normal test of [start, detected] against the
        baseline (not corrected for the search for the start)."""
        return float(1 - 2 * stats.norm.sf(abs(self.z)))


def llr_binomial(x, n, p0, p1, phi=1.0):
    """Binomial log-likelihood ratio of ``x`` out of ``n`` for rate ``p1`` against
    ``p0``, divided by ``phi`` (natural log)."""
    x, n = np.asarray(x, float), np.asarray(n, float)
    return (x * np.log(p1 / p0) + (n - x) * np.log((1 - p1) / (1 - p0))) / phi


def design_rates(p0: float, design: Design) -> tuple[float, float]:
    """The rates a rise and a fall are tested against, kept inside (0, 1)."""
    shift = max(design.relative * p0, design.absolute)
    up = min(p0 + shift, 1 - 1e-9)
    down = max(p0 - shift, p0 * 0.5, 1e-12)
    return up, down


class Forecast:
    """Baseline rates from cumulative sums (see the module docstring)."""

    def __init__(self, x: np.ndarray, n: np.ndarray, profile: np.ndarray | None = None):
        self.x = np.asarray(x, float)
        self.n = np.asarray(n, float)
        prof = np.ones_like(self.n) if profile is None else np.asarray(profile, float)
        self.e = self.n * prof          # requests scaled by the profile: "exposure"
        self.profile = prof
        t = np.arange(len(self.n), dtype=float)
        safe = np.where(self.e > 0, self.e, 1.0)
        parts = [self.e > 0, self.e, self.e * t, self.e * t * t, self.x, self.x * t,
                 np.where(self.e > 0, self.x ** 2 / safe, 0.0)]
        self._cum = [np.concatenate([[0.0], np.cumsum(p)]) for p in parts]

    def _sums(self, lo: int, hi: int):
        return [c[hi] - c[lo] for c in self._cum]

    def rate(self, m: int, origin: int) -> tuple[float, float, float] | None:
        """Forecast of minute ``m`` from minutes in ``[max(origin, m - GAP - WINDOW),
        m - GAP)``: ``(rate, phi, spread)``, None when there are too few.

        ``phi``: the window's over-dispersion around its line (Pearson chi-square over
        its degrees of freedom, at least 1). ``spread``: the forecast's variance relative
        to a binomial minute of ``n[m]`` requests, ``n[m] (1/E + (m - tbar)^2 / S_tt)``
        with ``E`` the window's requests and ``S_tt`` their spread in time (the second
        term only with a slope)."""
        hi = m - GAP
        lo = max(origin, hi - WINDOW)
        if hi - lo < MIN_BASELINE:
            return None
        k, se, set_, sett, sx, sxt, sxx = self._sums(lo, hi)
        if k < MIN_BASELINE or se <= 0:
            return None
        level = sx / se
        p_bar = min(max(level, MIN_RATE), 1 - MIN_RATE)
        tbar = set_ / se
        s_tt = sett - set_ * tbar
        slope = 0.0
        if k >= MIN_TREND and s_tt > 0:
            slope = (sxt - tbar * sx) / s_tt
        phi = self._dispersion(level, slope, tbar, k, se, set_, sett, sx, sxt, sxx, p_bar)
        p = (level + slope * (m - tbar)) * self.profile[m]
        spread = self.n[m] * (1 / se + ((m - tbar) ** 2 / s_tt if slope else 0.0))
        floor = max(MIN_RATE, 0.5 / (self.n[lo:hi].sum() + 1))
        return float(min(max(p, floor), 1 - MIN_RATE)), float(phi), float(spread)

    @staticmethod
    def _dispersion(level, slope, tbar, k, se, set_, sett, sx, sxt, sxx, p_bar) -> float:
        """Pearson chi-square of the window around its line over the degrees of
        freedom, with p(1 - p) taken at the level; at least 1."""
        a = level - slope * tbar
        fit_sq = a * a * se + 2 * a * slope * set_ + slope * slope * sett
        chi = sxx - 2 * (a * sx + slope * sxt) + fit_sq
        dof = max(k - (2 if slope else 1), 1)
        return max(1.0, chi / (p_bar * (1 - p_bar)) / dof)


def date_change(x, n, expected, lo: int, m: int) -> int:
    """The most likely first minute of a change seen at minute ``m``: the ``tau`` in
    ``[lo, m]`` maximising the binomial log-likelihood ratio of "from ``tau`` on the rate
    is the observed one" against the baseline, ``N_tau * KL(X_tau/N_tau || E_tau/N_tau)``
    with ``X``, ``E``, ``N`` the observed and expected counts and the requests of
    ``[tau, m]`` (a generalised likelihood ratio; sharper than the CUSUM's last zero,
    which a noisy minute after the change can reset)."""
    ok = np.isfinite(expected[lo:m + 1]) & (n[lo:m + 1] > 0)
    if not ok.any():
        return m
    xs = np.where(ok, x[lo:m + 1], 0.0)[::-1].cumsum()[::-1]
    ns = np.where(ok, n[lo:m + 1], 0.0)[::-1].cumsum()[::-1]
    es = np.where(ok, n[lo:m + 1] * np.nan_to_num(expected[lo:m + 1]), 0.0)[::-1].cumsum()[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(xs / ns, 1e-12, 1 - 1e-12)
        p = np.clip(es / ns, 1e-12, 1 - 1e-12)
        kl = q * np.log(q / p) + (1 - q) * np.log((1 - q) / (1 - p))
    score = np.where(ok & (ns > 0), ns * kl, -np.inf)
    return lo + int(np.argmax(score))


def _alarm(x, n, expected, phi, start, m, direction, s) -> Alarm:
    xs, ns = x[start:m + 1].sum(), n[start:m + 1].sum()
    es = float(np.sum(n[start:m + 1] * expected[start:m + 1]))
    var = float(np.sum(n[start:m + 1] * expected[start:m + 1] * (1 - expected[start:m + 1]))) * phi
    before = es / ns if ns else float("nan")
    after = xs / ns if ns else float("nan")
    z = (xs - es) / math.sqrt(var) if var > 0 else 0.0
    return Alarm(start, m, direction, float(s), float(before), float(after), float(z))


def cusum(x, n, design: Design | tuple[Design, ...] = Design(), profile=None,
          begin: int = 0, directions=(1, -1)) -> tuple[list[Alarm], np.ndarray]:
    """Two-sided binomial CUSUM over per-minute counts ``x`` out of ``n``.

    ``design`` may be several designs (a bank): each keeps its own sums and the first to
    pass its threshold raises the alarm, so a small shift is found by a small design
    (slowly) and a large one by a large design (at once).

    Returns the alarms and the baseline rate of every minute (NaN where there was none).
    Minutes before ``begin`` only feed the baseline. Uses only minutes up to each minute
    tested, so running it on a prefix gives the prefix's alarms."""
    x = np.asarray(x, float)
    n = np.asarray(n, float)
    designs = (design,) if isinstance(design, Design) else tuple(design)
    keys = [(d, k) for k in range(len(designs)) for d in directions]
    forecast = Forecast(x, n, profile)
    expected = np.full(len(n), np.nan)
    alarms: list[Alarm] = []
    origin = 0
    sums = dict.fromkeys(keys, 0.0)
    starts = dict.fromkeys(keys)
    for m in range(len(n)):
        got = forecast.rate(m, origin)
        if got is None:
            continue
        p0, phi, spread = got
        phi *= 1 + spread          # the baseline's own uncertainty, as extra noise
        expected[m] = p0
        if m < begin or n[m] == 0:
            continue
        for d, k in keys:
            up, down = design_rates(p0, designs[k])
            step = float(llr_binomial(x[m], n[m], p0, up if d > 0 else down, phi))
            if sums[d, k] == 0.0:
                starts[d, k] = m
            sums[d, k] = max(0.0, sums[d, k] + step)
            if sums[d, k] == 0.0:
                starts[d, k] = None
            if sums[d, k] > designs[k].threshold:
                cusum_start = starts[d, k] if starts[d, k] is not None else m
                lo = max(origin, begin, cusum_start - DATING_WINDOW)
                start = date_change(x, n, expected, lo, m)
                alarms.append(_alarm(x, n, expected, phi, start, m, d, sums[d, k]))
                origin = start
                sums = dict.fromkeys(keys, 0.0)
                starts = dict.fromkeys(keys)
                break
    return alarms, expected
