"""Dashboard plumbing shared by every page: the sidebar filters and cached loaders.

UI only: every number comes from analysis/. Filters live in ``st.session_state`` under
the ``filter.*`` keys so they survive page switches (widget keys are dropped when a page
that does not draw the widget runs).
"""
from __future__ import annotations

import functools
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pandas as pd
import streamlit as st

from analysis import (calendar_windows, counts, export, formats, heatmap, jobs, queries,
                      reference_bins, report, slices, summary)
from analysis.drift import common_note, display_columns, display_table
from analysis.engine import Engine, engine_from_config, engine_problem
from analysis.ingest import default_dataset
from analysis.noise import percentile_name
from analysis.queries import Filters
from analysis.store import DEFAULT_STORE, Store

CACHE = dict(ttl=900, max_entries=64, show_spinner=False)
NAVIGATION = [("app.py", "Home"), ("pages/1_Overview.py", "Overview"),
              ("pages/2_Feature_drift.py", "Feature drift"), ("pages/3_Heatmap.py", "Drift heatmap"),
              ("pages/4_Segments.py", "Segments"),
              ("pages/6_Data_vs_concept.py", "Data vs concept"),
              ("pages/7_Live_monitoring.py", "Live monitoring"),
              ("pages/8_Stream_monitoring.py", "Stream monitoring"), ("pages/5_Upload.py", "Upload")]


def store() -> Store:
    return Store(DEFAULT_STORE)


def engine() -> Engine:
    """The engine every page's store queries run on, from the
    configuration: ``DRIFT_ENGINE`` (``duckdb`` or ``spark``), ``DRIFT_SPARK_MASTER``
    and ``DRIFT_SPARK_TABLE`` in the environment, else ``engine``, ``spark_master``
    and ``spark_table`` in ``.streamlit/secrets.toml``; DuckDB by default."""
    try:
        secrets = {k: st.secrets[k] for k in ("engine", "spark_master", "spark_table")
                   if k in st.secrets}
    except Exception:  # no secrets file: the environment (or the default) decides
        secrets = {}
    return engine_from_config(secrets=secrets)


@st.cache_data(ttl=60, show_spinner="Starting the engine…")
def _engine_problem(engine_: Engine) -> str | None:
    # a master that does not answer takes a minute to say so: not on every rerun
    return engine_problem(engine_)


def _filters(key: tuple) -> Filters:
    start, end, segments = key
    return Filters(start, end, {col: vals for col, vals in segments})


def _on_engine(loader):
    """``loader`` cached per arguments and per configured engine (:func:`engine`), which
    it receives as its last argument, ``engine_``: every page's store queries run on it,
    and a changed configuration is a new cache entry."""
    cached = st.cache_data(**CACHE)(loader)

    @functools.wraps(loader)
    def call(*args, **kwargs):
        return cached(*args, **kwargs, engine_=engine())
    return call


@_on_engine
def production_bounds(root: str, version: str, dataset: str, engine_: Engine):
    return slices.time_bounds(Store(root), dataset, "production", engine_)


@_on_engine
def segment_values(root: str, version: str, dataset: str, column: str,
                   engine_: Engine) -> list[str]:
    return slices.segment_values(Store(root), dataset, column, engine_)


@_on_engine
def window_summary(root: str, version: str, dataset: str, unit: str, key: tuple,
                   engine_: Engine):
    return summary.window_summary(Store(root), dataset, unit, _filters(key), engine=engine_)


@_on_engine
def reference_error(root: str, version: str, dataset: str, key: tuple, engine_: Engine) -> dict:
    return slices.reference_error(Store(root), dataset, _filters(key), engine_)


@_on_engine
def drift_table(root: str, version: str, dataset: str, key: tuple, test, binning: str,
                engine_: Engine):
    return summary.filtered_drift_table(Store(root), dataset, _filters(key), test, binning,
                                        engine_)


@_on_engine
def feature_samples(root: str, version: str, dataset: str, feature: str, key: tuple,
                    engine_: Engine):
    return summary.feature_samples(Store(root), dataset, feature, _filters(key), engine_)


@_on_engine
def row_counts(root: str, version: str, dataset: str, key: tuple, engine_: Engine) -> dict:
    return slices.row_counts(Store(root), dataset, _filters(key), engine_)


def _remember(widget_key: str, state_key: str) -> None:
    st.session_state[state_key] = st.session_state[widget_key]


