"""Snapshot ingestion: a corpus of bad files made here, each refused with its own finding
and the store left byte-for-byte unchanged; good files of every accepted flavour stored."""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import queries
from analysis.ingest import infer_roles, ingest, read_snapshot
from analysis.store import Roles, Store
from binary_files import png_bytes
from cli_helpers import run_command

ROOT = Path(__file__).resolve().parent.parent
# the command line runs from another folder; this checkout's package, not whichever one
# the virtual environment has installed (a git worktree shares the main one's .venv)
CLI_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
ROLES = {"timestamp": "ts", "segments": ["group"], "numeric": ["area", "rooms"],
         "categorical": ["city"], "prediction": "predicted_rent", "target": "rent"}


def _frame(n=200, seed=0, start="2025-01-01"):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ts": pd.date_range(start, periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
        "group": rng.choice(["students", "families"], n), "area": np.round(rng.uniform(20, 120, n), 1),
        "rooms": rng.integers(1, 5, n), "city": rng.choice(["Lyon", "Nice"], n),
        "predicted_rent": np.round(rng.uniform(500, 2000, n), 2),
        "rent": np.round(rng.uniform(500, 2000, n), 2)})


def _fingerprint(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "store")
    ref = tmp_path / "ref.csv"
    _frame().to_csv(ref, index=False)
    result = ingest(s, "rent", "reference", ref, Roles.from_dict(ROLES))
    assert result.snapshot is not None, [str(f) for f in result.findings]
    prod = tmp_path / "prod.csv"
    _frame(seed=1, start="2025-03-01").to_csv(prod, index=False)
    assert ingest(s, "rent", "production", prod).snapshot is not None
    return s


def _write(tmp_path, name, text=None, data=None):
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    else:
        path.write_text(text)
    return path


def _bad_files(tmp_path):
    good = _frame(50, seed=3, start="2025-04-01")
    csv_text = good.to_csv(index=False)
    mixed = good.astype({"area": object})
    mixed.loc[[4, 9], "area"] = ["n/a", "twelve"]
    dates = good.copy()
    dates.loc[2, "ts"] = "yesterday-ish"
    lines = csv_text.splitlines()
    ragged = "\n".join(lines[:3] + [lines[3] + ",extra,fields"] + lines[4:]) + "\n"
    huge = "\n".join(lines[:3] + [lines[3].replace("Lyon", "L" * 3_000_000).replace(
        "Nice", "N" * 3_000_000)] + lines[4:]) + "\n"
    # the same content with a tab delimiter reads fine; this one is glued into one column
    glued = csv_text.replace(",", "")
    return {
        "empty": (_write(tmp_path, "empty.csv", ""), "empty"),
        "header_only": (_write(tmp_path, "header.csv", lines[0] + "\n"), "no_rows"),
        "wrong_delimiter": (_write(tmp_path, "glued.csv", glued), "missing_columns"),
        "mixed_types": (_write(tmp_path, "mixed.csv", mixed.to_csv(index=False)), "type"),
        "missing_target": (_write(tmp_path, "notarget.csv", good.drop(columns="rent").to_csv(index=False)),
                           "missing_columns"),
        "unparsable_dates": (_write(tmp_path, "dates.csv", dates.to_csv(index=False)), "timestamp"),
        "ragged": (_write(tmp_path, "ragged.csv", ragged), "field_count"),
        "huge_line": (_write(tmp_path, "huge.csv", huge), "unreadable"),
        "png_named_csv": (_write(tmp_path, "chart.csv", data=png_bytes()), "binary"),
        "executable_named_csv": (_write(tmp_path, "tool.csv", data=Path(sys.executable).resolve()
                                        .read_bytes()[:200_000]), "binary"),
        "duplicate": (None, "duplicate_upload"),
    }


@pytest.mark.parametrize("case", ["empty", "header_only", "wrong_delimiter", "mixed_types",
                                  "missing_target", "unparsable_dates", "ragged", "huge_line",
                                  "png_named_csv", "executable_named_csv", "duplicate"])
