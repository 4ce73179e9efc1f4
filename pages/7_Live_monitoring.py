"""Live monitoring: drift and estimated accuracy per time window while data arrives."""
import streamlit as st

import ui
from analysis.monitoring import figures as live_figures
from analysis.monitoring.cbpe import ASSUMPTIONS
from analysis.monitoring.live import UNITS, headline, window_table

ctx = ui.page("Live monitoring",
              "Production against the reference per time window, without waiting for "
              "labels: input drift per feature, prediction drift, multivariate drift, and "
              "accuracy estimated from the model's probabilities beside the realized "
              "accuracy where labels arrived. Refreshes itself while data arrives.")

c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
unit = c1.segmented_control("Window", list(UNITS), default="minute", key="live.unit") or "minute"
last = c2.slider("Windows shown (the latest)", 5, 120, 30, key="live.last")
auto = c3.toggle("Auto-refresh", value=True, key="live.auto")
every = c4.selectbox("Every (s)", [2, 5, 10, 30], index=1, key="live.every", disabled=not auto)
st.caption("The latest windows of production, whatever the sidebar's time range (its group "
           "filters apply). Times in UTC.")


@st.fragment(run_every=every if auto else None)
def live() -> None:
    monitor = ui.live_monitor(ctx)
    with st.spinner("Comparing the latest windows with the reference…"):
        report = monitor.report(unit, last, ctx.filters)
    cards = headline(report)
    cols = st.columns(len(cards))
    for col, (label, value, help_text) in zip(cols, cards):
        col.metric(label, value, help=help_text)
    if report.windows.empty:
        st.info("No production rows yet. Start the service and send traffic:\n\n"
                "```\npython -m analysis serve --scenario iris\n"
                "python -m analysis traffic --url http://127.0.0.1:8000 --rate 20 "
                "--duration 300 --shift-at 120 --shift new-cluster --feedback-share 0.3\n```")
        return
    name = f"{ctx.dataset}-{unit}"
    if report.spec.task == "classification":
        ui.chart(live_figures.performance_figure(report.windows, report.reference, unit),
                 "live.performance", f"live-accuracy-{name}")
        if not report.spec.has_probabilities:
            st.caption("No class probabilities stored: accuracy cannot be estimated without "
                       "labels for this dataset.")
    ui.chart(live_figures.feature_drift_figure(report.features, unit), "live.features",
             f"live-input-drift-{name}")
    left, right = st.columns(2)
    with left:
        if len(report.shares):
            ui.chart(live_figures.prediction_figure(report.shares, report.reference, unit),
                     "live.predictions", f"live-predictions-{name}")
    with right:
        ui.chart(live_figures.multivariate_figure(report.windows, unit), "live.multivariate",
                 f"live-multivariate-{name}")
    st.subheader("Per window")
    st.dataframe(window_table(report), hide_index=True, key="live.table",
                 column_config={"rows": st.column_config.NumberColumn(format="localized")})
    with st.expander("How these are computed, and what the estimate assumes"):
        st.markdown(
            f"**Estimated accuracy.** {ASSUMPTIONS}\n\n"
            "**Input drift.** Each feature's default test against the reference (KS for a "
            "reference of at most 1,000 rows, else Wasserstein or Jensen–Shannon); p-values "
            "Holm-adjusted over every window and feature shown; fewer than 50 rows: not "
            "judged.\n\n"
            "**Prediction drift.** The predicted classes against the reference's, the same "
            "way (chi-square), Holm-adjusted over the windows.\n\n"
            "**Multivariate drift.** A classifier (gradient-boosted trees, 2-fold "
            "cross-fitted) tries to tell the window's rows from the reference's; its AUC "
            "with a 95 % interval (Hanley–McNeil). Drift when AUC ≥ 0.55 and its "
            "Holm-adjusted p < 0.01.\n\n"
            "**Realized accuracy** on the rows whose label has arrived (late labels sent to "
            "the service's `/feedback` included), with its 95 % Wilson interval.")
        for note in report.notes:
            st.caption(f"Note: {note}")


live()
