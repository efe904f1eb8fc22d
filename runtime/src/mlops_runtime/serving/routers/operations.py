"""Operations: liveness, readiness, what is served, Prometheus metrics, and reloading the champion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...errors import StageError
from ..api import BEARER, DISABLED, UNAUTHORIZED, Health, ModelInfo, Problem, Ready, Reloaded, bearer_refusal, problem
from ..state import State

if TYPE_CHECKING:
    from pydantic import BaseModel


def router(record: type[BaseModel]) -> APIRouter:
    """The operations router; /model shows `record`'s schema, the contract as the API takes it."""
    record_schema = record.model_json_schema()
    routes = APIRouter(tags=["operations"])

    @routes.get("/health", response_model=Health)
    async def health() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @routes.get("/ready", response_model=Ready, responses={503: {"model": Problem}})
    async def ready(request: Request) -> Any:
        """Ready when a model is loaded and the prediction log takes rows (its database, or the local journal)."""
        service = getattr(request.app.state, "service", None)
        if service is None:
            return problem(503, "no model loaded")
        log = service.log.health()
        if log.journal_full:
            return problem(503, f"the prediction log takes nothing: {log.describe()}")
        return {"status": "ready", "model_version": service.model.version, "prediction_log": log.describe()}

    @routes.get("/model", response_model=ModelInfo)
    async def model_info(state: State) -> dict[str, Any]:
        """Name, version, source and metrics of the served model, and the input schema."""
        loaded = state.model
        return {
            "name": loaded.name,
            "version": loaded.version,
            "source": loaded.source,
            "task": loaded.task,
            "classes": loaded.classes,
            "metrics": loaded.metrics,
            "input_schema": record_schema,
            "inference": "direct" if loaded.direct else "pipeline",
            "shadow": None if state.shadow is None else state.shadow.describe(),
        }

    @routes.get("/metrics", response_class=Response)
    async def metrics(state: State) -> Response:
        """Prometheus metrics."""
        return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4")

    @routes.post(
        "/reload",
        response_model=Reloaded,
        dependencies=[BEARER],
        responses={401: UNAUTHORIZED, 403: DISABLED, 503: {"model": Problem}},
    )
    async def reload(request: Request, state: State) -> Any:
        """Load the current champion without a restart (Authorization: Bearer $SERVE_RELOAD_TOKEN)."""
        refused = bearer_refusal(request, state.config.reload_token, "SERVE_RELOAD_TOKEN", "reload")
        if refused is not None:
            return refused
        serving = state.model.version
        try:
            previous = state.reload()
        except (StageError, OSError, ValueError) as error:
            return problem(503, f"reload failed, still serving version {serving}: {error}")
        return {"reloaded": True, "previous_version": previous.version, "version": state.model.version}

    return routes
