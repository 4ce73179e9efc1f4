"""The verdict's text: what could be judged, the notes, and the summary sentence."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from analysis.attribution.cells import Cell
from analysis.attribution.problem import ALL, METRICS, MIN_ROWS, SUPPORT_RATIO, Problem
from analysis.attribution.windows import _coarser_advice
from analysis.formats import decimals_for, window_label

if TYPE_CHECKING:
    from analysis.attribution.engine import Investigation


def _perfect(level: float | None, metric: str) -> bool:
    """A metric level no honest held-out prediction reaches: accuracy 1, an error 0."""
    if level is None or not math.isfinite(level):
        return False
    return level >= 1 - 1e-12 if metric == "accuracy" else abs(level) <= 1e-12


_CONCEPT_REASONS = {
    "no_target": "no target column",
    "reference_labels": f"fewer than {MIN_ROWS} labelled reference rows",
    "no_labels": "no production row has a label yet",
    "labels": f"no judged cell has {MIN_ROWS} labelled rows (labels may not have arrived yet)",
    "overlap": f"no judged cell has {MIN_ROWS} labelled rows where its inputs overlap the "
               "reference's",
}


def _judged(cells: list[Cell], p: Problem, decomposition: dict | None, unit: str | None,
            sizes: dict | None) -> dict:
    """What could be judged: ``data``, ``concept`` and ``decomposition`` (booleans),
    ``cells`` and ``total_cells`` (cells whose inputs were judged, of all cells), and
    ``reasons``: for each of the three that is False, why, and what to do."""
    judged_cells = [c for c in cells if c.data.get("judged")]
    data = bool(judged_cells)
    concept = any(c.concept.get("judged") for c in cells)
    reasons: dict[str, str | None] = {"data": None, "concept": None, "decomposition": None}
    if not data:
        biggest = max((c.rows for c in cells), default=0)
        reasons["data"] = (f"every cell has fewer than {MIN_ROWS} rows (the largest has "
                           f"{biggest:,})" + _coarser_advice(sizes, unit))
    if not concept:
        if not data and p.labelled:
            reasons["concept"] = reasons["data"]
        else:
            found = [c.concept.get("reason") for c in judged_cells] or ["no_target"]
            unlabelled = all(c.labelled_rows == 0 for c in judged_cells)
            key = "no_target" if not p.labelled else next(
                (r for r in ("reference_labels", "overlap") if r in found),
                "no_labels" if unlabelled else "labels")
            reasons["concept"] = _CONCEPT_REASONS[key]
    if decomposition is None:
        if not p.labelled:
            reasons["decomposition"] = "no target column"
        elif not p.has_model:
            reasons["decomposition"] = "no prediction column"
        else:
            reasons["decomposition"] = reasons["concept"] or "no cell could be decomposed"
    return {"data": data, "concept": concept, "decomposition": decomposition is not None,
            "cells": len(judged_cells), "total_cells": len(cells), "reasons": reasons}


def _too_small_note(cells: list[Cell], p: Problem) -> str | None:
    """One note naming the cells left unjudged for too few rows, by window."""
    small = [c for c in cells if c.data.get("reason") == "rows"]
    if not small:
        return None
    parts = []
    for c in small[:8]:
        who = "all groups" if c.segment == ALL or p.segment is None else f"{p.segment} = {c.segment}"
        parts.append(f"{window_label(c.start and c.start.isoformat())} {who} ({c.rows:,} row{'s' if c.rows != 1 else ''})")
    more = f" and {len(small) - 8} more" if len(small) > 8 else ""
    return (f"{len(small)} of {len(cells)} cells not judged, fewer than {MIN_ROWS} rows: "
            + "; ".join(parts) + more)


def _cell_notes(cells: list[Cell], p: Problem) -> list[str]:
    """Notes that summarise the cells: inputs outside the reference's support, and
    reference predictions that look in-sample."""
    out = [n for n in [_too_small_note(cells, p)] if n]
    by_segment: dict[str, list[float]] = {}
    for c in cells:
        share = c.data.get("out_of_support_share", 0.0)
        if share >= 0.05:
            by_segment.setdefault(c.segment, []).append(share)
    for seg, shares in sorted(by_segment.items()):
        who = "all rows" if seg == ALL else f"{p.segment} = {seg}"
        span = f"{min(shares):.0%}" if min(shares) == max(shares) else f"{min(shares):.0%}-{max(shares):.0%}"
        out.append(f"{who}: {span} of the rows in {len(shares)} window(s) lie where the reference "
                   "has (almost) no data (density ratio above "
                   f"{SUPPORT_RATIO:g}); these are new inputs whose concept cannot be judged from "
                   "the reference, and the shared-region decomposition counts them as data drift")
    if p.has_model:
        quiet = [c for c in cells if c.decomposition and not c.concept.get("flagged")
                 and c.concept.get("judged")]
        raised = [c for c in quiet if (c.decomposition["concept_part"]["low"] or 0) > 0]
        if quiet and len(raised) >= max(2, len(quiet) // 2):
            out.append(
                f"in {len(raised)} of {len(quiet)} cells without concept drift the model's error "
                "on inputs like the reference's is still above its reference error, while an "
                "independently cross-fitted model shows no change: the reference predictions "
                "look in-sample (made by a model trained on those rows), so the decomposition's "
                "concept part overstates the concept drift by that optimism")
    return out


def _fmt(v, places: int = 2, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:{'+' if signed else ''},.{places}f}"


def _span(cells: list[Cell]) -> str:
    starts = sorted(c.start for c in cells if c.start is not None)
    if not starts:
        return ""
    return f" from the window starting {starts[0]:%Y-%m-%d}"


def _since(inv: Investigation, kind: str, cells: list[Cell]) -> str:
    """' since 2025-06-14' from the earliest dated change of ``kind`` among the groups
    of ``cells`` (see :func:`analysis.attribution.testing.date_changes`), else the
    first flagged window's start."""
    groups = {c.segment for c in cells}
    dated = sorted(cp["since"] for cp in inv.change_points
                   if cp["kind"] == kind and cp["segment"] in groups)
    if not dated:
        return _span(cells)
    since = pd.Timestamp(dated[0])
    return f" since {since:%Y-%m-%d}" + (f" {since:%H:00}" if since.hour else "")


