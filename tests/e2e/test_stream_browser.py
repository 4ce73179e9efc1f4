"""The Stream monitoring page in a real browser while a stream folder is being written
(a background thread appends a minute of the e-commerce simulator's events every second,
with user_affinity going null from minute 40): the charts draw, no error shows, the
event count grows without a reload and the CTR alert appears. The thread and the
dashboard started here are stopped here."""
import re
import time

import pytest
from playwright.sync_api import Page, expect

from stream_helpers import StreamWriter, make_stream, simulated_events

pytestmark = pytest.mark.browser
TIMEOUT = 60_000


@pytest.fixture()
def stream_url(tmp_path):
    from conftest import _serve, _stop
    store_root = tmp_path / "store"
    folder, events = make_stream(store_root, "ecommerce", minutes=30, source=simulated_events)
    dashboard, url = _serve(store_root)
    writer = StreamWriter(folder, first_minute=30, every=1.0, source=simulated_events)
    writer.start()
    try:
        yield url, writer, events.num_rows
    finally:
        writer.stop()
        _stop(dashboard, store_root)
    assert not writer.is_alive()
    assert writer.error is None, writer.error


def _events_shown(page: Page) -> int:
    card = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text("Events", exact=True))
    return int(re.sub(r"[^0-9]", "", card.get_by_test_id("stMetricValue").inner_text()))


def test_stream_page_follows_a_stream_being_written(page: Page, stream_url, screenshot_dir):
    url, writer, initial = stream_url
    page.goto(f"{url}/Stream_monitoring")
    heading = page.get_by_role("heading", name="Stream monitoring").first
    expect(heading).to_be_visible(timeout=TIMEOUT)
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=TIMEOUT)
    expect(page.get_by_text("Causes of a CTR alert").first).to_be_visible(timeout=TIMEOUT)
    first = _events_shown(page)
    assert first >= initial
    # the page refreshes itself (every 5 s by default) with the minutes written since
    deadline = time.monotonic() + TIMEOUT / 1000
    while _events_shown(page) <= first and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    grown = _events_shown(page)
    assert grown > first, "the event count did not grow without a reload"
    assert writer.written > 0
    # the fault at minute 40 is written meanwhile: wait for its CTR alert to show
    deadline = time.monotonic() + TIMEOUT / 1000
    alerts = page.get_by_test_id("stMetric").filter(has_text="Alerts").get_by_test_id(
        "stMetricValue")
    while alerts.inner_text().startswith("0") and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert not alerts.inner_text().startswith("0"), "no CTR alert after the fault"
    assert page.get_by_test_id("stException").count() == 0
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.all_inner_texts()
    expect(page.locator(".js-plotly-plot")).to_have_count(2)
    page.get_by_test_id("stMetric").first.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "stream_monitoring.png"), full_page=True)
