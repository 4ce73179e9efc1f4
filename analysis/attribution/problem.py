"""Inputs and problem set-up: the columns' roles, the error metric and its per-row loss,
and the thresholds every step shares."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import noise
from analysis.tables import InputError


ALL = "all"
UNITS = ("hour", "day", "week", "month")
METRICS = {
    "mae": "mean absolute error",
    "rmse": "root mean squared error",
    "mape": "mean absolute percentage error (%)",
    "accuracy": "accuracy",
    "logloss": "log loss (nats)",
}
REGRESSION_METRICS = ("mae", "rmse", "mape")
CLASSIFICATION_METRICS = ("accuracy", "logloss")
ALPHA = 0.01          # family-wise error rate of each family of tests (Holm)
AUC_MIN = 0.55        # domain-classifier AUC that counts as a changed P(x)
PSI_MIN = 0.1         # per-feature PSI that counts (the conventional "moderate" level)
CONCEPT_MIN = 0.10    # loss change on the shared region, as a share of the reference's
BIAS_MIN = 0.10       # residual-mean change, as a share of the mean absolute residual
CLIP = 20.0           # importance weights are clipped at this density ratio
SUPPORT_RATIO = 20.0  # window rows with r(x) above this lie outside the reference support
OVERLAP = 5.0         # the concept test compares rows whose density ratio is within 5x of 1
MIN_ROWS = noise.MIN_ROWS  # fewer window rows (or labelled rows) in a cell: not judged
CELL_ROWS = 2 * MIN_ROWS  # rows a typical cell should hold for `auto` to pick a unit
SAMPLE_CAP = 30_000   # reference rows used by the classifiers and the bootstrap
WINDOW_CAP = 15_000   # production rows per window (a window's tests have power long before)
BOOTSTRAP = 200
MAX_LEVELS = 200      # categorical levels kept per feature (the rest pooled as "other")
PROBABILITY_EPS = 1e-6


class AttributionError(InputError):
    """Input the analysis cannot run on; the message says what and where."""


@dataclass
class Problem:
    """What to analyse: the columns' roles and the error metric.

    ``positive`` is the class whose probability a classification ``prediction`` column
    holds (None when the predictions are labels).
    """

    features: dict[str, str]
    target: str | None = None
    prediction: str | None = None
    timestamp: str | None = None
    segment: str | None = None
    task: str = "regression"
    metric: str | None = None
    positive: object = None

    @property
    def labelled(self) -> bool:
        return self.target is not None

    @property
    def has_model(self) -> bool:
        return self.target is not None and self.prediction is not None


def label_text(values) -> np.ndarray:
    """Labels as comparable text: 1, 1.0 and "1" all read "1", True reads "True";
    missing values are None. Classes, segments and predicted labels are compared in
    this form, so a column that pandas read as float (because some values are missing)
    still matches the same column read as integers. A categorical column is
    converted through its categories (each distinct label once)."""
    s = pd.Series(values).reset_index(drop=True)
    if isinstance(s.dtype, pd.CategoricalDtype):
        labels = np.append(label_text(pd.Series(s.cat.categories)), None).astype(object)
        return labels[s.cat.codes.to_numpy()]     # code -1 (missing) takes the last: None
    missing = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s):
        out = s.astype(str).to_numpy(dtype=object)
    elif pd.api.types.is_numeric_dtype(s):
        v = s.to_numpy(dtype=float, na_value=np.nan)
        whole = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2 ** 53)
        out = np.where(whole, np.where(whole, v, 0).astype(np.int64).astype(str),
                       v.astype(str)).astype(object)
    elif pd.api.types.infer_dtype(s, skipna=True) == "string":
        out = s.astype(str).to_numpy(dtype=object)
    else:
        def one(v):
            if isinstance(v, (bool, np.bool_)):
                return str(bool(v))
            if isinstance(v, (int, float, np.number)) and float(v).is_integer():
                return str(int(v))
            return str(v)
        out = np.array([one(v) for v in s.to_numpy(dtype=object)], dtype=object)
    out[missing] = None
    return out


def infer_task(target: pd.Series, prediction: pd.Series | None = None) -> str:
    """'classification' for text/boolean targets, 0/1 targets, and integer targets with
    at most 20 levels whose predictions are among those levels; else 'regression'."""
    y = target.dropna()
    if y.empty:
        return "regression"
    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        return "classification"
    values = set(np.unique(y.to_numpy(dtype=float)).tolist())
    if values <= {0.0, 1.0}:
        return "classification"
    if len(values) <= 20 and all(float(v).is_integer() for v in values) and prediction is not None:
        p = pd.to_numeric(prediction, errors="coerce").dropna()
        if not p.empty and set(np.unique(p.to_numpy(dtype=float)).tolist()) <= values:
            return "classification"
    return "regression"


def prediction_kind(target: pd.Series, prediction: pd.Series) -> tuple[str, object]:
    """('probability', positive class) or ('label', None) for a classification model.

    A numeric prediction in [0, 1] for a two-class target that is not itself among the
    target's labels is read as the probability of the larger label (1, True, or the
    second in sorted order, e.g. "yes" over "no").
    """
    raw = pd.Series(target.dropna().unique())
    order = np.argsort(raw.to_numpy(dtype=float)) if pd.api.types.is_numeric_dtype(raw) \
        else np.argsort(label_text(raw).astype(str))
    labels = list(label_text(raw)[order])
    p = prediction.dropna()
    if pd.api.types.is_numeric_dtype(p) and not pd.api.types.is_bool_dtype(p):
        values = p.to_numpy(dtype=float)
        as_labels = set(label_text(pd.Series(np.unique(values)))) <= set(labels)
        if len(labels) <= 2 and values.size and values.min() >= 0 and values.max() <= 1 \
                and not as_labels:
            return "probability", (labels[-1] if labels else "1")
    return "label", None


def default_metric(task: str, kind: str = "label") -> str:
    if task == "regression":
        return "mae"
    return "logloss" if kind == "probability" else "accuracy"


def row_losses(y: pd.Series, prediction: pd.Series, metric: str, positive=None) -> np.ndarray:
    """Per-row loss whose mean gives the metric; NaN where the row has no label.

    * mae: ``|y - yhat|``; rmse: ``(y - yhat)^2`` (the metric is the root of the mean);
    * mape: ``100 |y - yhat| / |y|`` (rows with y = 0 are NaN: undefined);
    * accuracy: ``1[y != yhat]`` (the metric is one minus the mean); with probabilities
      of ``positive``, ``yhat`` is ``positive`` when ``p >= 0.5``;
    * logloss: ``-ln max(p_y, 1e-6)`` with ``p_y`` the predicted probability of the
      observed class (binary: ``p`` for ``positive``, ``1 - p`` otherwise).
    """
    if metric not in METRICS:
        raise AttributionError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if metric in REGRESSION_METRICS:
        yv, pv = as_float(y), as_float(prediction)
        err = yv - pv
        if metric == "mae":
            return np.abs(err, out=err)
        if metric == "rmse":
            return np.square(err, out=err)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 100.0 * np.abs(err) / np.abs(yv)
        out[yv == 0] = np.nan
        return out
    missing = (y.isna() | prediction.isna()).to_numpy()
    if metric == "accuracy" and positive is not None:
        # probabilities: the predicted class is the positive one when p >= 0.5
        p = as_float(prediction)
        out = ((label_text(y) == str(positive)) != (p >= 0.5)).astype(float)
    elif metric == "accuracy":
        out = (label_text(y) != label_text(prediction)).astype(float)
    else:
        p = as_float(prediction)
        is_pos = label_text(y) == str(positive)
        p_obs = np.where(is_pos, p, 1.0 - p)
        out = -np.log(np.clip(p_obs, PROBABILITY_EPS, 1.0))
    out[missing] = np.nan
    return out


def as_float(values: pd.Series) -> np.ndarray:
    """Numbers as floats, text that is not a number as NaN; a numeric column without a
    copy through ``to_numeric`` (at millions of rows the copy costs a second)."""
    if values.dtype == np.float64:
        return values.to_numpy()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def metric_level(mean_loss, metric: str):
    """The metric from the mean per-row loss (see :func:`row_losses`)."""
    mean_loss = np.asarray(mean_loss, dtype=float)
    if metric == "rmse":
        return np.sqrt(np.maximum(mean_loss, 0.0))
    if metric == "accuracy":
        return 1.0 - mean_loss
    return mean_loss


ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid)$|^(id|index)$", re.IGNORECASE)


def looks_like_id(reference: pd.Series, production: pd.Series) -> bool:
    """A row identifier rather than a feature: integer or text values named like one
    (``id``, ``user_id``, ``uuid``...), or (almost) all distinct in both tables, at least
    50 rows each."""
    discrete = all(pd.api.types.is_integer_dtype(s) or pd.api.types.is_string_dtype(s)
                   or pd.api.types.is_object_dtype(s) for s in (reference, production))
    if discrete and ID_NAME.search(str(reference.name)):
        return True
    def unique_share(s: pd.Series) -> float:
        s = s.dropna()
        return s.nunique() / len(s) if len(s) else 0.0

    kinds_ok = all(pd.api.types.is_integer_dtype(s) or pd.api.types.is_string_dtype(s)
                   or pd.api.types.is_object_dtype(s) for s in (reference, production))
    big = min(reference.notna().sum(), production.notna().sum()) >= 50
    return kinds_ok and big and unique_share(reference) >= 0.99 and unique_share(production) >= 0.99


def problem_from_frames(reference: pd.DataFrame, production: pd.DataFrame, *,
                        target: str | None = None, prediction: str | None = None,
                        timestamp: str | None = None, segment: str | None = None,
                        features: list[str] | None = None, exclude: list[str] | None = None,
                        task: str | None = None, metric: str | None = None
                        ) -> tuple[Problem, list[str]]:
    """The :class:`Problem` for two user tables, and notes on what was decided.

    Features default to every column both tables share except the named roles,
    timestamp-like columns, written row indexes, row identifiers (:func:`looks_like_id`)
    and columns constant within each table (such as a "partition" column that only
    says which file a row came from). Raises :class:`AttributionError` with a one-line
    message for a named column that is missing or unusable. ``production`` is updated
    in place: the timestamp column parsed, and a target or prediction column it lacks
    added as missing values (labels not arrived yet).
    """
    from analysis.tables import column_kinds

    notes: list[str] = []
    _add_missing_outcomes(reference, production, target, prediction, notes)
    _check_roles(reference, production, target=target, prediction=prediction,
                 timestamp=timestamp, segment=segment)
    timestamp = _find_timestamp(production, timestamp, (target, prediction, segment), notes)
    roles = {c for c in (target, prediction, timestamp, segment) if c is not None}
    chosen = _choose_features(reference, production, roles, features, exclude, notes)
    try:
        kinds = column_kinds(reference, production, chosen)
    except ValueError as exc:
        raise AttributionError(str(exc)) from None
    task = _task(reference, production, target, prediction, task, notes)
    positive = None
    if metric is not None:
        allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
        if metric not in allowed:
            raise AttributionError(f"--metric {metric} does not apply to {task}; choose one of "
                                   f"{', '.join(allowed)}")
    if target is not None and prediction is not None and task == "classification":
        kind, positive = prediction_kind(reference[target], reference[prediction])
        if kind == "probability" and not features:
            _drop_predicted_label(reference, prediction, positive, kinds, notes)
        if metric == "logloss" and kind != "probability":
            raise AttributionError(f"--metric logloss needs predicted probabilities; "
                                   f"{prediction!r} holds labels")
        metric = metric or default_metric(task, kind)
        if kind == "probability":
            notes.append(f"{prediction!r} read as the probability of {target} = {positive!r}")
    elif target is not None and prediction is not None:
        metric = metric or "mae"
        if metric == "mape" and (pd.to_numeric(reference[target], errors="coerce") == 0).any():
            notes.append("rows whose target is 0 are left out of the MAPE")
    return Problem(kinds, target, prediction, timestamp, segment, task, metric, positive), notes


def _add_missing_outcomes(reference: pd.DataFrame, production: pd.DataFrame, target, prediction,
                          notes: list[str]) -> None:
    """A target or prediction the production table lacks: labels (or scores) that have
    not arrived yet, added as missing values."""
    for role, col in (("target", target), ("prediction", prediction)):
        if col is not None and col in reference.columns and col not in production.columns:
            production[col] = pd.Series(np.nan, index=production.index,
                                        dtype=reference[col].dtype if role == "target"
                                        and pd.api.types.is_float_dtype(reference[col]) else object)
            notes.append(f"the production file has no {role} column {col!r}: its rows count as "
                         + ("unlabelled (concept drift not judged)" if role == "target"
                            else "unscored (the error cannot be decomposed)"))


def _check_roles(reference: pd.DataFrame, production: pd.DataFrame, **roles) -> None:
    """Every named role's column is in the tables (a timestamp only in production)."""
    for role, col in roles.items():
        if col is None:
            continue
        where = [n for n, f in (("reference", reference), ("production", production))
                 if col not in f.columns and (n == "production" or role != "timestamp")]
        if where:
            raise AttributionError(f"--{role} column {col!r} is not in the {' and '.join(where)} "
                                   f"file (columns: {', '.join(map(str, production.columns[:20]))})")


