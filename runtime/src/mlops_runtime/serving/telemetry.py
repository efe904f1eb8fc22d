"""Prometheus metrics of the service: requests, errors, latency, predictions, model version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..metrics import is_classification
from ..schema import NumericColumn

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ..schema import Contract
    from .loader import LoadedModel
    from .predlog import PredictionLog

KNOWN_PATHS = frozenset({"/predict", "/feedback", "/health", "/ready", "/model", "/metrics", "/reload"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    """One registry per app, so several apps (tests, workers) never share counters."""

    def __init__(self, task: str, contract: Contract) -> None:
        self.registry = CollectorRegistry()
        self.classify = is_classification(task)
        self.requests = Counter(
            "http_requests", "HTTP requests by path and status", ["path", "status"], registry=self.registry
        )
        self.rejections = Counter(
            "prediction_rejections", "Predict requests refused, by reason", ["reason"], registry=self.registry
        )
        self.latency = Histogram(
            "prediction_latency_seconds", "Time to answer /predict", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        if self.classify:
            self.predictions: Any = Counter(
                "predictions", "Predictions by predicted class", ["label"], registry=self.registry
            )
        else:
            target = contract.target
            low, high = (target.minimum, target.maximum) if isinstance(target, NumericColumn) else (0.0, 1.0)
            buckets = [low + (high - low) * step / 10 for step in range(1, 11)]
            self.predictions = Histogram(
                "prediction_value", "Predicted values", buckets=buckets, registry=self.registry
            )
        self.model = Gauge(
            "model_info", "The served model (value 1)", ["name", "version", "source"], registry=self.registry
        )
        self.trained = Gauge(
            "model_trained_timestamp_seconds",
            "When the served model was trained (registered, for a registry model): its age for alerts",
            ["version"],
            registry=self.registry,
        )

    def watch_log(self, log: PredictionLog) -> None:
        """Gauges of the prediction log, read at each scrape: rows waiting in the journal, database refusing writes."""
        Gauge(
            "prediction_log_spooled_rows",
            "Log rows in the local journal, waiting for the log's database",
            registry=self.registry,
        ).set_function(lambda: log.health().spooled_rows)
        Gauge(
            "prediction_log_database_down",
            "1 while the log's database refuses writes (rows go to the local journal)",
            registry=self.registry,
        ).set_function(lambda: float(log.health().database_down_since is not None))

    def request(self, path: str, status: int) -> None:
        self.requests.labels(path if path in KNOWN_PATHS else "other", str(status)).inc()

    def rejected(self, reason: str) -> None:
        self.rejections.labels(reason).inc()

    def predicted(self, answers: list[dict[str, Any]], latency: float) -> None:
        self.latency.observe(latency)
        for answer in answers:
            if self.classify:
                self.predictions.labels(str(answer["prediction"])).inc()
            else:
                self.predictions.observe(answer["prediction"])

    def model_loaded(self, loaded: LoadedModel) -> None:
        self.model.clear()
        self.model.labels(loaded.name, loaded.version, loaded.source).set(1)
        self.trained.clear()
        if loaded.trained_at is not None:
            self.trained.labels(loaded.version).set(loaded.trained_at)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class CountRequests:
    """Counts responses by path and status: a plain ASGI middleware, far cheaper than @app.middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            service = getattr(scope["app"].state, "service", None)  # none before start-up completes
            if service is not None:
                service.metrics.request(scope["path"], status)
