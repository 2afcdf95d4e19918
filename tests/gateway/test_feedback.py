"""Feedback on answers, stored in the machine's real PostgreSQL, scoped to the caller's tenant."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from nats.aio.client import Client as NatsClient
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_gateway.run_bus import RunRecord

from evals.cases import read_cases
from tests.agent.conftest import running_worker
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


# --- the export: GET /api/v1/feedback ------------------------------------------------------------


def rate(gateway: TestClient, namespace: str, rating: int, headers: dict[str, str] | None = None, **record: str) -> str:
    run = RunRecord(
        run_id=str(uuid.uuid4()), thread_id="th-9", **{"tenant_id": "default", "assistant_id": "agent", **record}
    )
    remember(gateway, run)
    publish_events(namespace, run.run_id, run_events(run.run_id, run.thread_id))
    reply = gateway.post(
        f"/api/v1/runs/{run.run_id}/feedback", json={"rating": rating, "comment": f"got {rating}"}, headers=headers
    )
    assert reply.status_code == 201, reply.text
    return run.run_id


def exported(gateway: TestClient, headers: dict[str, str] | None = None, **params: Any) -> list[int]:
    reply = gateway.get("/api/v1/feedback", params=params, headers=headers)
    assert reply.status_code == 200, reply.text
    return [case["rating"] for case in reply.json()["cases"]]


def test_feedback_exports_as_cases_with_what_was_rated(gateway: TestClient, nats_namespace: str) -> None:
    run_id = rate(gateway, nats_namespace, 1)

    page = gateway.get("/api/v1/feedback").json()
    [case] = page["cases"]
    assert page["next_cursor"] is None
    assert case | {"id": "", "created_at": ""} == {
        "id": "",
        "question": "",  # this run has no thread in memory: the rating is kept all the same
        "passage": None,
        "answer": "Runs are durable [1].",
        "citations": [{"document_id": "d", "chunk_id": "c", "text": "t"}],
        "comment": "got 1",
        "rating": 1,
        "run_id": run_id,
        "thread_id": "th-9",
        "assistant_id": "agent",
        "created_at": "",
    }
    assert case["id"].startswith("feedback-")


def test_the_export_filters_by_rating_assistant_and_time_and_pages(gateway: TestClient, nats_namespace: str) -> None:
    for rating, assistant in [(1, "agent"), (2, "support"), (3, "agent"), (5, "agent"), (2, "agent")]:
        rate(gateway, nats_namespace, rating, assistant_id=assistant)

    assert exported(gateway) == [1, 2, 3, 5, 2]
    assert exported(gateway, negative="true") == [1, 2, 2]
    assert exported(gateway, max_rating=3) == [1, 2, 3, 2]
    assert exported(gateway, negative="true", max_rating=1) == [1]
    assert exported(gateway, negative="true", assistant_id="agent") == [1, 2]
    assert exported(gateway, since="2000-01-01T00:00:00") == [1, 2, 3, 5, 2]
    assert exported(gateway, until="2000-01-01T00:00:00Z") == []
    assert exported(gateway, since="2999-01-01T00:00:00+02:00") == []

    pages, cursor = [], None
    while True:
        reply = gateway.get("/api/v1/feedback", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        pages.append([case["rating"] for case in reply["cases"]])
        if (cursor := reply["next_cursor"]) is None:
            break
    assert pages == [[1, 2], [3, 5], [2]]

    lines = gateway.get("/api/v1/feedback", params={"format": "jsonl", "negative": "true", "limit": 2})
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line)["rating"] for line in lines.text.splitlines()] == [1, 2]
    assert lines.headers["x-next-cursor"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"max_rating": 6}, "max_rating"),
        ({"since": "yesterday"}, "since"),
        ({"format": "csv"}, "format"),
        ({"negative": "maybe"}, "negative"),
    ],
)
def test_a_bad_export_filter_is_a_422_naming_it(gateway: TestClient, params: dict[str, Any], field: str) -> None:
    reply = gateway.get("/api/v1/feedback", params=params)
    assert reply.status_code == 422, reply.text
    assert f"query.{field}" in [f["field"] for f in reply.json()["error"]["details"]["fields"]]


def test_the_export_is_the_tenant_s_for_an_admin_and_one_s_own_otherwise(
    make_gateway: Callable[..., TestClient], nats_namespace: str, database: str
) -> None:
    gateway = make_gateway(DATABASE_URL=database, GATEWAY_AUTH="required", GATEWAY_JWT_SECRET=creds.SECRET)
    ada, bob = (creds.bearer(creds.hs256(tenant="acme", sub=user)) for user in ("ada", "bob"))
    admin = creds.bearer(creds.hs256(tenant="acme", sub="root", roles=["admin"]))
    other = creds.bearer(creds.hs256(tenant="globex", sub="ada", roles=["admin"]))
    rate(gateway, nats_namespace, 1, headers=ada, tenant_id="acme")
    rate(gateway, nats_namespace, 2, headers=bob, tenant_id="acme")

    assert gateway.get("/api/v1/feedback").status_code == 401
    assert exported(gateway, ada) == [1]
    assert exported(gateway, bob) == [2]
    assert exported(gateway, admin) == [1, 2]
    assert exported(gateway, other) == []


def test_without_a_database_the_export_is_a_clear_503(make_gateway: Callable[..., TestClient]) -> None:
    reply = make_gateway().get("/api/v1/feedback")
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "not_configured"


async def test_a_real_answer_rated_down_exports_as_a_case_the_eval_loop_reads(
    serve: Callable[..., str],
    nats_namespace: str,
    nc: NatsClient,
    tmp_path: Path,
    memory_target: str,
    retrieval_target: str,
    database: str,
) -> None:
    tenant = f"fb-{uuid.uuid4().hex[:8]}"
    text = "Runs are kept durable on a JetStream stream until a worker acknowledges them."
    async with grpc.aio.insecure_channel(retrieval_target) as channel:
        ingest = pb.IngestRequest(tenant_id=tenant, documents=[pb.Document(id="runs.md", text=text)])
        await retrieval_pb2_grpc.RetrievalServiceStub(channel).Ingest(ingest, timeout=60)
    targets = {"MEMORY_TARGET": memory_target, "RETRIEVAL_TARGET": retrieval_target}
    saver = RemoteCheckpointSaver(target=memory_target)
    async with running_worker(nats_namespace, nc, tmp_path, ExtractiveAnswerer(), checkpointer=saver, **targets):
        url = serve(DATABASE_URL=database, GATEWAY_DEFAULT_TENANT=tenant, **targets)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            answered = (await client.post("/api/v1/query", json={"input": "How are runs kept durable?"})).json()
            rated = await client.post(
                f"/api/v1/runs/{answered['run_id']}/feedback", json={"rating": 1, "comment": "Too vague."}
            )
            assert rated.status_code == 201, rated.text
            export = await client.get("/api/v1/feedback", params={"negative": "true", "format": "jsonl"})

    assert answered["citations"] and text in answered["citations"][0]["text"]
    cases = tmp_path / "feedback.jsonl"
    cases.write_text(export.text)
    [case] = read_cases(cases)
    assert (case.question, case.comment, case.rating, case.run_id) == (
        "How are runs kept durable?",
        "Too vague.",
        1,
        answered["run_id"],
    )
    assert case.answer == answered["answer"]
    assert [c.text for c in case.citations] == [c["text"] for c in answered["citations"]]
