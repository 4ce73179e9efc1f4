"""Request and response models: what the API accepts and what leaves it.

Validation happens here, at the edge, before anything is computed or logged: a number
must be a JSON number (not a string, not ``null``, not a boolean) and finite (a length
in cm; a negative one is served and flagged by the edge rule, see
:class:`analysis.scenarios.iris.PlausibleRanges`); no field may be missing or extra; a batch holds 1 to
:data:`BATCH_CAP` records. Anything else is answered 422 with the field and the reason.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

#: most records one ``POST /predict`` may carry
BATCH_CAP = 100
#: longest request id accepted by ``POST /feedback``
ID_LENGTH = 64

Length = Annotated[float, Field(strict=True, allow_inf_nan=False,
                                description="a length in cm: a finite JSON number",
                                examples=[5.1])]


class Record(BaseModel):
    """One flower's measurements, in cm."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]})

    sepal_length: Length
    sepal_width: Length
    petal_length: Length
    petal_width: Length


class Batch(BaseModel):
    """Several records at once (1 to ``BATCH_CAP``); each gets its own ``request_id``."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Record] = Field(min_length=1, max_length=BATCH_CAP,
                                    description=f"1 to {BATCH_CAP} records")


def _kind(value: Any) -> str:
    if isinstance(value, dict) and "instances" in value:
        return "batch"
    if isinstance(value, BaseModel):
        return "batch" if isinstance(value, Batch) else "record"
    return "record"


PredictRequest = Annotated[Union[Annotated[Record, Tag("record")],
                                 Annotated[Batch, Tag("batch")]],
                           Discriminator(_kind)]


class Prediction(BaseModel):
    """The answer for one record."""

    request_id: str = Field(description="identifies this prediction; send it back with "
                                        "the true label to POST /feedback")
    predicted_class: str
    probabilities: dict[str, float] = Field(description="class -> predicted probability")
    model_version: str
    edge_violations: list[str] = Field(
        default_factory=list, description="features whose value lies outside what the "
        "training data makes plausible (served anyway, and counted)")


class BatchPrediction(BaseModel):
    model_version: str
    predictions: list[Prediction]


class Feedback(BaseModel):
    """The true label of an earlier prediction."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"request_id": "5f0c1f0e9a3b4c7d8e2f6a1b3c5d7e9f", "label": "setosa"}]})

    request_id: Annotated[str, Field(strict=True, min_length=1, max_length=ID_LENGTH)]
    label: Annotated[str, Field(strict=True, min_length=1, max_length=64)]


class FeedbackRecorded(BaseModel):
    request_id: str
    label: str
    status: Literal["recorded"] = "recorded"


class Health(BaseModel):
    status: Literal["ok", "draining"]
    model_version: str
    dataset: str
    rows_logged: int = Field(description="predictions durable in the log since start")
    rows_pending: int = Field(description="logged predictions not yet in the store")
    uptime_s: float


class FieldError(BaseModel):
    field: str = Field(description="where: 'petal_width', 'instances[3].sepal_length', 'body'")
    reason: str
    type: str


class ErrorBody(BaseModel):
    detail: list[FieldError]
