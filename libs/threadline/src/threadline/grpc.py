"""gRPC plumbing every service and client shares: traced channels and servers, health, and the
exceptions a servicer raises to answer with a status code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor

from threadline.metrics import RpcMetrics

# Keepalives let a client notice a dead server instead of waiting on a half-open socket.
_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


class ServiceError(Exception):
    """A failure the caller can act on: answered with ``code`` and the message, never a traceback."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN


class BadRequest(ServiceError):
    """The request is malformed; the message says how (the caller must not retry it as it is)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(ServiceError):
    """The request is well formed but the state it meets refuses it (e.g. another embedding model)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ServiceError):
    """A dependency (a database, an embedding endpoint) did not answer; the caller may retry later."""

    code = grpc.StatusCode.UNAVAILABLE


@asynccontextmanager
async def abort_on_error(context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
    """Wrap a handler's work: a :class:`ServiceError` raised inside ends the call with its code and message."""
    try:
        yield
    except ServiceError as exc:
        await context.abort(exc.code, str(exc))


def traced_channel(target: str) -> grpc.aio.Channel:
    """An insecure channel whose calls carry the current trace context in their metadata."""
    return grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS, interceptors=aio_client_interceptors())


def traced_server(metrics: RpcMetrics | None = None) -> grpc.aio.Server:
    """A server whose handlers run inside the caller's trace, timed into ``metrics`` when given."""
    interceptors = [aio_server_interceptor(), *([metrics.interceptor()] if metrics else [])]
    return grpc.aio.server(interceptors=interceptors, options=_CHANNEL_OPTIONS)


def add_health_and_reflection(server: grpc.aio.Server, service_names: list[str]) -> health.aio.HealthServicer:
    """gRPC health (so probes and ``grpc_health_probe`` work) and reflection (so ``grpcurl`` works)."""
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    return servicer


async def set_serving(servicer: health.aio.HealthServicer, service_names: list[str], serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ["", *service_names]:
        await servicer.set(name, status)


async def check_health(target: str, timeout: float = 2.0) -> bool:
    """True when the server at ``target`` reports SERVING."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            # The stubs leave out the methods that the generated constructor sets.
            reply: health_pb2.HealthCheckResponse = await stub.Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING
