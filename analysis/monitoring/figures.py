"""The Live monitoring page's charts, from a :class:`analysis.monitoring.live.LiveReport`
(plotly figures: the page, the export buttons and the tests use the same ones)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures import FONT
from analysis.monitoring.multivariate import AUC_MIN

_TICK = {"minute": "%H:%M", "hour": "%m-%d %H:00", "day": "%Y-%m-%d"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def window_text(start, unit: str) -> str:
    return pd.Timestamp(start).strftime(_TICK.get(unit, "%Y-%m-%d %H:%M"))


def _layout(fig: go.Figure, title: str, height: int, unit: str, starts=()) -> go.Figure:
    """Title on top, legend under the plot (long legends never cover the title), ticks
    at the windows' own starts (at most about 12 labelled)."""
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"), height=height, font=FONT,
                      template="plotly_white", margin=dict(l=60, r=60, t=60, b=40),
                      legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0))
    fig.update_xaxes(title_text=f"window start ({unit}, UTC)")
    starts = sorted(pd.to_datetime(pd.Series(list(starts))).dropna().unique())
    if starts:
        step = max(1, int(np.ceil(len(starts) / 12)))
        shown = starts[::-1][::step][::-1]          # always label the newest window
        fig.update_xaxes(tickmode="array", tickvals=shown,
                         ticktext=[window_text(t, unit) for t in shown])
    return fig