def _bound(widget, state_key: str, default, **kwargs):
    """Draw ``widget`` whose value persists in ``st.session_state[state_key]``."""
    if state_key not in st.session_state:
        st.session_state[state_key] = default
    widget_key = "widget." + state_key
    st.session_state[widget_key] = st.session_state[state_key]
    return widget(key=widget_key, on_change=_remember, args=(widget_key, state_key), **kwargs)


class Context:
    """What a page needs: the store, the dataset, the filters and a cache key."""

    def __init__(self, st_store: Store, dataset: str, filters: Filters, key: tuple):
        self.store, self.dataset, self.filters, self.key = st_store, dataset, filters, key
        self.root = str(st_store.root)
        self.version = st_store.version(dataset)
        self.info = st_store.dataset(dataset)


def navigation() -> None:
    """The page links at the top of the sidebar (the landing page reads "Home")."""
    with st.sidebar:
        for path, label in NAVIGATION:
            st.page_link(path, label=label)
        st.divider()


def chart(fig, key: str, name: str, **kwargs):
    """Draw a plotly figure with PNG, SVG and standalone HTML downloads under it.

    Files are rendered only when a button is clicked (``data`` is a callable), never on
    a rerun. Returns what ``st.plotly_chart`` returns (the selection event, if any)."""
    event = st.plotly_chart(fig, key=key, **kwargs)
    cols = st.columns([1, 1, 1, 5])
    for col, fmt in zip(cols, ("png", "svg", "html")):
        col.download_button(
            f"⬇ {fmt.upper()}", data=lambda fmt=fmt: export.figure_bytes(fig, fmt),
            file_name=f"{name}.{fmt}", mime=export.FORMATS[fmt], key=f"{key}.{fmt}",
            on_click="ignore", help=f"Download this chart as {fmt.upper()}")
    return event


def page(title: str, caption: str = "") -> "Context":
    """Set up a page: config, title, caption, sidebar. Stops the page (with the sidebar's
    message) when the store has no dataset."""
    st.set_page_config(page_title=f"{title} · Drift Investigator", layout="wide")
    st.title(title)
    if caption:
        st.caption(caption)
    ctx = sidebar()
    if ctx is None:
        st.stop()
    return ctx


def sidebar() -> Context | None:
    """Draw the sidebar filters; None (with a message on the page) when there is no data."""
    navigation()
    st_store = store()
    names = st_store.datasets()
    if not names:
        st.error(f"The store at `{st_store.root}` holds no dataset. Build the demo with "
                 "`python -m analysis demo`, or start the dashboard with `scripts/run.sh`.")
        return None
    problem = _engine_problem(engine())
    if problem:
        st.error(f"The configured engine, {engine().label}, cannot run: {problem}. Fix "
                 "`DRIFT_ENGINE` / `DRIFT_SPARK_MASTER` (or `.streamlit/secrets.toml`), or "
                 "unset them for the embedded DuckDB.")
        return None
    with st.sidebar:
        st.header("Investigation")
        if st.session_state.get("filter.dataset") not in names:
            st.session_state.pop("filter.dataset", None)
        # a new visitor starts on the demo, not on whatever sorts first (a fresh upload);
        # afterwards filter.dataset keeps this visitor's own choice
        dataset = _bound(st.selectbox, "filter.dataset", default_dataset(names), label="Dataset",
                         options=names)
        version = st_store.version(dataset)
        info = st_store.dataset(dataset)
        bounds = production_bounds(str(st_store.root), version, dataset)
        start = end = None
        if bounds:
            lo, hi = bounds[0].date(), bounds[1].date()
            state = f"filter.range.{dataset}"
            current = st.session_state.get(state)
            if not (isinstance(current, tuple) and current and lo <= current[0] <= hi):
                st.session_state.pop(state, None)
            picked = _bound(st.date_input, state, (lo, hi), label="Production time range",
                            min_value=lo, max_value=hi,
                            help="Production rows from the first day through the last day.")
            if isinstance(picked, (tuple, list)) and len(picked) == 2:
                start = datetime.combine(picked[0], time.min)
                end = datetime.combine(picked[1] + timedelta(days=1), time.min)
            elif isinstance(picked, (tuple, list)) and len(picked) == 1 or isinstance(picked, date):
                day = picked[0] if isinstance(picked, (tuple, list)) else picked
                start = datetime.combine(day, time.min)
                end = start + timedelta(days=1)
        segments = []
        for column in info.roles.segments:
            values = segment_values(str(st_store.root), version, dataset, column)
            state = f"filter.segment.{dataset}.{column}"
            if state in st.session_state and not set(st.session_state[state]) <= set(values):
                st.session_state.pop(state)
            chosen = _bound(st.multiselect, state, list(values), label=f"{column}",
                            options=values, help="Applies to reference and production alike, "
                                                 "so a group is compared with itself.")
            if len(chosen) < len(values):
                segments.append((column, tuple(sorted(chosen))))
        key = (start, end, tuple(segments))
        sizes = row_counts(str(st_store.root), version, dataset, key)
        st.caption(f"Reference: {sizes['reference']:,} rows · "
                   f"production (filtered): {sizes['production']:,} rows")
        st.download_button(
            "⬇ Postmortem bundle", key="sidebar.bundle", on_click="ignore",
            data=lambda: report.build_bundle(st_store, dataset, _filters(key),
                                             engine=engine()),
            file_name=f"postmortem-{dataset}.zip", mime="application/zip",
            help="A zip for the postmortem: an HTML report (what was compared, findings, "
                 "charts with captions), the charts as PNG and their data as CSV, for the "
                 "filters above.", disabled=sizes["production"] == 0)
    return Context(st_store, dataset, _filters(key), key)


