"""AppTest for every page, on the demo store: no exception, and the numbers shown are
the analysis functions' numbers."""
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from analysis.slices import reference_error
from analysis.summary import window_summary

from pathlib import Path
from binary_files import png_bytes

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["app.py", "pages/1_Overview.py", "pages/2_Feature_drift.py", "pages/3_Heatmap.py",
         "pages/4_Segments.py", "pages/5_Upload.py", "pages/6_Data_vs_concept.py"]


@pytest.fixture(autouse=True)
def clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


def _open(page_file: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    if page_file != "app.py":
        at.switch_page(page_file)
        at.run()
    return at


@pytest.mark.parametrize("page_file", PAGES)
def test_page_renders_without_errors(demo_store, page_file):
    at = _open(page_file)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value


def test_landing_page_shows_dataset_and_counts(demo_store, ground_truth):
    at = _open("app.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Reference rows"] == "180,000"
    assert metrics["Production rows (filtered)"] == "540,000"
    assert metrics["Features"] == "11"
    assert any(ground_truth["dataset"] in s.value for s in at.subheader)


def test_overview_shows_analysis_numbers(demo_store, ground_truth):
    at = _open("pages/1_Overview.py")
    summary = window_summary(demo_store, ground_truth["dataset"], "month")
    ref = reference_error(demo_store, ground_truth["dataset"])
    metrics = {m.label: m.value for m in at.metric}
    # the target, rent_eur, is in EUR (issue #10: metric cards carry units)
    assert metrics["Reference MAE"] == f"{ref['mae']:,.2f} EUR"
    assert metrics["Latest month MAE"] == f"{summary.mae.iloc[-1]:,.2f} EUR"
    assert metrics["Drifted features, latest month"] == "6 of 11"
    shown = at.dataframe[0].value
    assert list(shown["drifted features"]) == list(summary["drifted_features"])


def test_feature_drift_page_honours_the_segment_filter(demo_store):
    at = _open("pages/2_Feature_drift.py")
    assert at.metric[0].value == "6 of 11"
    at.multiselect(key="widget.filter.segment.rental_pricing.user_group").set_value(
        ["professionals"]).run()
    assert not at.exception
    assert at.metric[0].value == "0 of 11"  # professionals' inputs never moved
    caption = " ".join(c.value for c in at.sidebar.caption)
    assert "Reference: 54," in caption or "Reference: 53," in caption


def test_feature_drift_page_switching_test_and_binning(demo_store):
    at = _open("pages/2_Feature_drift.py")
    at.selectbox(key="feature.test").set_value("psi").run()
    table = at.dataframe[0].value
    assert set(table["test"]) == {"psi"}
    at.radio(key="feature.binning").set_value("evidently").run()
    assert not at.exception
    assert set(at.dataframe[0].value["test"]) == {"psi"}


def test_filters_survive_a_page_switch(demo_store):
    at = _open("pages/2_Feature_drift.py")
    at.multiselect(key="widget.filter.segment.rental_pricing.user_group").set_value(
        ["families"]).run()
    at.switch_page("pages/1_Overview.py")
    at.run()
    assert at.multiselect(key="widget.filter.segment.rental_pricing.user_group").value == ["families"]
    assert at.metric[3].value.startswith("0 of")


def test_empty_store_explains_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("DRIFT_STORE", str(tmp_path))
    import analysis.store
    monkeypatch.setattr(analysis.store, "DEFAULT_STORE", tmp_path)
    import ui
    monkeypatch.setattr(ui, "DEFAULT_STORE", tmp_path)
    for page_file in [p for p in PAGES if p != "pages/5_Upload.py"]:
        at = _open(page_file)
        assert not at.exception, (page_file, at.exception)
        assert "holds no dataset" in at.error[0].value
    at = _open("pages/5_Upload.py")  # the way to fill an empty store
    assert not at.exception and at.radio(key="upload.mode").value == "new"


def test_heatmap_drill_down_shows_the_cell(demo_store):
    from analysis import heatmap, reference_bins
    at = _open("pages/3_Heatmap.py")
    at.selectbox(key="heatmap.cell_feature").set_value("neighborhood")
    at.selectbox(key="heatmap.cell_window").set_value("2025-07-01").run()
    assert not at.exception
    bins = reference_bins.frozen_bins(demo_store, "rental_pricing")
    cube = heatmap.build_cube(demo_store, "rental_pricing", "user_group", "coarse", "day", bins=bins)
    cells = heatmap.grid(heatmap.select(cube, "month"), "psi", bins)
    value = cells[(cells.feature == "neighborhood") &
                  (cells.window_start == "2025-07-01")]["value"].iloc[0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["PSI"] == f"{value:.4f}"
    assert metrics["Band"] == "major"
    # the drill-down compares exactly that cell's rows
    july = [c.value for c in at.caption if "Default test for this cell" in c.value][0]
    assert "jensenshannon" in july and "drift" in july


def test_heatmap_one_group_and_other_metrics(demo_store):
    at = _open("pages/3_Heatmap.py")
    at.selectbox(key="heatmap.group").set_value("professionals").run()
    caption = [c.value for c in at.caption if "cells in the major band" in c.value][0]
    assert caption.startswith("0 of ")  # professionals' inputs never moved
    for metric in ("jensenshannon", "wasserstein", "ks"):
        at.selectbox(key="heatmap.metric").set_value(metric).run()
        assert not at.exception, metric
        assert not at.warning, [w.value for w in at.warning]
    at.segmented_control(key="heatmap.unit").set_value("week").run()
    assert not at.exception


def test_segments_compare_two_cells(demo_store):
    at = _open("pages/4_Segments.py")
    at.selectbox(key="segments.group_a").set_value("students")
    at.selectbox(key="segments.window_a").set_value("2025-04-01")
    at.selectbox(key="segments.group_b").set_value("students")
    at.selectbox(key="segments.window_b").set_value("2025-07-01").run()
    assert not at.exception
    assert at.metric[0].value == "6 of 11"
    at.selectbox(key="segments.group_b").set_value("families")
    at.selectbox(key="segments.window_b").set_value("2025-04-01").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 3


def test_two_segment_columns(tmp_path, monkeypatch):
    """Segments and heatmap pages on a dataset with two segment columns."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    import analysis.store
    import ui
    from analysis.store import Roles, Store
    rng = np.random.default_rng(5)

    def table(n, start, shift):
        region = rng.choice(["north", "south"], n)
        x = rng.normal(0, 1, n) + np.where(region == "south", shift, 0.0)
        return pa.Table.from_pandas(pd.DataFrame({
            "ts": pd.Timestamp(start) + pd.to_timedelta(np.sort(rng.integers(0, 60 * 86400, n)), "s"),
            "plan": rng.choice(["free", "paid"], n), "region": region, "x": x,
            "c": rng.choice(["a", "b"], n), "pred": x, "y": x + rng.normal(0, 0.1, n)}))

    store = Store(tmp_path)
    store.create_dataset("two", Roles(timestamp="ts", segments=["plan", "region"], numeric=["x"],
                                      categorical=["c"], prediction="pred", target="y"))
    store.add_snapshot("two", "reference", table(3000, "2025-01-01", 0.0), source="r")
    store.add_snapshot("two", "production", table(3000, "2025-03-01", 1.0), source="p")
    for module in (analysis.store, ui):
        monkeypatch.setattr(module, "DEFAULT_STORE", tmp_path)
    at = _open("pages/4_Segments.py")
    assert not at.exception, at.exception
    at.selectbox(key="segments.column").set_value("region").run()
    assert not at.exception
    at.selectbox(key="segments.group_a").set_value("north")
    at.selectbox(key="segments.group_b").set_value("south").run()
    assert at.metric[0].value.startswith("1 of")  # x differs between the regions
    at = _open("pages/3_Heatmap.py")
    at.selectbox(key="heatmap.segment_column").set_value("region").run()
    at.selectbox(key="heatmap.group").set_value("south").run()
    assert not at.exception
    caption = [c.value for c in at.caption if "cells in the major band" in c.value][0]
    assert not caption.startswith("0 of")  # south's x shifted by one sd


def _small_store(tmp_path, monkeypatch):
    import analysis.store
    import ui
    from smallstore import make_small_store
    store, frame = make_small_store(tmp_path)
    for module in (analysis.store, ui):
        monkeypatch.setattr(module, "DEFAULT_STORE", store.root)
    return store, frame


def test_upload_page_validates_then_commits(tmp_path, monkeypatch):
    store, frame = _small_store(tmp_path, monkeypatch)
    good = frame(800, "2025-03-01", shift=1.0).to_csv(index=False, sep=";").encode()
    at = _open("pages/5_Upload.py")
    assert not at.exception, at.exception
    at.file_uploader(key="upload.file").set_value(("march.csv", good, "text/csv")).run()
    assert not at.exception, at.exception
    assert "No errors" in at.success[0].value
    at.button(key="upload.commit").click().run()
    assert not at.exception
    assert any("Stored 800 rows" in s.value for s in at.success)
    assert [s.source for s in store.snapshots("shop", "production")] == ["march.csv"]
    # the new data is on the feature drift page: x moved by one sd
    at.switch_page("pages/2_Feature_drift.py")
    at.run()
    assert at.metric[0].value == "1 of 2"


def test_upload_page_refuses_bad_file_and_writes_nothing(tmp_path, monkeypatch):
    store, frame = _small_store(tmp_path, monkeypatch)
    bad = frame(50, "2025-03-01")
    bad["x"] = bad["x"].astype(object)
    bad.loc[3, "x"] = "oops"
    before = sorted(p.name for p in store.root.rglob("*"))
    at = _open("pages/5_Upload.py")
    at.file_uploader(key="upload.file").set_value(
        ("bad.csv", bad.to_csv(index=False).encode(), "text/csv")).run()
    assert not at.exception
    assert "cannot be stored" in at.error[0].value
    report = [d.value for d in at.dataframe if "check" in d.value.columns][0]
    assert "type" in set(report["check"]) and "line 5: 'oops'" in " ".join(report["examples"])
    assert not [b for b in at.button if b.key == "upload.commit"]
    assert sorted(p.name for p in store.root.rglob("*")) == before


# ---------------------------------------------------------------------------------------
# Issue #10 (items 7 and 10): the Upload page's refusals and commits, which dataset a
# visitor sees first, Home's links and the demo's ground truth.
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["image", "executable"])
def test_upload_refuses_a_binary_file_without_preview(tmp_path, monkeypatch, kind):
    import sys
    name, content, looks_like = {
        "image": ("chart.csv", png_bytes(), "a PNG image"),
        "executable": ("tool.csv", Path(sys.executable).resolve().read_bytes()[:100_000],
                       "an ELF executable")}[kind]
    store, _ = _small_store(tmp_path, monkeypatch)
    before = sorted(p.name for p in store.root.rglob("*"))
    at = _open("pages/5_Upload.py")
    at.file_uploader(key="upload.file").set_value((name, content, "text/csv")).run()
    assert not at.exception, at.exception
    message = f"not a CSV/Parquet file: it looks like {looks_like}"
    (status,) = at.status
    assert status.state == "error" and message in status.label   # red, not a green "Read"
    assert message in at.error[0].value
    assert not [d for d in at.dataframe if "check" not in d.value.columns  # no preview
                and "slice" not in d.value.columns]
    assert not any("rows ×" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "upload.commit"]
    assert sorted(p.name for p in store.root.rglob("*")) == before


def test_upload_commit_shows_success_and_no_second_commit(tmp_path, monkeypatch):
    store, frame = _small_store(tmp_path, monkeypatch)
    good = frame(600, "2025-03-01", shift=1.0).to_csv(index=False).encode()
    at = _open("pages/5_Upload.py")
    at.file_uploader(key="upload.file").set_value(("march.csv", good, "text/csv")).run()
    at.button(key="upload.commit").click().run()
    assert not at.exception, at.exception
    for _ in range(2):  # after the commit, and on any later rerun
        assert any("Stored 600 rows" in s.value for s in at.success)
        assert not at.error, [e.value for e in at.error]
        assert not [b for b in at.button if b.key == "upload.commit"]
        at.run()
    assert len(store.snapshots("shop", "production")) == 1
    # the same file to the other slice is another upload, validated afresh: its content
    # is stored already
    at.radio(key="upload.slice").set_value("reference").run()
    assert not any("Stored 600 rows" in s.value for s in at.success)
    assert "already stored as snapshot" in at.error[0].value


def test_upload_report_wraps_long_messages(tmp_path, monkeypatch):
    import json
    store, frame = _small_store(tmp_path, monkeypatch)
    wide = frame(40, "2025-03-01").drop(columns=["c", "group"])
    for i in range(6):
        wide[f"an_extra_column_with_a_long_name_{i}"] = i
    at = _open("pages/5_Upload.py")
    at.file_uploader(key="upload.file").set_value(
        ("wide.csv", wide.to_csv(index=False).encode(), "text/csv")).run()
    assert not at.exception, at.exception
    (report,) = [d for d in at.dataframe if "check" in d.value.columns]
    config = json.loads(report.proto.columns)
    widths = {c: config[c]["width"] for c in report.value.columns}
    # every column has a set width, together no wider than the page at 1280 px (820 px
    # beside the sidebar), the message the widest
    assert sum(widths.values()) <= 820 and max(widths, key=widths.get) == "message"
    assert report.proto.row_height > 64  # the grid wraps text only in rows above 64 px
    # and every error and warning is written out in full under the grid
    assert "required column(s) missing: group, c" in at.error[0].value.replace("\\", "")
    assert "an_extra_column_with_a_long_name_5" in at.warning[0].value.replace("\\", "")


def _store_with(tmp_path, monkeypatch, names):
    """A store holding the small 'shop' data under each of ``names``."""
    import analysis.store
    import ui
    from analysis.ingest import ingest
    from analysis.store import Roles, Store
    from smallstore import make_small_store
    _, frame = make_small_store(tmp_path)
    store = Store(tmp_path / "many")
    frame(500, "2025-01-01").to_csv(tmp_path / "ref.csv", index=False)
    roles = Roles(timestamp="ts", segments=["group"], numeric=["x"], categorical=["c"])
    for name in names:
        assert ingest(store, name, "reference", tmp_path / "ref.csv", roles).snapshot
    for module in (analysis.store, ui):
        monkeypatch.setattr(module, "DEFAULT_STORE", store.root)
    return store, frame


def test_new_visitor_starts_on_the_demo_and_keeps_their_own_choice(tmp_path, monkeypatch):
    _store_with(tmp_path, monkeypatch, ["a_fresh_upload", "rental_pricing", "zz"])
    at = _open("app.py")
    box = "widget.filter.dataset"
    assert at.selectbox(key=box).value == "rental_pricing"    # not the first by name
    at.selectbox(key=box).set_value("zz").run()
    at.switch_page("pages/1_Overview.py")
    at.run()
    assert at.selectbox(key=box).value == "zz"                # this visitor's choice stays
    at.switch_page("pages/5_Upload.py")
    at.run()
    assert at.selectbox(key="upload.dataset").value == "zz"   # and is the upload's default
    assert _open("app.py").selectbox(key=box).value == "rental_pricing"  # another visitor


def test_a_visitor_who_uploads_a_new_dataset_then_sees_it(tmp_path, monkeypatch):
    _, frame = _store_with(tmp_path, monkeypatch, ["rental_pricing"])
    at = _open("pages/5_Upload.py")
    at.radio(key="upload.mode").set_value("new").run()
    at.text_input(key="upload.new_name").input("a_mine").run()
    at.radio(key="upload.slice").set_value("reference").run()
    at.file_uploader(key="upload.file").set_value(
        ("mine.csv", frame(300, "2025-01-01").to_csv(index=False).encode(), "text/csv")).run()
    at.button(key="upload.commit").click().run()
    assert not at.exception and any("Stored 300 rows" in s.value for s in at.success)
    at.switch_page("app.py")
    at.run()
    assert at.selectbox(key="widget.filter.dataset").value == "a_mine"
    assert _open("app.py").selectbox(key="widget.filter.dataset").value == "rental_pricing"


def test_home_links_every_page_and_the_demo_ground_truth(demo_store, ground_truth):
    import json
    at = _open("app.py")
    links = {link.proto.page: link.value for link in at.main.get("page_link")}
    assert set(links) == {"Overview", "Feature_drift", "Heatmap", "Segments",
                          "Data_vs_concept", "Live_monitoring", "Stream_monitoring",
                          "Upload"}  # the URL paths
    for name in ("Overview", "Feature drift", "Drift heatmap", "Segments", "Data vs concept",
                 "Live monitoring", "Stream monitoring", "Upload"):
        (label,) = [v for v in links.values() if v.startswith(f"**{name}**: ")]
        assert len(label) > len(name) + 20  # a line on what the page answers
    (truth,) = [e for e in at.expander if "ground truth" in e.label]
    assert json.loads(truth.json[0].value) == ground_truth
    assert [b.proto.label for b in at.get("download_button")
            if "ground_truth" in b.proto.label] == ["⬇ rental_ground_truth.json"]
    assert not at.exception


def test_home_shows_no_ground_truth_for_another_dataset(tmp_path, monkeypatch):
    _small_store(tmp_path, monkeypatch)
    at = _open("app.py")
    assert not at.exception, at.exception
    assert not [e for e in at.expander if "ground truth" in e.label]
    assert len(at.main.get("page_link")) == 8


# -- issue #10: small uploads, captions from what ran, selections in titles, formats ---------
import numpy as np  # noqa: E402


def _diabetes(tmp_path, monkeypatch, seed=3, shifted=True):
    """The small upload of issue #10 (see tests/small_upload.py) as the only dataset."""
    import analysis.store
    import ui
    from small_upload import diabetes_store
    store = diabetes_store(tmp_path, seed, shifted)
    for module in (analysis.store, ui):
        monkeypatch.setattr(module, "DEFAULT_STORE", store.root)
    return store


def _figure(at, index=0):
    """The page's plotly figure."""
    import plotly.io as pio
    return pio.from_json(at.get("plotly_chart")[index].proto.spec, skip_invalid=True)


def _array(value) -> np.ndarray:
    """A plotly array, decoded when the JSON carried it as a typed array."""
    if isinstance(value, dict) and "bdata" in value:
        import base64
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if isinstance(shape, str):
            shape = [int(x) for x in shape.split(",")]
        return data.reshape(shape) if shape else data
    return np.asarray(value, dtype=float)


def _title(at, index=0) -> str:
    return _figure(at, index).layout.title.text


def test_overview_small_upload_caption_names_the_tests_that_ran(tmp_path, monkeypatch):
    _diabetes(tmp_path, monkeypatch)
    at = _open("pages/1_Overview.py")
    assert not at.exception, at.exception
    caption = " ".join(c.value for c in at.caption)
    # 242 reference rows: KS and the z-test ran, not Wasserstein / Jensen-Shannon
    assert "Kolmogorov-Smirnov: drift when p < 0.05" in caption and "z-test" in caption
    assert "Wasserstein" not in caption and "Jensen" not in caption
    assert "Holm-adjusted over every window and feature" in caption
    shown = at.dataframe[0].value
    assert list(shown["drifted"]) == ["2 of 10", "2 of 10", "2 of 10", "not judged"]
    assert set(shown["which"].iloc[:3]) == {"bmi, s5"}
    assert shown["which"].iloc[3] == "not judged: 1 row (fewer than 50)"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Drifted features, latest month"] == "2 of 10"   # June: July has 1 row
    assert metrics["Reference MAE"] == f"{float(metrics['Reference MAE']):.2f}"  # no unit
    # the day view: windows of 1-4 rows are not judged, none is flagged
    at.segmented_control(key="overview.unit").set_value("day").run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert (shown["rows"] < 50).all() and set(shown["drifted"]) == {"not judged"}
    assert shown["drifted features"].isna().all()


def test_heatmap_small_upload_greys_small_cells_and_prints_counts(tmp_path, monkeypatch):
    _diabetes(tmp_path, monkeypatch)
    at = _open("pages/3_Heatmap.py")
    assert not at.exception, at.exception
    caption = [c.value for c in at.caption if "cells in the major band" in c.value][0]
    assert "with fewer than 50 rows on a side, not judged (grey)" in caption
    assert "above its noise level, the 99.9th percentile" in caption
    cells = _figure(at).data[0]
    rows = sorted({t for row in cells.text for t in row})
    assert "1" in rows and all(t.isdigit() for t in rows)       # row counts printed
    z = _array(cells.z).astype(float)
    assert (z[:, 3] == 0).all() and (z[:, :3] > 0).all()        # July (1 row): grey
    drifted = {f for f, row in zip(cells.y, z) if row.max() >= 3}
    assert drifted == {"bmi", "s5"}                             # moderate or major
    assert _title(at).endswith("· all groups")
    # drill into July: one row, not judged
    at.selectbox(key="heatmap.cell_feature").set_value("bmi")
    at.selectbox(key="heatmap.cell_window").set_value("2025-07-01").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Band"] == "not judged" and metrics["Production rows in the cell"] == "1"
    line = [c.value for c in at.caption if "Default test for this cell" in c.value][0]
    assert "→ not judged: 1 production row (fewer than 50)." in line


def test_feature_drift_small_upload_table_formats(tmp_path, monkeypatch):
    _diabetes(tmp_path, monkeypatch)
    at = _open("pages/2_Feature_drift.py")
    assert not at.exception, at.exception
    assert at.metric[0].value == "2 of 10"
    shown = at.dataframe[0].value
    text = " ".join(shown.astype(str).to_numpy().ravel())
    assert "None" not in text and "nan" not in text
    assert list(shown["feature"].iloc[:2]) == ["bmi", "s5"]
    assert set(shown["p-value"].iloc[:2]) == {"< 0.0001"}
    assert all(len(v.split(".")[1]) == 4 for v in shown["statistic"])
    # a distance forced on 200 rows: material values within noise are not drift
    at.selectbox(key="feature.test").set_value("psi").run()
    shown = at.dataframe[0].value
    within = shown[shown["verdict"] == "within noise"]
    assert len(within) > 0 and set(within["note"]) == {"within noise at these sizes"}
    assert set(shown.loc[shown["verdict"] == "drift", "feature"]) <= {"bmi", "s5"}


def test_titles_name_the_sidebar_selection(demo_store):
    at = _open("pages/3_Heatmap.py")
    at.multiselect(key="widget.filter.segment.rental_pricing.user_group").set_value(
        ["students"]).run()
    assert not at.exception
    assert _title(at) == "PSI by feature and month · user_group: students"
    at.switch_page("pages/4_Segments.py")
    at.run()
    assert not at.exception
    titles = [_title(at, i) for i in range(2)]
    assert all(t.endswith("· user_group: students") for t in titles), titles
    for i in range(2):
        figure = _figure(at, i)
        assert figure.layout.yaxis.title.text == "user_group"
        texts = [t for row in figure.data[0].text for t in row]
        assert not any("e-" in t for t in texts), texts
        assert all(t == "—" or len(t.split(".")[-1].rstrip("%")) <= 2 for t in texts), texts
        assert figure.data[0].textfont.size >= 12
        assert figure.layout.height >= 220 + 44   # one group: still a readable row


def test_heatmap_drill_down_keeps_the_sidebar_group(demo_store):
    """With the sidebar on students and the page on "all selected groups", the drill-down
    tests and draws the students' rows, not everyone's."""
    from datetime import datetime

    from analysis.drift import describe_row
    from analysis.queries import Filters
    from analysis.summary import filtered_drift_table

    at = _open("pages/3_Heatmap.py")
    at.multiselect(key="widget.filter.segment.rental_pricing.user_group").set_value(
        ["students"]).run()
    at.selectbox(key="heatmap.cell_feature").set_value("neighborhood")
    at.selectbox(key="heatmap.cell_window").set_value("2025-12-01").run()
    assert not at.exception
    students = Filters(datetime(2025, 12, 1), datetime(2026, 1, 1),
                       {"user_group": ("students",)})
    row = filtered_drift_table(demo_store, "rental_pricing", students) \
        .set_index("feature").loc["neighborhood"]
    caption = [c.value for c in at.caption if "Default test for this cell" in c.value][0]
    assert caption == f"Default test for this cell: {describe_row(row.to_dict())}"
