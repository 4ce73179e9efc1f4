"""Bins frozen from the reference, so every production window is binned the same way.

Our default binning
-------------------
* numeric: the reference's deciles (``numpy.quantile``, linear interpolation, on the
  non-missing values), duplicate edges removed. Bins are half-open and left-closed,
  ``(-inf, e1), [e1, e2), ..., [ek, +inf)``, plus a final "missing" bin for NaN.
* categorical: one bin per level seen in the reference (sorted), then "other" for levels
  the reference never had, then "missing".

Evidently's binning (``binning="evidently"``)
---------------------------------------------
Reproduces Evidently 0.7's ``get_binned_data``: see :func:`evidently_shares`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.stats import EmptySampleError

OTHER = "__other__"
MISSING = "__missing__"


@dataclass(frozen=True)
class NumericBins:
    """Left-closed bins between frozen ``edges``, with a trailing missing bin."""

    edges: tuple[float, ...]

    @property
    def labels(self) -> list[str]:
        e = self.edges
        if not e:
            return ["all values", "missing"]
        out = [f"< {e[0]:.4g}"]
        out += [f"[{a:.4g}, {b:.4g})" for a, b in zip(e[:-1], e[1:])]
        out += [f">= {e[-1]:.4g}", "missing"]
        return out

    def counts(self, values) -> np.ndarray:
        arr = np.asarray(values, dtype=float).ravel()
        missing = np.isnan(arr)
        idx = np.searchsorted(np.asarray(self.edges, dtype=float), arr[~missing], side="right")
        out = np.bincount(idx, minlength=len(self.edges) + 1).astype(float)
        return np.append(out, float(missing.sum()))

    def codes(self, values) -> np.ndarray:
        """Bin index of every value (``np.bincount(codes)`` gives :meth:`counts`)."""
        arr = np.asarray(values, dtype=float).ravel()
        idx = np.searchsorted(np.asarray(self.edges, dtype=float), arr, side="right")
        return np.where(np.isnan(arr), len(self.edges) + 1, idx)


@dataclass(frozen=True)
class CategoricalBins:
    """One bin per reference level, then "other" and "missing"."""

    categories: tuple[str, ...]

    @property
    def labels(self) -> list[str]:
        return [*self.categories, "other", "missing"]

    def counts(self, values) -> np.ndarray:
        s = pd.Series(values)
        present = _level_counts(s)
        known = present.reindex(list(self.categories), fill_value=0).to_numpy(dtype=float)
        other = float(present.sum() - known.sum())
        return np.concatenate([known, [other, float(s.isna().sum())]])

    def codes(self, values) -> np.ndarray:
        """Bin index of every value (``np.bincount(codes)`` gives :meth:`counts`)."""
        s = pd.Series(values)
        idx = pd.Index(self.categories).get_indexer(s.map(str))
        idx = np.where(idx < 0, len(self.categories), idx)
        return np.where(s.isna().to_numpy(), len(self.categories) + 1, idx)


def _level_counts(s: pd.Series) -> pd.Series:
    """Counts of the non-missing values, keyed by their string form."""
    vc = s.value_counts(dropna=True)
    vc.index = vc.index.map(str)
    return vc.groupby(level=0).sum()


def quantile_bins(reference, n_bins: int = 10) -> NumericBins:
    """Inner edges at the reference's ``1/n_bins, ..., (n_bins-1)/n_bins`` quantiles.

    Deciles by default. Edges that coincide (discrete or heavily tied data) are merged,
    so a column with few distinct values gets fewer bins. A constant reference gets one
    edge at its value: everything below, equal-or-above, missing.
    """
    if n_bins < 2:
        raise ValueError("n_bins must be at least 2")
    arr = np.asarray(reference, dtype=float).ravel()
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        raise EmptySampleError("reference sample has no non-missing values to bin")
    qs = np.quantile(arr, np.arange(1, n_bins) / n_bins)
    return NumericBins(tuple(float(x) for x in np.unique(qs)))


def category_bins(reference) -> CategoricalBins:
    """Bins for the reference's levels (as strings, sorted), plus other and missing."""
    return CategoricalBins(tuple(sorted(_level_counts(pd.Series(reference)).index)))


