"""Stream change detection: the statistics by hand and by scipy, the detectors on
seeded streams from an independent generator (faults found, dated and explained;
fault-free streams quiet), and the ``detect`` command end to end."""
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from analysis.streaming import causes, detectors, events, minutes
from analysis.streaming.detect import CTR, detect_alerts
from analysis.tables import InputError
from cli_helpers import run_command
from stream_generators import generate


# -- statistics --------------------------------------------------------------------------
def test_llr_binomial_equals_scipy_log_pmf_difference():
    x, n, p0, p1 = np.array([3, 50, 0]), np.array([100, 1000, 40]), 0.05, 0.045
    ours = detectors.llr_binomial(x, n, p0, p1, phi=2.0)
    ref = (stats.binom.logpmf(x, n, p1) - stats.binom.logpmf(x, n, p0)) / 2.0
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_forecast_is_the_weighted_line_through_the_window_and_its_dispersion():
    rng = np.random.default_rng(0)
    n = rng.integers(5000, 15000, 200).astype(float)
    t = np.arange(200.0)
    p = 0.05 + 0.0001 * t
    x = rng.binomial(n.astype(int), p).astype(float)
    fc = detectors.Forecast(x, n)
    m = 150
    lo, hi = m - detectors.GAP - detectors.WINDOW, m - detectors.GAP
    y, w = x[lo:hi] / n[lo:hi], n[lo:hi]
    slope, intercept = np.polyfit(t[lo:hi], y, 1, w=np.sqrt(w))
    fit = intercept + slope * t[lo:hi]
    level = x[lo:hi].sum() / n[lo:hi].sum()
    pearson = np.sum((x[lo:hi] - n[lo:hi] * fit) ** 2 / n[lo:hi]) / (level * (1 - level))
    phi_hand = max(1.0, pearson / (hi - lo - 2))
    tbar = np.sum(w * t[lo:hi]) / w.sum()
    s_tt = np.sum(w * (t[lo:hi] - tbar) ** 2)
    rate, phi, spread = fc.rate(m, origin=0)
    assert rate == pytest.approx(intercept + slope * m, rel=1e-9)
    assert phi == pytest.approx(phi_hand, rel=1e-9)
    assert spread == pytest.approx(n[m] * (1 / w.sum() + (m - tbar) ** 2 / s_tt))
    # fewer than MIN_TREND minutes since the origin: a level only
    short = fc.rate(m, origin=m - detectors.GAP - detectors.MIN_TREND + 1)
    lo2 = m - detectors.GAP - detectors.MIN_TREND + 1
    assert short[0] == pytest.approx(x[lo2:hi].sum() / n[lo2:hi].sum(), rel=1e-9)
    # too little history: no forecast; after a restart the window starts at the origin
    assert fc.rate(detectors.GAP + detectors.MIN_BASELINE - 1, origin=0) is None
    assert fc.rate(m, origin=m - detectors.GAP - 5) is None


def test_cusum_dates_a_step_and_stays_quiet_without_one():
    rng = np.random.default_rng(1)
    n = np.full(3000, 60_000.0)
    quiet = rng.binomial(60_000, 0.05, 3000).astype(float)
    alarms, expected = detectors.cusum(quiet, n)
    assert alarms == []
    assert np.nanmean(np.abs(expected[100:] / 0.05 - 1)) < 0.01
    step = quiet.copy()
    step[2000:] = rng.binomial(60_000, 0.045, 1000)
    alarms, _ = detectors.cusum(step, n)
    first = alarms[0]
    assert first.direction == -1 and 1999 <= first.start <= 2001
    assert first.detected <= 2003
    assert first.magnitude == pytest.approx(-0.10, abs=0.03)
    assert len(alarms) == 1          # the new level is learnt, not alarmed on again


def test_mix_term_by_hand():
    # one segment, categories fresh/null: 0 % null before, 30 % after; CTR after 5 % vs 2 %
    nb = np.array([[1000.0, 0.0]])
    na = np.array([[700.0, 300.0]])
    ca = np.array([[35.0, 6.0]])
    cb = np.array([[50.0, 0.0]])
    explained, se, *_ = causes._mix_term(nb, na, ca, cb)
    qbar = 41 / 1000
    hand = (0.7 - 1.0) * (0.05 - qbar) + (0.3 - 0.0) * (0.02 - qbar)
    assert explained == pytest.approx(hand)
    assert explained == pytest.approx(-0.3 * (0.05 - 0.02))
    var = ((-0.3) ** 2 * 0.05 * 0.95 / 700 + 0.3 ** 2 * 0.02 * 0.98 / 300
           + (0.05 - qbar) ** 2 * (0.7 * 0.3 / 1000) + (0.02 - qbar) ** 2 * (0.3 * 0.7 / 1000))
    assert se == pytest.approx(math.sqrt(var))


