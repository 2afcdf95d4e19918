"""The audit log names who did what: tenant, credential, route, run and outcome; never the credential itself."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import structlog
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.gateway import auth_helpers as creds


def test_api_calls_and_refusals_are_audited(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(GATEWAY_AUTH="required", GATEWAY_JWT_SECRET=creds.SECRET)
    token = creds.hs256(tenant="acme")
    with structlog.testing.capture_logs() as logs:
        run = gateway.post("/api/v1/runs", json={"input": "hi"}, headers=creds.bearer(token)).json()
        gateway.get(f"/api/v1/runs/{run['run_id']}", headers=creds.bearer(token))
        gateway.get("/api/v1/runs/x", headers=creds.bearer(creds.unsigned()))
        gateway.get("/healthz")
        with gateway.websocket_connect("/api/v1/ws") as ws, pytest.raises(WebSocketDisconnect):
            ws.receive_text()
        with gateway.websocket_connect(f"/api/v1/ws?token={token}") as ws:
            ws.send_json({"type": "query", "input": "hello"})
            ws_run = ws.receive_json()["run_id"]

    audited = [
        {k: e.get(k) for k in ("event", "method", "route", "status", "tenant", "subject", "run_id")}
        for e in logs
        if e["event"] in ("api call", "websocket refused", "websocket opened", "websocket run")
    ]
    assert audited == [
        {
            "event": "api call",
            "method": "POST",
            "route": "/api/v1/runs",
            "status": 202,
            "tenant": "acme",
            "subject": "jwt:user-1",
            "run_id": None,
        },
        {
            "event": "api call",
            "method": "GET",
            "route": "/api/v1/runs/{run_id}",
            "status": 200,
            "tenant": "acme",
            "subject": "jwt:user-1",
            "run_id": run["run_id"],
        },
        {
            "event": "api call",
            "method": "GET",
            "route": "/api/v1/runs/{run_id}",
            "status": 401,
            "tenant": "",
            "subject": "unauthenticated",
            "run_id": "x",
        },
        {
            "event": "websocket refused",
            "method": None,
            "route": "/api/v1/ws",
            "status": None,
            "tenant": "",
            "subject": "unauthenticated",
            "run_id": None,
        },
        {
            "event": "websocket opened",
            "method": None,
            "route": "/api/v1/ws",
            "status": None,
            "tenant": "acme",
            "subject": "jwt:user-1",
            "run_id": None,
        },
        {
            "event": "websocket run",
            "method": None,
            "route": "/api/v1/ws",
            "status": None,
            "tenant": "acme",
            "subject": "jwt:user-1",
            "run_id": ws_run,
        },
    ]
    assert token not in repr(logs)


def test_every_route_family_is_audited(make_gateway: Callable[..., TestClient]) -> None:
    """The LangGraph Platform API and the OpenAI-compatible one are API calls like /api/v1's."""
    gateway = make_gateway(GATEWAY_AUTH="required", GATEWAY_JWT_SECRET=creds.SECRET)
    headers = creds.bearer(creds.hs256(tenant="acme"))
    with structlog.testing.capture_logs() as logs:
        gateway.get("/langgraph/threads/t1/runs/r1", headers=headers)
        gateway.get("/v1/models", headers=headers)
        gateway.get("/langgraph/threads/t1/runs/r1")
    audited = [(e["route"], e["tenant"], e["status"]) for e in logs if e["event"] == "api call"]
    assert [(route, tenant) for route, tenant, _ in audited] == [
        ("/langgraph/threads/{thread_id}/runs/{run_id}", "acme"),
        ("/v1/models", "acme"),
        ("/langgraph/threads/{thread_id}/runs/{run_id}", ""),
    ]
    assert audited[-1][2] == 401
