r"""Noise levels of drift statistics, and the rule that calls a value drift.

A distance between a reference of *n* rows and a production window of *m* rows is never
exactly zero: two samples of one distribution differ by chance, and the smaller the
samples the more. PSI, for one, averages about (k - 1)(1/n + 1/m) on k bins with no
drift at all, and with our smoothing of empty bins (share 1e-4) a single empty
production bin of reference share 0.1 is worth 0.1 ln(0.1 / 1e-4) = 0.69 on its own.
A fixed threshold (PSI >= 0.1) therefore reads noise as drift in small windows.

The rule
--------
A statistic of a window against the reference counts as drift only when

1. both samples have at least :data:`MIN_ROWS` rows (fewer: *not judged*);
2. it is **material**: at or above the test's threshold (PSI >= 0.1, ...);
3. it is **beyond noise**: above its *noise level*, the (1 - :data:`ALPHA`) quantile
   (the 99.9th percentile) of the same statistic between two samples of these sizes
   drawn from one distribution, the reference's. Otherwise it is *within noise*.

Why the 99.9th percentile and not the 99th: a grid of 10 features x 3 windows has 30
cells; at the 99th percentile data without any drift would show a flagged cell in about
one grid out of four, at the 99.9th in about one out of thirty.

Noise levels
------------
*n* and *m* are the two sample sizes, alpha = :data:`ALPHA`.

* **PSI**: asymptotically :math:`(1/n + 1/m)\,\chi^2_{k-1}(1 - \alpha)`, k the bins
  with a non-zero reference share (second-order expansion PSI ~ sum (q - p)^2 / p, with
  q - p of variance p(1 - p)(1/n + 1/m) under no drift).
* **Jensen-Shannon distance** and **Hellinger distance**: asymptotically
  :math:`\sqrt{(1/n + 1/m)\,\chi^2_{k-1}(1 - \alpha) / 8}` (JS^2 ~ H^2 ~ sum (q - p)^2 / 8p).
* These chi-square forms are used when every bin with reference mass expects at least
  :data:`MIN_EXPECTED` rows on both sides (min(n, m) min p >= 20: within 8 % of the
  bootstrap at the 99.9th percentile); otherwise the parametric bootstrap below.
* **KS D**: ``scipy.stats.kstwo.isf(alpha, round(n m / (n + m)))``, the D at which
  ``scipy.stats.ks_2samp(method="asymp")`` gives p = alpha.
* **Wasserstein (normed)**: when n and m are both at least :data:`ASYMPTOTIC_ROWS`,
  :math:`q_{1-\alpha}\big(\int |B(F(x))|\,dx\big)\,\sqrt{1/n + 1/m} / \sigma`, B a
  Brownian bridge, F the reference's distribution, sigma the normalising sd (the limit
  of W1 with no drift, simulated); below that the bootstrap, because heavy tails make
  the limit too low at small sizes (by a third at 30 rows of a log-normal).

The **parametric bootstrap** draws :data:`DRAWS` samples with a fixed seed
(:data:`SEED`) and takes the (1 - alpha) quantile of the statistic, computed with the
same conventions (PSI's empty shares become 1e-4):

* binned statistics: the reference as observed against production samples of m rows,
  ``Multinomial(m, pi)`` with the bins' masses ``pi ~ Dirichlet(reference counts)``
  (:func:`binned_bootstrap`: our numeric bins are the reference's own deciles, so it is
  the bins' true masses that vary, not the reference's counts);
* Wasserstein: pairs of samples of sizes n and m drawn from the reference's distribution
  on its support points, merged into at most :data:`SUPPORT_POINTS` groups finer in the
  tails (:func:`wasserstein_bootstrap`).

To bound the work on grids of many windows, production sizes above 100 are rounded down
to a table (:func:`tabulated_size`, steps of at most 10 %): a smaller sample is
noisier, so the level is, if anything, a little high. Results are cached per
(statistic, reference, sizes).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import stats as sps

from analysis.stats import PSI_EPSILON

#: Share of no-drift comparisons allowed above the noise level (the 99.9th percentile).
ALPHA = 0.001
#: Fewer rows than this in either sample: the comparison is not judged.
MIN_ROWS = 50
#: Expected rows per bin (smallest non-empty reference bin) from which the chi-square
#: approximations are used.
MIN_EXPECTED = 20
#: Sample size from which Wasserstein's Brownian-bridge approximation is used.
ASYMPTOTIC_ROWS = 1000
#: Bootstrap (and Brownian-bridge) draws, and their seed.
DRAWS = 10_000
SEED = 20_250_601
#: Wasserstein's reference distribution is merged into at most this many support points.
SUPPORT_POINTS = 100

NOT_JUDGED, STABLE, WITHIN_NOISE, DRIFT = "not judged", "stable", "within noise", "drift"
VERDICTS = (NOT_JUDGED, STABLE, WITHIN_NOISE, DRIFT)


# -- the rule ------------------------------------------------------------------------
def percentile_name(alpha: float = ALPHA) -> str:
    """The noise level's quantile in words: ``'99.9th percentile'``."""
    return f"{100 * (1 - alpha):g}th percentile"


