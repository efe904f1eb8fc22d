"""What the service says on the wire: response models, and the one shape of every client error."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

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


class ShadowInfo(BaseModel):
    version: str
    role: str
    scored: int = Field(description="rows scored and logged since it was loaded")
    dropped: int = Field(description="rows not scored: the backlog was full")
    failed: int = Field(description="rows the model failed to score")


class ModelInfo(BaseModel):
    name: str
    version: str
    source: str
    task: str
    classes: list[Any]
    metrics: dict[str, Any]
    input_schema: dict[str, Any]
    inference: str = Field(description="direct (the Pipeline's steps one by one, checked identical) or pipeline")
    shadow: ShadowInfo | None = Field(None, description="the model scoring in shadow mode (SERVE_SHADOW), if any")


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    model_version: str
    prediction_log: str = Field(description="where log rows go: the database, or the local journal while it is down")


class Reloaded(BaseModel):
    reloaded: bool
    previous_version: str
    version: str


MALFORMED = {"model": Problem, "description": "Malformed request"}
TOO_LARGE = {"model": Problem, "description": "Body larger than SERVE_MAX_BODY_BYTES"}
NOT_JSON = {"model": Problem, "description": "Body sent as a media type other than JSON"}
INVALID = {"model": Problem, "description": "Input breaks the contract (field-level errors)"}
UNAVAILABLE = {"model": Problem, "description": "The prediction log can take nothing now (Retry-After)"}


# Declares the bearer scheme in the OpenAPI document for the routes that depend on it; the route checks the
# token itself (bearer_refusal), so a refusal has the service's one error shape.
BEARER = Security(HTTPBearer(auto_error=False, description="the route's token, from the service's settings"))
UNAUTHORIZED = {"model": Problem, "description": "No valid bearer token"}
DISABLED = {"model": Problem, "description": "The route is disabled: the service has no token for it"}


def bearer_refusal(request: Request, token: str | None, setting: str, route: str) -> JSONResponse | None:
    """None when the request carries `token` as its bearer token (compared in constant time); otherwise the
    answer: 403 when the service has no token for the route (`setting` unset), 401 for a missing or wrong one."""
    if token is None:
        return problem(403, f"{route} is disabled: set {setting} to enable it")
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
        response = problem(401, "a valid bearer token is required")
        response.headers["www-authenticate"] = "Bearer"
        return response
    return None


def problem(
    status: int, detail: str, errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, "errors": errors or []}, headers=headers)


def invalid(errors: Sequence[Any], detail: str) -> JSONResponse:
    """A 422 with pydantic's errors reduced to what a client needs: where, what, which rule (never the value sent).

    A location is the path to the value at fault: field names, and list positions as numbers (["age"] for one
    record, [2, "age"] for the third record of a batch); ["body"] for the body as a whole.
    """
    shaped = [
        {"loc": [part if isinstance(part, int) else str(part) for part in item["loc"]] or ["body"]}
        | {"msg": item["msg"], "type": item["type"]}
        for item in errors
    ]
    return problem(422, detail, shaped)


async def request_invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
    """Handler for what FastAPI validates itself (headers, query): the same shape as contract errors."""
    return invalid(error.errors(), "the request does not match the API")


class RequestRefusedError(Exception):
    """A request refused before it reaches the model: the answer to send, and why (a metrics label)."""

    def __init__(self, response: JSONResponse, reason: str, fields: list[str] | None = None) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason
        self.fields = fields or ["body"]


class JsonValidator(Protocol):
    """What `json_payload` validates a body with: a pydantic TypeAdapter, or `OneOrMany`."""

    def validate_json(self, data: bytes, /) -> Any: ...


class OneOrMany:
    """Validates a body that is one record (a JSON object) or a list of them, as the body's own shape says.

    A union adapter (`Record | list[Record]`) tries both shapes and reports the failure of each: a bad field
    of one record comes back with a spurious "Input should be a valid array" beside it. Choosing the shape
    from the body's first character gives exactly one error per violation, located at the field.
    """

    def __init__(self, record: type[BaseModel]) -> None:
        self.one: TypeAdapter[Any] = TypeAdapter(record)
        self.many: TypeAdapter[Any] = TypeAdapter(list[record])  # type: ignore[valid-type]  # a model built at run time

    def validate_json(self, data: bytes, /) -> Any:
        start = data.lstrip(b" \t\r\n")[:1]
        if start == b"[":
            return self.many.validate_json(data)
        try:
            return self.one.validate_json(data)
        except ValidationError as error:
            if start == b"{" or any(item["type"] == "json_invalid" for item in error.errors()):
                raise
            # Valid JSON, but neither an object nor a list: name both shapes the body may take.
            shape = PydanticCustomError("body_type", "the body must be one record (an object) or a list of records")
            raise ValidationError.from_exception_data(
                error.title, [{"type": shape, "loc": (), "input": None}]
            ) from None


async def json_payload(request: Request, adapter: JsonValidator, limit: int) -> Any:
    """The body parsed and validated straight from its bytes by `adapter`.

    Raises RequestRefusedError: 415 for a body declared as another media type than JSON (no Content-Type
    counts as JSON), 413 past `limit` bytes (chunked bodies included), 422 for a body that
    breaks the contract.
    """
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        detail = f"the body must be JSON (application/json), not {media_type or 'an empty media type'}"
        raise RequestRefusedError(problem(415, detail), "not_json")
    raw = await _read_limited(request, limit)
    if raw is None:
        raise RequestRefusedError(problem(413, f"the body is larger than {limit} bytes"), "too_large")
    try:
        return adapter.validate_json(raw)
    except ValidationError as error:
        errors = error.errors(include_input=False)
        refusal = invalid(errors, "the input breaks the contract")
        raise RequestRefusedError(refusal, "contract", fields_at_fault(errors)) from None


def fields_at_fault(errors: Sequence[Any]) -> list[str]:
    """The request fields named in validation errors (the last text part of each location), each once."""
    fields: list[str] = []
    for error in errors:
        names = [part for part in error["loc"] if isinstance(part, str)]
        field = names[-1] if names else "body"
        if field not in fields:
            fields.append(field)
    return fields


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` bytes."""
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
