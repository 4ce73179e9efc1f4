"""The Stream monitoring page's charts (plotly figures; the page, its export buttons and
the tests use the same ones), from the frames of :mod:`analysis.streaming.view`.

Every builder only lays out numbers it is given: rates arrive in percent, times as
naive UTC timestamps. Titles sit at the top, legends right under them (placed in
pixels, so a tall figure's legend never covers a plot), axes carry their units.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from analysis.figures import FONT

CTR_COLOR = "#1f77b4"
BASELINE_COLOR = "#555555"
BAND_COLOR = "rgba(31,119,180,0.16)"
SHARE_COLOR = "#8c564b"
CTR_ALERT = "#d62728"
UPSTREAM_ALERT = "#ff7f0e"
STATE_COLORS = {"fresh": "#4C78A8", "stale": "#F58518", "null": "#E45756"}
NULL_COLOR = "#9e9e9e"
#: segments' colours: none of CTR's blue, the alerts' red and orange, the shares' brown
SEGMENT_COLORS = ["#2ca02c", "#9467bd", "#17becf", "#bcbd22", "#e377c2", "#7f7f7f",
                  "#393b79", "#637939", "#8c6d31", "#843c39"]
X_TITLE = "time (UTC, one point per minute)"
#: pixels: the CTR row, each upstream row, the gap holding a row's title
CTR_ROW, SIGNAL_ROW, ROW_GAP = 300, 115, 50
DRILL_PLOT = 560


def _layout(fig: go.Figure, title: str, plot: int, window, legend_items: int,
            per_line: int) -> go.Figure:
    """Title, a legend of ``legend_items`` entries ``per_line`` a line (each entry an
    equal share of the width, so the lines are known in advance), margins around a
    plot area ``plot`` pixels tall."""
    lines = max(1, math.ceil(legend_items / per_line))
    top = 50 + 22 * lines + 36              # title, the legend's lines, the first row's title
    height = plot + top + 64
    fig.update_layout(
        title=dict(text=title, x=0.0, xanchor="left", y=1.0, yanchor="top", yref="container",
                   pad=dict(t=14)),
        height=height, font=FONT, template="plotly_white", hovermode="x unified",
        margin=dict(l=80, r=30, t=top, b=64),
        legend=dict(orientation="h", x=0.0, xanchor="left", yref="container",
                    y=1.0 - 48 / height, yanchor="top", traceorder="normal",
                    entrywidth=1.0 / per_line - 0.005, entrywidthmode="fraction",
                    font=dict(size=12)))
    fig.update_xaxes(type="date", tickformat="%H:%M\n%b %d", showgrid=True)
    if window is not None:
        fig.update_xaxes(range=[pd.Timestamp(window[0]), pd.Timestamp(window[1])])
    return fig


def _legend_only(fig: go.Figure, name: str, **style) -> None:
    """A legend entry for shapes (they have none)."""
    fig.add_scatter(x=[None], y=[None], name=name, hoverinfo="skip", **style)


def band_polygons(x, low, high) -> tuple[list, list]:
    """x and y of one closed polygon per run of minutes with a band (None between
    runs), for a ``fill="toself"`` trace: gaps in the baseline stay gaps."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    ok = np.isfinite(low) & np.isfinite(high)
    xs, ys = [], []
    x = list(pd.to_datetime(pd.Series(x)))
    i = 0
    while i < len(ok):
        if not ok[i]:
            i += 1
            continue
        j = i
        while j < len(ok) and ok[j]:
            j += 1
        if xs:
            xs.append(None)
            ys.append(None)
        xs += x[i:j] + x[i:j][::-1]
        ys += list(high[i:j]) + list(low[i:j][::-1])
        i = j
    return xs, ys


def _band(fig: go.Figure, frame: pd.DataFrame, row: int) -> None:
    """The CTR row: the baseline band, the baseline and the observed CTR."""
    xs, ys = band_polygons(frame["minute"], frame["low_pct"], frame["high_pct"])
    fig.add_scatter(x=xs, y=ys, mode="lines", fill="toself", fillcolor=BAND_COLOR,
                    line=dict(width=0), name="baseline ± 2 standard errors",
                    hoverinfo="skip", row=row, col=1)
    fig.add_scatter(x=frame["minute"], y=frame["expected_pct"], mode="lines",
                    legendgroup="baseline", line=dict(color=BASELINE_COLOR, dash="dot", width=1.5),
                    name="forecast baseline",
                    hovertemplate="baseline %{y:.2f} %<extra></extra>", row=row, col=1)
    fig.add_scatter(x=frame["minute"], y=frame["ctr_pct"], mode="lines+markers", name="CTR",
                    line=dict(color=CTR_COLOR, width=2), marker=dict(size=4),
                    customdata=frame["requests"],
                    hovertemplate="CTR %{y:.2f} % of %{customdata:,} requests<extra></extra>",
                    row=row, col=1)