def verdict(value, threshold: float, noise_level, rows: int, reference_rows: int,
            min_rows: int = MIN_ROWS) -> str:
    """Verdict on a distance: 'not judged', 'stable', 'within noise' or 'drift'.

    'not judged' when either sample has fewer than ``min_rows`` rows or the value is
    missing; 'drift' when ``value >= threshold`` and ``value > noise_level``; 'within
    noise' when material but not above the noise level; 'stable' otherwise.
    """
    if rows < min_rows or reference_rows < min_rows or value is None or np.isnan(value):
        return NOT_JUDGED
    if value < threshold:
        return STABLE
    if noise_level is not None and not value > noise_level:
        return WITHIN_NOISE
    return DRIFT


def tabulated_size(m: int) -> int:
    """The largest tabulated size <= ``m``: every size up to 100, then
    floor(100 * 1.1^j) (steps of at most 10 %)."""
    m = int(m)
    if m <= 100:
        return m
    j = int(np.floor(np.log(m / 100) / np.log(1.1) + 1e-12))
    size = int(np.floor(100 * 1.1 ** j))
    # guard the floating-point edge: the next size may still fit
    while int(np.floor(100 * 1.1 ** (j + 1))) <= m:
        j += 1
        size = int(np.floor(100 * 1.1 ** j))
    return size


# -- drawing samples -------------------------------------------------------------------
def _draws(shares: np.ndarray, size: int, draws: int, seed: int, stream: int) -> np.ndarray:
    """``draws`` multinomial samples of ``size`` on ``shares``, as shares (draws x k).
    Stream 0 draws reference samples, stream 1 production samples."""
    rng = np.random.default_rng([seed, stream])
    return rng.multinomial(int(size), shares, size=draws) / int(size)


@lru_cache(maxsize=24)
def _reference_draws(shares: tuple, size: int, draws: int, seed: int) -> np.ndarray:
    """The reference side's draws, shared by every production size compared with the
    same reference (common random numbers; the reference side costs as much as the
    production side and does not depend on it)."""
    out = _draws(np.array(shares), size, draws, seed, 0)
    out.flags.writeable = False
    return out


# -- statistics row by row (each row a pair of share vectors) ------------------------------
def psi_rows(p: np.ndarray, q: np.ndarray, epsilon: float = PSI_EPSILON) -> np.ndarray:
    """:func:`analysis.stats.psi` of each row pair of share matrices."""
    p = np.where(p == 0, epsilon, p)
    q = np.where(q == 0, epsilon, q)
    return np.sum((q - p) * np.log(q / p), axis=1)


def _kl_to(x: np.ndarray, mid: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(np.where(x > 0, x * np.log(x / mid), 0.0), axis=1)


def jensenshannon_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """:func:`analysis.stats.jensenshannon_distance` of each row pair (natural log)."""
    mid = (p + q) / 2
    return np.sqrt(np.maximum((_kl_to(p, mid) + _kl_to(q, mid)) / 2, 0.0))


def hellinger_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """:func:`analysis.stats.hellinger_distance` of each row pair."""
    return np.sqrt(np.maximum(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=1) / 2, 0.0))


BINNED = {"psi": psi_rows, "jensenshannon": jensenshannon_rows, "hellinger": hellinger_rows}


