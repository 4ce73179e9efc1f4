"""Command line: ``python -m analysis <command>``.

Commands
--------
drift      per-feature drift table of a production file against a reference file
ingest     validate a CSV/Parquet snapshot and store it (refused: findings, exit 2)
snapshots  list a dataset's snapshots, or remove one
report     write a postmortem bundle (zip: HTML report, charts as PNG, their data as CSV)
investigate  data drift versus concept drift per segment x window, with the error's
           decomposition (exit 1 with --fail-on when that kind of drift is found)
demo       build the rental-pricing demo store
datasets   list the store's datasets with rows per slice (counting rows a model service
           logged and has not compacted yet)
serve      a model behind a REST API (``--scenario iris``), every prediction logged durably
           into the store
traffic    send bounded traffic to a running service, with an input shift and labels
stream     a simulated recommender's events (``--scenario ecommerce``) with injected
           faults, ingested durably into ``<store>/streams/<name>`` (real or simulated clock)
detect     CTR change detection and cause ranking over a recorded event stream
heatmap    the drift heatmap's cells (feature x window x group) from a store, aggregated
           on the embedded DuckDB or on Apache Spark (``--engine spark``)

Exit codes: 0 success, 2 bad input (one-line message on stderr); ``investigate
--fail-on`` exits 1 when the drift it names is found and 3 when what it names could not
be tested (too few rows; concept drift without labels).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from analysis.drift import BINNINGS, TESTS, drift_table
from analysis.formats import decimals_for, window_label
from analysis.stats import EmptySampleError
from analysis.store import DEFAULT_STORE, Store, StoreError
from analysis.tables import (InputError, infer_outcome_columns, jsonable, pick_features,
                             read_table)


def _format_table(table: pd.DataFrame) -> str:
    def num(v, fmt):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    rows = [("feature", "kind", "test", "statistic", "p_value", "threshold", "drifted")]
    for r in table.itertuples(index=False):
        drifted = "n/a" if r.drifted is None or pd.isna(r.drifted) else ("DRIFT" if r.drifted else "ok")
        rows.append((r.feature, r.kind, r.test, num(r.statistic, ".6g"), num(r.p_value, ".3g"),
                     format(r.threshold, "g"), drifted + (f"  ({r.note})" if r.note else "")))
    widths = [max(len(str(row[i])) for row in rows) for i in range(6)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row[:6], widths)) + "  " + row[6]
                     for row in rows)


def _split(text: str | None) -> list[str] | None:
    """A comma-separated option as a list (None when not given)."""
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _outcomes(reference: pd.DataFrame, production: pd.DataFrame, target: str | None,
              prediction: str | None) -> tuple[dict[str, str], list[str]]:
    """The model's target and prediction columns for ``drift`` (given, or inferred from
    their names as ``investigate`` infers them) and notes on what was assumed."""
    for role, col in (("target", target), ("prediction", prediction)):
        if col is not None and col not in reference.columns and col not in production.columns:
            raise InputError(f"--{role} column {col!r} is in neither file (reference columns: "
                             f"{', '.join(map(str, reference.columns[:20]))})")
    target, prediction, notes = infer_outcome_columns(reference.columns, target, prediction)
    return {c: role for c, role in ((target, "target"), (prediction, "prediction")) if c}, notes


def cmd_drift(args) -> int:
    reference = read_table(args.reference, "reference")
    production = read_table(args.production, "production")
    requested = _split(args.features)
    if requested:  # the user chose the features: nothing to infer or skip
        outcomes = {c: role for c, role in ((args.target, "target"),
                                            (args.prediction, "prediction")) if c}
        notes = []
    else:
        outcomes, notes = _outcomes(reference, production, args.target, args.prediction)
    features, skipped = pick_features(reference, production, requested, outcomes)
    if len(reference) == 0:
        raise InputError(f"reference file {args.reference} has no data rows")
    if len(production) == 0:
        raise InputError(f"production file {args.production} has no data rows")
    table = drift_table(reference, production, features, test=args.test, binning=args.binning)
    if skipped:
        notes.append("not compared: " + ", ".join(f"{c} ({why})" for c, why in skipped.items()))
    if args.json:  # stdout stays one JSON document; what was assumed goes to stderr
        records = jsonable(table.to_dict("records"))
        print(json.dumps(records, indent=2))
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        return 0
    print(_format_table(table))
    judged = table["drifted"].dropna()
    print(f"\n{int(judged.astype(bool).sum())} of {len(judged)} features drifted "
          f"(reference {len(reference):,} rows, production {len(production):,} rows, "
          f"binning {args.binning})")
    for note in notes:
        print(f"note: {note}")
    return 0


def cmd_ingest(args) -> int:
    from analysis.ingest import ingest
    from analysis.store import Roles

    store = Store(args.store)
    roles = None
    if args.roles:
        try:
            roles = Roles.from_dict(json.loads(Path(args.roles).read_text()))
        except FileNotFoundError:
            raise InputError(f"roles file not found: {args.roles}") from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise InputError(f"roles file {args.roles} is not valid roles JSON: {exc}") from None
    result = ingest(store, args.dataset, args.slice, args.file, roles, task=args.task)
    if result.errors:
        print(f"refused {args.file}: {len(result.errors)} error(s); the store is unchanged",
              file=sys.stderr)
        for finding in result.findings:
            print(str(finding), file=sys.stderr)
        return 2
    if result.created and not args.roles:
        print("inferred roles: " + json.dumps(result.roles.to_dict()))
    for finding in result.findings:
        print(str(finding))
    snap = result.snapshot
    warnings = sum(f.level == "warning" for f in result.findings)
    print(f"stored {snap.rows:,} rows from {snap.source} as {snap.slice} snapshot {snap.id} "
          f"of dataset {args.dataset!r} ({warnings} warning(s))")
    return 0


def cmd_snapshots(args) -> int:
    store = Store(args.store)
    if args.remove:
        snap = store.remove_snapshot(args.dataset, args.remove)
        print(f"removed snapshot {snap.id} ({snap.slice}, {snap.rows:,} rows, {snap.source})")
        return 0
    store.dataset(args.dataset)  # a clear error for an unknown dataset
    snaps = store.snapshots(args.dataset)
    if args.json:
        print(json.dumps([s.to_dict() for s in snaps], indent=2))
        return 0
    for s in snaps:
        print(f"{s.id}  {s.slice:<10}  {s.rows:>10,}  {s.loaded_at}  {s.source}"
              + (f"  ({len(s.warnings)} warning(s))" if s.warnings else ""))
    print(f"{len(snaps)} snapshot(s)")
    return 0


def cmd_report(args) -> int:
    from datetime import datetime, timedelta

    from analysis import heatmap_command
    from analysis.queries import Filters
    from analysis.report import build_bundle

    store = Store(args.store)
    info = store.dataset(args.dataset)

    def day(text, name):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise InputError(f"--{name} {text!r} is not a date (YYYY-MM-DD)") from None

    start = day(args.date_from, "from") if args.date_from else None
    end = day(args.date_to, "to") + timedelta(days=1) if args.date_to else None
    segments = {}
    if args.segment:
        column, _, value = args.segment.rpartition("=")
        column = column or (info.roles.segments[0] if info.roles.segments else "")
        if column not in info.roles.segments:
            raise InputError(f"dataset {args.dataset!r} has no segment column {column!r} "
                             f"(segments: {', '.join(info.roles.segments) or 'none'})")
        segments[column] = (value,)
    engine = heatmap_command.choose_engine(args.engine, args.spark_master, args.spark_table)
    data = heatmap_command.run_on(engine, lambda: build_bundle(
        store, args.dataset, Filters(start, end, segments), unit=args.window,
        progress=lambda m: print(m, file=sys.stderr), engine=engine))
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data) / 1e6:.1f} MB)")
    return 0


def _interval(part: dict | None, places: int = 4) -> str:
    if not part or part.get("value") is None:
        return "n/a"
    text = f"{part['value']:,.{places}f}"
    if part.get("low") is not None:
        text += f"  [{part['low']:,.{places}f}, {part['high']:,.{places}f}]"
    return text


def cell_notes(result: dict) -> list[str]:
    """The cells' own notes, each prefixed with its window and group (the notes the
    result already sums up, too few rows and inputs outside the support, left out)."""
    out = []
    for c in result["cells"]:
        if c["data"].get("reason") == "rows":
            continue
        who = "all groups" if c["segment"] == "all" else f"{result['segment']} = {c['segment']}"
        out.extend(f"{window_label(c['start'])}, {who}: {n}" for n in c["notes"] if "lie where the reference" not in n)
    return out


def format_investigation(result: dict) -> str:
    """The human-readable report of ``investigate``."""
    lines = [f"verdict: {result['verdict'].upper().replace('_', ' ')}", "", result["summary"], ""]
    if result.get("estimated_accuracy") is not None:
        low, high = result["estimated_accuracy_ci"]
        lines += [f"estimated accuracy without labels (CBPE, 95% interval): "
                  f"{result['estimated_accuracy']:.4f}  [{low:.4f}, {high:.4f}]", ""]
    d = result["decomposition"]
    if d:
        lines.append(f"decomposition of the {result['metric_label']} over the production period "
                     "(95% bootstrap intervals)")
        iw, sh = d["importance_weighting"], d["shared_region"]
        places = decimals_for(d["reference"]["value"])
        name = result["metric_label"]
        for part, label in ((d["reference"], f"reference {name}"),
                            (d["expected"], "expected (covariate shift alone)"),
                            (d["realized"], f"realized {name}"), (d["data_part"], "data-drift part"),
                            (d["concept_part"], "concept-drift part" if result["judged"]["concept"]
                             else "unexplained (concept not judged)"),
                            (iw["expected"], "importance weighting: expected"),
                            (iw["concept_part"], "importance weighting: concept part"),
                            (sh["shift_into_shared"], "shared region: shift into it"),
                            (sh["concept_on_shared"], "shared region: concept on it"),
                            (sh["shift_out_of_shared"], "shared region: shift out of it")):
            lines.append(f"  {label:<38}{_interval(part, places)}")
        lines.append("  (headline: importance weighting, with window inputs outside the reference's "
                     "support counted as data drift; the verdict's concept test compares the "
                     "periods on the shared region with an independent model of P(y|x))")
        lines.append("")
    if result["drifted_features"]:
        lines.append("data drift, by feature (root causes first)")
        for f in result["drifted_features"]:
            since = window_label(f["first_window"])
            lines.append(f"  {f['feature']:<28} max PSI {f['max_psi']:.3f}  {f['role']}  "
                         f"(first window: {since}; in {', '.join(f['segments'])})")
        lines.append("")
    if result["concept_features"]:
        lines.append("concept drift, by feature (share of the retrained model's disagreement)")
        for f in result["concept_features"]:
            lines.append(f"  {f['feature']:<28} {f['importance']:.0%}")
        lines.append("")
    cells = result["cells"]
    windows = sorted({c["start"] or "" for c in cells})
    segments = ["all"] + sorted({c["segment"] for c in cells} - {"all"})
    grid = {(c["segment"], c["start"] or ""): c["verdict"] for c in cells}
    head = ["window"] + segments
    rows = [[(w[:16].replace("T", " ") if w else "all rows")] +
            [grid.get((s, w), "-").replace("_", " ") for s in segments] for w in windows]
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    lines.append(f"verdict per {result['window'] or 'window'} and {result['segment'] or 'segment'}")
    for r in [head] + rows:
        lines.append("  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    where = [c for c in cells if c["concept"].get("where")]
    if where:
        lines.append("")
        lines.append("where the concept moved (disagreement of a model retrained on the flagged cells)")
        for c in where:
            lines.append(f"  {c['segment']} {str(c['start'])[:10]}: {c['concept']['where']}")
    notes = list(result["notes"]) + cell_notes(result)[:8]
    if notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in notes)
    return "\n".join(lines)


def cmd_investigate(args) -> int:
    from analysis.attribution import investigate, problem_from_frames

    reference = read_table(args.reference, "reference")
    production = read_table(args.production, "production")
    if len(reference) == 0:
        raise InputError(f"reference file {args.reference} has no data rows")
    if len(production) == 0:
        raise InputError(f"production file {args.production} has no data rows")
    features, exclude = _split(args.features), _split(args.exclude)
    # columns named like the target and prediction are taken as such, as drift does
    target, prediction, assumed = infer_outcome_columns(
        reference.columns, args.target, args.prediction,
        taken=[args.timestamp, args.segment, *(features or []), *(exclude or [])])
    problem, notes = problem_from_frames(
        reference, production, target=target, prediction=prediction,
        timestamp=args.timestamp, segment=args.segment, features=features,
        exclude=exclude, task=args.task, metric=args.metric)
    notes = assumed + notes
    progress = (lambda m: print(m, file=sys.stderr)) if args.progress else None
    result = investigate(reference, production, problem, unit=args.window, progress=progress)
    out = result.to_dict()
    out["notes"] = notes + out["notes"]
    if args.json:
        print(json.dumps(jsonable(out), indent=2, allow_nan=False))
    else:
        print(format_investigation(out))
    fail = {"data": ("data", "both"), "concept": ("concept", "both"),
            "any": ("data", "concept", "both")}.get(args.fail_on or "", ())
    if out["verdict"] in fail:
        return 1
    # a gate must not pass what it could not test
    untested = {"data": not out["judged"]["data"], "concept": not out["judged"]["concept"],
                "any": out["verdict"] == "not_judged"}.get(args.fail_on or "", False)
    return 3 if untested else 0


def cmd_demo(args) -> int:
    from analysis.scenarios import rental

    store = Store(args.store)
    rental.build_store(store, int(rental.DEFAULT_REFERENCE_ROWS * args.scale),
                       int(rental.DEFAULT_PRODUCTION_ROWS * args.scale))
    return 0


def cmd_datasets(args) -> int:
    from analysis.catalog import datasets_table, format_datasets

    rows = datasets_table(Store(args.store))
    print(json.dumps(rows, indent=2) if args.json else format_datasets(rows))
    return 0


def cmd_serve(args) -> int:
    from analysis.serving.server import serve
    from analysis.serving.service import ServiceConfig

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is not a port number")
    serve(ServiceConfig(store=Path(args.store), scenario=args.scenario,
                        commit_delay=args.commit_delay_ms / 1000.0,
                        compact_interval=args.compact_interval),
          host=args.host, port=args.port)
    return 0


def cmd_traffic(args) -> int:
    from analysis.serving.traffic import TrafficError, format_report, run

    try:
        report = run(args.url, rate=args.rate, duration=args.duration, shift_at=args.shift_at,
                     shift=args.shift, feedback_share=args.feedback_share,
                     feedback_delay=args.feedback_delay, seed=args.seed,
                     allow_remote=args.allow_remote)
    except TrafficError as exc:
        raise InputError(str(exc)) from None
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    if report.sent and report.acknowledged == 0:
        print("error: no request was acknowledged: is the service running at "
              f"{args.url}?", file=sys.stderr)
        return 1
    return 0


def cmd_stream(args) -> int:
    from analysis.streaming.stream import StreamOptions, run

    return run(StreamOptions(
        scenario=args.scenario, rate=args.rate, seed=args.seed, fault_args=args.faults or [],
        clock=args.clock, start=args.start, duration=args.duration, store=Path(args.store),
        name=args.name, progress=args.progress, compact_interval=args.compact_interval))


# -- the parser: each command gets exactly the options it reads ------------------------
def _store_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=str(DEFAULT_STORE),
                   help="store directory (default: %(default)s)")


def _dataset_option(p: argparse.ArgumentParser, help: str = "dataset name") -> None:
    p.add_argument("--dataset", required=True, help=help)


def _file_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", required=True, help="reference CSV or Parquet file")
    p.add_argument("--production", required=True, help="production CSV or Parquet file")


def _outcome_options(p: argparse.ArgumentParser, target_help: str, prediction_help: str) -> None:
    p.add_argument("--target", help=target_help)
    p.add_argument("--prediction", help=prediction_help)


_INFERRED = ("default: the one column named like {names}, as stated in a note")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis",
                                     description="Drift Investigator command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("drift", help="per-feature drift table of production vs reference")
    _file_options(p)
    p.add_argument("--features", help="comma-separated columns (default: all shared, except "
                                      "the target, the prediction, timestamps and row indexes)")
    _outcome_options(
        p, "the model's true-outcome column, not compared as a feature ("
        + _INFERRED.format(names="target, label, y, actual, *_true") + ")",
        "the model's prediction column, not compared as a feature ("
        + _INFERRED.format(names="prediction, pred, y_pred, predicted_*, score") + ")")
    p.add_argument("--test", choices=list(TESTS), help="force one test for every feature")
    p.add_argument("--binning", choices=BINNINGS, default="quantile",
                   help="bins for PSI / Jensen-Shannon / Hellinger (default: quantile)")
    p.add_argument("--json", action="store_true", help="print a JSON list of rows (notes on "
                                                       "stderr)")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("ingest", help="validate a CSV/Parquet snapshot and store it")
    _store_option(p)
    _dataset_option(p, "dataset name (created when new)")
    p.add_argument("--slice", required=True, choices=["reference", "production"])
    p.add_argument("--roles", help="roles JSON for a new dataset (default: inferred, printed)")
    p.add_argument("--task", choices=["regression", "classification"], default="regression",
                   help="task of a new dataset")
    p.add_argument("file", help="CSV or Parquet file")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("snapshots", help="list a dataset's snapshots, or remove one")
    _store_option(p)
    _dataset_option(p)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--remove", metavar="ID", help="remove this snapshot")
    p.set_defaults(func=cmd_snapshots)

    from analysis import heatmap_command   # its engine options; Ibis loads only here
    p = sub.add_parser("report", help="write a postmortem bundle (zip: HTML report, PNGs, CSVs)")
    _store_option(p)
    _dataset_option(p)
    p.add_argument("--from", dest="date_from", help="first production day (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", help="last production day, inclusive (YYYY-MM-DD)")
    p.add_argument("--segment", help="a segment value, or COLUMN=VALUE (default: all)")
    p.add_argument("--window", choices=["day", "week", "month"], default="month")
    p.add_argument("--out", required=True, help="zip file to write")
    heatmap_command.add_engine_options(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("investigate", help="data drift versus concept drift, per segment x window")
    _file_options(p)
    _outcome_options(
        p, "true outcome column; without one, concept drift is not judged ("
        + _INFERRED.format(names="target, label, y, actual, *_true") + ")",
        "the model's prediction column: a label, a number, or the probability of the "
        "positive class (" + _INFERRED.format(names="prediction, pred, y_pred, predicted_*, "
                                                    "score") + ")")
    p.add_argument("--timestamp", help="production time column (default: the one timestamp-like "
                                       "column, if any)")
    p.add_argument("--segment", help="user-group column: one verdict per group and window")
    p.add_argument("--window", choices=["auto", "hour", "day", "week", "month"], default="auto",
                   help="calendar window (auto: windows that hold enough rows to judge, "
                        "8-30 of them where the data allows; one window when even months "
                        "are too small)")
    p.add_argument("--features", help="comma-separated feature columns (default: all shared "
                                      "columns except roles, timestamps, identifiers)")
    p.add_argument("--exclude", help="comma-separated columns not to use as features (nor as "
                                     "the inferred target or prediction)")
    p.add_argument("--task", choices=["regression", "classification"],
                   help="default: inferred from the target")
    p.add_argument("--metric", choices=["mae", "rmse", "mape", "accuracy", "logloss"],
                   help="error metric (default: mae; classification: log loss for "
                        "probabilities, else accuracy)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--fail-on", choices=["data", "concept", "any"],
                   help="exit 1 when this kind of drift is found, 3 when it could not be "
                        "tested (pipeline gate)")
    p.add_argument("--progress", action="store_true", help="progress messages on stderr")
    p.set_defaults(func=cmd_investigate)

    p = sub.add_parser("demo", help="build the rental-pricing demo store")
    _store_option(p)
    p.add_argument("--scale", type=float, default=1.0,
                   help="size multiplier (1.0 = 180k reference + 540k production rows)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("datasets", help="list datasets with row counts per slice")
    _store_option(p)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("serve", help="serve a model behind a REST API, logging every "
                                     "prediction into the store")
    p.add_argument("--scenario", choices=["iris"], default="iris",
                   help="the model to serve (iris: scikit-learn's Iris data, dataset iris-api)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    _store_option(p)
    p.add_argument("--commit-delay-ms", type=float, default=2.0,
                   help="group commit: under load, wait at most this long for more records "
                        "per fsync (default: %(default)s)")
    p.add_argument("--compact-interval", type=float, default=1.0,
                   help="seconds between compactions of logged rows into snapshots "
                        "(default: %(default)s)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("traffic", help="send bounded traffic to a running service")
    p.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second "
                                                            "(default: %(default)s)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds (default: %(default)s)")
    p.add_argument("--shift-at", type=float, help="seconds after the start when the input "
                                                  "shift begins (default: 0 with --shift)")
    p.add_argument("--shift", choices=["petal-scale", "new-cluster"],
                   help="petal-scale: petal lengths and widths read 40%% too large; "
                        "new-cluster: flowers from the versicolor/virginica overlap")
    p.add_argument("--feedback-share", type=float, default=0.0,
                   help="share of acknowledged predictions whose true label is sent "
                        "(default: %(default)s)")
    p.add_argument("--feedback-delay", type=float, default=2.0,
                   help="mean seconds before a label is sent (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a URL that is not a loopback address")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_traffic)

    p = sub.add_parser("stream", help="ingest a simulated event stream with faults, durably")
    p.add_argument("--scenario", choices=["ecommerce"], default="ecommerce")
    p.add_argument("--rate", type=float, help="mean events per second (default: 1000)")
    # one list in command-line order, so each --at/--until pairs with the --fault before it
    for flag, text in (("--fault", "a fault, e.g. null:user_affinity:0.3 (repeatable)"),
                       ("--at", "when the fault before it starts: seconds after the start "
                                "(600, 15m, 2h) or an ISO time (default: the start)"),
                       ("--until", "when the fault before it ends (default: never)")):
        p.add_argument(flag, dest="faults", action="append", help=text,
                       type=lambda v, f=flag: (f, v))
    p.add_argument("--clock", choices=["real", "simulated"],
                   help="real: events as they happen (default); simulated: as fast as it goes")
    p.add_argument("--start", help="stream time of the start, ISO (default: now; simulated: "
                                    "the scenario's start)")
    p.add_argument("--duration", type=float, help="seconds: of running (real clock; default "
                                                  "until Ctrl-C) or of stream time (simulated; "
                                                  "default 3600)")
    _store_option(p)
    p.add_argument("--name", default="ecommerce", help="stream name (default: %(default)s)")
    p.add_argument("--seed", type=int, help="default: 0")
    p.add_argument("--progress", type=float, default=5.0,
                   help="seconds between progress lines; 0: after every batch")
    p.add_argument("--compact-interval", type=float, default=1.0,
                   help="seconds between compactions into Parquet parts (default: %(default)s)")
    p.set_defaults(func=cmd_stream)

    from analysis.streaming import report as stream_report
    stream_report.add_parser(sub)
    heatmap_command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (InputError, StoreError, EmptySampleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