def test_bins_match_their_edges_and_sql():
    values = np.array([-7.5, -0.2, 0.0, 0.004, 0.5, 3.0, 250.0, 9e5])
    for unit in (1.0, 0.001):
        b = events.bin_index(values, unit)
        lower, upper = events.bin_edges(b, unit)
        assert np.all((lower <= values) & (values <= upper))
    table = pa.table({"timestamp": pa.array([pd.Timestamp("2026-01-01")] * len(values)),
                      "request_id": np.arange(len(values)), "segment": ["a"] * len(values),
                      "clicked": [0] * len(values), "latency_ms": values, "score": values})
    agg = events.aggregate_events(table).to_pandas()
    got = np.sort(agg[agg.signal == "latency"].bin.repeat(agg[agg.signal == "latency"].n).to_numpy())
    np.testing.assert_array_equal(got, np.sort(events.bin_index(values, 1.0)))


def test_stale_threshold_is_the_reference_p99_age_bin():
    df = generate(seed=5, hours=0.5, rate=100)
    cube = minutes.cube_from_aggregates(events.aggregate_events(pa.Table.from_pandas(df)), ["alpha", "beta"])
    ref = minutes.reference_from(cube)
    ages = df["alpha_age_s"].dropna().to_numpy()
    assert ref.stale_bin["alpha"] == events.bin_index([np.quantile(ages, 0.99, method="inverted_cdf")], 1.0)[0]
    n, _, names = minutes.categories(cube, ref, "alpha")
    assert names == ["fresh", "stale", "null"]
    assert n[:, :, 2].sum() == df["alpha"].isna().sum()


# -- detectors on generated streams --------------------------------------------------------
def _alerts(df, baseline=None):
    cube = minutes.cube_from_aggregates(events.aggregate_events(pa.Table.from_pandas(df)),
                                        ["alpha", "beta"])
    base = None if baseline is None else minutes.cube_from_aggregates(
        events.aggregate_events(pa.Table.from_pandas(baseline)), ["alpha", "beta"])
    return detect_alerts(cube, base)[0]


@pytest.mark.parametrize("seed", [11, 12])
def test_fault_free_streams_with_a_daily_rhythm_raise_no_alert(seed):
    assert _alerts(generate(seed=seed, hours=2.5, rate=300)) == []


@pytest.mark.parametrize("fault,cause", [("alpha_null", "alpha"), ("both_null", "alpha"),
                                         ("alpha_stale", "alpha"), ("latency", "latency"),
                                         ("mix", "segment_mix")])
def test_a_fault_is_found_dated_and_its_cause_ranked_first(fault, cause):
    alerts = _alerts(generate(seed=21, hours=1.5, rate=300, fault=fault, at_minute=70))
    ctr = [a for a in alerts if a.signal == CTR]
    assert len(ctr) == 1
    alert = ctr[0]
    fault_time = pd.Timestamp("2026-03-01 07:10")
    assert abs(pd.Timestamp(alert.start) - fault_time) <= pd.Timedelta(minutes=3)
    assert pd.Timestamp(alert.detected_at) - fault_time <= pd.Timedelta(minutes=15)
    assert alert.direction == "down" and alert.magnitude < -0.05
    assert alert.ranked_causes[0] == cause
    assert "beta" not in alert.ranked_causes           # nothing depends on it
    upstream = {a.signal for a in alerts if a.signal != CTR}
    assert cause in upstream


def test_a_fault_on_an_unused_feature_is_seen_but_not_blamed():
    alerts = _alerts(generate(seed=22, hours=1.5, rate=300, fault="beta_null"))
    assert [a.signal for a in alerts] == ["beta"]


# -- the command -------------------------------------------------------------------------
def _run(*args, subprocess_run=False):
    return run_command("detect", *args, subprocess_run=subprocess_run)