def _starts(windows: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(windows["window_start"])


def performance_figure(windows: pd.DataFrame, reference: dict, unit: str) -> go.Figure:
    """Estimated accuracy (line and its 95 % band) beside the realized accuracy where
    labels arrived (points with their Wilson intervals), the reference's accuracy, and
    the label coverage per window (bars, right axis)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = _starts(windows)
    coverage = 100 * windows["label_coverage"].astype(float)
    fig.add_bar(x=x, y=coverage, name="label coverage (%, right axis)",
                marker_color="rgba(150,150,150,0.25)", secondary_y=True,
                hovertemplate="%{y:.0f} % of rows labelled<extra></extra>")
    est = windows["estimated_accuracy"].astype(float)
    if est.notna().any():
        fig.add_scatter(x=pd.concat([x, x[::-1]]),
                        y=pd.concat([windows["estimated_high"], windows["estimated_low"][::-1]]),
                        fill="toself", fillcolor="rgba(31,119,180,0.18)",
                        line=dict(width=0), name="estimate's 95 % interval", hoverinfo="skip")
        fig.add_scatter(x=x, y=est, mode="lines+markers", name="estimated accuracy (no labels)",
                        line=dict(color=PALETTE[0], width=2),
                        hovertemplate="estimated %{y:.3f}<extra></extra>")
    real = windows["realized_accuracy"].astype(float)
    if real.notna().any():
        fig.add_scatter(x=x, y=real, mode="markers", name="realized accuracy (labelled rows)",
                        marker=dict(color=PALETTE[3], size=9, symbol="diamond"),
                        error_y=dict(type="data", symmetric=False,
                                     array=windows["realized_high"] - real,
                                     arrayminus=real - windows["realized_low"], thickness=1),
                        hovertemplate="realized %{y:.3f}<extra></extra>")
    ref = (reference or {}).get("accuracy") or {}
    if ref.get("value") is not None:
        fig.add_hline(y=ref["value"], line=dict(color="#555", dash="dash"),
                      annotation_text=f"reference {ref['value']:.3f}",
                      annotation_position="bottom left")
    _layout(fig, "Accuracy per window: estimated without labels, and realized where labels "
                 "arrived", 470, unit, x)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(title_text="labelled rows (%)", range=[0, 102], showgrid=False,
                     tickvals=[0, 20, 40, 60, 80, 100], secondary_y=True)
    return fig


def feature_drift_figure(features: pd.DataFrame, unit: str) -> go.Figure:
    """Each feature's drift statistic per window (the test named in the legend); filled
    markers where the window drifted by the drift table's rule."""
    fig = go.Figure()
    if len(features):
        for i, (name, g) in enumerate(features.groupby("feature", sort=False)):
            g = g.sort_values("window_start")
            drift = g["verdict"].eq("drift")
            color = PALETTE[i % len(PALETTE)]
            test = ", ".join(sorted(set(g["test"])))
            fig.add_scatter(
                x=g["window_start"], y=g["statistic"].astype(float), mode="lines+markers",
                name=f"{name} ({test})", line=dict(color=color),
                marker=dict(size=np.where(drift, 11, 6), color=np.where(drift, color, "white"),
                            line=dict(color=color, width=2)),
                customdata=np.column_stack([g["verdict"], g["p_adjusted"].astype(float)]),
                hovertemplate=f"{name}<br>%{{x}}<br>statistic %{{y:.4f}}<br>adjusted p "
                              "%{customdata[1]:.4f}<br>%{customdata[0]}<extra></extra>")
    _layout(fig, "Input drift per feature against the reference (filled: drift)", 420, unit,
            features["window_start"] if len(features) else ())
    fig.update_yaxes(title_text="drift statistic", rangemode="tozero")
    return fig


def prediction_figure(shares: pd.DataFrame, reference: dict, unit: str) -> go.Figure:
    """Class shares of the predictions per window, the reference's shares first."""
    fig = go.Figure()
    ref = (reference or {}).get("shares") or {}
    classes = list(ref)
    if len(shares):
        classes += [c for c in sorted(shares["class"].unique()) if c not in classes]
    starts = sorted(shares["window_start"].unique()) if len(shares) else []
    labels = ["reference"] + [window_text(s, unit) for s in starts]
    for i, c in enumerate(classes):
        values = [ref.get(c, 0.0)] + [
            float(shares[(shares["window_start"] == s) & (shares["class"] == c)]["share"].sum())
            for s in starts]
        fig.add_bar(x=labels, y=values, name=c, marker_color=PALETTE[i % len(PALETTE)],
                    hovertemplate=f"{c}: %{{y:.1%}}<extra></extra>")
    fig.update_layout(barmode="stack")
    _layout(fig, "Predicted classes per window (prediction drift)", 400, unit)
    fig.update_xaxes(type="category", title_text=f"reference, then window start ({unit}, UTC)")
    fig.update_yaxes(title_text="share of predictions", tickformat=".0%", range=[0, 1])
    return fig


def multivariate_figure(windows: pd.DataFrame, unit: str) -> go.Figure:
    """The domain classifier's AUC per window with its 95 % interval; 0.5 means the
    window's inputs cannot be told from the reference's."""
    fig = go.Figure()
    x = _starts(windows)
    auc = windows["auc"].astype(float)
    drift = windows["multivariate"].eq("drift")
    fig.add_scatter(x=x, y=auc, mode="lines+markers", name="domain classifier AUC",
                    line=dict(color=PALETTE[4]),
                    marker=dict(size=np.where(drift, 11, 7),
                                color=np.where(drift, PALETTE[3], PALETTE[4])),
                    error_y=dict(type="data", symmetric=False,
                                 array=windows["auc_high"] - auc,
                                 arrayminus=auc - windows["auc_low"], thickness=1),
                    hovertemplate="AUC %{y:.3f}<extra></extra>")
    fig.add_hline(y=0.5, line=dict(color="#555", dash="dash"),
                  annotation_text="0.5: no difference", annotation_position="bottom left")
    fig.add_hline(y=AUC_MIN, line=dict(color=PALETTE[3], dash="dot"),
                  annotation_text=f"{AUC_MIN}: drift threshold", annotation_position="top left")
    _layout(fig, "Multivariate drift: domain classifier AUC (red: drift)", 400, unit, x)
    fig.update_yaxes(title_text="AUC (95 % interval)", range=[0.3, 1.02])
    return fig
