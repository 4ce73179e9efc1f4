"""What the Data vs concept page prints, from hand-made results: units, one precision,
dates, missing p-values, the support warning, the banner for "not judged"."""
import math

import pandas as pd

from analysis import concept_view as view
from analysis.formats import decimals_for


def _part(value, low=None, high=None):
    return {"value": value, "low": low, "high": high}


def _result(**overrides):
    result = {
        "verdict": "both", "metric": "mae", "target": "rent_eur",
        "judged": {"data": True, "concept": True, "decomposition": True,
                   "reasons": {"data": None, "concept": None, "decomposition": None}},
        "decomposition": {"reference": _part(62.9013, 62.5, 63.3),
                          "expected": _part(61.62, 61.0, 62.2),
                          "realized": _part(75.8049, 75.1, 76.5),
                          "data_part": _part(-1.281, -1.5, -1.1),
                          "concept_part": _part(14.1836, 13.7, 14.9)},
        "drifted_features": [{"feature": "neighborhood", "role": "root cause", "max_psi": 2.5,
                              "first_window": "2025-06-01T00:00:00",
                              "segments": ["students", "relocating"]}],
        "concept_features": [], "cells": []}
    result.update(overrides)
    return result


def test_decimals_give_four_significant_digits_to_the_scale():
    assert decimals_for(62.9) == 2
    assert decimals_for(0.93) == 4
    assert decimals_for(1234.5) == 0
    assert decimals_for(None) == 2 and decimals_for(0.0) == 2
    assert decimals_for(math.nan) == 2


def test_cards_carry_the_unit_and_one_precision():
    cards = {c["label"]: c for c in view.decomposition_cards(_result())}
    assert cards["Reference MAE (EUR)"]["value"] == "62.90"
    assert cards["Realized MAE (EUR)"]["value"] == "75.80"
    assert cards["Data drift (EUR)"]["value"] == "-1.28"
    assert cards["Concept drift (EUR)"]["value"] == "+14.18"
    assert "+13.70 to +14.90 EUR" in cards["Concept drift (EUR)"]["help"]
    mape = {c["label"]: c for c in view.decomposition_cards(_result(metric="mape"))}
    assert mape["Reference MAPE (%)"]["value"] == "62.90"
    plain = {c["label"]: c for c in view.decomposition_cards(_result(target="y"))}
    assert plain["Reference MAE"]["value"] == "62.90"
    assert view.decomposition_cards(_result(decomposition=None)) == []


def test_metric_label_with_unit():
    assert view.metric_label_with_unit({"metric": "mae", "target": "rent_eur",
                                        "metric_label": "mean absolute error"}) == \
        "mean absolute error (EUR)"
    assert view.metric_label_with_unit({"metric": "mape", "target": "rent_eur",
                                        "metric_label": "mean absolute percentage error (%)"}) \
        == "mean absolute percentage error (%)"


def test_metric_units():
    assert view.metric_unit("mae", "rent_eur") == "EUR"
    assert view.metric_unit("rmse", "price") == ""
    assert view.metric_unit("logloss", "y") == "nats"
    assert view.metric_unit("accuracy", "y") == ""


def test_drifted_table_prints_dates_and_groups():
    table = view.drifted_table(_result())
    assert table.iloc[0].to_dict() == {"feature": "neighborhood", "role": "root cause",
                                       "max PSI": 2.5, "since": "2025-06-01",
                                       "groups": "students, relocating"}
    assert view.window_label("2025-06-01T14:00:00") == "2025-06-01 14:00"
    assert view.window_label(None) == "whole period"
    assert list(view.drifted_table(_result(drifted_features=[])).columns) == \
        ["feature", "role", "max PSI", "since", "groups"]


def test_cell_feature_table_leaves_missing_p_values_empty():
    cell = {"data": {"features": {"a": {"psi": 0.02, "p_adjusted": None, "drifted": False},
                                  "b": {"psi": 0.4, "p_adjusted": 1e-9, "drifted": True}}}}
    table = view.cell_feature_table(cell)
    assert table["feature"].tolist() == ["b", "a"]
    assert pd.isna(table.set_index("feature").loc["a", "p (Holm)"])
    assert table["drifted"].tolist() == ["yes", "no"]


