"""Feature attribution: which drifted features are root causes, and where the concept
changed (a tree on the disagreement between a retrained and the reference model)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold
from sklearn.tree import DecisionTreeRegressor

from analysis.attribution.cells import Cell
from analysis.attribution.domain import Quantizer, _classifier
from analysis.attribution.encoding import Encoder, GroupCodes, _sample, segments_of
from analysis.attribution.problem import ALL, MIN_ROWS, Problem
from analysis.attribution.reference_model import fit_reference_model
from analysis.attribution.samples import Side
from analysis.drift import CATEGORICAL

# rows a side for the root-cause classifiers (1 + k of them, 2 folds), and rows per
# concept-flagged group for the concept retraining and the disagreement trees: their
# rankings settle long before
FEATURE_ROWS = 10_000


def disagreement_tree(X: np.ndarray, disagreement: np.ndarray, weights: np.ndarray,
                      names: list[str], max_depth: int = 3) -> tuple[DecisionTreeRegressor, str]:
    """A shallow tree on the (weighted) disagreement between the retrained and the
    reference model, and the rule of the leaf carrying the most of it
    (weight x |mean disagreement|)."""
    leaf = max(20, len(X) // 50)
    tree = DecisionTreeRegressor(max_depth=max_depth, min_samples_leaf=leaf, random_state=0)
    tree.fit(X, disagreement, sample_weight=weights)
    t = tree.tree_
    leaves = np.flatnonzero(t.children_left == -1)
    mass = t.weighted_n_node_samples[leaves] * np.abs(t.value[leaves, 0, 0])
    target = leaves[int(np.argmax(mass))]
    # walk from the root to the chosen leaf
    parent = {}
    for node in range(t.node_count):
        for child, side in ((t.children_left[node], "le"), (t.children_right[node], "gt")):
            if child != -1:
                parent[child] = (node, side)
    path = []
    node = target
    while node in parent:
        up, side = parent[node]
        path.append((names[t.feature[up]], side, float(t.threshold[up])))
        node = up
    rule = describe_path(reversed(path)) or "everywhere"
    return tree, f"{rule}: mean disagreement {t.value[target, 0, 0]:+.4g}"


def describe_path(path) -> str:
    """Readable conjunction of tree splits: (name, 'le'|'gt', threshold) steps, where an
    indicator column is named 'column = level'. Bounds on one feature are merged."""
    lower: dict[str, float] = {}
    upper: dict[str, float] = {}
    levels: dict[str, tuple[set, set]] = {}
    order: list[str] = []
    for name, side, thr in path:
        col = name.split(" = ", 1)[0]
        if col not in order:
            order.append(col)
        if " = " in name:
            is_, not_ = levels.setdefault(col, (set(), set()))
            (not_ if side == "le" else is_).add(name.split(" = ", 1)[1])
        elif side == "le":
            upper[name] = min(upper.get(name, math.inf), thr)
        else:
            lower[name] = max(lower.get(name, -math.inf), thr)
    parts = []
    for col in order:
        if col in levels:
            is_, not_ = levels[col]
            if is_:
                parts.append(f"{col} = {', '.join(sorted(is_))}")
            elif not_:
                parts.append(f"{col} not in {{{', '.join(sorted(not_))}}}")
            continue
        lo, hi = lower.get(col), upper.get(col)
        if lo is not None and hi is not None:
            parts.append(f"{lo:.4g} < {col} <= {hi:.4g}")
        elif hi is not None:
            parts.append(f"{col} <= {hi:.4g}")
        elif lo is not None:
            parts.append(f"{col} > {lo:.4g}")
    return " and ".join(parts)


def _concept_regions(cells: list[Cell], p: Problem, encoder: Encoder, g_model, seed: int,
                     win: Side) -> list[dict]:
    """Where the concept changed: retrain once on the labelled rows of every
    concept-flagged cell (2-fold cross-fitted; the group is one of its inputs), then per
    group (all groups together being one) fit a shallow tree on the disagreement with the
    reference model over that group's flagged rows, and record its rule on each of its
    cells; rank the features by the trees' importances (weighted by the cells' rows).
    One retraining per investigation, however many groups and windows it spans."""
    flagged = [c for c in cells if c.concept.get("flagged") and c._where]
    if not flagged or g_model is None:
        return []
    segments = list(dict.fromkeys(c.segment for c in flagged))
    by_row = _retrained_disagreement(flagged, len(segments), p, encoder, g_model, seed, win)
    if by_row is None:
        return []
    importance: dict[str, float] = {}
    total_rows = 0
    for segment in segments:
        group = [c for c in flagged if c.segment == segment]
        found = _disagreement_rule(group, by_row, encoder, win)
        if found is None:
            continue
        rule, disagreement, by_column = found
        rows = sum(c.rows for c in group)
        for c in group:
            c.concept["where"] = rule
            c.concept["retrained_disagreement"] = disagreement
            c.concept["feature_importance"] = by_column
        for col, imp in by_column.items():
            if col in p.features:
                importance[col] = importance.get(col, 0.0) + imp * rows
        total_rows += rows
    if not total_rows:
        return []
    ranked = sorted(((k, v / total_rows) for k, v in importance.items()), key=lambda kv: -kv[1])
    return [{"feature": k, "importance": v,
             "cells": sum(1 for c in flagged if c.concept.get("feature_importance", {}).get(k, 0) > 0.1)}
            for k, v in ranked if v >= 0.1]


def _retrained_disagreement(flagged: list[Cell], n_groups: int, p: Problem, encoder: Encoder,
                            g_model, seed: int, win: Side) -> np.ndarray | None:
    """For every sampled production row (NaN for those not retrained on), the
    disagreement between a model retrained on the labelled rows of the flagged cells
    (out of fold: no row scores itself) and the reference model: the prediction's
    difference (regression), the positive class's probability's (two classes), or the
    total variation distance ``0.5 * sum_k |new_k - old_k|`` over the classes both know.
    At most ``FEATURE_ROWS`` rows per flagged group, at random: a shallow tree draws the
    rule long before more. None when too few rows carry a label."""
    rows = np.unique(np.concatenate([c._where["rows"].win for c in flagged]))
    rows = rows[_sample(rows.size, FEATURE_ROWS * n_groups, np.random.default_rng(seed + 3))]
    target = win.frame[p.target].iloc[rows]
    labelled = target.notna().to_numpy()
    rows, target = rows[labelled], target[labelled]
    if rows.size < 2 * MIN_ROWS:
        return None
    Xw = win.X[rows]
    retrained, new = fit_reference_model(Xw, target, p.task, encoder.categorical_mask, seed,
                                         n_folds=2)
    old = g_model.predict(Xw, np.arange(len(Xw)) % len(g_model.models))
    out = np.full(len(win.frame), np.nan)
    if p.task == "regression":
        out[rows] = new - old
    elif g_model.positive_index is not None and retrained.positive_index is not None \
            and list(retrained.classes) == list(g_model.classes):
        out[rows] = new[:, retrained.positive_index] - old[:, g_model.positive_index]
    else:
        common = [i for i, k in enumerate(g_model.classes) if k in set(retrained.classes)]
        idx = pd.Index(retrained.classes).get_indexer(g_model.classes[common])
        out[rows] = 0.5 * np.abs(new[:, idx] - old[:, common]).sum(axis=1)
    return out


def _disagreement_rule(group: list[Cell], disagreement: np.ndarray, encoder: Encoder,
                       win: Side) -> tuple[str, float, dict[str, float]] | None:
    """The disagreement tree's rule, the mean disagreement and the features' importances
    over ``group``'s retrained rows, each weighted by ``1 - pi`` of its cell (None: too
    few of its rows were retrained on)."""
    rows = np.concatenate([c._where["rows"].win for c in group])
    pi_win = np.concatenate([c._where["rows"].pi_win for c in group])
    d = disagreement[rows]
    kept = ~np.isnan(d)
    if kept.sum() < 2 * MIN_ROWS:
        return None
    rows, d, weight = rows[kept], d[kept], 1 - pi_win[kept]
    design, names = encoder.one_hot(win.frame.iloc[rows])
    tree, rule = disagreement_tree(design, d, weight, names)
    by_column: dict[str, float] = {}
    for name, imp in zip(names, tree.feature_importances_):
        col = name.split(" = ", 1)[0]
        by_column[col] = by_column.get(col, 0.0) + float(imp)
    ranked = {k: v for k, v in sorted(by_column.items(), key=lambda kv: -kv[1]) if v > 0}
    return rule, float(np.average(np.abs(d), weights=weight)), ranked


def _drifted_features(cells: list[Cell], p: Problem, reference: pd.DataFrame,
                      take, seed: int, window_of: np.ndarray,
                      groups: GroupCodes) -> list[dict]:
    """Features that drifted in some data-flagged cell, root causes first.

    A feature is a root cause when its distribution *given the other drifted features*
    changed: leaving it out of a domain classifier that sees the others makes the
    classifier's held-out log loss (fitted on one stratified half, scored on the other)
    worse by at least 0.005 nats and 5% of what all of them together gain over guessing. A feature that only moved with others (its
    conditional distribution unchanged) adds nothing once they are known. Ties keep
    the order of the strongest PSI.
    """
    stats_by: dict[str, dict] = {}
    for c in cells:
        if not c.data.get("flagged"):
            continue
        for col, f in c.data["features"].items():
            if not f.get("drifted"):
                continue
            s = stats_by.setdefault(col, {"feature": col, "max_psi": 0.0, "cells": 0,
                                          "first_window": None, "segments": set()})
            s["max_psi"] = max(s["max_psi"], f["psi"])
            s["cells"] += 1
            s["segments"].add(c.segment)
            if c.start is not None and (s["first_window"] is None or c.start.isoformat() < s["first_window"]):
                s["first_window"] = c.start.isoformat()
    if not stats_by:
        return []
    ranked = sorted(stats_by.values(), key=lambda s: -s["max_psi"])
    contribution, roots = _conditional_contributions(
        cells, p, reference, take, [s["feature"] for s in ranked][:12], seed, window_of,
        groups)
    for s in ranked:
        s["segments"] = sorted(s["segments"])
        s["conditional_contribution"] = contribution.get(s["feature"])
        s["role"] = "root cause" if s["feature"] in roots else "moved with others"
    if not roots:
        # the drifted features move together so tightly that none adds anything given
        # the others: the strongest one leads, and says so
        ranked[0]["role"] = "root cause (undetermined: the drifted features move together)"
    ranked.sort(key=lambda s: (not s["role"].startswith("root cause"),
                               -(s["conditional_contribution"] or 0.0)
                               if s["role"] == "root cause" else 0.0,
                               -s["max_psi"]))
    return ranked


def _conditional_contributions(cells: list[Cell], p: Problem, reference: pd.DataFrame,
                               take, features: list[str], seed: int,
                               window_of: np.ndarray, groups: GroupCodes
                               ) -> tuple[dict[str, float], list[str]]:
    """Leave-one-feature-out log-loss increase of a domain classifier over the drifted
    rows (production rows of the data-flagged cells, read with ``take(positions)``,
    against reference rows of the same
    segments; segment an input when there is one), and the features that are roots."""
    rng = np.random.default_rng(seed + 1)
    if len(features) < 2:
        return {}, list(features)
    flagged = [c for c in cells if c.data.get("flagged")]
    width = len(groups.names)
    flagged_keys = {c._window * width + code for c in flagged
                    for code in (range(width) if c.segment == ALL else [groups.code(c.segment)])
                    if code >= 0}
    seg_names = {c.segment for c in flagged}
    mask = np.isin(groups.cell_keys(window_of), list(flagged_keys))
    if ALL in seg_names or p.segment is None:
        ref_mask = np.ones(len(reference), bool)
    else:
        ref_mask = np.isin(segments_of(reference, p.segment), sorted(seg_names))
    cap = FEATURE_ROWS
    prod_rows = np.flatnonzero(mask)
    prod_rows = prod_rows[_sample(prod_rows.size, cap, rng)]
    ref_rows = np.flatnonzero(ref_mask)
    ref_rows = ref_rows[_sample(ref_rows.size, cap, rng)]
    frame = pd.concat([reference.iloc[ref_rows].reset_index(drop=True),
                       take(prod_rows).reset_index(drop=True)], ignore_index=True)
    y = np.r_[np.zeros(ref_rows.size, int), np.ones(prod_rows.size, int)]
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    base_cols = {c: p.features[c] for c in features}
    if p.segment is not None:
        base_cols[p.segment] = CATEGORICAL

    # one stratified half to fit, the other to score: every classifier is scored on the
    # same held-out rows, so their differences are what leaving a feature out costs
    train, test = next(StratifiedKFold(2, shuffle=True, random_state=seed).split(frame, y))

    def cv_logloss(cols: dict) -> float:
        enc = Encoder([frame], cols)
        X = enc.transform(frame)
        X = Quantizer.fit(X, enc.categorical_mask).transform(X)
        model = _classifier(enc.categorical_mask, seed, len(train)).fit(X[train], y[train])
        prob = np.clip(model.predict_proba(X[test])[:, 1], 1e-6, 1 - 1e-6)
        yt = y[test]
        return float(np.average(-(yt * np.log(prob) + (1 - yt) * np.log(1 - prob)),
                                weights=weight[test]))

    full = cv_logloss(base_cols)
    gain = math.log(2) - full
    contribution = {col: cv_logloss({k: v for k, v in base_cols.items() if k != col}) - full
                    for col in features}
    roots = [col for col, c in contribution.items() if c >= max(0.005, 0.05 * gain)]
    return contribution, roots
