"""Postmortem bundle: the zip's report, images and data, from the API and the CLI."""
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from analysis.queries import Filters
from analysis.report import build_bundle
from analysis.summary import filtered_drift_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bundle(demo_store):
    f = Filters(segments={"user_group": ("students",)})
    return zipfile.ZipFile(io.BytesIO(build_bundle(demo_store, "rental_pricing", f))), f


def test_bundle_holds_report_images_and_data(bundle):
    zf, _ = bundle
    names = set(zf.namelist())
    assert "report.html" in names and "data/drift_table.csv" in names
    charts = sorted(n[len("charts/"):-4] for n in names if n.startswith("charts/"))
    assert {"overview", "psi_heatmap", "segment_error"} <= set(charts)
    for chart in charts:
        assert zf.read(f"charts/{chart}.png")[:8] == b"\x89PNG\r\n\x1a\n"
        assert not pd.read_csv(zf.open(f"data/{chart}.csv")).empty


def test_report_says_what_was_compared_and_found(bundle, demo_store, ground_truth):
    zf, f = bundle
    report = zf.read("report.html").decode()
    table = filtered_drift_table(demo_store, "rental_pricing", f)
    drifted = set(table[table.drifted.astype(bool)]["feature"])
    assert drifted == set(ground_truth["data_drift"]["features"])  # students carry the drift
    assert f"{len(drifted)} of 11 features drifted" in report
    for snap in demo_store.snapshots("rental_pricing"):
        assert snap.id in report
    assert "user_group in (students)" in report and "Drift Investigator 0.1.0" in report
    assert report.count("<figure>") == len([n for n in zf.namelist() if n.startswith("charts/")])
    assert "Drift first seen in the window starting 2025-06-01" in report
    csv = pd.read_csv(zf.open("data/drift_table.csv"))
    assert set(csv.feature) == set(table.feature)


def test_report_cli(tmp_path):
    out = tmp_path / "bundle.zip"
    run = subprocess.run([sys.executable, "-m", "analysis", "report", "--dataset",
                          "rental_pricing", "--from", "2025-09-01", "--to", "2025-12-31",
                          "--segment", "user_group=professionals", "--out", str(out)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = " ".join(zipfile.ZipFile(out).read("report.html").decode().split())
    assert "from 2025-09-01 to 2025-12-31" in report
    assert "0 of 11 features drifted" in report  # professionals: concept drift only
    bad = subprocess.run([sys.executable, "-m", "analysis", "report", "--dataset",
                          "rental_pricing", "--segment", "region=north", "--out",
                          str(tmp_path / "x.zip")], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "no segment column 'region'" in bad.stderr


def test_bundle_carries_the_dashboards_verdict(demo_store):
    import json

    from analysis.investigation import investigate_store

    result = investigate_store(demo_store, "rental_pricing")   # kept by set-up, or computed
    zf = zipfile.ZipFile(io.BytesIO(build_bundle(demo_store, "rental_pricing")))
    assert "charts/data_vs_concept.png" in zf.namelist()
    assert json.loads(zf.read("data/investigation.json"))["verdict"] == result["verdict"] == "both"
    parts = pd.read_csv(zf.open("data/data_vs_concept.csv"))
    assert len(parts) == 9                                   # April to December
    report = zf.read("report.html").decode()
    assert "Data vs concept: BOTH." in report and "professionals" in report
    # the text names every feature its table of drifted features lists
    assert all(f["feature"] in report for f in result["drifted_features"])
    named = result["summary"].split("Data drift (P(x) changed)")[1].split(".")[0]
    assert len(result["drifted_features"]) == 6 and \
        all(f["feature"] in named for f in result["drifted_features"])