def test_bad_file_refused_with_its_finding_and_store_unchanged(store, tmp_path, case):
    path, check = _bad_files(tmp_path)[case]
    if case == "duplicate":
        path = tmp_path / "prod_copy.csv"
        _frame(seed=1, start="2025-03-01").to_csv(path, index=False)
    before = _fingerprint(store.root)
    out = run_command("ingest", "--store", str(store.root), "--dataset", "rent", "--slice",
                      "production", str(path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"error: [{check}]" in out.stderr, out.stderr
    assert "the store is unchanged" in out.stderr
    assert "Traceback" not in out.stderr
    assert _fingerprint(store.root) == before


def test_findings_name_column_rows_and_examples(store, tmp_path):
    path, _ = _bad_files(tmp_path)["mixed_types"]
    result = ingest(store, "rent", "production", path)
    (finding,) = [f for f in result.errors if f.check == "type"]
    assert finding.column == "area" and finding.rows == 2
    assert finding.examples == ["line 6: 'n/a'", "line 11: 'twelve'"]
    path, _ = _bad_files(tmp_path)["ragged"]
    (finding,) = [f for f in ingest(store, "rent", "production", path).errors]
    assert finding.rows == 1 and finding.examples[0].startswith("line 4:")


def test_warnings_are_kept_and_data_is_stored(store, tmp_path):
    frame = _frame(30, seed=5, start="2025-05-01")
    frame["note"] = "extra column"
    frame.loc[0, "area"] = 999.0            # outside the reference range
    frame.loc[1, "city"] = "Paris"          # unseen category
    frame.loc[2, "rooms"] = None            # a null
    frame = pd.concat([frame, frame.iloc[[3]]])  # a duplicate row
    path = tmp_path / "warn.csv"
    frame.to_csv(path, index=False)
    result = ingest(store, "rent", "production", path)
    assert result.snapshot is not None, [str(f) for f in result.errors]
    checks = {f.check for f in result.findings}
    assert {"extra_columns", "out_of_range", "unseen_categories", "nulls", "duplicate_rows"} <= checks
    assert all(f.level == "warning" for f in result.findings)
    assert len(result.snapshot.warnings) == len(result.findings)
    stored = queries.load_frame(store, "rent", "production", ["area"])
    assert 999.0 in set(stored["area"]) and "note" not in pd.read_parquet(result.snapshot.path).columns


@pytest.mark.parametrize("flavour", ["latin-1", "utf-8-bom", "semicolon-decimal-comma", "tab",
                                     "parquet"])
def test_accepted_flavours_parse_to_the_same_values(tmp_path, flavour):
    frame = _frame(40, seed=7)
    frame["city"] = np.where(np.arange(40) % 2, "Orléans", "Besançon")
    path = tmp_path / f"snap-{flavour}.csv"
    if flavour == "latin-1":
        path.write_bytes(frame.to_csv(index=False).encode("latin-1"))
    elif flavour == "utf-8-bom":
        path.write_bytes(frame.to_csv(index=False).encode("utf-8-sig"))
    elif flavour == "semicolon-decimal-comma":
        path.write_text(frame.to_csv(index=False, sep=";", decimal=","))
    elif flavour == "tab":
        path.write_text(frame.to_csv(index=False, sep="\t"))
    else:
        path = tmp_path / "snap.parquet"
        frame.to_parquet(path)
    parsed = read_snapshot(path)
    expected = {"latin-1": {"encoding"}, "semicolon-decimal-comma": {"decimal"}}.get(flavour, set())
    assert {f.check for f in parsed.findings} == expected, [str(f) for f in parsed.findings]
    assert all(f.level == "info" for f in parsed.findings)
    table = parsed.table.to_pandas()
    assert list(table.columns) == list(frame.columns)
    assert table["area"].astype(float).tolist() == frame["area"].tolist()
    assert table["city"].tolist() == frame["city"].tolist()


def test_roles_inferred_for_a_new_dataset_and_printed(tmp_path):
    path = tmp_path / "new.csv"
    _frame(20).to_csv(path, index=False)
    roles = infer_roles(read_snapshot(path).table)
    assert roles.to_dict() == {**ROLES, "id": None, "extra": [], "probabilities": {}}
    out = subprocess.run([sys.executable, "-m", "analysis", "ingest", "--store",
                          str(tmp_path / "s"), "--dataset", "fresh", "--slice", "reference",
                          str(path)], capture_output=True, text=True, cwd=tmp_path,
                         env=CLI_ENV)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[0].split("inferred roles: ")[1]) == {**ROLES, "id": None, "extra": [], "probabilities": {}}
    assert "stored 20 rows" in out.stdout.splitlines()[-1]


def test_snapshots_cli_lists_and_removes(store, tmp_path):
    def run(*args):
        return run_command("snapshots", "--store", str(store.root), "--dataset", "rent", *args)
    listed = json.loads(run("--json").stdout)
    assert [s["slice"] for s in listed] == ["reference", "production"]
    assert {"id", "slice", "rows", "source", "loaded_at"} <= set(listed[0])
    assert listed[1]["rows"] == 200 and listed[1]["source"] == "prod.csv"
    removed = run("--remove", listed[1]["id"])
    assert removed.returncode == 0 and listed[1]["id"] in removed.stdout
    assert [s["id"] for s in json.loads(run("--json").stdout)] == [listed[0]["id"]]
    missing = run("--remove", "nope")
    assert missing.returncode == 2 and "no snapshot" in missing.stderr


@pytest.mark.parametrize("case,check,level", [("latin1", "encoding", "info"),
                                              ("extra_columns", "extra_columns", "warning")])
def test_accepted_oddities_get_their_message_while_validating(store, tmp_path, case, check, level):
    """Latin-1 and extra columns are not errors: validation names them and writes nothing."""
    from analysis.ingest import prepare
    frame = _frame(30, seed=11, start="2025-06-01")
    frame["city"] = "Orléans"
    path = tmp_path / f"{case}.csv"
    if case == "latin1":
        path.write_bytes(frame.to_csv(index=False).encode("latin-1"))
    else:
        frame.assign(comment="hello", score2=1).to_csv(path, index=False)
    before = _fingerprint(store.root)
    prepared = prepare(store, "rent", "production", path)
    (finding,) = [f for f in prepared.findings if f.check == check]
    assert finding.level == level and not prepared.errors
    if case == "extra_columns":
        assert "comment, score2" in finding.message
    assert _fingerprint(store.root) == before


# -- files that are not tables (issue #10, item 7) ------------------------------------
def _xlsx_like() -> bytes:
    """A ZIP archive holding a CSV, as an Excel workbook is a ZIP of XML files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("sheet.csv", _frame(20).to_csv(index=False))
    return buffer.getvalue()


NOT_TABLES = {
    "png": (png_bytes, "it looks like a PNG image"),
    "executable": (lambda: Path(sys.executable).resolve().read_bytes()[:200_000],
                   "it looks like an ELF executable"),
    "zip": (_xlsx_like, "it looks like a ZIP archive"),
    "gzip": (lambda: gzip.compress(_frame(50).to_csv(index=False).encode()),
             "gzip-compressed file (decompress it first)"),
    "utf16": (lambda: _frame(20).to_csv(index=False).encode("utf-16"), "UTF-16 text"),
    "float_array": (lambda: np.linspace(0, 1, 5000).tobytes(), "binary data (it holds NUL bytes)"),
    "control_bytes": (lambda: bytes(range(1, 9)) * 400, "binary data (3,200 control bytes"),
}


@pytest.mark.parametrize("kind", list(NOT_TABLES))
def test_a_file_that_is_not_a_table_is_refused_before_parsing(tmp_path, kind):
    make, looks_like = NOT_TABLES[kind]
    path = _write(tmp_path, f"{kind}.csv", data=make())
    parsed = read_snapshot(path)
    assert parsed.table is None  # nothing to preview
    (finding,) = parsed.findings
    assert finding.level == "error" and finding.check == "binary"
    assert finding.message.startswith("not a CSV/Parquet file: ")
    assert looks_like in finding.message, finding.message


def test_a_not_table_file_is_refused_for_a_new_dataset_too(tmp_path):
    """No roles can be suggested from an image: the one error is what the file is."""
    from analysis.ingest import prepare
    store = Store(tmp_path / "store")
    prepared = prepare(store, "fresh", "reference", _write(tmp_path, "p.csv", data=png_bytes()))
    assert [f.check for f in prepared.errors] == ["binary"]
    assert store.datasets() == []


def test_text_with_a_stray_control_byte_is_still_read(tmp_path):
    frame = _frame(40, seed=2)
    frame.loc[5, "city"] = "Ly\x01on"   # one control byte in 3 kB of text is not binary
    path = _write(tmp_path, "stray.csv", frame.to_csv(index=False))
    parsed = read_snapshot(path)
    assert not [f for f in parsed.findings if f.level == "error"]
    assert parsed.table.num_rows == 40


@pytest.mark.parametrize("name", ["snap.csv", "snap"])
def test_format_comes_from_the_content_not_the_name(tmp_path, name):
    frame = _frame(30, seed=4)
    frame.to_parquet(tmp_path / name)
    parsed = read_snapshot(tmp_path / name)
    assert [(f.level, f.check) for f in parsed.findings] == [("info", "format")]
    assert "holds Parquet: read as Parquet" in parsed.findings[0].message
    assert parsed.table.to_pandas()["area"].tolist() == frame["area"].tolist()
    text = _write(tmp_path, "text.parquet", frame.to_csv(index=False))
    parsed = read_snapshot(text)
    assert "holds text: read as CSV" in parsed.findings[0].message
    assert parsed.table.num_rows == 30


# -- which dataset a visitor sees first (issue #10, item 7) -----------------------------
def test_default_dataset_is_the_visitors_then_the_demo_then_the_first():
    from analysis.ingest import DEMO_DATASET, default_dataset
    names = ["a_new_upload", DEMO_DATASET, "zeta"]
    assert default_dataset(names) == DEMO_DATASET          # not whatever sorts first
    assert default_dataset(names, "zeta") == "zeta"        # the visitor's own choice
    assert default_dataset(names, "removed") == DEMO_DATASET
    assert default_dataset(["b", "a_new"]) == "b"          # no demo: the first listed
    assert default_dataset([]) is None


def test_demo_dataset_is_the_one_the_demo_builds():
    from analysis.ingest import DEMO_DATASET
    from analysis.scenarios import rental
    assert DEMO_DATASET == rental.ground_truth()["dataset"]
