"""The threads routes when the memory service is away: a 503 with Retry-After, never a hang or a 500."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_no_memory_service_is_a_503_with_retry_after(gateway: TestClient) -> None:
    for method, path in [("GET", "/state"), ("GET", "/history"), ("DELETE", "")]:
        reply = gateway.request(method, f"/api/v1/threads/some-thread{path}")
        assert reply.status_code == 503, reply.text
        assert reply.headers["retry-after"] == "2" and reply.json()["error"]["code"] == "memory_unavailable"
