"""Time windows: which calendar unit the data can support, and each row's window."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.attribution.problem import CELL_ROWS, MIN_ROWS, UNITS, AttributionError
from analysis.calendar_windows import window_end, window_numbers, window_start


def cell_sizes(timestamps, segments=None) -> dict[str, dict[str, float]]:
    """Per calendar unit: ``windows`` (how many), ``window_rows`` (the median rows of a
    window) and ``cell_rows`` (the median rows of a window x group cell; the window's
    when there is no segment), over the rows with a timestamp.

    Counted on integers: each row's hour and group once, then every unit from the
    (hour, group) counts, since hours nest in days, weeks and months (at millions of
    rows, grouping the labels or every row's stamp per unit cost seconds)."""
    if isinstance(timestamps, np.ndarray) and timestamps.dtype.kind == "M":
        ts = timestamps.astype("datetime64[us]", copy=False)
    else:
        ts = pd.to_datetime(pd.Series(timestamps), errors="coerce").to_numpy(dtype="datetime64[us]")
    ok = ~np.isnat(ts)
    hours = window_numbers(ts if ok.all() else ts[ok], "hour")
    groups, n_groups = None, 1
    if segments is not None:
        segments = np.asarray(segments)
        groups = segments if ok.all() else segments[ok]
        if groups.dtype.kind in "iu" and groups.size and groups.min() >= 0:
            n_groups = int(groups.max()) + 1        # codes already (see GroupCodes)
        else:
            groups, labels = pd.factorize(groups, use_na_sentinel=False)
            n_groups = max(len(labels), 1)
    out = {u: {"windows": 0, "window_rows": 0.0, "cell_rows": 0.0} for u in UNITS}
    if not hours.size:
        return out
    first = hours.min()
    hours -= first                  # in place: at millions of rows every copy counts
    if groups is not None:
        hours *= n_groups
        hours += groups
    keys, counts = _tally(hours)
    group_of = keys % n_groups
    hour_starts = (keys // n_groups + first).astype("datetime64[h]")
    for u in UNITS:
        window = window_numbers(hour_starts, u)
        window -= window.min()
        window_rows = _tally(window, counts)[1]
        cell_rows = window_rows if segments is None else _tally(window * n_groups + group_of,
                                                                 counts)[1]
        out[u] = {"windows": int(window_rows.size),
                  "window_rows": float(np.median(window_rows)),
                  "cell_rows": float(np.median(cell_rows))}
    return out


def _tally(keys: np.ndarray, weights: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """The non-negative integers that occur in ``keys`` (sorted) and how many times
    each occurs (the sum of their ``weights`` when given)."""
    if keys.max() < 8 * keys.size + 1024:    # a dense range: count by position
        counts = np.bincount(keys, weights)
        present = np.flatnonzero(counts)
        return present, counts[present]
    present, inverse = np.unique(keys, return_inverse=True)
    return present, np.bincount(inverse, weights)


def choose_unit(timestamps, unit: str = "auto", segments=None) -> str | None:
    """The calendar unit: as given, or for ``auto`` one the data can support.

    ``auto`` looks first at units whose median window x group cell holds at least
    ``CELL_ROWS`` rows (``segments``: each row's group, optional), then at units whose
    median window does, then at units whose median window holds ``MIN_ROWS`` (enough to
    judge the all-groups cells); among the first such tier it takes the unit giving 8-30
    windows (nearest to 15 in ratio when several do; the nearest to that range in ratio
    when none does). When even the coarsest unit leaves the median window below
    ``MIN_ROWS``, it returns None: one window over the whole production period.
    """
    if unit != "auto":
        if unit not in UNITS:
            raise AttributionError(f"unknown window {unit!r}; choose auto or one of {', '.join(UNITS)}")
        return unit
    return unit_for(cell_sizes(timestamps, segments))


def unit_for(sizes: dict[str, dict[str, float]]) -> str | None:
    """``auto``'s choice (see :func:`choose_unit`) from :func:`cell_sizes`."""
    def distance(u: str) -> tuple[float, float]:
        n = sizes[u]["windows"]
        outside = 0.0 if 8 <= n <= 30 else min(abs(math.log(max(n, 1) / 8)), abs(math.log(max(n, 1) / 30)))
        return outside, abs(math.log(max(n, 1) / 15))

    tiers = ([u for u in UNITS if sizes[u]["cell_rows"] >= CELL_ROWS],
             [u for u in UNITS if sizes[u]["window_rows"] >= CELL_ROWS],
             [u for u in UNITS if sizes[u]["window_rows"] >= MIN_ROWS])
    for tier in tiers:
        if tier:
            return min(tier, key=distance)
    return None


def _sizes_text(sizes: dict, unit: str, segment: str | None) -> str:
    """'9 windows, a median 60,000 rows each (15,000 per user_group)'."""
    s = sizes[unit]
    text = f"{s['windows']} windows, a median {s['window_rows']:,.0f} rows each"
    if segment is not None:
        text += f" ({s['cell_rows']:,.0f} per {segment})"
    return text


def _coarser_advice(sizes: dict | None, unit: str | None) -> str:
    """What to do when cells are too small: the first coarser unit whose median window
    holds ``MIN_ROWS`` rows, else ``auto``'s single window."""
    if sizes is None or unit is None:
        return ""
    for u in UNITS[UNITS.index(unit) + 1:]:
        if sizes[u]["window_rows"] >= MIN_ROWS:
            return (f"; choose a coarser window: a {u} holds a median "
                    f"{sizes[u]['window_rows']:,.0f} rows")
    return "; choose window auto to judge the whole period as one window"


@dataclass
class Windows:
    """The production rows' windows: ``unit`` (None: one window over everything),
    ``starts`` (one per window; NaT for the single window) and ``of`` (each production
    row's window, -1 without a parseable timestamp); ``sizes`` from :func:`cell_sizes`;
    ``stamps`` the parsed timestamps (None without a timestamp column)."""

    unit: str | None
    starts: np.ndarray
    of: np.ndarray
    sizes: dict | None = None
    stamps: np.ndarray | None = None

    def start(self, w: int) -> pd.Timestamp | None:
        return None if np.isnat(self.starts[w]) else pd.Timestamp(self.starts[w])

    def end(self, w: int) -> pd.Timestamp | None:
        start = self.start(w)
        return None if start is None else pd.Timestamp(window_end(self.starts[w], self.unit))


def assign_windows(production: pd.DataFrame, timestamp: str | None, segment: str | None,
                   segments: np.ndarray, unit: str, notes: list[str]) -> Windows:
    """Calendar windows of the production rows in UTC (see :func:`choose_unit` for
    ``auto``); notes say what was chosen and what was left out."""
    one = np.array([np.datetime64("NaT")])
    if timestamp is None:
        return Windows(None, one, np.zeros(len(production), dtype=int))
    stamps = production[timestamp]
    if not pd.api.types.is_datetime64_any_dtype(stamps):   # parsed when not already
        stamps = pd.to_datetime(stamps, errors="coerce", utc=None)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)   # windows in UTC
    if stamps.isna().all():
        raise AttributionError(f"timestamp column {timestamp!r} has no parseable dates")
    if stamps.isna().any():
        notes.append(f"{int(stamps.isna().sum()):,} production rows without a parseable "
                     f"{timestamp} were left out")
    ok = stamps.notna().to_numpy()
    ts = stamps.to_numpy(dtype="datetime64[us]")
    sizes = cell_sizes(ts, None if segment is None else segments)   # (leaves NaT out)
    chosen = unit_for(sizes) if unit == "auto" else choose_unit(ts, unit)
    if chosen is None:
        notes.append(f"too few production rows for calendar windows (a {UNITS[-1]} holds "
                     f"a median {sizes[UNITS[-1]]['window_rows']:,.0f} rows; at least "
                     f"{MIN_ROWS} are needed to judge one): judged as one window over "
                     "the whole production period")
        return Windows(None, one, np.where(ok, 0, -1), sizes, ts)
    if unit == "auto":
        notes.append(f"window: {chosen} (auto: windows that hold enough rows to judge; "
                     f"{_sizes_text(sizes, chosen, segment)})")
    # windows as integer numbers (in time order), each one's start from one of its rows
    valid = ts if ok.all() else ts[ok]         # (a copy of millions of rows only if needed)
    number = window_numbers(valid, chosen)
    number -= number.min()
    present, _ = _tally(number)
    index = np.searchsorted(present, number)
    one_row = np.zeros(present.size, dtype=np.int64)
    one_row[index] = np.arange(index.size)
    if ok.all():
        of = index
    else:
        of = np.full(len(production), -1)
        of[ok] = index
    return Windows(chosen, window_start(valid[one_row], chosen), of, sizes, ts)
