"""``POST /predict``: one record or a batch."""
from __future__ import annotations

from fastapi import APIRouter

from analysis.serving.dependencies import ServiceDep
from analysis.serving.schemas import (BATCH_CAP, Batch, BatchPrediction, ErrorBody,
                                      Prediction, PredictRequest)

router = APIRouter(tags=["predictions"])


@router.post(
    "/predict", response_model=Prediction | BatchPrediction,
    responses={422: {"model": ErrorBody, "description": "invalid payload: the field and the "
                     "reason (nothing is logged)"},
               503: {"model": ErrorBody, "description": "the service is shutting down"}},
    summary="Predict the species of one flower, or of a batch",
    description=f"One record (four lengths in cm) or `{{\"instances\": [...]}}` with 1 to "
                f"{BATCH_CAP} records. Each record gets a `request_id`; the answer is sent "
                "only after its row is durable in the write-ahead log. Values outside the "
                "training data's plausible range are served and listed in `edge_violations`.")
async def predict(body: PredictRequest, service: ServiceDep):
    if isinstance(body, Batch):
        out = await service.predict(body.instances)
        return BatchPrediction(model_version=service.model.version, predictions=out)
    return (await service.predict([body]))[0]
