"""What the Data vs concept page shows, as plain values: the verdict's banner, the metric
cards with units and one precision, and the tables, built from an investigation's JSON
result (:func:`analysis.investigation.investigate_store`). The page only draws them.
"""
from __future__ import annotations


import pandas as pd

from analysis.attribution import ALL, MIN_ROWS, SUPPORT_RATIO
from analysis.figures import unit_of
from analysis.formats import decimals_for, window_label  # noqa: F401  (the page's window names)

SHORT_METRICS = {"mae": "MAE", "rmse": "RMSE", "mape": "MAPE", "accuracy": "accuracy",
                 "logloss": "log loss"}
BANNERS = {
    "none": ("success", "no drift beyond noise in any judged window or group."),
    "data": ("info", "the inputs changed (P(x))."),
    "concept": ("warning", "the relationship between inputs and target changed (P(y|x))."),
    "both": ("warning", "both the inputs and the relationship to the target changed."),
    "not_judged": ("error", "nothing could be judged."),
}


def metric_unit(metric: str | None, target: str | None) -> str:
    """The unit of a metric's values: the target's (from its name, e.g. ``rent_eur`` ->
    EUR) for MAE and RMSE, % for MAPE, nats for log loss, none for accuracy."""
    if metric in ("mae", "rmse"):
        return unit_of(target or "")
    return {"mape": "%", "logloss": "nats"}.get(metric or "", "")


def metric_label_with_unit(result: dict) -> str:
    """'mean absolute error (EUR)': the metric's name for axis titles, with its unit
    when the metric's own label does not already carry one."""
    label = result.get("metric_label") or ""
    unit = metric_unit(result.get("metric"), result.get("target"))
    return f"{label} ({unit})" if unit and "(" not in label else label


def sample_note(result: dict) -> str | None:
    """What an investigation read when it ran on a sample (the Spark engine), or None."""
    sample = result.get("sample")
    if not sample:
        return None
    (ref, ref_total), (prod, prod_total) = sample["reference"], sample["production"]
    return (f"Investigated in {sample['engine']} on a random sample: {ref:,} of {ref_total:,} "
            f"reference rows and {prod:,} of {prod_total:,} production rows.")


def banner(result: dict) -> tuple[str, str]:
    """(kind, text) of the verdict's banner; kind is success, info, warning or error."""
    verdict = result["verdict"]
    kind, text = BANNERS[verdict]
    head = verdict.upper().replace("_", " ")
    if verdict == "not_judged":
        text = f"{text[:-1]}: {result['judged']['reasons']['data']}."
    return kind, f"**Verdict: {head}** — {text}"


def decomposition_cards(result: dict) -> list[dict]:
    """The five metric cards of the overall decomposition: ``label`` (with the unit),
    ``value`` (text, four significant digits of the reference level, the same decimals
    for all five) and ``help`` (the 95% interval). Empty without a decomposition."""
    d = result.get("decomposition")
    if not d:
        return []
    name = SHORT_METRICS.get(result["metric"], result["metric"])
    unit = metric_unit(result["metric"], result.get("target"))
    places = decimals_for(d["reference"]["value"])
    suffix = f" ({unit})" if unit else ""
    concept_judged = result["judged"]["concept"]

    def text(value, signed=False):
        return "—" if value is None else f"{value:{'+' if signed else ''},.{places}f}"

    def interval(part, signed=False):
        if part["low"] is None:
            return ""
        return (f"95% interval {text(part['low'], signed)} to {text(part['high'], signed)}"
                f"{' ' + unit if unit else ''}.")

    return [
        {"label": f"Reference {name}{suffix}", "value": text(d["reference"]["value"]),
         "help": "The model's error on all reference rows (the filters' groups). "
                 + interval(d["reference"])},
        {"label": f"Expected {name}{suffix}", "value": text(d["expected"]["value"]),
         "help": "What the inputs' shift alone predicts. " + interval(d["expected"])},
        {"label": f"Realized {name}{suffix}", "value": text(d["realized"]["value"]),
         "help": "The model's error on the production rows. " + interval(d["realized"])},
        {"label": f"Data drift{suffix}", "value": text(d["data_part"]["value"], True),
         "help": "The data-drift part of the change: expected minus reference. "
                 + interval(d["data_part"], True)},
        {"label": f"Concept drift{suffix}" if concept_judged else f"Unexplained{suffix}",
         "value": text(d["concept_part"]["value"], True),
         "help": ("The concept-drift part of the change: realized minus expected. "
                  if concept_judged else
                  "Realized minus expected: the change the inputs' shift does not explain. "
                  "Not tested as concept drift: "
                  + (result["judged"].get("reasons", {}).get("concept") or "no labels") + ". ")
                 + interval(d["concept_part"], True)},
    ]


def drifted_table(result: dict) -> pd.DataFrame:
    """The drifted features: feature, role, max PSI, since (the first window), groups."""
    rows = [{"feature": f["feature"], "role": f.get("role") or "",
             "max PSI": f.get("max_psi"), "since": window_label(f.get("first_window")),
             "groups": ", ".join(f.get("segments") or [])}
            for f in result.get("drifted_features") or []]
    return pd.DataFrame(rows, columns=["feature", "role", "max PSI", "since", "groups"])


