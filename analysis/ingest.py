"""Snapshot ingestion: parse with DuckDB's CSV reader, validate with SQL, then commit.

Nothing is written until every check has run and no error was found, so a refused
file leaves the store exactly as it was. Errors refuse the snapshot; warnings are kept
with it.

=========================  ======  ==================================================
check                      level   what it reports
=========================  ======  ==================================================
empty / unreadable file    error   the file, and why
not a CSV/Parquet file     error   what its first bytes look like (PNG, ZIP, ELF...)
no data rows               error   a header and nothing else
wrong number of fields     error   the lines, with DuckDB's reject details
missing required columns   error   the role columns the file lacks
text in a numeric column   error   count, first lines and values
unparsable timestamps      error   count, first lines and values
duplicate upload           error   the stored snapshot with the same content
extra columns              warning ignored, listed
nulls                      warning count per column
outside reference range    warning numeric values below the reference min / above max
unseen categories          warning levels the reference never had
duplicate rows             warning count of rows that repeat an earlier row
encoding / decimal comma   info    a file read as Latin-1, or with decimal commas
format other than its name info    Parquet named .csv, or text named .parquet
=========================  ======  ==================================================
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from analysis.queries import quote
from analysis.store import SLICES, Roles, Snapshot, Store, StoreError, table_sha256
from analysis.tables import (PREDICTION_NAMES, SNIFF_BYTES, TARGET_NAMES, not_a_table_message,
                             sniff_delimiter, sniff_format)

EXAMPLES = 3
#: The demo dataset (``python -m analysis demo``; its name is the ground truth's
#: ``dataset``): what a new visitor sees first when the store holds it.
DEMO_DATASET = "rental_pricing"
_TIME_NAMES = re.compile(r"(^|_)(ts|time|timestamp|date|datetime|created_at|event_time)$|_at$",
                         re.I)
_SEGMENT_NAMES = re.compile(r"(^|_)(group|segment|cohort|region|country|channel|tier|plan)$", re.I)


@dataclass
class Finding:
    """One validation result."""

    level: str            # "error", "warning" or "info"
    check: str
    message: str
    column: str | None = None
    rows: int = 0
    examples: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = f" column {self.column!r}:" if self.column else ""
        count = f" ({self.rows:,} row{'s' if self.rows != 1 else ''})" if self.rows else ""
        eg = f"; e.g. {'; '.join(self.examples)}" if self.examples else ""
        return f"{self.level}: [{self.check}]{where} {self.message}{count}{eg}"

    def as_dict(self) -> dict:
        return {"level": self.level, "check": self.check, "column": self.column,
                "rows": self.rows, "examples": self.examples, "message": self.message}


@dataclass
class Parsed:
    table: pa.Table | None
    source: str
    delimiter: str | None = None
    encoding: str | None = None
    decimal: str = "."
    findings: list[Finding] = field(default_factory=list)


def _detect_encoding(path: Path) -> str:
    """'utf-8' when the whole file decodes as UTF-8 (BOM allowed), else 'latin-1'."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as fh:
        try:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8"


