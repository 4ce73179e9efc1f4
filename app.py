"""Drift Investigator: landing page."""
import streamlit as st

import ui

st.set_page_config(page_title="Drift Investigator", page_icon="🔎", layout="wide")

st.title("Drift Investigator")
st.markdown(
    "Find out **why a production model degraded**: compare production data with the "
    "reference the model was trained on, feature by feature, window by window and "
    "user group by user group, and tell **data drift** (new kinds of inputs, P(x) changed) "
    "from **concept drift** (the same inputs now lead to different outcomes, P(y|x) changed)."
)

ctx = ui.sidebar()
if ctx is not None:
    roles = ctx.info.roles
    st.subheader(f"Dataset: `{ctx.dataset}`")
    if ctx.info.description:
        st.caption(ctx.info.description)
    counts = ui.row_counts(ctx.root, ctx.version, ctx.dataset, ctx.key)
    bounds = ui.production_bounds(ctx.root, ctx.version, ctx.dataset)
    cols = st.columns(4)
    cols[0].metric("Task", ctx.info.task)
    cols[1].metric("Reference rows", f"{counts['reference']:,}")
    cols[2].metric("Production rows (filtered)", f"{counts['production']:,}")
    cols[3].metric("Features", len(roles.features))
    if bounds:
        st.caption(f"Production data from {bounds[0]:%Y-%m-%d} to {bounds[1]:%Y-%m-%d}.")
    st.markdown(
        f"- **Numeric features:** {', '.join(roles.numeric) or '—'}\n"
        f"- **Categorical features:** {', '.join(roles.categorical) or '—'}\n"
        f"- **Segments:** {', '.join(roles.segments) or '—'} · **timestamp:** "
        f"{roles.timestamp or '—'} · **prediction:** {roles.prediction or '—'} · "
        f"**target:** {roles.target or '—'}"
    )

st.subheader("Where to look")
st.page_link("pages/1_Overview.py", label="Overview: model error, volume and drifted "
             "features per time window")
st.page_link("pages/2_Feature_drift.py", label="Feature drift: every feature's test and "
             "verdict, and the distributions of the one you pick")
st.caption("The sidebar filters (dataset, production time range, user groups) apply to "
           "every page.")
