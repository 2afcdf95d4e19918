"""Streaming through the whole mesh: SSE with resume, background runs, WebSocket, metrics."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from tests.e2e.conftest import Mesh
from tests.e2e.run_events import check_run_order, read_frames

QUESTION = "How are runs kept durable?"


def test_a_streamed_question_arrives_in_order_with_citations(client: httpx.Client) -> None:
    with client.stream("POST", "/api/v1/runs/stream", json={"input": QUESTION}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        run_url = reply.headers["content-location"]
        got = read_frames(reply)

    check_run_order([(int(f.id), f.event) for f in got])
    citations = [c for f in got if f.event == "citations" for c in f.data["citations"]]
    assert citations and all(c["text"].strip() for c in citations)
    end = got[-1].data
    assert "[1]" in end["answer"]
    assert end["citations"] == citations
    assert got[0].data["run_id"] == run_url.rsplit("/", 1)[1]
    assert any(f.event == "tool_call" for f in got)


def test_a_client_that_reconnects_with_last_event_id_misses_nothing_and_sees_nothing_twice(
    client: httpx.Client,
) -> None:
    with client.stream("POST", "/api/v1/runs/stream", json={"input": QUESTION}) as reply:
        run_url = reply.headers["content-location"]
        before = read_frames(reply, limit=2)  # then the connection drops mid-run
    assert len(before) == 2 and before[0].event == "metadata"

    with client.stream("GET", f"{run_url}/stream", headers={"Last-Event-ID": before[-1].id}) as reply:
        assert reply.status_code == 200
        after = read_frames(reply)

    assert int(after[0].id) == int(before[-1].id) + 1
    check_run_order([(int(f.id), f.event) for f in before + after])


def test_a_background_run_can_be_looked_up_and_joined(client: httpx.Client) -> None:
    started = client.post("/api/v1/runs", json={"input": QUESTION})
    assert started.status_code == 202, started.text
    run_url = started.headers["location"]

    joined = client.get(f"{run_url}/wait")

    assert joined.status_code == 200, joined.text
    body = joined.json()
    assert body["run_id"] == started.json()["run_id"]
    assert body["thread_id"] == started.json()["thread_id"]
    assert body["answer"].strip() and body["citations"]
    assert client.get(run_url).json()["status"] == "success"
    # Joining again replays the stored end event: the same answer, at once.
    assert client.get(f"{run_url}/wait").json() == body


def test_a_websocket_round_trip(mesh: Mesh) -> None:
    ws_url = mesh.url.replace("http://", "ws://") + "/api/v1/ws"
    with connect(ws_url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "query", "input": QUESTION, "ref": "q1"}))
        accepted = json.loads(ws.recv(timeout=30))
        assert accepted["type"] == "accepted" and accepted["ref"] == "q1"
        run_id = accepted["run_id"]
        uuid.UUID(run_id)
        events = []
        while not events or events[-1]["kind"] not in ("end", "error"):
            message = json.loads(ws.recv(timeout=60))
            assert message["type"] == "event", message
            events.append(message)

    assert {e["run_id"] for e in events} == {run_id}
    check_run_order([(e["seq"], e["kind"]) for e in events])
    assert events[-1]["data"]["citations"]
    assert events[-1]["data"]["thread_id"] == accepted["thread_id"]


def test_the_websocket_closes_an_oversized_message_with_1009(mesh: Mesh) -> None:
    ws_url = mesh.url.replace("http://", "ws://") + "/api/v1/ws"
    with connect(ws_url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "query", "input": "x" * 100_000}))
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def _counters(client: httpx.Client) -> dict[str, float]:
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
    }


def test_metrics_count_the_runs_and_time_the_requests(client: httpx.Client) -> None:
    before = _counters(client)

    assert client.post("/api/v1/query", json={"input": QUESTION}).status_code == 200
    with client.stream("POST", "/api/v1/runs/stream", json={"input": QUESTION}) as reply:
        assert read_frames(reply)[-1].event == "end"
    after = _counters(client)

    def grew(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("threadline_gateway_runs_started_total[('mode', 'query')]") == 1
    assert grew("threadline_gateway_runs_started_total[('mode', 'stream')]") == 1
    assert grew("threadline_gateway_runs_total[('outcome', 'success')]") == 2
    query = (
        "threadline_gateway_request_seconds_count[('method', 'POST'), ('route', '/api/v1/query'), ('status', '200')]"
    )
    assert grew(query) == 1


def test_one_websocket_carries_several_runs_at_once(mesh: Mesh) -> None:
    ws_url = mesh.url.replace("http://", "ws://") + "/api/v1/ws"
    questions = {"a": QUESTION, "b": "Which ports do the services listen on?"}
    with connect(ws_url, open_timeout=10) as ws:
        for ref, text in questions.items():
            ws.send(json.dumps({"type": "query", "input": text, "ref": ref}))
        run_of: dict[str, str] = {}
        events: dict[str, list[dict]] = {}
        while len(run_of) < 2 or any(not e or e[-1]["kind"] != "end" for e in events.values()):
            message = json.loads(ws.recv(timeout=60))
            if message["type"] == "accepted":
                run_of[message["ref"]] = message["run_id"]
                events.setdefault(message["run_id"], [])
            else:
                assert message["type"] == "event", message
                # An event may only name a run this connection was told about.
                assert message["run_id"] in events, message
                events[message["run_id"]].append(message)

    assert len(set(run_of.values())) == 2
    for run_id, run_events in events.items():
        check_run_order([(e["seq"], e["kind"]) for e in run_events])
        assert {e["run_id"] for e in run_events} == {run_id}
    assert events[run_of["a"]][-1]["data"]["answer"] != events[run_of["b"]][-1]["data"]["answer"]
