"""What the pages ask of a slice, as Ibis expressions run on the configured engine
(:class:`analysis.engine.Engine`: the embedded DuckDB or Spark): its rows, time bounds
and segment values (the sidebar), and the model's error per window and segment (rows,
labelled rows, MAE, MAPE: the Overview, the Segments page and the postmortem).

MAE = mean |y - y_hat| over rows where both are numbers; MAPE = 100 * mean
|y - y_hat| / |y| over those rows with y != 0; labelled = rows whose target is not
NULL. Target and prediction are cast to float with ``TRY_CAST``: a classifier's text
labels give no MAE rather than a type error.
"""
from __future__ import annotations

from datetime import datetime

import pandas as pd

from analysis.engine import MISSING_SEGMENT, UNIT_CODES, Engine, connect_slice, to_arrow
from analysis.queries import WINDOW_UNITS, Filters
from analysis.store import Store

ERROR_COLUMNS = ["rows", "labelled", "mae", "mape"]


def error_table(store: Store, dataset: str, slice: str, filters: Filters | None = None, *,
                unit: str | None = None, segment: str | None = None,
                engine: Engine | None = None) -> pd.DataFrame:
    """Rows, labelled rows, MAE and MAPE (%) of ``slice`` within ``filters``, per calendar
    window of ``unit`` (``window_start``; weeks start on Monday) and per value of
    ``segment`` (``segment``, NULL as ``"(missing)"``) when given, sorted by them.

    MAE and MAPE are NaN where there is no labelled row, or when the dataset has no
    prediction or no target (then ``labelled`` is 0). An empty frame when the slice has
    no snapshot, or when a window is asked of a dataset without a timestamp.
    """
    if unit is not None and unit not in WINDOW_UNITS:
        raise ValueError(f"window unit must be one of {WINDOW_UNITS}, got {unit!r}")
    roles = store.dataset(dataset).roles
    keys = (["window_start"] if unit else []) + (["segment"] if segment else [])
    empty = pd.DataFrame(columns=keys + ERROR_COLUMNS)
    if unit is not None and roles.timestamp is None:
        return empty
    con, t = connect_slice(store, dataset, slice, filters, engine=engine)
    if t is None:
        return empty
    groups = {}
    if unit is not None:
        groups["window_start"] = t[roles.timestamp].truncate(UNIT_CODES[unit])
    if segment is not None:
        groups["segment"] = t[segment].cast("string").fill_null(MISSING_SEGMENT)
    expr = (t.group_by(**groups) if groups else t).aggregate(**_error_aggregates(t, roles))
    out = to_arrow(con, expr.order_by(keys) if keys else expr).to_pandas()
    for column in ("rows", "labelled"):
        out[column] = out[column].fillna(0).astype("int64")
    for column in ("mae", "mape"):
        out[column] = out[column].astype("float64")
    return out[keys + ERROR_COLUMNS]


def _error_aggregates(t, roles) -> dict:
    """The aggregates of :func:`error_table` over the rows ``t``."""
    import ibis   # here, not at the top: importing it costs a quarter of a second
    if not (roles.prediction and roles.target):
        return {"rows": t.count(), "labelled": ibis.literal(0, type="int64"),
                "mae": ibis.null("float64"), "mape": ibis.null("float64")}
    y = t[roles.target].try_cast("float64")
    error = (y - t[roles.prediction].try_cast("float64")).abs()
    return {"rows": t.count(), "labelled": t[roles.target].count(), "mae": error.mean(),
            "mape": 100 * (error / y.abs()).mean(where=y != 0)}


def reference_error(store: Store, dataset: str, filters: Filters | None = None,
                    engine: Engine | None = None) -> dict:
    """MAE and MAPE (%) of the model on the reference rows within ``filters``'s segments,
    with the rows and labelled rows counted (see :func:`error_table`); None for an error
    that cannot be computed."""
    table = error_table(store, dataset, "reference", filters, engine=engine)
    if table.empty:
        return {"mae": None, "mape": None, "rows": 0, "labelled": 0}
    row = table.iloc[0]
    return {"mae": None if pd.isna(row["mae"]) else float(row["mae"]),
            "mape": None if pd.isna(row["mape"]) else float(row["mape"]),
            "rows": int(row["rows"]), "labelled": int(row["labelled"])}


def window_metrics(store: Store, dataset: str, unit: str = "month",
                   filters: Filters | None = None, engine: Engine | None = None
                   ) -> pd.DataFrame:
    """Per production window: ``window_start``, ``rows``, ``labelled``, ``mae``, ``mape``."""
    return error_table(store, dataset, "production", filters, unit=unit, engine=engine)


def segment_window_metrics(store: Store, dataset: str, segment: str, unit: str = "month",
                           filters: Filters | None = None, engine: Engine | None = None
                           ) -> pd.DataFrame:
    """Per production window and value of ``segment``: rows, labelled, mae, mape, and the
    same segment's reference MAE / MAPE (``ref_mae``, ``ref_mape``) and their changes
    (``mae_change`` = mae - ref_mae, ``mape_change`` in percentage points)."""
    cols = ["window_start", "segment", "rows", "labelled", "mae", "mape", "ref_mae",
            "ref_mape", "mae_change", "mape_change"]
    prod = error_table(store, dataset, "production", filters, unit=unit, segment=segment,
                       engine=engine)
    if prod.empty:
        return pd.DataFrame(columns=cols)
    ref = error_table(store, dataset, "reference", filters, segment=segment, engine=engine)
    ref = ref.rename(columns={"mae": "ref_mae", "mape": "ref_mape"})
    prod = prod.merge(ref[["segment", "ref_mae", "ref_mape"]], on="segment", how="left")
    prod["mae_change"] = prod["mae"] - prod["ref_mae"]
    prod["mape_change"] = prod["mape"] - prod["ref_mape"]
    return prod.sort_values(["segment", "window_start"]).reset_index(drop=True)[cols]


def row_counts(store: Store, dataset: str, filters: Filters | None = None,
               engine: Engine | None = None) -> dict[str, int]:
    """Rows per slice (``reference``, ``production``) within ``filters``."""
    out = {}
    for slice in ("reference", "production"):
        con, t = connect_slice(store, dataset, slice, filters, engine=engine)
        out[slice] = 0 if t is None else int(
            to_arrow(con, t.aggregate(n=t.count())).column("n")[0].as_py())
    return out


def time_bounds(store: Store, dataset: str, slice: str, engine: Engine | None = None
                ) -> tuple[datetime, datetime] | None:
    """(first, last) timestamp of a slice, or None without rows or timestamp."""
    ts = store.dataset(dataset).roles.timestamp
    if ts is None:
        return None
    con, t = connect_slice(store, dataset, slice, engine=engine)
    if t is None:
        return None
    row = to_arrow(con, t.aggregate(lo=t[ts].min(), hi=t[ts].max())).to_pylist()[0]
    if row["lo"] is None:
        return None
    return pd.Timestamp(row["lo"]).to_pydatetime(), pd.Timestamp(row["hi"]).to_pydatetime()


def segment_values(store: Store, dataset: str, column: str, engine: Engine | None = None
                   ) -> list[str]:
    """Distinct values of a segment column over both slices, as text, sorted (NULL left
    out)."""
    values = set()
    for slice in ("reference", "production"):
        con, t = connect_slice(store, dataset, slice, engine=engine)
        if t is not None:
            text = t[column].cast("string")
            values |= set(to_arrow(con, t.filter(text.notnull()).select(v=text).distinct())
                          .column("v").to_pylist())
    return sorted(values)
