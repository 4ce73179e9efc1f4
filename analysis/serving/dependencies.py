"""Small dependencies of the routers (swap them in tests with ``app.dependency_overrides``)."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from analysis.serving.metrics import ServiceMetrics
from analysis.serving.service import Service


# async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop per
# request for a dictionary lookup (measured: a quarter of the time per request)
async def get_service(request: Request) -> Service:
    """The running service, set up by the app's lifespan."""
    return request.app.state.service


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


ServiceDep = Annotated[Service, Depends(get_service)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
