"""POST /feedback: the true label of a logged prediction, kept for monitoring."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field, TypeAdapter, create_model
from sqlalchemy.exc import SQLAlchemyError

from ..api import (
    BEARER,
    DISABLED,
    INVALID,
    MALFORMED,
    NOT_JSON,
    TOO_LARGE,
    UNAUTHORIZED,
    FeedbackStored,
    Problem,
    RequestRefusedError,
    bearer_refusal,
    json_body,
    json_payload,
    problem,
)
from ..state import State

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ...schema import Column
    from ..config import ServingConfig


def feedback_model(target: Column) -> type[BaseModel]:
    """The feedback body: a request id from a /predict answer and a label the contract allows."""
    return create_model(
        "Feedback",
        __config__=ConfigDict(extra="forbid", title="Feedback"),
        request_id=(str, Field(pattern=r"^[0-9a-f]{32}$", description="from a /predict answer")),
        label=(target.annotation(), Field(description="the true target value")),
    )


def router(target: Column, config: ServingConfig) -> APIRouter:
    """The feedback router for labels of the contract's `target`."""
    model = feedback_model(target)
    body: TypeAdapter[Any] = TypeAdapter(model)
    routes = APIRouter(tags=["feedback"])

    @routes.post(
        "/feedback",
        status_code=201,
        response_model=FeedbackStored,
        dependencies=[BEARER],
        responses={
            400: MALFORMED,
            401: UNAUTHORIZED,
            403: DISABLED,
            404: {"model": Problem, "description": "Unknown request id"},
            413: TOO_LARGE,
            415: NOT_JSON,
            422: INVALID,
            503: {"model": Problem, "description": "The prediction log's database is unreachable (Retry-After)"},
        },
        openapi_extra=json_body(model.model_json_schema()),
    )
    async def post_feedback(request: Request, state: State) -> Response:
        """Store the true label (target value) for a prediction's request id (Authorization: Bearer
        $SERVE_FEEDBACK_TOKEN): labels train the next model, so only those holding the token may post them."""
        refused = bearer_refusal(request, config.feedback_token, "SERVE_FEEDBACK_TOKEN", "feedback")
        if refused is not None:
            return refused
        try:
            item = await json_payload(request, body, config.max_body_bytes)
        except RequestRefusedError as refusal:
            return refusal.response
        try:
            stored = await run_in_threadpool(state.log.add_feedback, item.request_id, item.label)
        except SQLAlchemyError:
            return problem(
                503, "the prediction log's database is unreachable: retry later", headers={"retry-after": "5"}
            )
        if not stored:
            return problem(404, f"no prediction with request id {item.request_id!r}")
        return JSONResponse({"request_id": item.request_id, "stored": True}, status_code=201)

    return routes
