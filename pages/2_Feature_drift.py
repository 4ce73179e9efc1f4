"""Feature drift: the per-feature table and the distributions of one feature."""
import streamlit as st

import ui
from analysis import formats
from analysis.drift import BINNINGS, TESTS, describe_tests, ranked
from analysis.figures import distribution_figure, unit_of
from analysis.stats import EmptySampleError
from analysis.summary import SAMPLE_ROWS

ctx = ui.page("Feature drift")
features = ctx.info.roles.features

on_spark = ui.engine().spark
left, right = st.columns(2)
# on Spark the table comes from binned counts: only the default tests exist there
test_names = ["default"] + ([] if on_spark else list(TESTS))
test = left.selectbox("Test", test_names, key="feature.test", disabled=on_spark,
                      format_func=lambda n: "default per column" if n == "default"
                      else TESTS[n].label,
                      help="Default: Wasserstein (numeric) and Jensen–Shannon (categorical) "
                           "for references over 1000 rows; KS, chi-square or z-test below.")
binning = right.radio("Binning for PSI / Jensen–Shannon / Hellinger / chi-square", BINNINGS,
                      key="feature.binning", horizontal=True, disabled=on_spark,
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
           + " Drifted features first, then those within noise; click a column header to sort."
           + (f" Computed in {ui.engine().label} from binned counts (Wasserstein on 1000 "
              "reference-quantile bins, Jensen–Shannon on the deciles or categories); the "
              "charts below draw a sample of at most "
              f"{formats.count(SAMPLE_ROWS)} rows per side." if on_spark else ""))

order = list(table["feature"])
feature = st.selectbox("Feature to inspect", order, key="feature.selected",
                       help="Drifted features first, largest statistic first.")
reference, production = ui.feature_samples(ctx.root, ctx.version, ctx.dataset, feature, ctx.key)
fig = distribution_figure(reference, production, features[feature], feature, unit_of(feature))
ui.chart(fig, "feature.figure", f"distribution-{ctx.dataset}-{feature}")
