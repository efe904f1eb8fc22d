"""What the service says on the wire: response models, and the one shape of every client error."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastapi import Request
    from fastapi.exceptions import RequestValidationError


class Problem(BaseModel):
    """A client or server error, with field-level details when the input is at fault."""

    detail: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


class Prediction(BaseModel):
    request_id: str
    prediction: Any
    probabilities: dict[str, float] | None = None


class PredictResponse(BaseModel):
    model: str
    model_version: str
    predictions: list[Prediction]


class FeedbackStored(BaseModel):
    request_id: str
    stored: bool


class ModelInfo(BaseModel):
    name: str
    version: str
    source: str
    task: str
    classes: list[Any]
    metrics: dict[str, Any]
    input_schema: dict[str, Any]
    inference: str = Field(description="direct (the Pipeline's steps one by one, checked identical) or pipeline")


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    model_version: str


class Reloaded(BaseModel):
    reloaded: bool
    previous_version: str
    version: str


MALFORMED = {"model": Problem, "description": "Malformed request"}
TOO_LARGE = {"model": Problem, "description": "Body larger than SERVE_MAX_BODY_BYTES"}
NOT_JSON = {"model": Problem, "description": "Body sent as a media type other than JSON"}
INVALID = {"model": Problem, "description": "Input breaks the contract (field-level errors)"}


def problem(status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, "errors": errors or []})


def invalid(errors: Sequence[Any], detail: str) -> JSONResponse:
    """A 422 with pydantic's errors reduced to what a client needs: where, what, which rule (never the value sent)."""
    shaped = [{"loc": [str(part) for part in item["loc"]], "msg": item["msg"], "type": item["type"]} for item in errors]
    return problem(422, detail, shaped)


async def request_invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
    """Handler for what FastAPI validates itself (headers, query): the same shape as contract errors."""
    return invalid(error.errors(), "the request does not match the API")


def not_json(request: Request) -> JSONResponse | None:
    """A 415 when the body is declared as something else than JSON; no Content-Type is taken as JSON."""
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return None
    return problem(415, f"the body must be JSON (application/json), not {media_type or 'an empty media type'}")


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` bytes (chunked bodies included)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that validates its raw JSON body against `schema` itself."""
    if "$defs" in schema:  # refs would point into the OpenAPI document, where these definitions are not
        raise ValueError("request body schemas must be self-contained")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
