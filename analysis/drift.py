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

Distances (PSI, Jensen-Shannon, Hellinger, Wasserstein) call drift only when the value
is at or above the threshold **and** above its noise level at the two sample sizes
(:mod:`analysis.noise`): small samples are far apart by chance alone. Tests with a
p-value already account for the sample sizes. Either way, a comparison with fewer than
:data:`analysis.noise.MIN_ROWS` rows on a side is reported, not judged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from analysis import formats, noise, stats
from analysis.binning import bins_for, evidently_shares
from analysis.formats import rows, rule
from analysis.stats import EmptySampleError, holm

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


#: Short names for narrow tables.
SHORT_LABELS = {"ks": "KS", "psi": "PSI", "wasserstein": "Wasserstein", "jensenshannon": "JS",
                "chisquare": "chi-square", "hellinger": "Hellinger", "z": "z-test"}


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
    #: distances: the statistic's noise level at these sizes (None for p-value tests)
    noise_level: float | None = None
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
        self._bins, self._counts, self._sorted, self._support = bins, None, None, None

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

    @property
    def support(self) -> tuple[np.ndarray, np.ndarray]:
        """Support points and counts of the non-missing values (Wasserstein's noise)."""
        if self._support is None:
            self._support = noise.support_of(self.values)
        return self._support

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
                binning: str = "quantile", threshold: float | None = None,
                min_rows: int = noise.MIN_ROWS, alpha: float = noise.ALPHA) -> FeatureDrift:
        """The drift row of ``production`` against this reference column.

        Fewer than ``min_rows`` rows on either side (values, for tests that drop missing
        ones): statistic reported, ``drifted`` None. A distance is drift when at or above
        the threshold and above its noise level (the 1 - ``alpha`` quantile of the
        distance between two samples of these sizes drawn from this reference).
        """
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
        # the sizes the statistic saw: binned tests on our bins count missing values too
        sizes = ((self.rows, len(production)) if sees_missing and binning == "quantile"
                 else (row.n_reference, row.n_production))
        return self._judge(row, spec, production, binning, sizes, min_rows, alpha)

    def _judge(self, row: FeatureDrift, spec: DriftTest, production: pd.Series, binning: str,
               sizes: tuple[int, int], min_rows: int, alpha: float) -> FeatureDrift:
        """Set ``row.drifted`` (and its note): not judged below ``min_rows``; p-value
        tests below the threshold; distances at or above it and beyond noise."""
        if spec.uses_p_value and min(sizes) >= min_rows:
            row.drifted = bool(row.p_value < row.threshold)
            return row
        return judge_distance(row, sizes, lambda m: self._noise_level(
            spec.name, production, binning, m, alpha), min_rows)

    def _noise_level(self, name: str, production: pd.Series, binning: str, m: int,
                     alpha: float) -> float:
        """Noise level of distance ``name`` against ``m`` production values."""
        if name == "wasserstein":
            points, counts = self.support
            return noise.wasserstein_noise_level(points, counts, m, max(self.sorted.std, 1e-3),
                                                 alpha)
        if binning == "evidently":
            # the reference's shares on Evidently's bins, as counts of its sample
            shares, _ = evidently_shares(self.values, production, self.kind, fill_zeros=False)
            return noise.binned_noise_level(name, shares * self.present, m, alpha)
        return noise.binned_noise_level(name, self.counts, m, alpha)

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


def judge_distance(row: FeatureDrift, sizes: tuple[int, int],
                   noise_level: Callable[[int], float], min_rows: int = noise.MIN_ROWS
                   ) -> FeatureDrift:
    """Set a distance row's ``drifted``, ``noise_level`` and note by the noise rule
    (:func:`analysis.noise.verdict`): not judged when either of ``sizes`` (reference,
    production) is below ``min_rows``; else drift when at or above the threshold and
    above ``noise_level(production size)``."""
    n, m = sizes
    if min(n, m) < min_rows:
        size, side = (n, "reference") if n < min_rows else (m, "production")
        row.note = f"not judged: {rows(int(size), side + ' row')} (fewer than {min_rows})"
        return row
    row.noise_level = noise_level(int(m))
    verdict = noise.verdict(row.statistic, row.threshold, row.noise_level, m, n, min_rows)
    row.drifted = verdict == noise.DRIFT
    if verdict == noise.WITHIN_NOISE:
        row.note = "within noise at these sizes"
    return row


