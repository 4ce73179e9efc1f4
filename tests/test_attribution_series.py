"""Sequences of windows: gradual drift and change-point dating
(analysis/attribution/series.py, testing.date_changes)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import attribution as at
from analysis.attribution import series
from generators import make_gradual, make_midweek_change


def test_pooled_after_split_matches_hand_computation():
    d = np.array([0.0, 0.1, 2.0, 2.2])
    se = np.array([1.0, 1.0, 0.5, 1.0])
    k, pooled, z, p = series.pooled_after_split(d, se)
    # by hand: split 2 pools 2.0 (weight 4) and 2.2 (weight 1)
    u = 1 / se ** 2
    zs = [np.sum(u[i:] * d[i:]) / np.sqrt(np.sum(u[i:])) for i in range(4)]
    assert k == int(np.argmax(np.abs(zs))) == 2
    assert pooled == pytest.approx((4 * 2.0 + 2.2) / 5)
    assert z == pytest.approx(zs[2])
    assert p == pytest.approx(min(1.0, 2 * sps.norm.sf(zs[2]) * 4))


def test_trend_equals_weighted_least_squares():
    rng = np.random.default_rng(0)
    d = 0.3 * np.arange(10) + rng.normal(0, 1, 10)
    se = rng.uniform(0.5, 2.0, 10)
    slope, z, p = series.trend(d, se)
    # the same fit with numpy: polyfit weights are 1 / se (it squares them)
    assert slope == pytest.approx(np.polyfit(np.arange(10.0), d, 1, w=1 / se)[0])
    t = np.arange(10.0)
    u = 1 / se ** 2
    s = np.sum(u * (t - np.average(t, weights=u)) ** 2)
    assert z == pytest.approx(slope * np.sqrt(s))
    assert p == pytest.approx(2 * sps.norm.sf(abs(z)))


def test_change_point_finds_a_step_after_the_baseline():
    rng = np.random.default_rng(1)
    baseline = rng.normal(0, 1, 500)
    evidence = np.r_[rng.normal(0, 1, 300), rng.normal(1.0, 1, 200)]
    evidence[10] = np.nan                       # missing values are skipped
    at_ = series.change_point(baseline, evidence)
    assert abs(at_ - 300) <= 15
    assert series.change_point(baseline[:1], evidence) is None


@pytest.mark.parametrize("kind", ["data", "concept"])
def test_abrupt_change_inside_a_week_is_dated_to_its_day(kind):
    ref, prod, change = make_midweek_change(2, kind)
    problem, _ = at.problem_from_frames(ref, prod.copy(), target="y", prediction="prediction",
                                        timestamp="ts")
    result = at.investigate(ref, prod, problem).to_dict()
    assert result["window"] == "week" and result["verdict"] == kind
    flagged = [c["start"] for c in result["cells"] if c["verdict"] == kind]
    assert pd.Timestamp(flagged[0]) == change.normalize() - pd.Timedelta(days=change.day_of_week)
    (point,) = [cp for cp in result["change_points"] if cp["kind"] == kind]
    assert point["unit"] == "day" and pd.Timestamp(point["since"]) == change.normalize()
    assert f"since {change:%Y-%m-%d}" in result["summary"]


def test_gradual_concept_drift_is_found_and_its_control_is_not():
    ref, prod = make_gradual(1, ramp=True)
    problem, _ = at.problem_from_frames(ref, prod.copy(), target="y", prediction="prediction",
                                        timestamp="ts")
    result = at.investigate(ref, prod, problem).to_dict()
    assert result["verdict"] == "concept"
    (sequence,) = [s for s in result["sequences"] if s["kind"] == "concept"]
    assert sequence["flagged"] and sequence["pooled_change"] > 0
    # the first weeks (error 5-6 %) stay quiet; the last ones (10-11 %) are flagged
    verdicts = [c["verdict"] for c in result["cells"]]
    assert verdicts[0] == "none" and verdicts[-1] == "concept"
    # at least one week is flagged only through the sequence: no single week shows it
    assert any(c["concept"].get("series_flagged") and not c["concept"].get("loss_flagged")
               for c in result["cells"])

    ref, prod = make_gradual(1, ramp=False)
    problem, _ = at.problem_from_frames(ref, prod.copy(), target="y", prediction="prediction",
                                        timestamp="ts")
    control = at.investigate(ref, prod, problem).to_dict()
    assert control["verdict"] == "none"
    assert not any(s["flagged"] for s in control["sequences"])
