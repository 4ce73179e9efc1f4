"""Drift Investigator: landing page."""
import streamlit as st

import ui
from analysis.scenarios import rental

#: Every page, and the question it answers (Home links them all). One line each: a page
#: link does not wrap, so each stays within the page at 1280 px.
PAGES = [
    ("pages/1_Overview.py", "Overview", "is the model's error up, since when, and how many "
     "features drifted in each window?"),
    ("pages/2_Feature_drift.py", "Feature drift", "which features drifted? Each feature's test "
     "and verdict, and its distributions"),
    ("pages/3_Heatmap.py", "Drift heatmap", "when, and in which group, did each feature move? "
     "Click a cell to drill in"),
    ("pages/4_Segments.py", "Segments", "which user group's error rose, and did its inputs "
     "drift? Any two cells compared"),
    ("pages/6_Data_vs_concept.py", "Data vs concept", "new inputs (data drift) or new outcomes "
     "for the same inputs (concept drift)?"),
    ("pages/7_Live_monitoring.py", "Live monitoring", "is a live model's traffic drifting, and "
     "what does it probably cost before labels arrive?"),
    ("pages/8_Stream_monitoring.py", "Stream monitoring", "did a recommender's CTR drop, and "
     "which upstream signal explains it?"),
    ("pages/5_Upload.py", "Upload", "add your own CSV or Parquet snapshot, validated before "
     "anything is stored"),
]

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
    truth = rental.ground_truth()
    if ctx.dataset == truth["dataset"]:
        with st.expander("The demo's ground truth: the drift it was built with, which the "
                         "pages should find"):
            st.download_button("⬇ rental_ground_truth.json",
                               data=rental.GROUND_TRUTH_PATH.read_bytes(),
                               file_name=rental.GROUND_TRUTH_PATH.name, mime="application/json",
                               key="home.ground_truth", on_click="ignore")
            st.json(truth, expanded=1)
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

st.caption(f"Aggregation engine: **{ui.engine().label}** — every page's queries run there "
           "(set with `DRIFT_ENGINE` / `DRIFT_SPARK_MASTER` or `.streamlit/secrets.toml`).")

st.subheader("Where to look")
for path, name, question in PAGES:
    st.page_link(path, label=f"**{name}**: {question}")
st.caption("The sidebar filters (dataset, production time range, user groups) apply to "
           "every page.")