def _read_csv(con, path: Path, delimiter: str, encoding: str, decimal: str):
    opts = (f"delim = '{delimiter}', header = true, encoding = '{encoding}', "
            f"decimal_separator = '{decimal}', store_rejects = true, sample_size = -1")
    return con.sql(f"SELECT * FROM read_csv('{_sql_path(path)}', {opts})").to_arrow_table()


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def read_snapshot(path: str | Path) -> Parsed:
    """Parse a CSV (delimiter, encoding and decimal comma detected) or Parquet file.

    The format comes from the file's first bytes, not its name
    (:func:`analysis.tables.sniff_format`): anything else, such as an image or an
    executable renamed ``.csv``, is refused with a ``binary`` error before any parsing,
    so it never shows as a table of garbage.
    """
    path = Path(path)
    parsed = Parsed(None, path.name)
    if not path.is_file():
        parsed.findings.append(Finding("error", "unreadable", f"file not found: {path}"))
        return parsed
    if path.stat().st_size == 0:
        parsed.findings.append(Finding("error", "empty", "the file is empty"))
        return parsed
    with path.open("rb") as fh:
        kind, what = sniff_format(fh.read(SNIFF_BYTES))
    if kind == "binary":
        parsed.findings.append(Finding("error", "binary", not_a_table_message(what)))
        return parsed
    named_parquet = path.suffix.lower() in (".parquet", ".pq")
    if named_parquet != (kind == "parquet"):
        parsed.findings.append(Finding(
            "info", "format", f"named {path.suffix or 'without a suffix'} but holds "
            + ("Parquet: read as Parquet" if kind == "parquet" else "text: read as CSV")))
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    if kind == "parquet":
        try:
            parsed.table = con.sql(f"SELECT * FROM read_parquet('{_sql_path(path)}')").to_arrow_table()
        except duckdb.Error as exc:
            parsed.findings.append(Finding("error", "unreadable", f"not readable Parquet: {exc}"))
        return _check_rows(parsed)
    encoding = _detect_encoding(path)
    with path.open("rb") as fh:
        head = fh.read(1 << 16).decode(encoding, errors="replace").lstrip("\ufeff")
    if not head.strip():
        parsed.findings.append(Finding("error", "empty", "the file holds only blank lines"))
        return parsed
    delimiter = sniff_delimiter(head)
    parsed.delimiter, parsed.encoding = delimiter, encoding
    try:
        table = _read_csv(con, path, delimiter, encoding, ".")
        # a ';'-separated file may use decimal commas: keep that reading if it adds numbers
        if delimiter != ",":
            con2 = duckdb.connect()
            alt = _read_csv(con2, path, delimiter, encoding, ",")
            if _numeric_count(alt) > _numeric_count(table):
                table, con, parsed.decimal = alt, con2, ","
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        parsed.findings.append(Finding("error", "unreadable", f"not a readable CSV: {first}"))
        return parsed
    rejects = con.sql("SELECT line, error_type, csv_line, error_message FROM reject_errors "
                      "ORDER BY line").fetchall()
    shape = [r for r in rejects if r[1] in ("MISSING COLUMNS", "TOO MANY COLUMNS")]
    shape = [r for i, r in enumerate(shape) if i == 0 or r[0] != shape[i - 1][0]]  # one per line
    if shape:
        lines = sorted({r[0] for r in shape})
        parsed.findings.append(Finding(
            "error", "field_count",
            f"rows with the wrong number of fields (expected {table.num_columns})",
            rows=len(lines),
            examples=[f"line {r[0]}: {r[3]}" for r in shape[:EXAMPLES]]))
    shape_lines = {r[0] for r in shape}
    other = [r for r in rejects if r[0] not in shape_lines]
    if other:
        parsed.findings.append(Finding(
            "error", "unparsable", "rows the CSV reader could not parse",
            rows=len({r[0] for r in other}),
            examples=[f"line {r[0]}: {r[3]}" for r in other[:EXAMPLES]]))
    parsed.table = table
    if encoding != "utf-8":
        parsed.findings.append(Finding("info", "encoding", "not valid UTF-8: read as Latin-1"))
    if parsed.decimal == ",":
        parsed.findings.append(Finding("info", "decimal", "numbers use a decimal comma"))
    return _check_rows(parsed)


def _numeric_count(table: pa.Table) -> int:
    return sum(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
               for t in table.schema.types)


def _check_rows(parsed: Parsed) -> Parsed:
    if parsed.table is not None and parsed.table.num_rows == 0:
        parsed.findings.append(Finding("error", "no_rows", "the file has a header but no data rows"))
    return parsed


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def default_dataset(names: list[str], last_used: str | None = None) -> str | None:
    """The dataset a visitor sees: their last-used one, else the demo, else the first.

    Not simply the first by name: a new upload that sorts first (``"a_test"``) would
    otherwise become every new visitor's default.
    """
    for choice in (last_used, DEMO_DATASET):
        if choice in names:
            return choice
    return names[0] if names else None


def infer_roles(table: pa.Table) -> Roles:
    """Suggested column roles from names and types (the user can correct them)."""
    roles = Roles()
    for name, dtype in zip(table.column_names, table.schema.types):
        if roles.timestamp is None and (pa.types.is_timestamp(dtype) or pa.types.is_date(dtype)
                                        or (_TIME_NAMES.search(name) and pa.types.is_string(dtype))):
            roles.timestamp = name
        elif roles.target is None and TARGET_NAMES.search(name):
            roles.target = name
        elif roles.prediction is None and PREDICTION_NAMES.search(name):
            roles.prediction = name
        elif _SEGMENT_NAMES.search(name) and not _is_numeric(dtype):
            roles.segments.append(name)
        elif _is_numeric(dtype) and not pa.types.is_boolean(dtype):
            roles.numeric.append(name)
        else:
            roles.categorical.append(name)
    # a prediction named predicted_X / X_pred / X_prediction names its target X
    if roles.target is None and roles.prediction:
        stem = re.sub(r"^(pred|predicted)_|_(pred|prediction)$", "", roles.prediction)
        if stem != roles.prediction and stem in roles.numeric:
            roles.numeric.remove(stem)
            roles.target = stem
    return roles


