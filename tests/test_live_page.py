"""The Live monitoring page in AppTest on a small iris-api store with a shift: no
error, the numbers are the live report's, the controls work, and an empty production
slice tells what to run."""
from analysis.monitoring.live import LiveMonitor
from page_helpers import clear_caches, open_page, use_store  # noqa: F401 (autouse fixture)
from serving_helpers import iris_store

PAGE = "pages/7_Live_monitoring.py"





def test_live_page_shows_the_live_report(tmp_path, monkeypatch):
    store, _ = iris_store(tmp_path, minutes=5, rows=150, shift_from=3, label_share=0.4)
    use_store(store.root, monkeypatch)
    at = open_page(PAGE)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    report = LiveMonitor(store, "iris-api").report("minute", 30)
    cards = {m.label: m.value for m in at.metric}
    assert cards["Production rows"] == "750"
    assert cards["Estimated accuracy"] == f"{report.windows['estimated_accuracy'].iloc[-1]:.3f}"
    assert cards["Realized accuracy"] == f"{report.windows['realized_accuracy'].iloc[-1]:.3f}"
    table = at.dataframe[0].value
    assert list(table["rows"]) == [150] * 5
    assert "petal" in table["drifted features"].iloc[0]            # newest window, shifted
    assert table["drifted features"].iloc[-1] == "none"            # the first, before it
    titles = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    for part in ("Accuracy per window", "Input drift per feature", "Predicted classes",
                 "Multivariate drift"):
        assert part in titles
    assert any("no concept drift" in e.markdown[0].value for e in at.expander
               if e.markdown)
    # hourly windows: everything in one window
    at.segmented_control(key="live.unit").set_value("hour").run()
    assert not at.exception
    assert list(at.dataframe[0].value["rows"]) == [750]


def test_live_page_without_production_rows_says_what_to_run(tmp_path, monkeypatch):
    store, _ = iris_store(tmp_path, minutes=0)
    use_store(store.root, monkeypatch)
    at = open_page(PAGE)
    assert not at.exception, at.exception
    assert any("python -m analysis serve" in i.value for i in at.info)
    assert {m.label: m.value for m in at.metric}["Production rows"] == "0"


def test_live_page_works_for_any_dataset_a_regression_upload(tmp_path, monkeypatch):
    from small_upload import diabetes_store
    store = diabetes_store(tmp_path, 1, dataset="diabetes")
    use_store(store.root, monkeypatch)
    at = open_page(PAGE)
    at.segmented_control(key="live.unit").set_value("day").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    cards = {m.label: m.value for m in at.metric}
    assert cards["Production rows"] == "200" and "Estimated accuracy" not in cards
    assert "Realized MAE" in cards
    table = at.dataframe[0].value
    assert "realized error" in table.columns and table["rows"].sum() <= 200
