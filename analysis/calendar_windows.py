"""Calendar windows of timestamps (hour, day, week from Monday, month), in plain numpy:
the heatmap's windows and the investigation's are the same calendar, as starts
(:func:`window_start`) or as integer numbers (:func:`window_numbers`)."""
from __future__ import annotations

import numpy as np


def window_start(values, unit: str) -> np.ndarray:
    """Calendar window start (datetime64[us]) of each timestamp; weeks start on Monday."""
    stamps = np.asarray(values, dtype="datetime64[us]")
    if unit == "hour":
        return stamps.astype("datetime64[h]").astype("datetime64[us]")
    days = stamps.astype("datetime64[D]")
    if unit == "day":
        out = days
    elif unit == "week":
        # 1970-01-01 was a Thursday: shift so weeks start on Monday
        out = (days - ((days.astype(np.int64) + 3) % 7).astype("timedelta64[D]"))
    elif unit == "month":
        out = days.astype("datetime64[M]").astype("datetime64[D]")
    else:
        raise ValueError(f"unknown window unit {unit!r}")
    return out.astype("datetime64[us]")


def window_end(start, unit: str) -> np.datetime64:
    """Exclusive end of the window starting at ``start``."""
    if unit == "hour":
        return (np.datetime64(start, "h") + np.timedelta64(1, "h")).astype("datetime64[us]")
    s = np.datetime64(start, "D")
    if unit == "day":
        e = s + np.timedelta64(1, "D")
    elif unit == "week":
        e = s + np.timedelta64(7, "D")
    else:
        e = (s.astype("datetime64[M]") + np.timedelta64(1, "M")).astype("datetime64[D]")
    return e.astype("datetime64[us]")


_HOUR_US, _DAY_US = 3_600_000_000, 86_400_000_000


def window_numbers(ts: np.ndarray, unit: str) -> np.ndarray:
    """Each timestamp's window of ``unit`` as an integer, in the calendar of
    :func:`window_start` (UTC; weeks from Monday): equal numbers, equal windows. Integer
    arithmetic on the microseconds, and months looked up per day, since numpy's calendar
    conversion of millions of stamps takes seconds."""
    us = np.asarray(ts, dtype="datetime64[us]").view(np.int64)
    if unit == "hour":
        return us // _HOUR_US
    days = us // _DAY_US
    if unit == "day":
        return days
    if unit == "week":
        return (days + 3) // 7      # 1970-01-01 was a Thursday; day 4 a Monday
    if unit != "month":
        raise ValueError(f"unknown window unit {unit!r}")
    if not days.size:
        return days
    first = days.min()
    month_of_day = np.arange(first, days.max() + 1).astype("datetime64[D]") \
        .astype("datetime64[M]").astype(np.int64)
    return month_of_day[days - first]
