"""The embedded store: a catalog of datasets with column roles, and their snapshots.

Layout on disk (one directory per store)::

    <store>/<dataset>/dataset.json              name, task, column roles
    <store>/<dataset>/snapshots/<id>.parquet    the rows of one snapshot
    <store>/<dataset>/snapshots/<id>.json       id, slice, rows, source, loaded_at, sha256
    <store>/<dataset>/labels/<id>.parquet       late labels: id column -> target (optional)
    <store>/<dataset>/labels/<id>.json          their manifest

A snapshot's manifest may list snapshots it ``replaces`` (a live service rolls many small
snapshots up into one): readers then see the merged snapshot and no longer the parts,
whose files are deleted later (:meth:`Store.purge_replaced`), so a reader that listed
them a moment before can still read them. Labels that arrive after their rows (a model
service's feedback) are kept apart, keyed by the dataset's ``id`` column, and joined by
the readers that use them.

DuckDB is the engine that reads it (``read_parquet`` over a slice's snapshot files, see
:mod:`analysis.queries`). Why Parquet files and not tables in one ``.duckdb`` file:
DuckDB lets one process write a database file and, while it does, no other process may
open it; a dashboard that holds the file would lock out every ingester. Here every write
is a new file written under a temporary name and renamed into place (atomic on POSIX),
the manifest last, so a reader sees a snapshot completely or not at all, and any number
of processes can read while another one adds or removes snapshots.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SLICES = ("reference", "production")
#: Rows per Parquet row group of a snapshot. DuckDB scans row groups in parallel and
#: skips those whose min/max statistics fall outside a filter, so a time range over a
#: time-ordered snapshot reads only the groups it touches (one group per file would do
#: neither).
ROW_GROUP_ROWS = 131_072
#: The store the dashboard and the CLI use unless told otherwise.
DEFAULT_STORE = Path(os.environ.get("DRIFT_STORE") or
                     Path(__file__).resolve().parent.parent / "data" / "store")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class StoreError(ValueError):
    """A request the store cannot honour (unknown dataset, bad name, duplicate...)."""


@dataclass
class Roles:
    """What each column of a dataset is."""

    timestamp: str | None = None
    segments: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    prediction: str | None = None
    target: str | None = None
    id: str | None = None
    #: class label -> column holding the model's predicted probability of that class
    probabilities: dict[str, str] = field(default_factory=dict)
    #: columns kept with the rows but not analysed (model version, flags...)
    extra: list[str] = field(default_factory=list)

    @property
    def features(self) -> dict[str, str]:
        """Feature name -> kind, numeric features first."""
        return {**{c: "numeric" for c in self.numeric},
                **{c: "categorical" for c in self.categorical}}

    @property
    def columns(self) -> list[str]:
        cols = [self.id, self.timestamp, *self.segments, *self.numeric, *self.categorical,
                self.prediction, self.target, *self.probabilities.values(), *self.extra]
        return [c for c in cols if c]

    def validate(self) -> None:
        cols = self.columns
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        if dupes:
            raise StoreError(f"a column can have one role only: {', '.join(dupes)}")
        if not self.features:
            raise StoreError("roles name no feature columns")

    @classmethod
    def from_dict(cls, raw: dict) -> "Roles":
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise StoreError(f"unknown role keys: {', '.join(sorted(unknown))}")
        roles = cls(**{k: raw[k] for k in raw})
        for key in ("segments", "numeric", "categorical", "extra"):
            if not isinstance(getattr(roles, key), list):
                raise StoreError(f"role {key!r} must be a list of column names")
        if not isinstance(roles.probabilities, dict):
            raise StoreError("role 'probabilities' must map each class to a column name")
        return roles

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Dataset:
    name: str
    task: str
    roles: Roles
    description: str = ""
    created_at: str = ""


@dataclass
class Snapshot:
    id: str
    slice: str
    rows: int
    source: str
    loaded_at: str
    sha256: str
    path: Path
    warnings: list[str] = field(default_factory=list)
    #: free-form facts about the snapshot: ``replaces`` (ids it merged), ``wal`` (the
    #: write-ahead-log position it covers), ``first`` / ``last`` timestamps...
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("path")
        return d


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_parquet(folder: Path, table: pa.Table) -> tuple[str, Path]:
    """Write ``table`` as ``<new id>.parquet`` in ``folder`` atomically; (id, path)."""
    part_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6]
    path = folder / f"{part_id}.parquet"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{part_id}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return part_id, path


def _all_manifests(folder: Path) -> list[Snapshot]:
    out = []
    for manifest in sorted(folder.glob("*.json")):
        try:
            raw = json.loads(manifest.read_text())
        except FileNotFoundError:   # purged between listing and reading
            continue
        out.append(Snapshot(path=manifest.with_suffix(".parquet"), **raw))
    return out


def _read_manifests(folder: Path) -> list[Snapshot]:
    """The manifests in ``folder`` that no other one replaces."""
    parts = _all_manifests(folder)
    replaced = {r for s in parts for r in s.meta.get("replaces", ())}
    return [s for s in parts if s.id not in replaced]


def _replaced(folder: Path, older_than: float) -> list[str]:
    """Ids in ``folder`` replaced by a manifest written at least ``older_than`` s ago."""
    out = []
    now = time.time()
    for manifest in sorted(folder.glob("*.json")):
        try:
            raw = json.loads(manifest.read_text())
            age = now - manifest.stat().st_mtime
        except FileNotFoundError:
            continue
        if age >= older_than:
            out.extend(raw.get("meta", {}).get("replaces", ()))
    return [p for p in out if (folder / f"{p}.json").exists()]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def table_sha256(table: pa.Table) -> str:
    """Content hash of a table: its schema and values, independent of file encoding."""
    h = hashlib.sha256(str(table.schema).encode())
    for batch in table.combine_chunks().to_batches():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        h.update(sink.getvalue().to_pybytes())
    return h.hexdigest()


class Store:
    """A directory of datasets. Cheap to construct; holds no open files."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- catalog -------------------------------------------------------------------
    def datasets(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/dataset.json"))

    def dataset(self, name: str) -> Dataset:
        path = self.root / name / "dataset.json"
        if not path.is_file():
            known = ", ".join(self.datasets()) or "none"
            raise StoreError(f"no dataset {name!r} in {self.root} (datasets: {known})")
        raw = json.loads(path.read_text())
        return Dataset(raw["name"], raw["task"], Roles.from_dict(raw["roles"]),
                       raw.get("description", ""), raw.get("created_at", ""))

    def create_dataset(self, name: str, roles: Roles, task: str = "regression",
                       description: str = "") -> Dataset:
        if not _NAME.match(name):
            raise StoreError(f"dataset name {name!r}: use letters, digits, '_', '-', '.'")
        if task not in ("regression", "classification"):
            raise StoreError(f"task must be regression or classification, got {task!r}")
        roles.validate()
        folder = self.root / name
        if (folder / "dataset.json").exists():
            raise StoreError(f"dataset {name!r} already exists")
        (folder / "snapshots").mkdir(parents=True, exist_ok=True)
        ds = Dataset(name, task, roles, description, _now())
        payload = {"name": name, "task": task, "roles": roles.to_dict(),
                   "description": description, "created_at": ds.created_at}
        _write_atomic(folder / "dataset.json", json.dumps(payload, indent=2).encode())
        return ds

    def drop_dataset(self, name: str) -> None:
        self.dataset(name)
        shutil.rmtree(self.root / name)

    # -- snapshots -----------------------------------------------------------------
    def snapshots(self, dataset: str, slice: str | None = None) -> list[Snapshot]:
        """The dataset's snapshots (of ``slice``), in load order; a snapshot another one
        ``replaces`` is left out."""
        out = [s for s in _read_manifests(self.root / dataset / "snapshots")
               if slice is None or s.slice == slice]
        return sorted(out, key=lambda s: (s.loaded_at, s.id))

    def files(self, dataset: str, slice: str) -> list[Path]:
        """Parquet files of one slice, in load order."""
        if slice not in SLICES:
            raise StoreError(f"slice must be one of {SLICES}, got {slice!r}")
        return [s.path for s in self.snapshots(dataset, slice)]

    def add_snapshot(self, dataset: str, slice: str, table: pa.Table, source: str,
                     warnings: list[str] | None = None, meta: dict | None = None,
                     check_duplicate: bool = True) -> Snapshot:
        """Store ``table`` as a new snapshot of ``slice``; refuses a duplicate of stored
        content (unless ``check_duplicate`` is False: a writer whose rows are unique by
        construction, such as a service logging request ids, skips reading every
        manifest). ``meta`` is kept in the manifest; ``meta["replaces"]`` (snapshot ids)
        makes this snapshot stand for those, atomically: readers see either the parts or
        this one, never both."""
        if slice not in SLICES:
            raise StoreError(f"slice must be one of {SLICES}, got {slice!r}")
        ds = self.dataset(dataset)
        missing = [c for c in ds.roles.columns if c not in table.column_names]
        if missing:
            raise StoreError(f"snapshot lacks columns of dataset {dataset!r}: {', '.join(missing)}")
        if table.num_rows == 0:
            raise StoreError("snapshot has no rows")
        table = table.select(ds.roles.columns)
        digest = table_sha256(table)
        if check_duplicate:
            for snap in self.snapshots(dataset):
                if snap.sha256 == digest:
                    raise StoreError(f"this content is already stored as snapshot {snap.id} "
                                     f"({snap.source}, {snap.rows} rows)")
        folder = self.root / dataset / "snapshots"
        snap_id, parquet_path = _write_parquet(folder, table)
        snap = Snapshot(snap_id, slice, table.num_rows, source, _now(), digest, parquet_path,
                        list(warnings or []), dict(meta or {}))
        _write_atomic(folder / f"{snap_id}.json", json.dumps(snap.to_dict(), indent=2).encode())
        return snap

    def purge_replaced(self, dataset: str, older_than: float = 60.0) -> list[str]:
        """Delete the files of snapshots (and label parts) that another one replaced at
        least ``older_than`` seconds ago; returns their ids. The delay lets a reader that
        listed the parts just before the merge finish reading them."""
        gone = []
        for folder in (self.root / dataset / "snapshots", self.root / dataset / "labels"):
            for part in _replaced(folder, older_than):
                (folder / f"{part}.json").unlink(missing_ok=True)
                (folder / f"{part}.parquet").unlink(missing_ok=True)
                gone.append(part)
        return gone

    # -- late labels ---------------------------------------------------------------
    def add_labels(self, dataset: str, table: pa.Table, source: str,
                   meta: dict | None = None) -> Snapshot:
        """Store labels that arrived after their rows: ``table`` holds the dataset's id
        column, its target column and ``labelled_at``. Same atomic write as a snapshot
        (slice ``labels``); ``meta["replaces"]`` works as for snapshots."""
        roles = self.dataset(dataset).roles
        if not (roles.id and roles.target):
            raise StoreError(f"dataset {dataset!r} needs an id and a target column for labels")
        missing = [c for c in (roles.id, roles.target) if c not in table.column_names]
        if missing:
            raise StoreError(f"labels lack columns: {', '.join(missing)}")
        if table.num_rows == 0:
            raise StoreError("no labels")
        folder = self.root / dataset / "labels"
        folder.mkdir(parents=True, exist_ok=True)
        part_id, path = _write_parquet(folder, table)
        part = Snapshot(part_id, "labels", table.num_rows, source, _now(), "", path, [],
                        dict(meta or {}))
        _write_atomic(folder / f"{part_id}.json", json.dumps(part.to_dict(), indent=2).encode())
        return part

    def labels(self, dataset: str) -> list[Snapshot]:
        """The dataset's label parts (see :meth:`add_labels`), in load order."""
        out = _read_manifests(self.root / dataset / "labels")
        return sorted(out, key=lambda s: (s.loaded_at, s.id))

    def remove_snapshot(self, dataset: str, snapshot_id: str) -> Snapshot:
        for snap in self.snapshots(dataset):
            if snap.id == snapshot_id:
                # manifest first: readers stop seeing it before its data disappears
                (self.root / dataset / "snapshots" / f"{snap.id}.json").unlink()
                snap.path.unlink(missing_ok=True)
                return snap
        raise StoreError(f"dataset {dataset!r} has no snapshot {snapshot_id!r}")

    def version(self, dataset: str | None = None) -> str:
        """A token that changes whenever a dataset or snapshot is added or removed.

        Only the manifests count (``dataset.json``, ``snapshots/*.json``): files derived
        from the data (frozen bins, bin codes, cached results) do not change it."""
        prefix = dataset if dataset else "*"
        items = sorted(
            (str(p.relative_to(self.root)), p.stat().st_mtime_ns)
            for pattern in (f"{prefix}/dataset.json", f"{prefix}/snapshots/*.json",
                            f"{prefix}/labels/*.json")
            for p in self.root.glob(pattern)
        ) if self.root.is_dir() else []
        return hashlib.sha1(repr(items).encode()).hexdigest()[:16]
