"""Browser-facing protections: CORS only for configured origins, security headers, the body limit on the real app."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


def test_cors_allows_only_the_configured_origins(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(GATEWAY_CORS_ORIGINS="https://app.example, https://admin.example")

    allowed = gateway.options("/api/v1/query", headers={"Origin": "https://app.example", **PREFLIGHT})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()

    refused = gateway.options("/api/v1/query", headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert "access-control-allow-origin" not in refused.headers

    simple = gateway.get("/api/v1/runs/nope", headers={"Origin": "https://admin.example"})
    assert simple.headers["access-control-allow-origin"] == "https://admin.example"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


def test_without_configured_origins_there_are_no_cors_headers(gateway: TestClient) -> None:
    reply = gateway.get("/healthz", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in reply.headers


def test_every_response_carries_security_headers(gateway: TestClient) -> None:
    for reply in (gateway.get("/healthz"), gateway.get("/api/v1/runs/nope"), gateway.post("/api/v1/query", json={})):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in reply.headers["content-security-policy"]


def test_the_body_limit_holds_on_the_gateway(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(GATEWAY_MAX_BODY_BYTES=1000)
    reply = gateway.post("/api/v1/runs", json={"input": "x" * 2000})
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"
    assert reply.headers["x-content-type-options"] == "nosniff"