def concept_table(result: dict) -> pd.DataFrame:
    """The features along which the concept moved, with their share of the retrained
    model's disagreement."""
    rows = [{"feature": f["feature"], "share of disagreement": f.get("importance")}
            for f in result.get("concept_features") or []]
    return pd.DataFrame(rows, columns=["feature", "share of disagreement"])


def concept_status(result: dict) -> str | None:
    """What to say under "Concept drift" when no feature is listed."""
    if result.get("concept_features"):
        return None
    if result["judged"]["concept"]:
        return "P(y|x) did not change beyond noise."
    return f"Not judged: {result['judged'].get('reasons', {}).get('concept') or 'no labels'}."


def cell_choices(result: dict) -> tuple[list[str], dict]:
    """The groups to offer (all first) and the cell to open by default: the first judged
    concept (or both) cell of a group, else the first flagged cell, else the first
    judged one, else the first."""
    cells = result["cells"]
    segments = [ALL] + sorted({c["segment"] for c in cells} - {ALL})
    judged = [c for c in cells if c["verdict"] != "not_judged"]
    flagged = [c for c in judged if c["verdict"] != "none"]
    first = next((c for c in flagged if c["verdict"] in ("concept", "both") and c["segment"] != ALL),
                 flagged[0] if flagged else judged[0] if judged else cells[0])
    return segments, first


def cell_feature_table(cell: dict) -> pd.DataFrame:
    """Per feature of a judged cell: PSI, the Holm-adjusted p-value (NaN where there is
    none) and whether it drifted, largest PSI first."""
    rows = [{"feature": f, "PSI": v.get("psi"), "p (Holm)": v.get("p_adjusted"),
             "drifted": "yes" if v.get("drifted") else "no"}
            for f, v in (cell["data"].get("features") or {}).items()]
    frame = pd.DataFrame(rows, columns=["feature", "PSI", "p (Holm)", "drifted"])
    frame[["PSI", "p (Holm)"]] = frame[["PSI", "p (Holm)"]].astype(float)
    return frame.sort_values("PSI", ascending=False, na_position="last")


def support_warning(cell: dict) -> str | None:
    """For a cell whose window has inputs outside the reference's support: a warning that
    what the evidence shows there is the models' extrapolation, not a changed concept."""
    share = cell["data"].get("out_of_support_share") or 0.0
    if share < 0.05:
        return None
    return (f"{share:.0%} of this cell's rows lie outside the reference's support (density "
            f"ratio above {SUPPORT_RATIO:g}): new inputs. The reference model never saw such "
            "inputs, so where the charts below differ on them they show its extrapolation, "
            "not a changed relationship; those shifts come from the data drift.")


def evidence_available(cell: dict, has_target: bool) -> str | None:
    """None when the cell's evidence can be computed, else why not."""
    if not has_target:
        return "No target column: the models cannot be retrained on this cell."
    if cell["verdict"] == "not_judged":
        return f"This cell has {cell['rows']:,} rows: too few to judge (at least {MIN_ROWS})."
    if not cell["concept"].get("judged"):
        return "Too few labelled rows in this cell to retrain a model on it."
    return None



def feature_rule(result: dict) -> str:
    """The rule behind the cell table's "drifted" column, with this result's thresholds
    (stricter than Feature drift's per-page 5 %: it controls every cell's tests at once)."""
    t = result.get("thresholds") or {}
    return (f"Drifted: Holm-adjusted p below {t.get('alpha', 0.01):g} over every cell's tests "
            f"of the investigation, and PSI at least {t.get('psi_min', 0.1):g}. Feature drift "
            "adjusts over one table's features at 5 %, so near the edge it may flag a feature "
            "that this page, which guards every window and group at once, does not.")


def importance_label(result: dict) -> str:
    """Axis title of the permutation importances, in the loss's unit."""
    if result.get("task") == "classification":
        return "permutation importance (increase of the log loss when shuffled, nats)"
    unit = unit_of(result.get("target") or "")
    return ("permutation importance (increase of the mean absolute error when shuffled"
            + (f", {unit})" if unit else ")"))


def change_points_table(result: dict) -> pd.DataFrame:
    """When each group's drift began (from the investigation's ``change_points``):
    group, kind of drift, the first day (or hour) of the change, and the window it was
    found in; empty when nothing drifted or there are no timestamps."""
    rows = []
    for cp in result.get("change_points") or []:
        since = pd.Timestamp(cp["since"])
        rows.append({"group": "all groups" if cp["segment"] == "all" else cp["segment"],
                     "drift": "data (P(x))" if cp["kind"] == "data" else "concept (P(y|x))",
                     "since": f"{since:%Y-%m-%d %H:00}" if cp["unit"] == "hour" else f"{since:%Y-%m-%d}",
                     "found in the window starting": window_label(cp.get("window"))})
    return pd.DataFrame(rows, columns=["group", "drift", "since", "found in the window starting"])
