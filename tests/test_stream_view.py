"""The Stream monitoring page's tables and figures on a generated stream (a null fault
on ``user_emb`` from minute 40): the parts add up, the band is the baseline ± 2
binomial standard errors at every minute, alerts sit at their minutes, and the CTR of
affected against unaffected requests is the hand count from the events."""
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analysis.streaming import events as ev
from analysis.streaming import figures, view
from analysis.streaming.detect import CTR, WARMUP
from stream_helpers import START, NullFault, generate_events, make_stream, write_part

FAULT = NullFault("user_emb", at=40, share=0.6)


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    folder, events = make_stream(tmp_path_factory.mktemp("store"), minutes=70, fault=FAULT)
    frame = events.to_pandas()
    frame["clicked"] = frame["clicked"].astype(np.int64)     # int8 in the events: no overflow
    return folder, frame, view.open_stream(folder)


def _minute(events: pd.DataFrame) -> pd.Series:
    return events["timestamp"].dt.floor("min")


def test_the_stream_is_its_parts_summed(stream):
    folder, events, sv = stream
    assert view.list_streams(folder.parent.parent) == ["shop"]
    parts = view.load_stream(folder).to_pandas()
    whole = ev.aggregate_events(pa.Table.from_pandas(events, preserve_index=False)).to_pandas()
    keys = ["minute", "segment", "signal", "bin"]
    pd.testing.assert_frame_equal(parts.sort_values(keys).reset_index(drop=True),
                                  whole.sort_values(keys).reset_index(drop=True))
    assert sv.status["events"] == len(events)
    assert sv.status["last_event"] == events["timestamp"].max()
    per_minute = events.groupby(_minute(events)).size()
    assert sv.status["events_per_s"] == pytest.approx(per_minute.iloc[-6:-1].sum() / 300)
    cards = dict((label.split(" (")[0], value) for label, value, _ in view.status_cards(sv))
    assert cards["Events"] == f"{len(events):,}"
    assert cards["Last event"] == f"{events['timestamp'].max():%H:%M:%S}"


def test_the_listing_changes_with_a_new_part(tmp_path):
    folder, _ = make_stream(tmp_path, minutes=20, minutes_per_part=10)
    before = view.part_listing(folder)
    assert len([p for p in before if p[0].startswith("aggregates")]) == 2
    write_part(folder, generate_events(1, first_minute=20), 2)
    after = view.part_listing(folder)
    assert after != before and len(after) == len(before) + 2
    (folder / "aggregates" / ".part-000009.parquet.tmp").write_bytes(b"half")
    assert view.part_listing(folder) == after            # a writer's temporary file
    assert view.load_stream(folder).num_rows > 0


def test_ctr_and_its_band_minute_by_minute(stream):
    _, events, sv = stream
    frame = view.ctr_frame(sv)
    hand = events.groupby(_minute(events)).agg(n=("clicked", "size"), clicks=("clicked", "sum"))
    assert list(frame["minute"]) == list(hand.index)
    assert list(frame["requests"]) == list(hand["n"])
    assert np.allclose(frame["ctr_pct"], 100 * hand["clicks"] / hand["n"])
    p = sv.series[(CTR, "")]["expected"]
    se = np.sqrt(p * (1 - p) / hand["n"].to_numpy())
    assert np.allclose(frame["expected_pct"], 100 * p, equal_nan=True)
    assert np.allclose(frame["low_pct"], 100 * (p - 2 * se), equal_nan=True)
    assert np.allclose(frame["high_pct"], 100 * (p + 2 * se), equal_nan=True)
    # no baseline during the warm-up, one as soon as the forecast has its minutes
    assert frame["expected_pct"].iloc[:WARMUP].isna().all()
    assert frame["expected_pct"].iloc[25:40].notna().all()


