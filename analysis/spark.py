"""Apache Spark as the engine of the binned counts: the session, its views, its results.

The aggregation modules build the same Ibis expressions for every engine
(:mod:`analysis.engine`); here they meet a Spark session through Ibis's PySpark
backend. What differs from the embedded DuckDB is only plumbing:

* the session: ``local[N]`` (a JVM in this process's machine, bound to 127.0.0.1), a
  cluster master URL (``spark://``, ``yarn``, ``k8s://``) or a Spark Connect URL
  (``sc://``); one per process, and one Ibis connection per thread on a
  :meth:`SparkSession.newSession` of it (its own temporary views, as DuckDB's
  per-thread connections);
* sources: the slice's Parquet snapshots read by Spark (each file split into tasks by
  its row groups), or a table of the Spark catalog for production rows;
* results: compiled Spark SQL (cached like DuckDB's) collected as Arrow.

Spark needs Java (17, Debian's ``openjdk-17-jre-headless``; :func:`java_problem`
says what is missing). Extra session settings come from ``DRIFT_SPARK_CONF``:
``key=value`` pairs separated by spaces or commas (``spark.ui.enabled=false``).
"""
from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import ibis
import pyarrow as pa

from analysis.engine import SOURCE_VIEW, Engine, filtered
from analysis.queries import Filters
from analysis.store import Store

DEFAULT_MASTER = "local[*]"
LOOPBACK = "127.0.0.1"
_LOCK = threading.Lock()
_SESSIONS: dict = {}          # master -> the SparkSession this process started
_LOCAL = threading.local()    # per thread: master -> Ibis connection


class SparkUnavailable(RuntimeError):
    """Spark cannot start here (no Java, or no pyspark)."""


def java_problem() -> str | None:
    """Why a local Spark cannot start (no ``java`` on the PATH nor in ``JAVA_HOME``),
    or None when Java is there."""
    home = os.environ.get("JAVA_HOME")
    if shutil.which("java") or (home and (Path(home) / "bin" / "java").exists()):
        return None
    return ("Spark needs Java 17, and no java was found (scripts/setup.sh installs "
            "Debian's openjdk-17-jre-headless)")


def is_local(master: str) -> bool:
    """Whether ``master`` runs Spark inside this machine (``local``, ``local[N]``...)."""
    return master == "local" or master.startswith("local[")


def settings(master: str, environ=None) -> dict[str, str]:
    """The session settings for ``master``: UTC session time, compiled CASE trees kept
    compiled by the JVM, few shuffle partitions (the aggregates are small); in local
    mode the driver bound to 127.0.0.1; then ``DRIFT_SPARK_CONF``'s pairs on top."""
    environ = os.environ if environ is None else environ
    huge = "-XX:-DontCompileHugeMethods"   # large CASE trees stay JIT-compiled
    conf = {"spark.app.name": "drift-investigator",
            "spark.sql.session.timeZone": "UTC",
            "spark.driver.extraJavaOptions": huge,
            "spark.executor.extraJavaOptions": huge,
            "spark.sql.adaptive.enabled": "true",
            "spark.ui.showConsoleProgress": "false"}
    if is_local(master):
        # Spark's default warehouse is ./spark-warehouse, created wherever it starts
        warehouse = Path(tempfile.gettempdir()) / "drift-spark-warehouse"
        conf.update({"spark.driver.host": LOOPBACK, "spark.driver.bindAddress": LOOPBACK,
                     "spark.sql.shuffle.partitions": str(max(2, os.cpu_count() or 1)),
                     "spark.sql.warehouse.dir": str(warehouse)})
    for pair in re.split(r"[\s,]+", environ.get("DRIFT_SPARK_CONF", "").strip()):
        if pair:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ValueError(f"DRIFT_SPARK_CONF: expected key=value, got {pair!r}")
            conf[key] = value
    return conf


