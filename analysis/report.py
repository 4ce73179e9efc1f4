"""Postmortem bundle: a zip with a self-contained HTML report, every chart as PNG, and
every chart's data as CSV. Built from the same analysis functions and figures as the
pages, for the same filters.
"""
from __future__ import annotations

import base64
import html
import json
import io
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd
import plotly.graph_objects as go

from analysis import __version__, heatmap
from analysis.drift import TESTS
from analysis.engine import Engine
from analysis.export import figure_bytes
from analysis.figures import (category_shares, decomposition_figure, distribution_figure,
                              heatmap_figure, histogram_shares, overview_figure,
                              segment_grid_figure, unit_of)
from analysis.formats import selection
from analysis.queries import Filters
from analysis.reference_bins import frozen_bins
from analysis.slices import reference_error, row_counts, segment_window_metrics, time_bounds
from analysis.stats import EmptySampleError
from analysis.store import Store
from analysis.summary import feature_samples, filtered_drift_table, window_summary

TOP_FEATURES = 3


@dataclass
class Chart:
    name: str
    caption: str
    figure: go.Figure
    data: pd.DataFrame


def _charts(store: Store, dataset: str, filters: Filters, unit: str,
            engine: Engine | None = None) -> tuple[list[Chart], dict]:
    roles = store.dataset(dataset).roles
    summary = window_summary(store, dataset, unit, filters, engine=engine)
    ref = reference_error(store, dataset, filters, engine)
    table = filtered_drift_table(store, dataset, filters, engine=engine)
    charts = [Chart("overview", f"Model error, volume and drifted features per {unit} "
                                "against the reference level.",
                    overview_figure(summary, ref["mae"], ref["mape"], len(roles.features),
                                    target=roles.target or "", unit=unit), summary)]
    if roles.timestamp:
        bins = frozen_bins(store, dataset, engine=engine)
        segment = roles.segments[0] if roles.segments else None
        cube = heatmap.build_cube(store, dataset, segment, "coarse", "day", bins=bins,
                                  engine=engine)
        chosen = (list(filters.segments.get(segment, ())) or None) if segment else None
        cells = heatmap.grid(heatmap.select(cube, unit, filters.start, filters.end, chosen),
                             "psi", bins)
        who = selection(filters.segments)
        if not cells.empty:
            charts.append(Chart("psi_heatmap", f"PSI of every feature per {unit} "
                                "(drifted cells: 0.1-0.25 moderate, > 0.25 major). "
                                + heatmap.drift_rule("psi"),
                                heatmap_figure(cells, "PSI", heatmap.METRICS["psi"][2],
                                               heatmap.sort_features(cells), unit,
                                               f"PSI by feature and {unit} · {who}"), cells))
        if segment and roles.prediction and roles.target:
            errors = segment_window_metrics(store, dataset, segment, unit, filters, engine)
            charts.append(Chart("segment_error", f"MAPE change (percentage points) of each "
                                f"{segment} against its own reference, per {unit}.",
                                segment_grid_figure(errors, "mape_change", "MAPE change (pp)",
                                                    f"Model error vs the group's reference"
                                                    f" · {who}", unit, diverging=True,
                                                    value_format="+.1f",
                                                    segment_label=segment), errors))
    investigation = None
    if roles.timestamp:
        # the data-vs-concept verdict when the dashboard already has it for these filters
        # (a minute to compute: the bundle does not start it)
        from analysis.investigation import cached_investigation, window_parts

        investigation = cached_investigation(store, dataset, filters, engine=engine)
        parts = window_parts(investigation) if investigation else pd.DataFrame()
        if not parts.empty:
            charts.append(Chart("data_vs_concept", "The error change per window against the "
                                "reference, split into a data-drift and a concept-drift part "
                                "(95% intervals).",
                                decomposition_figure(parts, investigation["metric_label"],
                                                     investigation["window"]), parts))
    drifted = table[table["drifted"].fillna(False).astype(bool)].sort_values(
        "statistic", ascending=False)
    for feature in drifted["feature"].head(TOP_FEATURES):
        reference, production = feature_samples(store, dataset, feature, filters, engine)
        row = drifted.set_index("feature").loc[feature]
        fig = distribution_figure(reference, production, roles.features[feature], feature,
                                  unit_of(feature))
        if roles.features[feature] == "numeric":
            edges, ref_pct, prod_pct = histogram_shares(reference, production)
            data = pd.DataFrame({"bin_from": edges[:-1], "bin_to": edges[1:],
                                 "reference_pct": ref_pct, "production_pct": prod_pct})
        else:
            data = category_shares(reference, production).rename(
                columns={"reference": "reference_pct", "production": "production_pct"})
        charts.append(Chart(f"distribution_{feature}",
                            f"{feature}: {row['test']} = {row['statistic']:.4f} "
                            f"(threshold {row['threshold']:g}).", fig, data))
    return charts, {"summary": summary, "reference": ref, "table": table, "drifted": drifted,
                    "investigation": investigation}


