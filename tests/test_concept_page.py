"""The Data vs concept page (AppTest): the investigation runs as a background job and is
kept in the store, a page reopened later shows it without recomputing or crashing, a
small upload says what could not be judged instead of "none", and a cell's evidence is
computed only when asked, then kept."""
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from analysis import concept_view as view
from analysis import investigation as inv
from analysis import jobs
from analysis.slices import reference_error
from analysis.queries import Filters
from small_upload import diabetes_store

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/6_Data_vs_concept.py"
GROUP = "widget.filter.segment.rental_pricing.user_group"


@pytest.fixture(autouse=True)
def clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


def _open(page_file: str = PAGE) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(page_file)
    at.run()
    return at


def _use(store, monkeypatch) -> None:
    import analysis.store
    import ui
    for module in (analysis.store, ui):
        monkeypatch.setattr(module, "DEFAULT_STORE", store.root)


def _finish(at: AppTest, path: Path) -> None:
    """Wait for the page's job to end, then rerun the page."""
    assert jobs.wait(path, timeout=600).state == "idle", jobs.state(path)
    at.run()
    assert not at.exception, at.exception


def _forget(path: Path) -> None:
    path.unlink(missing_ok=True)


def test_page_shows_the_kept_investigation_with_units(demo_store, demo_investigation,
                                                      ground_truth):
    at = _open()
    assert not at.exception, at.exception
    result = demo_investigation
    assert any("Verdict: BOTH" in w.value for w in at.warning)
    assert at.code[0].value == result["summary"]
    metrics = {m.label: m.value for m in at.metric}
    level = reference_error(demo_store, ground_truth["dataset"])["mae"]
    # the same number as Overview's, with its unit and the parts' precision
    assert metrics["Reference MAE (EUR)"] == f"{level:,.2f}"
    d = result["decomposition"]
    assert metrics["Concept drift (EUR)"] == f"{d['concept_part']['value']:+,.2f}"
    drifted = [d for d in at.dataframe if "since" in d.value.columns][0].value
    assert set(drifted["since"]) == {f"{ground_truth['year']}-06-01"}
    # the default cell is the first concept cell of a group: professionals in September
    assert at.selectbox(key="concept.cell_segment").value == "professionals"
    assert at.selectbox(key="concept.cell_start").value.startswith(
        f"{ground_truth['year']}-{ground_truth['concept_drift']['from_month']:02d}")
    assert "verdict CONCEPT" in at.code[1].value


def test_evidence_is_computed_for_the_chosen_cell_only_when_asked(demo_store,
                                                                  demo_investigation):
    cell = next(c for c in demo_investigation["cells"] if c["segment"] == "students"
                and c["start"].startswith("2025-06"))
    ev_path, _ = inv.evidence_job(demo_store, "rental_pricing", Filters(), "user_group",
                                  "students", cell["start"], cell["end"])
    default = view.cell_choices(demo_investigation)[1]
    default_path, _ = inv.evidence_job(demo_store, "rental_pricing", Filters(), "user_group",
                                       default["segment"], default["start"], default["end"])
    _forget(ev_path)
    _forget(default_path)
    at = _open()
    assert not default_path.exists() and not jobs.state(default_path).running
    at.selectbox(key="concept.cell_segment").set_value("students").run()
    at.selectbox(key="concept.cell_start").set_value(cell["start"]).run()
    assert not at.exception
    assert "verdict DATA" in at.code[1].value
    assert "outside the reference's support" in at.code[1].value
    assert not ev_path.exists() and not default_path.exists()
    at.button(key="concept.evidence.start").click().run()
    assert jobs.state(ev_path).running or ev_path.exists()
    _finish(at, ev_path)
    assert not default_path.exists()             # only the chosen cell was computed
    # a data-drift cell says its shifts come from inputs outside the reference's support
    assert any("outside the reference's support" in w.value for w in at.warning), ([w.value for w in at.warning], [i.value for i in at.info], at.selectbox(key="concept.cell_segment").value, at.selectbox(key="concept.cell_start").value, [b.key for b in at.button])
    assert at.selectbox(key="concept.residual_feature").value
    assert len(at.get("plotly_chart")) >= 6
    # kept: a new session reads it without a job
    at = _open()
    at.selectbox(key="concept.cell_segment").set_value("students").run()
    at.selectbox(key="concept.cell_start").set_value(cell["start"]).run()
    assert not jobs.state(ev_path).running and at.selectbox(key="concept.residual_feature").value


def test_one_group_survives_leaving_and_coming_back(demo_store):
    """The sidebar narrowed to one group, computed by the page, then reopened after a
    visit to another page (was a CacheReplayClosureError)."""
    path, _ = inv.investigation_job(demo_store, "rental_pricing",
                                    Filters(segments={"user_group": ("professionals",)}))
    _forget(path)
    at = _open()
    at.multiselect(key=GROUP).set_value(["professionals"]).run()
    assert not at.exception, at.exception
    assert any("on its way" in i.value for i in at.info)
    _finish(at, path)
    assert any("Verdict: CONCEPT" in w.value for w in at.warning)
    at.switch_page("pages/1_Overview.py")
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    assert any("Verdict: CONCEPT" in w.value for w in at.warning)
    assert not jobs.state(path).running          # read back, not recomputed


def test_small_upload_says_what_was_not_judged(tmp_path, monkeypatch):
    store = diabetes_store(tmp_path, 1, dataset="diabetes")
    _use(store, monkeypatch)
    at = _open()
    auto, _ = inv.investigation_job(store, "diabetes")
    _finish(at, auto)
    assert any("Verdict: DATA" in i.value for i in at.info), [i.value for i in at.info]
    drifted = [d for d in at.dataframe if "since" in d.value.columns][0].value
    assert set(drifted["feature"]) == {"bmi", "s5"}
    # weeks of about 17 rows: nothing can be judged, and the page says so
    at.selectbox(key="concept.unit").set_value("week").run()
    weekly, _ = inv.investigation_job(store, "diabetes", unit="week")
    _finish(at, weekly)
    assert not at.success, [s.value for s in at.success]      # no green "NONE"
    banner = at.error[0].value
    assert "Verdict: NOT JUDGED" in banner and "choose a coarser window" in banner
    assert not any("no labels" in m.value for m in at.markdown)
    cell_text = at.code[1].value
    assert "too few to judge" in cell_text


def test_cancel_then_run_again(tmp_path, monkeypatch):
    store = diabetes_store(tmp_path, 1, dataset="diabetes")
    _use(store, monkeypatch)
    path, _ = inv.investigation_job(store, "diabetes")
    at = _open()
    assert jobs.state(path).running
    at.button(key="concept.job.cancel").click().run()
    assert not at.exception, at.exception
    assert not jobs.state(path).running and not path.exists()
    assert any("cancelled" in i.value for i in at.info)
    at.run()                                     # not restarted behind the visitor's back
    assert not jobs.state(path).running
    at.button(key="concept.job.start").click().run()
    _finish(at, path)
    assert any("Verdict:" in i.value for i in at.info)
