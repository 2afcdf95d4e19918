"""Prometheus metrics of the gateway, served at ``/metrics``.

Each app has its own registry, so several apps in one process (tests) do not collide on metric names.
"""

from __future__ import annotations

import time
from typing import Literal

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline_gateway.route_template import route_template

# Run-length buckets: a streamed run holds its request open until the answer is complete.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

# How a client asked for a run, and how the run ended for the client that started it.
RunMode = Literal["query", "background", "stream", "websocket", "openai", "langgraph", "cron", "mcp"]
RunOutcomeLabel = Literal["success", "error", "timeout", "disconnected"]


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "threadline_gateway_request_seconds",
            "HTTP request latency until the response is complete (for a stream: until it closes).",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.runs_started = Counter(
            "threadline_gateway_runs_started_total",
            "Runs this gateway submitted, by how the client asked "
            "(query, stream, background, websocket, openai, langgraph).",
            ["mode"],
            registry=self.registry,
        )
        self.runs = Counter(
            "threadline_gateway_runs_total",
            "Outcomes of runs this gateway submitted and followed to the end: success, error, timeout, disconnected.",
            ["outcome"],
            registry=self.registry,
        )

    def run_started(self, mode: RunMode) -> None:
        self.runs_started.labels(mode).inc()

    def run_finished(self, outcome: RunOutcomeLabel) -> None:
        self.runs.labels(outcome).inc()

    def render(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Times every HTTP request, labelled by route template (never the raw path, which would explode cardinality)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app dies before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            template = route_template(scope)
            if template != "/metrics":
                self.metrics.request_seconds.labels(scope["method"], template, str(status)).observe(
                    time.perf_counter() - start
                )
