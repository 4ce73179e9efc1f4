"""Label-free monitoring of a dataset's production rows per time window, for a live page.

For the latest ``last`` windows (minute, hour or day) of production, each against the
reference:

* **input drift** per feature: the drift table's default test per column
  (:class:`analysis.drift.ReferenceProfile`; Iris' 150 reference rows get KS), p-values
  Holm-adjusted over every window and feature shown, distances judged against their
  noise level, fewer than 50 rows not judged;
* **prediction drift**: the prediction column compared with the reference's the same
  way (class shares: chi-square or Jensen-Shannon), Holm-adjusted over the windows;
* **multivariate drift**: the domain classifier's AUC with a 95 % interval
  (:mod:`analysis.monitoring.multivariate`);
* **estimated accuracy** without labels (:mod:`analysis.monitoring.cbpe`), when the
  model's class probabilities are stored (the ``probabilities`` role, or a prediction
  column holding a two-class probability);
* **realized accuracy** (MAE for a regression) on the rows whose label has arrived, with
  the label coverage: labels in the snapshots' target column or arrived later
  (:meth:`analysis.store.Store.labels`, joined on the ``id`` column).

Windows whose rows did not change since the last call are not recomputed
(:class:`LiveMonitor` keeps their results), so a page refreshing every few seconds
computes only the newest window. A window holds at most :data:`WINDOW_SAMPLE` rows for
the tests and estimates (a deterministic sample by id); its counts are exact.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from analysis import noise
from analysis.attribution import label_text, prediction_kind
from analysis.drift import (CATEGORICAL, NUMERIC, ColumnReference, ReferenceProfile,
                            holm_adjusted, verdict_of)
from analysis.monitoring import cbpe as cb
from analysis.monitoring.multivariate import ALPHA, AUC_MIN, domain_auc
from analysis.queries import Filters, _where, load_frame, parquet_source, quote
from analysis.stats import holm
from analysis.store import Store

UNITS = ("minute", "hour", "day")
WINDOW_SAMPLE = 20_000
MIN_ROWS = noise.MIN_ROWS
_STEP = {"minute": pd.Timedelta(minutes=1), "hour": pd.Timedelta(hours=1),
         "day": pd.Timedelta(days=1)}
_FLOOR = {"minute": "min", "hour": "h", "day": "D"}
LABEL = "__label"


@dataclass
class LiveSpec:
    """What the monitor reads of a dataset."""

    features: dict[str, str]
    timestamp: str | None
    prediction: str | None
    target: str | None
    id: str | None
    task: str
    classes: list[str] = field(default_factory=list)        # with probabilities
    proba_columns: list[str] = field(default_factory=list)
    positive: str | None = None   # a prediction column holding this class's probability
    late_labels: bool = False

    @property
    def has_probabilities(self) -> bool:
        return bool(self.proba_columns) or self.positive is not None


@dataclass
class LiveReport:
    unit: str
    windows: pd.DataFrame
    features: pd.DataFrame
    shares: pd.DataFrame
    reference: dict
    notes: list[str]
    production_rows: int
    last_timestamp: datetime | None
    spec: LiveSpec


def reference_key(store: Store, dataset: str) -> str:
    """Changes when the dataset's reference or roles change (a monitor is built per key)."""
    return store.dataset(dataset).created_at + "|" + "|".join(
        s.id for s in store.snapshots(dataset, "reference"))


