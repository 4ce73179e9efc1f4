"""Upload: bring a CSV or Parquet snapshot, see what is wrong with it, or store it."""
import re
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from analysis.ingest import commit, default_dataset, infer_roles, prepare, read_snapshot
from analysis.store import Roles, StoreError

#: st.session_state key: what this visitor committed, (file id, dataset, slice) ->
#: {"snapshot": id, "message": text}. A committed file shows its message and no Commit
#: button (a second commit would only be refused as a duplicate) while its snapshot exists.
COMMITTED = "upload.committed"
#: Row height of the validation report: above 64 px the grid wraps long text (3 lines).
REPORT_ROW_HEIGHT = 80
#: Column widths in px summing to 810: the report fits the page at 1280 px with the
#: sidebar open (wider windows stretch the columns), so no message is cut off at the side.
REPORT_COLUMNS = {
    "level": st.column_config.TextColumn("level", width=70),
    "check": st.column_config.TextColumn("check", width=120),
    "column": st.column_config.TextColumn("column", width=105),
    "rows": st.column_config.NumberColumn("rows", width=50),
    "message": st.column_config.TextColumn("message", width=285),
    "examples": st.column_config.TextColumn("examples", width=180),
}


def _plain(text: str) -> str:
    """``text`` shown as typed in Markdown (file content may hold * _ ` [ ...)."""
    return re.sub(r"([\\`*_\[\]<>#|~$])", r"\\\1", text)


def _bullets(findings) -> str:
    """Findings as a Markdown list, each line in full: ``[check] column 'x': message``."""
    return "\n".join(f"- {_plain(str(f).split(': ', 1)[1])}" for f in findings)


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
    # the dataset this visitor is looking at in the sidebar, else the demo
    shown = default_dataset(names, st.session_state.get("filter.dataset"))
    dataset = c1.selectbox("Existing dataset", names, index=names.index(shown),
                           key="upload.dataset")
else:
    dataset = c1.text_input("New dataset name", key="upload.new_name",
                            placeholder="letters, digits, _ - .").strip()
slice_ = c2.radio("Slice", ["production", "reference"], horizontal=True, key="upload.slice")
task = c2.radio("Task (new dataset)", ["regression", "classification"], horizontal=True,
                key="upload.task", disabled=mode == "existing")

uploaded = st.file_uploader("Snapshot file", type=["csv", "tsv", "txt", "parquet"],
                            key="upload.file")
committed = st.session_state.setdefault(COMMITTED, {})
upload_key = (uploaded.file_id if uploaded is not None else None, dataset, slice_)
stored_ids = {s.id for s in store.snapshots(dataset)} if dataset in names else set()
if uploaded is None or not dataset:
    st.info("Choose the dataset and a file to see its validation report.")
elif committed.get(upload_key, {}).get("snapshot") in stored_ids:
    st.success(committed[upload_key]["message"])
    st.info("Choose another file to add another snapshot.")
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
            problems = [f for f in cache[uploaded.file_id].findings if f.level == "error"]
            if cache[uploaded.file_id].table is None:
                status.update(label=f"Could not read {uploaded.name}: {problems[0].message}",
                              state="error", expanded=False)
            elif problems:
                status.update(label=f"Read {uploaded.name}, with {len(problems)} error(s): "
                                    "see the validation report", state="error", expanded=False)
            else:
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
        st.dataframe(report[list(REPORT_COLUMNS)], hide_index=True, key="upload.report",
                     column_config=REPORT_COLUMNS, row_height=REPORT_ROW_HEIGHT,
                     placeholder="—")
    # errors and warnings also in full under the grid, whatever their length
    warnings = [f for f in prepared.findings if f.level == "warning"]
    if prepared.errors:
        st.error(f"{len(prepared.errors)} error(s): this snapshot cannot be stored. "
                 "Nothing was written.\n\n" + _bullets(prepared.errors))
    else:
        st.success("No errors" + (f"; {len(warnings)} warning(s) will be kept with the "
                                  "snapshot." if warnings else "."))
    if warnings:
        st.warning(f"{len(warnings)} warning(s)\n\n" + _bullets(warnings))
    if not prepared.errors:
        if st.button(f"Commit to {dataset} ({slice_})", type="primary", key="upload.commit"):
            try:
                with st.spinner("Storing…"):
                    result = commit(store, prepared, task=task)
            except StoreError as exc:  # e.g. the same content stored meanwhile elsewhere
                st.error(f"Nothing was stored: {exc}")
                st.stop()
            st.session_state.pop("upload.parsed", None)
            committed[upload_key] = {
                "snapshot": result.snapshot.id,
                "message": f"Stored {result.snapshot.rows:,} rows of {uploaded.name} as "
                           f"{slice_} snapshot {result.snapshot.id} of {dataset}."}
            st.session_state["filter.dataset"] = dataset  # this visitor now looks at it
            st.rerun()

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
