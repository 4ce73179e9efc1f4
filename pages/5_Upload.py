"""Upload: bring a CSV or Parquet snapshot, see what is wrong with it, or store it."""
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from analysis.ingest import commit, infer_roles, prepare, read_snapshot
from analysis.store import Roles, StoreError

st.set_page_config(page_title="Upload · Drift Investigator", layout="wide")
st.title("Upload a snapshot")
st.caption("A CSV (delimiter, encoding and decimal commas detected) or Parquet file, as the "
           "reference or a production slice of a new or existing dataset. Nothing is stored "
           "until the validation report is clean and you commit.")
store = ui.store()
ui.navigation()

names = store.datasets()
c1, c2 = st.columns(2)
mode = c1.radio("Dataset", ["existing", "new"] if names else ["new"], horizontal=True,
                key="upload.mode")
if mode == "existing":
    dataset = c1.selectbox("Existing dataset", names, key="upload.dataset")
else:
    dataset = c1.text_input("New dataset name", key="upload.new_name",
                            placeholder="letters, digits, _ - .").strip()
slice_ = c2.radio("Slice", ["production", "reference"], horizontal=True, key="upload.slice")
task = c2.radio("Task (new dataset)", ["regression", "classification"], horizontal=True,
                key="upload.task", disabled=mode == "existing")

uploaded = st.file_uploader("Snapshot file", type=["csv", "tsv", "txt", "parquet"],
                            key="upload.file")
if uploaded is None or not dataset:
    st.info("Choose the dataset and a file to see its validation report.")
else:
    cache = st.session_state.setdefault("upload.parsed", {})
    if uploaded.file_id not in cache:
        cache.clear()
        with st.status(f"Reading {uploaded.name} ({uploaded.size / 1e6:,.1f} MB)…") as status:
            suffix = Path(uploaded.name).suffix or ".csv"
            with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as tmp:
                while chunk := uploaded.read(1 << 24):
                    tmp.write(chunk)
            status.update(label="Parsing with DuckDB's CSV reader…")
            cache[uploaded.file_id] = read_snapshot(tmp.name)
            cache[uploaded.file_id].source = uploaded.name
            Path(tmp.name).unlink(missing_ok=True)
            status.update(label=f"Read {uploaded.name}", state="complete")
    parsed = cache[uploaded.file_id]
    table = parsed.table
    if table is not None:
        st.caption(f"{table.num_rows:,} rows × {table.num_columns} columns · delimiter "
                   f"{parsed.delimiter or '—'!r} · encoding {parsed.encoding or 'parquet'} · "
                   f"decimal separator {parsed.decimal!r}")
        st.dataframe(table.slice(0, 20).to_pandas(), key="upload.preview")

    roles = None
    if mode == "new" and table is not None:
        st.subheader("Column roles")
        st.caption("Suggested from names and types; correct them before anything is stored.")
        guess = infer_roles(table)
        cols = table.column_names
        r1, r2, r3 = st.columns(3)
        ts = r1.selectbox("Timestamp", ["—"] + cols, key=f"upload.roles.ts.{uploaded.file_id}",
                          index=(cols.index(guess.timestamp) + 1) if guess.timestamp else 0)
        pred = r2.selectbox("Prediction", ["—"] + cols, key=f"upload.roles.pred.{uploaded.file_id}",
                            index=(cols.index(guess.prediction) + 1) if guess.prediction else 0)
        target = r3.selectbox("Target", ["—"] + cols, key=f"upload.roles.target.{uploaded.file_id}",
                              index=(cols.index(guess.target) + 1) if guess.target else 0)
        segments = st.multiselect("Segment columns", cols, default=guess.segments,
                                  key=f"upload.roles.segments.{uploaded.file_id}")
        numeric = st.multiselect("Numeric features", cols, default=guess.numeric,
                                 key=f"upload.roles.numeric.{uploaded.file_id}")
        categorical = st.multiselect("Categorical features", cols, default=guess.categorical,
                                     key=f"upload.roles.categorical.{uploaded.file_id}")
        pick = (lambda v: None if v == "—" else v)
        roles = Roles(timestamp=pick(ts), segments=segments, numeric=numeric,
                      categorical=categorical, prediction=pick(pred), target=pick(target))

    try:
        prepared = prepare(store, dataset, slice_, parsed, roles)
    except StoreError as exc:
        st.error(str(exc))
        st.stop()
    st.subheader("Validation report")
    if prepared.findings:
        report = pd.DataFrame([f.as_dict() for f in prepared.findings])
        report["examples"] = report["examples"].map("; ".join)
        st.dataframe(report[["level", "check", "column", "rows", "message", "examples"]],
                     hide_index=True, key="upload.report")
    if prepared.errors:
        st.error(f"{len(prepared.errors)} error(s): this snapshot cannot be stored. "
                 "Nothing was written.")
    else:
        warnings = sum(f.level == "warning" for f in prepared.findings)
        st.success("No errors" + (f"; {warnings} warning(s) will be kept with the snapshot."
                                  if warnings else "."))
        if st.button(f"Commit to {dataset} ({slice_})", type="primary", key="upload.commit"):
            with st.spinner("Storing…"):
                result = commit(store, prepared, task=task)
            st.session_state.pop("upload.parsed", None)
            st.success(f"Stored {result.snapshot.rows:,} rows as {slice_} snapshot "
                       f"{result.snapshot.id} of {dataset}.")

if dataset and dataset in store.datasets():
    st.subheader(f"Snapshots of {dataset}")
    snaps = store.snapshots(dataset)
    st.dataframe(pd.DataFrame([{**s.to_dict(), "warnings": len(s.warnings)} for s in snaps])
                 [["id", "slice", "rows", "source", "loaded_at", "warnings"]],
                 hide_index=True, key="upload.snapshots")
    d1, d2 = st.columns([3, 1])
    victim = d1.selectbox("Remove a snapshot", [s.id for s in snaps], index=None,
                          key="upload.remove_id", placeholder="choose a snapshot id")
    if d2.button("Remove", disabled=victim is None, key="upload.remove"):
        store.remove_snapshot(dataset, victim)
        st.rerun()
