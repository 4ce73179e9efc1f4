"""Reading user tables (CSV or Parquet) for the command line, with one-line errors.

Also what the command line and the Upload page share about a user's file: whether its
first bytes are text, Parquet or something else (:func:`sniff_format`), and which
columns are named like the model's target and prediction (:func:`infer_outcome_columns`).
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pandas as pd

from analysis.drift import CATEGORICAL, NUMERIC, infer_kind

DELIMITERS = ",;\t|"
#: How many leading bytes :func:`sniff_format` looks at.
SNIFF_BYTES = 1 << 16
PARQUET_MAGIC = b"PAR1"
#: Leading bytes of common files that are not tables, and what to call them. Only
#: signatures no CSV header starts with (a 2-byte one such as "MZ" could).
MAGIC_BYTES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx file is one: save the sheet as CSV)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office file, such as Excel .xls "
                                          "(save the sheet as CSV)"),
    (b"\x1f\x8b", "a gzip-compressed file (decompress it first)"),
    (b"BZh", "a bzip2-compressed file (decompress it first)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file (decompress it first)"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file (decompress it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x7fELF", "an ELF executable"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow/Feather file"),
    (b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (save it as UTF-8)"),
)
# bytes that text files (UTF-8 or Latin-1) do not hold: C0 controls except tab, line
# feed, vertical tab, form feed, carriage return and escape
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\x0b\x0c\r\x1b")
#: Share of control bytes above which a file without a NUL byte is taken as binary.
MAX_CONTROL_SHARE = 0.01
#: Column names taken for the model's target and prediction when none is given (the
#: Upload page's suggested roles and the command line's defaults use the same names).
TARGET_NAMES = re.compile(r"^(y|target|label|actual|ground_truth|outcome)$|_(target|actual|true)$",
                          re.I)
PREDICTION_NAMES = re.compile(r"^(pred|prediction|predicted|score|y_hat|yhat)$"
                              r"|^(pred|predicted)_|_(pred|prediction)$", re.I)
_PREDICTION_AFFIXES = re.compile(r"^(pred|predicted)_|_(pred|prediction)$", re.I)


class InputError(ValueError):
    """Bad user input; the message is one line that says what and where."""


def jsonable(obj):
    """A JSON-safe copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV sample among , ; tab |; comma when undecidable."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def sniff_format(head: bytes) -> tuple[str, str]:
    """What a file's first bytes say it is.

    Parameters
    ----------
    head : bytes
        The first bytes of the file (:data:`SNIFF_BYTES` of them are enough).

    Returns
    -------
    (format, description) : tuple of str
        ``("parquet", "")`` for Parquet's magic bytes; ``("text", "")`` for anything a
        CSV could be; ``("binary", what)`` otherwise, ``what`` naming the kind of file
        when its signature is known (``"a PNG image"``), else saying why it is not text.
        Text is what has no NUL byte and at most :data:`MAX_CONTROL_SHARE` control bytes:
        Latin-1 and UTF-8 text never hold them, compressed or executable data always do.
    """
    if head.startswith(PARQUET_MAGIC):
        return "parquet", ""
    for magic, what in MAGIC_BYTES:
        if head.startswith(magic):
            return "binary", what
    if b"\x00" in head:
        return "binary", "binary data (it holds NUL bytes), not text"
    controls = len(head) - len(head.translate(None, _CONTROL))
    if head and controls / len(head) > MAX_CONTROL_SHARE:
        return "binary", (f"binary data ({controls:,} control bytes in its first "
                          f"{len(head):,}), not text")
    return "text", ""


def not_a_table_message(what: str) -> str:
    """The one message for a file that is neither CSV nor Parquet."""
    return f"not a CSV/Parquet file: it looks like {what}"


