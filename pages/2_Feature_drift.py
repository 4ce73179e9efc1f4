"""Feature drift: the per-feature table and the distributions of one feature."""
import streamlit as st

import ui
from analysis.drift import BINNINGS, TESTS, describe_tests, ranked
from analysis.figures import distribution_figure, unit_of
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
ui.drift_table_view(table, key="feature.table")
st.caption(describe_tests(table["test"], holm_over="the features in the table")
           + " Drifted features first, then those within noise; click a column header to sort.")

order = list(table["feature"])
feature = st.selectbox("Feature to inspect", order, key="feature.selected",
                       help="Drifted features first, largest statistic first.")
reference, production = ui.feature_samples(ctx.root, ctx.version, ctx.dataset, feature, ctx.key)
fig = distribution_figure(reference, production, features[feature], feature, unit_of(feature))
ui.chart(fig, "feature.figure", f"distribution-{ctx.dataset}-{feature}")