class LiveMonitor:
    """Per-window monitoring of one dataset (see the module docstring). Build it once
    per reference (the page caches it); :meth:`report` is cheap to call repeatedly."""

    def __init__(self, store: Store, dataset: str, seed: int = 0):
        self.store, self.dataset, self.seed = store, dataset, seed
        self.reference_key = reference_key(store, dataset)
        info = store.dataset(dataset)
        roles = info.roles
        self.notes: list[str] = []
        columns = [c for c in roles.columns if c not in roles.extra]
        ref = load_frame(store, dataset, "reference", columns)
        self.reference_frame = ref
        spec = LiveSpec(dict(roles.features), roles.timestamp, roles.prediction, roles.target,
                        roles.id, info.task)
        spec.late_labels = bool(roles.id and roles.target)
        if roles.probabilities:
            spec.classes = list(roles.probabilities)
            spec.proba_columns = list(roles.probabilities.values())
        elif (info.task == "classification" and roles.prediction and roles.target
              and len(ref) and pd.api.types.is_numeric_dtype(ref[roles.prediction])):
            kind, positive = prediction_kind(ref[roles.target], ref[roles.prediction])
            if kind == "probability":
                spec.positive = str(positive)
        self.spec = spec
        self._lock = threading.Lock()
        self._cache: dict[tuple, dict] = {}
        self.profile = ReferenceProfile(ref, spec.features) if len(ref) else None
        self.prediction_reference = None
        if spec.prediction and len(ref):
            kind = self._prediction_kind(ref[spec.prediction])
            self.prediction_reference = ColumnReference(self._prediction_values(ref), kind,
                                                        spec.prediction)
        self.cbpe = cb.CBPE()
        self.reference = {"rows": len(ref), "accuracy": None, "estimated_accuracy": None,
                          "shares": {}, "calibrated": False, "mae": None}
        if len(ref):
            self._fit_reference(ref)

    # -- reference ---------------------------------------------------------------------
    def _prediction_kind(self, values: pd.Series) -> str:
        if self.spec.positive is not None or (pd.api.types.is_numeric_dtype(values)
                                              and self.spec.task == "regression"):
            return NUMERIC
        return CATEGORICAL

    def _prediction_values(self, frame: pd.DataFrame) -> pd.Series:
        values = frame[self.spec.prediction]
        if self._prediction_kind(self.reference_frame[self.spec.prediction]) == CATEGORICAL:
            return pd.Series(label_text(values), index=frame.index, name=values.name)
        return values

    def _proba(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities rows x classes, predicted class index or None)."""
        s = self.spec
        if s.proba_columns:
            P = frame[s.proba_columns].apply(pd.to_numeric, errors="coerce").to_numpy(float)
            predicted = None
            if s.prediction:
                text = label_text(frame[s.prediction])
                index = {c: i for i, c in enumerate(s.classes)}
                predicted = np.array([index.get(t, -1) for t in text])
            return P, predicted
        p = pd.to_numeric(frame[s.prediction], errors="coerce").to_numpy(float)
        return cb.binary_matrix(p), None

    def _label_index(self, labels: pd.Series) -> np.ndarray:
        s = self.spec
        text = label_text(labels)
        if s.proba_columns:
            index = {c: i for i, c in enumerate(s.classes)}
        else:
            index = {s.positive: 1}
        out = np.array([np.nan if t is None else index.get(t, 0 if s.positive else -1)
                        for t in text], dtype=float)
        return out

    def _correct(self, frame: pd.DataFrame) -> np.ndarray:
        """Per labelled row, 1.0 when the model was right (NaN where no label)."""
        s = self.spec
        labels = frame[LABEL]
        known = labels.notna().to_numpy()
        out = np.full(len(frame), np.nan)
        if s.positive is not None:
            p = pd.to_numeric(frame[s.prediction], errors="coerce").to_numpy(float)
            said = p >= 0.5
            truth = label_text(labels) == s.positive
            out[known] = (said == truth)[known]
        elif s.prediction:
            out[known] = (label_text(labels) == label_text(frame[s.prediction]))[known]
        return out

    def _fit_reference(self, ref: pd.DataFrame) -> None:
        s, r = self.spec, self.reference
        if s.prediction and s.task == "classification":
            shares = pd.Series(self._prediction_values(ref)).value_counts(normalize=True)
            if s.positive is None:
                r["shares"] = {str(k): float(v) for k, v in shares.items()}
        if s.target and s.prediction and s.task == "classification":
            frame = ref.assign(**{LABEL: ref[s.target]})
            correct = self._correct(frame)
            r["accuracy"] = cb.realized_accuracy(correct).to_dict()
        elif s.target and s.prediction:
            err = (pd.to_numeric(ref[s.target], errors="coerce")
                   - pd.to_numeric(ref[s.prediction], errors="coerce")).abs()
            r["mae"] = float(err.mean()) if err.notna().any() else None
        if s.has_probabilities:
            P, predicted = self._proba(ref)
            if s.target:
                self.cbpe.fit(P, self._label_index(ref[s.target]))
            r["calibrated"] = self.cbpe.calibrated
            r["estimated_accuracy"] = self.cbpe.estimate(P, predicted).to_dict()
            if not self.cbpe.calibrated:
                self.notes.append(
                    "the probabilities are taken as calibrated as they are: the reference "
                    f"has fewer than {cb.MIN_CALIBRATION_ROWS} labelled rows to calibrate them")

    # -- production --------------------------------------------------------------------
    def _source(self, filters: Filters | None) -> tuple[str, list] | None:
        """SQL of the production rows (with late labels joined as ``__label``)."""
        s = self.spec
        files = self.store.files(self.dataset, "production")
        if not files or s.timestamp is None:
            return None
        where, params = _where(self.store, self.dataset, "production",
                               Filters(segments=dict(filters.segments)) if filters else None)
        label = quote(s.target) if s.target else "NULL"
        join = ""
        label_files = [p.path for p in self.store.labels(self.dataset)] if s.late_labels else []
        if label_files:
            join = (f" LEFT JOIN (SELECT {quote(s.id)} AS __id, any_value({quote(s.target)}) "
                    f"AS __late FROM {parquet_source(label_files)} GROUP BY 1) l "
                    f"ON p.{quote(s.id)} = l.__id")
            label = f"coalesce(p.{quote(s.target)}, l.__late)"
        sql = f"SELECT p.*, {label} AS {LABEL} FROM {parquet_source(files)} p{join}{where}"
        return sql, params

    def report(self, unit: str = "minute", last: int = 30, filters: Filters | None = None,
               multivariate: bool = True) -> LiveReport:
        """The latest ``last`` windows of ``unit`` (see the module docstring)."""
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        with self._lock:
            return self._report(unit, int(last), filters, multivariate)

    def _report(self, unit: str, last: int, filters: Filters | None,
                multivariate: bool) -> LiveReport:
        s = self.spec
        notes = list(self.notes)
        source = self._source(filters)
        empty = LiveReport(unit, pd.DataFrame(columns=WINDOW_COLUMNS), pd.DataFrame(),
                           pd.DataFrame(), self.reference, notes, 0, None, s)
        if source is None:
            if s.timestamp is None:
                notes.append("the dataset has no timestamp column: no windows over time")
            return empty
        sql, params = source
        ts = quote(s.timestamp)
        w = f"date_trunc('{unit}', {ts})"
        with duckdb.connect() as con:
            total, latest = con.execute(f"SELECT count(*), max({ts}) FROM ({sql})",
                                        params).fetchone()
            if not total or latest is None:
                return empty
            start = pd.Timestamp(latest).floor(_FLOOR[unit]) - (last - 1) * _STEP[unit]
            counts = con.execute(
                f"SELECT {w} AS window_start, count(*) AS rows, count({LABEL}) AS labelled "
                f"FROM ({sql}) WHERE {ts} >= ? GROUP BY 1 ORDER BY 1",
                [*params, start.to_pydatetime()]).df()
            key_of = {pd.Timestamp(r.window_start): (unit, pd.Timestamp(r.window_start), int(r.rows),
                                                     int(r.labelled), _filters_key(filters))
                      for r in counts.itertuples(index=False)}
            todo = [k for k in key_of.values() if k not in self._cache]
            if todo:
                lo = min(k[1] for k in todo)
                order = f"hash({quote(s.id)})" if s.id else f"hash({ts})"
                rows = con.execute(
                    f"SELECT {w} AS __window, * FROM ({sql}) WHERE {ts} >= ? "
                    f"QUALIFY row_number() OVER (PARTITION BY {w} ORDER BY {order}) <= "
                    f"{WINDOW_SAMPLE}", [*params, lo.to_pydatetime()]).df()
                for key in todo:
                    frame = rows[pd.to_datetime(rows["__window"]) == key[1]]
                    self._cache[key] = self._window(frame.reset_index(drop=True), key)
        live = [self._cache[key_of[t]] for t in sorted(key_of)]
        self._trim(set(key_of.values()))
        report = self._assemble(unit, live, notes)
        report.production_rows = int(total)
        report.last_timestamp = pd.Timestamp(latest).to_pydatetime()
        return report

    def _trim(self, keep: set) -> None:
        """Forget windows no longer shown (bounded memory on a long-running page)."""
        if len(self._cache) > 4 * max(len(keep), 50):
            self._cache = {k: v for k, v in self._cache.items() if k in keep}

    def _window(self, frame: pd.DataFrame, key: tuple) -> dict:
        """Everything about one window that does not depend on the other windows."""
        s = self.spec
        unit, start, rows, labelled, _ = key
        out = {"window_start": start, "window_end": start + _STEP[unit], "rows": rows,
               "labelled": labelled, "sample_rows": len(frame)}
        if self.profile is not None and len(frame):
            out["table"] = self.profile.table(frame[list(s.features)], min_rows=MIN_ROWS)
        if self.prediction_reference is not None and len(frame):
            out["prediction"] = self.prediction_reference.compare(
                self._prediction_values(frame), min_rows=MIN_ROWS).as_dict()
            if s.task == "classification" and s.positive is None:
                out["shares"] = pd.Series(self._prediction_values(frame)).value_counts(
                    normalize=True).to_dict()
        if s.has_probabilities and len(frame):
            P, predicted = self._proba(frame)
            out["estimate"] = self.cbpe.estimate(P, predicted)
        if s.target and s.prediction and len(frame):
            frame_l = frame[frame[LABEL].notna()]
            if s.task == "classification":
                out["realized"] = cb.realized_accuracy(self._correct(frame_l))
            elif len(frame_l):
                err = (pd.to_numeric(frame_l[LABEL], errors="coerce")
                       - pd.to_numeric(frame_l[s.prediction], errors="coerce")).abs()
                out["mae"] = float(err.mean())
        if self.profile is not None and len(frame) >= MIN_ROWS:
            out["domain"] = domain_auc(self.reference_frame[list(s.features)],
                                       frame[list(s.features)], s.features, seed=self.seed)
        return out

    def _assemble(self, unit: str, live: list[dict], notes: list[str]) -> LiveReport:
        s = self.spec
        # input drift: p-values Holm-adjusted over every window and feature shown
        with_table = [w for w in live if "table" in w]
        adjusted = holm_adjusted([w["table"] for w in with_table]) if with_table else []
        feature_rows = []
        for w, table in zip(with_table, adjusted):
            for r in table.to_dict("records"):
                feature_rows.append({"window_start": w["window_start"], **r,
                                     "verdict": verdict_of(r)})
        features = pd.DataFrame(feature_rows)
        # prediction drift, Holm over windows
        preds = [w.get("prediction") for w in live]
        judged = [i for i, p in enumerate(preds) if p and p["p_value"] is not None
                  and p["drifted"] is not None]
        p_adj = dict(zip(judged, holm([preds[i]["p_value"] for i in judged]))) if judged else {}
        # multivariate: Holm over windows at ALPHA
        aucs = [w.get("domain") for w in live]
        tested = [i for i, d in enumerate(aucs) if d and math.isfinite(d["p_value"])]
        auc_adj = dict(zip(tested, holm([aucs[i]["p_value"] for i in tested]))) if tested else {}
        rows = []
        for i, w in enumerate(live):
            est = w.get("estimate", cb.EMPTY)
            real = w.get("realized", cb.EMPTY)
            d = aucs[i] or {}
            pred = preds[i] or {}
            if i in p_adj:
                pred_verdict = "drift" if p_adj[i] < pred["threshold"] else "stable"
            elif pred:
                pred_verdict = verdict_of(pred)
            else:
                pred_verdict = "not judged"
            auc = d.get("auc", math.nan)
            if i in auc_adj:
                mv = "drift" if (auc >= AUC_MIN and auc_adj[i] < ALPHA) else "stable"
            else:
                mv = "not judged"
            table = features[features["window_start"] == w["window_start"]] if len(features) \
                else pd.DataFrame()
            drifted = table[table["verdict"] == "drift"]["feature"].tolist() if len(table) else []
            judged_n = int((table["verdict"] != "not judged").sum()) if len(table) else 0
            rows.append({
                "window_start": w["window_start"], "window_end": w["window_end"],
                "rows": w["rows"], "labelled": w["labelled"],
                "label_coverage": w["labelled"] / w["rows"] if w["rows"] else math.nan,
                "estimated_accuracy": est.value, "estimated_low": est.low,
                "estimated_high": est.high,
                "realized_accuracy": real.value, "realized_low": real.low,
                "realized_high": real.high, "realized_mae": w.get("mae", math.nan),
                "auc": auc, "auc_low": d.get("low", math.nan), "auc_high": d.get("high", math.nan),
                "auc_p_adjusted": auc_adj.get(i, math.nan), "multivariate": mv,
                "prediction_test": pred.get("test"), "prediction_statistic": pred.get("statistic"),
                "prediction_p_adjusted": p_adj.get(i, math.nan), "prediction_drift": pred_verdict,
                "drifted_features": len(drifted) if judged_n else math.nan,
                "judged_features": judged_n, "drifted_list": ", ".join(drifted)})
        windows = pd.DataFrame(rows, columns=WINDOW_COLUMNS)
        shares = pd.DataFrame([{"window_start": w["window_start"], "class": str(k), "share": v}
                               for w in live for k, v in w.get("shares", {}).items()])
        if live and any(w["sample_rows"] < w["rows"] for w in live):
            notes.append(f"tests and estimates use at most {WINDOW_SAMPLE:,} rows per window "
                         "(a fixed sample); row and label counts are exact")
        return LiveReport(unit, windows, features, shares, self.reference, notes, 0, None, s)


WINDOW_COLUMNS = ["window_start", "window_end", "rows", "labelled", "label_coverage",
                  "estimated_accuracy", "estimated_low", "estimated_high", "realized_accuracy",
                  "realized_low", "realized_high", "realized_mae", "auc", "auc_low", "auc_high",
                  "auc_p_adjusted", "multivariate", "prediction_test", "prediction_statistic",
                  "prediction_p_adjusted", "prediction_drift", "drifted_features",
                  "judged_features", "drifted_list"]


def _filters_key(filters: Filters | None) -> tuple:
    if filters is None:
        return ()
    return tuple(sorted((k, tuple(v)) for k, v in filters.segments.items()))


def freshness_text(last: datetime | None, now: datetime | None = None) -> str:
    """'last row 4 s ago' (UTC timestamps, as the service writes them)."""
    if last is None:
        return "no production rows yet"
    now = now or datetime.utcnow()
    seconds = max(0.0, (pd.Timestamp(now) - pd.Timestamp(last)).total_seconds())
    if seconds < 120:
        return f"last row {seconds:.0f} s ago"
    if seconds < 7200:
        return f"last row {seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"last row {seconds / 3600:.0f} h ago"
    return f"last row {seconds / 86400:.0f} days ago"


def _pct(v) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.1%}"


def _acc(value, low, high) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def window_table(report: LiveReport) -> pd.DataFrame:
    """The report's windows as the page's table (newest first, every number formatted)."""
    w = report.windows.iloc[::-1]
    unit = report.unit
    fmt = {"minute": "%Y-%m-%d %H:%M", "hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d"}[unit]
    out = pd.DataFrame({
        "window": [pd.Timestamp(t).strftime(fmt) for t in w["window_start"]],
        "rows": w["rows"].astype(int),
        "labels": [f"{int(n):,} ({_pct(c)})" for n, c in zip(w["labelled"], w["label_coverage"])],
        "estimated accuracy": [_acc(v, lo, hi) for v, lo, hi in
                               zip(w["estimated_accuracy"], w["estimated_low"], w["estimated_high"])],
        "realized accuracy": [_acc(v, lo, hi) for v, lo, hi in
                              zip(w["realized_accuracy"], w["realized_low"], w["realized_high"])],
        "AUC": [_acc(v, lo, hi) for v, lo, hi in zip(w["auc"], w["auc_low"], w["auc_high"])],
        "multivariate": w["multivariate"],
        "predictions": w["prediction_drift"],
        "drifted features": [("not judged" if not j else (names or "none"))
                             for j, names in zip(w["judged_features"], w["drifted_list"])],
    })
    if report.spec.task == "regression":
        out["realized accuracy"] = [("—" if not np.isfinite(v) else f"MAE {v:,.3f}")
                                    for v in w["realized_mae"]]
        out = out.rename(columns={"realized accuracy": "realized error"})
    return out.reset_index(drop=True)


def headline(report: LiveReport, now: datetime | None = None) -> list[tuple[str, str, str]]:
    """(label, value, help) of the page's metric cards, for the latest window."""
    w = report.windows
    cards = [("Production rows", f"{report.production_rows:,}",
              freshness_text(report.last_timestamp, now))]
    if not len(w):
        return cards
    # the newest window large enough to judge (the current one is often still filling)
    full = w[w["rows"] >= MIN_ROWS]
    last = full.iloc[-1] if len(full) else w.iloc[-1]
    fmt = {"minute": "%H:%M", "hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d"}[report.unit]
    when = (f"{report.unit} from {pd.Timestamp(last['window_start']).strftime(fmt)} UTC, "
            f"the newest with at least {MIN_ROWS} rows" if len(full) else
            f"newest {report.unit}, {int(last['rows'])} rows")
    if report.spec.has_probabilities:
        est = last["estimated_accuracy"]
        cards.append(("Estimated accuracy", "—" if not np.isfinite(est) else f"{est:.3f}",
                      f"{when}: 95 % interval {_acc(est, last['estimated_low'], last['estimated_high'])}"
                      "; from the model's calibrated probabilities, no labels needed"))
    # labels arrive late: the newest window that has some
    with_labels = w[w["labelled"] > 0]
    lab = with_labels.iloc[-1] if len(with_labels) else last
    lab_when = pd.Timestamp(lab["window_start"]).strftime(fmt)
    labels = (f"{report.unit} from {lab_when} UTC, the newest with labels: "
              f"{int(lab['labelled']):,} labelled of {int(lab['rows']):,} rows "
              f"({_pct(lab['label_coverage'])})")
    if report.spec.task == "regression":
        mae = lab["realized_mae"]
        cards.append(("Realized MAE", "—" if not np.isfinite(mae) else f"{mae:,.3f}", labels))
    else:
        real = lab["realized_accuracy"]
        cards.append(("Realized accuracy", "—" if not np.isfinite(real) else f"{real:.3f}",
                      labels))
    auc = last["auc"]
    cards.append(("Domain classifier AUC", "—" if not np.isfinite(auc) else f"{auc:.3f}",
                  f"{when}: {last['multivariate']}; 0.5 = inputs like the reference's"))
    judged = int(last["judged_features"])
    cards.append(("Drifted features", f"{int(last['drifted_features'])} of {judged}"
                  if judged else "—",
                  f"{when}: {last['drifted_list'] or 'none'}" if judged else
                  f"{when}: not judged (fewer than {MIN_ROWS} rows)"))
    return cards
