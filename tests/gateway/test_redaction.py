"""PII masked in whatever leaves the API: JSON, server-sent events cut anywhere, WebSocket messages, and
stored content read back through the real memory service; names and numbers come back exactly."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
from langgraph_sdk import get_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket
from threadline_gateway import apikeys
from threadline_gateway.auth import Principal
from threadline_gateway.redaction import RedactionMiddleware, redacted

EMAIL, PHONE, CARD = "ana.lima@example.com", "(555) 123-4567", "4111 1111 1111 1111"
SAID = f"Write to {EMAIL} or call {PHONE}; card {CARD}."
MASKED = "Write to [email] or call [phone]; card [card]."


def test_strings_are_masked_but_names_times_and_numbers_are_kept() -> None:
    value = {
        "thread_id": "555-123-4567",
        "created_at": "2026-12-01T00:00:00Z",
        "values": {"messages": [{"type": "human", "content": SAID, "id": "m1"}], "score": 0.41111111111111111},
        "notes": [SAID, 4111111111111111],
    }
    assert redacted(value) == {
        "thread_id": "555-123-4567",
        "created_at": "2026-12-01T00:00:00Z",
        "values": {"messages": [{"type": "human", "content": MASKED, "id": "m1"}], "score": 0.41111111111111111},
        "notes": [MASKED, 4111111111111111],
    }


def _app(tenants: dict[str, bool]) -> Starlette:
    async def as_json(request: Request) -> JSONResponse:
        request.scope.setdefault("state", {})["principal"] = Principal(request.query_params["t"], "x", "api_key")
        return JSONResponse({"answer": SAID, "run_id": "r1"})

    async def as_events(request: Request) -> StreamingResponse:
        body = (
            f"id: 1\nevent: token\ndata: {json.dumps({'text': SAID}, ensure_ascii=False)}\n\n: ping\n\ndata: [DONE]\n\n"
        ).encode()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 7):  # cut inside events, inside the email, inside a line
                yield body[start : start + 7]

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def as_text(request: Request) -> PlainTextResponse:
        return PlainTextResponse(SAID)

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(json.dumps({"type": "event", "data": {"text": SAID}}))
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/api/v1/json", as_json),
            Route("/api/v1/events", as_events),
            Route("/healthz", as_text),
            WebSocketRoute("/api/v1/ws", socket),
        ]
    )
    app.add_middleware(RedactionMiddleware, default=True, tenants=tenants)
    return app


def test_json_events_and_websocket_messages_are_masked_per_tenant() -> None:
    client = TestClient(_app({"globex": False}))
    masked = client.get("/api/v1/json?t=acme")
    assert masked.json() == {"answer": MASKED, "run_id": "r1"}
    assert int(masked.headers["content-length"]) == len(masked.content)
    assert client.get("/api/v1/json?t=globex").json()["answer"] == SAID  # a tenant that opted out

    events = client.get("/api/v1/events").text
    assert EMAIL not in events and CARD not in events
    data = json.dumps({"text": MASKED}, separators=(",", ":"))
    assert events == f"id: 1\nevent: token\ndata: {data}\n\n: ping\n\ndata: [DONE]\n\n"

    with client.websocket_connect("/api/v1/ws") as ws:
        assert ws.receive_json() == {"type": "event", "data": {"text": MASKED}}
    assert client.get("/healthz").text == SAID  # not the API: left alone


async def test_stored_content_read_back_through_the_gateway_is_masked(
    serve: Callable[..., str], memory_target: str
) -> None:
    """A store item holds PII as it was written; every read of it, by the LangGraph SDK or plain HTTP, is masked."""
    key = apikeys.generate()[1]
    url = serve(
        MEMORY_TARGET=memory_target, GATEWAY_AUTH="required", GATEWAY_API_KEYS=f"acme:{apikeys.digest(key).hex()}"
    )
    client = get_client(url=url + "/langgraph", api_key=key)
    try:
        await client.store.put_item(["crm", "contacts"], "ana", {"note": SAID, "phone": PHONE})
        item = await client.store.get_item(["crm", "contacts"], "ana")
        assert item is not None and item["value"] == {"note": MASKED, "phone": "[phone]"}
        assert item["key"] == "ana" and item["namespace"] == ["crm", "contacts"]
        found = await client.store.search_items(["crm"])
        assert found["items"][0]["value"]["note"] == MASKED
    finally:
        await client.aclose()
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            url + "/langgraph/store/items/search", json={"namespace_prefix": ["crm"]}, headers={"X-API-Key": key}
        )
    assert EMAIL not in reply.text and PHONE not in reply.text and CARD not in reply.text
