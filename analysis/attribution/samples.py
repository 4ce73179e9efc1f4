"""The rows the investigation works on: a sample of each side, encoded once, with the
per-row quantities every cell reads (frozen-bin codes, losses, bootstrap counts)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.attribution.encoding import Encoder, clean_values, segments_of
from analysis.attribution.problem import BOOTSTRAP, Problem, row_losses
from analysis.drift import NUMERIC


@dataclass
class Side:
    """One side's sampled rows (reference, or production over every window).

    ``values`` and ``codes`` hold each feature's cleaned values and its frozen-bin codes;
    ``loss`` the user's model's per-row loss (None without one); ``model`` the reference
    model's per-row quantities (see :func:`analysis.attribution.engine.score_reference_model`);
    ``reps`` the Poisson(1) bootstrap counts of every row, drawn once (n x ``BOOTSTRAP``,
    small integers stored as uint8), shared by every cell the row belongs to. A row's
    counts are contiguous, so a cell's rows are gathered in blocks (ten times faster
    than gathering columns of a replicate-major layout).
    """

    frame: pd.DataFrame
    X: np.ndarray
    segment: np.ndarray
    values: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]
    reps: np.ndarray
    loss: np.ndarray | None = None
    model: dict[str, np.ndarray | None] = field(default_factory=dict)
    window: np.ndarray | None = None      # production: each row's window index
    position: np.ndarray | None = None    # production: each row's position in the full table

    def replicates(self, rows: np.ndarray) -> "RowReplicates":
        """Bootstrap counts of ``rows``, B x len(rows), as an operand of ``@``."""
        return RowReplicates(self.reps, rows)


class RowReplicates:
    """``counts[rows].T`` (B x len(rows) bootstrap counts) as the left operand of ``@``
    with a matrix of per-row columns, without making it: the product is summed over
    blocks of rows, each block's counts turned into floats in one small reused buffer.
    A cell's whole matrix in floats is tens of megabytes, whose making cost twice the
    product (the sums differ from it by rounding only, about 1e-16 relative)."""

    BLOCK = 512    # rows: 512 x 200 floats (0.8 MB) stay in the cache

    def __init__(self, counts: np.ndarray, rows: np.ndarray):
        self.counts, self.rows = counts, rows

    def __matmul__(self, columns: np.ndarray) -> np.ndarray:
        columns = np.asarray(columns, dtype=float)
        out = np.zeros((self.counts.shape[1], columns.shape[1]))
        buffer = np.empty((min(self.BLOCK, len(self.rows)), self.counts.shape[1]))
        for start in range(0, len(self.rows), self.BLOCK):
            block = self.rows[start:start + self.BLOCK]
            floats = buffer[:len(block)]
            np.copyto(floats, self.counts[block])
            out += floats.T @ columns[start:start + self.BLOCK]
        return out


def make_side(frame: pd.DataFrame, p: Problem, encoder: Encoder, bins: dict,
              rng: np.random.Generator) -> Side:
    """Encode a sampled table once: model inputs, groups, feature values and codes, the
    user's model's losses and the bootstrap counts."""
    frame = frame.reset_index(drop=True)
    values, codes = {}, {}
    for col, kind in p.features.items():
        clean = clean_values(frame[col], kind)
        values[col] = clean.to_numpy(dtype=float) if kind == NUMERIC else clean.to_numpy(dtype=object)
        codes[col] = np.asarray(bins[col].codes(clean), dtype=np.int64)
    loss = None
    if p.has_model:
        loss = row_losses(frame[p.target], frame[p.prediction], p.metric, p.positive)
    reps = poisson_counts(rng, len(frame))
    return Side(frame, encoder.transform(frame), segments_of(frame, p.segment), values, codes,
                reps, loss)



#: the Poisson(1) distribution function at 0, 1, ..., 9 (a count above 10 has
#: probability 1e-8 and is drawn as 10)
_POISSON_CDF = np.cumsum([math.exp(-1) / math.factorial(k) for k in range(10)]).astype(np.float32)


def poisson_counts(rng: np.random.Generator, n: int, block: int = 8192) -> np.ndarray:
    """``n`` x ``BOOTSTRAP`` Poisson(1) counts as uint8, by inversion: a count is the
    number of the distribution function's values that one uniform draw exceeds. Drawn a
    block of rows at a time from float32 uniforms (a quarter of the memory and a fifth of
    the time of ``rng.poisson``'s int64 draws)."""
    out = np.empty((n, BOOTSTRAP), dtype=np.uint8)
    for start in range(0, n, block):
        stop = min(start + block, n)
        # drawn replicate-major, as before the layout changed, so a seed gives the same
        # counts to the same rows
        u = rng.random((BOOTSTRAP, stop - start), dtype=np.float32)
        counts = np.greater(u, _POISSON_CDF[0]).astype(np.uint8)
        for level in _POISSON_CDF[1:]:
            counts += u > level
        out[start:stop] = counts.T
    return out