def test_the_ctr_alert_is_placed_at_its_minutes(stream):
    _, _, sv = stream
    alert = view.latest_ctr_alert(sv)
    assert alert is not None and alert.direction == "down"
    fault = START + pd.Timedelta(minutes=FAULT.at)
    start, detected = pd.Timestamp(alert.start), pd.Timestamp(alert.detected_at)
    assert fault - pd.Timedelta(minutes=1) <= start <= fault + pd.Timedelta(minutes=2)
    assert start < detected <= start + pd.Timedelta(minutes=15)
    alerts = view.alert_frame(sv)
    fig = figures.timeline_figure(view.ctr_frame(sv), view.upstream_frame(sv), alerts,
                                  view.signal_rows(sv), view.time_window(sv, "all"))
    # shaded from the change's start to its detection, on the CTR row
    shaded = [(pd.Timestamp(s.x0), pd.Timestamp(s.x1)) for s in fig.layout.shapes
              if s.type == "rect" and s.yref == "y domain"]
    assert (start, detected) in shaded
    # the dashed start line runs through every row
    lines = [s for s in fig.layout.shapes if s.type == "line" and pd.Timestamp(s.x0) == start]
    assert len(lines) == 1 + len(view.signal_rows(sv))
    # the marker sits on the minute that raised it, at that minute's CTR
    marks = [t for t in fig.data if t.mode == "markers" and t.text is not None
             and any(str(x).startswith("CTR") for x in t.text)]
    raised = detected - pd.Timedelta(minutes=1)
    assert pd.Timestamp(marks[0].x[0]) == raised
    ctr = view.ctr_frame(sv).set_index("minute")["ctr_pct"]
    assert marks[0].y[0] == pytest.approx(ctr[raised])
    # the band: its polygon is the frame's band
    band = next(t for t in fig.data if t.name == "baseline ± 2 standard errors")
    frame = view.ctr_frame(sv)
    xs, ys = figures.band_polygons(frame["minute"], frame["low_pct"], frame["high_pct"])
    assert list(band.y) == ys
    assert pd.Timestamp(band.x[0]) == frame.loc[frame["expected_pct"].notna(), "minute"].iloc[0]
    # units and titles
    assert fig.layout.yaxis.title.text == "CTR (%)"
    assert "UTC" in fig.layout[f"xaxis{1 + len(view.signal_rows(sv))}"].title.text
    assert fig.layout.title.text and fig.layout.legend.yref == "container"


def test_upstream_alerts_on_their_own_row(stream):
    _, events, sv = stream
    own = view.signal_alerts(sv, "user_emb")
    assert len(own) >= 1 and (own["direction"] == "up").all()
    assert own["text"].iloc[0].startswith("user_emb rose ") and " points (" in own["text"].iloc[0]
    up = view.upstream_frame(sv)
    null = up[(up["signal"] == "user_emb")].set_index("minute")["share_pct"]
    minute = _minute(events)
    hand = events.assign(m=minute).groupby("m").apply(
        lambda g: 100 * (g["user_emb"].isna() | (ev.bin_index(g["user_emb_age_s"], 1.0)
                                                  > sv.reference.stale_bin["user_emb"])).mean(),
        include_groups=False)
    assert np.allclose(null.to_numpy(), hand.to_numpy())
    rows = view.signal_rows(sv)
    assert [r["signal"] for r in rows] == ["item_pop", "user_emb", "latency", "score",
                                           "segment_mix"]
    assert all("%" in r["axis"] for r in rows)


