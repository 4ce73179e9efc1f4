"""Plotly figure builders. Pages, exports and tests all use these same figures.

The numbers behind each figure come from the small functions here (tested); the
builders only lay them out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis import formats

REFERENCE_COLOR = "#4C78A8"
PRODUCTION_COLOR = "#F58518"
DRIFT_COLOR = "#E45756"
FONT = dict(family="Inter, Helvetica, Arial, sans-serif", size=13)


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"), height=height,
                      font=FONT, template="plotly_white", margin=dict(l=60, r=20, t=110, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.08, xanchor="right", x=1))
    return fig


def histogram_shares(reference, production, n_bins: int = 40
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shared equal-width bins and each sample's share per bin, in percent.

    The range spans the combined 0.1st to 99.9th percentiles, so one far outlier does not
    squash the picture; values outside it are counted in the first or last bin. Missing
    values are dropped. Returns (edges, reference %, production %); each share vector
    sums to 100 (or is all zero for an empty sample).
    """
    ref = np.asarray(reference, dtype=float)
    prod = np.asarray(production, dtype=float)
    ref, prod = ref[~np.isnan(ref)], prod[~np.isnan(prod)]
    both = np.concatenate([ref, prod])
    if both.size == 0:
        return np.array([0.0, 1.0]), np.zeros(1), np.zeros(1)
    lo, hi = np.quantile(both, [0.001, 0.999])
    if hi <= lo:
        lo, hi = float(both.min()) - 0.5, float(both.max()) + 0.5
    edges = np.linspace(lo, hi, n_bins + 1)

    def shares(x):
        if x.size == 0:
            return np.zeros(n_bins)
        counts = np.histogram(np.clip(x, lo, hi), edges)[0]
        return 100.0 * counts / x.size

    return edges, shares(ref), shares(prod)


def ecdf_on_grid(values, grid) -> np.ndarray:
    """Empirical CDF of the non-missing ``values`` at each grid point: share <= x."""
    x = np.sort(np.asarray(values, dtype=float))
    x = x[~np.isnan(x)]
    if x.size == 0:
        return np.full(len(grid), np.nan)
    return np.searchsorted(x, np.asarray(grid, dtype=float), side="right") / x.size


def category_shares(reference, production) -> pd.DataFrame:
    """Share (%) of each level in each sample: columns level, reference, production.

    Levels are ordered by reference share, then production-only levels; missing values
    appear as the level "(missing)" when present.
    """
    ref = pd.Series(reference).astype(object).where(pd.Series(reference).notna(), "(missing)")
    prod = pd.Series(production).astype(object).where(pd.Series(production).notna(), "(missing)")
    r = ref.astype(str).value_counts(normalize=True) * 100
    p = prod.astype(str).value_counts(normalize=True) * 100
    levels = list(r.index) + [lvl for lvl in p.index if lvl not in r.index]
    return pd.DataFrame({"level": levels,
                         "reference": r.reindex(levels, fill_value=0.0).to_numpy(),
                         "production": p.reindex(levels, fill_value=0.0).to_numpy()})


def distribution_figure(reference, production, kind: str, feature: str,
                        unit: str = "", names: tuple[str, str] = ("reference", "production"),
                        title: str | None = None) -> go.Figure:
    """Reference vs production for one feature: histogram + ECDF (numeric) or shares
    side by side (categorical). ``names`` label the two samples."""
    label = f"{feature} ({unit})" if unit else feature
    first, second = names
    title = title or f"{feature}: {first} vs {second}"
    if kind == "numeric":
        edges, ref_pct, prod_pct = histogram_shares(reference, production)
        centres = (edges[:-1] + edges[1:]) / 2
        width = float(edges[1] - edges[0])
        fig = make_subplots(rows=1, cols=2, subplot_titles=("Histogram", "Cumulative distribution"),
                            horizontal_spacing=0.1)
        for name, pct, color in ((first, ref_pct, REFERENCE_COLOR),
                                 (second, prod_pct, PRODUCTION_COLOR)):
            fig.add_bar(x=centres, y=pct, width=width, name=name, marker_color=color, opacity=0.55,
                        hovertemplate=f"{feature} %{{x:.4g}}<br>%{{y:.2f}}% of {name}<extra></extra>",
                        row=1, col=1)
        grid = np.linspace(edges[0], edges[-1], 200)
        for name, values, color in ((first, reference, REFERENCE_COLOR),
                                    (second, production, PRODUCTION_COLOR)):
            fig.add_scatter(x=grid, y=100 * ecdf_on_grid(values, grid), mode="lines", name=name,
                            line=dict(color=color, width=2), showlegend=False,
                            hovertemplate=f"{feature} <= %{{x:.4g}}: %{{y:.1f}}% of {name}<extra></extra>",
                            row=1, col=2)
        fig.update_layout(barmode="overlay", bargap=0)
        fig.update_xaxes(title_text=label)
        fig.update_yaxes(title_text="share of rows (%)", row=1, col=1)
        fig.update_yaxes(title_text="rows at or below (%)", range=[0, 100], row=1, col=2)
        return _layout(fig, title, 420)
    shares = category_shares(reference, production)
    fig = go.Figure()
    for column, name, color in (("reference", first, REFERENCE_COLOR),
                                ("production", second, PRODUCTION_COLOR)):
        fig.add_bar(x=shares["level"], y=shares[column], name=name, marker_color=color,
                    hovertemplate=f"%{{x}}<br>%{{y:.2f}}% of {name}<extra></extra>")
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text=label, type="category")
    fig.update_yaxes(title_text="share of rows (%)")
    return _layout(fig, title, 420)