# -- heatmap and segments ----------------------------------------------------------
@_on_engine
def frozen_bins(root: str, version: str, dataset: str, engine_: Engine):
    return reference_bins.frozen_bins(Store(root), dataset, engine=engine_)


@_on_engine
def coarse_cube(root: str, version: str, dataset: str, segment, engine_: Engine):
    """Day-grain counts on the coarse bins, every segment value, summed from the
    snapshots' profiles; every filter, window unit and segment choice afterwards is numpy
    on this."""
    store_ = Store(root)
    return heatmap.build_cube(store_, dataset, segment, "coarse", "day", engine=engine_,
                              bins=reference_bins.frozen_bins(store_, dataset, engine=engine_))


@_on_engine
def fine_cube(root: str, version: str, dataset: str, segment, unit: str, start, end,
              engine_: Engine):
    store_ = Store(root)
    return heatmap.build_cube(store_, dataset, segment, "fine", unit, Filters(start, end),
                              bins=reference_bins.frozen_bins(store_, dataset, engine=engine_),
                              engine=engine_)


@_on_engine
def reference_moments(root: str, version: str, dataset: str, segment, engine_: Engine):
    return counts.reference_moments(Store(root), dataset, segment, engine=engine_)


@_on_engine
def segment_window_metrics(root: str, version: str, dataset: str, segment: str, unit: str,
                           key: tuple, engine_: Engine):
    return slices.segment_window_metrics(Store(root), dataset, segment, unit, _filters(key),
                                         engine_)


@_on_engine
def compare_cells(root: str, version: str, dataset: str, key_a: tuple, key_b: tuple,
                  engine_: Engine):
    return summary.compare_cells(Store(root), dataset, _filters(key_a), _filters(key_b),
                                 engine=engine_)


def cell_key(ctx: "Context", segment: str | None, value: str | None, start, unit: str) -> tuple:
    """Filter key of one window x segment value (see :func:`queries.cell_key`)."""
    return queries.cell_key(ctx.key, segment, value, pd.Timestamp(start),
                            pd.Timestamp(calendar_windows.window_end(start, unit)))


def selected_segments(ctx: "Context", segment: str | None) -> list[str] | None:
    """The sidebar's chosen values of ``segment`` (None: all of them)."""
    for column, values in ctx.key[2]:
        if column == segment:
            return list(values)
    return None


# -- drift tables -------------------------------------------------------------------
def drift_table_view(table: pd.DataFrame, key: str, compared: bool = False) -> None:
    """Draw a ranked drift table (Feature drift, and Segments' two cells when
    ``compared``: then "differs" / "same", rows A and B), its shared note above it,
    columns sized to fit 1280 px and notes wrapping rather than cut."""
    shown = display_table(table)
    if compared:
        shown = shown.replace({"verdict": {"drift": "differs", "stable": "same"}})
    if common_note(table):
        st.caption(f"Every feature: {common_note(table)}.")
    row_height = formats.wrapped_row_height(shown["note"], chars_per_line=16)
    rows = (("rows A", None), ("rows B", None)) if compared else (
        ("ref. rows", "Reference rows with a value"), ("prod. rows", "Production rows with a value"))
    right = dict(alignment="right")
    st.dataframe(shown, hide_index=True, key=key,
                 height=formats.table_height(len(shown), row_height or 35),
                 column_order=display_columns(table), row_height=row_height,
                 column_config={
                     "feature": st.column_config.TextColumn(width=150),
                     "test label": st.column_config.TextColumn("test", width=82),
                     "statistic": st.column_config.TextColumn(width=70, **right),
                     "noise level": st.column_config.TextColumn(
                         "noise", width=62, **right,
                         help=f"Distances: the {percentile_name()} of the distance between "
                              "two samples of these sizes drawn from the reference"),
                     "p-value": st.column_config.TextColumn(width=68, **right),
                     "adjusted p": st.column_config.TextColumn(
                         width=78, **right,
                         help="Holm-adjusted over the features shown: this one decides"),
                     "drift when": st.column_config.TextColumn(
                         "differs when" if compared else "drift when", width=90),
                     "verdict": st.column_config.TextColumn(width=88),
                     "reference rows": st.column_config.NumberColumn(
                         rows[0][0], format="localized", width=74, help=rows[0][1]),
                     "production rows": st.column_config.NumberColumn(
                         rows[1][0], format="localized", width=76, help=rows[1][1]),
                     "note": st.column_config.TextColumn(width=120),
                 })