def test_support_warning_only_for_cells_with_new_inputs():
    assert view.support_warning({"data": {"out_of_support_share": 0.01}}) is None
    text = view.support_warning({"data": {"out_of_support_share": 0.7}})
    assert text.startswith("70% of this cell's rows lie outside the reference's support")


def test_banner_and_concept_status_for_not_judged():
    reasons = {"data": "every cell has fewer than 50 rows (the largest has 16); choose a "
                       "coarser window: a month holds a median 66 rows",
               "concept": "x", "decomposition": "x"}
    result = _result(verdict="not_judged", judged={"data": False, "concept": False,
                                                   "decomposition": False, "reasons": reasons})
    kind, text = view.banner(result)
    assert kind == "error" and text.startswith("**Verdict: NOT JUDGED**")
    assert "choose a coarser window" in text
    assert view.banner(_result(verdict="none"))[0] == "success"
    assert view.concept_status(result) == "Not judged: x."
    assert view.concept_status(_result()) == "P(y|x) did not change beyond noise."


def test_cell_choices_prefer_a_judged_concept_cell_of_a_group():
    cells = [{"segment": "all", "start": "w1", "verdict": "not_judged"},
             {"segment": "a", "start": "w1", "verdict": "none"},
             {"segment": "a", "start": "w2", "verdict": "data"},
             {"segment": "b", "start": "w2", "verdict": "concept"}]
    segments, first = view.cell_choices(_result(cells=cells))
    assert segments == ["all", "a", "b"] and first is cells[3]
    _, first = view.cell_choices(_result(cells=cells[:2]))
    assert first is cells[1]                       # judged before not judged


def test_evidence_available_says_why_not():
    cell = {"verdict": "not_judged", "rows": 17, "concept": {}}
    assert "17 rows" in view.evidence_available(cell, True)
    assert "No target column" in view.evidence_available(cell, False)
    assert view.evidence_available({"verdict": "none", "rows": 500,
                                    "concept": {"judged": True}}, True) is None



def test_cards_do_not_call_the_rest_concept_drift_when_it_was_not_tested():
    reasons = {"data": None, "concept": "no judged cell has 50 labelled rows", "decomposition": None}
    result = _result(judged={"data": True, "concept": False, "decomposition": True,
                             "reasons": reasons})
    cards = {c["label"]: c for c in view.decomposition_cards(result)}
    assert "Concept drift (EUR)" not in cards
    assert cards["Unexplained (EUR)"]["value"] == "+14.18"
    assert "Not tested as concept drift: no judged cell has 50" in cards["Unexplained (EUR)"]["help"]


def test_rule_and_axis_labels():
    assert "below 0.01" in view.feature_rule(_result(thresholds={"alpha": 0.01, "psi_min": 0.1}))
    assert view.importance_label({"task": "regression", "target": "rent_eur"}).endswith(", EUR)")
    assert "nats" in view.importance_label({"task": "classification", "target": "y"})


def test_change_points_table_names_group_kind_and_day():
    result = {"change_points": [
        {"segment": "all", "kind": "data", "unit": "day", "since": "2024-02-28T00:00:00",
         "window": "2024-02-26T00:00:00"},
        {"segment": "south", "kind": "concept", "unit": "hour", "since": "2024-02-28T13:00:00",
         "window": "2024-02-28T00:00:00"}]}
    table = view.change_points_table(result)
    assert table.to_dict("records") == [
        {"group": "all groups", "drift": "data (P(x))", "since": "2024-02-28",
         "found in the window starting": view.window_label("2024-02-26T00:00:00")},
        {"group": "south", "drift": "concept (P(y|x))", "since": "2024-02-28 13:00",
         "found in the window starting": view.window_label("2024-02-28T00:00:00")}]
    assert view.change_points_table({"change_points": []}).empty
