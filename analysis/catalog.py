"""What the store holds, per dataset: rows per slice, including rows a model service
logged that have not reached a snapshot yet (``python -m analysis datasets``)."""
from __future__ import annotations

from analysis.store import Store


def datasets_table(store: Store) -> list[dict]:
    """One dict per dataset: ``name``, ``task``, ``reference_rows``, ``production_rows``
    (stored in snapshots plus logged and not yet compacted), ``production_rows_stored``,
    ``production_rows_pending``, ``labels`` (late labels, stored and pending),
    ``snapshots``, ``last_loaded_at``. Row counts come from the snapshots' manifests and
    from reading the service's write-ahead log, never from scanning the data."""
    from analysis.serving.compaction import pending_records

    out = []
    for name in store.datasets():
        info = store.dataset(name)
        snaps = store.snapshots(name)
        rows = {sl: sum(s.rows for s in snaps if s.slice == sl) for sl in ("reference", "production")}
        labels = sum(p.rows for p in store.labels(name))
        pending_rows = pending_labels = 0
        wal = store.root / name / "wal"
        if wal.is_dir():
            preds, labs, _ = pending_records(store, name, wal)
            pending_rows, pending_labels = len(preds), len(labs)
        out.append({
            "name": name, "task": info.task,
            "reference_rows": rows["reference"],
            "production_rows": rows["production"] + pending_rows,
            "production_rows_stored": rows["production"],
            "production_rows_pending": pending_rows,
            "labels": labels + pending_labels,
            "snapshots": len(snaps),
            "last_loaded_at": max((s.loaded_at for s in snaps), default=None),
        })
    return out


def format_datasets(rows: list[dict]) -> str:
    head = ("dataset", "task", "reference rows", "production rows", "of which pending",
            "labels", "snapshots")
    body = [(r["name"], r["task"], f"{r['reference_rows']:,}", f"{r['production_rows']:,}",
             f"{r['production_rows_pending']:,}", f"{r['labels']:,}", str(r["snapshots"]))
            for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                       for i, (c, w) in enumerate(zip(line, widths))) for line in [head, *body]]
    lines.append(f"{len(rows)} dataset(s); pending: logged by a model service, not yet in a "
                 "snapshot (it compacts them within seconds, or on its next start)")
    return "\n".join(lines)
