"""The evidence behind one cell and the tables the Data vs concept page draws."""
import numpy as np
import pandas as pd
import pytest

from analysis import attribution as at
from analysis import investigation as inv
from analysis.figures import decomposition_figure, verdict_grid_figure
from generators import make_case


def test_residual_profile_matches_hand_computation():
    problem = at.Problem({"x": "numeric", "c": "categorical"}, "y", "p", task="regression")
    ref = pd.DataFrame({"x": np.arange(10.0), "c": list("aabbaabbaa"),
                        "y": np.arange(10.0), "p": np.arange(10.0) - 1})   # residual +1
    win = pd.DataFrame({"x": [0.5, 8.5, np.nan], "c": ["a", "z", "b"],
                        "y": [3.0, 0.0, 1.0], "p": [1.0, 1.0, 0.0]})
    by_c = inv.residual_profile(ref, win, problem, "c")
    assert list(by_c["bin"]) == ["a", "b", "other"]
    assert by_c["reference"].tolist()[:2] == [1.0, 1.0]
    assert by_c["window"].tolist() == [2.0, 1.0, -1.0]
    assert by_c["window_rows"].tolist() == [1, 1, 1]
    by_x = inv.residual_profile(ref, win, problem, "x")
    assert by_x["window_rows"].sum() == 3 and by_x["reference_rows"].sum() == 10
    assert by_x.iloc[-1]["bin"] == "missing" and by_x.iloc[-1]["window"] == 1.0


@pytest.fixture(scope="module")
def concept_case():
    return make_case("concept", seed=11)


def test_cell_evidence_sees_the_halved_slope(concept_case):
    case = concept_case
    problem, _ = at.problem_from_frames(case.reference, case.production.copy(), target="y",
                                        prediction="prediction", segment="region")
    start = case.drift_start
    ref, win = inv.cell_frames(case.reference, case.production, problem, "south",
                               start.isoformat(), (start + pd.Timedelta(weeks=6)).isoformat())
    assert set(win["region"]) == {"south"} and set(ref["region"]) == {"south"}
    assert win["event_time"].min() >= start
    ev = inv.cell_evidence(ref, win, problem)
    coef = ev["coefficients"].set_index("feature")
    # the rule's x1 slope goes from 3 to 1.5: the surrogates' x1 coefficients follow
    ratio = coef.loc["x1", "window"] / coef.loc["x1", "reference"]
    assert 0.35 < ratio < 0.7
    assert abs(coef.loc["x3", "window"] / coef.loc["x3", "reference"] - 1) < 0.35
    imp = ev["importance"].set_index("feature")
    assert imp.loc["x1", "window"] < imp.loc["x1", "reference"]
    assert imp.loc["x1", "reference"] == imp["reference"].max()
    pred = ev["predictions"]
    assert len(pred) == min(len(win), 2000) and pred.notna().all().all()
    # on the same inputs the two models disagree, most where |x1| is large
    assert (pred["retrained"] - pred["reference_model"]).abs().mean() > 0.5
    ranked = inv.rank_residual_changes({f: p for f, p in ev["residuals"].items()})
    assert ranked[0] == "x1"


def test_page_tables_and_figures_follow_the_result(concept_case):
    case = concept_case
    prod = case.production.copy()
    problem, _ = at.problem_from_frames(case.reference, prod, target="y",
                                        prediction="prediction", segment="region")
    result = inv.jsonable(at.investigate(case.reference, prod, problem).to_dict())
    grid = inv.grid_frame(result)
    assert len(grid) == len(result["cells"])
    assert grid["verdict"].tolist() == [c["verdict"] for c in result["cells"]]
    parts = inv.window_parts(result)
    alls = [c for c in result["cells"] if c["segment"] == "all"]
    assert len(parts) == len(alls) == 10
    np.testing.assert_allclose(parts["concept_part"], [c["decomposition"]["concept_part"]["value"]
                                                       for c in alls])
    fig = decomposition_figure(parts, result["metric_label"], result["window"])
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    np.testing.assert_allclose(bars["concept-drift part"].y, parts["concept_part"])
    np.testing.assert_allclose(fig.data[-1].y, parts["realized"] - parts["reference"])
    grid_fig = verdict_grid_figure(grid, "region", result["window"])
    z = np.asarray(grid_fig.data[0].z)
    assert z.shape == (4, 10)                              # all + 3 groups, 10 weeks
    south = ["all", "east", "north", "south"].index("south")
    assert (z[south, 4:] == 2).all() and (z[south, :4] == 0).all()   # concept from week 5
    text = inv.cell_text(next(c for c in result["cells"] if c["segment"] == "south"
                              and c["verdict"] == "concept"), result)
    assert "verdict CONCEPT" in text and "region = south" in text


def test_cell_text_says_why_concept_was_not_judged():
    cell = {"segment": "all", "start": "2025-04-01T00:00:00", "end": "2025-05-01T00:00:00",
            "rows": 65, "verdict": "data", "notes": [],
            "data": {"judged": True, "flagged": True, "auc": 0.9, "drifted_features": ["bmi"],
                     "out_of_support_share": 0.0},
            "concept": {"judged": False, "reason": "overlap"}, "decomposition": None}
    text = inv.cell_text(cell, {"segment": None, "metric_label": "mean absolute error"})
    assert "Concept drift was not judged: fewer than 50 labelled rows where this cell's " \
           "inputs overlap the reference's" in text
    assert "no or too few labels" not in text


def test_cell_text_says_when_a_cell_was_not_examined_or_flagged_by_its_sequence():
    base = {"segment": "south", "start": "2025-04-01T00:00:00", "end": "2025-05-01T00:00:00",
            "rows": 900, "notes": [], "decomposition": None}
    quiet = {**base, "verdict": "none",
             "data": {"judged": True, "examined": False, "flagged": False, "auc": 0.51},
             "concept": {"judged": True, "flagged": False}}
    text = inv.cell_text(quiet, {"segment": "region", "metric_label": "mean absolute error"})
    assert "Not examined in detail (domain AUC 0.51)" in text
    gradual = {**base, "verdict": "concept",
               "data": {"judged": True, "examined": True, "flagged": False, "auc": 0.5},
               "concept": {"judged": True, "flagged": True, "series_flagged": True,
                           "loss_change": 0.02, "loss_change_interval": [0.0, 0.04],
                           "reference_model_error": 0.1}}
    text = inv.cell_text(gradual, {"segment": "region", "metric_label": "mean absolute error"})
    assert "sequence of windows (a gradual drift)" in text
