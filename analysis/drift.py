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
    binary_only: bool = False


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
        DriftTest("z", "two-proportion z-test", frozenset({NUMERIC, CATEGORICAL}), 0.05, True,
                  binary_only=True),
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


def _n_distinct(reference: pd.Series, production: pd.Series) -> int:
    return int(pd.concat([reference.dropna(), production.dropna()], ignore_index=True).nunique())


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


def _statistic(test: DriftTest, reference: pd.Series, production: pd.Series, kind: str,
               binning: str) -> tuple[float, float | None]:
    """(statistic, p_value or None) of ``test`` on the two samples."""
    name = test.name
    if name == "ks":
        return stats.ks_test(reference, production)
    if name == "wasserstein":
        return stats.wasserstein_normed(reference, production), None
    if name == "z":
        ref, prod = reference.dropna(), production.dropna()
        if ref.empty:
            raise EmptySampleError("reference sample has no non-missing values")
        if prod.empty:
            raise EmptySampleError("production sample has no non-missing values")
        keys = sorted(pd.concat([ref, prod], ignore_index=True).unique(), key=str)
        if len(keys) > 2:
            raise ValueError(f"z-test needs a binary column; this one has {len(keys)} values")
        first = keys[0]
        return stats.proportions_ztest((ref != first).sum(), len(ref),
                                       (prod != first).sum(), len(prod))
    if binning == "evidently" and name in ("psi", "jensenshannon", "hellinger"):
        p, q = evidently_shares(reference, production, kind, fill_zeros=(name == "psi"))
        if name == "psi":
            return stats.psi_from_shares(p, q), None
        if name == "jensenshannon":
            return stats.jensenshannon_distance(p, q), None
        return stats.hellinger_distance(p, q), None
    bins = bins_for(reference, kind)
    ref_counts, prod_counts = bins.counts(reference), bins.counts(production)
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
    when either sample has no rows at all. A column
    whose values are all missing on one side is reported, not raised: in the reference
    it cannot be judged (``drifted`` is None); in production it is flagged as drifted
    when the test cannot see missing values (a feed that went all-null is a problem).
    """
    name = name or str(reference.name)
    if len(reference) == 0:
        raise EmptySampleError(f"reference has no rows for column {name!r}")
    if len(production) == 0:
        raise EmptySampleError(f"production window has no rows for column {name!r}")
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")
    if kind == NUMERIC:
        # +-inf count as missing, as in Evidently: no distance or bin is defined for them
        reference = pd.to_numeric(reference, errors="raise").astype(float).replace(
            [np.inf, -np.inf], np.nan)
        production = pd.to_numeric(production, errors="raise").astype(float).replace(
            [np.inf, -np.inf], np.nan)
    test_name = test or default_test(kind, len(reference), _n_distinct(reference, production))
    if test_name not in TESTS:
        raise ValueError(f"unknown test {test_name!r}; choose one of {', '.join(TESTS)}")
    spec = TESTS[test_name]
    limit = spec.threshold if threshold is None else float(threshold)
    row = FeatureDrift(name, kind, test_name, None, None, limit, None,
                       int(reference.notna().sum()), int(production.notna().sum()))
    if kind not in spec.kinds:
        row.note = f"{spec.label} does not apply to {kind} columns"
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
        statistic, p_value = _statistic(spec, reference, production, kind, binning)
    except ValueError as exc:  # e.g. a z-test asked of a non-binary column
        row.note = str(exc)
        return row
    row.statistic, row.p_value = statistic, p_value
    row.drifted = bool(p_value < limit) if spec.uses_p_value else bool(statistic >= limit)
    return row


def drift_table(reference: pd.DataFrame, production: pd.DataFrame,
                features: Mapping[str, str], *, test: str | None = None,
                binning: str = "quantile",
                thresholds: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The per-feature drift table of ``production`` against ``reference``.

    Parameters
    ----------
    features : mapping of column name -> kind ('numeric' or 'categorical')
    test : force one test (by name) for every feature; default per column as above
    binning : 'quantile' (ours) or 'evidently' (for PSI, Jensen-Shannon and Hellinger)
    thresholds : per-test threshold overrides, by test name

    Returns one row per feature with the columns of :class:`FeatureDrift`.
    Raises :class:`EmptySampleError` when either frame has no rows.
    """
    if len(reference) == 0:
        raise EmptySampleError("the reference has no rows")
    if len(production) == 0:
        raise EmptySampleError("the production window has no rows")
    thresholds = dict(thresholds or {})
    rows = []
    for column, kind in features.items():
        chosen = test
        if chosen is None:
            chosen = default_test(kind, len(reference),
                                  _n_distinct(reference[column], production[column]))
        rows.append(feature_drift(reference[column], production[column], kind, test=chosen,
                                  binning=binning, threshold=thresholds.get(chosen),
                                  name=column).as_dict())
    table = pd.DataFrame(rows, columns=list(FeatureDrift.__dataclass_fields__))
    return table


def drifted_share(table: pd.DataFrame) -> float:
    """Share of judged features flagged as drifted (NaN when none could be judged)."""
    judged = table["drifted"].dropna()
    return float(np.mean(judged.astype(bool))) if len(judged) else float("nan")