def feature_drift(reference: pd.Series, production: pd.Series, kind: str, *,
                  test: str | None = None, binning: str = "quantile",
                  threshold: float | None = None, name: str | None = None,
                  min_rows: int = noise.MIN_ROWS) -> FeatureDrift:
    """Compare one column of the reference with the same column in production.

    Numeric values of +-inf are treated as missing. Raises :class:`EmptySampleError`
    when either sample has no rows at all. A column whose values are all missing on one
    side is reported, not raised: in the reference it cannot be judged (``drifted`` is
    None); in production it is flagged as drifted when the test cannot see missing
    values (a feed that went all-null is a problem).
    """
    return ColumnReference(reference, kind, name).compare(
        production, test=test, binning=binning, threshold=threshold, min_rows=min_rows)


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
              thresholds: Mapping[str, float] | None = None,
              min_rows: int = noise.MIN_ROWS) -> pd.DataFrame:
        """Drift table of ``production``; see :func:`drift_table`."""
        if len(production) == 0:
            raise EmptySampleError("the production window has no rows")
        thresholds = dict(thresholds or {})
        rows = []
        for column, ref in self.columns.items():
            chosen = test or default_test(ref.kind, ref.rows, ref.n_distinct(production[column]))
            rows.append(ref.compare(production[column], test=chosen, binning=binning,
                                    threshold=thresholds.get(chosen),
                                    min_rows=min_rows).as_dict())
        return pd.DataFrame(rows, columns=list(FeatureDrift.__dataclass_fields__))


def drift_table(reference: pd.DataFrame, production: pd.DataFrame,
                features: Mapping[str, str], *, test: str | None = None,
                binning: str = "quantile",
                thresholds: Mapping[str, float] | None = None,
                bins: Mapping | None = None, min_rows: int = noise.MIN_ROWS) -> pd.DataFrame:
    """The per-feature drift table of ``production`` against ``reference``.

    Parameters
    ----------
    features : mapping of column name -> kind ('numeric' or 'categorical')
    test : force one test (by name) for every feature; default per column as above
    binning : 'quantile' (ours) or 'evidently' (for PSI, Jensen-Shannon and Hellinger)
    thresholds : per-test threshold overrides, by test name
    bins : frozen bins per feature (default: from ``reference``)
    min_rows : fewer rows (values) on either side: not judged

    Returns one row per feature with the columns of :class:`FeatureDrift`; distances
    carry their ``noise_level``, and call drift only above it.
    Raises :class:`EmptySampleError` when either frame has no rows.
    """
    return ReferenceProfile(reference, features, bins).table(
        production, test=test, binning=binning, thresholds=thresholds, min_rows=min_rows)


def describe_tests(names: Iterable[str], min_rows: int = noise.MIN_ROWS,
                   alpha: float = noise.ALPHA, holm_over: str | None = None) -> str:
    """The tests that ran (``names``, in any order, repeats allowed) and when each calls
    drift, as sentences for a caption: e.g. "Kolmogorov-Smirnov: drift when p < 0.05;
    two-proportion z-test (binary columns): drift when p < 0.05. Fewer than 50 rows on a
    side: not judged." Distances add how their noise level is defined; ``holm_over``
    (e.g. "the features in the table") says over what p-values were Holm-adjusted
    (:func:`holm_adjusted`) when a test with one ran."""
    chosen = [t for t in TESTS if t in set(names)]
    if not chosen:
        return f"No test ran. Fewer than {min_rows} rows on a side: not judged."
    parts = [f"{TESTS[t].label}: drift when {rule(TESTS[t].uses_p_value, TESTS[t].threshold)}"
             + ("" if TESTS[t].uses_p_value else " and above its noise level") for t in chosen]
    text = "; ".join(parts)
    sentences = [f"{text}."]
    if any(not TESTS[t].uses_p_value for t in chosen):
        sentences.append(f"A distance's noise level is its {noise.percentile_name(alpha)} "
                         "between two samples of the same sizes drawn from the reference.")
    if holm_over and any(TESTS[t].uses_p_value for t in chosen):
        sentences.append(f"The p-values are Holm-adjusted over {holm_over} and the adjusted "
                         "value decides, so that data without drift shows none with 95 % "
                         "probability.")
    sentences.append(f"Fewer than {min_rows} rows on a side: not judged.")
    return " ".join(sentences)