# -- binned statistics: PSI, Jensen-Shannon, Hellinger -------------------------------------
def binned_asymptotic(statistic: str, k: int, n: float, m: float,
                      alpha: float = ALPHA) -> float:
    """Large-sample noise level of a binned statistic on ``k`` non-empty bins.

    PSI: :math:`(1/n + 1/m)\\,\\chi^2_{k-1}(1-\\alpha)`; Jensen-Shannon distance and
    Hellinger distance: :math:`\\sqrt{(1/n + 1/m)\\,\\chi^2_{k-1}(1-\\alpha) / 8}`.
    """
    if statistic not in BINNED:
        raise ValueError(f"no noise level for binned statistic {statistic!r}")
    if k < 2:
        return 0.0
    scaled = (1 / n + 1 / m) * float(sps.chi2.isf(alpha, k - 1))
    return scaled if statistic == "psi" else float(np.sqrt(scaled / 8))


def binned_bootstrap(statistic: str, reference_counts, m: int, alpha: float = ALPHA,
                     draws: int = DRAWS, seed: int = SEED) -> float:
    """Parametric-bootstrap noise level of a binned statistic between the reference (its
    bin counts, as observed) and ``m`` production rows with no drift: the (1 - alpha)
    quantile over ``draws`` production samples, each ``Multinomial(m, pi)`` with the
    bins' masses ``pi ~ Dirichlet(reference counts)`` (PSI with the same epsilon for
    empty shares).

    Drawing the masses rather than using the reference's shares as exact carries the
    reference's own sampling noise: for bins cut at the reference's quantiles (our
    numeric bins) the reference's counts are fixed by construction and it is the bins'
    true masses that vary, by the Dirichlet law of sample spacings; for categories it is
    the posterior of the level shares. Both give (1/n + 1/m) chi-square at large sizes.
    """
    counts = np.asarray(reference_counts, dtype=float)
    counts = counts[counts > 0]
    if counts.size < 2:
        return 0.0
    rng = np.random.default_rng([seed, 1])
    masses = rng.dirichlet(counts, size=draws)
    production = rng.multinomial(int(m), masses) / int(m)
    reference = np.broadcast_to(counts / counts.sum(), production.shape)
    return float(np.quantile(BINNED[statistic](reference, production), 1 - alpha))


@lru_cache(maxsize=4096)
def _binned_bootstrap_cached(statistic: str, counts: tuple, m: int, alpha: float) -> float:
    return binned_bootstrap(statistic, np.array(counts), m, alpha)


def binned_noise_level(statistic: str, reference_counts, m: float,
                       alpha: float = ALPHA) -> float:
    """Noise level of ``statistic`` ('psi', 'jensenshannon' or 'hellinger') between the
    reference (its bin counts) and a production sample of ``m`` rows on the same bins:
    the chi-square approximation when every bin with reference mass expects at least
    :data:`MIN_EXPECTED` rows on both sides, else :func:`binned_bootstrap` at
    :func:`tabulated_size` (m)."""
    counts = np.asarray(reference_counts, dtype=float)
    n = float(counts.sum())
    if n <= 0 or m <= 0:
        return float("nan")
    live = counts[counts > 0]
    if live.size < 2:
        return 0.0
    if min(n, m) * live.min() / n >= MIN_EXPECTED:
        return binned_asymptotic(statistic, live.size, n, m, alpha)
    return _binned_bootstrap_cached(statistic, tuple(live), tabulated_size(int(m)), alpha)


# -- Kolmogorov-Smirnov ----------------------------------------------------------------------
def ks_critical_value(n: float, m: float, alpha: float = ALPHA) -> float:
    """The D above which ``scipy.stats.ks_2samp(method="asymp")`` gives p < ``alpha``:
    ``kstwo.isf(alpha, round(n m / (n + m)))``, the distribution scipy uses for the
    two-sided asymptotic p-value. Conservative for discrete data and for D computed
    from bins (a lower bound of the exact D)."""
    if n <= 0 or m <= 0:
        return float("nan")
    effective = max(int(np.round(n * m / (n + m))), 1)
    return float(sps.kstwo.isf(alpha, effective))


