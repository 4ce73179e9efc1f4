"""Every page in a real browser: it renders its content and shows no error element."""
import pytest
from playwright.sync_api import Page, expect

from binary_files import png_bytes

pytestmark = pytest.mark.browser

PAGES = [
    ("", "Drift Investigator", "Where to look", "landing"),
    ("Overview", "Overview", "Per window", "overview"),
    ("Feature_drift", "Feature drift", "Drifted features", "feature_drift"),
    ("Heatmap", "Drift heatmap", "Drill-down", "heatmap"),
    ("Segments", "Segments", "Compare two cells", "segments"),
    ("Data_vs_concept", "Data vs concept", "Evidence for one cell", "data_vs_concept"),
]
TIMEOUT = 90_000


def _no_errors(page: Page) -> None:
    assert page.get_by_test_id("stException").count() == 0
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.all_inner_texts()


@pytest.mark.parametrize("path,title,marker,shot", PAGES)
def test_page_opens_without_errors(page: Page, server_url, screenshot_dir, path, title, marker,
                                   shot):
    page.goto(f"{server_url}/{path}")
    expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text(marker).first).to_be_visible(timeout=TIMEOUT)
    # wait for the script run to finish (no "Running..." status) before judging
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT)
    if path:
        expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=TIMEOUT)
    _no_errors(page)
    out = screenshot_dir / f"{shot}.png"
    page.screenshot(path=str(out))
    assert out.stat().st_size > 10_000


def test_overview_chart_shows_drift_from_june(page: Page, server_url):
    page.goto(f"{server_url}/Overview")
    expect(page.get_by_text("Per window").first).to_be_visible(timeout=TIMEOUT)
    metric = page.get_by_test_id("stMetric").filter(has_text="Drifted features, latest month")
    expect(metric).to_contain_text("6 of 11", timeout=TIMEOUT)
    _no_errors(page)


def test_navigation_keeps_the_sidebar_filter(page: Page, server_url):
    page.goto(f"{server_url}/Feature_drift")
    expect(page.get_by_test_id("stMetric").first).to_contain_text("6 of 11", timeout=TIMEOUT)
    page.get_by_role("link", name="Overview").first.click()
    expect(page.get_by_role("heading", name="Overview").first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("Per window").first).to_be_visible(timeout=TIMEOUT)
    _no_errors(page)


def test_clicking_a_heatmap_cell_drills_into_it(page: Page, server_url, screenshot_dir):
    page.goto(f"{server_url}/Heatmap")
    expect(page.get_by_text("Drill-down").first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT)
    window_box = page.get_by_role("combobox", name="Month starting")
    # default: the latest window (the drill-down's widgets can follow the status widget
    # by a few seconds on a busy machine)
    expect(window_box).to_have_value("2025-12-01", timeout=TIMEOUT)
    # the first marker is the top feature (largest PSI) in the first month, April
    point = page.locator(".js-plotly-plot .scatterlayer .trace .points path").first
    expect(point).to_be_visible(timeout=TIMEOUT)
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(window_box).to_have_value("2025-04-01", timeout=TIMEOUT)
    band = page.get_by_test_id("stMetric").filter(has_text="Band")
    expect(band).to_contain_text("stable", timeout=TIMEOUT)
    expect(page.get_by_text("reference vs month of 2025-04-01").first).to_be_visible(
        timeout=TIMEOUT)
    _no_errors(page)
    page.screenshot(path=str(screenshot_dir / "heatmap_drilldown.png"))


@pytest.mark.parametrize("fmt,magic", [("PNG", b"\x89PNG\r\n\x1a\n"), ("HTML", b"<!doctype html>")])
def test_chart_download(page: Page, server_url, tmp_path, fmt, magic):
    page.goto(f"{server_url}/Overview")
    expect(page.get_by_text("Per window").first).to_be_visible(timeout=TIMEOUT)
    button = page.get_by_role("button", name=f"⬇ {fmt}").first
    expect(button).to_be_visible(timeout=TIMEOUT)
    with page.expect_download(timeout=TIMEOUT) as info:
        button.click()
    download = info.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    data = target.read_bytes()
    assert data.startswith(magic), data[:40]
    assert target.name.startswith("overview-rental_pricing-month.")
    assert len(data) > 20_000
    _no_errors(page)


