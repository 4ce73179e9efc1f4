"""Per-snapshot profiles: the sufficient statistics of a snapshot on the frozen bins.

A profile makes any aggregate over whole snapshots a sum of profiles (as mergeable as
the counts themselves), so it never touches the rows again:

* ``days``: counts per segment column ``seg`` (its index in the dataset's segment
  columns; -1 with a day-only cell when there is none), ``cell`` (as in the codes file,
  :mod:`analysis.codes`; NULL for rows without a timestamp), ``feature`` (index in
  ``bins.coarse``) and coarse ``bin``;
* ``fine``: per numeric ``feature`` (index in ``bins.fine``) and fine ``bin``: the
  count ``n`` and the ``lo``, ``hi`` and ``sum`` of the present values (NULL in the
  missing bin), exactly what :func:`analysis.counts.binned_counts` returns with
  ``with_range``;
* ``moments``: per segment column ``segcol`` ('' for all rows) and value ``segment``,
  per numeric ``feature``: count ``n``, ``mean`` and ``m2`` (sum of squared deviations
  from the mean) of the present values;
* ``profile.json``, written last (its presence marks a complete profile): the row
  count, the count of rows without a timestamp, and the first and last timestamp in
  microseconds since 1970 (null for timezone-aware columns), which say whether a time
  filter covers the whole snapshot.

:func:`ensure_codes` writes what is missing: by default in one pass over the rows
(:mod:`analysis.onepass`, which ingest runs for each new snapshot), or with the engine
(``method="engine"``: :func:`analysis.codes.write_codes`, then :func:`write_profile`
from the codes file and the rows; portable Ibis expressions, kept as the reference the
one-pass writer is tested against). On Spark (``engine``) only the profile is written,
by :func:`write_profile_from_rows`: the same Ibis expressions over the snapshot's rows,
the days part counted from the rows' cells and bins instead of from a codes file. The
files are the same, so profiles written by Spark and by DuckDB sum together.
"""
from __future__ import annotations

import fcntl
import shutil
import threading
from pathlib import Path

import ibis

from analysis import onepass
from analysis.codes import (CELL_SHIFT, CODES_DAY, cell_columns, code_expr, code_slots,
                            codes_folder, day_number, extend_dictionary, leftovers,
                            profile_complete, profile_paths, segment_values, write_codes,
                            write_meta)
from analysis.engine import (MISSING_SEGMENT, Engine, compiled, connect, copy_to, epoch_us,
                             files_view, new_con, present, present_or_null, run, runs_on_spark,
                             shape_of, to_arrow, unpivot, view)
from analysis.queries import parquet_source
from analysis.reference_bins import FrozenBins, bin_expr, frozen_bins
from analysis.store import Store

METHODS = ("onepass", "engine")
_CODES_LOCK = threading.Lock()


