"""Data vs concept: did the inputs change (P(x)) or the relationship to the target (P(y|x)),
in which group, since when, and how much of the error each explains."""
import streamlit as st

import ui
from analysis import concept_view as view
from analysis import formats
from analysis import investigation as inv
from analysis.attribution import CLASSIFICATION_METRICS, METRICS, REGRESSION_METRICS
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
                    help="auto: windows that hold enough rows to judge, 8 to 30 of them where "
                         "the data allows (one window over everything when even months are "
                         "too small)")
metrics = REGRESSION_METRICS if ctx.info.task == "regression" else CLASSIFICATION_METRICS
metric = c3.selectbox("Error metric", [None, *metrics], key="concept.metric",
                      format_func=lambda m: "default" if m is None else METRICS[m],
                      disabled=not (roles.target and roles.prediction))

path, params = inv.investigation_job(ctx.store, ctx.dataset, ctx.filters, segment, unit, metric,
                                     ui.engine())
result = ui.stored_result(path)
if result is None:
    ui.job_panel("investigation", path, params, "Investigating every group and window",
                 "concept.job", start_label="Run the investigation",
                 intro="The investigation for these filters is on its way: one domain "
                       "classifier and one independent model of the target for all windows, "
                       "then the tests of the windows, of the groups where flagged, and of "
                       "each group's windows as a sequence. It runs in the background and is kept in "
                       "the store, so you can browse other pages meanwhile (about a minute on "
                       "the demo on a quiet machine).")
    st.stop()

who = formats.selection(ctx.key[2])
kind, text = view.banner(result)
getattr(st, kind)(text)
if view.sample_note(result):
    st.caption(view.sample_note(result))
st.markdown("**For the postmortem**")
st.code(result["summary"], language=None, wrap_lines=True)

cards = view.decomposition_cards(result)
if cards:
    for col, card in zip(st.columns(len(cards)), cards):
        col.metric(card["label"], card["value"], help=card["help"])
    parts = inv.window_parts(result)
    if not parts.empty:
        label = view.metric_label_with_unit(result)
        name = view.SHORT_METRICS.get(result["metric"], result["metric"])
        ui.chart(decomposition_figure(parts, label, result["window"],
                                      f"What changed the {name}: data vs concept · {who}"),
                 "concept.decomposition", f"decomposition-{ctx.dataset}-{formats.slug(who)}")
        st.caption(f"Bars: the change of the {name} against the reference, split into what "
                   "the inputs' shift alone predicts (the reference's importance-weighted to "
                   "the window's inputs; inputs outside the reference's support count as data "
                   "drift) and the rest (concept drift), with 95% bootstrap intervals. The "
                   "verdict's concept test compares the two periods on the inputs both share."
                   + (" For accuracy, higher is better: a bar below zero is a loss."
                      if result["metric"] == "accuracy" else ""))
elif not result["judged"]["decomposition"]:
    st.info("The model's error cannot be decomposed: "
            f"{result['judged'].get('reasons', {}).get('decomposition') or 'no labels'}.")

grid = inv.grid_frame(result)
ui.chart(verdict_grid_figure(grid, result["segment"], result["window"],
                             f"Verdict per group and window · {who}"), "concept.grid",
         f"verdicts-{ctx.dataset}-{formats.slug(who)}")

st.subheader("Data drift: which features")
drifted = view.drifted_table(result)
if not drifted.empty:
    st.dataframe(drifted, hide_index=True, height=formats.table_height(len(drifted)),
                 column_config={"max PSI": st.column_config.NumberColumn(format="%.3f")})
elif result["judged"]["data"]:
    st.write("No feature's distribution changed beyond noise.")
else:
    st.write(f"Not judged: {result['judged']['reasons']['data']}.")
st.subheader("Concept drift: along which features")
status = view.concept_status(result)
if status is None:
    st.dataframe(view.concept_table(result), hide_index=True, column_config={
        "share of disagreement": st.column_config.ProgressColumn(
            format="percent", min_value=0.0, max_value=1.0)})
else:
    st.write(status)
began = view.change_points_table(result)
if not began.empty:
    st.subheader("When it began")
    st.dataframe(began, hide_index=True, height=formats.table_height(len(began)))
    st.caption("Dated inside the first window with drift (or the one before it) from the "
               "rows' own evidence: the change point of the domain classifier's score for "
               "data drift, of the reference model's error for concept drift.")

for note in result["notes"]:
    st.caption(f"ℹ️ {note}")

# -- one cell ---------------------------------------------------------------------------
st.divider()
st.subheader("Evidence for one cell")
cells = result["cells"]
segments, first = view.cell_choices(result)
k1, k2 = st.columns(2)
if st.session_state.get("concept.cell_segment") not in segments:
    st.session_state.pop("concept.cell_segment", None)
cell_segment = k1.selectbox("Group", segments, index=segments.index(first["segment"]),
                            key="concept.cell_segment")
starts = [c["start"] for c in cells if c["segment"] == cell_segment]
if st.session_state.get("concept.cell_start") not in starts:
    st.session_state.pop("concept.cell_start", None)
cell_start = k2.selectbox("Window", starts, format_func=view.window_label, key="concept.cell_start",
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
    features = view.cell_feature_table(cell)
    st.dataframe(features, hide_index=True, height=formats.table_height(len(features)),
                 column_config={"PSI": st.column_config.NumberColumn(format="%.3f"),
                                "p (Holm)": st.column_config.NumberColumn(format="%.4f")})
    st.caption(view.feature_rule(result))

why_not = view.evidence_available(cell, bool(roles.target))
if why_not:
    st.info(why_not)
    st.stop()
ev_path, ev_params = inv.evidence_job(ctx.store, ctx.dataset, ctx.filters, segment, cell_segment,
                                      cell_start, cell["end"], ui.engine())
stored = ui.stored_result(ev_path)
if stored is None:
    st.caption("The evidence retrains a model on this cell's rows and compares it with the "
               "reference model (a few seconds to a minute).")
    ui.job_panel("evidence", ev_path, ev_params, "Retraining on this cell", "concept.evidence",
                 autostart=False, start_label="Show the evidence for this cell")
    st.stop()

evidence = inv.evidence_from_json(stored)
warning = view.support_warning(cell)
if warning:
    st.warning(warning)
target_unit = unit_of(roles.target) or roles.target
ui.chart(side_by_side_figure(evidence["coefficients"], "surrogate coefficient "
                             f"({target_unit} per standard deviation of the input)",
                             "Linear surrogate of each model: reference vs retrained"),
         "concept.coefficients", f"coefficients-{ctx.dataset}")
ui.chart(side_by_side_figure(evidence["importance"], view.importance_label(result),
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
                                     f"{roles.target} − {roles.prediction}"
                                     + (f", {target_unit}" if unit_of(roles.target) else "")),
             "concept.residuals", f"residuals-{ctx.dataset}-{feature}")