def validate(parsed: Parsed, roles: Roles, store: Store | None = None,
             dataset: str | None = None) -> list[Finding]:
    """All findings for ``parsed`` under ``roles``, against the dataset when it exists."""
    findings = list(parsed.findings)
    table = parsed.table
    if table is None or table.num_rows == 0:
        return findings
    con = duckdb.connect()
    con.register("snap", table)
    # DuckDB's reader numbers lines from 1 with the header as line 1
    con.execute("CREATE TEMP TABLE t AS SELECT row_number() OVER () + 1 AS __line, * FROM snap")
    cols = set(table.column_names)
    missing = [c for c in roles.columns if c not in cols]
    if missing:
        findings.append(Finding("error", "missing_columns",
                                f"required column(s) missing: {', '.join(missing)}"))
    extra = [c for c in table.column_names if c not in set(roles.columns)]
    if extra:
        findings.append(Finding("warning", "extra_columns",
                                f"not in the dataset's roles, ignored: {', '.join(extra)}"))
    numeric_roles = [c for c in [*roles.numeric, roles.prediction, roles.target]
                     if c and c in cols]
    for column in numeric_roles:
        q = quote(column)
        if _is_numeric(table.schema.field(column).type):
            continue
        bad = con.sql(f"SELECT __line, {q} FROM t WHERE {q} IS NOT NULL AND "
                      f"TRY_CAST({q} AS DOUBLE) IS NULL ORDER BY __line").fetchall()
        if bad:
            findings.append(Finding("error", "type", "text in a numeric column", column,
                                    len(bad), [f"line {ln}: {v!r}" for ln, v in bad[:EXAMPLES]]))
    if roles.timestamp and roles.timestamp in cols:
        q = quote(roles.timestamp)
        dtype = table.schema.field(roles.timestamp).type
        if not (pa.types.is_timestamp(dtype) or pa.types.is_date(dtype)):
            bad = con.sql(f"SELECT __line, {q} FROM t WHERE {q} IS NOT NULL AND "
                          f"TRY_CAST({q} AS TIMESTAMP) IS NULL ORDER BY __line").fetchall()
            if bad:
                findings.append(Finding("error", "timestamp", "unparsable timestamps",
                                        roles.timestamp, len(bad),
                                        [f"line {ln}: {v!r}" for ln, v in bad[:EXAMPLES]]))
    for column in [c for c in roles.columns if c in cols]:
        n = con.sql(f"SELECT count(*) FROM t WHERE {quote(column)} IS NULL").fetchall()[0][0]
        if n:
            findings.append(Finding("warning", "nulls", "missing values", column, n))
    present = [quote(c) for c in roles.columns if c in cols]
    if present:
        dupes = con.sql(f"SELECT count(*) - count(DISTINCT ({', '.join(present)})) FROM t").fetchall()[0][0]
        if dupes:
            findings.append(Finding("warning", "duplicate_rows",
                                    "rows repeating an earlier row", rows=int(dupes)))
    if store is not None and dataset in store.datasets():
        findings += _against_reference(con, store, dataset, roles, cols)
    return findings


def _against_reference(con, store: Store, dataset: str, roles: Roles, cols: set) -> list[Finding]:
    from analysis.reference_bins import frozen_bins

    if not store.snapshots(dataset, "reference"):
        return []
    bins = frozen_bins(store, dataset, persist=False)  # validating writes nothing
    out = []
    for column in roles.numeric:
        fine = bins.fine.get(column)
        if column not in cols or fine is None or not fine.anchors:
            continue
        lo, hi = fine.anchors[0], fine.anchors[-1]
        q = f"TRY_CAST({quote(column)} AS DOUBLE)"
        rows = con.sql(f"SELECT __line, {q} FROM t WHERE {q} < {lo!r} OR {q} > {hi!r} "
                       f"ORDER BY __line").fetchall()
        if rows:
            out.append(Finding("warning", "out_of_range",
                               f"values outside the reference range [{lo:g}, {hi:g}]", column,
                               len(rows), [f"line {ln}: {v:g}" for ln, v in rows[:EXAMPLES]]))
    for column in roles.categorical:
        coarse = bins.coarse.get(column)
        if column not in cols or coarse is None or not hasattr(coarse, "categories"):
            continue
        con.execute("CREATE OR REPLACE TEMP TABLE known (v VARCHAR)")
        con.executemany("INSERT INTO known VALUES (?)", [[c] for c in coarse.categories])
        q = f"CAST({quote(column)} AS VARCHAR)"
        rows = con.sql(f"SELECT {q} AS v, count(*) FROM t WHERE {q} IS NOT NULL AND {q} NOT IN "
                       f"(SELECT v FROM known) GROUP BY 1 ORDER BY 2 DESC").fetchall()
        if rows:
            out.append(Finding("warning", "unseen_categories",
                               "categories the reference never had", column,
                               sum(n for _, n in rows), [f"{v!r} x{n}" for v, n in rows[:EXAMPLES]]))
    return out


