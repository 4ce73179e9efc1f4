"""Which upstream signal explains a change in CTR: aligned in time and explained in size.

For a CTR change dated ``start`` and detected at ``stop``, each upstream signal's
requests are put in categories (a feature's values fresh, stale or null; latency and
score in the reference's quantile groups; the segments themselves for the mix), and the
minutes ``[start - BEFORE, start)`` are compared with ``[start, stop]``.

Explained in size
-----------------
Within each segment ``s`` (so a change of the mix is not read as a feature's), the
signal's categories ``k`` have shares ``pi_b[s, k]`` before and ``pi_a[s, k]`` after and a
CTR ``q[s, k]`` after. The part of the CTR change the signal accounts for is the mix
term of the usual decomposition of a change in a weighted mean::

    explained = sum_s w_s sum_k (pi_a[s, k] - pi_b[s, k]) * (q[s, k] - qbar_s)

with ``w_s`` the segments' shares after and ``qbar_s`` the segment's CTR after (centring
changes nothing, as the share changes sum to 0, but it shrinks the standard error). It
is measured on the requests themselves: a feature that went null for 30 % of requests
explains a drop only if those requests click less than the fresh ones of their segment.
Its standard error treats shares and CTRs as independent binomial estimates::

    se^2 = sum_s w_s^2 sum_k [d_k^2 q_k (1 - q_k) / N_a,k
                              + (q_k - qbar)^2 (pi_a,k (1 - pi_a,k) / N_a + pi_b,k (1 - pi_b,k) / N_b)]

For the segment mix the categories are the segments and there is no stratification.

Ranking
-------
1. A signal *explains* the change when its explained part has the change's sign, is at
   least :data:`MIN_SHARE` of it and is :data:`MIN_Z` standard errors from 0. Those are
   ranked by the share they explain.
2. The model's score is computed from the features and the segment: when one of those
   explains the change, the score's own shift is their consequence and it is not ranked.
3. When no signal explains the change, signals whose own share changed significantly
   (``|z| >= MIN_Z_CHANGE``) and visibly (by a quarter of its level or by 2 points) in
   the same minutes are ranked by that ``z``: aligned in time only, which the
   evidence says.
Alignment in time is built in: a signal counts only through the change of its shares
between the minutes before the CTR change and the minutes from it to its detection, so
a signal that changed hours earlier (and stayed) or only after the detection is not
ranked. The CTR change's own date is only known to a few minutes when the change is
small, which is why the comparison is not cut finer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analysis.streaming.events import LATENCY_SIGNAL, SCORE_SIGNAL, SEGMENT_MIX
from analysis.streaming.minutes import MinuteCube, Reference, categories

#: minutes before the change compared with the minutes after it
BEFORE = 30
#: least share of the CTR change a signal must account for to explain it
MIN_SHARE = 0.2
#: least z of the explained part
MIN_Z = 3.0
#: least z of a signal's own change to be ranked on time alone
MIN_Z_CHANGE = 5.0
#: least change of a signal's own share to be ranked on time alone: this share of its
#: level before, or this absolute amount
MIN_CHANGE_RELATIVE, MIN_CHANGE_ABSOLUTE = 0.25, 0.02
#: fewest requests in a category for its own CTR; fewer: the category's CTR before
MIN_CATEGORY = 30


@dataclass
class Evidence:
    """What one upstream signal says about a CTR change (all rates are shares)."""

    signal: str
    explained: float              # CTR change the signal accounts for (absolute)
    explained_se: float
    share_of_change: float        # explained / observed change
    affected: str                 # the signal's affected category ("null or stale", ...)
    affected_before: float        # share of requests in it before
    affected_after: float         # and after
    change_z: float               # z of that share's change
    ctr_affected: float           # CTR after, of affected requests (segment-weighted)
    ctr_unaffected: float         # and of the others
    alarm_start: int | None = None
    role: str = ""                # "explains", "aligned", "downstream" or ""
    categories: dict = field(default_factory=dict)

    @property
    def explained_z(self) -> float:
        return self.explained / self.explained_se if self.explained_se > 0 else 0.0


def affected_mask(signal: str, names: list[str]) -> np.ndarray:
    """Which categories count as 'affected' for the headline numbers."""
    if signal == LATENCY_SIGNAL:
        return np.array([n.startswith(">") for n in names])
    if signal == SCORE_SIGNAL:
        return np.array([i < 5 for i in range(len(names))])   # at or below the median
    return np.array([n in ("stale", "null") for n in names])


def affected_label(signal: str) -> str:
    return {LATENCY_SIGNAL: "slower than the reference's p99",
            SCORE_SIGNAL: "scored at or below the reference's median"}.get(signal, "null or stale")


def _mix_term(nb, na, ca, cb):
    """Explained part and its standard error; arrays are (segments, categories)."""
    tot_b = nb.sum(1, keepdims=True)
    tot_a = na.sum(1, keepdims=True)
    pi_b = np.divide(nb, tot_b, out=np.zeros_like(nb), where=tot_b > 0)
    pi_a = np.divide(na, tot_a, out=np.zeros_like(na), where=tot_a > 0)
    q_after = np.divide(ca, na, out=np.zeros_like(ca), where=na > 0)
    q_before = np.divide(cb, nb, out=np.zeros_like(cb), where=nb > 0)
    seg_q = np.divide(ca.sum(1, keepdims=True), tot_a, out=np.zeros_like(tot_a), where=tot_a > 0)
    q = np.where(na >= MIN_CATEGORY, q_after, np.where(nb >= MIN_CATEGORY, q_before, seg_q))
    w = (tot_a / tot_a.sum()).ravel() if tot_a.sum() else np.zeros(len(tot_a))
    d = pi_a - pi_b
    centred = q - seg_q
    explained = float(np.sum(w * np.sum(d * centred, axis=1)))
    var_q = np.divide(q * (1 - q), na, out=np.zeros_like(q), where=na > 0)
    var_pa = np.divide(pi_a * (1 - pi_a), tot_a, out=np.zeros_like(pi_a), where=tot_a > 0)
    var_pb = np.divide(pi_b * (1 - pi_b), tot_b, out=np.zeros_like(pi_b), where=tot_b > 0)
    var = float(np.sum(w ** 2 * np.sum(d ** 2 * var_q + centred ** 2 * (var_pa + var_pb), axis=1)))
    return explained, math.sqrt(var), pi_b, pi_a, q, w


def _share_change(pi_b, pi_a, nb, na, mask, w):
    """Segment-weighted share of ``mask`` categories before and after, and the z of the
    difference."""
    tb, ta = nb.sum(1), na.sum(1)
    sb = pi_b[:, mask].sum(1)
    sa = pi_a[:, mask].sum(1)
    before, after = float(np.sum(w * sb)), float(np.sum(w * sa))
    var = np.sum(w ** 2 * (np.divide(sb * (1 - sb), tb, out=np.zeros_like(sb), where=tb > 0)
                           + np.divide(sa * (1 - sa), ta, out=np.zeros_like(sa), where=ta > 0)))
    z = (after - before) / math.sqrt(var) if var > 0 else (0.0 if after == before else math.inf)
    return before, after, float(z)


def _weighted_ctr(q, pi_a, mask, w) -> float:
    share = pi_a[:, mask].sum(1)
    ctr = np.divide((pi_a[:, mask] * q[:, mask]).sum(1), share,
                    out=np.full(len(share), np.nan), where=share > 0)
    ok = np.isfinite(ctr) & (w > 0)
    return float(np.sum(w[ok] * ctr[ok]) / w[ok].sum()) if ok.any() else float("nan")


def signal_evidence(cube: MinuteCube, reference: Reference, signal: str, start: int,
                    stop: int, change: float) -> Evidence:
    """The evidence of one signal for a CTR change of ``change`` (absolute) dated
    ``start`` and seen up to minute ``stop`` (inclusive)."""
    lo = max(0, start - BEFORE)
    if signal == SEGMENT_MIX:
        n, c = cube.totals()
        nb, na = n[lo:start].sum(0)[None, :], n[start:stop + 1].sum(0)[None, :]
        cb, ca = c[lo:start].sum(0)[None, :], c[start:stop + 1].sum(0)[None, :]
        names = list(cube.segments)
    else:
        n3, c3, names = categories(cube, reference, signal)
        nb, na = n3[lo:start].sum(0), n3[start:stop + 1].sum(0)
        cb, ca = c3[lo:start].sum(0), c3[start:stop + 1].sum(0)
    nb, na, cb, ca = (np.asarray(a, float) for a in (nb, na, cb, ca))
    explained, se, pi_b, pi_a, q, w = _mix_term(nb, na, ca, cb)
    if signal == SEGMENT_MIX:
        # the segment whose share moved most stands for the mix in the headline numbers
        moved = np.abs(pi_a - pi_b)[0]
        mask = moved == moved.max()
        label = f"segment {names[int(np.argmax(moved))]}"
    else:
        mask = affected_mask(signal, names)
        label = affected_label(signal)
    before, after, z = _share_change(pi_b, pi_a, nb, na, mask, w)
    if signal == SEGMENT_MIX:
        ctr_in, ctr_out = float(q[0, mask].mean()), float(
            np.sum(pi_a[0, ~mask] * q[0, ~mask]) / max(pi_a[0, ~mask].sum(), 1e-12))
    else:
        ctr_in, ctr_out = _weighted_ctr(q, pi_a, mask, w), _weighted_ctr(q, pi_a, ~mask, w)
    share = explained / change if change else 0.0
    cats = {name: {"share_before": float(np.sum(w * pi_b[:, k])) if signal != SEGMENT_MIX else float(pi_b[0, k]),
                   "share_after": float(np.sum(w * pi_a[:, k])) if signal != SEGMENT_MIX else float(pi_a[0, k]),
                   "ctr_after": float(np.sum(w * q[:, k])) if signal != SEGMENT_MIX else float(q[0, k])}
            for k, name in enumerate(names)}
    return Evidence(signal, explained, se, float(share), label, before, after, z,
                    ctr_in, ctr_out, categories=cats)


def _moved(e: Evidence) -> bool:
    """Whether a signal's own share changed, significantly and by a visible amount."""
    size = abs(e.affected_after - e.affected_before)
    return (abs(e.change_z) >= MIN_Z_CHANGE
            and (size >= MIN_CHANGE_RELATIVE * e.affected_before or size >= MIN_CHANGE_ABSOLUTE))


