"""Bins frozen from the reference, persisted with it, and their engine expressions.

Frozen bins (:func:`frozen_bins`) are computed once per reference (its snapshot ids)
and persisted next to the dataset as ``bins/<reference token>.json``:

* ``coarse``: our default drift bins: reference deciles (numeric), reference levels +
  other + missing (categorical). PSI, Jensen-Shannon, Hellinger, chi-square use these.
* ``fine``: for numeric features, :class:`analysis.binning.FineBins`: every interval
  between the reference's min, deciles and max split into 100 equal widths (up to 1000
  bins). KS and Wasserstein are computed from these counts with the observed min, max
  and sum of every bin. (Fine bins at 1000 reference quantiles would need a 1000-leaf
  CASE tree per feature, which the engine evaluates 15x slower than a decile tree plus
  one floor().)

Bins are plain CASE expressions over the frozen edges passed as literals
(:func:`bin_expr`): every Ibis backend then puts every row in the same bin, and so does
the one-pass profiler's numpy arithmetic (:mod:`analysis.onepass`).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import ibis
import numpy as np

from analysis.binning import CategoricalBins, FineBins, NumericBins, fine_bins
from analysis.engine import Engine, connect_slice, present, to_arrow, write_text_atomic
from analysis.store import Store


@dataclass(frozen=True)
class FrozenBins:
    """A reference's frozen bins for every feature."""

    token: str
    coarse: dict[str, NumericBins | CategoricalBins]
    fine: dict[str, FineBins]

    def to_json(self) -> str:
        return json.dumps({
            "token": self.token,
            "coarse": {f: ({"edges": list(b.edges)} if isinstance(b, NumericBins)
                           else {"categories": list(b.categories)}) for f, b in self.coarse.items()},
            "fine": {f: {"anchors": list(b.anchors), "per_interval": b.per_interval}
                     for f, b in self.fine.items()},
        })

    @classmethod
    def from_json(cls, text: str) -> "FrozenBins":
        raw = json.loads(text)
        coarse = {f: (NumericBins(tuple(v["edges"])) if "edges" in v
                      else CategoricalBins(tuple(v["categories"]))) for f, v in raw["coarse"].items()}
        fine = {f: FineBins(tuple(v["anchors"]), v["per_interval"]) for f, v in raw["fine"].items()}
        return cls(raw["token"], coarse, fine)


def bins_folder(store: Store, dataset: str) -> Path:
    """Where a dataset's frozen bins, codes, profiles and compiled SQL live."""
    return store.root / dataset / "bins"


def reference_token(store: Store, dataset: str) -> str:
    """Identifies the reference's content: changes when a reference snapshot does."""
    digests = sorted(s.sha256 for s in store.snapshots(dataset, "reference"))
    return hashlib.sha256("|".join(digests).encode()).hexdigest()[:16]


def frozen_bins(store: Store, dataset: str, persist: bool = True,
                engine: Engine | None = None) -> FrozenBins:
    """The reference's frozen bins, computed with the engine once and persisted (unless
    ``persist`` is false: then nothing is written).

    Whichever engine computes them (``engine``; None: the embedded DuckDB), every
    engine then reads the same file: edges are computed once and passed to every query
    as literals, so no engine's rounding can move a row to another bin. (DuckDB's and
    Spark's exact quantiles both interpolate linearly and agree.)"""
    token = reference_token(store, dataset)
    folder = bins_folder(store, dataset)
    path = folder / f"{token}.json"
    if path.is_file():
        return FrozenBins.from_json(path.read_text())
    roles = store.dataset(dataset).roles
    con, t = connect_slice(store, dataset, "reference", engine=engine)
    if t is None:
        raise ValueError(f"dataset {dataset!r} has no reference snapshot")
    coarse, fine = _numeric_bins(con, t, roles.numeric)
    for f in roles.categorical:
        levels = to_arrow(con, t.select(v=t[f].cast("string")).filter(ibis._.v.notnull())
                          .distinct()).column("v").to_pylist()
        coarse[f] = CategoricalBins(tuple(sorted(levels)))
    bins = FrozenBins(token, coarse, fine)
    if persist:
        write_text_atomic(path, bins.to_json())
        _remove_stale(folder, token)
    return bins


def _numeric_bins(con, t, numeric: list[str]) -> tuple[dict, dict]:
    """Coarse (deciles) and fine bins of the ``numeric`` columns of the reference ``t``,
    from one engine query."""
    coarse: dict = {}
    fine: dict = {}
    if not numeric:
        return coarse, fine
    deciles = [k / 10 for k in range(1, 10)]
    aggs = {}
    for f in numeric:
        col = t[f].cast("float64")
        aggs[f"{f}__d"] = col.quantile(deciles, where=present(col))
        aggs[f"{f}__lo"] = col.min(where=present(col))
        aggs[f"{f}__hi"] = col.max(where=present(col))
    row = to_arrow(con, t.aggregate(**aggs)).to_pylist()[0]
    for f in numeric:
        d = row[f"{f}__d"]
        if d is None:  # no values: a single bin plus missing
            coarse[f], fine[f] = NumericBins(()), fine_bins(0.0, [], 0.0)
            continue
        coarse[f] = NumericBins(tuple(float(x) for x in np.unique(d)))
        fine[f] = fine_bins(row[f"{f}__lo"], d, row[f"{f}__hi"])
    return coarse, fine


def _remove_stale(folder: Path, token: str) -> None:
    """Drop what an earlier reference left: its bins, bin codes and compiled SQL."""
    for entry in folder.iterdir():
        if entry.name == f"{token}.json" or entry.name.startswith(f"codes-{token}-"):
            continue
        if entry.is_dir() and entry.name.startswith("codes-"):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.suffix in (".json", ".sql"):
            entry.unlink(missing_ok=True)


def bin_expr(col, bins: NumericBins | CategoricalBins | FineBins):
    """Ibis expression for the bin index of ``col``, laid out as ``bins.counts``:
    numeric bins 0..len(edges), then missing; categories, then other, then missing."""
    if isinstance(bins, FineBins):
        return _fine_expr(col.cast("float64"), bins)
    if isinstance(bins, NumericBins):
        edges = bins.edges
        missing = len(edges) + 1
        x = col.cast("float64")

        def tree(lo: int, hi: int):
            # bins lo..hi; bin i holds edges[i-1] <= x < edges[i]
            if lo == hi:
                return ibis.literal(lo, type="int16")
            mid = (lo + hi + 1) // 2
            return ibis.ifelse(x < edges[mid - 1], tree(lo, mid - 1), tree(mid, hi))

        return ibis.ifelse(present(x), tree(0, len(edges)), ibis.literal(missing, type="int16"))
    cats = bins.categories
    s = col.cast("string")
    if not cats:
        known = ibis.literal(0, type="int16")
    else:
        known = ibis.cases(*[(s == c, ibis.literal(i, type="int16")) for i, c in enumerate(cats)],
                           else_=ibis.literal(len(cats), type="int16"))
    return ibis.ifelse(s.isnull(), ibis.literal(len(cats) + 1, type="int16"), known)


def _fine_expr(x, bins: FineBins):
    """The fine bin of the float column ``x``: a tree over the anchors, then one floor()
    (:class:`analysis.binning.FineBins` states the arithmetic)."""
    a, w, k = bins.anchors, bins.widths, bins.per_interval

    def leaf(i: int):
        # greatest/least rather than clip(): Ibis expands clip() into a NULL-guarding
        # nest that evaluates the floor six times (x is known present here)
        sub = ibis.greatest(0, ibis.least(k - 1, ((x - a[i]) / w[i]).floor()))
        return (sub + i * k).cast("int16")

    def interval(lo: int, hi: int):
        # intervals lo..hi; interval i holds a[i] <= x < a[i+1] (ends open outwards)
        if lo == hi:
            return leaf(lo)
        mid = (lo + hi + 1) // 2
        return ibis.ifelse(x < a[mid], interval(lo, mid - 1), interval(mid, hi))

    return ibis.ifelse(present(x), interval(0, len(a) - 2), ibis.literal(bins.n, type="int16"))


def n_bins(bins) -> int:
    """Length of the count vector of ``bins`` (including other/missing)."""
    if isinstance(bins, FineBins):
        return bins.n + 1
    if isinstance(bins, NumericBins):
        return len(bins.edges) + 2
    return len(bins.categories) + 2
