"""Static and standalone exports of the dashboard's plotly figures.

PNG and SVG come from kaleido driving Debian's chromium (found by kaleido itself; MathJax
off so it never reaches the network). One persistent kaleido server is started on first
use and shared under a lock, since it is not safe for concurrent callers; later figures
then take a fraction of a second. HTML is standalone and works offline: plotly.js is
embedded in the file.
"""
from __future__ import annotations

import threading
import warnings

import plotly.graph_objects as go

FORMATS = {"png": "image/png", "svg": "image/svg+xml", "html": "text/html"}
_LOCK = threading.Lock()
_SERVER = {"started": False}


def figure_bytes(fig: go.Figure, fmt: str, width: int = 1200, scale: float = 2.0) -> bytes:
    """The figure as ``fmt`` ('png', 'svg' or 'html') bytes.

    Images are rendered at ``width`` CSS pixels (height from the figure's layout) and,
    for PNG, ``scale`` times that resolution.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "html":
        return fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")
    import kaleido

    height = fig.layout.height or 500
    with _LOCK:
        if not _SERVER["started"]:
            kaleido.start_sync_server(mathjax=False)
            _SERVER["started"] = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "kopts ignored with a server"
            return fig.to_image(format=fmt, width=width, height=height,
                                scale=scale if fmt == "png" else 1)
