"""Apache Spark as the engine of the binned counts: the session, its views, its results.

The aggregation modules build the same Ibis expressions for every engine
(:mod:`analysis.engine`); here they meet a Spark session through Ibis's PySpark
backend. What differs from the embedded DuckDB is only plumbing:

* the session: ``local[N]`` (a JVM in this process's machine, bound to 127.0.0.1), a
  cluster master URL (``spark://``, ``yarn``, ``k8s://``) or a Spark Connect URL
  (``sc://host:port``: this process is only a client of a server that runs the
  driver, and needs no Java); one per process, and one Ibis connection per thread on a
  :meth:`SparkSession.newSession` of it, or on Spark Connect a session of its own on
  the server (its own temporary views, as DuckDB's per-thread connections);
* sources: the slice's Parquet snapshots read by Spark (each file split into tasks by
  its row groups), or a table of the Spark catalog for production rows;
* results: compiled Spark SQL (cached like DuckDB's) collected as Arrow.

Spark needs Java (17, Debian's ``openjdk-17-jre-headless``; :func:`java_problem`
says what is missing). Extra session settings come from ``DRIFT_SPARK_CONF``:
``key=value`` pairs separated by spaces or commas (``spark.ui.enabled=false``); a Spark
Connect client takes only the ``spark.sql.*`` ones (its server has the rest). Spark
Connect needs no Java here, but its client libraries (grpcio, grpcio-status,
googleapis-common-protos, pinned in requirements.txt).
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
#: Seconds to wait for a Spark Connect server to answer before giving up (its client
#: would otherwise retry for ten minutes, as for a server that restarts)
CONNECT_TIMEOUT = 10.0
_LOCK = threading.Lock()
_SESSIONS: dict = {}          # master -> the SparkSession this process started
_THREAD_SESSIONS: dict = {}   # Spark Connect master -> the threads' own sessions on it
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


def is_connect(master: str) -> bool:
    """Whether ``master`` is a Spark Connect server's URL (``sc://host:port``)."""
    return master.startswith("sc://")


def settings(master: str, environ=None) -> dict[str, str]:
    """The session settings for ``master``: UTC session time, compiled CASE trees kept
    compiled by the JVM, few shuffle partitions (the aggregates are small); in local
    mode the driver bound to 127.0.0.1; then ``DRIFT_SPARK_CONF``'s pairs on top.

    A Spark Connect server was started with its own driver and application settings:
    a client sets only its session's SQL settings, so only the ``spark.sql.*`` pairs
    (the server would refuse the others, with a warning each)."""
    environ = os.environ if environ is None else environ
    huge = "-XX:-DontCompileHugeMethods"   # large CASE trees stay JIT-compiled
    conf = {"spark.sql.session.timeZone": "UTC", "spark.sql.adaptive.enabled": "true"}
    if not is_connect(master):
        conf.update({"spark.app.name": "drift-investigator",
                     "spark.driver.extraJavaOptions": huge,
                     "spark.executor.extraJavaOptions": huge,
                     "spark.ui.showConsoleProgress": "false"})
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
            if not is_connect(master) or key.startswith("spark.sql."):
                conf[key] = value
    return conf


