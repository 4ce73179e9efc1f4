"""Stream monitoring: a recommender's CTR per minute against its forecast baseline, the
upstream signals beneath it, the alerts and the ranked causes of a CTR change, while the
stream is being written."""
import streamlit as st

import ui
from analysis.streaming import figures as stream_figures
from analysis.streaming import view

st.set_page_config(page_title="Stream monitoring · Drift Investigator", layout="wide")
st.title("Stream monitoring")
st.caption("A recommender's click-through rate per minute against the baseline forecast "
           "from its own recent minutes, and beneath it the signals upstream of it (each "
           "feature's null or stale share, slow lookups, low scores, the segment mix), on "
           "the same time axis. A CTR alert comes with its causes ranked by how much of "
           "the change each signal explains. Refreshes itself while the stream is written.")
ui.navigation()

root = ui.store().root
streams = view.list_streams(root)
if not streams:
    st.info(f"No stream yet in `{view.streams_root(root)}`. Start one; it writes its "
            f"events there minute by minute and this page follows it:\n\n"
            f"```\n{view.START_COMMAND}\n```")

    @st.fragment(run_every=5)
    def wait_for_a_stream() -> None:
        if view.list_streams(root):
            st.rerun()

    wait_for_a_stream()
    st.stop()

c1, c2, c3, c4 = st.columns([3, 2, 1.3, 1])
if st.session_state.get("stream.name") not in streams:
    st.session_state.pop("stream.name", None)
name = c1.selectbox("Stream", streams, key="stream.name",
                    help=f"The folders in {view.streams_root(root)}, the latest written first")
span = c2.segmented_control("Time range", list(view.RANGES), default="last hour",
                            key="stream.range") or "last hour"
auto = c3.toggle("Auto-refresh", value=True, key="stream.auto")
every = c4.selectbox("Every (s)", [2, 5, 10, 30], index=1, key="stream.every",
                     disabled=not auto)
st.caption("Times in UTC. The time range counts back from the stream's newest minute; the "
           "detectors always read the whole stream, so an alert does not depend on it.")


def causes(sv: view.StreamView) -> None:
    st.subheader("Causes of a CTR alert")
    choices = view.alert_choices(sv)
    if not choices:
        st.info("No CTR alert so far: CTR stayed within what its baseline forecast.")
        return
    keys = [view.LATEST] + [k for k, _ in choices]
    labels = {view.LATEST: f"The latest: {choices[0][1]}", **dict(choices)}
    if st.session_state.get("stream.alert") not in keys:
        st.session_state.pop("stream.alert", None)
    picked = st.selectbox("CTR alert", keys, format_func=labels.get, key="stream.alert")
    alert = view.find_alert(sv, picked)
    st.markdown(view.alert_summary(alert))
    text, number = st.column_config.TextColumn, st.column_config.NumberColumn
    st.dataframe(
        view.causes_table(alert), hide_index=True, key="stream.causes",
        column_order=["rank", "signal", "role", "explained (points)", "± (points)",
                      "share of change (%)", "affected", "affected share",
                      "CTR affected vs unaffected", "own alarm from (UTC)"],
        column_config={
            "rank": text("#", width=26, help="Ranked causes first"),
            "signal": text(width=118),
            "role": text(width=80, help=view.ROLE_HELP),
            "explained (points)": number(
                "expl. (pts)", format="%.2f", width=62,
                help="The CTR change this signal's shift accounts for, in percentage points"),
            "± (points)": number("± (pts)", format="%.2f", width=50,
                                 help="The explained part's standard error"),
            "share of change (%)": number(
                "share (%)", format="%.0f", width=56,
                help="The explained part as a share of the observed CTR change"),
            "affected": text(width=92, help="Which of the signal's requests are affected"),
            "affected share": text(
                "affected: before → after", width=110,
                help="Share of requests affected in the 30 minutes before the change and "
                     "since it (segment-weighted)"),
            "CTR affected vs unaffected": text(
                "CTR: affected vs not", width=118,
                help="CTR since the change of affected and of unaffected requests, each in "
                     "the segments' mix"),
            "own alarm from (UTC)": text("own alarm", width=60,
                                         help="When this signal's own alarm dated its change"),
        })


def drill_down(sv: view.StreamView, start, window) -> None:
    st.subheader("Drill-down")
    options = view.signal_choices(sv)
    signals = [s for s, _ in options]
    if st.session_state.get("stream.signal") not in signals:
        latest = view.latest_ctr_alert(sv)
        top = latest.ranked_causes[0] if latest and latest.ranked_causes else None
        st.session_state["stream.signal"] = top if top in signals else signals[0]
    left, right = st.columns([3, 1])
    signal = left.selectbox("Signal", signals, format_func=dict(options).get,
                            key="stream.signal")
    per = right.selectbox("Minutes per point", [1, 5, 15], key="stream.drill_minutes",
                          help="Affected requests can be few per minute: more minutes per "
                               "point, less noise")
    fig = stream_figures.drilldown_figure(
        signal, view.signal_timeline(sv, signal, start, per),
        view.affected_ctr(sv, signal, start, per), view.signal_alerts(sv, signal, start),
        view.signal_alerts(sv, "ctr", start), window, view.affected_description(signal), per)
    # a refresh keeps the visitor's zoom and hidden legend entries
    fig.update_layout(uirevision=f"{sv.name}/{span}/{signal}/{per}")
    ui.chart(fig, "stream.drill", f"stream-{sv.name}-{signal}")


@st.fragment(run_every=every if auto else None)
def monitor() -> None:
    sv = ui.stream_view(view.streams_root(root) / name)
    cards = view.status_cards(sv)
    for col, (label, value, help_text) in zip(st.columns(len(cards)), cards):
        col.metric(label, value, help=help_text)
    for note in sv.notes:
        st.caption(note)
    if sv.cube is None:
        st.info("This stream has no events yet; the page shows them as they arrive.")
        return
    start, window = view.range_start(sv, span), view.time_window(sv, span)
    fig = stream_figures.timeline_figure(
        view.ctr_frame(sv, start), view.upstream_frame(sv, start),
        view.alert_frame(sv, start), view.signal_rows(sv), window)
    fig.update_layout(uirevision=f"{sv.name}/{span}")    # a refresh keeps the zoom
    ui.chart(fig, "stream.timeline", f"stream-{sv.name}-timeline")
    causes(sv)
    drill_down(sv, start, window)
    with st.expander(f"Every alert of the stream ({len(sv.alerts)})"):
        st.dataframe(view.alert_table(sv), hide_index=True, key="stream.alerts",
                     column_config={c: st.column_config.NumberColumn(format="%.2f")
                                    for c in ("baseline (%)", "observed (%)", "change (%)",
                                              "confidence (%)")})
    with st.expander("How these are computed"):
        st.markdown(view.METHOD)


monitor()
