"""``GET /health`` and ``GET /metrics`` (Prometheus text format)."""
from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from analysis.serving.dependencies import MetricsDep, ServiceDep
from analysis.serving.schemas import Health

router = APIRouter(tags=["status"])


@router.get("/health", response_model=Health, summary="Is the service up, and what it serves")
async def health(service: ServiceDep) -> Health:
    return Health(**service.health())


@router.get("/metrics", summary="Metrics in Prometheus' text format",
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