def window_ticks(fig: go.Figure, starts, unit: str) -> None:
    """Ticks at the windows' own starts on a date axis (plotly's automatic ticks fall
    between monthly or weekly windows on short spans), labelled by the unit."""
    starts = sorted(pd.to_datetime(pd.Series(starts)).dropna().unique())
    if not starts or len(starts) > 40:
        return
    fmt = {"month": "%Y-%m", "hour": "%m-%d %H:00"}.get(unit, "%Y-%m-%d")
    fig.update_xaxes(tickmode="array", tickvals=starts,
                     ticktext=[pd.Timestamp(t).strftime(fmt) for t in starts])


def overview_figure(summary: pd.DataFrame, reference_mae: float | None,
                    reference_mape: float | None, n_features: int, target: str = "",
                    unit: str = "month", who: str = "") -> go.Figure:
    """Four aligned panels over production windows: MAE and MAPE against the reference
    level (dashed), rows per window, and drifted features per window; ``who`` (the
    groups shown) ends the title."""
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=(f"MAE ({target})" if target else "MAE", "MAPE (%)",
                                        "Rows per window", f"Drifted features (of {n_features})"))
    x = pd.to_datetime(summary["window_start"])
    for row, col, ref_level, fmt in ((1, "mae", reference_mae, ".2f"),
                                     (2, "mape", reference_mape, ".2f")):
        fig.add_scatter(x=x, y=summary[col], mode="lines+markers", name=col.upper(),
                        line=dict(color=PRODUCTION_COLOR, width=2), showlegend=False,
                        hovertemplate=f"%{{x|%Y-%m-%d}}<br>{col.upper()} %{{y:{fmt}}}<extra></extra>",
                        row=row, col=1)
        if ref_level is not None:
            fig.add_hline(y=ref_level, line=dict(color=REFERENCE_COLOR, dash="dash"),
                          annotation_text=f"reference {ref_level:{fmt}}",
                          annotation_position="top left", row=row, col=1)
    fig.add_bar(x=x, y=summary["rows"], marker_color="#9D9DA0", showlegend=False,
                hovertemplate="%{x|%Y-%m-%d}<br>%{y:,} rows<extra></extra>", row=3, col=1)
    drifted = summary["drifted_features"].astype(float)
    colors = [DRIFT_COLOR if v and v > 0 else REFERENCE_COLOR for v in drifted.fillna(0)]
    fig.add_bar(x=x, y=drifted, marker_color=colors, showlegend=False,
                customdata=summary["drifted_list"],
                hovertemplate="%{x|%Y-%m-%d}<br>%{y} drifted: %{customdata}<extra></extra>",
                row=4, col=1)
    # windows too small to judge: a grey mark on the axis, the reason on hover
    small = drifted.isna().to_numpy()
    if small.any():
        notes = summary["note"] if "note" in summary else pd.Series("not judged", summary.index)
        fig.add_scatter(x=x[small], y=np.zeros(int(small.sum())), mode="markers",
                        marker=dict(symbol="x-thin", size=9, color="#8E8E93",
                                    line=dict(width=2, color="#8E8E93")),
                        customdata=notes[small], name="not judged", showlegend=False,
                        hovertemplate="%{x|%Y-%m-%d}<br>%{customdata}<extra></extra>",
                        row=4, col=1)
    fig.update_yaxes(range=[0, max(n_features, 1)], row=4, col=1)
    fig.update_xaxes(title_text=f"window start ({unit})", row=4, col=1)
    window_ticks(fig, x, unit)
    title = "Model error, volume and drift per window" + (f" · {who}" if who else "")
    return _layout(fig, title, 820)


