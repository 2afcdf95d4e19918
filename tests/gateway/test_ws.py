"""The WebSocket protocol on real NATS: size limit, bad messages, resume, per-connection run limit."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from threadline_gateway.run_bus import RunRecord

from tests.gateway.conftest import ANSWER, publish_events, remember, run_events


def test_an_oversized_message_closes_with_1009(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(GATEWAY_WS_MAX_MESSAGE_BYTES=1000)
    with gateway.websocket_connect("/api/v1/ws") as ws:
        ws.send_text(json.dumps({"type": "query", "input": "x" * 1000}))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1009


def test_bad_messages_are_answered_and_the_connection_stays_open(gateway: TestClient) -> None:
    with gateway.websocket_connect("/api/v1/ws") as ws:
        for garbage in ("{not json", "[" * 50_000):
            ws.send_text(garbage)
            assert ws.receive_json()["error"]["code"] == "bad_request"
        ws.send_bytes(b'{"type": "query", "input": "\xff"}')
        assert ws.receive_json()["error"]["code"] == "bad_request"

        ws.send_text(json.dumps({"type": "query", "input": "  ", "ref": "q1"}))
        reply = ws.receive_json()
        assert reply["ref"] == "q1"
        assert reply["error"]["code"] == "validation_error"
        assert [f["field"] for f in reply["error"]["details"]["fields"]] == ["input"]

        ws.send_text(json.dumps({"type": "query", "thread_id": "../x", "input": "hi"}))
        assert [f["field"] for f in ws.receive_json()["error"]["details"]["fields"]] == ["thread_id"]
        ws.send_text(json.dumps({"type": "query"}))  # no question, and no decision to resume with
        assert [f["field"] for f in ws.receive_json()["error"]["details"]["fields"]] == ["input"]

        ws.send_text(json.dumps({"type": "dance"}))
        assert ws.receive_json()["error"]["code"] == "validation_error"

        ws.send_text(json.dumps({"type": "resume", "run_id": str(uuid.uuid4()), "ref": "r"}))
        unknown = ws.receive_json()
        assert (unknown["type"], unknown["ref"], unknown["error"]["code"]) == ("error", "r", "not_found")


def test_resume_relays_the_rest_of_a_run_tagged_with_its_id(gateway: TestClient, nats_namespace: str) -> None:
    record = RunRecord(run_id=str(uuid.uuid4()), thread_id="t", tenant_id="default", assistant_id="agent")
    remember(gateway, record)
    publish_events(nats_namespace, record.run_id, run_events(record.run_id, record.thread_id))

    with gateway.websocket_connect("/api/v1/ws") as ws:
        ws.send_text(json.dumps({"type": "resume", "run_id": record.run_id, "after_seq": 1}))
        received = [ws.receive_json() for _ in range(3)]

    assert [(m["type"], m["run_id"], m["seq"], m["kind"]) for m in received] == [
        ("event", record.run_id, 2, "token"),
        ("event", record.run_id, 3, "citations"),
        ("event", record.run_id, 4, "end"),
    ]
    assert received[-1]["data"]["answer"] == ANSWER["answer"]


def test_another_tenants_run_cannot_be_resumed(gateway: TestClient, nats_namespace: str) -> None:
    record = RunRecord(run_id=str(uuid.uuid4()), thread_id="t", tenant_id="other", assistant_id="agent")
    remember(gateway, record)
    publish_events(nats_namespace, record.run_id, run_events(record.run_id, record.thread_id))
    with gateway.websocket_connect("/api/v1/ws") as ws:
        ws.send_text(json.dumps({"type": "resume", "run_id": record.run_id, "ref": "x"}))
        reply = ws.receive_json()
    assert reply["type"] == "error" and reply["ref"] == "x"
    assert reply["error"]["code"] == "not_found"


def test_runs_in_flight_per_connection_are_limited(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(GATEWAY_WS_MAX_RUNS=1)
    with gateway.websocket_connect("/api/v1/ws") as ws:
        # No agent works here, so the first run stays in flight while the second is asked for.
        ws.send_text(json.dumps({"type": "query", "input": "first", "ref": "1"}))
        accepted = ws.receive_json()
        assert accepted["type"] == "accepted" and accepted["ref"] == "1"
        uuid.UUID(accepted["run_id"])
        ws.send_text(json.dumps({"type": "query", "input": "second", "ref": "2"}))
        refused = ws.receive_json()
    assert refused["ref"] == "2"
    assert refused["error"]["code"] == "too_many_runs"
