"""Drift heatmap: features x time windows, for all groups or one; click a cell to drill in."""
import pandas as pd
import streamlit as st

import ui
from analysis import formats
from analysis.drift import describe_row
from analysis.figures import distribution_figure, heatmap_figure, unit_of
from analysis.heatmap import (METRICS, cell_class, grid, grid_caption, pooled_std, select,
                              sort_features)
from analysis.noise import percentile_name
from analysis.stats import EmptySampleError

ctx = ui.page("Drift heatmap", "Where and when: every feature in every time window, against "
              "the reference (same user groups). Click a cell to see that feature, window "
              "and group.")
roles = ctx.info.roles
if roles.timestamp is None:
    st.warning("This dataset has no timestamp column: there are no time windows to map.")
    st.stop()

c1, c2, c3, c4 = st.columns([1.5, 1.3, 1.3, 0.9])
unit = c1.segmented_control("Window", ["day", "week", "month"], default="month",
                            key="heatmap.unit") or "month"
metric = c2.selectbox("Distance", list(METRICS), key="heatmap.metric",
                      format_func=lambda m: METRICS[m][0],
                      help="PSI and Jensen–Shannon on the reference deciles / categories; "
                           "Wasserstein (normed) and KS on 1000 reference-quantile bins "
                           "(numeric features only).")
segment = (c3.selectbox("Segment column", roles.segments, key="heatmap.segment_column")
           if len(roles.segments) > 1 else (roles.segments[0] if roles.segments else None))
allowed = ui.selected_segments(ctx, segment)
group_options = ["all"] + (allowed if allowed is not None else
                           ui.segment_values(ctx.root, ctx.version, ctx.dataset, segment)
                           if segment else [])
group = c3.selectbox(f"{segment or 'Group'}", group_options, key="heatmap.group",
                     format_func=lambda g: "all selected groups" if g == "all" else g) \
    if segment else "all"
order_by = c4.radio("Sort rows", ["max", "name"], key="heatmap.sort",
                    format_func=lambda o: "by max value" if o == "max" else "by name")

start, end, _ = ctx.key
label, resolution, bands = METRICS[metric]
with st.spinner(f"Aggregating binned counts in {ui.engine().label}…"):
    bins = ui.frozen_bins(ctx.root, ctx.version, ctx.dataset)
    if resolution == "coarse":
        cube = ui.coarse_cube(ctx.root, ctx.version, ctx.dataset, segment)
    else:
        cube = ui.fine_cube(ctx.root, ctx.version, ctx.dataset, segment, unit, start, end)
    chosen = allowed if group == "all" else [group]
    selected = select(cube, unit, start, end, chosen)
    std = (pooled_std(ui.reference_moments(ctx.root, ctx.version, ctx.dataset, segment), chosen)
           if metric == "wasserstein" else None)
    cells = grid(selected, metric, bins, std)

if cells.empty or cells["rows"].sum() == 0:
    st.warning("No production rows in the selected time range and groups.")
    st.stop()

order = sort_features(cells, order_by)
# the groups shown: the sidebar's filters, and this page's group on its segment column
who = formats.selection({**dict(ctx.key[2]), **({segment: (group,)} if group != "all" else {})})
fig = heatmap_figure(cells, label, bands, order, unit, f"{label} by feature and {unit} · {who}")
event = ui.chart(fig, "heatmap.chart",
                 f"heatmap-{ctx.dataset}-{metric}-{unit}-{formats.slug(who)}",
                 on_select="rerun", selection_mode="points")

# a click on a cell sets the drill-down selectors (once per new click)
points = event.selection.points if event and event.selection else []
if points:
    clicked = tuple(points[0].get("customdata") or (points[0].get("y"), points[0].get("x")))
    if st.session_state.get("heatmap.applied") != clicked:
        st.session_state["heatmap.applied"] = clicked
        st.session_state["heatmap.cell_feature"] = clicked[0]
        st.session_state["heatmap.cell_window"] = clicked[1]

st.caption(grid_caption(cells, metric) + " Cells compare each window's rows with the "
           "reference rows of the same groups.")

st.subheader("Drill-down")
windows = [pd.Timestamp(w).strftime("%Y-%m-%d") for w in sorted(cells["window_start"].unique())]
if st.session_state.get("heatmap.cell_feature") not in order:
    st.session_state["heatmap.cell_feature"] = order[0]
if st.session_state.get("heatmap.cell_window") not in windows:
    st.session_state["heatmap.cell_window"] = windows[-1]
d1, d2 = st.columns(2)
feature = d1.selectbox("Feature", order, key="heatmap.cell_feature")
window = d2.selectbox(f"{unit.capitalize()} starting", windows, key="heatmap.cell_window")

cell = cells[(cells["feature"] == feature) &
             (cells["window_start"] == pd.Timestamp(window))].iloc[0]
key = ui.cell_key(ctx, segment, None if group == "all" else group, window, unit)
m1, m2, m3, m4 = st.columns(4)
m1.metric(label, formats.statistic(cell["value"]), help="The heatmap's value for this cell.")
m2.metric("Band", cell_class(metric, cell["value"], cell["verdict"]),
          help="The cell's colour: its band when it drifted, else not judged, stable or "
               "within noise.")
m3.metric("Noise level", formats.statistic(cell["noise"]),
          help=f"The {percentile_name()} of the {label} between two samples of the cell's "
               f"sizes drawn from the reference (computed where the value reaches "
               f"{bands[0]:g}).")
m4.metric("Production rows in the cell", formats.count(cell["rows"]))
try:
    table = ui.drift_table(ctx.root, ctx.version, ctx.dataset, key, None, "quantile")
    row = table.set_index("feature").loc[feature]
    st.caption(f"Default test for this cell: {describe_row(row.to_dict())}")
except EmptySampleError as exc:
    st.warning(f"Nothing to compare in this cell: {exc}.")
    st.stop()
reference, production = ui.feature_samples(ctx.root, ctx.version, ctx.dataset, feature, key)
ui.chart(distribution_figure(reference, production, roles.features[feature], feature,
                             unit_of(feature),
                             title=f"{feature}: reference vs {unit} of {window} · {who}"),
         "heatmap.drill", f"cell-{ctx.dataset}-{feature}-{window}")
