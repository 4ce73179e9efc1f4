"""Check that ``--binning evidently`` reproduces Evidently 0.7.23: PSI, Jensen-Shannon, chi-square.

    .venv/bin/python bench/evidently_parity.py

Generates varied cases (numeric with many / few distinct values, missing values, a
share below 0.0001, categories present on one side only), computes each statistic with
Evidently's own stattest functions in the bench environment and with ours, and prints
the differences, then a JSON line with the largest. Not a test: it needs Evidently.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._venv import use_project_python  # noqa: E402

use_project_python()
from analysis.drift import feature_drift  # noqa: E402
from bench.evidently_env import evidently_python  # noqa: E402

EVIDENTLY_SIDE = """
import json, sys, pandas as pd
from evidently.legacy.calculations.stattests.psi import psi_stat_test
from evidently.legacy.calculations.stattests.jensenshannon import jensenshannon_stat_test
from evidently.legacy.calculations.stattests.chisquare_stattest import chi_stat_test
from evidently.legacy.core import ColumnType
folder, out = sys.argv[1], {}
for name, kind in pd.read_csv(folder + "/cases.csv").itertuples(index=False):
    ref = pd.read_parquet(f"{folder}/{name}_ref.parquet")["v"].dropna()
    prod = pd.read_parquet(f"{folder}/{name}_prod.parquet")["v"].dropna()
    ct = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    out[name] = {"psi": float(psi_stat_test(ref, prod, ct, None).drift_score),
                 "jensenshannon": float(jensenshannon_stat_test(ref, prod, ct, None).drift_score)}
    if kind == "categorical":
        out[name]["chisquare"] = float(chi_stat_test(ref, prod, ct, None).drift_score)
print(json.dumps(out))
"""


def cases(seed: int = 5) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    rng = np.random.default_rng(seed)
    n1, n2 = 5000, 3000
    return {
        "normal_shift": (rng.normal(0, 1, n1), rng.normal(0.3, 1.2, n2), "numeric"),
        "exponential_with_missing": (np.where(rng.random(n1) < 0.05, np.nan,
                                              rng.exponential(2, n1)),
                                     rng.exponential(2.5, n2), "numeric"),
        "few_distinct_values": (rng.integers(0, 6, n1).astype(float),
                                rng.integers(1, 8, n2).astype(float), "numeric"),
        "share_below_1e-4": (np.r_[np.zeros(19_999), [1.0]],
                             np.r_[np.zeros(50), np.ones(50), [2.0] * 3], "numeric"),
        "categories": (rng.choice(list("abcd"), n1, p=[.4, .3, .2, .1]),
                       rng.choice(list("abce"), n2, p=[.3, .3, .3, .1]), "categorical"),
        "categories_same_levels": (rng.choice(list("abcd"), n1, p=[.4, .3, .2, .1]),
                                   rng.choice(list("abcd"), n2, p=[.38, .32, .2, .1]),
                                   "categorical"),
        "rare_category": (np.r_[["x"] * 30_000, ["y"]], np.r_[["x"] * 100, ["z"] * 5],
                          "categorical"),
        "integers_many_values": (rng.integers(0, 100, n1).astype(float),
                                 rng.integers(10, 120, n2).astype(float), "numeric"),
    }


def main() -> None:
    python = evidently_python()
    with tempfile.TemporaryDirectory() as folder:
        index = []
        for name, (ref, prod, kind) in cases().items():
            pd.DataFrame({"v": ref}).to_parquet(f"{folder}/{name}_ref.parquet")
            pd.DataFrame({"v": prod}).to_parquet(f"{folder}/{name}_prod.parquet")
            index.append((name, kind))
        pd.DataFrame(index, columns=["name", "kind"]).to_csv(f"{folder}/cases.csv", index=False)
        theirs = json.loads(subprocess.run([str(python), "-c", EVIDENTLY_SIDE, folder],
                                           check=True, capture_output=True, text=True).stdout)
    worst = 0.0
    print(f"{'case':28} {'test':14} {'evidently':>14} {'ours':>14} {'|diff|':>9}")
    for name, (ref, prod, kind) in cases().items():
        for test in theirs[name]:
            row = feature_drift(pd.Series(ref), pd.Series(prod), kind, test=test,
                                binning="evidently")
            # Evidently reports the p-value as chi-square's drift score
            ours = row.p_value if test == "chisquare" else row.statistic
            diff = abs(ours - theirs[name][test])
            worst = max(worst, diff)
            print(f"{name:28} {test:14} {theirs[name][test]:14.9f} {ours:14.9f} {diff:9.1e}")
    print(json.dumps({"cases": len(index), "max_abs_diff": worst, "within_1e-6": worst <= 1e-6}))


if __name__ == "__main__":
    main()