def session(engine: Engine):
    """The process's Spark session for ``engine`` (started on first use; an active
    session, such as a test's, is used as it is). For a Spark Connect URL, a session on
    that server (:class:`SparkUnavailable` if it does not answer)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - pyspark is in requirements.txt
        raise SparkUnavailable(f"pyspark is not installed: {exc}") from None
    master = engine.master or DEFAULT_MASTER
    with _LOCK:
        if is_connect(master):
            if master not in _SESSIONS:
                _reach(master)
                _SESSIONS[master] = _connect_session(master)
            return _SESSIONS[master]
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        if master in _SESSIONS:
            return _SESSIONS[master]
        problem = java_problem()
        if problem:
            raise SparkUnavailable(problem)
        if is_local(master):
            # the UI and block manager bind to SPARK_LOCAL_IP (read by the JVM)
            os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
        builder = SparkSession.builder.master(master)
        for key, value in settings(master).items():
            builder = builder.config(key, value)
        try:
            _SESSIONS[master] = spark = builder.getOrCreate()
        except Exception as exc:   # py4j's, pyspark's: say it in one line
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SparkUnavailable(f"Spark at {master} did not start: {reason}") from None
        spark.sparkContext.setLogLevel("ERROR")   # warnings of Spark's own go to its log
        return spark


def _connect_session(master: str):
    """A new session on the Spark Connect server ``master`` (its own id, so its own
    temporary views), with the session settings of :func:`settings`.

    It is built by Spark Connect's own builder, not by ``SparkSession.builder.remote``:
    that one refuses to start while a classic session runs in the process (a test's
    ``local[2]``), and marks the whole process as a Connect client
    (``SPARK_CONNECT_MODE_ENABLED``), which turns the classic sessions' helpers into
    Connect's. ``create()`` rather than ``getOrCreate()``: the latter returns whichever
    Connect session is active, whatever its server."""
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError as exc:
        raise SparkUnavailable(
            f"Spark Connect needs its client libraries (grpcio, grpcio-status, "
            f"googleapis-common-protos; in requirements.txt): {exc}") from None
    builder = ConnectSession.builder.remote(master)
    for key, value in settings(master).items():
        builder = builder.config(key, value)
    return builder.create()


def _reach(master: str) -> None:
    """Fail in :data:`CONNECT_TIMEOUT` seconds when the Spark Connect server at
    ``master`` does not answer (its client retries a refused connection for ten
    minutes before it gives up)."""
    try:
        import grpc
        from pyspark.sql.connect.client import DefaultChannelBuilder
    except ImportError as exc:
        raise SparkUnavailable(
            f"Spark Connect needs its client libraries (grpcio, grpcio-status, "
            f"googleapis-common-protos; in requirements.txt): {exc}") from None
    try:
        channel = DefaultChannelBuilder(master).toChannel()
    except Exception as exc:  # a malformed URL
        raise SparkUnavailable(f"not a Spark Connect URL: {master!r} ({exc})") from None
    try:
        grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT)
    except grpc.FutureTimeoutError:
        raise SparkUnavailable(f"no Spark Connect server answers at {master} (waited "
                               f"{CONNECT_TIMEOUT:g} s)") from None
    finally:
        channel.close()


def stop() -> None:
    """Stop the sessions this process started (their JVM ends with them; on Spark
    Connect, the server releases them and goes on)."""
    with _LOCK:
        for master, spark in _SESSIONS.items():
            _stop_threads(master)
            _stop(spark)
        _SESSIONS.clear()
    _LOCAL.__dict__.clear()


def _stop_threads(master: str) -> None:
    """Release the threads' own Spark Connect sessions on ``master`` (a classic
    session's ``newSession()`` ends with its SparkContext)."""
    for own in _THREAD_SESSIONS.pop(master, []):
        _stop(own)


def _stop(spark) -> None:
    """Stop a session. A Spark Connect client tells the server, after reading a result,
    that it may drop it (``ReleaseExecute``, sent by a pool of threads): those calls
    must reach the server before the session is released, or they fail on a closed
    session (logged warnings). Closing the client waits for them, but only after it
    released the session: so wait for them first, with the same call."""
    if type(spark).__module__.startswith("pyspark.sql.connect"):
        from pyspark.sql.connect.client.reattach import (
            ExecutePlanResponseReattachableIterator)
        ExecutePlanResponseReattachableIterator.shutdown()
    spark.stop()


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
            started = [m for m in _SESSIONS if m not in before]
            for master in started:
                _stop_threads(master)
                _stop(_SESSIONS.pop(master))


def local_con(engine: Engine):
    """This thread's Ibis connection to the engine's session: a new session of it per
    thread, so each thread's temporary views (``slice_source``...) are its own."""
    master = engine.master or DEFAULT_MASTER
    base = session(engine)
    # a classic session's SparkContext identifies it (a test may stop one, start
    # another); a Spark Connect session has none (no JVM here), but a unique id (not
    # id(): a command's session is stopped, and the next one may reuse its address)
    token = base.session_id if is_connect(master) else id(getattr(base, "_sc", None) or base)
    cons = _LOCAL.__dict__.setdefault("cons", {})
    entry = cons.get(master)
    if entry is None or entry[0] != token:
        if is_connect(master):
            # a Connect session has no newSession() (it needs the JVM's SparkContext):
            # another session on the same server has its own id, so its own views
            own = _connect_session(master)
            with _LOCK:
                _THREAD_SESSIONS.setdefault(master, []).append(own)
        else:
            own = base.newSession()
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