def _mark_alerts(fig: go.Figure, alerts: pd.DataFrame, row: int, color: str,
                 values: pd.DataFrame, y: str) -> None:
    """Shade each alert from the change's start to its detection; a marker on the
    minute that raised it carries its description."""
    for _, a in alerts.iterrows():
        fig.add_vrect(x0=a["start"], x1=a["detected_at"], fillcolor=color, opacity=0.15,
                      line_width=0, layer="below", row=row, col=1)
    if not len(alerts):
        return
    raised = alerts["detected_at"] - pd.Timedelta(minutes=1)
    level = []
    for (_, a), minute in zip(alerts.iterrows(), raised):
        v = values[values["minute"] == minute]
        if "detail" in v and a["detail"]:
            v = v[v["detail"] == a["detail"]]
        level.append(float(v[y].iloc[0]) if len(v) else np.nan)
    fig.add_scatter(x=raised, y=level, mode="markers", showlegend=False,
                    marker=dict(symbol="x", size=11, color=color, line=dict(width=1)),
                    text=alerts["text"], hovertemplate="%{text}<extra></extra>",
                    row=row, col=1)


def _ctr_starts(fig: go.Figure, ctr_alerts: pd.DataFrame, rows) -> None:
    """A dashed line at each CTR change's start through the given rows."""
    for _, a in ctr_alerts.iterrows():
        for r in rows:
            fig.add_vline(x=a["start"], line=dict(color=CTR_ALERT, dash="dash", width=1),
                          row=r, col=1)


def timeline_figure(ctr: pd.DataFrame, upstream: pd.DataFrame, alerts: pd.DataFrame,
                    rows: list[dict], window=None) -> go.Figure:
    """CTR per minute (:func:`analysis.streaming.view.ctr_frame`) with its forecast
    baseline, the band and its alerts; beneath it, on the same time axis, one row per
    upstream signal (``rows`` from :func:`~analysis.streaming.view.signal_rows`, values
    from :func:`~analysis.streaming.view.upstream_frame`) with its own alerts; a dashed
    line through every row at each CTR change's start."""
    n = 1 + len(rows)
    plot = CTR_ROW + (SIGNAL_ROW + ROW_GAP) * len(rows)
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True,
                        row_heights=[CTR_ROW] + [SIGNAL_ROW] * len(rows),
                        vertical_spacing=ROW_GAP / plot,
                        subplot_titles=["CTR: clicks per request"] + [r["title"] for r in rows])
    _band(fig, ctr, 1)
    ctr_alerts = alerts[alerts["signal"] == "ctr"]
    _mark_alerts(fig, ctr_alerts, 1, CTR_ALERT, ctr, "ctr_pct")
    segments = sorted(upstream.loc[upstream["signal"] == "segment_mix", "detail"].unique())
    shown_share = False
    for r, spec in enumerate(rows, start=2):
        signal = spec["signal"]
        part = upstream[upstream["signal"] == signal]
        if signal == "segment_mix":
            for k, seg in enumerate(segments):
                s = part[part["detail"] == seg]
                fig.add_scatter(x=s["minute"], y=s["share_pct"], mode="lines",
                                name=f"segment {seg}",
                                line=dict(color=SEGMENT_COLORS[k % len(SEGMENT_COLORS)]),
                                hovertemplate=f"{seg} %{{y:.1f}} %<extra></extra>", row=r, col=1)
        else:
            fig.add_scatter(x=part["minute"], y=part["expected_pct"], mode="lines",
                            legendgroup="baseline", showlegend=False,
                            line=dict(color=BASELINE_COLOR, dash="dot", width=1.5),
                            hovertemplate="baseline %{y:.2f} %<extra></extra>", row=r, col=1)
            fig.add_scatter(x=part["minute"], y=part["share_pct"], mode="lines",
                            name="upstream share", legendgroup="share",
                            showlegend=not shown_share, line=dict(color=SHARE_COLOR, width=1.6),
                            hovertemplate=f"{signal} %{{y:.2f}} %<extra></extra>", row=r, col=1)
            shown_share = True
        _mark_alerts(fig, alerts[alerts["signal"] == signal], r, UPSTREAM_ALERT, part,
                     "share_pct")
        fig.update_yaxes(title_text=spec["axis"], title_font=dict(size=12), rangemode="tozero",
                         row=r, col=1)
    _ctr_starts(fig, ctr_alerts, range(1, n + 1))
    _legend_only(fig, "CTR alert: start → detection", mode="markers",
                 marker=dict(symbol="square", size=12, color=CTR_ALERT, opacity=0.3))
    _legend_only(fig, "upstream alert: start → detection", mode="markers",
                 marker=dict(symbol="square", size=12, color=UPSTREAM_ALERT, opacity=0.35))
    _legend_only(fig, "CTR change start (every row)", mode="lines",
                 line=dict(color=CTR_ALERT, dash="dash", width=1))
    high = np.nanmax(np.r_[ctr["ctr_pct"].to_numpy(float), ctr["high_pct"].to_numpy(float), 0.1])
    fig.update_yaxes(title_text="CTR (%)", range=[0, 1.12 * high], row=1, col=1)
    fig.update_xaxes(title_text=X_TITLE, row=n, col=1)
    _layout(fig, "CTR per minute against its forecast baseline, and its upstream signals "
                 "on the same time axis", plot, window, 7 + len(segments), per_line=3)
    return fig


