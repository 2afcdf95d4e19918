"""OpenTelemetry set-up and the context propagation that makes one question one trace.

HTTP and gRPC propagate through their instrumentations; NATS messages carry the
W3C ``traceparent`` in their headers through :func:`inject_headers` and
:func:`extract_context`. Spans are exported by OTLP/HTTP when the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def setup_tracing(service_name: str) -> TracerProvider:
    """Install a tracer provider named for the service; export only when an endpoint is set."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # Redis calls (the gateway's rate limits, memory's checkpoint cache) become spans of the call they serve;
    # a service without the Redis client (retrieval) has none, and its install does not carry one.
    if importlib.util.find_spec("redis") is not None:
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        if not RedisInstrumentor().is_instrumented_by_opentelemetry:
            RedisInstrumentor().instrument(tracer_provider=provider)
    return provider


def shutdown_tracing(provider: TracerProvider) -> None:
    """Flush what is buffered so the last spans of a stopping service are not lost."""
    provider.force_flush()
    provider.shutdown()


def inject_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """The current trace context as message headers."""
    carrier = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> Context:
    """The trace context a message carried, or an empty one."""
    return propagate.extract(dict(headers or {}))


def current_trace_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span as hex, for logs."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
