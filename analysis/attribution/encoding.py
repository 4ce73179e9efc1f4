"""Features as numbers for the tree models, groups as labels, and row samples."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from analysis.attribution.problem import ALL, MAX_LEVELS, label_text
from analysis.drift import CATEGORICAL, NUMERIC


class Encoder:
    """Features as a float matrix for the tree models: numbers as they are (inf as
    missing), categories as codes of their most frequent levels in reference and
    production together (the rest pooled as one "other" code), missing as NaN."""

    def __init__(self, frames: list[pd.DataFrame], columns: Mapping[str, str]):
        self.columns = dict(columns)
        self.levels: dict[str, pd.Index] = {}
        for col, kind in self.columns.items():
            if kind == CATEGORICAL:
                counts = pd.Series(np.concatenate([label_text(f[col]) for f in frames])).value_counts()
                self.levels[col] = pd.Index(counts.index[:MAX_LEVELS].astype(str))

    @property
    def categorical_mask(self) -> np.ndarray:
        return np.array([k == CATEGORICAL for k in self.columns.values()], dtype=bool)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(self.columns)), dtype=float)
        for j, (col, kind) in enumerate(self.columns.items()):
            if kind == CATEGORICAL:
                text = label_text(frame[col])
                codes = self.levels[col].get_indexer(text).astype(float)
                codes[codes < 0] = len(self.levels[col])   # other
                codes[pd.isna(text)] = np.nan
                out[:, j] = codes
            else:
                v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, copy=True)
                v[~np.isfinite(v)] = np.nan
                out[:, j] = v
        return out

    def one_hot(self, frame: pd.DataFrame, top: int = 20) -> tuple[np.ndarray, list[str]]:
        """Readable design matrix for rules and surrogates: numbers as they are (missing
        as the median), categories as indicators of their ``top`` levels."""
        parts, names = [], []
        for col, kind in self.columns.items():
            if kind == CATEGORICAL:
                text = label_text(frame[col])
                text[pd.isna(text)] = "(missing)"
                for level in self.levels[col][:top]:
                    parts.append((text == level).astype(float))
                    names.append(f"{col} = {level}")
            else:
                v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, copy=True)
                v[~np.isfinite(v)] = np.nan
                fill = np.nanmedian(v) if np.isfinite(v).any() else 0.0
                parts.append(np.where(np.isnan(v), fill, v))
                names.append(col)
        return (np.column_stack(parts) if parts else np.empty((len(frame), 0))), names


def clean_values(values: pd.Series, kind: str) -> pd.Series:
    if kind == NUMERIC:
        v = pd.to_numeric(values, errors="coerce").astype(float)
        return v.where(np.isfinite(v))
    return pd.Series(label_text(values), index=values.index, dtype=object)


def segments_of(frame: pd.DataFrame, segment: str | None) -> np.ndarray:
    if segment is None:
        return np.full(len(frame), ALL, dtype=object)
    text = label_text(frame[segment])
    text[pd.isna(text)] = "(missing)"
    return text


class GroupCodes:
    """Each row's group as a small integer: ``names[codes[i]]`` is row ``i``'s label as
    :func:`segments_of` gives it. Selecting a group's rows compares integers, which at
    millions of rows is ten times faster than comparing the labels."""

    def __init__(self, codes: np.ndarray, names):
        self.codes = np.asarray(codes)
        self.names = list(names)
        self._code = {name: i for i, name in enumerate(self.names)}

    @classmethod
    def of(cls, frame: pd.DataFrame, segment: str | None) -> "GroupCodes":
        """The groups of ``frame[segment]`` (one group, ALL, without a segment); a
        categorical column is coded through its categories, without a label per row."""
        if segment is None:
            return cls(np.zeros(len(frame), dtype=np.int8), [ALL])
        column = frame[segment]
        if isinstance(column.dtype, pd.CategoricalDtype):
            labels = segments_of(pd.DataFrame({"g": column.cat.categories}), "g")
            labels = np.append(labels, "(missing)").astype(object)  # code -1 takes the last
            # two categories may read as one label (1 and "1"): one code per label
            merged, names = pd.factorize(labels)
            return cls(merged.astype(np.int32)[column.cat.codes.to_numpy()], names)
        codes, names = pd.factorize(segments_of(frame, segment))
        return cls(codes, names)

    def code(self, name: str) -> int:
        """The code of group ``name`` (-1 when no row has it)."""
        return self._code.get(name, -1)

    def cell_keys(self, window_of: np.ndarray) -> np.ndarray:
        """Each row's window x group cell as one integer, ``window * len(names) + code``
        (negative for a row without a window, ``window_of`` -1)."""
        keys = window_of * len(self.names)
        keys += self.codes
        return keys

    def member(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Whether each row (of ``rows`` when given) is in group ``name``; ALL: every row."""
        codes = self.codes if rows is None else self.codes[rows]
        if name == ALL:
            return np.ones(len(codes), dtype=bool)
        return codes == self.code(name)


def _sample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=cap, replace=False)) if n > cap else np.arange(n)