def conform(table: pa.Table, roles: Roles) -> pa.Table:
    """The role columns only, with stored types: timestamp as TIMESTAMP, segments and
    categorical features as text, numeric features, prediction and target as DOUBLE."""
    con = duckdb.connect()
    con.register("snap", table)
    parts = []
    for column in roles.columns:
        q = quote(column)
        if column == roles.timestamp:
            parts.append(f"CAST({q} AS TIMESTAMP) AS {q}")
        elif column in roles.segments or column in roles.categorical:
            parts.append(f"CAST({q} AS VARCHAR) AS {q}")
        elif column == roles.id:
            parts.append(q)
        else:
            parts.append(f"CAST({q} AS DOUBLE) AS {q}")
    return con.sql(f"SELECT {', '.join(parts)} FROM snap").to_arrow_table()


@dataclass
class IngestResult:
    snapshot: Snapshot | None
    findings: list[Finding]
    roles: Roles
    created: bool = False
    profiled: bool = False   # the snapshot's bin codes and profile were written

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]


@dataclass
class Prepared:
    """A parsed and validated snapshot, not yet stored."""

    parsed: Parsed
    roles: Roles
    findings: list[Finding]
    dataset: str
    slice: str
    exists: bool
    table: pa.Table | None = None  # the role columns with stored types, when valid

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]


def prepare(store: Store, dataset: str, slice: str, path: str | Path | Parsed,
            roles: Roles | None = None, source: str | None = None) -> Prepared:
    """Parse (unless ``path`` is already :class:`Parsed`) and validate a snapshot for
    ``dataset`` without writing anything.

    A new dataset takes ``roles`` (or roles inferred from the file); an existing one
    uses its own roles and the file is checked against them (``roles`` must then agree).
    """
    if slice not in SLICES:
        raise StoreError(f"slice must be one of {SLICES}, got {slice!r}")
    parsed = path if isinstance(path, Parsed) else read_snapshot(path)
    if source:
        parsed.source = source
    exists = dataset in store.datasets()
    if exists:
        stored = store.dataset(dataset).roles
        if roles is not None and roles.to_dict() != stored.to_dict():
            raise StoreError(f"dataset {dataset!r} exists with other roles; drop --roles to "
                             "use its own")
        roles = stored
    elif roles is None:
        roles = infer_roles(parsed.table) if parsed.table is not None else Roles()
    findings = validate(parsed, roles, store, dataset)
    if not any(f.level == "error" for f in findings):
        try:
            roles.validate()
        except StoreError as exc:
            findings.append(Finding("error", "roles", str(exc)))
    prepared = Prepared(parsed, roles, findings, dataset, slice, exists)
    if prepared.errors:
        return prepared
    prepared.table = conform(parsed.table, roles)
    if exists:
        digest = table_sha256(prepared.table)
        for snap in store.snapshots(dataset):
            if snap.sha256 == digest:
                findings.append(Finding("error", "duplicate_upload",
                                        f"this content is already stored as snapshot {snap.id} "
                                        f"({snap.source}, {snap.rows:,} rows)"))
    return prepared


def commit(store: Store, prepared: Prepared, task: str = "regression") -> IngestResult:
    """Store a prepared snapshot; refuses one with errors (nothing written)."""
    result = IngestResult(None, prepared.findings, prepared.roles)
    if prepared.errors:
        return result
    table = prepared.table
    if not prepared.exists:
        store.create_dataset(prepared.dataset, prepared.roles, task=task)
        result.created = True
    warnings = [str(f) for f in prepared.findings if f.level != "error"]
    try:
        result.snapshot = store.add_snapshot(prepared.dataset, prepared.slice, table,
                                             source=prepared.parsed.source, warnings=warnings)
    except BaseException:
        if result.created:  # leave the store as it was
            store.drop_dataset(prepared.dataset)
        raise
    result.profiled = _profile(store, prepared.dataset, result.findings)
    return result


def _profile(store: Store, dataset: str, findings: list[Finding]) -> bool:
    """Write the new snapshot's bin codes and profile now, in one pass over its rows
    (:func:`analysis.profiles.prepare_dataset`), so the first heatmap of new data needs
    no pass of its own. The snapshot is stored either way: should this fail, a warning
    says so and the first page that needs them writes them."""
    from analysis.profiles import prepare_dataset

    try:
        return prepare_dataset(store, dataset)
    except Exception as exc:  # noqa: BLE001 - the snapshot is stored; say why, go on
        findings.append(Finding("warning", "profile", "bin codes and profile not written "
                                f"now ({exc}); the first page that needs them writes them"))
        return False


def ingest(store: Store, dataset: str, slice: str, path: str | Path,
           roles: Roles | None = None, task: str = "regression") -> IngestResult:
    """Validate ``path`` and, when nothing is wrong, store it as a new snapshot."""
    return commit(store, prepare(store, dataset, slice, path, roles), task)