def test_upload_commit_then_see_it(page: Page, small_store_url, tmp_path, screenshot_dir):
    url, store, frame = small_store_url
    csv_path = tmp_path / "april.csv"
    frame(900, "2025-04-01", shift=1.0).to_csv(csv_path, index=False)
    page.goto(f"{url}/Upload")
    expect(page.get_by_role("heading", name="Upload a snapshot")).to_be_visible(timeout=TIMEOUT)
    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(csv_path)
    expect(page.get_by_role("heading", name="Validation report")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("No errors").first).to_be_visible(timeout=TIMEOUT)
    page.screenshot(path=str(screenshot_dir / "upload_report.png"))
    page.get_by_role("button", name="Commit to shop (production)").click()
    expect(page.get_by_text("Stored 900 rows").first).to_be_visible(timeout=TIMEOUT)
    assert [s.source for s in store.snapshots("shop", "production")] == ["april.csv"]
    page.goto(f"{url}/Feature_drift")
    metric = page.get_by_test_id("stMetric").filter(has_text="Drifted features")
    expect(metric).to_contain_text("1 of 2", timeout=TIMEOUT)
    _no_errors(page)


def test_postmortem_bundle_download(page: Page, server_url, tmp_path):
    import zipfile
    page.goto(f"{server_url}/Overview")
    expect(page.get_by_text("Per window").first).to_be_visible(timeout=TIMEOUT)
    with page.expect_download(timeout=TIMEOUT) as info:
        page.get_by_role("button", name="⬇ Postmortem bundle").click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    zf = zipfile.ZipFile(target)
    names = zf.namelist()
    assert "report.html" in names
    assert any(n.startswith("charts/") and n.endswith(".png") for n in names)
    assert any(n.startswith("data/") and n.endswith(".csv") for n in names)
    assert "Drift postmortem: rental_pricing" in zf.read("report.html").decode()


# -- issue #10, item 7: binary files, one commit, readable errors -----------------------
def _upload(page: Page, url: str, path) -> None:
    page.goto(f"{url}/Upload")
    expect(page.get_by_role("heading", name="Upload a snapshot")).to_be_visible(timeout=TIMEOUT)
    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(path)
    expect(page.get_by_role("heading", name="Validation report")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT)


def test_upload_png_named_csv_is_a_red_error_without_preview(page: Page, small_store_url,
                                                             tmp_path, screenshot_dir):
    url, store, _ = small_store_url
    image = tmp_path / "chart.csv"
    image.write_bytes(png_bytes())
    _upload(page, url, image)
    message = "not a CSV/Parquet file: it looks like a PNG image"
    expect(page.locator('[data-testid="stAlertContentError"]').first).to_contain_text(
        message, timeout=TIMEOUT)
    expect(page.get_by_test_id("stExpanderIconError")).to_have_count(1)   # red status
    expect(page.get_by_test_id("stExpanderIconCheck")).to_have_count(0)   # no green ✓
    expect(page.get_by_text(f"Could not read chart.csv: {message}")).to_be_visible()
    expect(page.get_by_text("rows ×")).to_have_count(0)                   # no preview
    expect(page.get_by_role("button", name="Commit to shop (production)")).to_have_count(0)
    assert store.snapshots("shop", "production") == []
    page.screenshot(path=str(screenshot_dir / "upload_binary.png"))


def test_upload_commit_leaves_the_success_and_no_commit_button(page: Page, small_store_url,
                                                               tmp_path):
    url, store, frame = small_store_url
    csv_path = tmp_path / "may.csv"
    frame(700, "2025-05-01", shift=0.5).to_csv(csv_path, index=False)
    _upload(page, url, csv_path)
    commit = page.get_by_role("button", name="Commit to shop (production)")
    commit.click()
    expect(page.get_by_text("Stored 700 rows of may.csv").first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT)
    expect(commit).to_have_count(0)
    _no_errors(page)
    assert [s.source for s in store.snapshots("shop", "production")] == ["may.csv"]


def test_upload_errors_are_readable_at_1280_px(page: Page, small_store_url, tmp_path):
    url, _, frame = small_store_url
    wide = frame(60, "2025-05-01").drop(columns=["group", "c"])
    for i in range(8):
        wide[f"an_extra_column_with_a_rather_long_name_{i}"] = i
    csv_path = tmp_path / "wide.csv"
    wide.to_csv(csv_path, index=False)
    _upload(page, url, csv_path)
    # the report's grid fits the page: no column pushed out of sight to the right
    report = page.get_by_test_id("stDataFrame").filter(has_text="missing_columns")
    expect(report).to_have_count(1, timeout=TIMEOUT)
    scroll, width = report.locator(".dvn-scroller").evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert scroll <= width + 1, (scroll, width)
    alert = page.locator('[data-testid="stAlertContentError"]').first
    expect(alert).to_contain_text("required column(s) missing: group, c", timeout=TIMEOUT)
    box = alert.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1280   # inside the window
    cut = alert.evaluate("e => [...e.querySelectorAll('*')].some("
                         "n => n.scrollWidth > n.clientWidth + 1)")
    assert not cut   # nothing in it scrolls or is clipped sideways


