"""How numbers and selections read on screen: one format per kind of number.

* counts: thousands separators (``59,083``); compact in small spaces (``59k``);
* drift statistics, noise levels and thresholds: 4 decimals (``0.1015``, ``14.1900``);
* p-values: 4 decimals, ``< 0.0001`` below that;
* model errors: 2 decimals with the target's unit (``63.43 EUR``), changes signed;
* a missing value: an em dash, never "None" or "nan".
"""
from __future__ import annotations

import math
import re
from typing import Iterable, Mapping

MISSING = "—"


def decimals_for(scale: float | None, significant: int = 4) -> int:
    """Decimals that give ``significant`` digits to a number of magnitude ``scale``
    (62.9 -> 2, 0.93 -> 4, 1234 -> 0), so related numbers share one precision."""
    if scale is None or not math.isfinite(scale) or scale == 0:
        return 2
    return int(min(6, max(0, significant - 1 - math.floor(math.log10(abs(scale))))))


def window_label(start) -> str:
    """A window's start as people read it: '2025-06-01', '2025-06-01 14:00' for an
    hour; 'whole period' for None (one window over everything)."""
    if start is None:
        return "whole period"
    return str(start)[:16].replace("T", " ").removesuffix(" 00:00")


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def count(value) -> str:
    """A count with thousands separators: ``59083`` -> ``'59,083'``."""
    return MISSING if _missing(value) else f"{int(round(float(value))):,}"


def rows(n: int, what: str = "row") -> str:
    """``'1 row'``, ``'1,234 rows'`` (``what`` in the singular)."""
    return f"{int(n):,} {what}{'' if int(n) == 1 else 's'}"


def of_total(part, total: int) -> str:
    """``'6 of 11'``; ``'not judged'`` when ``part`` is missing."""
    return "not judged" if _missing(part) else f"{int(part)} of {int(total)}"


def compact_count(value) -> str:
    """A count in at most four characters: 66, 999, 1.2k, 59k, 1.2M."""
    if _missing(value):
        return MISSING
    n = int(round(float(value)))
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if abs(n) >= size:
            scaled = n / size
            text = f"{scaled:.1f}" if abs(scaled) < 10 else f"{scaled:.0f}"
            return text.removesuffix(".0") + suffix
    return str(n)


def statistic(value) -> str:
    """A drift statistic, noise level or threshold: 4 decimals."""
    return MISSING if _missing(value) else f"{float(value):.4f}"


def p_value(value) -> str:
    """A p-value: 4 decimals, ``'< 0.0001'`` below 0.0001, an em dash when there is none."""
    if _missing(value):
        return MISSING
    return "< 0.0001" if float(value) < 1e-4 else f"{float(value):.4f}"


def with_unit(text: str, unit: str) -> str:
    """``'63.43'`` + ``'EUR'`` -> ``'63.43 EUR'``; no unit, no space."""
    return f"{text} {unit}" if unit else text


def error(value, unit: str = "", signed: bool = False) -> str:
    """A model error (MAE) with 2 decimals and its unit; ``signed`` for a change."""
    if _missing(value):
        return MISSING
    return with_unit(f"{float(value):{'+' if signed else ''},.2f}", unit)


def rule(uses_p_value: bool, threshold: float) -> str:
    """When a test calls drift: ``'p < 0.05'`` or ``'≥ 0.1'``."""
    return f"p < {threshold:g}" if uses_p_value else f"≥ {threshold:g}"


def selection(segments: Mapping[str, Iterable[str]] | Iterable[tuple[str, Iterable[str]]]
              ) -> str:
    """The chosen segment values, for titles: ``'user_group: students'``,
    ``'user_group: families, students; plan: paid'``; ``'all groups'`` when nothing is
    filtered."""
    items = segments.items() if isinstance(segments, Mapping) else segments
    parts = [f"{column}: {', '.join(str(v) for v in values)}" for column, values in items]
    return "; ".join(parts) if parts else "all groups"


def slug(text: str) -> str:
    """A file-name-safe form: ``'user_group: students'`` -> ``'user_group-students'``."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-") or "all"


def table_height(n_rows: int, row_height: int = 35, max_rows: int = 40,
                 header_height: int = 35) -> int:
    """Pixels for a dataframe showing all its rows under the header, up to ``max_rows``
    (then it scrolls); 3 px for the borders."""
    shown = max(1, min(int(n_rows), max_rows))
    return header_height + shown * row_height + 3


def wrapped_row_height(texts: Iterable[str], chars_per_line: int) -> int | None:
    """A row height that lets the longest text wrap onto up to three lines (Streamlit
    wraps text cells only in rows taller than 64 px), or None when every text fits on
    one line."""
    longest = max((len(t) for t in texts if isinstance(t, str)), default=0)
    return None if longest <= chars_per_line else 70