# -- Wasserstein -------------------------------------------------------------------------------
def merged_support(points, counts, max_points: int = SUPPORT_POINTS
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A distribution given as sorted support ``points`` with ``counts``, merged into at
    most ``max_points`` consecutive groups of about equal mass (each at its mass-weighted
    mean); a point holding more than a group's mass stays alone. Empty points dropped."""
    x = np.asarray(points, dtype=float)
    c = np.asarray(counts, dtype=float)
    keep = c > 0
    x, c = x[keep], c[keep]
    if x.size <= max_points:
        return x, c
    # groups equal in arcsine-transformed mass: finer in the tails, where W1 is most
    # sensitive to where the mass sits (group j holds about sin^2 steps of pi / 2K)
    before = (np.cumsum(c) - c) / c.sum()
    group = np.floor((0.5 + np.arcsin(2 * before - 1) / np.pi) * max_points).astype(int)
    _, group = np.unique(group, return_inverse=True)
    mass = np.bincount(group, weights=c)
    return np.bincount(group, weights=c * x) / mass, mass


def support_of(values) -> tuple[np.ndarray, np.ndarray]:
    """Support points and counts of a sample's non-missing values, merged as
    :func:`merged_support` does."""
    arr = np.asarray(values, dtype=float)
    points, counts = np.unique(arr[~np.isnan(arr)], return_counts=True)
    return merged_support(points, counts)


def _wasserstein_rows(cdf_a: np.ndarray, cdf_b: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    return np.abs(cdf_a - cdf_b) @ gaps


def wasserstein_bootstrap(points, counts, n: int, m: int, alpha: float = ALPHA,
                          draws: int = DRAWS, seed: int = SEED) -> float:
    """Parametric-bootstrap (1 - alpha) quantile of W1 (not normed) between samples of
    sizes ``n`` and ``m`` drawn from the distribution on ``points`` with ``counts``.

    W1 of two distributions on the same sorted points x_j is
    :math:`\\sum_j |F_a(x_j) - F_b(x_j)|\\,(x_{j+1} - x_j)`."""
    x, c = merged_support(points, counts)
    if x.size < 2:
        return 0.0
    p = c / c.sum()
    a = _reference_draws(tuple(p), int(n), draws, seed)
    b = _draws(p, m, draws, seed, 1)
    distances = _wasserstein_rows(np.cumsum(a, axis=1)[:, :-1], np.cumsum(b, axis=1)[:, :-1],
                                  np.diff(x))
    return float(np.quantile(distances, 1 - alpha))


def wasserstein_bridge_quantile(points, counts, alpha: float = ALPHA, draws: int = DRAWS,
                                seed: int = SEED) -> float:
    """(1 - alpha) quantile of :math:`\\int |B(F(x))|\\,dx`, B a Brownian bridge and F
    the distribution on ``points`` with ``counts``: the limit of
    :math:`W_1 / \\sqrt{1/n + 1/m}` with no drift, simulated at the support points."""
    x, c = merged_support(points, counts)
    if x.size < 2:
        return 0.0
    t = np.cumsum(c)[:-1] / c.sum()
    rng = np.random.default_rng([seed, 2])
    steps = np.sqrt(np.diff(np.concatenate([[0.0], t])))
    out = []
    for start in range(0, draws, 2000):
        size = min(2000, draws - start)
        walk = np.cumsum(rng.standard_normal((size, t.size)) * steps, axis=1)
        end = walk[:, -1:] + rng.standard_normal((size, 1)) * np.sqrt(1 - t[-1])
        out.append(_wasserstein_rows(walk - t * end, 0.0, np.diff(x)))
    return float(np.quantile(np.concatenate(out), 1 - alpha))


@lru_cache(maxsize=1024)
def _wasserstein_cached(points: tuple, counts: tuple, n: int, m: int | None,
                        alpha: float) -> float:
    if m is None:
        return wasserstein_bridge_quantile(np.array(points), np.array(counts), alpha)
    return wasserstein_bootstrap(np.array(points), np.array(counts), n, m, alpha)


def wasserstein_noise_level(points, counts, m: float, scale: float,
                            alpha: float = ALPHA) -> float:
    """Noise level of the normed Wasserstein distance (W1 / ``scale``) between the
    reference (support ``points`` with ``counts``, n = their sum) and ``m`` production
    values: the Brownian-bridge quantile x sqrt(1/n + 1/m) when n and m are both at
    least :data:`ASYMPTOTIC_ROWS`, else the parametric bootstrap at
    :func:`tabulated_size` (m)."""
    x, c = merged_support(points, counts)
    n = float(c.sum())
    if n <= 0 or m <= 0:
        return float("nan")
    key = (tuple(x.round(12)), tuple(c))
    if min(n, m) >= ASYMPTOTIC_ROWS:
        level = _wasserstein_cached(*key, int(n), None, alpha) * np.sqrt(1 / n + 1 / m)
    else:
        level = _wasserstein_cached(*key, int(n), tabulated_size(int(m)), alpha)
    return float(level / scale)