def _hand_affected_ctr(events: pd.DataFrame, affected: pd.Series, first, every: int):
    """CTR of affected and unaffected requests per block, the segments weighted by
    their share of all the block's requests."""
    block = ((events["timestamp"].dt.floor("min") - first) // pd.Timedelta(minutes=every))
    frame = events.assign(block=block, hit=affected.to_numpy())
    frame = frame[frame["block"] >= 0]
    out = {}
    for b, g in frame.groupby("block"):
        weights = g.groupby("segment").size() / len(g)
        for name, part in (("affected", g[g["hit"]]), ("unaffected", g[~g["hit"]])):
            ctr = part.groupby("segment")["clicked"].mean()
            w = weights[ctr.index]
            out[(first + pd.Timedelta(minutes=every * b), name)] = (
                100 * float((w * ctr).sum() / w.sum()) if len(ctr) else math.nan)
    return out


@pytest.mark.parametrize("signal, every", [("user_emb", 1), ("user_emb", 5), ("latency", 1)])
def test_affected_against_unaffected_ctr_is_the_hand_count(stream, signal, every):
    _, events, sv = stream
    if signal == "latency":
        affected = pd.Series(ev.bin_index(events["latency_ms"], 1.0)
                             > sv.reference.cuts["latency"][-1])
    else:
        affected = (events[signal].isna()
                    | pd.Series(ev.bin_index(events[f"{signal}_age_s"], 1.0)
                                > sv.reference.stale_bin[signal]))
    first = view.range_start(sv, "last hour")
    hand = _hand_affected_ctr(events, affected, first, every)
    shown = view.affected_ctr(sv, signal, first, every)
    assert set(shown["group"]) == {"affected", "unaffected"}
    assert shown["minute"].min() == first
    assert len(shown) == len(hand)
    for _, row in shown.iterrows():
        expected = hand[(row["minute"], row["group"])]
        assert (math.isnan(expected) and math.isnan(row["ctr_pct"])) or \
            row["ctr_pct"] == pytest.approx(expected, rel=1e-12), (row["minute"], row["group"])
    if signal == "user_emb" and every == 1:
        # after the fault the null requests click far less, whatever the segment
        after = shown[shown["minute"] >= START + pd.Timedelta(minutes=FAULT.at)]
        gap = after.pivot(index="minute", columns="group", values="ctr_pct")
        assert (gap["affected"] < gap["unaffected"]).mean() > 0.9


def test_signal_timeline_shares(stream):
    _, events, sv = stream
    tl = view.signal_timeline(sv, "user_emb")
    assert list(tl["category"].cat.categories) == ["fresh", "stale", "null"]
    wide = tl.assign(category=tl["category"].astype(str)).pivot(
        index="minute", columns="category", values="share_pct")
    assert np.allclose(wide.sum(axis=1), 100)
    null = events.groupby(_minute(events))["user_emb"].apply(lambda s: 100 * s.isna().mean())
    assert np.allclose(wide["null"].to_numpy(), null.to_numpy())
    lat = view.signal_timeline(sv, "latency", every=15)
    assert "null" not in list(lat["category"].cat.categories)     # never null here
    assert lat["minute"].nunique() == math.ceil(70 / 15)
    mix = view.signal_timeline(sv, "segment_mix")
    assert set(mix["category"]) == {"new", "returning", "mobile"}


def test_causes_table_carries_the_evidence(stream):
    _, _, sv = stream
    alert = view.latest_ctr_alert(sv)
    table = view.causes_table(alert)
    assert len(table) == len(alert.evidence)
    assert list(table["signal"]) == [e["signal"] for e in alert.evidence]
    ranked = table[table["rank"] != ""]
    assert list(ranked["signal"]) == alert.ranked_causes
    assert list(ranked["rank"]) == [str(i) for i in range(1, len(alert.ranked_causes) + 1)]
    for (_, row), e in zip(table.iterrows(), alert.evidence):
        assert row["explained (points)"] == pytest.approx(100 * e["explained"])
        assert row["share of change (%)"] == pytest.approx(100 * e["share_of_change"])
        assert row["CTR affected (%)"] == pytest.approx(100 * e["ctr_affected"])
        assert row["CTR affected vs unaffected"] == (f"{100 * e['ctr_affected']:.2f} % vs "
                                                     f"{100 * e['ctr_unaffected']:.2f} %")
        assert row["affected share"] == (f"{100 * e['affected_before']:.1f} % → "
                                         f"{100 * e['affected_after']:.1f} %")
        assert row["role"] == view.ROLES[e["role"]]
    summary = view.alert_summary(alert)
    assert summary.startswith("**CTR fell")
    assert view.find_alert(sv, view.alert_choices(sv)[0][0]) is alert
    assert view.find_alert(sv, view.LATEST) is alert


def test_time_range_counts_back_from_the_newest_minute(stream):
    _, events, sv = stream
    last = events["timestamp"].max().floor("min")
    assert view.range_start(sv, "last hour") == last - pd.Timedelta(minutes=59)
    assert view.range_start(sv, "last 6 h") == START
    assert view.time_window(sv, "all") == (START, last + pd.Timedelta(minutes=1))
    shown = view.ctr_frame(sv, view.range_start(sv, "last hour"))
    assert len(shown) == 60
    assert len(view.alert_frame(sv, last)) == 0


def test_a_short_stream_draws_without_alerts(tmp_path):
    folder, events = make_stream(tmp_path, minutes=8, minutes_per_part=4)
    sv = view.open_stream(folder)
    assert sv.alerts == [] and "more than 15 minutes" in sv.notes[0]
    assert view.ctr_frame(sv)["expected_pct"].isna().all()
    window = view.time_window(sv, "last hour")
    fig = figures.timeline_figure(view.ctr_frame(sv), view.upstream_frame(sv),
                                  view.alert_frame(sv), view.signal_rows(sv), window)
    assert fig.layout.title.text
    for signal, _ in view.signal_choices(sv):
        fig = figures.drilldown_figure(
            signal, view.signal_timeline(sv, signal), view.affected_ctr(sv, signal),
            view.signal_alerts(sv, signal), view.signal_alerts(sv, "ctr"), window,
            view.affected_description(signal))
        assert fig.layout.yaxis.title.text == "share of requests (%)"
        assert fig.layout.yaxis2.title.text == "CTR (%)"


def test_no_stream_and_an_empty_one(tmp_path):
    assert view.list_streams(tmp_path) == []
    (tmp_path / "streams" / "new" / "aggregates").mkdir(parents=True)
    assert view.list_streams(tmp_path) == ["new"]
    sv = view.open_stream(tmp_path / "streams" / "new")
    assert sv.cube is None and sv.status["events"] == 0
    assert dict((c[0], c[1]) for c in view.status_cards(sv))["Events"] == "0"
