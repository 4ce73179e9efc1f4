"""AppTest for every page, on the demo store: no exception, and the numbers shown are
the analysis functions' numbers."""
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from analysis.queries import Filters, reference_error
from analysis.summary import window_summary

from pathlib import Path

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
    from analysis import aggregate, heatmap
    at = _open("pages/3_Heatmap.py")
    at.selectbox(key="heatmap.cell_feature").set_value("neighborhood")
    at.selectbox(key="heatmap.cell_window").set_value("2025-07-01").run()
    assert not at.exception
    bins = aggregate.frozen_bins(demo_store, "rental_pricing")
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


def test_data_vs_concept_page_shows_the_investigation(demo_store, ground_truth):
    from analysis.investigation import investigate_store

    at = _open("pages/6_Data_vs_concept.py")
    assert not at.exception, at.exception
    result = investigate_store(demo_store, ground_truth["dataset"])   # cached on disk
    assert result["verdict"] == "both"
    assert any("Verdict: BOTH" in w.value for w in at.warning)
    assert at.code[0].value == result["summary"]
    metrics = {m.label: m.value for m in at.metric}
    d = result["decomposition"]
    assert metrics["Concept-drift part"] == f"{d['concept_part']['value']:,.4g}"
    assert metrics["Reference mae"] == f"{d['reference']['value']:,.4g}"
    # the default cell is the first concept cell of a group: professionals in September
    assert at.selectbox(key="concept.cell_segment").value == "professionals"
    assert at.selectbox(key="concept.cell_start").value.startswith(
        f"{ground_truth['year']}-{ground_truth['concept_drift']['from_month']:02d}")
    assert "verdict CONCEPT" in at.code[1].value
    # another cell: students in June are data drift, new inputs outside the support
    at.selectbox(key="concept.cell_segment").set_value("students").run()
    at.selectbox(key="concept.cell_start").set_value(
        next(c["start"] for c in result["cells"] if c["segment"] == "students"
             and c["start"].startswith(f"{ground_truth['year']}-06"))).run()
    assert not at.exception
    assert "verdict DATA" in at.code[1].value and "outside the reference's support" in at.code[1].value
    assert at.selectbox(key="concept.residual_feature").value


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
