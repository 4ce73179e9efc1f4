"""Per-feature drift tests: which test for which column, and the drift table.

The default test for a column follows Evidently 0.7's rule, so our verdicts read the same:

=====================  ==========================  ================================
reference rows         numeric column              categorical column
=====================  ==========================  ================================
<= 1000                KS (p < 0.05); with <= 5    chi-square (p < 0.05); z-test
                       distinct values chi-square   (p < 0.05) when binary
                       or z-test as for categories
> 1000                 Wasserstein normed (>= 0.1)  Jensen-Shannon (>= 0.1)
                       or, with <= 5 distinct
                       values, Jensen-Shannon
=====================  ==========================  ================================

"distinct values" counts the non-missing values of reference and production together.
Any test can be forced by name; thresholds can be overridden.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from analysis import stats
from analysis.binning import bins_for, evidently_shares
from analysis.stats import EmptySampleError

NUMERIC, CATEGORICAL = "numeric", "categorical"
BINNINGS = ("quantile", "evidently")


@dataclass(frozen=True)
class DriftTest:
    name: str
    label: str
    kinds: frozenset[str]
    threshold: float
    #: True: drift when p_value < threshold; False: drift when statistic >= threshold.
    uses_p_value: bool


TESTS: dict[str, DriftTest] = {
    t.name: t
    for t in (
        DriftTest("ks", "Kolmogorov-Smirnov", frozenset({NUMERIC}), 0.05, True),
        DriftTest("psi", "PSI", frozenset({NUMERIC, CATEGORICAL}), 0.1, False),
        DriftTest("wasserstein", "Wasserstein (normed)", frozenset({NUMERIC}), 0.1, False),
        DriftTest("jensenshannon", "Jensen-Shannon distance", frozenset({NUMERIC, CATEGORICAL}),
                  0.1, False),
        DriftTest("chisquare", "chi-square", frozenset({NUMERIC, CATEGORICAL}), 0.05, True),
        DriftTest("hellinger", "Hellinger distance", frozenset({NUMERIC, CATEGORICAL}), 0.1, False),
        DriftTest("z", "two-proportion z-test (binary columns)",
                  frozenset({NUMERIC, CATEGORICAL}), 0.05, True),
    )
}


@dataclass
class FeatureDrift:
    """One row of the drift table."""

    feature: str
    kind: str
    test: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool | None
    n_reference: int
    n_production: int
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def infer_kind(series: pd.Series) -> str:
    """'numeric' for integer and float columns, 'categorical' for everything else
    (strings, booleans, categories)."""
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return CATEGORICAL
    return NUMERIC


def default_test(kind: str, n_reference: int, n_distinct: int) -> str:
    """Name of the default test for a column (see the module docstring)."""
    if kind not in (NUMERIC, CATEGORICAL):
        raise ValueError(f"unknown column kind {kind!r}")
    if n_reference <= 1000:
        if kind == NUMERIC and n_distinct > 5:
            return "ks"
        return "chisquare" if n_distinct > 2 else "z"
    if kind == NUMERIC and n_distinct > 5:
        return "wasserstein"
    return "jensenshannon"


def _clean(values: pd.Series, kind: str) -> pd.Series:
    if kind != NUMERIC:
        return values
    # +-inf count as missing, as in Evidently: no distance or bin is defined for them
    return pd.to_numeric(values, errors="raise").astype(float).replace([np.inf, -np.inf], np.nan)


class ColumnReference:
    """One reference column with what comparing it needs, computed once and reused for
    every production window: its default bins and counts, and (numeric) the sorted
    values for exact KS and Wasserstein. ``bins`` freezes the bins (e.g. the whole
    reference's, when this is one segment of it); by default they come from ``values``."""

    def __init__(self, values: pd.Series, kind: str, name: str | None = None, bins=None):
        if kind not in (NUMERIC, CATEGORICAL):
            raise ValueError(f"unknown column kind {kind!r}")
        self.name = name or str(values.name)
        self.kind = kind
        self.values = _clean(values, kind)
        self.rows = len(self.values)
        self.present = int(self.values.notna().sum())
        # distinct values up to 6: all the default-test rule needs to know
        self._distinct = set(self.values.dropna().unique()[:6].tolist()) if self.present else set()
        self._bins, self._counts, self._sorted = bins, None, None

    @property
    def bins(self):
        """Our default bins, frozen from this reference."""
        if self._bins is None:
            self._bins = bins_for(self.values, self.kind)
        return self._bins

    @property
    def counts(self) -> np.ndarray:
        """This reference's counts in :attr:`bins`."""
        if self._counts is None:
            self._counts = self.bins.counts(self.values)
        return self._counts

    @property
    def sorted(self) -> stats.SortedSample:
        if self._sorted is None:
            self._sorted = stats.SortedSample(self.values)
        return self._sorted

    def n_distinct(self, production: pd.Series) -> int:
        """Distinct non-missing values of reference and production together (capped at 6)."""
        if len(self._distinct) > 5:
            return 6
        seen = set(self._distinct)
        for value in production.dropna().unique():
            seen.add(value)
            if len(seen) > 5:
                break
        return len(seen)

    def compare(self, production: pd.Series, *, test: str | None = None,
                binning: str = "quantile", threshold: float | None = None) -> FeatureDrift:
        """The drift row of ``production`` against this reference column."""
        if self.rows == 0:
            raise EmptySampleError(f"reference has no rows for column {self.name!r}")
        if len(production) == 0:
            raise EmptySampleError(f"production window has no rows for column {self.name!r}")
        if binning not in BINNINGS:
            raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")
        production = _clean(production, self.kind)
        test_name = test or default_test(self.kind, self.rows, self.n_distinct(production))
        if test_name not in TESTS:
            raise ValueError(f"unknown test {test_name!r}; choose one of {', '.join(TESTS)}")
        spec = TESTS[test_name]
        limit = spec.threshold if threshold is None else float(threshold)
        row = FeatureDrift(self.name, self.kind, test_name, None, None, limit, None,
                           self.present, int(production.notna().sum()))
        if self.kind not in spec.kinds:
            row.note = f"{spec.label} does not apply to {self.kind} columns"
            return row
        if row.n_reference == 0:
            row.note = "reference has no non-missing values"
            return row
        sees_missing = test_name in ("psi", "jensenshannon", "hellinger", "chisquare") and (
            binning == "quantile" or test_name == "chisquare")
        if row.n_production == 0 and not sees_missing:
            row.drifted = True
            row.note = "production values are all missing"
            return row
        try:
            statistic, p_value = self._statistic(spec.name, production, binning)
        except ValueError as exc:  # e.g. a z-test asked of a non-binary column
            row.note = str(exc)
            return row
        row.statistic, row.p_value = statistic, p_value
        row.drifted = bool(p_value < limit) if spec.uses_p_value else bool(statistic >= limit)
        return row

    def _statistic(self, name: str, production: pd.Series, binning: str
                   ) -> tuple[float, float | None]:
        """(statistic, p_value or None) of test ``name``."""
        reference = self.values
        if name == "ks":
            return stats.ks_test(reference, production)
        if name == "wasserstein":
            return stats.wasserstein_normed_sorted(self.sorted, production), None
        if name == "z":
            ref, prod = reference.dropna(), production.dropna()
            keys = sorted(pd.concat([ref, prod], ignore_index=True).unique(), key=str)
            if len(keys) > 2:
                raise ValueError(f"z-test needs a binary column; this one has {len(keys)} values")
            first = keys[0]
            return stats.proportions_ztest((ref != first).sum(), len(ref),
                                           (prod != first).sum(), len(prod))
        if binning == "evidently" and name == "chisquare":
            ref, prod = reference.dropna(), production.dropna()
            if ref.empty or prod.empty:
                raise EmptySampleError("a sample has no non-missing values")
            keys = pd.Index(pd.concat([ref, prod], ignore_index=True).unique())
            return stats.chisquare_goodness_of_fit(
                ref.value_counts().reindex(keys, fill_value=0).to_numpy(float),
                prod.value_counts().reindex(keys, fill_value=0).to_numpy(float))
        if binning == "evidently" and name in ("psi", "jensenshannon", "hellinger"):
            p, q = evidently_shares(reference, production, self.kind, fill_zeros=(name == "psi"))
            if name == "psi":
                return stats.psi_from_shares(p, q), None
            if name == "jensenshannon":
                return stats.jensenshannon_distance(p, q), None
            return stats.hellinger_distance(p, q), None
        ref_counts, prod_counts = self.counts, self.bins.counts(production)
        if name == "psi":
            return stats.psi(ref_counts, prod_counts), None
        if name == "jensenshannon":
            return stats.jensenshannon_distance(ref_counts, prod_counts), None
        if name == "hellinger":
            return stats.hellinger_distance(ref_counts, prod_counts), None
        if name == "chisquare":
            return stats.chisquare_homogeneity(ref_counts, prod_counts)
        raise ValueError(f"unknown test {name!r}")


def feature_drift(reference: pd.Series, production: pd.Series, kind: str, *,
                  test: str | None = None, binning: str = "quantile",
                  threshold: float | None = None, name: str | None = None) -> FeatureDrift:
    """Compare one column of the reference with the same column in production.

    Numeric values of +-inf are treated as missing. Raises :class:`EmptySampleError`
    when either sample has no rows at all. A column whose values are all missing on one
    side is reported, not raised: in the reference it cannot be judged (``drifted`` is
    None); in production it is flagged as drifted when the test cannot see missing
    values (a feed that went all-null is a problem).
    """
    return ColumnReference(reference, kind, name).compare(
        production, test=test, binning=binning, threshold=threshold)


class ReferenceProfile:
    """The reference side of a drift table, prepared once for many production windows."""

    def __init__(self, reference: pd.DataFrame, features: Mapping[str, str],
                 bins: Mapping | None = None):
        if len(reference) == 0:
            raise EmptySampleError("the reference has no rows")
        self.features = dict(features)
        bins = bins or {}
        self.columns = {c: ColumnReference(reference[c], k, c, bins.get(c))
                        for c, k in self.features.items()}

    def table(self, production: pd.DataFrame, *, test: str | None = None,
              binning: str = "quantile",
              thresholds: Mapping[str, float] | None = None) -> pd.DataFrame:
        """Drift table of ``production``; see :func:`drift_table`."""
        if len(production) == 0:
            raise EmptySampleError("the production window has no rows")
        thresholds = dict(thresholds or {})
        rows = []
        for column, ref in self.columns.items():
            chosen = test or default_test(ref.kind, ref.rows, ref.n_distinct(production[column]))
            rows.append(ref.compare(production[column], test=chosen, binning=binning,
                                    threshold=thresholds.get(chosen)).as_dict())
        return pd.DataFrame(rows, columns=list(FeatureDrift.__dataclass_fields__))


def drift_table(reference: pd.DataFrame, production: pd.DataFrame,
                features: Mapping[str, str], *, test: str | None = None,
                binning: str = "quantile",
                thresholds: Mapping[str, float] | None = None,
                bins: Mapping | None = None) -> pd.DataFrame:
    """The per-feature drift table of ``production`` against ``reference``.

    Parameters
    ----------
    features : mapping of column name -> kind ('numeric' or 'categorical')
    test : force one test (by name) for every feature; default per column as above
    binning : 'quantile' (ours) or 'evidently' (for PSI, Jensen-Shannon and Hellinger)
    thresholds : per-test threshold overrides, by test name
    bins : frozen bins per feature (default: from ``reference``)

    Returns one row per feature with the columns of :class:`FeatureDrift`.
    Raises :class:`EmptySampleError` when either frame has no rows.
    """
    return ReferenceProfile(reference, features, bins).table(
        production, test=test, binning=binning, thresholds=thresholds)

