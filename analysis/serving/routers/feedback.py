"""``POST /feedback``: the true label of an earlier prediction."""
from __future__ import annotations

from fastapi import APIRouter

from analysis.serving.dependencies import ServiceDep
from analysis.serving.schemas import ErrorBody, Feedback, FeedbackRecorded

router = APIRouter(tags=["feedback"])


@router.post(
    "/feedback", response_model=FeedbackRecorded,
    responses={404: {"model": ErrorBody, "description": "no prediction has this request_id"},
               409: {"model": ErrorBody, "description": "this request already has a label"},
               422: {"model": ErrorBody, "description": "invalid payload or unknown class"}},
    summary="Record the true label of an earlier prediction")
async def feedback(body: Feedback, service: ServiceDep) -> FeedbackRecorded:
    """Labels arrive later than predictions; realized accuracy is computed from them.
    One label per request id; it is durable (logged) before the answer."""
    return await service.feedback(body.request_id, body.label)
