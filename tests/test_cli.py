"""``python -m analysis drift`` end to end, as a subprocess on real CSV files."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

ROOT = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=ROOT,
                          capture_output=True, text=True)


@pytest.fixture()
def csvs(tmp_path):
    rng = np.random.default_rng(11)
    def frame(n, shift):
        return pd.DataFrame({
            "ts": pd.date_range("2025-01-01", periods=n, freq="h").astype(str),
            "price": rng.normal(100 + shift, 10, n), "rooms": rng.integers(1, 4, n),
            "city": rng.choice(["x", "y", "z"], n), "promo": rng.choice(["yes", "no"], n),
        })
    ref, prod = tmp_path / "ref.csv", tmp_path / "prod.csv"
    frame(3000, 0).to_csv(ref, index=False)
    frame(2000, 5).to_csv(prod, index=False)
    return ref, prod


def test_json_rows_match_scipy(csvs):
    ref_path, prod_path = csvs
    out = run("drift", "--reference", str(ref_path), "--production", str(prod_path), "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["feature"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {"price", "rooms", "city", "promo"}  # timestamp column skipped
    for r in rows.values():
        assert {"feature", "kind", "test", "statistic", "p_value", "threshold", "drifted"} <= set(r)
    ref, prod = pd.read_csv(ref_path), pd.read_csv(prod_path)
    assert rows["price"]["test"] == "wasserstein" and rows["price"]["p_value"] is None
    assert rows["price"]["statistic"] == pytest.approx(
        sps.wasserstein_distance(ref.price, prod.price) / np.std(ref.price), rel=1e-12)
    assert rows["price"]["drifted"] is True
    assert rows["rooms"]["test"] == "jensenshannon"  # numeric with <= 5 values
    assert rows["city"]["kind"] == "categorical" and rows["city"]["drifted"] is False


def test_forced_ks_gives_scipy_statistic_and_p_value(csvs):
    ref_path, prod_path = csvs
    out = run("drift", "--reference", str(ref_path), "--production", str(prod_path),
              "--features", "price", "--test", "ks", "--json")
    (row,) = json.loads(out.stdout)
    expected = sps.ks_2samp(pd.read_csv(ref_path).price, pd.read_csv(prod_path).price)
    assert row["statistic"] == pytest.approx(expected.statistic)
    assert row["p_value"] == pytest.approx(expected.pvalue)
    assert row["threshold"] == 0.05


def test_text_table_and_evidently_binning(csvs):
    ref_path, prod_path = csvs
    out = run("drift", "--reference", str(ref_path), "--production", str(prod_path),
              "--test", "psi", "--binning", "evidently")
    assert out.returncode == 0, out.stderr
    assert "price" in out.stdout and "DRIFT" in out.stdout and "binning evidently" in out.stdout


def test_written_pandas_index_is_skipped(csvs, tmp_path):
    ref_path, prod_path = csvs
    with_index = []
    for path in (ref_path, prod_path):
        out = tmp_path / f"indexed_{path.name}"
        pd.read_csv(path).to_csv(out)  # index=True: an "Unnamed: 0" column 0..n-1
        with_index.append(out)
    rows = json.loads(run("drift", "--reference", str(with_index[0]), "--production",
                          str(with_index[1]), "--json").stdout)
    assert {r["feature"] for r in rows} == {"price", "rooms", "city", "promo"}


def test_semicolon_delimiter_is_detected(csvs, tmp_path):
    ref_path, prod_path = csvs
    semi = tmp_path / "prod_semicolon.csv"
    pd.read_csv(prod_path).to_csv(semi, sep=";", index=False)
    a = json.loads(run("drift", "--reference", str(ref_path), "--production", str(prod_path),
                       "--json").stdout)
    b = json.loads(run("drift", "--reference", str(ref_path), "--production", str(semi),
                       "--json").stdout)
    assert a == b


@pytest.mark.parametrize("case,message", [
    ("missing", "production file not found"),
    ("no_common", "no column in common"),
    ("ragged", "not a readable CSV"),
    ("header_only", "no data rows"),
    ("empty", "is empty"),
    ("text_in_numeric", "non-numeric value"),
    ("unknown_feature", "unknown feature"),
])
def test_bad_input_one_line_error_exit_2(csvs, tmp_path, case, message):
    ref_path, prod_path = csvs
    bad = tmp_path / "bad.csv"
    extra = []
    if case == "no_common":
        bad.write_text("a,b\n1,2\n3,4\n")
    elif case == "ragged":
        bad.write_text("price,city\n1,x\n2,y,extra,fields\n3,z\n")
    elif case == "header_only":
        bad.write_text("price,rooms,city,promo\n")
    elif case == "empty":
        bad.write_text("")
    elif case == "text_in_numeric":
        frame = pd.read_csv(prod_path)
        frame["price"] = frame["price"].astype(object)
        frame.loc[3, "price"] = "n/a-ish"
        frame.to_csv(bad, index=False)
    elif case == "unknown_feature":
        bad = prod_path
        extra = ["--features", "price,colour"]
    target = str(tmp_path / "nope.csv") if case == "missing" else str(bad)
    out = run("drift", "--reference", str(ref_path), "--production", target, *extra)
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


# -- files that are not tables (issue #10, item 11) -------------------------------------
def png_bytes() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x10\x20\x00\x30\x40")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("command", ["drift", "investigate"])
@pytest.mark.parametrize("side", ["reference", "production"])
def test_a_png_given_as_csv_is_one_clear_error(csvs, tmp_path, command, side):
    image = tmp_path / "chart.csv"
    image.write_bytes(png_bytes())
    ref, prod = csvs
    files = {"reference": str(ref), "production": str(prod), side: str(image)}
    out = run(command, "--reference", files["reference"], "--production", files["production"])
    assert out.returncode == 2
    assert out.stderr.strip() == (f"error: {side} file {image} is not a CSV/Parquet file: it "
                                  "looks like a PNG image")
    assert "tokenizing" not in out.stderr and out.stdout == ""


def test_a_parquet_file_named_csv_is_read_as_parquet(csvs, tmp_path):
    ref, prod = csvs
    renamed = tmp_path / "prod_really_parquet.csv"
    pd.read_csv(prod).to_parquet(renamed)
    a = json.loads(run("drift", "--reference", str(ref), "--production", str(prod),
                       "--json").stdout)
    b = run("drift", "--reference", str(ref), "--production", str(renamed), "--json")
    assert b.returncode == 0, b.stderr
    assert json.loads(b.stdout) == a
