"""Overview: model error against the reference level, volume and drift per window."""
import pandas as pd
import streamlit as st

import ui
from analysis.figures import overview_figure, unit_of

ctx = ui.page("Overview")
roles = ctx.info.roles
unit = st.segmented_control("Window", ["day", "week", "month"], default="month",
                            key="overview.unit") or "month"

with st.spinner("Comparing every window with the reference…"):
    table = ui.window_summary(ctx.root, ctx.version, ctx.dataset, unit, ctx.key)
    reference = ui.reference_error(ctx.root, ctx.version, ctx.dataset, ctx.key)

if table.empty:
    st.warning("No production rows in the selected time range and segments.")
    st.stop()

latest = table.iloc[-1]
cols = st.columns(4)
cols[0].metric("Reference MAE", "—" if reference["mae"] is None else f"{reference['mae']:,.2f}")
if pd.notna(latest["mae"]) and reference["mae"]:
    cols[1].metric(f"Latest {unit} MAE", f"{latest['mae']:,.2f}",
                   delta=f"{latest['mae'] - reference['mae']:+,.2f}", delta_color="inverse")
if pd.notna(latest["mape"]) and reference["mape"]:
    cols[2].metric(f"Latest {unit} MAPE", f"{latest['mape']:.2f} %",
                   delta=f"{latest['mape'] - reference['mape']:+.2f} pp", delta_color="inverse")
cols[3].metric(f"Drifted features, latest {unit}",
               f"{int(latest['drifted_features'] or 0)} of {len(roles.features)}")

fig = overview_figure(table, reference["mae"], reference["mape"], len(roles.features),
                      target=f"{roles.target}, {unit_of(roles.target or '')}".strip(", ")
                      if roles.target else "", unit=unit)
ui.chart(fig, "overview.figure", f"overview-{ctx.dataset}-{unit}")

st.subheader("Per window")
shown = table.rename(columns={"window_start": "window start", "labelled": "labelled rows",
                              "mae": "MAE", "mape": "MAPE (%)",
                              "drifted_features": "drifted features",
                              "judged_features": "features tested",
                              "drifted_list": "which"})
st.dataframe(shown, hide_index=True, column_config={
    "window start": st.column_config.DatetimeColumn(format="YYYY-MM-DD"),
    "MAE": st.column_config.NumberColumn(format="%.2f"),
    "MAPE (%)": st.column_config.NumberColumn(format="%.2f"),
})
st.caption("Each window's features are tested against the reference (same user groups) with "
           "the default test per column: Wasserstein distance (normed) for numeric columns, "
           "Jensen–Shannon distance for categorical ones, threshold 0.1 (see the README).")