_UNIT_SUFFIXES = {"_sqm": "m²", "_m2": "m²", "_km": "km", "_m": "m", "_eur": "EUR", "_usd": "USD",
                  "_years": "years", "_yrs": "years", "_days": "days", "_pct": "%", "_s": "s",
                  "_ms": "ms", "_kg": "kg"}


def unit_of(column: str) -> str:
    """Unit read off a column name's suffix (``area_sqm`` -> m²), or ''."""
    lower = column.lower()
    for suffix in sorted(_UNIT_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return _UNIT_SUFFIXES[suffix]
    return ""


BAND_COLORS = ("#54A24B", "#ECA82C", "#E45756")  # stable, moderate, major
#: heatmap cell classes, in colour order: the grey and pale classes carry no drift
CELL_CLASSES = ("not judged", "stable", "within noise", "moderate", "major")
CELL_COLORS = ("#D5D5D8", BAND_COLORS[0], "#B9D9AE", BAND_COLORS[1], BAND_COLORS[2])
#: row counts are printed in the cells when a cell is at least this wide and tall (px)
CELL_TEXT_MIN_PX = (34, 16)


def _discrete_scale(colors) -> list:
    """A plotly colorscale giving each integer 0..len-1 its own flat colour."""
    k = len(colors)
    scale = []
    for i, color in enumerate(colors):
        scale += [[i / k, color], [(i + 1) / k, color]]
    return scale


def _cell_classes(grid_frame: pd.DataFrame, bands: tuple[float, float]) -> pd.Series:
    """Each cell's class (:data:`CELL_CLASSES`) from its verdict and, when it drifted,
    its band."""
    low, high = bands
    drift_band = np.where(grid_frame["value"] > high, "major", "moderate")
    return pd.Series(np.where(grid_frame["verdict"] == "drift", drift_band,
                              grid_frame["verdict"]), index=grid_frame.index)


def _cell_hover(feature: str, label: str, unit: str, metric_label: str, value, verdict: str,
                level, rows, reference_rows, cell_class: str) -> str:
    lines = [f"{feature}", f"{unit} of {label}",
             f"{metric_label}: " + ("no data" if pd.isna(value) else f"{value:.4f}"),
             f"verdict: {verdict}" + (f" ({cell_class})" if verdict == "drift" else "")]
    if not pd.isna(level):
        lines.append(f"noise level: {level:.4f}")
    lines.append(f"{0 if pd.isna(rows) else int(rows):,} production rows, "
                 f"{0 if pd.isna(reference_rows) else int(reference_rows):,} reference rows")
    return "<br>".join(lines)


def heatmap_figure(grid_frame: pd.DataFrame, metric_label: str, bands: tuple[float, float],
                   order: list[str], unit: str, title: str,
                   min_rows: int = 50) -> go.Figure:
    """Features x windows, one colour per cell class: not judged (fewer than ``min_rows``
    rows, grey), stable, within noise (pale), and the bands of drifted cells (moderate,
    major). Hover: value, verdict, noise level and row counts; each cell's production
    rows are printed in it when the cells are large enough to read.

    ``grid_frame`` is :func:`analysis.heatmap.grid`'s frame. The cells are a
    ``go.Heatmap``; an invisible square marker sits on every cell so the chart emits
    selection events (Streamlit reports none for heatmap traces). The markers'
    ``customdata`` is (feature, window start ISO) for the drill-down.
    """
    low, high = bands
    windows = sorted(grid_frame["window_start"].unique())
    frame = grid_frame.assign(cell_class=_cell_classes(grid_frame, bands))

    def pivot(column):
        return frame.pivot(index="feature", columns="window_start", values=column).reindex(
            index=order, columns=windows)

    values, classes, verdicts = pivot("value"), pivot("cell_class"), pivot("verdict")
    rows, ref_rows, levels = pivot("rows"), pivot("reference_rows"), pivot("noise")
    z = classes.apply(lambda col: col.map(CELL_CLASSES.index)).to_numpy(dtype=float)
    x_labels = [pd.Timestamp(w).strftime("%Y-%m-%d") for w in windows]
    n_x, n_y = max(len(x_labels), 1), max(len(order), 1)
    height = max(360, 40 + 34 * len(order)) + 110
    show_counts = (900 / n_x >= CELL_TEXT_MIN_PX[0]
                   and (height - 220) / n_y >= CELL_TEXT_MIN_PX[1])
    counts_text = [[formats.compact_count(v) if show_counts else "" for v in row]
                   for row in rows.to_numpy(dtype=float)]
    k = len(CELL_CLASSES)
    fig = go.Figure()
    fig.add_heatmap(
        z=z, x=x_labels, y=order, zmin=-0.5, zmax=k - 0.5, hoverinfo="skip",
        colorscale=_discrete_scale(CELL_COLORS), text=counts_text, texttemplate="%{text}",
        textfont=dict(size=11, color="#222"),
        colorbar=dict(title=dict(text=metric_label, side="top"), tickvals=list(range(k)),
                      ticktext=[f"< {min_rows} rows: not judged", f"< {low:g} stable",
                                f"≥ {low:g}, within noise", f"{low:g}–{high:g} moderate",
                                f"> {high:g} major"], len=0.9),
        xgap=1, ygap=1)
    fx, fy, text, custom = [], [], [], []
    for i, feature in enumerate(order):
        for j, label in enumerate(x_labels):
            fx.append(label)
            fy.append(feature)
            text.append(_cell_hover(feature, label, unit, metric_label, values.iat[i, j],
                                    verdicts.iat[i, j], levels.iat[i, j], rows.iat[i, j],
                                    ref_rows.iat[i, j], classes.iat[i, j]))
            custom.append([feature, label])
    size = max(4, min(28, int(900 / n_x), int(380 / n_y)))
    fig.add_scatter(x=fx, y=fy, mode="markers", customdata=custom, text=text,
                    hovertemplate="%{text}<extra></extra>", showlegend=False,
                    marker=dict(symbol="square", size=size, color="rgba(0,0,0,0.01)",
                                line=dict(width=0)),
                    selected=dict(marker=dict(color="rgba(0,0,0,0.35)")),
                    unselected=dict(marker=dict(opacity=1)))
    fig.update_xaxes(title_text=f"window start ({unit})", type="category", tickangle=-45)
    fig.update_yaxes(title_text="feature", autorange="reversed", type="category")
    fig.update_layout(clickmode="event+select", dragmode=False)
    return _layout(fig, title, height)


def grid_text(values, value_format: str) -> list[list[str]]:
    """Cell labels of a grid: each value in the Python format spec ``value_format``
    (e.g. ``'+.1f'``, ``'.2f'``, ``'.0%'``), an em dash where there is none; a value that
    rounds to zero prints unsigned ('0.0', not '-0.0' or '+0.0')."""
    unsigned = value_format.lstrip("+- ")
    out = []
    for row in np.asarray(values, dtype=float):
        cells = []
        for v in row:
            text = "—" if np.isnan(v) else format(v, value_format)
            if not any(c in "123456789" for c in text) and text != "—":
                text = format(0.0, unsigned)
            cells.append(text)
        out.append(cells)
    return out


def segment_grid_figure(frame: pd.DataFrame, value: str, label: str, title: str,
                        unit: str, diverging: bool = False,
                        bands: tuple[float, float] | None = None, *,
                        value_format: str = ".2f", segment_label: str = "segment"
                        ) -> go.Figure:
    """Segment x window grid of one value (error change, max PSI, drifted share).

    Cells print the value in ``value_format`` (Python format spec) at a readable size
    (rows at least 44 px tall); a missing value (a cell not judged) prints an em dash.
    The y axis is named after the segment column (``segment_label``); hover adds the
    cell's production rows when ``frame`` has a ``rows`` column."""
    pivot = frame.pivot(index="segment", columns="window_start", values=value)
    x_labels = [pd.Timestamp(w).strftime("%Y-%m-%d") for w in pivot.columns]
    z = pivot.to_numpy(dtype=float)
    if diverging:
        limit = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        kwargs = dict(colorscale="RdBu_r", zmid=0, zmin=-limit, zmax=limit)
    else:
        kwargs = dict(colorscale="YlOrRd", zmin=0)
    rows = (frame.pivot(index="segment", columns="window_start", values="rows")
            .reindex(index=pivot.index, columns=pivot.columns).to_numpy(dtype=float)
            if "rows" in frame else np.full(z.shape, np.nan))
    text = grid_text(z, value_format)
    hover = [[f"{seg}<br>{unit} of {x}<br>{label}: {t}"
              + ("" if np.isnan(n) else f"<br>{int(n):,} production rows")
              for x, t, n in zip(x_labels, text_row, rows_row)]
             for seg, text_row, rows_row in zip(pivot.index, text, rows)]
    fig = go.Figure(go.Heatmap(z=z, x=x_labels, y=list(pivot.index), text=text,
                               texttemplate="%{text}", textfont=dict(size=12),
                               customdata=hover, xgap=1, ygap=1,
                               colorbar=dict(title=dict(text=label, side="right")),
                               hovertemplate="%{customdata}<extra></extra>", **kwargs))
    fig.update_xaxes(title_text=f"window start ({unit})", type="category", tickangle=-45)
    fig.update_yaxes(title_text=segment_label, autorange="reversed", type="category")
    # title and legend (110 px), rotated dates and the axis title (110 px), 44 px a row
    return _layout(fig, title, 220 + 44 * max(len(pivot.index), 1))


# -- data vs concept ---------------------------------------------------------------
VERDICT_COLORS = {"none": "#DDE3EA", "data": "#4C78A8", "concept": "#E45756", "both": "#B279A2",
                  "not_judged": "#F4F4F4"}
VERDICTS = ("none", "data", "concept", "both", "not_judged")


def _window_label(start: str | None, unit: str | None) -> str:
    if start is None:
        return "all rows"
    fmt = "%Y-%m-%d %H:00" if unit == "hour" else "%Y-%m-%d"
    return pd.Timestamp(start).strftime(fmt)


def decomposition_figure(parts: pd.DataFrame, metric_label: str, unit: str | None,
                         title: str = "What changed the error: data vs concept") -> go.Figure:
    """Per window, the change of the error against the reference split into a data part
    and a concept part (stacked, with 95% intervals), and the realized change."""
    x = [_window_label(s, unit) for s in parts["start"]]
    fig = go.Figure()

    def bar(key, name, color):
        value = parts[key].astype(float)
        fig.add_bar(x=x, y=value, name=name, marker_color=color,
                    error_y=dict(type="data", symmetric=False,
                                 array=(parts[f"{key}_high"].astype(float) - value).clip(lower=0),
                                 arrayminus=(value - parts[f"{key}_low"].astype(float)).clip(lower=0),
                                 thickness=1, width=3, color="#333"),
                    hovertemplate="%{x}<br>" + name + ": %{y:.4g}<extra></extra>")

    bar("data_part", "data-drift part", VERDICT_COLORS["data"])
    bar("concept_part", "concept-drift part", VERDICT_COLORS["concept"])
    total = parts["realized"].astype(float) - parts["reference"].astype(float)
    fig.add_scatter(x=x, y=total, name="realized change", mode="markers+lines",
                    marker=dict(color="#222", size=8, symbol="diamond"), line=dict(dash="dot"),
                    hovertemplate="%{x}<br>realized − reference: %{y:.4g}<extra></extra>")
    fig.add_hline(y=0, line_color="#888", line_width=1)
    fig.update_layout(barmode="relative")
    fig.update_xaxes(title_text=f"window start ({unit or 'all rows'})", type="category",
                     tickangle=-45)
    fig.update_yaxes(title_text=f"change in {metric_label} vs reference")
    return _layout(fig, title, 440)


def verdict_grid_figure(grid: pd.DataFrame, segment_label: str, unit: str | None,
                        title: str = "Verdict per group and window") -> go.Figure:
    """Segment x window grid of verdicts (none / data / concept / both), the domain
    classifier's AUC and the concept change on hover."""
    segments = ["all"] + sorted(set(grid["segment"]) - {"all"})
    starts = sorted(set(grid["start"].dropna())) or [None]
    x = [_window_label(s, unit) for s in starts]
    z = np.full((len(segments), len(starts)), np.nan)
    text = [["no rows"] * len(starts) for _ in segments]
    label = [[""] * len(starts) for _ in segments]
    for r in grid.itertuples(index=False):
        i = segments.index(r.segment)
        j = starts.index(r.start) if r.start is not None else 0
        z[i, j] = VERDICTS.index(r.verdict)
        label[i][j] = r.verdict.replace("_", " ")
        auc = "n/a" if r.auc is None or pd.isna(r.auc) else f"{r.auc:.3f}"
        change = "n/a" if r.concept_change is None or pd.isna(r.concept_change) \
            else f"{r.concept_change:+.4g}"
        text[i][j] = (f"{r.segment} · {x[j]}<br>verdict: <b>{r.verdict}</b><br>{int(r.rows):,} rows"
                      f"<br>domain AUC: {auc}<br>error change on shared inputs: {change}"
                      + (f"<br>drifted: {r.drifted_features}" if r.drifted_features else ""))
    scale, k_all = [], len(VERDICTS)
    for k, v in enumerate(VERDICTS):
        scale += [[k / k_all, VERDICT_COLORS[v]], [(k + 1) / k_all, VERDICT_COLORS[v]]]
    fig = go.Figure(go.Heatmap(
        z=z, x=x, y=segments, zmin=-0.5, zmax=k_all - 0.5, colorscale=scale, text=label,
        texttemplate="%{text}", customdata=text, hovertemplate="%{customdata}<extra></extra>",
        xgap=2, ygap=2, colorbar=dict(tickvals=list(range(k_all)),
                                      ticktext=[v.replace("_", " ") for v in VERDICTS],
                                      title=dict(text="verdict", side="top"))))
    fig.update_xaxes(title_text=f"window start ({unit or 'all rows'})", type="category",
                     tickangle=-45)
    fig.update_yaxes(title_text=segment_label or "segment", autorange="reversed", type="category")
    return _layout(fig, title, max(400, 150 + 42 * len(segments)))


def side_by_side_figure(frame: pd.DataFrame, value_label: str, title: str,
                        top: int = 15) -> go.Figure:
    """Horizontal bars of ``reference`` and ``window`` per ``feature`` (the ``top`` with the
    largest magnitude on either side)."""
    order = frame.assign(size=frame[["reference", "window"]].abs().max(axis=1)) \
        .sort_values("size", ascending=False).head(top)
    fig = go.Figure()
    fig.add_bar(y=order["feature"], x=order["reference"], name="reference model",
                orientation="h", marker_color=REFERENCE_COLOR)
    fig.add_bar(y=order["feature"], x=order["window"], name="retrained on the window",
                orientation="h", marker_color=PRODUCTION_COLOR)
    fig.update_layout(barmode="group")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title_text=value_label)
    return _layout(fig, title, max(320, 120 + 34 * len(order)))


