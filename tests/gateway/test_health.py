"""Readiness: NATS decides whether the gateway takes traffic; the other parts are reported, not fatal."""

from __future__ import annotations

from fastapi.testclient import TestClient
from threadline_gateway.app import create_app
from threadline_gateway.settings import GatewaySettings

from tests.conftest import NATS_URL, free_port


def test_the_gateway_stays_ready_with_nats_and_names_what_is_down(nats_namespace: str) -> None:
    settings = GatewaySettings(
        NATS_URL=NATS_URL,
        NATS_NAMESPACE=nats_namespace,
        RETRIEVAL_TARGET=f"127.0.0.1:{free_port()}",
        MEMORY_TARGET=f"127.0.0.1:{free_port()}",
    )
    with TestClient(create_app(settings)) as client:
        reply = client.get("/readyz")
        live = client.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "degraded",
        "checks": {"nats": "ok", "retrieval": "down", "memory": "down", "agent": "no worker is listening"},
    }
    assert live.json() == {"status": "ok"}
