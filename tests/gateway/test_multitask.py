"""A second run on a busy thread over HTTP, on real NATS with no agent (so the first run stays pending).

What each strategy sends to the agents is read back from the RUNS stream; how the agents honour it
is tests/agent/test_multitask.py.
"""

from __future__ import annotations

import asyncio

import nats
import pytest
from fastapi.testclient import TestClient
from nats.js.errors import KeyNotFoundError
from threadline.events import RunRequested, Topology
from threadline.nats import cancelled_runs

from tests.conftest import NATS_URL


def _submitted(namespace: str) -> dict[str, RunRequested]:
    """Every run on the RUNS work queue, by id (no agent takes them here)."""

    async def read() -> dict[str, RunRequested]:
        nc = await nats.connect(NATS_URL)
        try:
            js, topology = nc.jetstream(), Topology(namespace)
            info = await js.stream_info(topology.runs_stream)
            if not info.state.messages:  # nothing sent yet: an empty stream's first_seq is 0, which get_msg refuses
                return {}
            runs = [
                RunRequested.model_validate_json((await js.get_msg(topology.runs_stream, seq)).data)
                for seq in range(info.state.first_seq, info.state.last_seq + 1)
            ]
            return {r.run_id: r for r in runs}
        finally:
            await nc.close()

    return asyncio.run(read())


def _cancelled(namespace: str, run_id: str) -> bool:
    async def read() -> bool:
        nc = await nats.connect(NATS_URL)
        try:
            await (await cancelled_runs(nc.jetstream(), Topology(namespace))).get(run_id)
            return True
        except KeyNotFoundError:
            return False
        finally:
            await nc.close()

    return asyncio.run(read())


def _start(gateway: TestClient, thread_id: str, strategy: str | None = None) -> dict:
    body = {"input": "How are runs kept durable?", "thread_id": thread_id}
    if strategy:
        body["multitask_strategy"] = strategy
    reply = gateway.post("/api/v1/runs", json=body)
    assert reply.status_code == 202, reply.text
    return reply.json()


def test_reject_is_the_default(gateway: TestClient) -> None:
    _start(gateway, "busy")
    for body in ({}, {"multitask_strategy": "reject"}):
        reply = gateway.post("/api/v1/runs", json={"input": "and then?", "thread_id": "busy", **body})
        assert reply.status_code == 409 and reply.json()["error"]["code"] == "thread_busy"


@pytest.mark.parametrize("strategy", ["enqueue", "interrupt", "rollback"])
def test_a_second_run_is_accepted_and_sent_after_the_first(
    gateway: TestClient, nats_namespace: str, strategy: str
) -> None:
    first = _start(gateway, "busy")
    second = _start(gateway, "busy", strategy)

    runs = _submitted(nats_namespace)
    assert runs[second["run_id"]].after_run_id == first["run_id"]
    assert runs[second["run_id"]].rollback_run_id == (first["run_id"] if strategy == "rollback" else None)
    assert _cancelled(nats_namespace, first["run_id"]) == (strategy != "enqueue")
    assert not _cancelled(nats_namespace, second["run_id"])


def test_enqueued_runs_form_a_line(gateway: TestClient, nats_namespace: str) -> None:
    first = _start(gateway, "busy")
    second = _start(gateway, "busy", "enqueue")
    third = _start(gateway, "busy", "enqueue")

    runs = _submitted(nats_namespace)
    assert runs[first["run_id"]].after_run_id is None
    assert runs[third["run_id"]].after_run_id == second["run_id"]


def test_a_run_on_an_idle_thread_waits_for_nothing(gateway: TestClient, nats_namespace: str) -> None:
    run = _start(gateway, "idle", "enqueue")
    assert _submitted(nats_namespace)[run["run_id"]].after_run_id is None
