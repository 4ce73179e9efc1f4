"""Feature drift: the per-feature table and the distributions of one feature."""
import streamlit as st

import ui
from analysis.drift import BINNINGS, TESTS
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
shown = table.assign(verdict=table["drifted"].map({True: "drift", False: "stable"})
                     .fillna("not judged"))
shown = shown[["feature", "kind", "test", "statistic", "p_value", "threshold", "verdict",
               "n_reference", "n_production", "note"]]
st.dataframe(shown.sort_values("statistic", ascending=False, na_position="last"),
             hide_index=True, key="feature.table", column_config={
                 "statistic": st.column_config.NumberColumn(format="%.4f"),
                 "p_value": st.column_config.NumberColumn("p-value", format="%.3g"),
                 "n_reference": st.column_config.NumberColumn("reference rows", format="localized"),
                 "n_production": st.column_config.NumberColumn("production rows",
                                                               format="localized"),
             })
st.caption("Click a column header to sort. Distances (PSI, Wasserstein, Jensen–Shannon, "
           "Hellinger) flag drift at or above the threshold; tests with a p-value (KS, "
           "chi-square, z) flag drift below it.")

ranked = table.assign(rank=table["drifted"].fillna(False).astype(bool)).sort_values(
    ["rank", "statistic"], ascending=False, na_position="last")
order = list(ranked["feature"])
feature = st.selectbox("Feature to inspect", order, key="feature.selected",
                       help="Drifted features first, largest statistic first.")
reference, production = ui.feature_samples(ctx.root, ctx.version, ctx.dataset, feature, ctx.key)
fig = distribution_figure(reference, production, features[feature], feature, unit_of(feature))
ui.chart(fig, "feature.figure", f"distribution-{ctx.dataset}-{feature}")