def _category_colors(names: list[str], mix: bool) -> list[str]:
    if mix:
        return [SEGMENT_COLORS[k % len(SEGMENT_COLORS)] for k in range(len(names))]
    if set(names) <= set(STATE_COLORS):
        return [STATE_COLORS[n] for n in names]
    groups = [n for n in names if n != "null"]
    ramp = sample_colorscale("Viridis", [i / max(len(groups) - 1, 1) for i in range(len(groups))])
    colors = dict(zip(groups, ramp))
    return [colors.get(n, NULL_COLOR) for n in names]


def drilldown_figure(signal: str, timeline: pd.DataFrame, ctr_groups: pd.DataFrame,
                     alerts: pd.DataFrame, ctr_alerts: pd.DataFrame, window=None,
                     description: tuple[str, str] = ("", ""), every: int = 1) -> go.Figure:
    """One signal in detail (frames from :func:`analysis.streaming.view.signal_timeline`
    and :func:`~analysis.streaming.view.affected_ctr`, per ``every`` minutes): the share
    of each of its categories (stacked to 100 %), and the CTR of its affected and
    unaffected requests (``description`` says what they are) in the same segment mix,
    or each segment's CTR for the segment mix. Its own alerts are shaded, each CTR
    change's start is a dashed line."""
    mix = signal == "segment_mix"
    ctr_title = ("CTR of each segment" if mix else
                 "CTR of affected and unaffected requests, in the same segment mix<br>"
                 f"<sup>affected: {description[0]} · unaffected: {description[1]}</sup>")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.5, 0.5],
                        vertical_spacing=0.15,
                        subplot_titles=[f"{signal}: share of requests per category", ctr_title])
    names = list(timeline["category"].cat.categories)
    for name, color in zip(names, _category_colors(names, mix)):
        part = timeline[timeline["category"] == name]
        fig.add_scatter(x=part["minute"], y=part["share_pct"], mode="lines", stackgroup="share",
                        name=str(name), line=dict(width=0.5, color=color), fillcolor=color,
                        customdata=part["requests"],
                        hovertemplate=f"{name}: %{{y:.1f}} % (%{{customdata:,}})<extra></extra>",
                        row=1, col=1)
    groups = list(pd.unique(ctr_groups["group"]))
    for k, group in enumerate(groups):
        part = ctr_groups[ctr_groups["group"] == group]
        color = (SEGMENT_COLORS[k % len(SEGMENT_COLORS)] if mix
                 else (CTR_ALERT if k == 0 else CTR_COLOR))
        fig.add_scatter(x=part["minute"], y=part["ctr_pct"], mode="lines+markers",
                        name=f"CTR {group}", marker=dict(size=4), line=dict(color=color),
                        customdata=part["requests"],
                        hovertemplate=f"CTR {group}: %{{y:.2f}} % of %{{customdata:,}} requests"
                                      "<extra></extra>", row=2, col=1)
    for _, a in alerts.iterrows():
        # outlined over the stacked areas (a fill would hide them or tint them), shaded
        # under the CTR lines
        fig.add_vrect(x0=a["start"], x1=a["detected_at"], fillcolor="rgba(0,0,0,0)",
                      line=dict(color=UPSTREAM_ALERT, width=2), layer="above", row=1, col=1)
        fig.add_vrect(x0=a["start"], x1=a["detected_at"], fillcolor=UPSTREAM_ALERT,
                      opacity=0.15, line_width=0, layer="below", row=2, col=1)
    _ctr_starts(fig, ctr_alerts, (1, 2))
    _legend_only(fig, "own alert", mode="markers",
                 marker=dict(symbol="square", size=12, color=UPSTREAM_ALERT, opacity=0.35))
    _legend_only(fig, "CTR change start", mode="lines",
                 line=dict(color=CTR_ALERT, dash="dash", width=1))
    fig.update_yaxes(title_text="share of requests (%)", range=[0, 100], row=1, col=1)
    fig.update_yaxes(title_text="CTR (%)", rangemode="tozero", row=2, col=1)
    unit = "one point per minute" if every == 1 else f"one point per {every} minutes"
    fig.update_xaxes(title_text=f"time (UTC, {unit})", row=2, col=1)
    _layout(fig, f"Drill-down: {signal}", DRILL_PLOT, window, len(names) + len(groups) + 2,
            per_line=5)
    return fig
