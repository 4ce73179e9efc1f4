"""Chart export: real kaleido + Debian chromium for images, standalone HTML."""
import pytest

from analysis.export import figure_bytes
from analysis.figures import distribution_figure


@pytest.fixture(scope="module")
def fig():
    return distribution_figure([1.0, 2.0, 2.5, 3.0], [2.0, 3.0, 3.5, 4.0], "numeric", "area_sqm", "m²")


def test_png_is_a_valid_image_of_the_requested_size(fig):
    import struct
    data = figure_bytes(fig, "png", width=800, scale=1)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (800, fig.layout.height)


def test_svg_and_standalone_html(fig):
    svg = figure_bytes(fig, "svg").decode()
    assert svg.startswith("<svg") and "area_sqm" in svg
    html = figure_bytes(fig, "html").decode()
    assert "<html>" in html and "plotly.js v" in html
    assert "<script src=" not in html  # nothing loaded from elsewhere
    assert len(html) > 1_000_000  # plotly.js is embedded: works offline


def test_unknown_format_is_refused(fig):
    with pytest.raises(ValueError, match="format"):
        figure_bytes(fig, "gif")