# -- issue #10: tables at 1280 px, selections in titles, a small upload --------------------
def _settle(page: Page, marker: str) -> None:
    expect(page.get_by_text(marker).first).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT)


def _table_size(page: Page, index: int = 0) -> dict:
    """The scroll and client sizes of a dataframe's grid: wider or taller content than
    the box means a column cut off or rows behind an inner scroll."""
    table = page.get_by_test_id("stDataFrame").nth(index)
    table.scroll_into_view_if_needed()
    expect(table.locator(".dvn-scroller")).to_have_count(1, timeout=TIMEOUT)
    return table.locator(".dvn-scroller").evaluate(
        "s => ({sw: s.scrollWidth, cw: s.clientWidth, sh: s.scrollHeight, ch: s.clientHeight})")


@pytest.mark.parametrize("path,marker", [("Overview", "Per window"),
                                         ("Feature_drift", "Feature to inspect")])
def test_tables_show_every_column_and_row_at_1280(page: Page, server_url, path, marker):
    page.goto(f"{server_url}/{path}")
    _settle(page, marker)
    size = _table_size(page)
    assert size["sw"] <= size["cw"] + 1, size    # no column cut off on the right
    assert size["sh"] <= size["ch"] + 1, size    # every row shown, no inner scroll
    _no_errors(page)


def test_titles_and_exports_name_the_selected_group(page: Page, server_url, tmp_path):
    page.goto(f"{server_url}/Heatmap")
    _settle(page, "Drill-down")
    for group in ("families", "professionals", "relocating"):
        page.get_by_role("button", name=f"Remove {group}").first.click()
        expect(page.get_by_role("button", name=f"Remove {group}")).to_have_count(0,
                                                                              timeout=TIMEOUT)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT)
    title = page.locator(".js-plotly-plot .gtitle").first
    expect(title).to_have_text("PSI by feature and month · user_group: students",
                               timeout=TIMEOUT)
    with page.expect_download(timeout=TIMEOUT) as info:
        page.get_by_role("button", name="⬇ PNG").first.click()
    assert info.value.suggested_filename == (
        "heatmap-rental_pricing-psi-month-user_group-students.png")
    page.get_by_role("link", name="Segments").first.click()
    _settle(page, "Compare two cells")
    titles = page.locator(".js-plotly-plot .gtitle")
    expect(titles.first).to_contain_text("· user_group: students", timeout=TIMEOUT)
    assert all(t.endswith("· user_group: students") for t in titles.all_text_contents()[:2])
    _no_errors(page)


def test_small_upload_heatmap_shows_counts_and_greys_small_cells(page: Page, diabetes_url,
                                                                 screenshot_dir):
    page.goto(f"{diabetes_url}/Heatmap")
    _settle(page, "Drill-down")
    expect(page.get_by_text("not judged (grey)").first).to_be_visible(timeout=TIMEOUT)
    texts = page.locator(".js-plotly-plot .heatmaplayer text")
    expect(texts).to_have_count(40, timeout=TIMEOUT)     # 10 features x 4 months
    counts = texts.all_text_contents()
    assert "1" in counts and all(c.isdigit() for c in counts)   # production rows
    expect(page.locator(".js-plotly-plot .gtitle").first).to_have_text(
        "PSI by feature and month · all groups")
    _no_errors(page)
    page.screenshot(path=str(screenshot_dir / "heatmap_small_upload.png"), full_page=True)


def test_small_upload_overview_names_its_tests_and_skips_tiny_windows(page: Page, diabetes_url):
    page.goto(f"{diabetes_url}/Overview")
    _settle(page, "Per window")
    expect(page.get_by_text("Kolmogorov-Smirnov: drift when p < 0.05").first).to_be_visible()
    assert page.get_by_text("Wasserstein").count() == 0
    size = _table_size(page)
    assert size["sw"] <= size["cw"] + 1, size
    metric = page.get_by_test_id("stMetric").filter(has_text="Drifted features, latest month")
    expect(metric).to_contain_text("2 of 10")
    page.get_by_test_id("stButtonGroup").get_by_text("day", exact=True).click()
    metric = page.get_by_test_id("stMetric").filter(has_text="Drifted features, latest day")
    expect(metric).to_contain_text("not judged", timeout=TIMEOUT)
    expect(page.get_by_text("No test ran.").first).to_be_visible(timeout=TIMEOUT)
    _no_errors(page)
