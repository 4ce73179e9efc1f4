"""Label-free monitoring: every statistic against a hand-computed value or scikit-learn /
scipy, the estimate against the accuracy calibrated probabilities imply, drift found
after an injected shift and not before, the headless estimate in ``investigate`` and
the ``datasets`` command."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.isotonic import IsotonicRegression

from analysis.monitoring import cbpe as cb
from analysis.monitoring.live import LiveMonitor, freshness_text, headline, window_table
from analysis.monitoring.multivariate import domain_auc, hanley_mcneil_se
from cli_helpers import run_command
from serving_helpers import iris_store

ROOT = Path(__file__).resolve().parent.parent
Z = sps.norm.ppf(0.975)


# -- CBPE -----------------------------------------------------------------------------
def test_estimate_is_the_mean_confidence_with_the_poisson_binomial_interval():
    # three rows, calibrated probabilities; the model predicts the most probable class
    proba = np.array([[0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.2, 0.1, 0.7]])
    est = cb.CBPE().estimate(proba)
    assert est.value == pytest.approx((0.9 + 0.6 + 0.7) / 3)
    sd = math.sqrt(0.9 * 0.1 + 0.6 * 0.4 + 0.7 * 0.3) / 3
    assert est.se == pytest.approx(sd)
    assert (est.low, est.high) == pytest.approx((est.value - Z * sd, min(1, est.value + Z * sd)))
    # the class the model answered counts, not the most probable one
    est = cb.CBPE().estimate(proba, predicted=np.array([1, 0, 2]))
    assert est.value == pytest.approx((0.1 + 0.6 + 0.7) / 3)


def test_the_estimate_matches_the_realized_accuracy_of_calibrated_probabilities():
    rng = np.random.default_rng(4)
    coverage = []
    for _ in range(300):
        n = 400
        logits = rng.normal(0, 2, size=(n, 3))
        proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        y = np.array([rng.choice(3, p=p) for p in proba])            # calibrated by design
        est = cb.CBPE().estimate(proba)
        realized = np.mean(proba.argmax(1) == y)
        coverage.append(est.low <= realized <= est.high)
    assert 0.92 <= np.mean(coverage) <= 0.98       # a 95 % interval


def test_binary_probabilities_give_max_p_and_one_minus_p():
    p = np.array([0.9, 0.2, 0.55, 0.5])
    est = cb.CBPE().estimate(cb.binary_matrix(p))
    assert est.value == pytest.approx(np.mean([0.9, 0.8, 0.55, 0.5]))
    assert cb.looks_like_probability(p) and not cb.looks_like_probability([0, 1, 1])


def test_calibration_is_isotonic_per_class_and_renormalised():
    rng = np.random.default_rng(0)
    n = 600
    raw = rng.dirichlet([1, 1, 1], size=n)
    y = np.array([rng.choice(3, p=np.sqrt(p) / np.sqrt(p).sum()) for p in raw])  # miscalibrated
    cal = cb.Calibrator().fit(raw, y)
    out = cal.transform(raw)
    expected = np.column_stack([
        IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(raw[:, k], y == k)
        .predict(raw[:, k]) for k in range(3)])
    expected /= expected.sum(1, keepdims=True)
    assert np.allclose(out, expected)
    # binary: the positive column only, the other its complement
    p = rng.uniform(size=n)
    yb = (rng.uniform(size=n) < p ** 2).astype(float)
    cal2 = cb.Calibrator().fit(cb.binary_matrix(p), yb)
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, yb).predict(p)
    assert np.allclose(cal2.transform(cb.binary_matrix(p))[:, 1], iso)
    # too few labelled rows: the identity
    assert not cb.Calibrator().fit(raw[:50], y[:50]).fitted


def test_realized_accuracy_has_the_wilson_interval():
    correct = np.array([1] * 45 + [0] * 5, dtype=float)
    est = cb.realized_accuracy(correct)
    a, n = 0.9, 50
    centre = (a + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(a * (1 - a) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    assert est.value == 0.9 and (est.low, est.high) == pytest.approx((centre - half, centre + half))
    assert math.isnan(cb.realized_accuracy([]).value)


# -- multivariate ------------------------------------------------------------------------
def test_hanley_mcneil_by_hand():
    a, n1, n0 = 0.8, 50, 70
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    assert hanley_mcneil_se(a, n1, n0) == pytest.approx(math.sqrt(var))
    assert hanley_mcneil_se(0.5, 100, 100) == pytest.approx(math.sqrt(
        (0.25 + 99 * (0.5 / 1.5 - 0.25) + 99 * (0.5 / 1.5 - 0.25)) / 10000))


def test_domain_auc_is_half_without_drift_and_high_with_it():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    same = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    # a broken correlation: each margin unchanged, the joint moved
    z = rng.normal(size=600)
    moved = pd.DataFrame({"a": z, "b": z + rng.normal(scale=0.05, size=600)})
    features = {"a": "numeric", "b": "numeric"}
    quiet, loud = domain_auc(ref, same, features), domain_auc(ref, moved, features)
    assert quiet["low"] <= 0.52 and quiet["auc"] < 0.55
    assert loud["auc"] > 0.75 and loud["low"] > 0.7 and loud["p_value"] < 1e-6
    assert loud["low"] < loud["auc"] < loud["high"]


# -- the live report on a store with an injected shift ----------------------------------
@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    store, production = iris_store(tmp_path_factory.mktemp("live"), minutes=6, rows=200,
                                   shift_from=3, shift="new-cluster", label_share=0.5)
    return store, production, LiveMonitor(store, "iris-api").report("minute", 10)


def test_drift_is_found_after_the_shift_and_not_before(shifted):
    _, _, report = shifted
    w = report.windows
    assert len(w) == 6 and list(w["rows"]) == [200] * 6
    before, after = w.iloc[:3], w.iloc[3:]
    assert (before["multivariate"] == "stable").all() and (after["multivariate"] == "drift").all()
    assert (before["drifted_features"] == 0).all()
    assert (after["drifted_features"] >= 2).all()
    assert (before["prediction_drift"] == "stable").all()
    assert (after["prediction_drift"] == "drift").all()
    assert (before["auc"] < 0.6).all() and (after["auc"] > 0.8).all()


def test_estimate_drops_with_the_shift_and_tracks_the_realized_accuracy(shifted):
    store, production, report = shifted
    w = report.windows
    assert (w["estimated_accuracy"].iloc[:3] > 0.9).all()
    assert (w["estimated_accuracy"].iloc[3:] < w["estimated_accuracy"].iloc[:3].min() - 0.03).all()
    # realized accuracy and coverage from the late labels, by hand
    production["window"] = production["ts"].dt.floor("min")
    for row in w.itertuples():
        rows = production[production["window"] == row.window_start]
        labelled = rows[rows["labelled"]]
        assert row.labelled == len(labelled)
        assert row.label_coverage == pytest.approx(len(labelled) / len(rows))
        assert row.realized_accuracy == pytest.approx(
            np.mean(labelled["predicted_class"] == labelled["truth"]))
    # the estimate by hand: calibrated confidence of the predicted class
    monitor = LiveMonitor(store, "iris-api")
    last = production[production["window"] == w["window_start"].iloc[-1]]
    P = last[[f"proba_{c}" for c in ("setosa", "versicolor", "virginica")]].to_numpy()
    idx = last["predicted_class"].map({"setosa": 0, "versicolor": 1, "virginica": 2}).to_numpy()
    conf = monitor.cbpe.calibrator.transform(P)[np.arange(len(P)), idx]
    assert w["estimated_accuracy"].iloc[-1] == pytest.approx(conf.mean())
    # after the shift the estimate is close to what the labels say (a covariate shift
    # of real flowers: P(y|x) unchanged, CBPE's assumption holds)
    assert abs(w["estimated_accuracy"].iloc[3:].mean() - w["realized_accuracy"].iloc[3:].mean()) < 0.1


def test_window_table_and_headline_cards(shifted):
    _, _, report = shifted
    table = window_table(report)
    assert list(table.columns[:4]) == ["window", "rows", "labels", "estimated accuracy"]
    assert table["window"].iloc[0] > table["window"].iloc[-1]          # newest first
    cards = {label: value for label, value, _ in headline(report, now=report.last_timestamp)}
    assert cards["Production rows"] == "1,200"
    assert cards["Estimated accuracy"] == f"{report.windows['estimated_accuracy'].iloc[-1]:.3f}"
    assert cards["Drifted features"].endswith("of 4")
    assert freshness_text(None) == "no production rows yet"


def test_a_petal_scale_shift_fools_the_estimate_but_not_the_labels(tmp_path):
    store, _ = iris_store(tmp_path, minutes=4, rows=200, shift_from=2, shift="petal-scale",
                          label_share=1.0, seed=3)
    w = LiveMonitor(store, "iris-api").report("minute", 10).windows
    assert (w["multivariate"].iloc[2:] == "drift").all()
    # confidently wrong: the estimate stays high while the realized accuracy falls
    assert (w["realized_accuracy"].iloc[2:] < 0.8).all()
    assert (w["estimated_accuracy"].iloc[2:] > w["realized_accuracy"].iloc[2:] + 0.1).all()


def test_an_empty_production_slice_gives_an_empty_report(tmp_path):
    store, _ = iris_store(tmp_path, minutes=0)
    report = LiveMonitor(store, "iris-api").report("hour", 5)
    assert report.windows.empty and report.production_rows == 0


# -- the headless estimate and the datasets command -----------------------------------------
def test_investigate_reports_estimated_accuracy_without_a_target(tmp_path):
    rng = np.random.default_rng(2)

    def frame(n, shift, start):
        x1, x2 = rng.normal(shift, 1, n), rng.normal(0, 1, n)
        return pd.DataFrame({"ts": pd.date_range(start, periods=n, freq="h"), "x1": x1,
                             "x2": x2, "score": 1 / (1 + np.exp(-(2 * x1 + x2)))})
    ref, prod = frame(1000, 0.0, "2025-01-01"), frame(1200, 1.0, "2025-03-01")
    ref.to_csv(tmp_path / "ref.csv", index=False)
    prod.to_csv(tmp_path / "prod.csv", index=False)
    args = [sys.executable, "-m", "analysis", "investigate", "--reference",
            str(tmp_path / "ref.csv"), "--production", str(tmp_path / "prod.csv"),
            "--prediction", "score", "--window", "month"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}    # small fits: threads only contend
    out = subprocess.run([*args, "--json"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    conf = np.maximum(prod["score"], 1 - prod["score"])          # calibrated as given
    assert result["estimated_accuracy"] == pytest.approx(conf.mean(), abs=1e-9)
    low, high = result["estimated_accuracy_ci"]
    sd = math.sqrt(np.sum(conf * (1 - conf))) / len(conf)
    assert (low, high) == pytest.approx((conf.mean() - Z * sd, conf.mean() + Z * sd), abs=1e-6)
    assert result["estimation"]["method"] == "CBPE" and not result["estimation"]["calibrated"]
    prod["start"] = pd.to_datetime(prod["ts"]).dt.to_period("M").dt.start_time
    for cell in result["cells"]:
        assert cell["estimated_accuracy_ci"][0] <= cell["estimated_accuracy"] <= \
            cell["estimated_accuracy_ci"][1]
        rows = prod[prod["start"] == pd.Timestamp(cell["start"])]
        assert cell["rows"] == len(rows)
        assert cell["estimated_accuracy"] == pytest.approx(
            np.maximum(rows["score"], 1 - rows["score"]).mean(), abs=1e-9)
    text = run_command(*args[3:])   # the text report, in this process
    assert "estimated accuracy without labels" in text.stdout


def test_datasets_command_lists_rows_per_slice(tmp_path):
    store, _ = iris_store(tmp_path, minutes=2, rows=30, label_share=0.5)
    run = lambda *a: run_command("datasets", "--store", str(store.root), *a)  # noqa: E731
    out = run("--json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert (row["name"], row["reference_rows"], row["production_rows"], row["labels"]) == \
        ("iris-api", 150, 60, 30)
    text = run().stdout
    assert "iris-api" in text and "60" in text
