"""The prediction service (FastAPI). `create_app()` is the factory uvicorn calls.

The request model derives from the input contract (schema.yaml), so the API accepts exactly
what the pipeline validated; the model is the pipeline's own artifact, so there is one copy
of the feature code. Every prediction is logged for monitoring, off the request's path.
"""

from __future__ import annotations

import gc
import hmac
import sys
import time
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from ..errors import StageError
from ..params import load_params
from ..schema import load_contract
from .batching import MicroBatcher
from .config import ServingConfig
from .loader import LoadedModel, load_model
from .predlog import PredictionLog
from .telemetry import ServiceMetrics

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send


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


class ModelInfo(BaseModel):
    name: str
    version: str
    source: str
    task: str
    classes: list[Any]
    metrics: dict[str, Any]
    input_schema: dict[str, Any]
    inference: str = Field(description="direct (the Pipeline's steps one by one, checked identical) or pipeline")


ERRORS = {
    400: {"model": Problem, "description": "Malformed request"},
    413: {"model": Problem, "description": "Body or batch too large"},
    422: {"model": Problem, "description": "Input breaks the contract (field-level errors)"},
}


def problem(status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, "errors": errors or []})


def field_errors(error: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors, reduced to what a client needs: where, what, and the value sent."""
    return [
        {"loc": [str(part) for part in item["loc"]], "msg": item["msg"], "type": item["type"]}
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]


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


class CountRequests:
    """Counts responses by path and status: a plain ASGI middleware, far cheaper than @app.middleware."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], ServiceMetrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            metrics = self.metrics()
            if metrics is not None:
                metrics.request(scope["path"], status)


def create_app(config: ServingConfig | None = None) -> FastAPI:
    """The service: model, contract, prediction log and metrics, set up at start-up."""
    config = config or ServingConfig.from_env()
    params = load_params(config.root / "params.yaml")
    contract = load_contract(config.root / "schema.yaml")
    record = contract.record_model()
    records = TypeAdapter(record | list[record])  # type: ignore[valid-type]
    task, registered_model = params.task, params.mlflow.registered_model
    feedback_model = create_model(
        "Feedback",
        __config__=ConfigDict(extra="forbid"),
        request_id=(str, Field(pattern=r"^[0-9a-f]{32}$", description="from a /predict answer")),
        label=(contract.target_annotation(), Field(description="the true target value")),
    )

    def predict_rows(rows: list[dict[str, Any]]) -> tuple[LoadedModel, list[dict[str, Any]]]:
        loaded: LoadedModel = app.state.model  # read per call: /reload swaps it
        return loaded, loaded.predict(contract.frame(rows))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.model = load_model(config, task, registered_model).for_requests(contract)
        app.state.log = PredictionLog(config.prediction_log_url)
        app.state.metrics = ServiceMetrics(task, contract)
        app.state.metrics.model_loaded(app.state.model)
        app.state.batcher = MicroBatcher(predict_rows, max_rows=max(config.max_records, 256))
        # Long-lived objects (model, contract, app) leave the GC's working set: shorter pauses.
        gc.collect()
        gc.freeze()
        # Hand the GIL over every millisecond (default 5): the event loop and the log writer
        # share one interpreter, and the default shows up as tail latency.
        sys.setswitchinterval(0.001)
        yield
        app.state.log.close()

    app = FastAPI(
        title=f"{registered_model} prediction service",
        version="1",
        lifespan=lifespan,
        description="Predictions from the pipeline's champion model. Inputs follow schema.yaml.",
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in error.errors()]
        return problem(422, "the request does not match the API", errors)

    app.add_middleware(CountRequests, metrics=lambda: getattr(app.state, "metrics", None))

    record_schema = record.model_json_schema(ref_template="#/components/schemas/{model}")
    body_schema = {
        "anyOf": [
            {"$ref": "#/components/schemas/Record"},
            {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Record"},
                "minItems": 1,
                "maxItems": config.max_records,
            },
        ]
    }

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=ERRORS,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}},
    )
    async def predict(request: Request) -> Response:
        """Predict one record (an object) or a batch (a list of objects)."""
        started = time.perf_counter()
        body = await read_limited(request, config.max_body_bytes)
        if body is None:
            return problem(413, f"the body is larger than {config.max_body_bytes} bytes")
        try:
            parsed = records.validate_json(body)
        except ValidationError as error:
            app.state.metrics.rejected("contract")
            return problem(422, "the input breaks the contract", field_errors(error))
        batch = parsed if isinstance(parsed, list) else [parsed]
        if not batch:
            return problem(422, "the batch is empty: send at least one record")
        if len(batch) > config.max_records:
            return problem(413, f"the batch has {len(batch)} records; the limit is {config.max_records}")
        rows = [item.model_dump(by_alias=True) for item in batch]
        loaded, answers = await app.state.batcher.submit(rows)
        latency = time.perf_counter() - started
        now = time.time()
        ids = [uuid.uuid4().hex for _ in rows]
        app.state.log.record(
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
        app.state.metrics.predicted(answers, latency)
        predictions = [answer | {"request_id": request_id} for request_id, answer in zip(ids, answers, strict=True)]
        content = {"model": loaded.name, "model_version": loaded.version, "predictions": predictions}
        return JSONResponse(content)

    async def post_feedback(item: Any) -> Any:
        """The true label (target value) for a prediction's request id, for monitoring."""
        if not app.state.log.add_feedback(item.request_id, item.label):
            return problem(404, f"no prediction with request id {item.request_id!r}")
        return {"request_id": item.request_id, "stored": True}

    # The body model is built from the contract at start-up, so it is set here, not in the signature.
    post_feedback.__annotations__["item"] = feedback_model
    feedback_errors = {400: ERRORS[400], 404: {"model": Problem, "description": "Unknown request id"}, 422: ERRORS[422]}
    app.post("/feedback", status_code=201, responses=feedback_errors)(post_feedback)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"model": Problem}})
    async def ready() -> Any:
        """Ready when a model is loaded."""
        if getattr(app.state, "model", None) is None:
            return problem(503, "no model loaded")
        return {"status": "ready", "model_version": app.state.model.version}

    @app.get("/model", response_model=ModelInfo)
    async def model_info() -> dict[str, Any]:
        """Name, version, source and metrics of the served model, and the input schema."""
        loaded: LoadedModel = app.state.model
        return {
            "name": loaded.name,
            "version": loaded.version,
            "source": loaded.source,
            "task": loaded.task,
            "classes": loaded.classes,
            "metrics": loaded.metrics,
            "input_schema": record_schema,
            "inference": "direct" if loaded.direct else "pipeline",
        }

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(app.state.metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.post("/reload", responses={401: {"model": Problem}, 403: {"model": Problem}, 503: {"model": Problem}})
    async def reload(request: Request) -> Any:
        """Load the current champion without a restart (Authorization: Bearer $SERVE_RELOAD_TOKEN)."""
        if config.reload_token is None:
            return problem(403, "reload is disabled: set SERVE_RELOAD_TOKEN to enable it")
        sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), config.reload_token.encode()):
            return problem(401, "a valid bearer token is required")
        previous: LoadedModel = app.state.model
        try:
            fresh = load_model(config, task, registered_model).for_requests(contract)
        except (StageError, OSError, ValueError) as error:
            return problem(503, f"reload failed, still serving version {previous.version}: {error}")
        app.state.model = fresh
        app.state.metrics.model_loaded(fresh)
        return {"reloaded": True, "previous_version": previous.version, "version": fresh.version}

    app.openapi_schema = None
    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original_openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Record"] = {key: value for key, value in record_schema.items() if key != "$defs"}
            components.update(record_schema.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