def predictions_figure(frame: pd.DataFrame, target_label: str,
                       title: str = "Same inputs, two models") -> go.Figure:
    """Reference model vs model retrained on the window, on the window's inputs; off the
    diagonal, the concept moved."""
    fig = go.Figure()
    fig.add_scatter(x=frame["reference_model"], y=frame["retrained"], mode="markers",
                    marker=dict(size=4, color=PRODUCTION_COLOR, opacity=0.45), name="window rows",
                    hovertemplate="reference model: %{x:.4g}<br>retrained: %{y:.4g}<extra></extra>")
    lo = float(np.nanmin(frame[["reference_model", "retrained"]].to_numpy()))
    hi = float(np.nanmax(frame[["reference_model", "retrained"]].to_numpy()))
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="agreement",
                    line=dict(color="#888", dash="dash"))
    fig.update_xaxes(title_text=f"reference model's prediction ({target_label})")
    fig.update_yaxes(title_text=f"retrained model's prediction ({target_label})")
    return _layout(fig, title, 420)


def residual_profile_figure(profile: pd.DataFrame, feature: str, residual_label: str) -> go.Figure:
    """Mean residual per bin of ``feature``, reference vs window."""
    fig = go.Figure()
    for side, color in (("reference", REFERENCE_COLOR), ("window", PRODUCTION_COLOR)):
        fig.add_scatter(x=profile["bin"], y=profile[side], mode="lines+markers", name=side,
                        marker=dict(color=color), line=dict(color=color),
                        customdata=profile[f"{side}_rows"],
                        hovertemplate="%{x}<br>mean residual: %{y:.4g}<br>%{customdata:,} rows"
                                      "<extra>" + side + "</extra>")
    fig.add_hline(y=0, line_color="#888", line_width=1)
    fig.update_xaxes(title_text=f"{feature} (reference bins)", type="category")
    fig.update_yaxes(title_text=f"mean residual ({residual_label})")
    return _layout(fig, f"Residual along {feature}: reference vs window", 380)
