"""Data vs concept in a real browser on a small upload: the investigation runs in the
background with progress, the page shows the verdict when it arrives, and reopening the
page after visiting another one shows it again without an error."""
import pytest
from playwright.sync_api import Page, expect

from analysis import investigation as inv
from analysis import jobs

pytestmark = pytest.mark.browser
TIMEOUT = 90_000


def _no_errors(page: Page) -> None:
    assert page.get_by_test_id("stException").count() == 0
    assert page.get_by_text("CacheReplayClosureError").count() == 0


def test_small_upload_investigation_in_the_background(page: Page, diabetes_store_url,
                                                      screenshot_dir):
    url, store = diabetes_store_url
    path, _ = inv.investigation_job(store, "diabetes")
    page.goto(f"{url}/Data_vs_concept")
    expect(page.get_by_text("is on its way").first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_role("button", name="Cancel")).to_be_visible(timeout=TIMEOUT)
    # the page refreshes itself when the job is done
    expect(page.get_by_text("Verdict: DATA").first).to_be_visible(timeout=300_000)
    assert path.exists() and not jobs.state(path).running
    expect(page.get_by_text("Evidence for one cell").first).to_be_visible(timeout=TIMEOUT)
    _no_errors(page)
    page.screenshot(path=str(screenshot_dir / "data_vs_concept_small.png"))
    page.get_by_role("link", name="Overview").first.click()
    expect(page.get_by_role("heading", name="Overview").first).to_be_visible(timeout=TIMEOUT)
    page.get_by_role("link", name="Data vs concept").first.click()
    expect(page.get_by_text("Verdict: DATA").first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT)
    _no_errors(page)
