"""Prometheus metrics for /metrics, and the ASGI middleware that records every request.

The middleware is plain ASGI (no BaseHTTPMiddleware, which costs a task per request): it times
the request, counts it by route and status, stamps the model version and a request id on every
response, and refuses oversized bodies with 413 before the app reads them.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A caller's own X-Request-Id is kept (to trace a request across services) when it is sane.
REQUEST_ID_FORMAT = re.compile(r"[A-Za-z0-9._-]{1,64}")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Telemetry:
    """The service's metrics, in a registry of their own (one per app, so tests stay isolated)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request to response, by route, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predicted_classes = Counter(
            "predictions",
            "Records predicted, by predicted class (classification).",
            ["predicted_class"],
            registry=self.registry,
        )
        self.predicted_values = Histogram(
            "prediction_value",
            "Predicted values (regression).",
            registry=self.registry,
        )
        self.model_info = Gauge(
            "model_info",
            "The model being served (value 1), by name and version.",
            ["name", "version"],
            registry=self.registry,
        )
        self.model_ready = Gauge(
            "model_ready", "1 when a verified model is serving.", registry=self.registry
        )
        self._rollout_metrics()
        self.log_dropped = Counter(
            "prediction_log_dropped_records",
            "Prediction records not logged, by reason (queue_full, write_error).",
            ["reason"],
            registry=self.registry,
        )

    def _rollout_metrics(self) -> None:
        """What a challenger does beside the champion (serve.rollout)."""
        self.model_predictions = Counter(
            "model_predictions",
            "Records predicted, by model version and role (champion or challenger: answered; "
            "shadow: scored by the challenger, not answered).",
            ["model_version", "role"],
            registry=self.registry,
        )
        self.shadow_disagreements = Counter(
            "shadow_disagreements",
            "Shadow-scored records whose class differs from the champion's answer.",
            ["model_version"],
            registry=self.registry,
        )
        self.shadow_differences = Histogram(
            "shadow_prediction_difference",
            "|challenger - champion| of each shadow-scored value (regression).",
            registry=self.registry,
        )
        self.shadow_failures = Counter(
            "shadow_failures",
            "Shadow scoring calls that failed (no client sees them).",
            registry=self.registry,
        )

    def drop_log_records(self, reason: str, count: int) -> None:
        """Count prediction records the log could not keep."""
        self.log_dropped.labels(reason).inc(count)


def _too_large(send: Send, limit: int) -> Awaitable[None]:
    async def respond() -> None:
        body = (
            b'{"detail":[{"loc":["body"],"msg":"request body is larger than the limit of '
            + str(limit).encode()
            + b' bytes (serve.max_body_bytes); send fewer records per request",'
            b'"type":"body_too_large"}]}'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return respond()


class RequestMiddleware:
    """Per-request bookkeeping; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        telemetry: Telemetry,
        routes: frozenset[str],
        model_version: Callable[[], str],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.telemetry = telemetry
        self.routes = routes
        self.model_version = model_version
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = scope["path"] if scope["path"] in self.routes else "unmatched"
        request_id = _client_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # The model that answered: the route names it when a challenger did.
                version = scope["state"].get("model_version") or self.model_version()
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                    (b"x-model-version", version.encode("latin-1")),
                ]
            await send(message)

        try:
            limited = await self._limit_body(scope, receive)
            if limited is None:
                await _too_large(send_with_headers, self.max_body_bytes)
            else:
                await self.app(scope, limited, send_with_headers)
        finally:
            method = scope["method"]
            self.telemetry.requests.labels(route, method, str(status)).inc()
            self.telemetry.latency.labels(route, method, str(status)).observe(
                time.perf_counter() - started
            )

    async def _limit_body(self, scope: Scope, receive: Receive) -> Receive | None:
        """`receive` if the body fits the limit, or None when it does not."""
        declared = _header(scope, b"content-length")
        if declared is not None:
            return receive if declared.isdigit() and int(declared) <= self.max_body_bytes else None
        if scope["method"] in {"GET", "HEAD", "OPTIONS"}:
            return receive
        # No length declared (chunked): read up to the limit, then replay what was read.
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return None
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return replay


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def _client_request_id(scope: Scope) -> str | None:
    given = _header(scope, b"x-request-id")
    return given if given is not None and REQUEST_ID_FORMAT.fullmatch(given) else None
