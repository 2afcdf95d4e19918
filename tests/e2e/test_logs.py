"""The services' logs: JSON lines that say who, which trace and which run, and never what was asked."""

from __future__ import annotations

import json
import time
import uuid

import httpx

from tests.e2e.conftest import Mesh


def _records(mesh: Mesh) -> list[dict]:
    return [json.loads(line) for line in list(mesh.process.log_lines) if line.startswith("{")]


def test_log_lines_carry_service_trace_tenant_and_run_but_not_the_question(client: httpx.Client, mesh: Mesh) -> None:
    secret = f"canary-{uuid.uuid4().hex}"
    reply = client.post("/api/v1/query", json={"input": f"How are runs kept durable? {secret}"})
    assert reply.status_code == 200, reply.text
    run_id = reply.json()["run_id"]

    deadline = time.monotonic() + 10
    while not any(r.get("run_id") == run_id and r.get("service") == "agent" for r in _records(mesh)):
        assert time.monotonic() < deadline, "the agent logged nothing about the run"
        time.sleep(0.2)

    records = _records(mesh)
    assert records and all(isinstance(r.get("service"), str) and r.get("level") for r in records)
    about_run = [r for r in records if r.get("run_id") == run_id]
    assert "agent" in {r["service"] for r in about_run}
    for record in about_run:
        assert len(record["trace_id"]) == 32 and len(record["span_id"]) == 16, record
        assert record.get("tenant_id") == "default", record
    assert len({r["trace_id"] for r in about_run}) == 1, "one question, one trace"
    assert not [line for line in mesh.process.log_lines if secret in line], "message contents reached the logs"