def _find_timestamp(production: pd.DataFrame, timestamp, other_roles, notes: list[str]):
    """The timestamp column (the one timestamp-like column when none is named), parsed
    in place."""
    from analysis.tables import looks_like_timestamp

    if timestamp is None:
        found = [c for c in production.columns if c not in other_roles
                 and looks_like_timestamp(production[c])]
        if len(found) == 1:
            timestamp = found[0]
            notes.append(f"using {timestamp!r} as the timestamp (pass --timestamp to choose)")
        elif len(found) > 1:
            notes.append(f"several timestamp-like columns ({', '.join(found)}); none used: "
                         "pass --timestamp for windows over time")
    if timestamp is not None:
        parsed = pd.to_datetime(production[timestamp], errors="coerce", format="mixed")
        if parsed.isna().all():
            raise AttributionError(f"--timestamp column {timestamp!r} holds no dates "
                                   f"(first value {production[timestamp].iloc[0]!r})")
        production[timestamp] = parsed
    return timestamp


def _choose_features(reference: pd.DataFrame, production: pd.DataFrame, roles: set,
                     features, exclude, notes: list[str]) -> list[str]:
    """The named features, or every shared column that is not a role, a timestamp, a
    row index or identifier, or constant within each table (noted)."""
    from analysis.tables import looks_like_index, looks_like_timestamp

    common = [c for c in reference.columns if c in set(production.columns) and c not in roles]
    if features:
        missing = [c for c in features if c not in common]
        if missing:
            raise AttributionError(f"unknown feature(s) {', '.join(map(repr, missing))}: not in "
                                   "both files, or named as a role")
        return list(features)
    excluded = set(exclude or [])
    chosen, skipped = [], []
    for c in common:
        r, q = reference[c], production[c]
        if c in excluded:
            continue
        if looks_like_timestamp(r) or looks_like_index(r, q):
            skipped.append(f"{c} (timestamp or row index)")
        elif looks_like_id(r, q):
            skipped.append(f"{c} (row identifier)")
        elif r.nunique(dropna=False) <= 1 and q.nunique(dropna=False) <= 1:
            skipped.append(f"{c} (constant within each file)")
        else:
            chosen.append(c)
    if skipped:
        notes.append("not used as features: " + ", ".join(skipped))
    if not chosen:
        raise AttributionError("no feature columns left to compare (the shared columns are all "
                               "roles, timestamps, identifiers or constants)")
    return chosen


