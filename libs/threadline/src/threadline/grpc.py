"""gRPC plumbing every service and client shares: traced channels and servers, health."""

from __future__ import annotations

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
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING
