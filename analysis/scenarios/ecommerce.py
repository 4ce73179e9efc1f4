"""The e-commerce scenario: a recommender whose feature store can fail, request by request.

A recommender answers about 1,000 requests per second. Each request looks up six
features of the user in a feature store, the model scores and shows one item, and the
user clicks or not. :class:`EcommerceSimulator` produces these events as a
``pyarrow.Table`` (one row per request, :func:`event_schema`), seeded, for any window of
time, with faults (:class:`Fault`) switched on and off at chosen instants.

The mechanism, for a request at time ``t`` (hour of day ``h``, UTC) in segment ``g``:

* **Traffic.** Requests per second are Poisson with mean
  ``rate(t) = rate * load(t)``, ``load(t) = 1 + 0.35 sin(2 pi (h - 13) / 24)``: lowest
  at 07:00, highest at 19:00 (:data:`TRAFFIC_AMPLITUDE`, :data:`PHASE_HOUR`).
* **User.** The segment is drawn with :data:`SEGMENT_SHARES`; the user's true attributes
  are ``z_k ~ N(0, 1)``, one per feature ``k`` (:data:`FEATURES`).
* **Feature store.** The value served for ``k`` was computed ``a_k`` seconds ago,
  ``a_k ~ Exponential(mean REFRESH_S[k])``. An attribute drifts over time, so the value
  computed then is an old version of ``z_k``, correlated ``rho_k = exp(-a_k / DECAY_S[k])``
  with today's, and it is measured with noise of sd ``NOISE_SD[k]``::

      x_k = rho_k z_k + sqrt(1 - rho_k^2 + NOISE_SD[k]^2) xi_k,    xi_k ~ N(0, 1)

  (``sqrt(1 - rho^2) eps + noise`` of the two independent normals folded into one).
  A lookup returns nothing with probability :data:`MISS_RATE` ``[k]``; the value and its
  age are then null. Lookup latency is lognormal, ``L = 8 ms * load(t) * exp(0.4 u)``,
  ``u ~ N(0, 1)`` (slower under load; :data:`LATENCY_MEDIAN_MS`, :data:`LATENCY_SIGMA`).
* **Model.** Its estimate of ``z_k`` is ``zhat_k = x_k`` (0 when null). The item it shows
  fits the user as well as the estimates let it; the click logit is::

      logit = BASE_LOGIT + SEGMENT_LOGIT[g] + 0.12 sin(2 pi (h - 13) / 24)
              + MATCH_SCALE * sum_k WEIGHTS[k] zhat_k z_k
              - max(0, L - 100 ms) / 300 ms

  and ``clicked ~ Bernoulli(sigmoid(logit))``. The match term's mean is
  ``MATCH_SCALE * sum_k WEIGHTS[k] rho_k``: a null value (``zhat_k = 0``) removes feature
  ``k``'s share of it, a stale one (small ``rho_k``) shrinks it, both in proportion to
  ``WEIGHTS[k]``. That is why a fault of a barely used feature (``weather_index``) barely
  moves the click-through rate, and no fault has a click-through rate written into it.
* **Score.** The model's predicted click probability uses only what it sees (neither
  ``z`` nor the hour nor the latency): ``E[zhat_k z_k | zhat_k] = r_k zhat_k^2`` for a
  fresh value, ``r_k = 1 / (1 + NOISE_SD[k]^2)``, so::

      score = sigmoid(BASE_LOGIT + SCORE_CALIBRATION + SEGMENT_LOGIT[g]
                      + MATCH_SCALE * sum_k WEIGHTS[k] r_k zhat_k^2)

  :data:`SCORE_CALIBRATION` makes the mean score equal the fault-free click-through
  rate (5.0 %). ``item_id`` is a deterministic function of the segment and the rounded
  estimates of the four most used features (:func:`item_ids`).

Faults (:func:`parse_fault` reads them from strings such as ``null:user_affinity:0.3``)
act on a share of the requests between ``at`` and ``until``: a null or stale feature,
slow lookups, a changed segment mix, or a broken model version that recommends without
features and scores 1 logit too high. Their effect on clicks follows from the rules above;
:meth:`EcommerceSimulator.expected_ctr` measures it and
:meth:`EcommerceSimulator.share_for_drop` finds the share that lowers the click-through
rate by a chosen relative amount.

Determinism: second ``s`` after ``start`` draws everything from its own generator,
``np.random.default_rng([seed, 0, s])`` (a fault's choice of requests from
``[seed, 0, s, key]``), so a window's events do not depend on how the time is cut into
calls (``events(a, c)`` equals ``events(a, b)`` followed by ``events(b, c)``), and the same
seed with and without a fault gives the same requests and the same click draws, which
differ only where the fault acts.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa

# --- features ---------------------------------------------------------------------------

FEATURES = ("user_affinity", "item_popularity", "recent_clicks", "price_sensitivity",
            "session_depth", "weather_index")
#: the model's weight of each feature in the match term (see the module docstring)
WEIGHTS = {"user_affinity": 1.2, "item_popularity": 0.8, "recent_clicks": 0.6,
           "price_sensitivity": 0.35, "session_depth": 0.15, "weather_index": 0.01}
#: sd of the feature store's measurement noise, in units of the attribute's sd
NOISE_SD = {"user_affinity": 0.5, "item_popularity": 0.4, "recent_clicks": 0.6,
            "price_sensitivity": 0.7, "session_depth": 0.5, "weather_index": 0.3}
#: mean age of a served value in seconds (how often the feature is recomputed)
REFRESH_S = {"user_affinity": 600.0, "item_popularity": 60.0, "recent_clicks": 30.0,
             "price_sensitivity": 300.0, "session_depth": 30.0, "weather_index": 600.0}
#: decay time of the attribute in seconds: a value ``a`` seconds old correlates
#: ``exp(-a / DECAY_S)`` with the present one
DECAY_S = {"user_affinity": 4 * 3600.0, "item_popularity": 3600.0, "recent_clicks": 3600.0,
           "price_sensitivity": 4 * 3600.0, "session_depth": 3600.0,
           "weather_index": 3 * 3600.0}
#: probability that a lookup returns nothing, fault-free
MISS_RATE = {"user_affinity": 0.002, "item_popularity": 0.001, "recent_clicks": 0.003,
             "price_sensitivity": 0.002, "session_depth": 0.003, "weather_index": 0.01}
#: number of features whose rounded estimates name the shown item (the most used ones)
ITEM_FEATURES = 4
#: the estimate is rounded to steps of 1/ITEM_RESOLUTION and clipped to +-ITEM_CLIP
ITEM_RESOLUTION = 2
ITEM_CLIP = 4

# --- users and clicks -------------------------------------------------------------------

SEGMENTS = ("new", "returning", "loyal", "deal_seeker")
SEGMENT_SHARES = {"new": 0.25, "returning": 0.40, "loyal": 0.20, "deal_seeker": 0.15}
#: logit offset of each segment's click-through rate (new users click least, loyal most)
SEGMENT_LOGIT = {"new": -0.40, "returning": 0.0, "loyal": 0.35, "deal_seeker": -0.15}
#: intercept of the click logit, tuned so that the fault-free click-through rate over a
#: day is 5.0 %
BASE_LOGIT = -4.38
#: scale ``c`` of the match term ``c * sum_k WEIGHTS[k] zhat_k z_k``; its fault-free mean
#: is about 1.06 logit, its sd about 0.83 (a product of normals: a long right tail, which
#: is why BASE_LOGIT sits well below logit(0.05) = -2.94)
MATCH_SCALE = 0.35
#: the model's intercept minus BASE_LOGIT: its estimate of the match term has less
#: spread than the true one, so it needs a larger intercept to predict the mean rate
SCORE_CALIBRATION = 0.028
#: amplitude of the daily wave of traffic (relative) and of the click logit
TRAFFIC_AMPLITUDE = 0.35
CLICK_AMPLITUDE = 0.12
#: ``sin(2 pi (h - PHASE_HOUR) / 24)``: zero at 13:00 UTC, peak at 19:00, trough at 07:00
PHASE_HOUR = 13.0

# --- latency ----------------------------------------------------------------------------

#: median lookup latency at average load (ms); it scales with load(t)
LATENCY_MEDIAN_MS = 8.0
#: sd of log latency
LATENCY_SIGMA = 0.4
#: pages slower than this lose clicks: penalty ``max(0, L - GRACE) / PER_LOGIT`` in logit
LATENCY_GRACE_MS = 100.0
LATENCY_PER_LOGIT_MS = 300.0

# --- faults -----------------------------------------------------------------------------

FAULT_KINDS = ("null", "stale", "latency", "segment_mix", "score")
#: default slow-down of a latency fault
LATENCY_FACTOR = 20.0
#: a stale value is this many hours older than usual, uniformly in the range
STALE_HOURS = (1.0, 6.0)
#: a broken model version scores this many logits too high
SCORE_SHIFT = 1.0

# --- ids --------------------------------------------------------------------------------

#: request ids are ``second * ID_STRIDE + rank within the second``
ID_STRIDE = 100_000
#: the largest ``rate`` accepted: at the evening peak (1.35 * rate) the Poisson count of
#: a second stays below ID_STRIDE by more than 20 sd, so ids never collide
MAX_RATE = 70_000.0

DEFAULT_START = datetime(2026, 11, 2, 0, 0)

_K = len(FEATURES)
_W = np.array([WEIGHTS[f] for f in FEATURES])
_SIGMA = np.array([NOISE_SD[f] for f in FEATURES])
_REFRESH = np.array([REFRESH_S[f] for f in FEATURES])
_DECAY = np.array([DECAY_S[f] for f in FEATURES])
_MISS = np.array([MISS_RATE[f] for f in FEATURES])
_SHRINK = 1.0 / (1.0 + _SIGMA ** 2)
_SEGMENT_LOGIT = np.array([SEGMENT_LOGIT[g] for g in SEGMENTS])
_EPOCH = datetime(1970, 1, 1)
_US = 1_000_000
_DAY_US = 86_400 * _US
# rows of the per-request normal draws: z, xi, latency (see _Draws)
_N_NORMAL = 2 * _K + 1
_EVENT_STREAM, _EXPECTED_STREAM = 0, 1
#: seconds drawn and computed together (bounds the memory of a long window)
_BLOCK_SECONDS = 60


def age_column(feature: str) -> str:
    return f"{feature}_age_s"


def event_schema() -> pa.Schema:
    """The columns of every event: one row per request."""
    features = []
    for f in FEATURES:
        features += [(f, pa.float64()), (age_column(f), pa.float64())]
    return pa.schema([("timestamp", pa.timestamp("us")), ("request_id", pa.int64()),
                      ("segment", pa.dictionary(pa.int8(), pa.string())), *features,
                      ("latency_ms", pa.float64()), ("score", pa.float64()),
                      ("item_id", pa.int64()), ("clicked", pa.int8())])


def _utc_naive(when: datetime) -> datetime:
    if not isinstance(when, datetime):
        raise ValueError(f"expected a datetime, got {when!r}")
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return when


def _to_us(when: datetime) -> int:
    """Microseconds since 1970-01-01 of a naive UTC datetime."""
    return (_utc_naive(when) - _EPOCH) // timedelta(microseconds=1)


def _wave(ts_us: np.ndarray | int) -> np.ndarray:
    """``sin(2 pi (h - PHASE_HOUR) / 24)`` with ``h`` the hour of day (UTC) of ``ts_us``."""
    hour = np.mod(ts_us, _DAY_US) / (3600.0 * _US)
    return np.sin(2.0 * np.pi * (hour - PHASE_HOUR) / 24.0)


def load(ts_us: np.ndarray | int) -> np.ndarray:
    """Traffic relative to its daily mean, ``1 + 0.35 sin(2 pi (h - 13) / 24)``."""
    return 1.0 + TRAFFIC_AMPLITUDE * _wave(ts_us)


def _cumulative(shares: np.ndarray) -> np.ndarray:
    cum = np.cumsum(shares)
    cum[-1] = 1.0  # a uniform below 1 always lands in a segment
    return cum


_BASE_CUM = _cumulative(np.array([SEGMENT_SHARES[g] for g in SEGMENTS]))


def _share(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    return value


@dataclass(frozen=True)
class Fault:
    """One injected fault, active for requests with ``at <= timestamp < until``.

    ``kind`` is one of :data:`FAULT_KINDS`:

    * ``null``: a ``share`` of the requests get feature ``target`` null (value and age);
    * ``stale``: a ``share`` get a value of ``target`` older by U(1 h, 6 h)
      (:data:`STALE_HOURS`), drawn by the staleness rule (``rho = exp(-age / DECAY_S)``);
    * ``latency``: a ``share`` get their lookup latency multiplied by ``factor``;
    * ``segment_mix``: the segment shares become ``mix`` (segment -> share) for the
      segments it names, the others rescaled to fill the rest (``share`` is 1);
    * ``score``: a ``share`` are served by a broken model version, which recommends
      without features (match term 0, as if all were null) and scores
      :data:`SCORE_SHIFT` logit too high.

    Datetimes are naive UTC (an aware one is converted). Which requests a fault hits
    depends on its kind and target, not on its share, so a smaller share hits a subset
    of the requests a larger one hits.
    """

    kind: str
    target: str | None
    share: float
    at: datetime
    until: datetime | None = None
    factor: float = LATENCY_FACTOR
    mix: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; kinds are "
                             f"{', '.join(FAULT_KINDS)}")
        if self.kind in ("null", "stale") and self.target not in FEATURES:
            raise ValueError(f"unknown feature {self.target!r} for a {self.kind} fault; "
                             f"features are {', '.join(FEATURES)}")
        if self.kind in ("latency", "score") and self.target is not None:
            raise ValueError(f"a {self.kind} fault has no target, got {self.target!r}")
        share = float(self.share)
        if not (0.0 < share <= 1.0):
            raise ValueError(f"share {self.share!r} outside (0, 1]")
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"latency factor {self.factor!r} must be a positive number")
        object.__setattr__(self, "share", share)
        object.__setattr__(self, "at", _utc_naive(self.at))
        if self.until is not None:
            until = _utc_naive(self.until)
            if until <= self.at:
                raise ValueError(f"until {until.isoformat()} is not after at "
                                 f"{self.at.isoformat()}")
            object.__setattr__(self, "until", until)
        if self.kind == "segment_mix":
            if share != 1.0:
                raise ValueError(f"a segment_mix fault applies to every request: share "
                                 f"must be 1, got {self.share!r}")
            mix = tuple((str(g), float(q)) for g, q in
                        (self.mix.items() if isinstance(self.mix, Mapping) else self.mix))
            _check_mix(mix)
            object.__setattr__(self, "mix", mix)
            object.__setattr__(self, "target", ",".join(g for g, _ in mix))
        elif self.mix:
            raise ValueError(f"only a segment_mix fault has a mix, not {self.kind}")

    @property
    def spec(self) -> str:
        """The fault as :func:`parse_fault` reads it."""
        if self.kind in ("null", "stale"):
            return f"{self.kind}:{self.target}:{self.share:.10g}"
        if self.kind == "latency":
            return f"latency:{self.share:.10g}:{self.factor:.10g}"
        if self.kind == "score":
            return f"score:{self.share:.10g}"
        return "segment_mix:" + ",".join(f"{g}={q:.10g}" for g, q in self.mix)

    def active(self, ts_us: np.ndarray) -> np.ndarray:
        """Which of the timestamps (microseconds since 1970) fall in the fault's window."""
        on = ts_us >= _to_us(self.at)
        if self.until is not None:
            on &= ts_us < _to_us(self.until)
        return on

    def segment_shares(self) -> dict[str, float]:
        """The segment shares while a segment_mix fault is active: the named segments
        get their shares, the others ``SEGMENT_SHARES[h] * (1 - sum named) / sum others``."""
        named = dict(self.mix)
        rest = 1.0 - sum(named.values())
        others = sum(SEGMENT_SHARES[g] for g in SEGMENTS if g not in named)
        return {g: named[g] if g in named else
                (SEGMENT_SHARES[g] * rest / others if others else 0.0) for g in SEGMENTS}

    @property
    def _stream(self) -> int:
        # requests are chosen by uniforms from a generator keyed by kind and target
        return zlib.crc32(f"{self.kind}:{self.target}".encode())

    def to_dict(self) -> dict:
        d = {"spec": self.spec, "kind": self.kind, "target": self.target,
             "share": self.share, "at": self.at.isoformat(),
             "until": self.until.isoformat() if self.until else None}
        if self.kind == "latency":
            d["factor"] = self.factor
        if self.kind == "segment_mix":
            d["segment_shares"] = self.segment_shares()
        return d


