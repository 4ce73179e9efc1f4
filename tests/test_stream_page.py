"""The Stream monitoring page in AppTest: with a generated stream folder (the numbers
shown are the view's), with a short one, with an empty one and with none; never an
exception."""
from streamlit.testing.v1 import AppTest

from analysis.streaming import view
from page_helpers import clear_caches, open_page, use_store  # noqa: F401 (autouse fixture)
from stream_helpers import generate_events, make_stream, simulated_events, write_part

PAGE = "pages/8_Stream_monitoring.py"





def _ok(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _titles(at: AppTest) -> str:
    return " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))


def test_stream_page_shows_the_stream(tmp_path, monkeypatch):
    folder, events = make_stream(tmp_path, minutes=70)
    use_store(tmp_path, monkeypatch)
    at = open_page(PAGE)
    _ok(at)
    sv = view.open_stream(folder)
    cards = {m.label: m.value for m in at.metric}
    assert cards["Events"] == f"{events.num_rows:,}"
    assert cards["Alerts: CTR · upstream"] == \
        f"{sv.status['ctr_alerts']} · {sv.status['upstream_alerts']}"
    assert cards["Events/s"] == f"{sv.status['events_per_s']:,.1f}"
    titles = _titles(at)
    assert "CTR per minute against its forecast baseline" in titles
    assert "Drill-down: " in titles
    causes = at.dataframe[0].value
    alert = view.latest_ctr_alert(sv)
    assert list(causes["signal"]) == list(view.causes_table(alert)["signal"])
    assert any(view.alert_text(alert) in m.value for m in at.markdown)
    # the drill-down starts on the latest alert's top cause
    assert at.selectbox(key="stream.signal").value == alert.ranked_causes[0]
    at.selectbox(key="stream.signal").set_value("user_emb").run()
    _ok(at)
    assert "Drill-down: user_emb" in _titles(at)
    at.selectbox(key="stream.drill_minutes").set_value(5).run()
    _ok(at)
    assert "one point per 5 minutes" in _titles(at)
    at.segmented_control(key="stream.range").set_value("all").run()
    _ok(at)
    at.toggle(key="stream.auto").set_value(False).run()
    _ok(at)
    assert at.selectbox(key="stream.every").disabled
    # a new part: the page reads it on the next run (the cache key is the part listing)
    write_part(folder, generate_events(1, first_minute=70), 99)
    at.run()
    _ok(at)
    added = view.open_stream(folder).status["events"]
    assert {m.label: m.value for m in at.metric}["Events"] == f"{added:,}"
    assert added > events.num_rows


def test_stream_page_on_the_ecommerce_simulator(tmp_path, monkeypatch):
    """The product's simulator with a null fault of user_affinity at minute 40: the
    page ranks it first and draws one upstream row per feature."""
    folder, events = make_stream(tmp_path, "ecommerce", minutes=75, source=simulated_events)
    use_store(tmp_path, monkeypatch)
    at = open_page(PAGE)
    _ok(at)
    sv = view.open_stream(folder)
    assert {m.label: m.value for m in at.metric}["Events"] == f"{events.num_rows:,}"
    alert = view.latest_ctr_alert(sv)
    assert alert is not None and alert.ranked_causes[0] == "user_affinity"
    assert any("Most likely cause: `user_affinity`" in m.value for m in at.markdown)
    assert at.dataframe[0].value["signal"].iloc[0] == "user_affinity"
    titles = _titles(at)
    for feature in ("user_affinity", "item_popularity", "weather_index"):
        assert f"{feature}: requests whose value was null" in titles
    assert "Drill-down: user_affinity" in titles


def test_stream_page_picks_among_streams(tmp_path, monkeypatch):
    make_stream(tmp_path, "older", minutes=20)
    make_stream(tmp_path, "newer", minutes=8, minutes_per_part=4)
    use_store(tmp_path, monkeypatch)
    at = open_page(PAGE)
    _ok(at)
    assert at.selectbox(key="stream.name").options == ["newer", "older"]
    assert any("more than 15 minutes" in c.value for c in at.caption)   # short: no alerts yet
    assert "CTR per minute" in _titles(at)
    assert any("No CTR alert so far" in i.value for i in at.info)
    at.selectbox(key="stream.name").set_value("older").run()
    _ok(at)
    assert {m.label: m.value for m in at.metric}["Events"] == \
        f"{view.open_stream(tmp_path / 'streams' / 'older').status['events']:,}"


def test_stream_page_without_a_stream_says_what_to_run(tmp_path, monkeypatch):
    use_store(tmp_path, monkeypatch)
    at = open_page(PAGE)
    assert not at.exception, at.exception
    assert any(view.START_COMMAND in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_stream_page_with_an_empty_stream(tmp_path, monkeypatch):
    (tmp_path / "streams" / "starting" / "aggregates").mkdir(parents=True)
    use_store(tmp_path, monkeypatch)
    at = open_page(PAGE)
    _ok(at)
    assert {m.label: m.value for m in at.metric}["Events"] == "0"
    assert any("no events yet" in i.value for i in at.info)
