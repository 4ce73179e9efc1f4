"""``POST /predict``: one record or a batch."""
from __future__ import annotations

from fastapi import APIRouter, Response

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
async def predict(body: PredictRequest, service: ServiceDep) -> Response:
    # the answer is built from the response models and serialised by pydantic directly;
    # returning a Response spares FastAPI validating it again against the union
    if isinstance(body, Batch):
        out = await service.predict(body.instances)
        answer = BatchPrediction(model_version=service.model.version, predictions=out)
    else:
        answer = (await service.predict([body]))[0]
    return Response(answer.model_dump_json(), media_type="application/json")
