"""What every router shares, built once when the service starts and read through `State`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from .batching import MicroBatcher
from .loader import LoadedModel, load_model, load_shadow
from .predlog import PredictionLog
from .shadow import Shadow
from .telemetry import ServiceMetrics

if TYPE_CHECKING:
    from ..schema import Contract
    from .config import ServingConfig


@dataclass
class ServiceState:
    """Settings, contract, the served model, the prediction log, metrics and the micro-batcher."""

    config: ServingConfig
    contract: Contract
    task: str
    registered_model: str
    model: LoadedModel
    log: PredictionLog
    metrics: ServiceMetrics
    batcher: MicroBatcher = field(init=False)
    shadow: Shadow | None = field(init=False, default=None)  # the challenger in shadow mode (SERVE_SHADOW)

    def __post_init__(self) -> None:
        self.batcher = MicroBatcher(self.predict_rows, max_rows=max(self.config.max_records, 256))
        self.metrics.model_loaded(self.model)
        self.metrics.watch_log(self.log)
        self.shadow = self.shadow_beside(self.model)

    def shadow_beside(self, serving: LoadedModel) -> Shadow | None:
        """The scorer of SERVE_SHADOW's alias beside `serving`, or None (off, or nothing to compare)."""
        challenger = load_shadow(self.config, self.task, self.registered_model, serving)
        return None if challenger is None else Shadow(challenger.for_requests(self.contract), self.contract, self.log)

    @classmethod
    def start(cls, config: ServingConfig, contract: Contract, task: str, registered_model: str) -> ServiceState:
        """Load the model and open the log: a model that cannot load stops the start, with its reason."""
        model = load_model(config, task, registered_model).for_requests(contract)
        metrics = ServiceMetrics(task, contract)
        log = PredictionLog(  # pii fields are never logged
            config.prediction_log_url,
            pii=contract.pii_features,
            journal_dir=config.log_journal_dir,
            journal_max_rows=config.log_journal_max_rows,
        )
        return cls(config, contract, task, registered_model, model, log, metrics)

    def predict_rows(self, rows: list[dict[str, Any]]) -> tuple[LoadedModel, list[dict[str, Any]]]:
        loaded = self.model  # read per call: a reload swaps it
        return loaded, loaded.predict(self.contract.columns(rows))

    def refused(self, reason: str, fields: list[str]) -> None:
        """Count a refused request and log it for monitoring (reason and fields, never the body)."""
        self.metrics.rejected(reason)
        self.log.record_refusal(reason, fields)

    def reload(self) -> LoadedModel:
        """Load the current champion and serve it, and the alias in shadow beside it; returns the model it
        replaces. Raises if loading fails, and then serves and shadows what it did before."""
        fresh = load_model(self.config, self.task, self.registered_model).for_requests(self.contract)
        shadow = self.shadow_beside(fresh)
        (previous, self.model), (replaced, self.shadow) = (self.model, fresh), (self.shadow, shadow)
        self.metrics.model_loaded(fresh)
        if replaced is not None:
            replaced.close()
        return previous

    def close(self) -> None:
        if self.shadow is not None:  # its last answers reach the log before the log closes
            self.shadow.close()
        self.log.close()


def service(request: Request) -> ServiceState:
    """The state the app built at start-up."""
    state: ServiceState = request.app.state.service
    return state


async def get_state(request: Request) -> ServiceState:
    return service(request)


State = Annotated[ServiceState, Depends(get_state)]