def test_detect_command_json_on_a_csv_with_a_baseline(tmp_path):
    generate(seed=31, hours=1.5, rate=200, fault="alpha_null", at_minute=50).to_csv(
        tmp_path / "events.csv", index=False)
    generate(seed=32, hours=1, rate=200).to_parquet(tmp_path / "baseline.parquet")
    out = _run("--events", str(tmp_path / "events.csv"),
               "--baseline", str(tmp_path / "baseline.parquet"), "--json",
               subprocess_run=True)   # the real entry point, once
    assert out.returncode == 0, out.stderr
    alerts = json.loads(out.stdout)
    assert [a["signal"] for a in alerts] == ["ctr"]
    a = alerts[0]
    assert set(a) >= {"detected_at", "start", "signal", "magnitude", "ranked_causes"}
    assert a["ranked_causes"][0] == "alpha"
    assert pd.Timestamp(a["start"]) <= pd.Timestamp(a["detected_at"])
    assert a["magnitude"] < 0
    text = _run("--events", str(tmp_path / "events.csv"), "--all")
    assert "1. alpha (explains)" in text.stdout and "alpha: up" in text.stdout


def test_detect_command_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,segment,clicked\n2026-01-01 00:00:00,a,1\n")
    out = _run("--events", str(bad))
    assert out.returncode == 2
    assert "missing column(s) request_id, latency_ms, score" in out.stderr
    wrong = tmp_path / "wrong.csv"
    df = generate(seed=1, hours=0.1, rate=10)
    df.loc[5, "clicked"] = 3
    df.to_csv(wrong, index=False)
    out = _run("--events", str(wrong))
    assert out.returncode == 2 and "column 'clicked' row 6: expected 0 or 1" in out.stderr
    short = tmp_path / "short.csv"
    generate(seed=1, hours=0.1, rate=10).to_csv(short, index=False)
    out = _run("--events", str(short))
    assert out.returncode == 2 and "at least 16 are needed without a baseline" in out.stderr
    png = tmp_path / "x.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = _run("--events", str(png))
    assert out.returncode == 2 and "PNG image" in out.stderr


def test_validate_names_a_text_in_a_number_column():
    con = __import__("duckdb").connect()
    df = generate(seed=2, hours=0.05, rate=10).astype({"latency_ms": str})
    df.loc[3, "latency_ms"] = "fast"
    con.register("ev", df)
    with pytest.raises(InputError, match="column 'latency_ms' row 4: not a number"):
        events.validate(con, "ev")


def test_a_text_feature_is_a_value_and_only_blank_or_missing_is_null():
    df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=6, freq="s"),
                       "request_id": range(6), "segment": "a", "clicked": [0, 1, 0, 1, 0, 0],
                       "latency_ms": 1.0, "score": 0.5,
                       "country": ["x", "", None, "y", "nan", "z"], "country_age_s": 1.0,
                       "depth": [1.0, np.nan, None, 2, 3, 4], "depth_age_s": 1.0})
    agg = events.aggregate_events(pa.Table.from_pandas(df)).to_pandas()
    nulls = agg[agg.bin == events.NULL_BIN].set_index("signal")
    assert nulls.loc["country", "n"] == 3 and nulls.loc["country", "clicks"] == 1
    assert nulls.loc["depth", "n"] == 2


def test_minutes_hours_and_days_come_from_the_same_pieces():
    df = generate(seed=8, hours=2.5, rate=20, start="2026-03-01 22:30")
    table = pa.Table.from_pandas(df)
    half = len(df) // 3
    parts = [events.aggregate_events(table.slice(0, half)),
             events.aggregate_events(table.slice(half))]
    whole = events.aggregate_events(table)
    assert events.merge(parts).equals(whole)
    hourly = events.rollup(events.merge(parts), "1 hour").to_pandas()
    by_hand = df.assign(hour=df.timestamp.dt.floor("h"))
    got = hourly[hourly.signal == "latency"].groupby("minute")[["n", "clicks"]].sum()
    want = by_hand.groupby("hour").agg(n=("clicked", "size"),
                                       clicks=("clicked", "sum"))
    np.testing.assert_array_equal(got.index.to_numpy(), want.index.to_numpy())
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    daily = events.rollup(whole, "1 day").to_pandas()
    assert sorted(daily.minute.dt.day.unique()) == [1, 2]
    assert daily[daily.signal == "score"].n.sum() == len(df)