def _check_mix(mix: tuple[tuple[str, float], ...]) -> None:
    if not mix:
        raise ValueError("a segment_mix fault needs at least one segment=share")
    names = [g for g, _ in mix]
    for g, q in mix:
        if g not in SEGMENTS:
            raise ValueError(f"unknown segment {g!r}; segments are {', '.join(SEGMENTS)}")
        if not (0.0 <= q <= 1.0):
            raise ValueError(f"share {q!r} of segment {g!r} outside [0, 1]")
    if len(set(names)) < len(names):
        raise ValueError(f"segment named twice in {','.join(names)}")
    total = sum(q for _, q in mix)
    if total > 1.0 + 1e-9:
        raise ValueError(f"segment shares sum to {total:g}, more than 1")
    if len(names) == len(SEGMENTS) and abs(total - 1.0) > 1e-9:
        raise ValueError(f"all segments named but their shares sum to {total:g}, not 1")


def parse_fault(spec: str, at: datetime, until: datetime | None = None) -> Fault:
    """A :class:`Fault` from its string form.

    ``null:<feature>:<share>``, ``stale:<feature>:<share>``, ``latency:<share>[:<factor>]``,
    ``segment_mix:<segment>=<share>[,<segment>=<share>...]``, ``score:<share>``; shares
    in (0, 1] (a segment's share in [0, 1]). Raises ValueError naming what is wrong.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"bad fault spec {spec!r}: expected <kind>:..., kinds are "
                         f"{', '.join(FAULT_KINDS)}")
    kind, *parts = spec.strip().split(":")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r} in {spec!r}; kinds are "
                         f"{', '.join(FAULT_KINDS)}")
    usage = {"null": "null:<feature>:<share>", "stale": "stale:<feature>:<share>",
             "latency": "latency:<share>[:<factor>]", "score": "score:<share>",
             "segment_mix": "segment_mix:<segment>=<share>[,<segment>=<share>...]"}[kind]
    counts = {"null": (2,), "stale": (2,), "latency": (1, 2), "score": (1,),
              "segment_mix": (1,)}[kind]
    if len(parts) not in counts or any(not p for p in parts):
        raise ValueError(f"bad fault spec {spec!r}: expected {usage}")
    if kind in ("null", "stale"):
        feature, share = parts
        if feature not in FEATURES:
            raise ValueError(f"unknown feature {feature!r} in {spec!r}; features are "
                             f"{', '.join(FEATURES)}")
        return Fault(kind, feature, _share(share, "share"), at, until)
    if kind == "latency":
        factor = _share(parts[1], "latency factor") if len(parts) == 2 else LATENCY_FACTOR
        return Fault(kind, None, _share(parts[0], "share"), at, until, factor=factor)
    if kind == "score":
        return Fault(kind, None, _share(parts[0], "share"), at, until)
    mix = []
    for item in parts[0].split(","):
        name, eq, share = item.partition("=")
        if not eq or not name or not share:
            raise ValueError(f"bad fault spec {spec!r}: {item!r} is not <segment>=<share>; "
                             f"expected {usage}")
        mix.append((name.strip(), _share(share, f"share of segment {name.strip()!r}")))
    return Fault(kind, None, 1.0, at, until, mix=tuple(mix))


# --- the mechanism ----------------------------------------------------------------------

@dataclass
class _Draws:
    """The random numbers of ``n`` requests, one column per request."""

    normal: np.ndarray       # (2K + 1, n): z, xi, latency
    exponential: np.ndarray  # (K, n): ages in units of the mean refresh time
    uniform: np.ndarray      # (3, n): time in the second, segment, click
    miss: np.ndarray         # (K, n), float32: lookup misses (rates of 1e-3 need no more)

    @classmethod
    def empty(cls, n: int) -> "_Draws":
        return cls(np.empty((_N_NORMAL, n)), np.empty((_K, n)), np.empty((3, n)),
                   np.empty((_K, n), np.float32))

    @classmethod
    def sample(cls, rng: np.random.Generator, n: int) -> "_Draws":
        draws = cls.empty(n)
        draws.fill(rng, 0, n)
        return draws

    def fill(self, rng: np.random.Generator, lo: int, hi: int) -> None:
        """Draw requests ``[lo, hi)`` from ``rng``, always in the same order, straight
        into place (no copies of a window's draws)."""
        for row in self.normal:
            rng.standard_normal(out=row[lo:hi])
        for row in self.exponential:
            rng.standard_exponential(out=row[lo:hi])
        for row in self.uniform:
            rng.random(out=row[lo:hi])
        for row in self.miss:
            rng.random(dtype=np.float32, out=row[lo:hi])

    def take(self, lo: int, hi: int) -> "_Draws":
        return _Draws(self.normal[:, lo:hi], self.exponential[:, lo:hi],
                      self.uniform[:, lo:hi], self.miss[:, lo:hi])


def _weighted_sum(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``sum_k weights[k] rows[k]``, added row by row: a matrix product's rounding depends
    on the array's length and alignment, and an event must not change with the window
    it is computed in."""
    total = weights[0] * rows[0]
    for k in range(1, len(weights)):
        total += weights[k] * rows[k]
    return total


def item_ids(segment: np.ndarray, zhat: np.ndarray) -> np.ndarray:
    """The shown item: the segment and the estimates of the first ITEM_FEATURES features,
    each rounded to halves and clipped to [-4, 4] (9 levels), as one base-9 number:
    ``item = segment * 9^4 + sum_j (round(2 zhat_j) + 4) * 9^j``."""
    levels = 2 * ITEM_CLIP + 1
    digits = np.clip(np.rint(ITEM_RESOLUTION * zhat[:ITEM_FEATURES]), -ITEM_CLIP, ITEM_CLIP)
    item = _weighted_sum(levels ** np.arange(ITEM_FEATURES),
                         (digits + ITEM_CLIP).astype(np.int64))
    return segment.astype(np.int64) * levels ** ITEM_FEATURES + item


def _respond(ts_us: np.ndarray, draws: _Draws, faults: tuple[Fault, ...],
             fault_uniforms: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    """Everything about ``n`` requests at ``ts_us`` given their random numbers: the
    columns of :func:`event_schema` (features as (K, n) arrays with a null mask) and the
    click probability ``p``. Implements the rules of the module docstring."""
    normal, uniform = draws.normal, draws.uniform
    n = ts_us.size
    wave = _wave(ts_us)
    live = [(f, f.active(ts_us)) for f in faults]
    live = [(f, on) for f, on in live if on.any()]

    def chosen(fault: Fault, on: np.ndarray) -> np.ndarray:
        return on & (fault_uniforms[fault._stream][0] < fault.share)

    segment = np.minimum(np.searchsorted(_BASE_CUM, uniform[1], side="right"),
                         len(SEGMENTS) - 1).astype(np.int8)
    for f, on in live:
        if f.kind == "segment_mix":
            shares = f.segment_shares()
            cum = _cumulative(np.array([shares[g] for g in SEGMENTS]))
            segment[on] = np.minimum(np.searchsorted(cum, uniform[1][on], side="right"),
                                     len(SEGMENTS) - 1)

    z, xi = normal[:_K], normal[_K:2 * _K]
    age = draws.exponential * _REFRESH[:, None]
    missing = draws.miss < _MISS[:, None]
    broken = np.zeros(n, bool)
    latency = (LATENCY_MEDIAN_MS * (1.0 + TRAFFIC_AMPLITUDE * wave)
               * np.exp(LATENCY_SIGMA * normal[2 * _K]))
    for f, on in live:
        if f.kind == "segment_mix":
            continue
        hit = chosen(f, on)
        if f.kind == "null":
            missing[FEATURES.index(f.target)] |= hit
        elif f.kind == "stale":
            k = FEATURES.index(f.target)
            lo, hi = STALE_HOURS
            extra = 3600.0 * (lo + (hi - lo) * fault_uniforms[f._stream][1])
            age[k] = np.where(hit, age[k] + extra, age[k])
        elif f.kind == "latency":
            latency = np.where(hit, latency * f.factor, latency)
        elif f.kind == "score":
            broken |= hit

    rho = np.exp(-age / _DECAY[:, None])
    x = rho * z + np.sqrt(1.0 - rho * rho + (_SIGMA ** 2)[:, None]) * xi
    zhat = np.where(missing, 0.0, x)
    match = MATCH_SCALE * _weighted_sum(_W, zhat * z)
    seg_logit = _SEGMENT_LOGIT[segment]
    if broken.any():
        match[broken] = 0.0
    penalty = np.maximum(latency - LATENCY_GRACE_MS, 0.0) / LATENCY_PER_LOGIT_MS
    logit = BASE_LOGIT + seg_logit + CLICK_AMPLITUDE * wave + match - penalty
    p = 1.0 / (1.0 + np.exp(-logit))

    score_logit = (BASE_LOGIT + SCORE_CALIBRATION + seg_logit
                   + _weighted_sum(MATCH_SCALE * _W * _SHRINK, zhat * zhat))
    shown = zhat[:ITEM_FEATURES]
    if broken.any():
        score_logit[broken] += SCORE_SHIFT
        shown = np.where(broken, 0.0, shown)
    return {"segment": segment, "x": x, "age": age, "missing": missing,
            "latency_ms": latency, "score": 1.0 / (1.0 + np.exp(-score_logit)),
            "item_id": item_ids(segment, shown), "p": p,
            "clicked": (uniform[2] < p).astype(np.int8)}


def _table(ts_us: np.ndarray, ids: np.ndarray, out: dict[str, np.ndarray]) -> pa.Table:
    columns = [pa.array(ts_us, pa.timestamp("us")), pa.array(ids, pa.int64()),
               pa.DictionaryArray.from_arrays(pa.array(out["segment"], pa.int8()),
                                              pa.array(SEGMENTS, pa.string()))]
    for k in range(_K):
        mask = out["missing"][k]
        columns += [pa.array(out["x"][k], pa.float64(), mask=mask),
                    pa.array(out["age"][k], pa.float64(), mask=mask)]
    columns += [pa.array(out["latency_ms"], pa.float64()), pa.array(out["score"], pa.float64()),
                pa.array(out["item_id"], pa.int64()), pa.array(out["clicked"], pa.int8())]
    return pa.Table.from_arrays(columns, schema=event_schema())


@lru_cache(maxsize=2)
def _expected_draws(seed: int, n: int) -> _Draws:
    # the same requests for every call with this seed and n: expected rates under
    # different faults or shares differ only by the faults (common random numbers)
    return _Draws.sample(np.random.default_rng([seed, _EXPECTED_STREAM]), n)


@lru_cache(maxsize=8)
def _expected_uniforms(seed: int, n: int, stream: int) -> np.ndarray:
    return np.random.default_rng([seed, _EXPECTED_STREAM, stream]).random((2, n))


class EcommerceSimulator:
    """Seeded events of the recommender (see the module docstring for the mechanism).

    Parameters
    ----------
    seed : int
        Everything random derives from it (and the second, see the module docstring).
    rate : float
        Mean requests per second over a day; at hour ``h`` the mean is
        ``rate * (1 + 0.35 sin(2 pi (h - 13) / 24))``. At most :data:`MAX_RATE`.
    start : datetime
        Second 0 of the simulation (naive UTC); events exist from here on, and request
        ids count seconds from here.
    faults : iterable of Fault
        Faults active in the events, each within its own window.
    """

    def __init__(self, seed: int = 0, rate: float = 1000.0, start: datetime = DEFAULT_START,
                 faults: Iterable[Fault] = ()):
        if not (0 < rate <= MAX_RATE):
            raise ValueError(f"rate {rate!r} outside (0, {MAX_RATE:g}] requests per second")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed, self.rate = int(seed), float(rate)
        self.start = _utc_naive(start)
        self.faults = tuple(faults)
        for f in self.faults:
            if not isinstance(f, Fault):
                raise ValueError(f"expected Fault objects, got {f!r}")
        self._start_us = _to_us(self.start)

    # --- events -------------------------------------------------------------------------

    def events(self, t0: datetime, t1: datetime) -> pa.Table:
        """All requests with ``t0 <= timestamp < t1``, sorted by time (:func:`event_schema`)."""
        lo_us, hi_us = _to_us(t0) - self._start_us, _to_us(t1) - self._start_us
        if lo_us < 0:
            raise ValueError(f"t0 {_utc_naive(t0).isoformat()} is before the simulation "
                             f"start {self.start.isoformat()}")
        if hi_us <= lo_us:
            return event_schema().empty_table()
        first, last = lo_us // _US, -(-hi_us // _US)  # seconds [first, last)
        tables = []
        for block in range(first, last, _BLOCK_SECONDS):
            table = self._block(block, min(block + _BLOCK_SECONDS, last), lo_us, hi_us)
            if table.num_rows:
                tables.append(table)
        if not tables:
            return event_schema().empty_table()
        return pa.concat_tables(tables)

    def minutes(self, t0: datetime, t1: datetime) -> Iterator[pa.Table]:
        """The events of ``[t0, t1)`` one calendar minute at a time (the first and last
        may be partial)."""
        t0, t1 = _utc_naive(t0), _utc_naive(t1)
        edge = t0
        while edge < t1:
            nxt = min(edge.replace(second=0, microsecond=0) + timedelta(minutes=1), t1)
            yield self.events(edge, nxt)
            edge = nxt

    def _block(self, first: int, last: int, lo_us: int, hi_us: int) -> pa.Table:
        """Seconds ``[first, last)`` after start, cut to ``[lo_us, hi_us)`` (relative µs)."""
        seconds = np.arange(first, last)
        middle = self._start_us + seconds * _US + _US // 2
        means = self.rate * load(middle)
        # a fault's uniforms are drawn only in blocks it overlaps (each second's stream
        # is its own, so skipping one changes nothing else)
        block_lo, block_hi = self._start_us + first * _US, self._start_us + last * _US
        streams = sorted({f._stream for f in self.faults if f.kind != "segment_mix"
                          and _to_us(f.at) < block_hi
                          and (f.until is None or _to_us(f.until) > block_lo)})
        rngs = [np.random.default_rng([self.seed, _EVENT_STREAM, s]) for s in seconds.tolist()]
        counts = np.array([rng.poisson(m) for rng, m in zip(rngs, means)], np.int64)
        if counts.max(initial=0) >= ID_STRIDE:
            raise RuntimeError(f"{counts.max()} requests in one second: ids would collide")
        ends = np.cumsum(counts)
        draws = _Draws.empty(int(ends[-1]) if ends.size else 0)
        uniforms = {key: np.empty((2, draws.uniform.shape[1])) for key in streams}
        for s, rng, lo, hi in zip(seconds.tolist(), rngs, (ends - counts).tolist(),
                                  ends.tolist()):
            draws.fill(rng, lo, hi)
            for key, u in uniforms.items():
                frng = np.random.default_rng([self.seed, _EVENT_STREAM, s, key])
                frng.random(out=u[0, lo:hi])
                frng.random(out=u[1, lo:hi])
        # time in the block in µs; sorting keeps each request in its second, since a
        # second's times lie in [i * 1e6, (i + 1) * 1e6)
        second_of = np.repeat(np.arange(seconds.size), counts)
        offset = second_of * _US + (draws.uniform[0] * _US).astype(np.int64)
        offset.sort()
        rel_us = first * _US + offset
        rank = np.arange(offset.size) - np.repeat(ends - counts, counts)
        ids = (first + second_of) * ID_STRIDE + rank
        lo, hi = np.searchsorted(rel_us, [lo_us, hi_us])
        ts_us = self._start_us + rel_us[lo:hi]
        uniforms = {key: u[:, lo:hi] for key, u in uniforms.items()}
        live = tuple(f for f in self.faults if f.kind == "segment_mix" or f._stream in uniforms)
        out = _respond(ts_us, draws.take(lo, hi), live, uniforms)
        return _table(ts_us, ids[lo:hi], out)

    # --- expectations -------------------------------------------------------------------

    def expected_ctr(self, when: datetime, faults: Iterable[Fault] | None = None,
                     n: int = 200_000, seed: int | None = None) -> float:
        """Monte-Carlo click-through rate of requests at the instant ``when``.

        The mean of the click probability ``sigmoid(logit)`` over ``n`` simulated
        requests, all at ``when``, under ``faults`` (default: the simulator's; ``()`` for
        none), each applied if ``when`` is in its window. Every call with the same
        ``seed`` (default: the simulator's) and ``n`` uses the same requests, so two
        calls differ only by the faults: their ratio is precise well beyond the
        ``sqrt(p (1 - p) / n)`` noise of one rate.
        """
        faults = self.faults if faults is None else tuple(faults)
        seed = self.seed if seed is None else int(seed)
        draws = _expected_draws(seed, int(n))
        uniforms = {f._stream: _expected_uniforms(seed, int(n), f._stream)
                    for f in faults if f.kind != "segment_mix"}
        ts_us = np.full(int(n), _to_us(when), np.int64)
        return float(_respond(ts_us, draws, faults, uniforms)["p"].mean())

    def share_for_drop(self, kind: str, target: str | None, drop: float, when: datetime,
                       factor: float = LATENCY_FACTOR, tol: float = 1e-3,
                       n: int = 200_000) -> float:
        """The share of a ``kind`` fault on ``target`` that lowers the expected
        click-through rate at ``when`` by ``drop`` relative to the fault-free rate.

        Bisection on the share in (0, 1] of ``1 - expected_ctr(fault) / expected_ctr()``
        (which grows with the share) until the bracket is narrower than ``tol``; returns
        the upper end. ``kind`` is null, stale (``target`` a feature), latency (with
        ``factor``) or score (``target`` None). Raises ValueError when even share 1
        cannot lower the rate by ``drop`` (e.g. any fault of ``weather_index``).
        """
        if kind not in ("null", "stale", "latency", "score"):
            raise ValueError(f"share_for_drop handles null, stale, latency and score "
                             f"faults, not {kind!r}")
        if not (0.0 < drop < 1.0):
            raise ValueError(f"drop {drop!r} outside (0, 1)")
        base = self.expected_ctr(when, (), n=n)

        def relative_drop(share: float) -> float:
            fault = Fault(kind, target, share, when, factor=factor)
            return 1.0 - self.expected_ctr(when, (fault,), n=n) / base

        most = relative_drop(1.0)
        if most < drop:
            name = f"{kind}:{target}" if target else kind
            raise ValueError(f"a {name} fault lowers the expected click-through rate by at "
                             f"most {most:.2%} (share 1), less than the {drop:.2%} asked")
        lo, hi = 0.0, 1.0
        while hi - lo > tol:
            mid = 0.5 * (lo + hi)
            if relative_drop(mid) < drop:
                lo = mid
            else:
                hi = mid
        return hi


def ground_truth(faults: Iterable[Fault], simulator: EcommerceSimulator | None = None,
                 n: int = 200_000) -> dict:
    """What the faults do, as a JSON-able dict.

    Per fault: its kind, target, share, window, the columns it changes directly (besides
    ``clicked``, which changes through the mechanism), and the expected click-through
    rate at its ``at`` instant without faults and with that fault alone, with the
    relative change ``ctr_with / ctr_without - 1`` (:meth:`EcommerceSimulator.expected_ctr`).
    """
    sim = simulator or EcommerceSimulator()
    direct = {"null": lambda f: [f.target, age_column(f.target)],
              "stale": lambda f: [age_column(f.target)],
              "latency": lambda f: ["latency_ms"],
              "segment_mix": lambda f: ["segment"],
              "score": lambda f: ["score", "item_id"]}
    rows = []
    for f in faults:
        before = sim.expected_ctr(f.at, (), n=n)
        during = sim.expected_ctr(f.at, (f,), n=n)
        rows.append({**f.to_dict(), "direct_columns": direct[f.kind](f),
                     "expected_ctr_without": round(before, 6),
                     "expected_ctr_with": round(during, 6),
                     "expected_relative_ctr_change": round(during / before - 1.0, 6)})
    return {"scenario": "ecommerce", "seed": sim.seed, "rate": sim.rate,
            "start": sim.start.isoformat(), "faults": rows}
