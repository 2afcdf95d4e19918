"""Feedback on answers, stored in the machine's real PostgreSQL, scoped to the caller's tenant."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from threadline_gateway.run_bus import RunRecord

from tests.conftest import free_port
from tests.gateway import auth_helpers as creds
from tests.gateway.conftest import publish_events, remember, run_events


@pytest.fixture
def gateway(make_gateway: Callable[..., TestClient], database: str) -> TestClient:
    return make_gateway(DATABASE_URL=database)


def finished_run(gateway: TestClient, namespace: str, tenant: str = "default") -> RunRecord:
    record = RunRecord(run_id=str(uuid.uuid4()), thread_id="th-9", tenant_id=tenant, assistant_id="agent")
    remember(gateway, record)
    publish_events(namespace, record.run_id, run_events(record.run_id, record.thread_id))
    return record


def stored(database: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database) as conn:
        return conn.execute(
            "SELECT tenant_id, run_id, thread_id, subject, rating, comment FROM gateway_feedback ORDER BY id"
        ).fetchall()


def test_feedback_is_stored_and_a_second_one_replaces_it(
    gateway: TestClient, nats_namespace: str, database: str
) -> None:
    run = finished_run(gateway, nats_namespace)

    first = gateway.post(f"/api/v1/runs/{run.run_id}/feedback", json={"rating": 2, "comment": "Missed the point."})
    assert first.status_code == 201, first.text
    assert first.json() | {"id": 0, "created_at": None} == {
        "id": 0,
        "run_id": run.run_id,
        "thread_id": "th-9",
        "rating": 2,
        "comment": "Missed the point.",
        "created_at": None,
    }
    # 5.0 is JSON's integer 5; the comment may also come as "text".
    again = gateway.post(f"/api/v1/runs/{run.run_id}/feedback", json={"rating": 5.0, "text": "On reflection, spot on."})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]

    assert stored(database) == [("default", run.run_id, "th-9", "anonymous", 5, "On reflection, spot on.")]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": 4.5}, "rating"),
        ({"rating": "5"}, "rating"),
        ({"rating": True}, "rating"),
        ({}, "rating"),
        ({"rating": 3, "comment": "x" * 4001}, "comment"),
        ({"rating": 3, "comment": 7}, "comment"),
        ({"rating": 3, "stars": 3}, "stars"),
    ],
)
def test_invalid_feedback_is_a_422_naming_the_field(
    gateway: TestClient, nats_namespace: str, database: str, payload: dict, field: str
) -> None:
    run = finished_run(gateway, nats_namespace)
    reply = gateway.post(f"/api/v1/runs/{run.run_id}/feedback", json=payload)
    assert reply.status_code == 422, reply.text
    assert field in [f["field"] for f in reply.json()["error"]["details"]["fields"]]
    assert stored(database) == []


def test_feedback_needs_the_callers_own_finished_run(
    make_gateway: Callable[..., TestClient], nats_namespace: str, database: str
) -> None:
    gateway = make_gateway(DATABASE_URL=database, GATEWAY_AUTH="required", GATEWAY_JWT_SECRET=creds.SECRET)
    acme, globex = creds.bearer(creds.hs256(tenant="acme")), creds.bearer(creds.hs256(tenant="globex"))
    run = finished_run(gateway, nats_namespace, tenant="acme")

    assert gateway.post(f"/api/v1/runs/{run.run_id}/feedback", json={"rating": 4}).status_code == 401
    for run_id in (run.run_id, str(uuid.uuid4()), "a.b"):
        reply = gateway.post(f"/api/v1/runs/{run_id}/feedback", json={"rating": 4}, headers=globex)
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "not_found"

    pending = gateway.post("/api/v1/runs", json={"input": "not answered yet"}, headers=acme).json()
    early = gateway.post(f"/api/v1/runs/{pending['run_id']}/feedback", json={"rating": 4}, headers=acme)
    assert early.status_code == 409 and early.json()["error"]["code"] == "run_not_finished"

    assert gateway.post(f"/api/v1/runs/{run.run_id}/feedback", json={"rating": 4}, headers=acme).status_code == 201
    assert [(r[0], r[3], r[4]) for r in stored(database)] == [("acme", "jwt:user-1", 4)]


def test_without_a_database_feedback_is_a_clear_503(
    make_gateway: Callable[..., TestClient], nats_namespace: str
) -> None:
    gateway = make_gateway()
    run = finished_run(gateway, nats_namespace)
    reply = gateway.post(f"/api/v1/runs/{run.run_id}/feedback", json={"rating": 4})
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "not_configured"
    assert "DATABASE_URL" in reply.json()["error"]["message"]


def test_a_database_that_is_down_is_a_503_to_retry(
    make_gateway: Callable[..., TestClient], nats_namespace: str
) -> None:
    gateway = make_gateway(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x", GATEWAY_DB_TIMEOUT_S=0.5)
    run = finished_run(gateway, nats_namespace)
    reply = gateway.post(f"/api/v1/runs/{run.run_id}/feedback", json={"rating": 4})
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "2"
    assert reply.json()["error"]["code"] == "unavailable"