# -- data vs concept -----------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner=False)
def _read_json(path: str, mtime_ns: int) -> dict:
    return json.loads(Path(path).read_text())


def stored_result(path: Path) -> dict | None:
    """A job's JSON result when it is on disk (read once per version of the file)."""
    try:
        return _read_json(str(path), path.stat().st_mtime_ns)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def job_panel(kind: str, path: Path, params: dict, label: str, key: str,
              autostart: bool = True, start_label: str = "Start", intro: str = "") -> None:
    """Progress of the job computing ``path`` with a Cancel button, refreshed every
    second; the whole page reruns when the result arrives.

    The job starts at once when ``autostart`` (unless this visitor cancelled it), else
    on a click. A job this visitor started earlier under ``key`` for another result is
    cancelled first, so moving through options does not pile up computations. ``intro``
    is said while it runs."""
    cancelled = st.session_state.get(f"{key}.cancelled") == str(path)

    def launch() -> None:
        previous = st.session_state.get(f"{key}.started")
        if previous and previous != str(path):
            jobs.cancel(Path(previous))
        jobs.start(kind, params, path)
        st.session_state[f"{key}.started"] = str(path)
        st.session_state.pop(f"{key}.cancelled", None)

    if autostart and not cancelled and not path.exists() and jobs.state(path).state == "idle":
        launch()
    was_running = jobs.state(path).running

    def watch() -> None:
        now = jobs.state(path)
        if path.exists() or (was_running and not now.running):
            st.rerun()   # the whole page: it shows the result, or stops polling
        if now.running:
            if intro:
                st.info(intro)
            st.progress(now.fraction or 0.0, text=f"{label}: {now.message} "
                                                  f"({now.elapsed or 0:.0f} s so far)")
            if st.button("Cancel", key=f"{key}.cancel", help="Stop this computation"):
                jobs.cancel(path)
                st.session_state[f"{key}.cancelled"] = str(path)
                st.rerun()
        elif now.state == "failed":
            st.error(f"{label} failed: {now.error}")
            if st.button("Try again", key=f"{key}.retry"):
                launch()
                st.rerun()
        else:
            if cancelled:
                st.info(f"{label}: cancelled.")
            if st.button(start_label, key=f"{key}.start", type="primary"):
                launch()
                st.rerun()

    st.fragment(watch, run_every=1.0 if was_running else None, key=f"{key}.fragment")()


# -- live monitoring -----------------------------------------------------------------
@st.cache_resource(max_entries=8, show_spinner=False)
def _live_monitor(root: str, dataset: str, reference_key: str):
    from analysis.monitoring.live import LiveMonitor
    return LiveMonitor(Store(root), dataset)


def live_monitor(ctx: "Context"):
    """The dataset's :class:`analysis.monitoring.live.LiveMonitor`, one per reference
    (it keeps the windows it computed, so a refresh computes only the newest)."""
    from analysis.monitoring.live import reference_key
    return _live_monitor(ctx.root, ctx.dataset, reference_key(ctx.store, ctx.dataset))


# -- stream monitoring ---------------------------------------------------------------
@st.cache_data(max_entries=8, show_spinner=False)
def _stream_view(folder: str, listing: tuple):
    from analysis.streaming.view import open_stream
    return open_stream(folder)


def stream_view(folder):
    """A stream folder's :class:`analysis.streaming.view.StreamView`, read and analysed
    once per version of its parts: the listing of their names, sizes and mtimes is the
    cache key, so a refresh without a new part costs one directory listing."""
    from analysis.streaming.view import part_listing
    return _stream_view(str(folder), part_listing(folder))
