"""The data-vs-concept investigation of a stored dataset, and the evidence behind one cell.

:func:`investigate_store` runs :func:`analysis.attribution.investigate` on a dataset's
reference and production slices (filtered as in the sidebar) and keeps the result
beside the dataset, keyed by the data's version, the parameters and this code's
version, so the dashboard computes it once. :func:`cell_evidence` retrains on one cell
and returns what the analyst inspects: a linear surrogate's coefficients and
permutation importances of the reference and retrained models side by side, the two
models' predictions on the same inputs, and residual profiles per feature.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from analysis import attribution as at
from analysis.binning import bins_for
from analysis.engine import Engine, engine_to_json, runs_on_spark, sample_rows
from analysis.formats import decimals_for
from analysis.queries import ROW_FILE, ROW_NUMBER, Filters, fetch_rows, load_frame, load_keyed
from analysis.slices import row_counts, time_bounds
from analysis.store import Store
from analysis.tables import jsonable

#: Rows of each slice the investigation reads from a Spark engine (a random sample).
SPARK_SAMPLE = 200_000

def _code_version() -> str:
    """Hash of the code a stored result depends on: a change recomputes it."""
    from analysis import binning, drift, noise, stats

    files = sorted(Path(at.__file__).parent.glob("*.py"))
    files += [Path(m.__file__) for m in (binning, drift, noise, stats)] + [Path(__file__)]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]


_CODE = _code_version()


def store_problem(store: Store, dataset: str, segment: str | None = None,
                  metric: str | None = None) -> at.Problem:
    """The problem of a stored dataset, from its roles (the first segment column unless
    one is named)."""
    info = store.dataset(dataset)
    roles = info.roles
    if segment is not None and segment not in roles.segments:
        raise at.AttributionError(f"dataset {dataset!r} has no segment column {segment!r}")
    segment = segment or (roles.segments[0] if roles.segments else None)
    return at.Problem(dict(roles.features), roles.target, roles.prediction, roles.timestamp,
                      segment, info.task, metric)


def _columns(problem: at.Problem) -> list[str]:
    cols = list(problem.features)
    for c in (problem.target, problem.prediction, problem.timestamp, problem.segment):
        if c is not None and c not in cols:
            cols.append(c)
    return cols


def load_slices(store: Store, dataset: str, problem: at.Problem,
                filters: Filters | None = None, engine: Engine | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every row of both slices within ``filters`` (the problem's columns); on the Spark
    engine a random sample of at most about :data:`SPARK_SAMPLE` rows of each, drawn
    there (:func:`analysis.engine.sample_rows`), since a lake does not fit here."""
    cols = _columns(problem)
    if runs_on_spark(engine):
        return tuple(sample_rows(store, dataset, side, cols, filters, engine, SPARK_SAMPLE)
                     for side in ("reference", "production"))
    return (load_frame(store, dataset, "reference", cols, filters, categories=True),
            load_frame(store, dataset, "production", cols, filters, categories=True))


def _cache_path(store: Store, dataset: str, key: dict) -> Path:
    token = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    # not *.json: the store's version token ignores it, so caching does not change it
    return store.root / dataset / "investigations" / f"{token}.result"


def _normalised(store: Store, dataset: str, filters: Filters,
                engine: Engine | None = None) -> Filters:
    """The same filters without a time range that covers all production rows anyway, so
    the sidebar's default range and no range share one cached result."""
    if filters.start is None and filters.end is None:
        return filters
    bounds = time_bounds(store, dataset, "production", engine)
    if bounds is None:
        return filters
    first, last = bounds
    if (filters.start is None or filters.start <= first) and (filters.end is None or filters.end > last):
        return Filters(None, None, filters.segments)
    return filters


def _stored_result(store: Store, dataset: str, filters: Filters | None, segment: str | None,
                   unit: str, metric: str | None, engine: Engine | None = None
                   ) -> tuple[at.Problem, Filters, Path]:
    problem = store_problem(store, dataset, segment, metric)
    filters = _normalised(store, dataset, filters or Filters(), engine)
    key = {"version": store.version(dataset), "code": _CODE, "filters": filters.key(),
           "segment": problem.segment, "unit": unit, "metric": metric,
           **_engine_key(engine)}
    return problem, filters, _cache_path(store, dataset, key)


