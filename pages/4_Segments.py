"""Segments: which group carries the damage, and any two cells compared feature by feature."""
import pandas as pd
import streamlit as st

import ui
from analysis import formats
from analysis.drift import describe_tests, ranked
from analysis.figures import distribution_figure, segment_grid_figure, unit_of
from analysis.heatmap import drift_rule, segment_drift
from analysis.stats import EmptySampleError

ctx = ui.page("Segments", "Model error and drift for every group in every window, each "
              "group against its own reference rows.")
roles = ctx.info.roles
if not roles.segments or roles.timestamp is None:
    st.warning("This dataset has no segment or no timestamp column.")
    st.stop()

c1, c2, c3, c4 = st.columns(4)
segment = c1.selectbox("Segment column", roles.segments, key="segments.column")
unit = c2.segmented_control("Window", ["day", "week", "month"], default="month",
                            key="segments.unit") or "month"
error_metric = c3.selectbox("Error change", ["mape_change", "mae_change"], key="segments.error",
                            format_func={"mape_change": "MAPE change (pp)",
                                         "mae_change": "MAE change"}.get)
drift_metric = c4.selectbox("Drift", ["max_value", "drifted_share"], key="segments.drift",
                            format_func={"max_value": "max PSI over features",
                                         "drifted_share": "share of features drifted"}.get)

with st.spinner("Aggregating per group and window…"):
    errors = ui.segment_window_metrics(ctx.root, ctx.version, ctx.dataset, segment, unit, ctx.key)
    bins = ui.frozen_bins(ctx.root, ctx.version, ctx.dataset)
    cube = ui.coarse_cube(ctx.root, ctx.version, ctx.dataset, segment)
    start, end, _ = ctx.key
    drift = segment_drift(cube, bins, unit, start, end, ui.selected_segments(ctx, segment))

if errors.empty:
    st.warning("No production rows in the selected time range and groups.")
    st.stop()

who = formats.selection(ctx.key[2])
target_unit = unit_of(roles.target or "")
if roles.prediction and roles.target:
    label, value_format = (("MAPE change (pp)", "+.1f") if error_metric == "mape_change"
                           else (formats.with_unit("MAE change", f"({target_unit})")
                                 if target_unit else "MAE change", "+,.2f"))
    ui.chart(segment_grid_figure(errors, error_metric, label,
                                 f"Model error vs the group's reference · {label} · {who}",
                                 unit, diverging=True, value_format=value_format,
                                 segment_label=segment), "segments.error_grid",
             f"segment-error-{ctx.dataset}-{segment}-{unit}-{formats.slug(who)}")
else:
    st.info("No prediction/target columns: model error cannot be shown.")
drift_label, drift_format = (("max PSI", ".2f") if drift_metric == "max_value"
                             else ("share of features drifted", ".0%"))
ui.chart(segment_grid_figure(drift, drift_metric, drift_label,
                             f"Drift by group · {drift_label} · {who}", unit,
                             value_format=drift_format, segment_label=segment),
         "segments.drift_grid", f"segment-drift-{ctx.dataset}-{segment}-{unit}-{formats.slug(who)}")
st.caption("Error change: each group's error in the window minus its error on its own "
           "reference rows. Drift: PSI of every feature against the group's reference rows. "
           + drift_rule("psi") + " A dash in a grid: not judged.")

st.subheader("Compare two cells")
st.caption("Any group in any window against any other, feature by feature (A plays the "
           "reference).")
groups = sorted(errors["segment"].unique())
windows = [pd.Timestamp(w).strftime("%Y-%m-%d") for w in sorted(errors["window_start"].unique())]
a1, a2, b1, b2 = st.columns(4)
group_a = a1.selectbox("Group A", groups, key="segments.group_a")
window_a = a2.selectbox(f"{unit.capitalize()} A", windows, index=0, key="segments.window_a")
group_b = b1.selectbox("Group B", groups, key="segments.group_b")
window_b = b2.selectbox(f"{unit.capitalize()} B", windows, index=len(windows) - 1,
                        key="segments.window_b")
key_a = ui.cell_key(ctx, segment, group_a, window_a, unit)
key_b = ui.cell_key(ctx, segment, group_b, window_b, unit)
try:
    table = ui.compare_cells(ctx.root, ctx.version, ctx.dataset, key_a, key_b)
except EmptySampleError as exc:
    st.warning(f"Nothing to compare: {exc}.")
    st.stop()
name_a, name_b = f"A: {group_a}, {window_a}", f"B: {group_b}, {window_b}"
flagged = table["drifted"].fillna(False).astype(bool)
st.metric("Features that differ (default tests)", f"{int(flagged.sum())} of {len(table)}")
table = ranked(table)
ui.drift_table_view(table, key="segments.compare_table", compared=True)
st.caption(describe_tests(table["test"], holm_over="the features compared").replace(
    "drift when", "differs when"))
feature = st.selectbox("Feature", list(table["feature"]), key="segments.feature")
sample_a = ui.feature_samples(ctx.root, ctx.version, ctx.dataset, feature, key_a)[1]
sample_b = ui.feature_samples(ctx.root, ctx.version, ctx.dataset, feature, key_b)[1]
ui.chart(distribution_figure(sample_a, sample_b, roles.features[feature], feature,
                             unit_of(feature), names=(name_a, name_b)),
         "segments.compare_figure", f"compare-{ctx.dataset}-{feature}")
