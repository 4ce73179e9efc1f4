"""Which cells are tested, and in what order: windows first, then groups.

Level one holds every window's all-groups cell and each group's sequence of windows
(:mod:`analysis.attribution.series`); a group's cell in a window is examined (its
feature tests run and its tests enter the second Holm family) only when its window or
its group was flagged at level one. A cell that is not examined keeps its cheap
statistics (AUC, PSI, the concept estimates) for the pages but adds no test, so a
dataset with many groups does not pay a multiplicity cost for windows that show nothing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.attribution import series
from analysis.attribution.cells import (Cell, CellRows, decompose_cell, examine, holm_step,
                                        judge_concept, judge_data, settle)
from analysis.attribution.domain import SharedDomain, group_pi
from analysis.attribution.encoding import GroupCodes
from analysis.attribution.problem import ALL, MIN_ROWS, Problem
from analysis.attribution.samples import Side
from analysis.attribution.windows import Windows
from analysis.monitoring.cbpe import estimate_from_confidence


class CellJudge:
    """Judges cells of one investigation: the sides, the shared domain model, the bins
    and the user's model's full-table loss levels."""

    def __init__(self, p: Problem, ref: Side, win: Side, domain: SharedDomain, bins: dict,
                 windows: Windows, levels, groups: GroupCodes,
                 confidence: np.ndarray | None = None):
        self.p, self.ref, self.win, self.domain, self.bins = p, ref, win, domain, bins
        self.windows, self.levels, self.groups = windows, levels, groups
        self._window_rows: tuple[int, np.ndarray] = (-1, np.zeros(0, dtype=np.int64))
        width = len(groups.names)
        keys = groups.cell_keys(windows.of)
        # production rows per window x group, counted once
        self._cell_rows = np.bincount(keys[keys >= 0], minlength=len(windows.starts) * width
                                      ).reshape(-1, width)
        self.confidence = confidence   # CBPE: each production row's chance of being right
        self.segments = sorted(set(ref.segment) | set(win.segment)) if p.segment else []

    def cell_rows(self, w: int, segment: str) -> int:
        """How many production rows window ``w`` holds of ``segment`` (ALL: of all)."""
        if segment == ALL:
            return int(self._cell_rows[w].sum())
        code = self.groups.code(segment)
        return int(self._cell_rows[w, code]) if code >= 0 else 0

    def full_rows(self, w: int) -> np.ndarray:
        """Every production row of window ``w`` (the last window's kept: its cells are
        judged one after the other)."""
        if self._window_rows[0] != w:
            self._window_rows = (w, np.flatnonzero(self.windows.of == w))
        return self._window_rows[1]

    def cell(self, w: int, segment: str, examined: bool) -> Cell | None:
        """The cell of window ``w`` and ``segment`` (ALL: every group), judged; None when
        the window holds no row of the group."""
        in_full = self.cell_rows(w, segment)
        if in_full == 0:
            return None
        cell = Cell(segment, self.windows.start(w), self.windows.end(w), in_full, _window=w)
        if self.confidence is not None:
            full_rows = self.full_rows(w)
            cell.estimated = estimate_from_confidence(
                self.confidence[full_rows][self.groups.member(segment, full_rows)]).to_dict()
        sample = np.flatnonzero(self.win.window == w)
        in_ref = np.ones(len(self.ref.frame), bool) if segment == ALL else self.ref.segment == segment
        in_win = np.ones(sample.size, bool) if segment == ALL else self.win.segment[sample] == segment
        new_group = segment != ALL and not in_ref.any()
        if new_group:
            cell.notes.append(f"no reference rows for {self.p.segment} = {segment}: a new group, "
                              "judged against the whole reference")
            in_ref = np.ones(len(self.ref.frame), bool)
        if in_win.sum() < MIN_ROWS:
            cell.notes.append(f"{int(in_win.sum())} rows: too few to judge (at least "
                              f"{MIN_ROWS} needed)")
            cell.data = {"judged": False, "reason": "rows"}
            cell.concept = {"judged": False, "reason": "rows"}
            return cell
        rows = self._rows(w, segment, sample, in_ref, in_win, new_group)
        self._judge(cell, rows, examined)
        return cell

    def _rows(self, w, segment, sample, in_ref, in_win, new_group) -> CellRows:
        d = self.domain
        score_ref, score_win = d.ref_score(w), d.prod_score[sample]
        pi_ref, pi_win = d.pi(score_ref, w), d.pi(score_win, w)
        by_segment = segment != ALL and not new_group
        if by_segment:
            pi_ref = group_pi(pi_ref, in_ref.mean(), in_win.mean())
            pi_win = group_pi(pi_win, in_ref.mean(), in_win.mean())
        anchors = None if self.levels is None else self.levels.of(
            segment if by_segment else ALL, segment, w)
        r, s = np.flatnonzero(in_ref), sample[in_win]
        return CellRows(r, s, score_ref[r], score_win[in_win], d.ref_fold[r],
                        d.prod_fold[s], pi_ref[r], pi_win[in_win], anchors)

    def _judge(self, cell: Cell, rows: CellRows, examined: bool) -> None:
        p = self.p
        judge_data(cell, p, self.ref, self.win, rows, self.bins, examined)
        judge_concept(cell, p, self.ref, self.win, rows, examined)
        if p.has_model and self.ref.model and cell.concept.get("reason") != "labels":
            decompose_cell(cell, p, self.ref, self.win, rows)
        cell._where = {"rows": rows}


def judge_all(judge: CellJudge, say=lambda _m: None) -> tuple[list[Cell], list[series.SeriesTest]]:
    """Every cell, tested in two levels (see the module docstring); returns the cells
    (window by window, all groups first) and the sequence tests."""
    n = len(judge.windows.starts)
    by_window: list[list[Cell]] = []
    for w in range(n):
        start = judge.windows.start(w)
        say(("all production" if start is None else f"window {start:%Y-%m-%d %H:%M}")
            + f" ({w + 1} of {n}): judging its cells")
        cells = [judge.cell(w, ALL, examined=True)]
        cells += [judge.cell(w, g, examined=False) for g in judge.segments]
        by_window.append([c for c in cells if c is not None])
    say("testing each group's windows as a sequence (gradual drift)")
    tests = []
    for segment in [ALL] + judge.segments:
        run = [c for cells in by_window for c in cells if c.segment == segment]
        tests += [t for t in (series.data_series(segment, run), series.concept_series(segment, run))
                  if t is not None]
    level_one = [c for cells in by_window for c in cells if c.segment == ALL]
    holm_step(level_one, extra=tests)
    flagged_windows = {c._window for c in level_one
                       if c.data.get("auc_flagged") or _any_feature(c) or _concept_hit(c)}
    flagged_windows |= {c._window for t in tests if t.flagged and t.segment == ALL
                        for c in t.cells[t.split:]}
    flagged_groups = {t.segment for t in tests if t.flagged and t.segment != ALL}
    examined = [c for cells in by_window for c in cells
                if c.segment != ALL and c.data.get("judged")
                and (c._window in flagged_windows or c.segment in flagged_groups)]
    for c in examined:
        examine(c, judge.p, judge.ref, judge.win, c._where["rows"], judge.bins)
    holm_step(examined)
    all_cells = [c for cells in by_window for c in cells]
    for t in tests:
        series.mark(t)
    settle(all_cells)
    return all_cells, tests


def _any_feature(c: Cell) -> bool:
    return any(f.get("drifted") for f in c.data.get("features", {}).values())


def _concept_hit(c: Cell) -> bool:
    return any(c.concept.get(f"{k}_flagged") for k in ("loss", "bias", "slope"))



def date_changes(judge: CellJudge, cells: list[Cell]) -> list[dict]:
    """When each group's drift began, finer than its windows: for the first flagged
    cell of each group and kind, the CUSUM change point (:func:`series.change_point`) of
    the per-row evidence over that window and the one before it, after the reference as
    the known baseline. Data: the domain model's out-of-fold score with every row placed
    in the flagged window (so the window's own effect does not mark its boundary);
    concept: the reference model's adjusted loss. Dated to the next finer unit."""
    if judge.windows.stamps is None:
        return []
    out = []
    for kind in ("data", "concept"):
        for segment in [ALL] + judge.segments:
            first = next((c for c in cells if c.segment == segment
                          and c.verdict in (kind, "both")), None)
            if first is None:
                continue
            found = _change_in(judge, first, kind)
            if found is not None:
                unit = series.FINER[judge.windows.unit]
                out.append({"segment": segment, "kind": kind, "unit": unit,
                            "since": series.floor_to(found, unit).isoformat(),
                            "window": None if first.start is None else first.start.isoformat()})
    return out


def _change_in(judge: CellJudge, cell: Cell, kind: str):
    """The time of the first changed row around ``cell`` (None: not enough evidence)."""
    w, win, ref, d = cell._window, judge.win, judge.ref, judge.domain
    span = np.isin(win.window, [w - 1, w])
    in_ref = np.ones(len(ref.frame), bool)
    if cell.segment != ALL:
        span &= win.segment == cell.segment
        if (ref.segment == cell.segment).any():
            in_ref = ref.segment == cell.segment
    rows = np.flatnonzero(span)
    if rows.size < 2:
        return None
    stamps = judge.windows.stamps[win.position[rows]]
    order = np.argsort(stamps, kind="stable")
    rows, stamps = rows[order], stamps[order]
    if kind == "data":
        evidence = d.score_at(win.X[rows], d.prod_fold[rows], w)
        baseline = d.ref_score(w)[in_ref]
    else:
        if not win.model:
            return None
        evidence, baseline = win.model["loss_adj"][rows], ref.model["loss_adj"][in_ref]
    at = series.change_point(baseline, evidence)
    return None if at is None else pd.Timestamp(stamps[at])