def build_bundle(store: Store, dataset: str, filters: Filters | None = None,
                 unit: str = "month", progress=None, engine: Engine | None = None) -> bytes:
    """The postmortem bundle (zip bytes) for ``dataset`` under ``filters``, its numbers
    computed on ``engine`` (None: the embedded DuckDB)."""
    filters = filters or Filters()
    info = store.dataset(dataset)
    counts = row_counts(store, dataset, filters, engine)
    if counts["production"] == 0:
        raise EmptySampleError("no production rows in the selected range and segments")
    charts, facts = _charts(store, dataset, filters, unit, engine)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        images = {}
        for i, chart in enumerate(charts, start=1):
            if progress:
                progress(f"rendering chart {i} of {len(charts)}: {chart.name}")
            png = figure_bytes(chart.figure, "png", scale=1.5)
            images[chart.name] = png
            zf.writestr(f"charts/{chart.name}.png", png)
            zf.writestr(f"data/{chart.name}.csv", chart.data.to_csv(index=False))
        zf.writestr("data/drift_table.csv", facts["table"].to_csv(index=False))
        if facts["investigation"]:
            zf.writestr("data/investigation.json", json.dumps(facts["investigation"], indent=1))
        zf.writestr("report.html", _report_html(store, dataset, info, filters, counts, charts,
                                                images, facts, now, engine))
    return buffer.getvalue()


def _report_html(store, dataset, info, filters, counts, charts, images, facts, now,
                 engine=None) -> str:
    roles = info.roles
    esc = html.escape
    ref_snaps = store.snapshots(dataset, "reference")
    prod_snaps = store.snapshots(dataset, "production")
    ref_bounds = time_bounds(store, dataset, "reference", engine)
    prod_bounds = time_bounds(store, dataset, "production", engine)
    start = filters.start or (prod_bounds[0] if prod_bounds else None)
    # the filter's end is exclusive; say the last day included
    end = (filters.end - timedelta(microseconds=1)) if filters.end else (
        prod_bounds[1] if prod_bounds else None)
    segs = ", ".join(f"{c} in ({', '.join(v)})" for c, v in filters.segments.items()) or "all"
    table, drifted, ref = facts["table"], facts["drifted"], facts["reference"]
    summary = facts["summary"]
    findings = [f"{len(drifted)} of {len(table)} features drifted over the selected production "
                f"rows: {', '.join(drifted['feature']) or 'none'}."]
    if ref["mape"] is not None and not summary.empty and pd.notna(summary["mape"].iloc[-1]):
        findings.append(f"MAPE {summary['mape'].iloc[-1]:.2f} % in the last window "
                        f"({pd.Timestamp(summary['window_start'].iloc[-1]):%Y-%m-%d}) against "
                        f"{ref['mape']:.2f} % on the reference.")
    if ref["mape"]:
        worse = summary[summary["mape"] > 1.2 * ref["mape"]]
        if not worse.empty:
            findings.append(f"MAPE first more than 20 % above the reference level in the window "
                            f"starting {pd.Timestamp(worse['window_start'].iloc[0]):%Y-%m-%d}.")
    if facts.get("investigation"):
        findings.insert(0, f"Data vs concept: {facts['investigation']['verdict'].upper().replace('_', ' ')}. "
                        + facts["investigation"]["summary"])
    lit = summary[summary["drifted_features"].fillna(0) > 0]
    if not lit.empty:
        findings.append(f"Drift first seen in the window starting "
                        f"{pd.Timestamp(lit['window_start'].iloc[0]):%Y-%m-%d}.")
    thresholds = "; ".join(f"{t.label} {'p <' if t.uses_p_value else '≥'} {t.threshold:g}"
                           for t in TESTS.values())
    rows = "".join(
        f"<tr><td>{esc(r.feature)}</td><td>{esc(r.test)}</td><td>{r.statistic:.4f}</td>"
        f"<td>{r.threshold:g}</td><td>{'drift' if r.drifted else 'stable'}</td></tr>"
        for r in table.itertuples() if r.statistic is not None and pd.notna(r.statistic))
    figures = "".join(
        f"<figure><img alt='{esc(c.name)}' src='data:image/png;base64,"
        f"{base64.b64encode(images[c.name]).decode()}'/><figcaption>{esc(c.caption)} "
        f"Data: <code>data/{esc(c.name)}.csv</code>.</figcaption></figure>" for c in charts)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Postmortem: {esc(dataset)}</title>
<style>body{{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
figure{{margin:2em 0}}img{{max-width:100%}}figcaption{{color:#555}}</style></head><body>
<h1>Drift postmortem: {esc(dataset)}</h1>
<p>Generated {esc(now)} by Drift Investigator {esc(__version__)}.</p>
<h2>What was compared</h2>
<ul>
<li>Dataset <b>{esc(dataset)}</b> ({esc(info.task)}), {len(roles.features)} features; target
 {esc(roles.target or '—')}, prediction {esc(roles.prediction or '—')}.</li>
<li>Reference: {counts['reference']:,} rows, snapshots {esc(', '.join(s.id for s in ref_snaps))}
 ({f"{ref_bounds[0]:%Y-%m-%d} to {ref_bounds[1]:%Y-%m-%d}" if ref_bounds else "no timestamps"}).</li>
<li>Production: {counts['production']:,} rows from {f"{start:%Y-%m-%d}" if start else "—"} to
 {f"{end:%Y-%m-%d}" if end else "—"}, snapshots {esc(', '.join(s.id for s in prod_snaps))}.</li>
<li>Segments: {esc(segs)} (applied to the reference too).</li>
<li>Tests and thresholds: {esc(thresholds)}; default test per column as Evidently chooses it.</li>
</ul>
<h2>Findings</h2><ul>{''.join(f'<li>{esc(f)}</li>' for f in findings)}</ul>
<h2>Per-feature drift</h2>
<table><tr><th>feature</th><th>test</th><th>statistic</th><th>threshold</th><th>verdict</th></tr>{rows}</table>
<h2>Charts</h2>{figures}
</body></html>"""