def _names(features: list[dict], limit: int = 8) -> str:
    names = [f["feature"] for f in features]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def verdict_text(inv: Investigation) -> str:
    """Plain-language verdict an analyst can paste into a postmortem."""
    p = inv.problem
    reasons = inv.judged.get("reasons", {})
    if inv.verdict == "not_judged":
        return (f"Not judged: {reasons.get('data')}. Neither the inputs (P(x)) nor the "
                "relationship to the target (P(y|x)) could be tested.")
    parts = []
    def groups(kind: str) -> tuple[list[str], list[Cell]]:
        """The groups whose cells show ``kind``; [ALL] when only all groups together do."""
        hit = [c for c in inv.cells if c.segment != ALL and c.verdict in (kind, "both")]
        if not hit:
            hit = [c for c in inv.cells if c.segment == ALL and c.verdict in (kind, "both")]
        return sorted({c.segment for c in hit}), hit

    data_groups, data_cells = groups("data")
    concept_groups, concept_cells = groups("concept")
    who = lambda g: "" if g == [ALL] or not p.segment else f" in {p.segment} {', '.join(g)}"  # noqa
    concept_reason = reasons.get("concept") or "no labels"
    if inv.verdict == "none":
        if inv.judged["concept"]:
            parts.append("No drift found: neither the inputs (P(x)) nor, where labels exist, "
                         "the relationship to the target (P(y|x)) changed beyond noise in any "
                         "judged window or group.")
        else:
            parts.append("No data drift found: the inputs (P(x)) did not change beyond noise "
                         "in any judged window or group.")
    if data_groups:
        roots = [f["feature"] for f in inv.drifted_features if f.get("role") == "root cause"]
        parts.append(f"Data drift (P(x) changed){who(data_groups)}{_since(inv, 'data', data_cells)}"
                     + (f": {_names(inv.drifted_features)}" if inv.drifted_features else "")
                     + (f" (root cause: {', '.join(roots)})" if roots and len(inv.drifted_features) > 1 else "")
                     + ".")
    if concept_groups:
        names = ", ".join(f["feature"] for f in inv.concept_features[:3])
        parts.append(f"Concept drift (P(y|x) changed){who(concept_groups)}{_since(inv, 'concept', concept_cells)}"
                     + (f", along {names}" if names else "") + ".")
    elif inv.judged["concept"] and inv.verdict != "none":
        parts.append("The relationship between inputs and target (P(y|x)) did not change "
                     "beyond noise.")
    d = inv.decomposition
    if d is not None and d["reference"]["value"] is not None:
        label = METRICS[p.metric]
        k = decimals_for(d["reference"]["value"])
        part = lambda key: (f"{_fmt(d[key]['value'], k, True)} [{_fmt(d[key]['low'], k, True)}, "  # noqa: E731
                            f"{_fmt(d[key]['high'], k, True)}]")
        rest = (f"concept drift for {part('concept_part')}" if inv.judged["concept"] else
                f"the rest, {part('concept_part')}, is not explained by the inputs' shift "
                "(not tested as concept drift)")
        parts.append(
            f"Over the production period the {label} went from {_fmt(d['reference']['value'], k)} "
            f"(reference) to {_fmt(d['realized']['value'], k)}; data drift accounts for "
            f"{part('data_part')} and {rest} (95% intervals).")
    if not inv.judged["concept"]:
        parts.append(f"Concept drift (P(y|x)) was not judged: {concept_reason}.")
    total, judged = inv.judged.get("total_cells", 0), inv.judged.get("cells", 0)
    if judged < total:
        parts.append(f"{total - judged} of {total} window x group cells had too few rows to "
                     "judge (see the notes).")
    return " ".join(parts)