def session(engine: Engine):
    """The process's Spark session for ``engine`` (started on first use; an active
    session, such as a test's, is used as it is)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - pyspark is in requirements.txt
        raise SparkUnavailable(f"pyspark is not installed: {exc}") from None
    master = engine.master or DEFAULT_MASTER
    with _LOCK:
        active = SparkSession.getActiveSession()
        if active is not None and not master.startswith("sc://"):
            return active
        if master in _SESSIONS:
            return _SESSIONS[master]
        if not master.startswith("sc://"):
            problem = java_problem()
            if problem:
                raise SparkUnavailable(problem)
        builder = SparkSession.builder
        if master.startswith("sc://"):
            builder = builder.remote(master)
        else:
            if is_local(master):
                # the UI and block manager bind to SPARK_LOCAL_IP (read by the JVM)
                os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
            builder = builder.master(master)
            for key, value in settings(master).items():
                builder = builder.config(key, value)
        _SESSIONS[master] = spark = builder.getOrCreate()
        if not master.startswith("sc://"):
            spark.sparkContext.setLogLevel("ERROR")   # warnings of Spark's own go to its log
        return spark


def stop() -> None:
    """Stop the sessions this process started (their JVM ends with them)."""
    with _LOCK:
        for spark in _SESSIONS.values():
            spark.stop()
        _SESSIONS.clear()
    _LOCAL.__dict__.clear()


atexit.register(stop)


@contextlib.contextmanager
def scoped():
    """Stop, on leaving, the sessions started inside (a command's own; a session that
    was already running, such as a test's, stays)."""
    before = set(_SESSIONS)
    try:
        yield
    finally:
        with _LOCK:
            started = [_SESSIONS.pop(m) for m in list(_SESSIONS) if m not in before]
        for spark in started:
            spark.stop()


def local_con(engine: Engine):
    """This thread's Ibis connection to the engine's session: a new session of it per
    thread, so each thread's temporary views (``slice_source``...) are its own."""
    master = engine.master or DEFAULT_MASTER
    base = session(engine)
    # a classic session's SparkContext identifies it (a test may stop one, start another)
    token = id(getattr(base, "_sc", None) or base)
    cons = _LOCAL.__dict__.setdefault("cons", {})
    entry = cons.get(master)
    if entry is None or entry[0] != token:
        try:
            own = base.newSession()
        except Exception:  # Spark Connect may refuse: share the one session
            own = base
        entry = cons[master] = (token, ibis.pyspark.connect(own))
    return entry[1]


def files_view(con, name: str, files: Sequence) -> "ibis.Table":
    """The Parquet ``files`` as the temporary view ``name`` (schemas merged by name,
    as DuckDB's ``union_by_name``)."""
    frame = con._session.read.option("mergeSchema", "true").parquet(*[str(f) for f in files])
    frame.createOrReplaceTempView(name)
    return con.table(name)


def table_view(con, name: str, table: str) -> "ibis.Table":
    """The catalog table (or path-based table) ``table`` as the temporary view ``name``."""
    con._session.sql(f"SELECT * FROM {table}").createOrReplaceTempView(name)
    return con.table(name)


def connect_slice(store: Store, dataset: str, slice: str, filters: Filters | None,
                  files: Sequence | None, engine: Engine):
    """:func:`analysis.engine.connect_slice` on Spark: the slice's snapshots (or
    ``files``, or the engine's production table), filtered, as ``slice_source``."""
    con = local_con(engine)
    rows_name = f"{SOURCE_VIEW}_rows"
    if slice == "production" and files is None and engine.table:
        rows = table_view(con, rows_name, engine.table)
    else:
        files = [str(p) for p in (store.files(dataset, slice) if files is None else files)]
        if not files:
            return None, None
        rows = files_view(con, rows_name, files)
    if filters is not None and (filters.segments or (
            slice == "production" and (filters.start is not None or filters.end is not None))):
        sql = str(ibis.to_sql(filtered(rows, store, dataset, slice, filters),
                              dialect="pyspark"))
        con._session.sql(sql).createOrReplaceTempView(SOURCE_VIEW)
    else:
        con._session.table(rows_name).createOrReplaceTempView(SOURCE_VIEW)
    return con, con.table(SOURCE_VIEW)


def execute(con, sql: str) -> pa.Table:
    """Run Spark SQL and collect the (small) result as Arrow, timestamps as the naive
    UTC values DuckDB returns (the session's time zone is UTC)."""
    table = con._session.sql(sql).toArrow()
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            table = table.set_column(i, field.name, table.column(i).cast(
                pa.timestamp(field.type.unit)))
    return table
