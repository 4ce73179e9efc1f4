"""Overview: model error against the reference level, volume and drift per window."""
import pandas as pd
import streamlit as st

import ui
from analysis import formats
from analysis.figures import overview_figure, unit_of
from analysis.summary import (latest_window, latest_window_note, per_window_table,
                              tests_caption)

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

target_unit = unit_of(roles.target or "")
n_features = len(roles.features)
latest, since = latest_window(table), latest_window_note(table, unit)
cols = st.columns(4)
cols[0].metric("Reference MAE", formats.error(reference["mae"], target_unit))
if pd.notna(latest["mae"]) and reference["mae"] is not None:
    cols[1].metric(f"Latest {unit} MAE", formats.error(latest["mae"], target_unit),
                   delta=formats.error(latest["mae"] - reference["mae"], target_unit, signed=True),
                   delta_color="inverse", help=since)
if pd.notna(latest["mape"]) and reference["mape"] is not None:
    cols[2].metric(f"Latest {unit} MAPE", f"{latest['mape']:.2f} %",
                   delta=f"{latest['mape'] - reference['mape']:+.2f} pp", delta_color="inverse",
                   help=since)
cols[3].metric(f"Drifted features, latest {unit}",
               formats.of_total(latest["drifted_features"], n_features),
               help=since)

fig = overview_figure(table, reference["mae"], reference["mape"], n_features,
                      target=f"{roles.target}, {target_unit}".strip(", ")
                      if roles.target else "", unit=unit, who=formats.selection(ctx.key[2]))
ui.chart(fig, "overview.figure", f"overview-{ctx.dataset}-{unit}")

st.subheader("Per window")
shown = per_window_table(table, n_features)
row_height = formats.wrapped_row_height(shown["which"], chars_per_line=44)
st.dataframe(
    shown, hide_index=True, row_height=row_height,
    height=formats.table_height(len(shown), row_height or 35, max_rows=31),
    column_order=["window start", "rows", "labelled rows", "MAE", "MAPE", "drifted", "which"],
    column_config={
        "window start": st.column_config.DatetimeColumn(format="YYYY-MM-DD", width=95),
        "rows": st.column_config.NumberColumn(format="localized", width=70),
        "labelled rows": st.column_config.NumberColumn("labelled", format="localized",
                                                       width=70),
        "MAE": st.column_config.TextColumn(formats.with_unit("MAE", f"({target_unit})")
                                           if target_unit else "MAE", width=85,
                                           alignment="right"),
        "MAPE": st.column_config.TextColumn("MAPE (%)", width=75, alignment="right"),
        "drifted": st.column_config.TextColumn("drifted", width=80, alignment="right",
                                               help="Drifted features of those tested"),
        "which": st.column_config.TextColumn("which features", width=335),
    })
st.caption(tests_caption(table))