def _task(reference: pd.DataFrame, production: pd.DataFrame, target, prediction, task,
          notes: list[str]):
    """The task (as given, or inferred from the target); a regression's target and
    prediction must be numeric. Without a target, a prediction of numbers in [0, 1] is
    read as a two-class probability (its accuracy can then be estimated, see CBPE)."""
    if target is None:
        from analysis.monitoring.cbpe import looks_like_probability

        if prediction is not None and task is None and looks_like_probability(
                pd.to_numeric(reference[prediction], errors="coerce").to_numpy(dtype=float)):
            notes.append(f"no target: {prediction!r} (numbers in [0, 1]) read as the positive "
                         "class's probability, predicting it at 0.5 or more")
            return "classification"
        return task or "regression"
    task = task or infer_task(reference[target], reference[prediction] if prediction else None)
    if task != "regression":
        return task
    for name, col in (("target", target), ("prediction", prediction)):
        if col is None:
            continue
        for label, frame in (("reference", reference), ("production", production)):
            values = frame[col]
            bad = values.notna() & pd.to_numeric(values, errors="coerce").isna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise AttributionError(
                    f"--{name} column {col!r} must be numeric for a regression; the "
                    f"{label} file has {int(bad.sum())} non-numeric value(s), first "
                    f"{values.iloc[i]!r} at data row {i + 1}")
    return task


def _drop_predicted_label(reference: pd.DataFrame, prediction: str, positive, kinds: dict,
                          notes: list[str]) -> None:
    """The model's predicted label beside its probability is an output, not an input."""
    said = pd.Series(label_text(reference[prediction].ge(0.5).where(reference[prediction].notna())))
    for c in list(kinds):
        col = pd.Series(label_text(reference[c]))
        if col.nunique() == 2 and len(col) >= MIN_ROWS:
            hits = col.eq(str(positive)).astype(str).eq(said.astype(str))
            if hits.mean() >= 0.99:
                kinds.pop(c)
                notes.append(f"not used as a feature: {c} (the model's predicted label)")
    if not kinds:
        raise AttributionError("no feature columns left to compare")
