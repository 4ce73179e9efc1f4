"""Data vs concept: did the inputs change (P(x)) or the relationship to the target (P(y|x)),
in which group, since when, and how much of the error each explains."""
import pandas as pd
import streamlit as st

import ui
from analysis import investigation as inv
from analysis.attribution import ALL, CLASSIFICATION_METRICS, METRICS, REGRESSION_METRICS
from analysis.figures import (decomposition_figure, predictions_figure, residual_profile_figure,
                              side_by_side_figure, unit_of, verdict_grid_figure)

ctx = ui.page("Data vs concept", "Which distribution changed, where and since when: the inputs "
              "(data drift) or the relationship between inputs and target (concept drift), and "
              "the share of the error change each explains.")
roles = ctx.info.roles
c1, c2, c3 = st.columns(3)
segment = c1.selectbox("Segment column", roles.segments or [None], key="concept.segment",
                       format_func=lambda v: "none" if v is None else v)
unit = c2.selectbox("Window", ["auto", "hour", "day", "week", "month"], key="concept.unit",
                    help="auto: the calendar unit giving about 8 to 30 windows")
metrics = REGRESSION_METRICS if ctx.info.task == "regression" else CLASSIFICATION_METRICS
metric = c3.selectbox("Error metric", [None, *metrics], key="concept.metric",
                      format_func=lambda m: "default" if m is None else METRICS[m],
                      disabled=not (roles.target and roles.prediction))

status = st.empty()
with st.spinner("Investigating every group and window (about half a minute on the demo; "
                "kept afterwards)…"):
    result = ui.investigation(ctx.root, ctx.version, ctx.dataset, ctx.key, segment, unit, metric,
                              _progress=lambda m: status.caption(f"⏳ {m}"))
status.empty()

verdict = result["verdict"]
banner = {"none": st.success, "data": st.info, "concept": st.warning, "both": st.warning}[verdict]
banner(f"**Verdict: {verdict.upper()}** — " + {
    "none": "no drift beyond noise.", "data": "the inputs changed (P(x)).",
    "concept": "the relationship between inputs and target changed (P(y|x)).",
    "both": "both the inputs and the relationship to the target changed."}[verdict])
st.markdown("**For the postmortem**")
st.code(result["summary"], language=None, wrap_lines=True)

d = result["decomposition"]
label = result["metric_label"] or ""
if d:
    cols = st.columns(5)
    fmt = lambda part: "—" if part["value"] is None else f"{part['value']:,.4g}"  # noqa: E731
    ci = lambda part: "" if part["low"] is None else f"95% CI {part['low']:,.3g} to {part['high']:,.3g}"  # noqa: E731
    cols[0].metric(f"Reference {result['metric']}", fmt(d["reference"]), help=ci(d["reference"]))
    cols[1].metric("Expected", fmt(d["expected"]),
                   help="What the inputs' shift alone predicts. " + ci(d["expected"]))
    cols[2].metric(f"Realized {result['metric']}", fmt(d["realized"]), help=ci(d["realized"]))
    cols[3].metric("Data-drift part", fmt(d["data_part"]), help=ci(d["data_part"]))
    cols[4].metric("Concept-drift part", fmt(d["concept_part"]), help=ci(d["concept_part"]))
    parts = inv.window_parts(result)
    if not parts.empty:
        ui.chart(decomposition_figure(parts, label, result["window"]), "concept.decomposition",
                 f"decomposition-{ctx.dataset}")
        st.caption("Bars: the change of the error against the reference, split into what the "
                   "inputs' shift alone predicts (the reference error importance-weighted to "
                   "the window's inputs; inputs outside the reference's support count as data "
                   "drift) and the rest (concept drift), with 95% bootstrap intervals. The "
                   "verdict's concept test compares the two periods on the inputs both share.")
elif not result["judged"]["decomposition"]:
    st.info("The model's error cannot be decomposed: this dataset has no "
            + ("prediction" if roles.target else "target") + " column.")

grid = inv.grid_frame(result)
ui.chart(verdict_grid_figure(grid, result["segment"], result["window"]), "concept.grid",
         f"verdicts-{ctx.dataset}")

left, right = st.columns(2)
with left:
    st.subheader("Data drift: which features")
    if result["drifted_features"]:
        st.dataframe(pd.DataFrame(result["drifted_features"])[
            ["feature", "role", "max_psi", "first_window", "segments"]].rename(
            columns={"max_psi": "max PSI", "first_window": "since"}), hide_index=True)
    else:
        st.write("No feature's distribution changed beyond noise.")
