"""Feature drift: the per-feature table and the distributions of one feature."""
import streamlit as st

import ui
from analysis import formats
from analysis.drift import (BINNINGS, TESTS, common_note, describe_tests, display_columns,
                            display_table, ranked)
from analysis.figures import distribution_figure, unit_of
from analysis.noise import percentile_name
from analysis.stats import EmptySampleError

ctx = ui.page("Feature drift")
features = ctx.info.roles.features

left, right = st.columns(2)
test_names = ["default"] + list(TESTS)
test = left.selectbox("Test", test_names, key="feature.test",
                      format_func=lambda n: "default per column" if n == "default"
                      else TESTS[n].label,
                      help="Default: Wasserstein (numeric) and Jensen–Shannon (categorical) "
                           "for references over 1000 rows; KS, chi-square or z-test below.")
binning = right.radio("Binning for PSI / Jensen–Shannon / Hellinger / chi-square", BINNINGS,
                      key="feature.binning", horizontal=True,
                      help="quantile: reference deciles or categories (ours); "
                           "evidently: Evidently 0.7's bins, to reproduce its numbers.")

try:
    with st.spinner("Testing every feature…"):
        table = ui.drift_table(ctx.root, ctx.version, ctx.dataset, ctx.key,
                               None if test == "default" else test, binning)
except EmptySampleError as exc:
    st.warning(f"Nothing to compare: {exc}.")
    st.stop()

drifted = table[table["drifted"].fillna(False).astype(bool)]
st.metric("Drifted features", f"{len(drifted)} of {len(table)}")
table = ranked(table)
shown = display_table(table)
if common_note(table):
    st.caption(f"Every feature: {common_note(table)}.")
# notes wrap onto a second and third line when they would not fit their column
row_height = formats.wrapped_row_height(shown["note"], chars_per_line=16)
st.dataframe(shown, hide_index=True, key="feature.table",
             height=formats.table_height(len(shown), row_height or 35),
             column_order=display_columns(table), row_height=row_height,
             column_config={
                 "feature": st.column_config.TextColumn(width=150),
                 "test label": st.column_config.TextColumn("test", width=82),
                 "statistic": st.column_config.TextColumn(width=70, alignment="right"),
                 "noise level": st.column_config.TextColumn(
                     "noise", width=62, alignment="right",
                     help=f"Distances: the {percentile_name()} of the distance between "
                          "two samples of these sizes drawn from the reference"),
                 "p-value": st.column_config.TextColumn(width=68, alignment="right"),
                 "adjusted p": st.column_config.TextColumn(
                     width=78, alignment="right",
                     help="Holm-adjusted over the features shown: this one decides"),
                 "drift when": st.column_config.TextColumn(width=90),
                 "verdict": st.column_config.TextColumn(width=88),
                 "reference rows": st.column_config.NumberColumn(
                     "ref. rows", format="localized", width=74,
                     help="Reference rows with a value"),
                 "production rows": st.column_config.NumberColumn(
                     "prod. rows", format="localized", width=76,
                     help="Production rows with a value"),
                 "note": st.column_config.TextColumn(width=120),
             })
st.caption(describe_tests(table["test"], holm_over="the features in the table")
           + " Drifted features first, then those within noise; click a column header to sort.")

order = list(table["feature"])
feature = st.selectbox("Feature to inspect", order, key="feature.selected",
                       help="Drifted features first, largest statistic first.")
reference, production = ui.feature_samples(ctx.root, ctx.version, ctx.dataset, feature, ctx.key)
fig = distribution_figure(reference, production, features[feature], feature, unit_of(feature))
ui.chart(fig, "feature.figure", f"distribution-{ctx.dataset}-{feature}")
