"""A live model service: a classifier behind a REST API whose every prediction is logged
durably and lands in the store, where the dashboard monitors it without labels.

Parts, one module each: ``schemas`` (what the API accepts and answers), ``service`` (the
work: predict, log, feedback), ``wal`` (the write-ahead log with group commit),
``compaction`` (log -> the store's Parquet snapshots, in the background), ``metrics``
(Prometheus), ``routers`` (the HTTP routes), ``app`` (the FastAPI app), ``server``
(uvicorn, signals), ``traffic`` (a load client with an input shift). Details:
``docs/serving.md``.
"""
from analysis.serving.service import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]


def create_app(*args, **kwargs):
    """The FastAPI app (imported lazily: FastAPI is needed only to serve)."""
    from analysis.serving.app import create_app as build
    return build(*args, **kwargs)