def rank_causes(cube: MinuteCube, reference: Reference, start: int, stop: int,
                change: float, alarm_starts: dict[str, int] | None = None
                ) -> tuple[list[str], list[Evidence]]:
    """Rank the upstream signals for a CTR change (see the module docstring).

    ``alarm_starts``: the start minute of each signal's own alarm raised by ``stop``.
    Returns the ranked signal names and every signal's evidence (ranked ones first)."""
    alarm_starts = alarm_starts or {}
    signals = [*cube.features, LATENCY_SIGNAL, SEGMENT_MIX, SCORE_SIGNAL]
    evidence = []
    for name in signals:
        ev = signal_evidence(cube, reference, name, start, stop, change)
        ev.alarm_start = alarm_starts.get(name)
        evidence.append(ev)
    explains = [e for e in evidence if change != 0
                and e.share_of_change >= MIN_SHARE and e.explained_z * np.sign(change) >= MIN_Z]
    for e in explains:
        e.role = "explains"
    if any(e.signal != SCORE_SIGNAL for e in explains):
        for e in explains:
            if e.signal == SCORE_SIGNAL:
                e.role = "downstream"
        explains = [e for e in explains if e.signal != SCORE_SIGNAL]
    if explains:
        ranked = sorted(explains, key=lambda e: -e.share_of_change)
    else:
        ranked = sorted((e for e in evidence if _moved(e)),
                        key=lambda e: -abs(e.change_z))
        for e in ranked:
            e.role = "aligned"
    names = [e.signal for e in ranked]
    rest = [e for e in evidence if e.signal not in names]
    return names, ranked + rest
