"""Per-snapshot bin codes: their layout on disk and the engine's writer.

A snapshot's files live in ``bins/codes-<reference token>-v<CODES_FORMAT>/`` (a new
reference gets new ones):

* ``<id>.parquet``, its *codes*: per row, the day (``__day``), the segment columns,
  for each segment column an integer cell ``__cell<i>`` = days since 1970 x 2**20 + the
  value's index in the folder's segment dictionary (grouping on one integer is faster
  than on a date and a string), and the coarse bin index of every feature (in
  ``bins.coarse`` order, laid out as ``bins.counts``), three to an int32 column, a byte
  each (:func:`code_slots`: writing a Parquet value costs about the same whatever it
  holds, so a third of the values cost a third less, and reading one back is a shift
  and a mask);
* ``<id>.days.parquet``, ``<id>.fine.parquet``, ``<id>.moments.parquet`` and
  ``<id>.profile.json``, its *profile* (:mod:`analysis.profiles`);
* ``segments.json``: the append-only value -> index dictionary of every segment column.

Counting codes skips re-binning rows; the profile skips even that for whole snapshots.
:func:`write_codes` is the engine's writer (Ibis over the snapshot's Parquet, portable
to other backends); :mod:`analysis.onepass` writes the same files in one pass.
"""
from __future__ import annotations

import json
from pathlib import Path

import ibis

from analysis.engine import MISSING_SEGMENT, copy_to, new_con, to_arrow, write_text_atomic
from analysis.reference_bins import FrozenBins, bin_expr, bins_folder, n_bins
from analysis.store import Store

CODES_DAY = "__day"
CODES_FORMAT = 4          # bump when the layout of a codes file changes
CODES_PER_COLUMN = 3      # byte-wide codes per int32 column (a fourth would reach the sign)
CELL_SHIFT = 1 << 20      # cell = days since 1970 * CELL_SHIFT + segment index
PROFILE_PARTS = ("days", "fine", "moments")


def codes_folder(store: Store, dataset: str, bins: FrozenBins) -> Path:
    """The folder of the codes and profiles written with ``bins``."""
    return bins_folder(store, dataset) / f"codes-{bins.token}-v{CODES_FORMAT}"


def code_slots(bins: FrozenBins) -> list[tuple[str, int | None]]:
    """Where each feature's coarse code lives in a codes file, in ``bins.coarse`` order:
    ``(column, shift)``, the code being ``(column >> shift) & 255``; a feature with more
    than 256 bins has a column ``w<j>`` of its own (shift None)."""
    slots, packed = [], 0
    for j, fbins in enumerate(bins.coarse.values()):
        if n_bins(fbins) > 256:
            slots.append((f"w{j}", None))
            continue
        slots.append((f"c{packed // CODES_PER_COLUMN}", 8 * (packed % CODES_PER_COLUMN)))
        packed += 1
    return slots


def code_expr(t, slot: tuple[str, int | None]):
    """The Ibis expression of one feature's code in the codes table ``t``."""
    column, shift = slot
    code = t[column] if shift is None else (t[column] >> shift) & 255
    return code.cast("int32")  # one type for every feature, as unions want


def profile_paths(folder: Path, snap_id: str) -> dict[str, Path]:
    """The files of one snapshot's profile: its parts and ``meta`` (written last)."""
    paths = {part: folder / f"{snap_id}.{part}.parquet" for part in PROFILE_PARTS}
    paths["meta"] = folder / f"{snap_id}.profile.json"
    return paths


def profile_complete(folder: Path, snap_id: str) -> bool:
    return all(p.is_file() for p in profile_paths(folder, snap_id).values())


def write_meta(path: Path, rows: int, undated: int, first_us, last_us) -> None:
    """A profile's ``profile.json`` (written last: it marks the profile complete)."""
    write_text_atomic(path, json.dumps({"rows": rows, "undated": undated,
                                        "first_us": first_us, "last_us": last_us}))


def leftovers(folder: Path, current: set[str]) -> list[Path]:
    """Codes and profile files of snapshots no longer in the store (any slice)."""
    if not folder.is_dir():
        return []
    return [entry for entry in folder.iterdir()
            if entry.name.split(".")[0] not in current | {"", "segments"}
            and not entry.name.endswith(".tmp")]


def extend_dictionary(folder: Path, values: dict[str, list[str]]) -> dict[str, list[str]]:
    """The folder's segment dictionary, extended with the distinct non-null ``values``
    of each segment column and persisted in ``folder/segments.json``.

    Append-only (indices never move): a column's list starts with the missing label
    at index 0, then values in the order first seen, each snapshot's new ones sorted.
    The caller holds the codes lock."""
    path = folder / "segments.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    changed = False
    for column, new in values.items():
        listed = known.setdefault(column, [MISSING_SEGMENT])
        seen = set(listed)
        for value in sorted(new):
            if value not in seen:
                listed.append(value)
                seen.add(value)
                changed = True
        if len(listed) >= CELL_SHIFT:
            raise ValueError(f"segment column {column!r} has too many distinct values")
    if changed or not path.is_file():
        write_text_atomic(path, json.dumps(known))
    return known


def segment_values(con, t, roles) -> dict[str, list[str]]:
    """The distinct non-null values (as text) of every segment column of the rows ``t``,
    from one engine query per column (see :func:`analysis.engine.to_arrow`)."""
    return {column: to_arrow(con, t.select(v=t[column].cast("string"))
                             .filter(ibis._.v.notnull()).distinct()).column("v").to_pylist()
            for column in roles.segments}


def cell_columns(t, roles, dictionary: dict[str, list[str]]) -> dict:
    """The Ibis expressions of a codes file's day (``__day``), segment value and
    ``__cell<i>`` columns (day x 2**20 + the value's index in ``dictionary``) over the
    rows ``t``; a row without a timestamp has no day and no cell."""
    day = t[roles.timestamp].truncate("D").cast("date")
    columns = {CODES_DAY: day}
    for i, column in enumerate(roles.segments):
        value = t[column].cast("string")
        index = ibis.cases(*[(value == v, k) for k, v in enumerate(dictionary[column])
                             if k > 0], else_=0) if len(dictionary[column]) > 1 else 0
        columns[column] = value
        columns[f"__cell{i}"] = day_number(day) * CELL_SHIFT + index
    return columns


def day_number(day):
    """Days since 1970 of the date expression ``day``, as int64."""
    return day.delta(ibis.date(1970, 1, 1), unit="day").cast("int64")


def write_codes(folder: Path, snap, path: Path, roles, bins: FrozenBins) -> None:
    """Write one snapshot's codes file with the engine (caller holds the codes lock)."""
    con = new_con()
    t = con.read_parquet(str(snap.path))
    dictionary = extend_dictionary(folder, segment_values(con, t, roles))
    columns = cell_columns(t, roles, dictionary)
    for (column, shift), (feature, fbins) in zip(code_slots(bins), bins.coarse.items()):
        code = bin_expr(t[feature], fbins).cast("int32")
        columns[column] = code if not shift else columns[column] | (code << shift)
    copy_to(con.con, str(ibis.to_sql(t.select(**columns), dialect="duckdb")), path)
