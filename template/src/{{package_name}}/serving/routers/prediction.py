"""POST /predict: one record or a batch, checked against the contract, answered by the served model."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter, ValidationError

from ..api import (
    INVALID,
    MALFORMED,
    NOT_JSON,
    TOO_LARGE,
    PredictResponse,
    invalid,
    json_body,
    not_json,
    problem,
    read_limited,
)
from ..state import State

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..config import ServingConfig


def request_schema(record: type[BaseModel], max_records: int) -> dict[str, Any]:
    """The body's JSON Schema, from the request model itself: one record, or a list of 1 to max_records."""
    one = record.model_json_schema()
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1, "maxItems": max_records}]}


def router(record: type[BaseModel], config: ServingConfig) -> APIRouter:
    """The prediction router for `record`, the contract's request model."""
    # The body is parsed straight from bytes (no intermediate Python objects): the request path's biggest saving.
    body: TypeAdapter[Any] = TypeAdapter(record | list[record])  # type: ignore[arg-type,valid-type]  # built at run time
    routes = APIRouter(tags=["prediction"])

    @routes.post(
        "/predict",
        response_model=PredictResponse,
        responses={400: MALFORMED, 413: TOO_LARGE, 415: NOT_JSON, 422: INVALID},
        openapi_extra=json_body(request_schema(record, config.max_records)),
    )
    async def predict(request: Request, state: State) -> Response:
        """Predict one record (an object) or a batch (a list of objects)."""
        started = time.perf_counter()
        refused = not_json(request)
        if refused is not None:
            return refused
        raw = await read_limited(request, config.max_body_bytes)
        if raw is None:
            return problem(413, f"the body is larger than {config.max_body_bytes} bytes")
        try:
            parsed = body.validate_json(raw)
        except ValidationError as error:
            state.metrics.rejected("contract")
            return invalid(error.errors(include_input=False), "the input breaks the contract")
        batch = parsed if isinstance(parsed, list) else [parsed]
        if not batch:
            return problem(422, "the batch is empty: send at least one record")
        if len(batch) > config.max_records:  # the document's maxItems: a contract error like any other
            state.metrics.rejected("contract")
            too_long = {"loc": ["body"], "msg": f"at most {config.max_records} records per request", "type": "too_long"}
            return invalid([too_long], f"the batch has {len(batch)} records; the limit is {config.max_records}")
        rows = [item.model_dump(by_alias=True) for item in batch]
        loaded, answers = await state.batcher.submit(rows)
        latency = time.perf_counter() - started
        now = time.time()
        ids = [uuid.uuid4().hex for _ in rows]
        state.log.record(
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
        state.metrics.predicted(answers, latency)
        predictions = [answer | {"request_id": request_id} for request_id, answer in zip(ids, answers, strict=True)]
        return JSONResponse({"model": loaded.name, "model_version": loaded.version, "predictions": predictions})

    return routes
