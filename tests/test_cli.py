"""``python -m analysis drift`` end to end on real CSV files (in this process but for one
run as a subprocess: tests/cli_helpers.py)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from binary_files import png_bytes
from cli_helpers import run_command

ROOT = Path(__file__).resolve().parent.parent


def run(*args, subprocess_run=False):
    return run_command(*args, subprocess_run=subprocess_run)


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
    out = run("drift", "--reference", str(ref_path), "--production", str(prod_path), "--json",
              subprocess_run=True)   # the real entry point, once
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


# -- the model's own columns, binary files, each command's options (issue #10, item 11) --
def _with_outcomes(csvs, tmp_path, target: str, prediction: str):
    """The fixture's files plus a target and a prediction column named as given."""
    paths = []
    for path in csvs:
        frame = pd.read_csv(path)
        rng = np.random.default_rng(len(frame))
        frame[target] = frame["price"] * 3 + rng.normal(0, 50, len(frame))
        frame[prediction] = frame["price"] * 3
        out = tmp_path / f"outcomes_{path.name}"
        frame.to_csv(out, index=False)
        paths.append(out)
    return paths


@pytest.mark.parametrize("target,prediction", [("target", "prediction"), ("y", "y_pred"),
                                               ("label", "pred"), ("y_true", "y_hat"),
                                               ("rent", "predicted_rent")])
def test_drift_leaves_out_the_target_and_prediction_and_says_so(csvs, tmp_path, target,
                                                                prediction):
    ref, prod = _with_outcomes(csvs, tmp_path, target, prediction)
    out = run("drift", "--reference", str(ref), "--production", str(prod), "--json")
    assert out.returncode == 0, out.stderr
    assert {r["feature"] for r in json.loads(out.stdout)} == {"price", "rooms", "city", "promo"}
    assert f"using {target!r} as the target" in out.stderr
    assert f"using {prediction!r} as the prediction (pass --prediction to choose)" in out.stderr
    assert (f"not compared: ts (a timestamp), {target} (the target), "
            f"{prediction} (the prediction)") in out.stderr
    text = run("drift", "--reference", str(ref), "--production", str(prod))
    assert "of 4 features drifted" in text.stdout
    assert f"note: using {target!r} as the target" in text.stdout


def test_drift_target_and_prediction_options(csvs, tmp_path):
    ref, prod = _with_outcomes(csvs, tmp_path, "rent_paid", "model_output")
    plain = json.loads(run("drift", "--reference", str(ref), "--production", str(prod),
                           "--json").stdout)
    assert {"rent_paid", "model_output"} <= {r["feature"] for r in plain}  # names say nothing
    out = run("drift", "--reference", str(ref), "--production", str(prod), "--target",
              "rent_paid", "--prediction", "model_output", "--json")
    assert out.returncode == 0, out.stderr
    assert {r["feature"] for r in json.loads(out.stdout)} == {"price", "rooms", "city", "promo"}
    assert "rent_paid (the target), model_output (the prediction)" in out.stderr
    assert "using" not in out.stderr  # nothing assumed
    # a column named like the target is compared when --target names another one
    ref, prod = _with_outcomes(csvs, tmp_path, "target", "prediction")
    rows = json.loads(run("drift", "--reference", str(ref), "--production", str(prod),
                          "--target", "promo", "--json").stdout)
    assert {r["feature"] for r in rows} == {"price", "rooms", "city", "target"}


def test_drift_with_several_target_like_columns_uses_none_and_says_so(csvs, tmp_path):
    ref, prod = _with_outcomes(csvs, tmp_path, "target", "prediction")
    for path in (ref, prod):
        frame = pd.read_csv(path)
        frame["label"] = frame["city"]
        frame.to_csv(path, index=False)
    out = run("drift", "--reference", str(ref), "--production", str(prod), "--json")
    assert out.returncode == 0, out.stderr
    assert "several columns look like the target (target, label); none used" in out.stderr
    assert {"target", "label"} <= {r["feature"] for r in json.loads(out.stdout)}


@pytest.mark.parametrize("args,message", [
    (["--target", "nope"], "--target column 'nope' is in neither file"),
    (["--features", "price,target"], "--features names the model's own column(s): "
                                     "'target' (the target)"),
])
def test_drift_bad_outcome_options_exit_2(csvs, tmp_path, args, message):
    ref, prod = _with_outcomes(csvs, tmp_path, "target", "prediction")
    if "--features" in args:
        args = args + ["--target", "target"]
    out = run("drift", "--reference", str(ref), "--production", str(prod), *args)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_drift_help_lists_only_its_own_options():
    out = run("drift", "--help")
    assert out.returncode == 0
    assert "--store" not in out.stdout and "unused" not in out.stdout
    assert "--target" in out.stdout and "--prediction" in out.stdout


def test_every_option_is_read_by_its_command():
    """An option listed in a command's --help must do something: its command reads it."""
    import argparse
    import inspect

    from analysis.cli import build_parser
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        func = sub.get_default("func")
        source = inspect.getsource(func)
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert f"args.{action.dest}" in source, (name, action.option_strings)


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
