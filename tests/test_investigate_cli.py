"""``python -m analysis investigate`` end to end on CSV files (in this process but for one
run as a subprocess: tests/cli_helpers.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cli_helpers import run_command
from generators import make_case

ROOT = Path(__file__).resolve().parent.parent


def run(*args, subprocess_run=False):
    return run_command("investigate", *args, subprocess_run=subprocess_run)


@pytest.fixture(scope="module")
def concept_csvs(tmp_path_factory):
    case = make_case("concept", seed=5, reference_rows=4000, weekly_rows=900)
    folder = tmp_path_factory.mktemp("concept")
    ref, prod = folder / "ref.csv", folder / "prod.csv"
    case.reference.to_csv(ref, index=False)
    case.production.to_csv(prod, index=False)
    return case, ref, prod


def test_json_names_where_and_since_when(concept_csvs):
    case, ref, prod = concept_csvs
    out = run("--reference", str(ref), "--production", str(prod), "--target", "y",
              "--prediction", "prediction", "--timestamp", "event_time", "--segment", "region",
              "--json", subprocess_run=True)   # the real entry point, once
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in ("verdict", "drifted_features", "concept_features", "decomposition", "cells"):
        assert key in result
    assert result["verdict"] == "concept"
    assert result["window"] == "week"               # auto: 10 weekly windows
    for part in ("reference", "expected", "realized"):
        value = result["decomposition"][part]
        assert value["low"] <= value["value"] <= value["high"]
    starts = sorted({c["start"] for c in result["cells"]})
    assert len(starts) == 10
    for cell in result["cells"]:
        start, end = pd.Timestamp(cell["start"]), pd.Timestamp(cell["end"])
        assert end - start == pd.Timedelta(days=7) and start.day_of_week == 0
        assert cell["rows"] > 0 and cell["verdict"] in ("none", "data", "concept", "both")
        if cell["segment"] != case.group and cell["segment"] != "all" or start < case.drift_start:
            assert cell["verdict"] == "none", cell
    south = [c for c in result["cells"] if c["segment"] == "south" and c["verdict"] == "concept"]
    assert min(pd.Timestamp(c["start"]) for c in south) == case.drift_start
    # one cell per window for all groups together, with the rows adding up
    for start in starts:
        cells = [c for c in result["cells"] if c["start"] == start]
        total = next(c["rows"] for c in cells if c["segment"] == "all")
        assert total == sum(c["rows"] for c in cells if c["segment"] != "all")
    assert result["concept_features"][0]["feature"] == "x1"


def test_text_report_and_gate_exit_codes(concept_csvs):
    _, ref, prod = concept_csvs
    args = ["--reference", str(ref), "--production", str(prod), "--target", "y",
            "--prediction", "prediction", "--segment", "region"]
    out = run(*args, "--fail-on", "concept")
    assert out.returncode == 1, out.stderr
    assert "verdict: CONCEPT" in out.stdout
    assert "concept-drift part" in out.stdout and "verdict per week and region" in out.stdout
    assert "using 'event_time' as the timestamp" in out.stdout
    assert run(*args, "--fail-on", "data", "--window", "month").returncode == 0


def _covariate_csvs(folder, seed: int):
    """A covariate-shift case as CSV files, the production file without its labels."""
    case = make_case("covariate", seed=seed, reference_rows=3000, weekly_rows=800)
    ref, prod = folder / "ref.csv", folder / "prod.csv"
    case.reference.to_csv(ref, index=False)
    case.production.drop(columns=["y"]).to_csv(prod, index=False)
    return ref, prod


def test_without_target_reports_data_only(tmp_path):
    ref, prod = _covariate_csvs(tmp_path, seed=6)
    out = run("--reference", str(ref), "--production", str(prod), "--prediction", "prediction",
              "--segment", "region", "--exclude", "y", "--json", "--fail-on", "any")
    assert out.returncode == 1, out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] == "data"
    assert result["judged"]["concept"] is False and result["decomposition"] is None
    assert any("concept drift (P(y|x)) is not judged" in n for n in result["notes"])
    assert {f["feature"] for f in result["drifted_features"]} == {"x1", "x4", "c"}


@pytest.mark.parametrize("args, message", [
    (["--target", "nope"], "--target column 'nope' is not in"),
    (["--target", "y", "--timestamp", "region"], "holds no dates"),
    (["--target", "y", "--metric", "logloss", "--prediction", "prediction"], "does not apply"),
    (["--target", "region", "--prediction", "prediction", "--task", "regression"],
     "must be numeric for a regression"),
])
def test_bad_input_exits_2(concept_csvs, args, message):
    _, ref, prod = concept_csvs
    out = run("--reference", str(ref), "--production", str(prod), *args)
    assert out.returncode == 2
    assert message in out.stderr and out.stderr.startswith("error:")
    assert "Traceback" not in out.stderr


def test_empty_and_missing_files_exit_2(tmp_path, concept_csvs):
    _, ref, _ = concept_csvs
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    out = run("--reference", str(ref), "--production", str(empty), "--target", "y")
    assert out.returncode == 2 and "is empty" in out.stderr
    out = run("--reference", str(tmp_path / "missing.csv"), "--production", str(ref))
    assert out.returncode == 2 and "not found" in out.stderr


def test_labels_not_yet_arrived(tmp_path):
    ref, prod = _covariate_csvs(tmp_path, seed=12)
    out = run("--reference", str(ref), "--production", str(prod), "--target", "y",
              "--prediction", "prediction", "--segment", "region", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] == "data"
    judged = result["judged"]
    assert (judged["data"], judged["concept"], judged["decomposition"]) == (True, False, False)
    assert judged["reasons"]["concept"] == "no production row has a label yet"
    assert judged["cells"] == judged["total_cells"] > 0
    assert any("no target column 'y'" in n for n in result["notes"])
    assert all(c["concept"].get("judged") is False for c in result["cells"])


# -- columns named like the target and prediction (issue #10, item 11) ------------------
def test_columns_named_target_and_prediction_are_used_with_a_note(tmp_path):
    """Without --target / --prediction, the columns named like them are taken, as drift
    takes them, and the notes say so: concept drift is judged, not silently skipped."""
    case = make_case("concept", seed=8, reference_rows=2000, weekly_rows=300)
    names = {"y": "target", "prediction": "y_pred"}
    ref, prod = tmp_path / "ref.csv", tmp_path / "prod.csv"
    case.reference.rename(columns=names).to_csv(ref, index=False)
    case.production.rename(columns=names).to_csv(prod, index=False)
    args = ["--reference", str(ref), "--production", str(prod)]
    out = run(*args, "--window", "month", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert "using 'target' as the target (pass --target to choose)" in result["notes"]
    assert "using 'y_pred' as the prediction (pass --prediction to choose)" in result["notes"]
    assert (result["target"], result["prediction"]) == ("target", "y_pred")
    assert result["judged"]["concept"] is True and result["decomposition"] is not None
    # drift, on the same files, leaves out the same two columns with the same notes
    drift = subprocess.run([sys.executable, "-m", "analysis", "drift", *args, "--json"],
                           cwd=ROOT, capture_output=True, text=True)
    assert drift.returncode == 0, drift.stderr
    assert "using 'target' as the target (pass --target to choose)" in drift.stderr
    assert "target (the target), y_pred (the prediction)" in drift.stderr
    assert not {r["feature"] for r in json.loads(drift.stdout)} & {"target", "y_pred"}


def test_gate_exits_3_when_it_cannot_test_what_it_gates(tmp_path):
    from small_upload import diabetes_frames

    ref, prod = diabetes_frames(1)
    ref.to_csv(tmp_path / "ref.csv", index=False)
    prod.to_csv(tmp_path / "prod.csv", index=False)
    prod.drop(columns=["target"]).to_csv(tmp_path / "unlabelled.csv", index=False)
    args = ["--reference", str(tmp_path / "ref.csv"), "--target", "target",
            "--prediction", "prediction"]
    weekly = run(*args, "--production", str(tmp_path / "prod.csv"), "--window", "week",
                 "--fail-on", "any")
    assert weekly.returncode == 3, weekly.stderr
    assert "verdict: NOT JUDGED" in weekly.stdout and "choose a coarser window" in weekly.stdout
    assert "None" not in weekly.stdout
    # labels not arrived: a concept gate cannot pass, a data gate can still find drift
    unlabelled = [*args, "--production", str(tmp_path / "unlabelled.csv")]
    assert run(*unlabelled, "--fail-on", "concept").returncode == 3
    assert run(*unlabelled, "--fail-on", "data").returncode == 1