def read_table(path: str | Path, label: str = "input") -> pd.DataFrame:
    """Read a CSV (delimiter sniffed; UTF-8, UTF-8 with BOM or Latin-1) or Parquet file.

    The format comes from the file's first bytes (:func:`sniff_format`), not its name:
    a Parquet file is read as Parquet whatever it is called, and a binary file named
    ``.csv`` is an :class:`InputError` rather than garbage for the CSV parser.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{label} file not found: {path}")
    with path.open("rb") as fh:
        kind, what = sniff_format(fh.read(SNIFF_BYTES))
    if kind == "binary":
        raise InputError(f"{label} file {path} is {not_a_table_message(what)}")
    if kind == "parquet":
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            msg = " ".join(str(exc).split())
            raise InputError(f"{label} file {path} is not readable Parquet: {msg}") from None
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(f"{label} file {path} is empty")
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    delimiter = sniff_delimiter(text[:65536])
    try:
        frame = pd.read_csv(path, sep=delimiter, encoding=encoding)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = " ".join(str(exc).split())
        raise InputError(f"{label} file {path} is not a readable CSV: {msg}") from None
    if frame.shape[1] < 1:
        raise InputError(f"{label} file {path} has no columns")
    return frame


def infer_outcome_columns(columns, target: str | None = None, prediction: str | None = None,
                          taken=()) -> tuple[str | None, str | None, list[str]]:
    """The target and prediction columns: those given, else the one column named like each.

    A role not given is the only column (not in ``taken``) whose name matches
    :data:`TARGET_NAMES` or :data:`PREDICTION_NAMES`; several matches choose none. A
    target still missing is the stem of a prediction named ``predicted_X``, ``pred_X``,
    ``X_pred`` or ``X_prediction`` when ``X`` is a column.

    Parameters
    ----------
    columns : iterable of str
        The columns to choose from (the reference file's).
    target, prediction : str or None
        What the user named; kept as given.
    taken : iterable of str
        Columns the user gave another role (timestamp, segment, features, excluded).

    Returns
    -------
    (target, prediction, notes)
        ``notes`` says, one line each, what was assumed and how to choose otherwise.
    """
    columns = [str(c) for c in columns]
    taken = {c for c in taken if c}
    notes = []

    def named_like(pattern, role, other):
        found = [c for c in columns if pattern.search(c) and c not in taken and c != other]
        if len(found) == 1:
            notes.append(f"using {found[0]!r} as the {role} (pass --{role} to choose)")
            return found[0]
        if found:
            notes.append(f"several columns look like the {role} ({', '.join(found)}); none "
                         f"used: pass --{role} to choose")
        return None

    if target is None:
        target = named_like(TARGET_NAMES, "target", prediction)
    if prediction is None:
        prediction = named_like(PREDICTION_NAMES, "prediction", target)
    if target is None and prediction is not None:
        stem = _PREDICTION_AFFIXES.sub("", prediction)
        if stem != prediction and stem in columns and stem not in taken:
            target = stem
            notes.append(f"using {stem!r} as the target (the prediction {prediction!r} names "
                         "it; pass --target to choose)")
    return target, prediction, notes


def looks_like_timestamp(series: pd.Series) -> bool:
    """True for datetime columns and text columns whose every value parses as a date."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    values = series.dropna().astype(str)
    if values.empty or not values.str.contains(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}").all():
        return False
    parsed = pd.to_datetime(values.head(1000), errors="coerce", format="mixed")
    return bool(parsed.notna().all())


def looks_like_index(reference: pd.Series, production: pd.Series) -> bool:
    """A row index written into the CSV by pandas: named 'Unnamed: N' and holding exactly
    0, 1, ..., n-1 in both files."""
    if not re.fullmatch(r"Unnamed: \d+", str(reference.name)):
        return False
    return all(pd.api.types.is_integer_dtype(s) and s.tolist() == list(range(len(s)))
               for s in (reference, production))


def column_kinds(reference: pd.DataFrame, production: pd.DataFrame,
                 columns: list[str]) -> dict[str, str]:
    """Kind of each column, agreed between both tables.

    Numeric on both sides -> numeric; non-numeric on both -> categorical. A column that
    is numeric on one side and has text on the other is an input error that names the
    column and the first offending value.
    """
    kinds = {}
    for col in columns:
        ref_kind, prod_kind = infer_kind(reference[col]), infer_kind(production[col])
        if ref_kind == prod_kind or reference[col].isna().all() or production[col].isna().all():
            kinds[col] = ref_kind if not reference[col].isna().all() else prod_kind
            continue
        # one side numeric, the other text: find the values that are not numbers
        numeric_side, text_side = (("reference", "production") if ref_kind == NUMERIC
                                   else ("production", "reference"))
        values = (production if text_side == "production" else reference)[col]
        bad = values[values.notna() & pd.to_numeric(values, errors="coerce").isna()]
        if bad.empty:
            kinds[col] = NUMERIC
            continue
        raise InputError(
            f"column {col!r} is numeric in the {numeric_side} file but the {text_side} file has "
            f"{len(bad)} non-numeric value(s), first {bad.iloc[0]!r} at data row {int(bad.index[0]) + 1}")
    return kinds


def pick_features(reference: pd.DataFrame, production: pd.DataFrame,
                  requested: list[str] | None, outcomes: dict[str, str] | None = None
                  ) -> tuple[dict[str, str], dict[str, str]]:
    """Features to compare, and the shared columns left out with the reason for each
    (column -> ``"the target"``, ``"the prediction"``, ``"a timestamp"``, ``"a row index"``).

    Without ``requested``: every column the two tables share, except the model's
    outcome columns (``outcomes``: column -> role, such as ``{"rent": "target"}``),
    timestamp-like columns and a pandas row index written into the file. With it:
    exactly those columns, each of which must be in both tables and none an outcome.
    """
    outcomes = {c: role for c, role in (outcomes or {}).items() if c}
    common = [c for c in reference.columns if c in set(production.columns)]
    if requested:
        missing = [c for c in requested if c not in common]
        if missing:
            where = []
            for c in missing:
                sides = [n for n, f in (("reference", reference), ("production", production))
                         if c not in f.columns]
                where.append(f"{c!r} (not in {' and '.join(sides)})")
            raise InputError(f"unknown feature(s): {', '.join(where)}")
        clash = [f"{c!r} (the {outcomes[c]})" for c in requested if c in outcomes]
        if clash:
            raise InputError(f"--features names the model's own column(s): {', '.join(clash)}")
        return column_kinds(reference, production, list(requested)), {}
    if not common:
        raise InputError("the reference and production files have no column in common")
    skipped = {}
    for c in common:
        if c in outcomes:
            skipped[c] = f"the {outcomes[c]}"
        elif looks_like_timestamp(reference[c]):
            skipped[c] = "a timestamp"
        elif looks_like_index(reference[c], production[c]):
            skipped[c] = "a row index"
    features = [c for c in common if c not in skipped]
    if not features:
        raise InputError("no feature left to compare: the shared columns are all the model's "
                         "target or prediction, timestamps or row indexes")
    return column_kinds(reference, production, features), skipped


__all__ = ["InputError", "jsonable", "read_table", "sniff_format", "infer_outcome_columns",
           "pick_features", "column_kinds", "looks_like_timestamp", "NUMERIC", "CATEGORICAL"]