def ensure_codes(store: Store, dataset: str, bins: FrozenBins, progress=None,
                 slice: str = "production", method: str = "onepass",
                 engine: Engine | None = None) -> list[Path]:
    """Each snapshot's coarse bin codes and profile, written once per reference.

    Writes what is missing for the current snapshots of ``slice`` under temporary names,
    then renames; drops the files of snapshots no longer in the store and of an earlier
    layout of the same codes. ``method`` says how missing files are written (see the
    module docstring); a Spark ``engine`` needs, and writes, profiles only. Returns the
    codes files of the current snapshots of ``slice``, in snapshot order (on Spark they
    may not exist).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    roles = store.dataset(dataset).roles
    folder = codes_folder(store, dataset, bins)
    for old in folder.parent.glob(f"codes-{bins.token}-*"):
        if old != folder:  # an earlier layout of the same codes
            shutil.rmtree(old, ignore_errors=True)
    every = store.snapshots(dataset)
    snaps = [snap for snap in every if snap.slice == slice]
    out = [folder / f"{snap.id}.parquet" for snap in snaps]
    current = {snap.id for snap in every}
    spark = runs_on_spark(engine)

    def done(path: Path, snap) -> bool:
        return profile_complete(folder, snap.id) and (spark or path.is_file())

    if not leftovers(folder, current) and all(done(p, snap) for p, snap in zip(out, snaps)):
        return out
    folder.mkdir(parents=True, exist_ok=True)
    # one writer at a time (threads of one dashboard, or another process): the segment
    # dictionary is append-only and every codes file must agree with it
    with _CODES_LOCK, open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for entry in leftovers(folder, current):
            entry.unlink(missing_ok=True)
        missing = [snap for snap, path in zip(snaps, out) if not done(path, snap)]
        if spark:
            con = connect(engine)
            for snap in missing:
                write_profile_from_rows(con, folder, snap, roles, bins, shape_of(engine))
                if progress:
                    progress(f"profiled snapshot {snap.id} ({snap.rows:,} rows) on Spark")
        elif method == "onepass":
            onepass.write_snapshots(folder, missing, roles, bins, progress)
        else:
            for snap in missing:
                _write_with_engine(folder, snap, folder / f"{snap.id}.parquet", roles,
                                   bins, progress)
    return out


def _write_with_engine(folder: Path, snap, path: Path, roles, bins: FrozenBins,
                       progress) -> None:
    """Write whatever of one snapshot's codes and profile is missing with the engine's
    writers (lock held)."""
    has_codes, has_profile = path.is_file(), profile_complete(folder, snap.id)
    if not has_codes:
        write_codes(folder, snap, path, roles, bins)
        if progress:
            progress(f"binned snapshot {snap.id} ({snap.rows:,} rows)")
    if not has_profile:
        write_profile(folder, snap, path, roles, bins)
        if progress:
            progress(f"profiled snapshot {snap.id}")


def prepare(store: Store, progress=print) -> None:
    """Freeze the bins and write the codes and profile of every snapshot of every dataset
    with a timestamp and a reference, so pages open without binning rows first."""
    for dataset in store.datasets():
        prepare_dataset(store, dataset, progress=lambda m, d=dataset: progress(f"  {d}: {m}"))


def prepare_dataset(store: Store, dataset: str, progress=None) -> bool:
    """Freeze the bins and write the missing codes and profiles of one dataset; False
    (nothing written) when it has no timestamp or no reference yet.

    After a new production snapshot that is one pass over its rows; after a new
    reference snapshot every snapshot is profiled again (new reference, new bins)."""
    if store.dataset(dataset).roles.timestamp is None or not store.files(dataset,
                                                                         "reference"):
        return False
    bins = frozen_bins(store, dataset)
    for slice_ in ("reference", "production"):
        ensure_codes(store, dataset, bins, progress=progress, slice=slice_)
    return True


def write_profile(folder: Path, snap, codes_path: Path, roles, bins: FrozenBins) -> None:
    """Write one snapshot's profile with the engine (caller holds the codes lock): the
    days part counted from the codes file, the rest from the rows."""
    paths = profile_paths(folder, snap.id)
    con = new_con()
    _write_days(con, codes_path, paths["days"], roles, bins)
    t = view(con, "profile_source", f"SELECT * FROM {parquet_source([snap.path])}")
    key = ("profile-fine", bins.token, tuple(bins.fine.items()))
    copy_to(con.con, compiled(key, lambda: _fine_expr(t, bins), folder.parent), paths["fine"])
    key = ("profile-moments", bins.token, tuple(bins.fine), tuple(roles.segments))
    copy_to(con.con, compiled(key, lambda: _moments_expr(t, roles, bins), folder.parent),
            paths["moments"])
    ts = t[roles.timestamp]
    rows, dated, first, last = con.to_pyarrow(t.aggregate(
        rows=ibis._.count(), dated=ts.count(), first=ts.min(), last=ts.max())
    ).to_pylist()[0].values()
    write_meta(paths["meta"], rows, rows - dated, epoch_us(first), epoch_us(last))


def write_profile_from_rows(con, folder: Path, snap, roles, bins: FrozenBins,
                            shape: str = "unpivot") -> None:
    """Write one snapshot's profile from its rows on the connection ``con`` (any
    engine; the caller holds the codes lock): its segment values extend the folder's
    dictionary, then four queries give the days, fine and moments parts and the meta,
    each small enough to come back to this process, which writes the files. ``shape``
    lays out the fine and moments queries (:data:`analysis.engine.SHAPES`); the days
    part is always counted from one scan."""
    paths = profile_paths(folder, snap.id)
    t = files_view(con, "profile_source", [snap.path])
    dictionary = extend_dictionary(folder, segment_values(con, t, roles))
    onepass.write_part(paths["days"], [to_arrow(con, _days_from_rows(t, roles, bins,
                                                                     dictionary))],
                       onepass.DAYS_SCHEMA)
    fine, moments = [], []
    if bins.fine:
        long = shape == "unpivot"
        key = ("profile-fine", bins.token, tuple(bins.fine.items()), shape)
        fine = [run(con, key, lambda: (_fine_long_expr if long else _fine_expr)(t, bins),
                    folder.parent)]
        key = ("profile-moments", bins.token, tuple(bins.fine), tuple(roles.segments), shape)
        moments = [run(con, key, lambda: (_moments_long_expr if long else _moments_expr)(
            t, roles, bins), folder.parent)]
    onepass.write_part(paths["fine"], fine, onepass.FINE_SCHEMA)
    onepass.write_part(paths["moments"], moments, onepass.MOMENTS_SCHEMA)
    ts = t[roles.timestamp]
    rows, dated, first, last = to_arrow(con, t.aggregate(
        rows=ibis._.count(), dated=ts.count(), first=ts.min(), last=ts.max())
    ).to_pylist()[0].values()
    write_meta(paths["meta"], rows, rows - dated, epoch_us(first), epoch_us(last))


def _days_from_rows(t, roles, bins: FrozenBins, dictionary: dict):
    """The days part over the rows ``t``, from one scan: counts per (segment column,
    cell, feature, coarse bin), cells as in the codes file
    (:func:`analysis.codes.cell_columns`)."""
    columns = cell_columns(t, roles, dictionary)
    if roles.segments:
        cells = [(i, columns[f"__cell{i}"]) for i in range(len(roles.segments))]
    else:
        cells = [(-1, day_number(columns[CODES_DAY]) * CELL_SHIFT)]
    parts = [{"seg": ibis.literal(i, type="int16"), "cell": cell,
              "feature": ibis.literal(j, type="int16"), "bin": bin_expr(t[feature], fbins)}
             for i, cell in cells for j, (feature, fbins) in enumerate(bins.coarse.items())]
    return unpivot(t, {}, parts).group_by("seg", "cell", "feature", "bin").aggregate(
        n=ibis._.count())


def _write_days(con, codes_path: Path, path: Path, roles, bins: FrozenBins) -> None:
    codes = con.read_parquet(str(codes_path))
    if roles.segments:
        cells = [(i, codes[f"__cell{i}"]) for i in range(len(roles.segments))]
    else:
        cells = [(-1, codes[CODES_DAY].delta(ibis.date(1970, 1, 1), unit="day").cast("int64")
                  * CELL_SHIFT)]
    parts = [codes.group_by(cell=cell, bin=code_expr(codes, slot)).aggregate(n=ibis._.count())
             .mutate(seg=ibis.literal(i, type="int16"), feature=ibis.literal(j, type="int16"))
             for i, cell in cells for j, slot in enumerate(code_slots(bins))]
    days = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    copy_to(con.con, str(ibis.to_sql(days.select("seg", "cell", "feature", "bin", "n"),
                                     dialect="duckdb")), path)


def _fine_expr(t, bins: FrozenBins):
    parts = []
    for index, (feature, fbins) in enumerate(bins.fine.items()):
        x = t[feature].cast("float64")
        ok = present(x)
        parts.append(t.group_by(bin=bin_expr(t[feature], fbins)).aggregate(
            n=ibis._.count(), lo=x.min(where=ok), hi=x.max(where=ok), sum=x.sum(where=ok))
            .mutate(feature=ibis.literal(index, type="int16")))
    if not parts:
        return ibis.memtable({"feature": [], "bin": [], "n": [], "lo": [], "hi": [],
                              "sum": []}, schema={"feature": "int16", "bin": "int16",
                                                  "n": "int64", "lo": "float64",
                                                  "hi": "float64", "sum": "float64"})
    union = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    return union.select("feature", "bin", "n", "lo", "hi", "sum")


def _fine_long_expr(t, bins: FrozenBins):
    """:func:`_fine_expr`'s rows from one scan (the "unpivot" shape); ``bins.fine`` is
    not empty."""
    parts = [{"feature": ibis.literal(index, type="int16"), "bin": bin_expr(t[feature], fbins),
              "x": present_or_null(t[feature].cast("float64"))}
             for index, (feature, fbins) in enumerate(bins.fine.items())]
    long = unpivot(t, {}, parts)
    return long.group_by("feature", "bin").aggregate(
        n=ibis._.count(), lo=long.x.min(), hi=long.x.max(), sum=long.x.sum())


def _moments_long_expr(t, roles, bins: FrozenBins):
    """:func:`_moments_expr`'s rows from one scan (the "unpivot" shape); ``bins.fine``
    is not empty."""
    groupings = [("", ibis.literal("all"))] + [
        (c, t[c].cast("string").fill_null(MISSING_SEGMENT)) for c in roles.segments]
    parts = [{"segcol": ibis.literal(column), "segment": key, "feature": ibis.literal(feature),
              "x": present_or_null(t[feature].cast("float64"))}
             for column, key in groupings for feature in bins.fine]
    long = unpivot(t, {}, parts)
    return long.group_by("segcol", "segment", "feature").aggregate(
        n=long.x.count(), mean=long.x.mean(), m2=long.x.var(how="pop") * long.x.count())


def _moments_expr(t, roles, bins: FrozenBins):
    groupings = [("", ibis.literal("all"))] + [
        (c, t[c].cast("string").fill_null(MISSING_SEGMENT)) for c in roles.segments]
    parts = []
    for column, key in groupings:
        for feature in bins.fine:
            x = t[feature].cast("float64")
            ok = present(x)
            parts.append(t.group_by(segment=key).aggregate(
                n=x.count(where=ok), mean=x.mean(where=ok),
                m2=x.var(how="pop", where=ok) * x.count(where=ok))
                .mutate(segcol=ibis.literal(column), feature=ibis.literal(feature)))
    if not parts:
        return ibis.memtable({"segcol": [], "segment": [], "feature": [], "n": [],
                              "mean": [], "m2": []},
                             schema={"segcol": "string", "segment": "string",
                                     "feature": "string", "n": "int64",
                                     "mean": "float64", "m2": "float64"})
    union = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    return union.select("segcol", "segment", "feature", "n", "mean", "m2")
