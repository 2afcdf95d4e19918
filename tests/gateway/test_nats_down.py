"""With its NATS connection gone, every run route answers 503 with Retry-After, never a 500 or a hang."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient

from tests.gateway.conftest import services


@pytest.fixture
def cut_off(gateway: TestClient) -> TestClient:
    # The app's real connection, closed: what a gateway sees when NATS is gone and not yet back.
    gateway.portal.call(services(gateway).bus.nc.close)
    return gateway


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/runs"),
        ("POST", "/api/v1/runs/stream"),
        ("POST", "/api/v1/query"),
        ("GET", f"/api/v1/runs/{uuid.uuid4()}"),
        ("GET", f"/api/v1/runs/{uuid.uuid4()}/wait"),
        ("GET", f"/api/v1/runs/{uuid.uuid4()}/stream"),
    ],
)
def test_run_routes_answer_503_when_nats_is_gone(cut_off: TestClient, method: str, path: str) -> None:
    reply = cut_off.request(method, path, json={"input": "hello"} if method == "POST" else None)
    assert reply.status_code == 503, reply.text
    assert reply.headers["retry-after"] == "2"
    assert reply.json()["error"]["code"] == "unavailable"


def test_a_websocket_query_is_refused_with_unavailable(cut_off: TestClient) -> None:
    with cut_off.websocket_connect("/api/v1/ws") as ws:
        ws.send_text(json.dumps({"type": "query", "input": "hello", "ref": "q"}))
        reply = ws.receive_json()
    assert reply["ref"] == "q"
    assert reply["error"]["code"] == "unavailable"
