"""The engine plumbing shared by the binned-count modules: the engine choice, Ibis
connections, the slice source view, compiled-SQL caching and atomic file writes.

Nothing here knows about bins or profiles. The aggregation modules
(:mod:`analysis.reference_bins`, :mod:`analysis.codes`, :mod:`analysis.profiles`,
:mod:`analysis.counts`) build Ibis expressions over the views this module defines, so
the same expressions compile for every Ibis backend. Two run them: an embedded DuckDB
(the default) and Apache Spark (:class:`Engine` with ``name="spark"``; the session
lives in :mod:`analysis.spark`, imported only when asked for). This module and
:mod:`analysis.spark` are the only places that know which backend runs a query: the
others ask :func:`connect`, :func:`files_view`, :func:`run` and :func:`to_arrow`.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pandas as pd

from analysis.queries import Filters, parquet_source
from analysis.store import Store

if TYPE_CHECKING:
    import ibis

#: The segment label of rows whose segment column is NULL.
MISSING_SEGMENT = "(missing)"
#: Ibis truncate units for our window names
UNIT_CODES = {"hour": "h", "day": "D", "week": "W", "month": "M"}
SOURCE_VIEW = "slice_source"
#: The engines a binned-count query can run on.
ENGINES = ("duckdb", "spark")
#: How a query over many features is laid out: "union", one
#: aggregation per feature, unioned (DuckDB's fastest: it scans columns in parallel and
#: a scan costs little); "unpivot", one scan whose rows are unnested into a (feature,
#: bin) row per feature, then one aggregation (Spark's: each union branch would be a
#: stage that reads the files again, 25 scans of a lake for 25 features).
SHAPES = ("union", "unpivot")

_SQL_CACHE: "OrderedDict[tuple, str]" = OrderedDict()
_SQL_CACHE_SIZE = 64
_LOCAL = threading.local()
#: The modules whose expressions compile to cached SQL: a change to any of them
#: invalidates the cache (memory and disk).
_BUILDERS = ("engine.py", "reference_bins.py", "codes.py", "profiles.py", "counts.py")
_BUILDER_VERSION = hashlib.sha256(b"".join(
    (Path(__file__).parent / name).read_bytes() for name in _BUILDERS)).hexdigest()[:12]


@dataclass(frozen=True)
class Engine:
    """Which engine runs the binned counts: hashable, so it can key a cache.

    Parameters
    ----------
    name : 'duckdb' (embedded, the default) or 'spark'
    master : Spark only: ``local[N]``, a cluster master URL (``spark://host:7077``,
        ``yarn``, ``k8s://...``) or a Spark Connect URL (``sc://host:15002``); None
        takes ``local[*]``
    table : Spark only: read production rows from this table of the Spark catalog
        (``db.predictions``, or a path such as ``parquet.`/lake/predictions```)
        instead of the store's production snapshots; the reference, its frozen bins
        and profiles still come from the store
    shape : the layout of multi-feature queries (:data:`SHAPES`); None: the engine's
        own ("union" on DuckDB, "unpivot" on Spark). Both give the same counts.
    """

    name: str = "duckdb"
    master: str | None = None
    table: str | None = None
    shape: str | None = None

    def __post_init__(self):
        if self.name not in ENGINES:
            raise ValueError(f"unknown engine {self.name!r} (choose {' or '.join(ENGINES)})")
        if self.name != "spark" and (self.master or self.table):
            raise ValueError("a Spark master or table needs the spark engine")
        if self.table is not None and (not self.table.strip() or ";" in self.table):
            raise ValueError(f"not a table name: {self.table!r}")
        if self.shape is not None and self.shape not in SHAPES:
            raise ValueError(f"unknown query shape {self.shape!r} (choose {SHAPES})")

    @property
    def spark(self) -> bool:
        return self.name == "spark"

    @property
    def layout(self) -> str:
        """The shape its multi-feature queries take (:data:`SHAPES`)."""
        return self.shape or ("unpivot" if self.spark else "union")

    @property
    def label(self) -> str:
        """How the dashboard and the command line name it."""
        if not self.spark:
            return "DuckDB (embedded)"
        return f"Apache Spark ({self.master or 'local[*]'})" + (
            f", production rows from table {self.table}" if self.table else "")


DUCKDB = Engine()


def engine_from_config(environ=None, secrets=None) -> Engine:
    """The engine a configuration names: ``DRIFT_ENGINE`` (``duckdb`` or ``spark``),
    ``DRIFT_SPARK_MASTER`` and ``DRIFT_SPARK_TABLE`` in ``environ`` (default
    ``os.environ``), else ``engine``, ``spark_master`` and ``spark_table`` in
    ``secrets`` (the dashboard's ``.streamlit/secrets.toml``), else DuckDB."""
    environ = os.environ if environ is None else environ
    secrets = secrets or {}

    def setting(variable: str, key: str) -> str | None:
        value = environ.get(variable) or secrets.get(key)
        return str(value).strip() or None if value is not None else None

    name = (setting("DRIFT_ENGINE", "engine") or "duckdb").lower()
    if name != "spark":
        return Engine(name)
    return Engine(name, setting("DRIFT_SPARK_MASTER", "spark_master"),
                  setting("DRIFT_SPARK_TABLE", "spark_table"))


def runs_on_spark(engine: Engine | None) -> bool:
    """Whether ``engine`` is a Spark one (None: the embedded DuckDB)."""
    return engine is not None and engine.spark


def shape_of(engine: Engine | None) -> str:
    """The query shape of ``engine`` (None: the embedded DuckDB's, "union")."""
    return engine.layout if engine is not None else "union"


def unpivot(t, common: dict, parts: list[dict]):
    """The rows ``t`` as one row per (row, part): the ``common`` columns, then the
    fields of that part (every part has the same field names and types), from one scan
    (an array of one struct per part, unnested). The "unpivot" shape's source."""
    import ibis   # here, not at the top: importing it costs a quarter of a second
    return t.select(**common, __part=ibis.array([ibis.struct(part) for part in parts])
                    .unnest()).unpack("__part")


def present_or_null(x):
    """``x`` where :func:`present`, else NULL: what an aggregate over unpivoted rows
    takes in place of ``where=present(x)``."""
    import ibis
    return ibis.ifelse(present(x), x, ibis.null(x.type()))


def is_spark(con) -> bool:
    """Whether the Ibis connection ``con`` is a Spark session's."""
    return getattr(con, "name", None) == "pyspark"


def connect(engine: Engine | None = None):
    """This thread's Ibis connection to ``engine`` (None: the embedded DuckDB)."""
    if not runs_on_spark(engine):
        return local_con()
    from analysis import spark
    return spark.local_con(engine)


def files_view(con, name: str, files: Sequence) -> "ibis.Table":
    """(Re)define the view ``name`` over the Parquet ``files`` (columns matched by name)
    and return it as an Ibis table."""
    if is_spark(con):
        from analysis import spark
        return spark.files_view(con, name, files)
    return view(con, name, f"SELECT * FROM {parquet_source(files)}")


def to_arrow(con, expr):
    """Execute ``expr`` on ``con`` and return the (small) result as Arrow."""
    import ibis
    if is_spark(con):
        from analysis import spark
        return spark.execute(con, str(ibis.to_sql(expr, dialect="pyspark")))
    return con.to_pyarrow(expr)


def local_con():
    """This thread's Ibis DuckDB connection (a DuckDB connection is not thread-safe)."""
    con = getattr(_LOCAL, "con", None)
    if con is None:
        con = _LOCAL.con = new_con()
    return con


def new_con():
    """A new Ibis DuckDB connection without a progress bar.

    Ibis sets the session time zone to UTC: day truncation of a timestamp with a time
    zone happens in UTC, which the one-pass profiler (:mod:`analysis.onepass`) relies on.
    """
    import ibis
    con = ibis.duckdb.connect()
    con.raw_sql("SET enable_progress_bar = false")
    return con


def connect_slice(store: Store, dataset: str, slice: str, filters: Filters | None = None,
                  files: Sequence[Path] | None = None, engine: Engine | None = None):
    """An Ibis connection to ``engine`` with the slice's snapshots (or ``files``; or the
    engine's production table), filtered by ``filters``, as the view ``slice_source``;
    ``(None, None)`` when there is no file.

    The view name is fixed and the filters live in the view, so that compiled SQL depends
    on neither the file list nor the filter values and can be reused (compiling a
    1000-leaf bin tree costs more than running it)."""
    import ibis
    if runs_on_spark(engine):
        from analysis import spark
        return spark.connect_slice(store, dataset, slice, filters, files, engine)
    files = [str(p) for p in (store.files(dataset, slice) if files is None else files)]
    if not files:
        return None, None
    con = local_con()
    source = f"SELECT * FROM {parquet_source(files)}"
    if filters is not None and (filters.segments or (
            slice == "production" and (filters.start is not None or filters.end is not None))):
        rows = view(con, f"{SOURCE_VIEW}_rows", source)
        source = str(ibis.to_sql(filtered(rows, store, dataset, slice, filters),
                                 dialect="duckdb"))
    return con, view(con, SOURCE_VIEW, source)


def view(con, name: str, sql: str):
    """(Re)define the view ``name`` as ``sql`` and return it as an Ibis table."""
    con.raw_sql(f"CREATE OR REPLACE VIEW {name} AS {sql}")
    return con.table(name)


def filtered(t, store: Store, dataset: str, slice: str, filters: Filters | None):
    """``t`` restricted to the time range (production only) and segment values."""
    roles = store.dataset(dataset).roles
    if filters is None:
        return t
    if slice == "production" and roles.timestamp:
        if filters.start is not None:
            t = t.filter(t[roles.timestamp] >= filters.start)
        if filters.end is not None:
            t = t.filter(t[roles.timestamp] < filters.end)
    for column, values in filters.segments.items():
        t = t.filter(t[column].cast("string").isin([str(v) for v in values]))
    return t


def present(col):
    """Non-missing: not NULL and, for floats, not NaN or +-inf.

    Finite as ``abs(x) < inf`` (NaN compares above every number in DuckDB and in
    Spark) rather than ``isnan``/``isinf``: Ibis 12 compiles ``isinf`` for Spark to a
    constant FALSE, which would count infinities as values there. One comparison costs
    DuckDB what the two tests did."""
    cond = col.notnull()
    if col.type().is_floating():
        cond = cond & (col.abs() < float("inf"))
    return cond


def compiled(key: tuple, build, folder: Path | None = None, dialect: str = "duckdb") -> str:
    """The SQL (DuckDB's, or ``dialect``'s) of the expression ``build()`` returns,
    compiled once per ``key`` and dialect.

    Compiled SQL is kept in memory (bounded) and, when ``folder`` is given (the frozen
    bins' folder), on disk: it is a pure function of the frozen bins and the query's
    shape (never of filter values, which live in the source view), and compiling large
    bin trees costs more than running them."""
    import ibis
    key = (_BUILDER_VERSION, *key) if dialect == "duckdb" else (_BUILDER_VERSION, dialect, *key)
    sql = _SQL_CACHE.get(key)
    path = None
    if sql is None and folder is not None:
        path = folder / f"sql-{hashlib.sha256(repr(key).encode()).hexdigest()[:20]}.sql"
        if path.is_file():
            sql = path.read_text()
    if sql is None:
        sql = str(ibis.to_sql(build(), dialect=dialect))
        if path is not None:
            write_text_atomic(path, sql)
    _SQL_CACHE[key] = sql
    _SQL_CACHE.move_to_end(key)
    while len(_SQL_CACHE) > _SQL_CACHE_SIZE:
        _SQL_CACHE.popitem(last=False)
    return sql


def run(con, key: tuple, build, folder: Path | None = None):
    """Execute the expression ``build()`` returns (compiled once, see :func:`compiled`)
    on the DuckDB or Spark connection ``con``; the result as Arrow."""
    if is_spark(con):
        from analysis import spark
        return spark.execute(con, compiled(key, build, folder, dialect="pyspark"))
    return con.con.sql(compiled(key, build, folder)).to_arrow_table()


def to_frame(table) -> pd.DataFrame:
    """Arrow -> pandas with the segment labels as a categorical (few distinct values, many
    rows: converting them one string at a time is the slow part)."""
    if "segment" in table.column_names:
        i = table.column_names.index("segment")
        table = table.set_column(i, "segment", table.column("segment").dictionary_encode())
    return table.to_pandas(types_mapper={}.get)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` under a temporary name, then rename (readers never see
    half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def copy_to(con, sql: str, path: Path) -> None:
    """Write the result of ``sql`` on the raw DuckDB connection ``con`` to ``path``
    (Parquet, zstd) under a temporary name, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        con.sql(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def epoch_us(value) -> int | None:
    """Microseconds since 1970 of a naive timestamp or a date; None for anything else
    (a timezone-aware value has no single naive reading)."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        return None
    return int(stamp.value // 1000)


def sample_rows(store: Store, dataset: str, slice: str, columns: Sequence[str],
                filters: Filters | None = None, engine: Engine | None = None,
                limit: int = 100_000) -> pd.DataFrame:
    """The ``columns`` of at most about ``limit`` rows of ``slice`` within ``filters``:
    every row when there are no more, else each row kept with probability
    ``limit / rows`` (a Bernoulli sample drawn in the engine, so only the sample leaves
    a lake; not seeded, since Ibis cannot seed a sample on every backend). For pictures
    of a distribution, never for a statistic: those come from the binned counts."""
    import ibis
    con, t = connect_slice(store, dataset, slice, filters, engine=engine)
    if t is None:
        return pd.DataFrame(columns=list(columns))
    rows = to_arrow(con, t.aggregate(n=t.count())).column("n")[0].as_py() or 0
    chosen = t.select(*columns)
    if rows > limit:
        chosen = chosen.filter(ibis.random() < limit / rows)
    return to_arrow(con, chosen).to_pandas()


def engine_to_json(engine: Engine | None) -> dict | None:
    """``engine`` as JSON-ready settings for a background job (None: the embedded DuckDB)."""
    if not runs_on_spark(engine):
        return None
    return {"name": engine.name, "master": engine.master, "table": engine.table,
            "shape": engine.shape}


def engine_from_json(data: dict | None) -> Engine | None:
    """The engine :func:`engine_to_json` described."""
    return Engine(**data) if data else None


def engine_problem(engine: Engine | None) -> str | None:
    """Why ``engine`` cannot run queries (Spark without Java, a master that does not
    start or answer), in one line; None when it can. Starts the Spark session (every
    query needs it anyway)."""
    if not runs_on_spark(engine):
        return None
    from analysis import spark
    try:
        spark.session(engine)
    except spark.SparkUnavailable as exc:
        return str(exc)
    return None