def filters_to_json(filters: Filters | None) -> dict:
    filters = filters or Filters()
    return {"start": None if filters.start is None else filters.start.isoformat(),
            "end": None if filters.end is None else filters.end.isoformat(),
            "segments": {k: list(v) for k, v in filters.segments.items()}}


def filters_from_json(data: dict) -> Filters:
    day = lambda v: None if v is None else datetime.fromisoformat(v)  # noqa: E731
    return Filters(day(data.get("start")), day(data.get("end")),
                   {k: tuple(v) for k, v in (data.get("segments") or {}).items()})


def _engine_key(engine: Engine | None) -> dict:
    """The engine's part of a stored result's key: none for DuckDB (every row read), the
    engine's settings for Spark (a sample read)."""
    settings = engine_to_json(engine)
    return {"engine": settings} if settings else {}


def investigation_job(store: Store, dataset: str, filters: Filters | None = None,
                      segment: str | None = None, unit: str = "auto",
                      metric: str | None = None, engine: Engine | None = None
                      ) -> tuple[Path, dict]:
    """Where :func:`investigate_store` keeps this result, and the parameters of the
    ``investigation`` job (:mod:`analysis.jobs`) that computes it."""
    _, _, path = _stored_result(store, dataset, filters, segment, unit, metric, engine)
    return path, {"root": str(store.root), "dataset": dataset,
                  "filters": filters_to_json(filters), "segment": segment, "unit": unit,
                  "metric": metric, "engine": engine_to_json(engine)}


def cached_investigation(store: Store, dataset: str, filters: Filters | None = None,
                         segment: str | None = None, unit: str = "auto",
                         metric: str | None = None, engine: Engine | None = None
                         ) -> dict | None:
    """The stored result of :func:`investigate_store` for these arguments, or None
    (never computes)."""
    _, _, path = _stored_result(store, dataset, filters, segment, unit, metric, engine)
    return _read_json(path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):   # absent, or a torn write
        return None


def investigate_store(store: Store, dataset: str, filters: Filters | None = None,
                      segment: str | None = None, unit: str = "auto", metric: str | None = None,
                      progress: Callable[[str], None] | None = None,
                      path: Path | None = None, engine: Engine | None = None) -> dict:
    """The investigation's JSON-ready result for a stored dataset, kept on disk (at
    ``path`` when given, else where :func:`investigation_job` says).

    On the Spark engine it investigates the random samples :func:`load_slices` draws,
    and ``sample`` in the result says how many rows of how many were read."""
    problem, filters, default = _stored_result(store, dataset, filters, segment, unit, metric,
                                               engine)
    if path is None:
        path = default
        stored = _read_json(path)
        if stored is not None:
            return stored
    if runs_on_spark(engine):
        reference, production = load_slices(store, dataset, problem, filters, engine)
        result = at.investigate(reference, production, problem, unit=unit, progress=progress)
        totals = row_counts(store, dataset, filters, engine)
        extra = {"sample": {"engine": engine.label,
                            "reference": [len(reference), totals["reference"]],
                            "production": [len(production), totals["production"]]}}
    else:
        reference = load_frame(store, dataset, "reference", _columns(problem), filters,
                               categories=True)
        # production: a few columns of every row, every column of the rows sampled
        light = [c for c in (problem.timestamp, problem.segment, problem.target,
                             problem.prediction) if c is not None]
        files = store.files(dataset, "production")   # one list: the keys index it
        production = load_keyed(store, dataset, "production", light, filters, files)
        keys = production[[ROW_FILE, ROW_NUMBER]]
        result = at.investigate(
            reference, production, problem, unit=unit, progress=progress,
            fetch_production=lambda rows: fetch_rows(store, dataset, "production",
                                                      _columns(problem), keys.iloc[rows],
                                                      files))
        extra = {}
    out = jsonable({**result.to_dict(), **extra})
    _write_json(path, out)
    return out