def verdict_of(row: Mapping) -> str:
    """A drift-table row's verdict in words: 'drift', 'within noise' (a distance at or
    above its threshold but not above its noise level), 'stable' or 'not judged'."""
    drifted = row.get("drifted")
    if drifted is None or (isinstance(drifted, float) and np.isnan(drifted)):
        return noise.NOT_JUDGED
    if drifted:
        return noise.DRIFT
    statistic, spec = row.get("statistic"), TESTS[row["test"]]
    if (not spec.uses_p_value and statistic is not None and not pd.isna(statistic)
            and statistic >= row["threshold"]):
        return noise.WITHIN_NOISE
    return noise.STABLE


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """The drift table ordered for reading: drifted features first, then those within
    noise, then the rest; by statistic (largest first) within each."""
    order = {noise.DRIFT: 0, noise.WITHIN_NOISE: 1, noise.STABLE: 2, noise.NOT_JUDGED: 3}
    verdicts = table.apply(verdict_of, axis=1) if len(table) else pd.Series(dtype=object)
    keyed = table.assign(_rank=verdicts.map(order), _stat=pd.to_numeric(table["statistic"]))
    return keyed.sort_values(["_rank", "_stat"], ascending=[True, False],
                             na_position="last").drop(columns=["_rank", "_stat"])


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The drift table as the pages show it, every number formatted (statistics, noise
    levels and thresholds with 4 decimals, p-values down to 0.0001, an em dash where a
    test has none): feature, kind, test (its name) and test label (short), statistic,
    noise level, p-value, adjusted p (Holm, when the table has one), drift when, verdict,
    reference rows, production rows (integers), note. Row order is kept."""
    out = pd.DataFrame({
        "feature": table["feature"], "kind": table["kind"], "test": table["test"],
        "test label": table["test"].map(SHORT_LABELS),
        "statistic": table["statistic"].map(formats.statistic),
        "noise level": table["noise_level"].map(formats.statistic),
        "p-value": table["p_value"].map(formats.p_value),
        "adjusted p": (table["p_adjusted"] if "p_adjusted" in table
                       else pd.Series(np.nan, index=table.index)).map(formats.p_value),
        "drift when": [("adj. " if TESTS[t].uses_p_value and "p_adjusted" in table else "")
                       + rule(TESTS[t].uses_p_value, th)
                       for t, th in zip(table["test"], table["threshold"])],
        "verdict": table.apply(verdict_of, axis=1) if len(table) else [],
        "reference rows": table["n_reference"].astype(int),
        "production rows": table["n_production"].astype(int),
        # the verdict says "not judged" already
        "note": table["note"].fillna("").str.removeprefix("not judged: "),
    })
    return out.reset_index(drop=True)


def describe_row(row: Mapping) -> str:
    """One drift-table row in a sentence: "ks = 0.7934, p < 0.0001 (drift when
    p < 0.05) → drift." with the note when there is one."""
    spec = TESTS[row["test"]]
    parts = [f"{row['test']} = {formats.statistic(row.get('statistic'))}"]
    if spec.uses_p_value:
        p = formats.p_value(row.get("p_value"))
        parts.append(f"p {p}" if p.startswith("<") else f"p = {p}")
        adjusted = row.get("p_adjusted")
        if adjusted is not None and not pd.isna(adjusted):
            p = formats.p_value(adjusted)
            parts.append(f"adjusted p {p}" if p.startswith("<") else f"adjusted p = {p}")
    else:
        parts.append(f"noise level {formats.statistic(row.get('noise_level'))}")
    adjusted = spec.uses_p_value and not pd.isna(row.get("p_adjusted", np.nan))
    text = (", ".join(parts) + f" (drift when {'adjusted ' if adjusted else ''}"
            f"{rule(spec.uses_p_value, row['threshold'])}) → {verdict_of(row)}")
    note = (row.get("note") or "").removeprefix("not judged: ")
    return text + (f": {note}." if note and not note.startswith("within noise") else ".")


def display_columns(table: pd.DataFrame) -> list[str]:
    """The columns of :func:`display_table` worth showing for ``table``: the p-values
    only when a test with one ran (the adjusted one when the table has it), the noise
    level only when a distance did, notes only when they differ between rows (a note
    every row shares is :func:`common_note`, said once above the table)."""
    kinds = {TESTS[t].uses_p_value for t in table["test"]}
    columns = ["feature", "test label", "statistic", "noise level", "p-value", "adjusted p",
               "drift when", "verdict", "reference rows", "production rows", "note"]
    if True not in kinds or "p_adjusted" not in table:
        columns.remove("adjusted p")
    if True not in kinds:
        columns.remove("p-value")
    if False not in kinds:
        columns.remove("noise level")
    if table["note"].fillna("").nunique() <= 1:
        columns.remove("note")
    return columns


def common_note(table: pd.DataFrame) -> str:
    """The note every row of the drift table shares (e.g. too few rows), or ''."""
    notes = table["note"].fillna("")
    return notes.iloc[0] if len(notes) and notes.nunique() == 1 else ""


def holm_adjusted(tables: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """The drift tables of many windows with their p-value tests judged together: each
    judged p-value is Holm-adjusted over all of them (every window and feature) and
    ``drifted`` becomes ``adjusted p < threshold``, so the family of tests shown at once
    calls drift by chance with probability at most the threshold (5 %). The adjusted
    value is in ``p_adjusted`` (NaN for distances); distances are left as they are."""
    keys, p_values = [], []
    for i, table in enumerate(tables):
        for j, (name, p, drifted) in enumerate(zip(table["test"], table["p_value"],
                                                   table["drifted"])):
            if TESTS[name].uses_p_value and drifted is not None and not pd.isna(drifted):
                keys.append((i, j))
                p_values.append(p)
    adjusted = holm(p_values) if p_values else np.array([])
    out = [t.assign(p_adjusted=np.nan).astype({"drifted": object}) for t in tables]
    for (i, j), p in zip(keys, adjusted):
        out[i].iat[j, out[i].columns.get_loc("p_adjusted")] = p
        out[i].iat[j, out[i].columns.get_loc("drifted")] = bool(p < out[i]["threshold"].iat[j])
    return out