with right:
    st.subheader("Concept drift: along which features")
    if result["concept_features"]:
        st.dataframe(pd.DataFrame(result["concept_features"]).rename(
            columns={"importance": "share of disagreement"}), hide_index=True)
    elif result["judged"]["concept"]:
        st.write("P(y|x) did not change beyond noise.")
    else:
        st.write("Not judged: no labels.")
for note in result["notes"]:
    st.caption(f"ℹ️ {note}")

# -- one cell ---------------------------------------------------------------------------
st.divider()
st.subheader("Evidence for one cell")
cells = result["cells"]
segments = [ALL] + sorted({c["segment"] for c in cells} - {ALL})
flagged = [c for c in cells if c["verdict"] != "none"]
first = next((c for c in flagged if c["verdict"] in ("concept", "both") and c["segment"] != ALL),
             flagged[0] if flagged else cells[0])
k1, k2 = st.columns(2)
cell_segment = k1.selectbox("Group", segments, index=segments.index(first["segment"]),
                            key="concept.cell_segment")
starts = [c["start"] for c in cells if c["segment"] == cell_segment]
labels = {s: ("all rows" if s is None else s[:16].replace("T", " ")) for s in starts}
cell_start = k2.selectbox("Window", starts, format_func=labels.get, key="concept.cell_start",
                          index=starts.index(first["start"]) if first["start"] in starts else 0)
cell = next(c for c in cells if c["segment"] == cell_segment and c["start"] == cell_start)
st.code(inv.cell_text(cell, result), language=None, wrap_lines=True)

if cell["data"].get("judged"):
    e1, e2, e3, e4 = st.columns(4)
    e1.metric("Domain classifier AUC", f"{cell['data']['auc']:.3f}",
              help="Cross-fitted; 0.5 = the window's inputs look like the reference's")
    e2.metric("Effective sample size", f"{cell['data']['ess_share']:.0%}",
              help="(Σw)²/Σw² of the importance weights, as a share of the reference rows")
    e3.metric("Outside reference support", f"{cell['data']['out_of_support_share']:.0%}",
              help="Window rows where the window is over 20× as dense as the reference")
    e4.metric("Weights clipped", f"{cell['data']['clipped_share']:.1%}")
    table = pd.DataFrame([{"feature": f, "PSI": v["psi"], "p (Holm)": v.get("p_adjusted"),
                           "drifted": v.get("drifted")} for f, v in cell["data"]["features"].items()])
    st.dataframe(table.sort_values("PSI", ascending=False), hide_index=True,
                 column_config={"PSI": st.column_config.NumberColumn(format="%.3f"),
                                "p (Holm)": st.column_config.NumberColumn(format="%.2g")})

if roles.target and cell["concept"].get("judged"):
    with st.spinner("Retraining on this cell…"):
        try:
            evidence = ui.cell_evidence(ctx.root, ctx.version, ctx.dataset, ctx.key, segment,
                                        cell_segment, cell_start, cell["end"])
        except ValueError as exc:
            evidence = None
            st.info(str(exc))
    if evidence:
        target_unit = unit_of(roles.target) or roles.target
        ui.chart(side_by_side_figure(evidence["coefficients"], "surrogate coefficient "
                                     f"({target_unit} per standard deviation of the input)",
                                     "Linear surrogate of each model: reference vs retrained"),
                 "concept.coefficients", f"coefficients-{ctx.dataset}")
        ui.chart(side_by_side_figure(evidence["importance"], "permutation importance "
                                     "(increase of the error when the feature is shuffled)",
                                     "Permutation importance: reference vs retrained"),
                 "concept.importance", f"importance-{ctx.dataset}")
        ui.chart(predictions_figure(evidence["predictions"], target_unit),
                 "concept.predictions", f"predictions-{ctx.dataset}")
        profiles = {f: p for f, p in evidence["residuals"].items() if p is not None}
        if profiles:
            ranked = inv.rank_residual_changes(profiles)
            feature = st.selectbox("Residuals along", ranked, key="concept.residual_feature",
                                   help="Features ordered by the largest change of the mean "
                                        "residual in any bin")
            ui.chart(residual_profile_figure(profiles[feature], feature,
                                             f"{roles.target} − {roles.prediction}"),
                     "concept.residuals", f"residuals-{ctx.dataset}-{feature}")
