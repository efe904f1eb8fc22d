"""POST /predict: one record or a batch, checked against the contract, answered by the served model."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..api import (
    INVALID,
    MALFORMED,
    NOT_JSON,
    TOO_LARGE,
    UNAVAILABLE,
    OneOrMany,
    PredictResponse,
    RequestRefusedError,
    invalid,
    json_body,
    json_payload,
    problem,
)
from ..predlog import LogUnavailableError
from ..state import service

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..config import ServingConfig


def request_schema(record: type[BaseModel], max_records: int) -> dict[str, Any]:
    """The body's JSON Schema, from the request model itself: one record, or a list of 1 to max_records."""
    one = record.model_json_schema()
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1, "maxItems": max_records}]}


def batch_size_refused(size: int, max_records: int) -> Response:
    if size == 0:
        error = {"loc": ["body"], "msg": "at least 1 record per request", "type": "too_short"}
        return invalid([error], "the batch is empty: send at least one record")
    error = {"loc": ["body"], "msg": f"at most {max_records} records per request", "type": "too_long"}
    return invalid([error], f"the batch has {size} records; the limit is {max_records}")


def router(record: type[BaseModel], config: ServingConfig) -> APIRouter:
    """The prediction router for `record`, the contract's request model."""
    # The body is parsed straight from bytes (no intermediate Python objects): the request path's biggest saving.
    # One record or a list, validated as the one shape the body has: one error per violation, at its field.
    body = OneOrMany(record)
    routes = APIRouter(tags=["prediction"])

    @routes.post(
        "/predict",
        response_model=PredictResponse,
        responses={400: MALFORMED, 413: TOO_LARGE, 415: NOT_JSON, 422: INVALID, 503: UNAVAILABLE},
        openapi_extra=json_body(request_schema(record, config.max_records)),
    )
    async def predict(request: Request) -> Response:
        """Predict one record (an object) or a batch (a list of objects)."""
        started = time.perf_counter()
        state = service(request)  # not a FastAPI dependency: on the hot path its resolution costs ~5% of a request
        try:
            parsed = await json_payload(request, body, config.max_body_bytes)
        except RequestRefusedError as refusal:
            state.refused(refusal.reason, refusal.fields)
            return refusal.response
        batch = parsed if isinstance(parsed, list) else [parsed]
        if not 1 <= len(batch) <= config.max_records:  # the document's minItems and maxItems: contract errors
            state.refused("contract", ["body"])
            return batch_size_refused(len(batch), config.max_records)
        rows = [item.model_dump(by_alias=True) for item in batch]
        loaded, answers = await state.batcher.submit(rows)
        latency = time.perf_counter() - started
        now = time.time()
        ids = [uuid.uuid4().hex for _ in rows]
        logged = state.log.commit(
            [
                {
                    "request_id": request_id,
                    "created_at": now,
                    "model_version": loaded.version,
                    "input": row,
                    "output": answer,
                    "latency_ms": latency * 1000,
                }
                for request_id, row, answer in zip(ids, rows, answers, strict=True)
            ]
        )
        try:  # answered only once logged: a crash after this loses no answered prediction
            await logged
        except LogUnavailableError as error:
            return problem(503, f"not answered: {error}; retry later", headers={"retry-after": "5"})
        state.metrics.predicted(answers, latency)
        if state.shadow is not None:  # answered: the challenger scores the same rows off the request path
            state.shadow.submit(ids, rows)
        predictions = [answer | {"request_id": request_id} for request_id, answer in zip(ids, answers, strict=True)]
        return JSONResponse({"model": loaded.name, "model_version": loaded.version, "predictions": predictions})

    return routes
