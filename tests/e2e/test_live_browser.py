"""The Live monitoring page in a real browser while the model service runs and traffic
arrives: the charts draw, no error shows, and the page refreshes itself with the rows
the service logs. Every process started here is stopped here; traffic goes to loopback,
bounded."""
import re
import time

import pytest
from playwright.sync_api import Page, expect

from analysis.serving import traffic
from serving_helpers import start_service, stop

pytestmark = pytest.mark.browser
TIMEOUT = 60_000


@pytest.fixture()
def live_urls(tmp_path):
    from conftest import _serve, _stop
    store_root = tmp_path / "store"
    service, api = start_service(store_root)
    try:
        traffic.run(api, rate=100, duration=2.0, feedback_share=0.5, feedback_delay=0.2)
        dashboard, url = _serve(store_root)
    except BaseException:
        stop(service)
        raise
    yield url, api
    _stop(dashboard, store_root)
    stop(service)


def _rows_shown(page: Page) -> int:
    card = page.get_by_test_id("stMetric").filter(has_text="Production rows")
    return int(re.sub(r"[^0-9]", "", card.get_by_test_id("stMetricValue").inner_text()))


def test_live_page_follows_a_running_service(page: Page, live_urls, screenshot_dir):
    url, api = live_urls
    page.goto(f"{url}/Live_monitoring")
    expect(page.get_by_role("heading", name="Live monitoring").first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("Per window").first).to_be_visible(timeout=TIMEOUT)
    expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=TIMEOUT)
    first = _rows_shown(page)
    assert first >= 150
    # more traffic, with a shift: the page shows it without a reload
    traffic.run(api, rate=100, duration=2.0, shift="petal-scale")
    deadline = time.monotonic() + TIMEOUT / 1000
    while _rows_shown(page) < first + 200 and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert _rows_shown(page) == first + 200     # every row sent, the page refreshed itself
    assert page.get_by_test_id("stException").count() == 0
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.all_inner_texts()
    page.get_by_test_id("stMetric").first.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "live_monitoring.png"))
