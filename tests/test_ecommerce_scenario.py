"""The e-commerce recommender simulator: schema, determinism, seasonality, and faults whose
effect on clicks follows from the mechanism (analysis/scenarios/ecommerce.py).

Statistical assertions compare against binomial or Poisson standard errors with a margin
of 4 of them, so a correct simulator fails them with probability well below 1e-4; with
fixed seeds the outcome is the same on every run.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from analysis.scenarios import ecommerce as E

DAY = datetime(2026, 11, 2)
SEED = 11


def at(hour: int, minute: int = 0, second: float = 0.0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute, seconds=second)


def ctr(table: pa.Table) -> float:
    return float(np.mean(table["clicked"].to_numpy()))


def binomial_se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def column(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy(zero_copy_only=False)


def between(table: pa.Table, t0: datetime, t1: datetime) -> pa.Table:
    ts = table["timestamp"]
    keep = pc.and_(pc.greater_equal(ts, pa.scalar(t0, pa.timestamp("us"))),
                   pc.less(ts, pa.scalar(t1, pa.timestamp("us"))))
    return table.filter(keep)


def two_rate_z(a: np.ndarray, b: np.ndarray) -> float:
    """z of the difference of two click-through rates (a's minus b's)."""
    pa_, pb = a.mean(), b.mean()
    return (pa_ - pb) / math.sqrt(pa_ * (1 - pa_) / a.size + pb * (1 - pb) / b.size)


# --- schema and determinism -------------------------------------------------------------

@pytest.fixture(scope="module")
def sim() -> E.EcommerceSimulator:
    return E.EcommerceSimulator(seed=SEED)


def test_schema_ids_and_timestamps(sim):
    t0, t1 = at(9, 0, 0.25), at(9, 0, 20.5)
    table = sim.events(t0, t1)
    assert table.schema.equals(E.event_schema())
    assert table.schema.field("timestamp").type == pa.timestamp("us")
    assert table.schema.field("clicked").type == pa.int8()
    for f in E.FEATURES:
        assert table.schema.field(f).type == pa.float64()
        assert table.schema.field(E.age_column(f)).type == pa.float64()
        # a value and its age are null together
        assert pc.is_null(table[f]).equals(pc.is_null(table[E.age_column(f)]))
    # about 20.25 s at the 09:00 load
    expected = sum(sim.rate * E.load(E._to_us(at(9, 0, s + 0.5))) for s in range(21)) * 20.25 / 21
    assert abs(table.num_rows - expected) < 4 * math.sqrt(expected)

    ids = column(table, "request_id")
    assert np.all(np.diff(ids) > 0)                      # unique and increasing
    ts = column(table, "timestamp")
    assert np.all(np.diff(ts.astype(np.int64)) >= 0)      # sorted
    assert ts.min() >= np.datetime64(t0) and ts.max() < np.datetime64(t1)
    assert set(column(table, "segment")) <= set(E.SEGMENTS)
    score = column(table, "score")
    assert np.all((score > 0) & (score < 1))
    assert set(np.unique(column(table, "clicked"))) <= {0, 1}
    assert np.all(column(table, "latency_ms") > 0)
    ages = np.concatenate([column(table, E.age_column(f)) for f in E.FEATURES])
    assert np.nanmin(ages) >= 0


def test_events_split_anywhere_equal_one_call():
    fault = E.parse_fault("null:recent_clicks:0.3", at(3, 0, 4.2), at(3, 0, 9.9))
    sim = E.EcommerceSimulator(seed=SEED, faults=[fault])
    a, b, c = at(3, 0, 0.7), at(3, 0, 5.123456), at(3, 1, 2.0)
    whole = sim.events(a, c)
    parts = pa.concat_tables([sim.events(a, b), sim.events(b, c)])
    assert whole.num_rows > 50_000
    assert whole.equals(parts)
    # by minutes too, and again from a fresh simulator
    assert pa.concat_tables(list(sim.minutes(a, c))).equals(whole)
    assert E.EcommerceSimulator(seed=SEED, faults=[fault]).events(a, c).equals(whole)
    assert not E.EcommerceSimulator(seed=SEED + 1).events(a, b).equals(sim.events(a, b))
    assert sim.events(b, b).num_rows == 0


def test_events_before_start_are_refused(sim):
    with pytest.raises(ValueError, match="before the simulation start"):
        sim.events(DAY - timedelta(seconds=1), DAY + timedelta(seconds=1))


# --- fault-free rates and the daily wave ------------------------------------------------

HOURS = (1, 4, 7, 10, 13, 16, 19, 22)


@pytest.fixture(scope="module")
def by_hour(sim) -> dict[int, pa.Table]:
    """Three minutes from the start of each of eight hours spread over the day."""
    return {h: sim.events(at(h), at(h, 3)) for h in HOURS}


def test_overall_ctr_is_about_five_percent_and_scores_are_calibrated(by_hour):
    table = pa.concat_tables(by_hour.values())
    clicks = column(table, "clicked")
    assert 0.04 <= clicks.mean() <= 0.06
    # the score is the model's click probability: on average right, fault-free
    assert abs(column(table, "score").mean() - clicks.mean()) < 0.003


def test_traffic_ctr_and_latency_follow_the_hour(sim, by_hour):
    evening, morning = by_hour[19], by_hour[7]
    for h in (7, 19):
        expected = sum(sim.rate * E.load(E._to_us(at(h, 0, s + 0.5))) for s in range(180))
        assert abs(by_hour[h].num_rows - expected) < 4 * math.sqrt(expected)
    assert evening.num_rows / morning.num_rows > 1.9     # 1.35 / 0.65 = 2.08
    z = two_rate_z(column(evening, "clicked"), column(morning, "clicked"))
    assert z > 5
    lat_ratio = (np.median(column(evening, "latency_ms"))
                 / np.median(column(morning, "latency_ms")))
    assert 1.9 < lat_ratio < 2.3
    # realized rates agree with the Monte-Carlo expectation at each hour
    for h, table in by_hour.items():
        want = sim.expected_ctr(at(h, 1, 30), ())
        got = ctr(table)
        assert abs(got - want) < 4 * binomial_se(want, table.num_rows) + 0.0005, h


# --- faults -----------------------------------------------------------------------------

WINDOWS = {
    "null": ("null:user_affinity:0.4", at(12, 5), at(12, 15)),
    "stale": ("stale:user_affinity:0.5", at(12, 15), at(12, 20)),
    "latency": ("latency:0.3", at(12, 20), at(12, 25)),
    "segment_mix": ("segment_mix:new=0.6", at(12, 25), at(12, 30)),
    "score": ("score:0.5", at(12, 30), at(12, 35)),
}


@pytest.fixture(scope="module")
def faulted():
    """The same seed with and without five faults, one after another from 12:05."""
    faults = [E.parse_fault(*spec) for spec in WINDOWS.values()]
    with_faults = E.EcommerceSimulator(seed=SEED, faults=faults)
    without = E.EcommerceSimulator(seed=SEED)
    return (with_faults, with_faults.events(at(12), at(12, 35)),
            without.events(at(12), at(12, 35)))


def window(tables, kind: str):
    _, t0, t1 = WINDOWS[kind]
    return [between(t, t0, t1) for t in tables]


def test_faults_leave_the_requests_themselves_alone(faulted):
    _, bad, good = faulted
    assert bad.num_rows == good.num_rows
    for name in ("timestamp", "request_id", "item_popularity", "recent_clicks"):
        assert bad[name].equals(good[name])
    # before the first fault the events are identical
    assert between(bad, at(12), at(12, 5)).equals(between(good, at(12), at(12, 5)))


def test_null_fault_lowers_ctr_as_expected(faulted):
    sim, *tables = faulted
    bad, good = window(tables, "null")
    fault = sim.faults[0]
    null = column(bad, "user_affinity")
    null_share = np.isnan(null).mean()
    assert abs(null_share - 0.4) < 4 * binomial_se(0.4, null.size) + E.MISS_RATE["user_affinity"]
    assert np.isnan(column(good, "user_affinity")).mean() < 0.005

    when = at(12, 10)
    expected_drop = 1 - sim.expected_ctr(when, [fault]) / sim.expected_ctr(when, ())
    realized_drop = 1 - ctr(bad) / ctr(good)
    # both rates binomial, taken as independent (conservative: the click draws are shared)
    se = math.sqrt(2) * binomial_se(ctr(good), good.num_rows) / ctr(good)
    assert 0.12 < expected_drop < 0.25
    assert abs(realized_drop - expected_drop) < 4 * se

    # within one segment, requests whose affinity was null click less than the others
    returning = column(bad, "segment") == "returning"
    clicks = column(bad, "clicked")[returning]
    missing = np.isnan(null[returning])
    assert two_rate_z(clicks[~missing], clicks[missing]) > 4


def test_a_barely_used_feature_barely_matters(sim):
    when = at(12)
    all_null = E.Fault("null", "weather_index", 1.0, when)
    drop = 1 - sim.expected_ctr(when, [all_null]) / sim.expected_ctr(when, ())
    assert 0 < drop < 0.01
    with pytest.raises(ValueError, match="at most"):
        sim.share_for_drop("null", "weather_index", 0.10, when)


def test_stale_fault_ages_values_and_lowers_ctr_of_stale_requests(faulted):
    _, *tables = faulted
    bad, good = window(tables, "stale")
    age = column(bad, "user_affinity_age_s")
    # the same requests fault-free: a stale value is older by U(1 h, 6 h), others unchanged
    extra = age - column(good, "user_affinity_age_s")
    known = ~np.isnan(extra)
    stale = known & (extra > 0)
    assert abs(stale.mean() - 0.5) < 4 * binomial_se(0.5, age.size) + 0.003
    assert np.all(extra[known & ~stale] == 0)
    assert extra[stale].min() >= 3600 and extra[stale].max() <= 6 * 3600
    assert abs(extra[stale].mean() - 3.5 * 3600) < 4 * 5 * 3600 / math.sqrt(12 * stale.sum())
    # without the request-level truth, age alone tells them apart (fault-free ages are
    # Exponential(600 s): beyond 1 h in 0.25 % of requests)
    assert ((age > 3600) == stale)[known].mean() > 0.995
    assert np.nanmean(age) > 8 * np.nanmean(column(good, "user_affinity_age_s"))

    clicks = column(bad, "clicked")
    assert two_rate_z(clicks[known & ~stale], clicks[stale]) > 4
    assert ctr(bad) < ctr(good)
    # an old value is still a value: the feature's spread does not move
    spread = np.nanstd(column(bad, "user_affinity")) / np.nanstd(column(good, "user_affinity"))
    assert abs(spread - 1) < 0.02


def test_latency_fault_slows_requests_and_slow_pages_lose_clicks(faulted):
    _, *tables = faulted
    bad, good = window(tables, "latency")
    latency = column(bad, "latency_ms")
    slow = latency > 60   # fault-free: 8 ms median, lognormal sd 0.4, beyond 60 ms ~1e-6
    assert abs(slow.mean() - 0.3) < 4 * binomial_se(0.3, slow.size)
    assert (column(good, "latency_ms") > 60).mean() < 1e-4
    clicks = column(bad, "clicked")
    assert two_rate_z(clicks[~slow], clicks[slow]) > 4


def test_segment_mix_fault_changes_the_shares(faulted):
    sim, *tables = faulted
    bad, good = window(tables, "segment_mix")
    shares = sim.faults[3].segment_shares()
    assert shares["new"] == 0.6
    assert shares["returning"] == pytest.approx(0.40 * 0.40 / 0.75)
    assert sum(shares.values()) == pytest.approx(1.0)
    segment = column(bad, "segment")
    for g in E.SEGMENTS:
        assert abs((segment == g).mean() - shares[g]) < 4 * binomial_se(shares[g], segment.size)
    assert abs((column(good, "segment") == "new").mean() - 0.25) < 0.01
    # new users click least, so more of them lowers the rate
    assert ctr(bad) < ctr(good)


def test_score_fault_scores_higher_and_clicks_less(faulted):
    _, *tables = faulted
    bad, good = window(tables, "score")
    shift = column(bad, "score") - column(good, "score")
    assert np.all(shift >= 0)
    broken = shift > 0
    assert abs(broken.mean() - 0.5) < 4 * binomial_se(0.5, broken.size)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert np.allclose(logit(column(bad, "score")[broken]) - logit(column(good, "score")[broken]),
                       E.SCORE_SHIFT)
    # the broken version recommends as if it knew nothing: one item per segment
    segment = bad["segment"].combine_chunks().indices.to_numpy().astype(np.int64)
    blind = segment * 9 ** 4 + 4 * (1 + 9 + 81 + 729)   # every digit at "estimate 0"
    assert np.all(column(bad, "item_id")[broken] == blind[broken])
    clicks = column(bad, "clicked")
    assert two_rate_z(clicks[~broken], clicks[broken]) > 4
    assert ctr(bad) < 0.8 * ctr(good)


def test_expected_ctr_applies_only_faults_active_at_the_instant(faulted):
    sim, *_ = faulted
    fault_free = sim.expected_ctr(at(12, 1), ())
    assert sim.expected_ctr(at(12, 1)) == fault_free          # nothing active yet
    assert sim.expected_ctr(at(12, 10)) < sim.expected_ctr(at(12, 10), ())


# --- parsing ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ("nul:user_affinity:0.2", "unknown fault kind 'nul'"),
    ("null:user_afinity:0.2", "unknown feature 'user_afinity'"),
    ("stale:user_affinity:0", r"share 0.0 outside \(0, 1\]"),
    ("null:user_affinity:1.5", r"share 1.5 outside \(0, 1\]"),
    ("score:-0.1", r"share -0.1 outside \(0, 1\]"),
    ("score:half", "share 'half' is not a number"),
    ("null:user_affinity", "expected null:<feature>:<share>"),
    ("latency:0.1:2:3", r"expected latency:<share>\[:<factor>\]"),
    ("latency:0.1:-2", "latency factor -2.0 must be a positive number"),
    ("score", "expected <kind>:"),
    ("segment_mix:vip=0.2", "unknown segment 'vip'"),
    ("segment_mix:new0.2", "'new0.2' is not <segment>=<share>"),
    ("segment_mix:new=0.7,loyal=0.5", "sum to 1.2, more than 1"),
    ("segment_mix:new=0.1,new=0.2", "segment named twice"),
])
def test_parse_fault_errors_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        E.parse_fault(spec, at(12))


def test_parse_fault_reads_what_spec_writes():
    for spec in ("null:user_affinity:0.25", "stale:weather_index:1", "latency:0.1",
                 "latency:0.1:5", "score:0.3", "segment_mix:new=0.5,loyal=0.1"):
        fault = E.parse_fault(spec, at(12), at(13))
        assert E.parse_fault(fault.spec, at(12), at(13)) == fault
    assert E.parse_fault("latency:0.1", at(12)).factor == E.LATENCY_FACTOR
    with pytest.raises(ValueError, match="is not after at"):
        E.parse_fault("score:0.3", at(12), at(11))


# --- calibration and ground truth -------------------------------------------------------

@pytest.mark.parametrize("kind, target, drop", [("null", "user_affinity", 0.10),
                                                ("stale", "item_popularity", 0.05),
                                                ("latency", None, 0.10)])
def test_share_for_drop_hits_the_target(sim, kind, target, drop):
    when = at(20)
    share = sim.share_for_drop(kind, target, drop, when)
    assert 0 < share < 1
    fault = E.Fault(kind, target, share, when)
    achieved = 1 - sim.expected_ctr(when, [fault]) / sim.expected_ctr(when, ())
    assert abs(achieved - drop) < 0.005


def test_ground_truth_is_json_and_signed_as_the_mechanism_says(sim):
    faults = [E.parse_fault(*spec) for spec in WINDOWS.values()]
    truth = json.loads(json.dumps(E.ground_truth(faults, sim)))
    rows = {row["kind"]: row for row in truth["faults"]}
    assert rows["null"]["target"] == "user_affinity" and rows["null"]["share"] == 0.4
    assert rows["null"]["at"] == "2026-11-02T12:05:00"
    assert rows["null"]["direct_columns"] == ["user_affinity", "user_affinity_age_s"]
    assert rows["latency"]["factor"] == E.LATENCY_FACTOR
    assert rows["segment_mix"]["segment_shares"]["new"] == 0.6
    for row in truth["faults"]:
        assert -0.6 < row["expected_relative_ctr_change"] < -0.02, row["kind"]
