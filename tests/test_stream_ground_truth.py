"""Ground truth of the e-commerce scenario: each injected fault, at 1,000 requests/s
on the simulated clock, is detected within minutes, dated to its minute and traced to
its own signal; a fault-free control raises nothing (CTR or upstream)."""
from datetime import datetime, timedelta

import pytest

from analysis.scenarios import ecommerce
from analysis.streaming import events, minutes
from analysis.streaming.detect import CTR, detect_alerts

AT = datetime(2026, 11, 2, 19, 7)          # the evening peak, a minute not on the hour
BEFORE, AFTER = timedelta(minutes=32), timedelta(minutes=6)


def _alerts(faults, start, end, seed=3):
    sim = ecommerce.EcommerceSimulator(seed=seed, start=start, faults=faults)
    parts, t = [], start
    while t < end:
        parts.append(events.aggregate_events(sim.events(t, min(t + timedelta(minutes=20), end))))
        t += timedelta(minutes=20)
    cube = minutes.cube_from_aggregates(events.merge(parts), list(ecommerce.FEATURES))
    return detect_alerts(cube)[0]


@pytest.mark.parametrize("specs,cause", [
    (["null:user_affinity:0.25"], "user_affinity"),
    (["stale:item_popularity:0.45"], "item_popularity"),
    (["latency:0.35"], "latency"),
    (["score:0.14"], "score"),
    (["segment_mix:new=0.6"], "segment_mix"),
    (["null:recent_clicks:0.5", "null:weather_index:0.6"], "recent_clicks"),
])
def test_each_fault_is_found_and_traced_to_its_signal(specs, cause):
    faults = [ecommerce.parse_fault(s, AT) for s in specs]
    expected = ecommerce.ground_truth(faults[:1], n=100_000)["faults"][0]
    assert expected["expected_relative_ctr_change"] < -0.05     # the mechanism lowers CTR
    alerts = _alerts(faults, AT - BEFORE, AT + AFTER)
    ctr = [a for a in alerts if a.signal == CTR]
    assert len(ctr) == 1
    alert = ctr[0]
    assert alert.start == AT.isoformat()
    assert datetime.fromisoformat(alert.detected_at) - AT <= timedelta(minutes=3)
    assert alert.magnitude == pytest.approx(expected["expected_relative_ctr_change"], abs=0.04)
    assert alert.ranked_causes[0] == cause
    assert "weather_index" not in alert.ranked_causes
    # the upstream alerts name the faulty signals, and no other
    assert {a.signal for a in alerts if a.signal != CTR} <= {cause, "weather_index", "score"}


def test_fault_free_control_raises_nothing():
    start = datetime(2026, 11, 2, 15, 0)       # traffic and CTR rising towards the evening
    assert _alerts([], start, start + timedelta(hours=2), seed=4) == []