def _write_json(path: Path, data: dict) -> None:
    """Write atomically: a reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{np.random.default_rng().integers(1 << 30)}")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


# --------------------------------------------------------------------------- one cell

def cell_frames(reference: pd.DataFrame, production: pd.DataFrame, problem: at.Problem,
                segment_value: str, start: str | None, end: str | None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference rows and window rows a cell compares ("all" keeps every group)."""
    ref, win = reference, production
    if problem.timestamp is not None and start is not None:
        ts = pd.to_datetime(win[problem.timestamp])
        win = win[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]
    if segment_value != at.ALL and problem.segment is not None:
        in_ref = at.segments_of(ref, problem.segment) == segment_value
        win = win[at.segments_of(win, problem.segment) == segment_value]
        if in_ref.any():
            ref = ref[in_ref]
    return ref, win


def _residual(frame: pd.DataFrame, problem: at.Problem) -> np.ndarray | None:
    """y - prediction (regression), 1[positive] - p (probabilities); None otherwise."""
    if not problem.has_model:
        return None
    if problem.task == "regression":
        return (pd.to_numeric(frame[problem.target], errors="coerce")
                - pd.to_numeric(frame[problem.prediction], errors="coerce")).to_numpy(dtype=float)
    if problem.positive is not None:
        is_pos = pd.Series(at.label_text(frame[problem.target]) == str(problem.positive),
                           index=frame.index).astype(float)
        p = pd.to_numeric(frame[problem.prediction], errors="coerce")
        return (is_pos - p).where(frame[problem.target].notna()).to_numpy(dtype=float)
    return None