def bins_for(reference, kind: str, n_bins: int = 10) -> NumericBins | CategoricalBins:
    """Our default bins for a column of ``kind`` ('numeric' or 'categorical')."""
    if kind == "numeric":
        return quantile_bins(reference, n_bins)
    if kind == "categorical":
        return category_bins(reference)
    raise ValueError(f"unknown column kind {kind!r}")


def evidently_shares(reference, production, kind: str, fill_zeros: bool
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Reference and production shares binned the way Evidently 0.7 bins them.

    * missing values are dropped from both samples first;
    * a numeric reference with more than 20 distinct values: equal-width bins over the
      combined samples, their number by Sturges' rule
      (``numpy.histogram_bin_edges(..., bins="sturges")``, i.e. ceil(log2 n) + 1 bins);
    * otherwise one bin per distinct value seen in either sample;
    * shares are counts / sample size;
    * ``fill_zeros`` (used for PSI, not for Jensen-Shannon): in each vector separately, a
      zero share becomes 0.0001, or the smallest non-zero share / 10**6 when that share
      is itself <= 0.0001.
    """
    ref = pd.Series(reference).dropna()
    prod = pd.Series(production).dropna()
    if ref.empty:
        raise EmptySampleError("reference sample has no non-missing values")
    if prod.empty:
        raise EmptySampleError("production sample has no non-missing values")
    if kind == "numeric" and ref.nunique() > 20:
        ref_v = ref.to_numpy(dtype=float)
        prod_v = prod.to_numpy(dtype=float)
        edges = np.histogram_bin_edges(np.concatenate([ref_v, prod_v]), bins="sturges")
        p = np.histogram(ref_v, edges)[0] / ref_v.size
        q = np.histogram(prod_v, edges)[0] / prod_v.size
    else:
        keys = pd.Index(pd.concat([ref, prod], ignore_index=True).unique())
        p = ref.value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float) / len(ref)
        q = prod.value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float) / len(prod)
    if fill_zeros:
        p, q = _fill_zero_shares(p), _fill_zero_shares(q)
    return p, q


def _fill_zero_shares(shares: np.ndarray) -> np.ndarray:
    out = shares.astype(float).copy()
    nonzero = out[out > 0]
    smallest = nonzero.min()
    out[out == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return out


@dataclass(frozen=True)
class FineBins:
    """Fine bins for KS and Wasserstein: each interval between consecutive ``anchors``
    (the reference's min, its deciles, its max) split into ``per_interval`` equal widths.

    Bin index of x: the interval s with a_s <= x < a_{s+1} (the first and last intervals
    open outwards), then ``floor((x - a_s) / w_s)`` clipped to [0, per_interval - 1],
    w_s = (a_{s+1} - a_s) / per_interval. The same arithmetic runs in the engine
    (:func:`analysis.reference_bins.bin_expr`), so both put every value in the same bin. A
    trailing bin counts missing values, as for :class:`NumericBins`.
    """

    anchors: tuple[float, ...]
    per_interval: int = 100

    @property
    def widths(self) -> tuple[float, ...]:
        a = self.anchors
        return tuple((a[i + 1] - a[i]) / self.per_interval for i in range(len(a) - 1))

    @property
    def n(self) -> int:
        return (len(self.anchors) - 1) * self.per_interval

    @property
    def edges(self) -> tuple[float, ...]:
        """Inner boundaries between consecutive bins (for :mod:`analysis.stats`)."""
        out = []
        for s, w in enumerate(self.widths):
            out += [self.anchors[s] + k * w for k in range(1 if s == 0 else 0, self.per_interval)]
        return tuple(out)

    def index(self, values) -> np.ndarray:
        """Bin index of each non-missing value (see the class docstring)."""
        x = np.asarray(values, dtype=float)
        a = np.asarray(self.anchors)
        s = np.clip(np.searchsorted(a[1:-1], x, side="right"), 0, len(a) - 2)
        w = np.asarray(self.widths)[s]
        sub = np.clip(np.floor((x - a[s]) / w), 0, self.per_interval - 1)
        return (s * self.per_interval + sub).astype(int)

    def counts(self, values) -> np.ndarray:
        arr = np.asarray(values, dtype=float).ravel()
        missing = ~np.isfinite(arr)
        out = np.bincount(self.index(arr[~missing]), minlength=self.n).astype(float)
        return np.append(out, float(missing.sum()))

    def lower_bounds(self) -> np.ndarray:
        """The smallest float in each bin 1..n-1 (bin 0 starts at -inf): a sorted sample
        is split into the bins by ``searchsorted`` on these, with no per-value arithmetic.

        Exact because :meth:`index` never decreases as x grows: every step (a comparison,
        a correctly rounded subtraction and division by a positive width, floor, clip)
        is monotone, and crossing an anchor moves to the next interval's bins. So bin c
        holds exactly the x with ``bounds[c-1] <= x < bounds[c]``; each bound is found by
        bisection over the ordered bit patterns of the finite doubles (a bin no double
        reaches gets the next bin's bound, hence no values).
        """
        return _lower_bounds(self)

    def coarse_map(self, coarse: "NumericBins") -> np.ndarray | None:
        """The ``coarse`` bin of each fine bin (missing to missing), or None when some
        fine bin straddles a coarse edge.

        Every fine bin lies inside one coarse bin exactly when every coarse edge is an
        interior anchor: interval s = [a_s, a_{s+1}) then holds no edge, so all its
        values share the coarse bin of a_s (the number of edges <= a_s), and the
        outward-open first and last intervals lie below the first and above the last
        edge. Then ``np.bincount(map, fine_counts)`` gives the coarse counts.
        """
        a = np.asarray(self.anchors, dtype=float)
        edges = np.asarray(coarse.edges, dtype=float)
        if not np.isin(edges, a[1:-1]).all():
            return None
        of_interval = np.searchsorted(edges, a[:-1], side="right")
        return np.append(np.repeat(of_interval, self.per_interval), len(edges) + 1)


def fine_bins(reference_min: float, deciles, reference_max: float,
              per_interval: int = 100) -> FineBins:
    """FineBins anchored at the reference's min, unique deciles and max."""
    anchors = np.unique(np.concatenate([[reference_min], np.asarray(deciles, float),
                                        [reference_max]]))
    if anchors.size == 1:  # constant reference: one unit-wide interval around it
        anchors = np.array([anchors[0] - 0.5, anchors[0] + 0.5])
    return FineBins(tuple(float(v) for v in anchors), per_interval)


_SIGN = np.uint64(1 << 63)


def _ordered(x: np.ndarray) -> np.ndarray:
    """Finite doubles -> uint64 keys in the same order (sign bit set for x >= 0,
    every bit flipped for x < 0)."""
    bits = np.asarray(x, dtype=np.float64).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _unordered(keys: np.ndarray) -> np.ndarray:
    """The doubles of :func:`_ordered` keys."""
    bits = np.where(keys & _SIGN, keys & ~_SIGN, ~keys)
    return bits.view(np.float64)


@functools.lru_cache(maxsize=256)
def _lower_bounds(bins: FineBins) -> np.ndarray:
    """:meth:`FineBins.lower_bounds`, computed once per bins (64 vectorised bisection
    steps over the bins' ordered keys)."""
    target = np.arange(1, bins.n)
    big = np.finfo(np.float64).max
    lo = np.full(target.size, _ordered(np.array([-big]))[0])   # index < target here
    hi = np.full(target.size, _ordered(np.array([big]))[0])    # index >= target here
    with np.errstate(over="ignore", invalid="ignore"):
        while True:
            open_ = hi - lo > 1
            if not open_.any():
                break
            mid = lo + (hi - lo) // np.uint64(2)
            above = bins.index(_unordered(mid)) >= target
            hi = np.where(open_ & above, mid, hi)
            lo = np.where(open_ & ~above, mid, lo)
    return _unordered(hi)
