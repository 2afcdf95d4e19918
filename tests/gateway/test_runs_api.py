"""Runs over HTTP on real NATS: background start, lookup, join, SSE with resume, and tenant scoping."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import nats
import pytest
from fastapi.testclient import TestClient
from threadline.events import Topology
from threadline.nats import cancelled_runs
from threadline_gateway.run_bus import RunRecord

from tests.conftest import NATS_URL
from tests.gateway.conftest import ANSWER, publish_events, remember, run_events
from tests.gateway.sse_client import parse


def _finished_run(gateway: TestClient, namespace: str, tenant: str = "default") -> RunRecord:
    record = RunRecord(run_id=str(uuid.uuid4()), thread_id="t1", tenant_id=tenant, assistant_id="agent")
    remember(gateway, record)
    publish_events(namespace, record.run_id, run_events(record.run_id, record.thread_id))
    return record


def test_a_background_run_is_accepted_with_its_location(gateway: TestClient) -> None:
    reply = gateway.post("/api/v1/runs", json={"input": "How are runs kept durable?", "thread_id": "th-1"})

    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["status"] == "pending" and body["thread_id"] == "th-1"
    assert "tenant_id" not in body
    assert reply.headers["location"] == f"/api/v1/runs/{body['run_id']}"
    # No agent listens in this test, so the run stays pending: stored, not lost.
    run = gateway.get(reply.headers["location"])
    assert run.status_code == 200
    assert run.json() | {"created_at": None} == body | {"created_at": None}


def test_a_finished_run_reports_its_outcome_and_can_be_joined(gateway: TestClient, nats_namespace: str) -> None:
    record = _finished_run(gateway, nats_namespace)

    assert gateway.get(f"/api/v1/runs/{record.run_id}").json()["status"] == "success"
    joined = gateway.get(f"/api/v1/runs/{record.run_id}/wait")
    assert joined.status_code == 200, joined.text
    assert joined.json()["answer"] == ANSWER["answer"]
    assert joined.json()["citations"] == ANSWER["citations"]
    assert joined.json()["thread_id"] == "t1"


def test_a_failed_run_is_joined_as_its_error(gateway: TestClient, nats_namespace: str) -> None:
    record = RunRecord(run_id=str(uuid.uuid4()), thread_id="t", tenant_id="default", assistant_id="nope")
    remember(gateway, record)
    publish_events(
        nats_namespace,
        record.run_id,
        [(0, "metadata", {}), (1, "error", {"code": "assistant_not_found", "message": "No assistant named 'nope'."})],
    )
    assert gateway.get(f"/api/v1/runs/{record.run_id}").json()["status"] == "error"
    reply = gateway.get(f"/api/v1/runs/{record.run_id}/wait")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "assistant_not_found"


def test_the_stream_replays_a_run_in_order_without_duplicates(gateway: TestClient, nats_namespace: str) -> None:
    record = _finished_run(gateway, nats_namespace)

    reply = gateway.get(f"/api/v1/runs/{record.run_id}/stream")

    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    frames = parse(reply.text)
    assert [(f.id, f.event) for f in frames] == [
        ("0", "metadata"),
        ("1", "token"),
        ("2", "token"),
        ("3", "citations"),
        ("4", "end"),
    ]
    assert frames[3].data["citations"] == ANSWER["citations"]


def test_last_event_id_resumes_right_after_that_event(gateway: TestClient, nats_namespace: str) -> None:
    record = _finished_run(gateway, nats_namespace)

    reply = gateway.get(f"/api/v1/runs/{record.run_id}/stream", headers={"Last-Event-ID": "2"})

    assert [f.id for f in parse(reply.text)] == ["3", "4"]


@pytest.mark.parametrize("last_seen", ["4", "99"])
def test_resuming_after_the_final_event_ends_at_once(gateway: TestClient, nats_namespace: str, last_seen: str) -> None:
    record = _finished_run(gateway, nats_namespace)

    reply = gateway.get(f"/api/v1/runs/{record.run_id}/stream", headers={"Last-Event-ID": last_seen})

    assert reply.status_code == 200
    assert parse(reply.text) == []
    assert ": ping" not in reply.text  # it did not sit waiting for events that will never come


def test_a_stream_that_outlives_the_run_timeout_ends_with_a_gateway_error(
    make_gateway: Callable[..., TestClient],
) -> None:
    gateway = make_gateway(GATEWAY_RUN_TIMEOUT_S=1.0, GATEWAY_SSE_PING_S=0.3)
    # No agent runs here, so the run never starts: the client gets pings, then an error it can act on.
    reply = gateway.post("/api/v1/runs/stream", json={"input": "anyone there?"})

    assert reply.status_code == 200
    run_url = reply.headers["content-location"]
    assert run_url.startswith("/api/v1/runs/")
    assert ": ping" in reply.text
    frames = parse(reply.text)
    assert [(f.event, f.id) for f in frames] == [("error", None)]
    assert frames[0].data["code"] == "stream_timeout"
    assert gateway.get(run_url).json()["status"] == "pending"
    metrics = gateway.get("/metrics").text
    assert 'threadline_gateway_runs_total{outcome="timeout"} 1.0' in metrics
    assert 'threadline_gateway_runs_started_total{mode="stream"} 1.0' in metrics


@pytest.mark.parametrize("path", ["", "/wait", "/stream"])
def test_another_tenants_run_is_not_found(gateway: TestClient, nats_namespace: str, path: str) -> None:
    record = _finished_run(gateway, nats_namespace, tenant="someone-else")

    reply = gateway.get(f"/api/v1/runs/{record.run_id}{path}")

    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"
    assert "someone-else" not in reply.text


@pytest.mark.parametrize("run_id", [str(uuid.uuid4()), "a.b", "*", "%3E", "x" * 200])
def test_unknown_or_malformed_run_ids_are_not_found(gateway: TestClient, run_id: str) -> None:
    for path in ("", "/wait", "/stream"):
        reply = gateway.get(f"/api/v1/runs/{run_id}{path}")
        assert reply.status_code == 404, (path, reply.text)
        assert reply.json()["error"]["code"] == "not_found"


def test_a_bogus_last_event_id_is_a_422(gateway: TestClient, nats_namespace: str) -> None:
    record = _finished_run(gateway, nats_namespace)
    reply = gateway.get(f"/api/v1/runs/{record.run_id}/stream", headers={"Last-Event-ID": "soon"})
    assert reply.status_code == 422
    assert reply.json()["error"]["details"]["fields"][0]["field"] == "Last-Event-ID"


@pytest.mark.parametrize("path", ["/api/v1/runs", "/api/v1/runs/stream"])
@pytest.mark.parametrize(
    ("payload", "field"), [({"input": "  "}, "input"), ({}, "input"), ({"input": "x", "thread_id": "a b"}, "thread_id")]
)
def test_bad_input_is_a_422_before_anything_starts(gateway: TestClient, path: str, payload: dict, field: str) -> None:
    reply = gateway.post(path, json=payload)
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/json"
    assert field in [f["field"] for f in reply.json()["error"]["details"]["fields"]]


def test_a_run_that_outlives_the_timeout_is_a_504_not_a_503(make_gateway: Callable[..., TestClient]) -> None:
    gateway = make_gateway(GATEWAY_RUN_TIMEOUT_S=0.3)
    # No agent works here: the run is stored and waits, so the caller gets a 504 naming the run to come back to.
    reply = gateway.post("/api/v1/query", json={"input": "anyone there?"})
    assert reply.status_code == 504, reply.text
    error = reply.json()["error"]
    assert error["code"] == "run_timeout"
    joined = gateway.get(f"/api/v1/runs/{error['details']['run_id']}/wait")
    assert joined.status_code == 504 and joined.json()["error"]["code"] == "run_timeout"


def test_a_queued_run_is_cancelled_for_the_worker_to_find(gateway: TestClient, nats_namespace: str) -> None:
    run = gateway.post("/api/v1/runs", json={"input": "How are runs kept durable?"}).json()
    cancelled = gateway.post(f"/api/v1/runs/{run['run_id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "pending" and cancelled.json()["run_id"] == run["run_id"]

    async def flagged() -> bool:
        nc = await nats.connect(NATS_URL)
        try:
            bucket = await cancelled_runs(nc.jetstream(), Topology(nats_namespace))
            return (await bucket.get(run["run_id"])).value == b"1"
        finally:
            await nc.close()

    assert asyncio.run(flagged())
    # The agent's answer to it, as a worker gives it: the run then reads as cancelled and joins as a 409.
    record = RunRecord(run_id=run["run_id"], thread_id=run["thread_id"], tenant_id="default", assistant_id="agent")
    publish_events(
        nats_namespace, record.run_id, [(0, "metadata", {}), (1, "error", {"code": "cancelled", "message": "x"})]
    )
    assert gateway.get(f"/api/v1/runs/{record.run_id}").json()["status"] == "cancelled"
    assert gateway.get(f"/api/v1/runs/{record.run_id}/wait").status_code == 409
    again = gateway.post(f"/api/v1/runs/{record.run_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_finished"


def test_only_the_runs_tenant_may_cancel_it(make_gateway: Callable[..., TestClient], nats_namespace: str) -> None:
    gateway = make_gateway()
    record = _finished_run(gateway, nats_namespace, tenant="someone-else")
    assert gateway.post(f"/api/v1/runs/{record.run_id}/cancel").status_code == 404
    assert gateway.post(f"/api/v1/runs/{uuid.uuid4()}/cancel").status_code == 404


def test_a_thread_takes_one_run_at_a_time(gateway: TestClient, nats_namespace: str) -> None:
    thread = f"busy-{uuid.uuid4().hex[:8]}"
    first = gateway.post("/api/v1/runs", json={"input": "first", "thread_id": thread})
    assert first.status_code == 202
    for path in ("/api/v1/runs", "/api/v1/query"):
        refused = gateway.post(path, json={"input": "second", "thread_id": thread})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "thread_busy", refused.text
    assert gateway.post("/api/v1/runs", json={"input": "elsewhere"}).status_code == 202  # other threads go on

    publish_events(nats_namespace, first.json()["run_id"], run_events(first.json()["run_id"], thread))  # it ends
    assert gateway.post("/api/v1/runs", json={"input": "third", "thread_id": thread}).status_code == 202