def residual_profile(reference: pd.DataFrame, window: pd.DataFrame, problem: at.Problem,
                     feature: str) -> pd.DataFrame | None:
    """Mean residual of the user's model in each reference bin of ``feature`` (deciles
    or levels), reference vs window: where the residual's relation to a feature changed,
    the concept moved along it. Columns: bin, reference, window, reference_rows,
    window_rows (bins with no row on either side are left out)."""
    r_ref, r_win = _residual(reference, problem), _residual(window, problem)
    if r_ref is None:
        return None
    kind = problem.features[feature]
    bins = bins_for(at.clean_values(reference[feature], kind), kind)
    out = []
    for label, frame, resid in (("reference", reference, r_ref), ("window", window, r_win)):
        codes = bins.codes(at.clean_values(frame[feature], kind))
        ok = np.isfinite(resid)
        sums = np.bincount(codes[ok], weights=resid[ok], minlength=len(bins.labels))
        counts = np.bincount(codes[ok], minlength=len(bins.labels))
        out.append((label, sums, counts))
    (_, s_ref, n_ref), (_, s_win, n_win) = out
    keep = (n_ref > 0) | (n_win > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = pd.DataFrame({"bin": np.array(bins.labels, dtype=object)[keep],
                              "reference": (s_ref / n_ref)[keep], "window": (s_win / n_win)[keep],
                              "reference_rows": n_ref[keep], "window_rows": n_win[keep]})
    return frame


def rank_residual_changes(profiles: dict[str, pd.DataFrame]) -> list[str]:
    """Features ordered by the largest change of the mean residual in any bin."""
    def change(frame: pd.DataFrame) -> float:
        diff = (frame["window"] - frame["reference"]).abs()
        return float(diff.max()) if diff.notna().any() else 0.0

    return sorted(profiles, key=lambda f: -change(profiles[f]))


def cell_evidence(reference: pd.DataFrame, window: pd.DataFrame, problem: at.Problem,
                  seed: int = 0, max_rows: int = 6000) -> dict:
    """Retrain on the window and compare with a model fitted on the reference.

    Returns a dict with
    * ``coefficients``: a ridge surrogate (alpha 1, standardised inputs, categories as
      indicators) of each model's predictions on its own rows: how each model's output
      moves with each input, side by side;
    * ``importance``: permutation importance of each model on its own labelled rows
      (increase of mean absolute error / log loss when the feature is shuffled, 3
      repeats);
    * ``predictions``: both models' predictions on the same window inputs;
    * ``residuals``: :func:`residual_profile` for every feature (None without a model).
    """
    if not problem.labelled:
        raise at.AttributionError("without a target the models cannot be retrained")
    rng = np.random.default_rng(seed)
    ref = reference[reference[problem.target].notna()]
    win = window[window[problem.target].notna()]
    if len(ref) < at.MIN_ROWS or len(win) < at.MIN_ROWS:
        raise at.AttributionError(f"too few labelled rows to retrain (reference {len(ref)}, "
                                  f"window {len(win)}; at least {at.MIN_ROWS} each)")
    ref = ref.iloc[np.sort(rng.permutation(len(ref))[:max_rows])]
    win = win.iloc[np.sort(rng.permutation(len(win))[:max_rows])]
    encoder = at.Encoder([ref, win], problem.features)
    X_ref, X_win = encoder.transform(ref), encoder.transform(win)
    old, _ = at.fit_reference_model(X_ref, ref[problem.target], problem.task,
                                    encoder.categorical_mask, seed, n_folds=2)
    new, _ = at.fit_reference_model(X_win, win[problem.target], problem.task,
                                    encoder.categorical_mask, seed, n_folds=2)
    old_model, new_model = old.models[0], new.models[0]

    def output(model: at.ReferenceModel, X):
        pred = model.predict(X, np.zeros(len(X), int))
        if model.task == "regression":
            return pred
        i = model.positive_index if model.positive_index is not None else pred.shape[1] - 1
        return pred[:, i]

    design_ref, names = encoder.one_hot(ref)
    design_win, _ = encoder.one_hot(win)
    both = np.vstack([design_ref, design_win])
    mean, std = both.mean(axis=0), both.std(axis=0)
    std[std == 0] = 1.0
    coef = {}
    for label, design, model, X in (("reference", design_ref, old, X_ref),
                                    ("window", design_win, new, X_win)):
        surrogate = Ridge(alpha=1.0).fit((design - mean) / std, output(model, X))
        coef[label] = surrogate.coef_
    coefficients = pd.DataFrame({"feature": names, **coef})

    def importances(model, X, y):
        if problem.task == "regression":
            target = pd.to_numeric(y, errors="coerce").to_numpy(dtype=float)
            scoring = "neg_mean_absolute_error"
            est = model
        else:
            target = at.target_codes(y, old.classes)
            keep = target >= 0
            X, target = X[keep], target[keep]
            scoring = "neg_log_loss"
            est = model.model
        # imported here: sklearn.inspection is a fifth of a second of every start-up
        from sklearn.inspection import permutation_importance
        res = permutation_importance(est, X, target, scoring=scoring, n_repeats=3,
                                     random_state=seed, n_jobs=1)
        return res.importances_mean

    importance = pd.DataFrame({
        "feature": list(problem.features),
        "reference": importances(old_model, X_ref[:2000], ref[problem.target].iloc[:2000]),
        "window": importances(new_model, X_win[:2000], win[problem.target].iloc[:2000])
        if problem.task == "regression" or set(at.label_text(win[problem.target])) <= set(old.classes)
        else np.full(len(problem.features), np.nan),
    })
    n = min(len(win), 2000)
    predictions = pd.DataFrame({"reference_model": output(old, X_win[:n]),
                                "retrained": output(new, X_win[:n])})
    residuals = {f: residual_profile(reference, window, problem, f) for f in problem.features}
    return {"coefficients": coefficients, "importance": importance, "predictions": predictions,
            "residuals": residuals, "reference_rows": len(ref), "window_rows": len(win)}


def evidence_job(store: Store, dataset: str, filters: Filters | None, segment: str | None,
                 cell_segment: str, start: str | None, end: str | None,
                 engine: Engine | None = None) -> tuple[Path, dict]:
    """Where :func:`cell_evidence_store` keeps one cell's evidence, and the parameters of
    the ``evidence`` job that computes it."""
    problem = store_problem(store, dataset, segment)
    filters = _normalised(store, dataset, filters or Filters(), engine)
    key = {"evidence": True, "version": store.version(dataset), "code": _CODE,
           "filters": filters.key(), "segment": problem.segment, "cell": cell_segment,
           "start": start, "end": end, **_engine_key(engine)}
    return _cache_path(store, dataset, key), {
        "root": str(store.root), "dataset": dataset, "filters": filters_to_json(filters),
        "segment": segment, "cell_segment": cell_segment, "start": start, "end": end,
        "engine": engine_to_json(engine)}


def _evidence_to_json(evidence: dict) -> dict:
    frame = lambda f: None if f is None else f.to_dict(orient="list")  # noqa: E731
    return {**{k: frame(evidence[k]) for k in ("coefficients", "importance", "predictions")},
            "residuals": {k: frame(v) for k, v in evidence["residuals"].items()},
            "reference_rows": int(evidence["reference_rows"]),
            "window_rows": int(evidence["window_rows"])}


def evidence_from_json(data: dict) -> dict:
    """The evidence as :func:`cell_evidence` returns it, from its stored JSON."""
    frame = lambda f: None if f is None else pd.DataFrame(f)  # noqa: E731
    return {**{k: frame(data[k]) for k in ("coefficients", "importance", "predictions")},
            "residuals": {k: frame(v) for k, v in data["residuals"].items()},
            "reference_rows": data["reference_rows"], "window_rows": data["window_rows"]}


def cached_evidence(store: Store, dataset: str, filters: Filters | None, segment: str | None,
                    cell_segment: str, start: str | None, end: str | None,
                    engine: Engine | None = None) -> dict | None:
    """The stored :func:`cell_evidence_store` result for this cell, or None (never
    computes)."""
    path, _ = evidence_job(store, dataset, filters, segment, cell_segment, start, end, engine)
    stored = _read_json(path)
    return None if stored is None else evidence_from_json(stored)


def cell_evidence_store(store: Store, dataset: str, filters: Filters | None, segment: str | None,
                        cell_segment: str, start: str | None, end: str | None,
                        seed: int = 0, path: Path | None = None,
                        engine: Engine | None = None) -> dict:
    """:func:`cell_evidence` for one cell of a stored dataset's investigation (kept on
    disk beside the investigation, at ``path`` when given, and read from there when it
    is)."""
    if path is None:
        path = evidence_job(store, dataset, filters, segment, cell_segment, start, end,
                            engine)[0]
        stored = _read_json(path)
        if stored is not None:
            return evidence_from_json(stored)
    evidence = _cell_evidence_uncached(store, dataset, filters, segment, cell_segment, start,
                                       end, seed, engine)
    _write_json(path, _evidence_to_json(evidence))
    return evidence


def _cell_evidence_uncached(store: Store, dataset: str, filters: Filters | None,
                            segment: str | None, cell_segment: str, start: str | None,
                            end: str | None, seed: int, engine: Engine | None = None) -> dict:
    problem = store_problem(store, dataset, segment)
    reference, production = load_slices(store, dataset, problem, filters, engine)
    if problem.has_model and problem.task == "classification":
        kind, problem.positive = at.prediction_kind(reference[problem.target],
                                                    reference[problem.prediction])
        if kind != "probability":
            problem.positive = None
    ref, win = cell_frames(reference, production, problem, cell_segment, start, end)
    return cell_evidence(ref, win, problem, seed)


CONCEPT_NOT_JUDGED = {
    "rows": f"fewer than {at.MIN_ROWS} rows",
    "no_target": "no target column",
    "reference_labels": f"fewer than {at.MIN_ROWS} labelled reference rows",
    "labels": f"fewer than {at.MIN_ROWS} labelled rows in this cell",
    "overlap": f"fewer than {at.MIN_ROWS} labelled rows where this cell's inputs overlap the "
               f"reference's (density ratio within {at.OVERLAP:g}x of 1)",
}


def cell_text(cell: dict, result: dict) -> str:
    """Plain-language account of one cell, for a postmortem."""
    seg = result.get("segment")
    who = "all groups" if cell["segment"] == at.ALL else f"{seg} = {cell['segment']}"
    when = ("the whole production period" if cell["start"] is None else
            f"{cell['start'][:16].replace('T', ' ')} to {cell['end'][:16].replace('T', ' ')}")
    lines = [f"{who}, {when} ({cell['rows']:,} rows): verdict {cell['verdict'].upper()}."]
    data = cell["data"]
    if not data.get("judged"):
        lines.append("Not judged: " + "; ".join(cell["notes"]))
        return " ".join(lines)
    feats = data.get("drifted_features") or []
    if data.get("flagged"):
        lines.append(f"The inputs changed: a classifier tells the window from the reference with "
                     f"AUC {data['auc']:.2f}" + (f"; drifted features: {', '.join(feats)}" if feats else "")
                     + ".")
    elif data.get("examined") is False:
        lines.append(f"Not examined in detail (domain AUC {data['auc']:.2f}): neither its window "
                     "(all groups) nor its group's sequence of windows showed drift, so its own "
                     "tests were not run.")
    else:
        lines.append(f"The inputs did not change beyond noise (domain AUC {data['auc']:.2f}).")
    if data.get("series_flagged") and not data.get("auc_flagged") and not feats:
        lines.append("Its inputs drifted as part of its group's sequence of windows, though "
                     "not enough in this window alone to show beyond noise.")
    concept = cell["concept"]
    if not concept.get("judged"):
        lines.append(f"Concept drift was not judged: {CONCEPT_NOT_JUDGED.get(concept.get('reason'), 'too few labelled rows')}.")
    elif concept.get("flagged"):
        lo, hi = concept["loss_change_interval"]
        k = decimals_for(concept["reference_model_error"])
        lines.append(f"The relationship to the target changed: on inputs both share, the "
                     f"reference model's error moved by {concept['loss_change']:+.{k}f} "
                     f"[{lo:+.{k}f}, {hi:+.{k}f}] against {concept['reference_model_error']:.{k}f} "
                     "on the reference" + (f"; it moved most where {concept['where']}"
                                           if concept.get("where") else "") + ".")
    else:
        lines.append("The relationship to the target (P(y|x)) did not change beyond noise.")
    if concept.get("series_flagged") and not any(
            concept.get(f"{k}_flagged") for k in ("loss", "bias", "slope")):
        lines.append("The concept change shows in the group's sequence of windows (a gradual "
                     "drift), not in this window alone.")
    d = cell.get("decomposition")
    if d and d["reference"]["value"] is not None:
        k = decimals_for(d["reference"]["value"])
        lines.append(f"{result['metric_label'].capitalize()}: reference {d['reference']['value']:,.{k}f}, "
                     f"realized {d['realized']['value']:,.{k}f}; data part "
                     f"{d['data_part']['value']:+,.{k}f}, concept part "
                     f"{d['concept_part']['value']:+,.{k}f}.")
    if data.get("out_of_support_share", 0) >= 0.05:
        lines.append(f"{data['out_of_support_share']:.0%} of the rows are new inputs outside the "
                     "reference's support: their concept cannot be judged from the reference.")
    return " ".join(lines)


def grid_frame(result: dict) -> pd.DataFrame:
    """One row per cell: segment, start, end, rows, verdict and the headline numbers."""
    rows = []
    for c in result["cells"]:
        rows.append({
            "segment": c["segment"], "start": c["start"], "end": c["end"], "rows": c["rows"],
            "verdict": c["verdict"], "auc": c["data"].get("auc"),
            "drifted_features": ", ".join(c["data"].get("drifted_features") or []),
            "concept_change": c["concept"].get("loss_change"),
            "data_part": (c.get("decomposition") or {}).get("data_part", {}).get("value"),
            "concept_part": (c.get("decomposition") or {}).get("concept_part", {}).get("value"),
        })
    return pd.DataFrame(rows)


def window_parts(result: dict) -> pd.DataFrame:
    """The "all" cells' decomposition per window: reference, realized, data and concept
    parts with their intervals (empty without a model)."""
    rows = []
    for c in result["cells"]:
        d = c.get("decomposition")
        if c["segment"] != at.ALL or not d:
            continue
        row = {"start": c["start"], "end": c["end"], "rows": c["rows"], "verdict": c["verdict"]}
        for key in ("reference", "realized", "data_part", "concept_part"):
            row[key] = d[key]["value"]
            row[f"{key}_low"], row[f"{key}_high"] = d[key]["low"], d[key]["high"]
        rows.append(row)
    return pd.DataFrame(rows)


def warm(root: str | Path, wait: bool = False) -> list[Path]:
    """Start (in worker processes, :mod:`analysis.jobs`) every dataset's investigation
    with the Data vs concept page's defaults, unless it is already kept in the store or
    running, so the page finds it done or on its way. With ``wait``, block until they
    end. Returns the results' paths."""
    from analysis import jobs

    store = Store(root)
    paths = []
    for dataset in store.datasets():
        if store_problem(store, dataset).timestamp is None:
            continue
        path, params = investigation_job(store, dataset)
        paths.append(path)
        if not path.exists():
            jobs.start("investigation", params, path)
    if wait:
        for path in paths:
            jobs.wait(path)
    return paths
