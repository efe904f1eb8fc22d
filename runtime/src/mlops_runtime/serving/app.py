"""The prediction service (FastAPI). `create_app(config)` is the factory the CLI serves.

The request model derives from the input contract (schema.yaml), so the API accepts exactly
what the pipeline validated; the model is the pipeline's own artifact, so there is one copy
of the feature code. Every prediction is logged for monitoring, off the request's path.
"""

from __future__ import annotations

import gc
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from ..params import load_params
from ..schema import load_contract
from .api import request_invalid
from .config import ServingConfig
from .routers import feedback, operations, prediction
from .state import ServiceState
from .telemetry import CountRequests

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def create_app(config: ServingConfig | None = None) -> FastAPI:
    """The service: routers built from the contract now, model and prediction log loaded at start-up."""
    config = config or ServingConfig.from_env()
    params = load_params(config.paths.params)
    contract = load_contract(config.paths.schema)
    record = contract.record_model()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = ServiceState.start(config, contract, params.task, params.mlflow.registered_model)
        # Long-lived objects (model, contract, app) leave the GC's working set: shorter pauses.
        gc.collect()
        gc.freeze()
        # Hand the GIL over every millisecond (default 5): the event loop and the log writer
        # share one interpreter, and the default shows up as tail latency.
        sys.setswitchinterval(0.001)
        yield
        app.state.service.close()

    app = FastAPI(
        title=f"{params.mlflow.registered_model} prediction service",
        version="1",
        lifespan=lifespan,
        description="Predictions from the pipeline's champion model. Inputs follow schema.yaml.",
    )
    app.add_exception_handler(RequestValidationError, request_invalid)  # type: ignore[arg-type]  # Starlette types handlers loosely
    app.add_middleware(CountRequests)
    app.include_router(prediction.router(record, config))
    app.include_router(feedback.router(contract.target, config))
    app.include_router(operations.router(record))
    return app
