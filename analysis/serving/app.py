"""The FastAPI application: built here, the routes in :mod:`analysis.serving.routers`.

The model is loaded and the log opened in the app's *lifespan*, not at import, so
importing this module does nothing and tests build as many apps as they like (each with
its own metrics registry and store).
"""
from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from analysis.serving.metrics import ServiceMetrics, endpoint_of
from analysis.serving.routers import feedback, predictions, status
from analysis.serving.schemas import BATCH_CAP
from analysis.serving.service import Service, ServiceConfig, ServiceError

#: request bodies larger than this are refused (413) before they are read
MAX_BODY_BYTES = 1 << 20

DESCRIPTION = f"""
The Iris species classifier behind a REST API. Every prediction answered 200 is durable
(write-ahead log, fsync) before the answer leaves, and lands in the store's `iris-api`
dataset within seconds, where the dashboard's *Live monitoring* page watches it.

* `POST /predict`: one record, or `{{"instances": [...]}}` with 1 to {BATCH_CAP} records
  (lengths in cm);
* `POST /feedback`: a true label for an earlier `request_id`;
* `GET /health`, `GET /metrics` (Prometheus).

Invalid payloads get 422 with `detail: [{{field, reason, type}}]` and are not logged.
"""


def _field(loc, kind: str = "") -> str:
    """A validation error's location as a path: ``instances[3].petal_width``."""
    if kind == "json_invalid":       # its location is a character offset
        return "body"
    parts = [p for p in loc if p not in ("body", "record", "batch")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _reason(err: dict) -> str:
    kind, given = err.get("type", ""), err.get("input")
    if kind == "json_invalid":
        at = err.get("loc", (None, None))[-1]
        where = f" at character {at}" if isinstance(at, int) else ""
        return f"malformed JSON{where}: {err.get('ctx', {}).get('error', err.get('msg'))}"
    if kind == "finite_number":
        return "NaN and infinity are not lengths: give a finite number of cm"
    if kind == "model_attributes_type" or kind == "dict_type":
        return "expected a JSON object: one record, or {\"instances\": [...]}"
    if kind == "float_type" and given is None:
        return "null is not a number: give the length in cm"
    if kind == "float_type" and isinstance(given, str):
        return f"a string ({given!r}) is not a number: give the length in cm as a JSON number"
    if kind == "float_type" and isinstance(given, bool):
        return "a boolean is not a number: give the length in cm"
    if kind == "too_long" and err.get("loc", [None])[-1] == "instances":
        return f"a batch holds at most {BATCH_CAP} records"
    if kind == "too_short" and err.get("loc", [None])[-1] == "instances":
        return "a batch holds at least 1 record"
    if kind == "extra_forbidden":
        return "unknown field: not part of the request"
    if kind == "missing" and tuple(err.get("loc", ())) == ("body",):
        return "empty request body: send one record, or {\"instances\": [...]}"
    if kind == "missing":
        return "field required"
    return err.get("msg", "invalid")


class MetricsMiddleware:
    """Counts every request by endpoint, method and code, and times it (pure ASGI, so
    it adds microseconds); refuses bodies over :data:`MAX_BODY_BYTES` with 413."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        code = 500

        async def send_and_see(message):
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)
        try:
            length = dict(scope.get("headers") or ()).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
                response = JSONResponse(status_code=413, content={"detail": [{
                    "field": "body", "type": "too_large",
                    "reason": f"request body over {MAX_BODY_BYTES:,} bytes"}]})
                await response(scope, receive, send_and_see)
            else:
                await self.app(scope, receive, send_and_see)
        finally:
            self.metrics.observe_request(endpoint_of(scope["path"]), scope["method"], code,
                                         time.perf_counter() - started)


def create_app(config: ServiceConfig, registry: CollectorRegistry | None = None,
               say=print) -> FastAPI:
    """The service's app on ``config.store``; ``registry`` holds its metrics (a new
    one by default)."""
    metrics = ServiceMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = Service(config, metrics, say=say).start()
        app.state.service = service
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="Drift Investigator model service", version="1",
                  description=DESCRIPTION, lifespan=lifespan)
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(predictions.router)
    app.include_router(feedback.router)
    app.include_router(status.router)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"field": _field(e.get("loc", ()), e.get("type", "")), "reason": _reason(e),
                   "type": e.get("type", "")} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(ServiceError)
    async def refused(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": [{
            "field": exc.field, "reason": exc.reason, "type": type(exc).__name__}]})

    return app
