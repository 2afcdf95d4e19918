"""A run aimed at a collection and a metadata filter, through every API the gateway speaks, with its real clients.

A real gateway (uvicorn), real retrieval and memory services and real NATS, no agent: what a run
was aimed at is read back from the RUNS stream, where the agent would take it. Refusals come
before any run: another tenant's collection is a 404, a malformed filter a 422 naming the field.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest
from langgraph_sdk import get_client
from threadline.events import RunRequested
from threadline_gateway import apikeys
from websockets.asyncio.client import connect

from tests.gateway.runs_stream import last_run_request

TENANTS = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in ("acme", "globex")}
KEYS = {tenant: apikeys.generate()[1] for tenant in TENANTS.values()}
HANDBOOK = f"handbook-{uuid.uuid4().hex[:8]}"  # acme's collection; globex has none of that name
QUESTION = "How often are the valves bled?"
AIM = {"collection": HANDBOOK, "filter": {"filename": "valves.md"}}


def _key(name: str) -> str:
    return KEYS[TENANTS[name]]


@pytest.fixture
def url(serve: Callable[..., str], memory_target: str, retrieval_target: str) -> str:
    static = ",".join(f"{tenant}:{apikeys.digest(key).hex()}" for tenant, key in KEYS.items())
    return serve(
        MEMORY_TARGET=memory_target,
        RETRIEVAL_TARGET=retrieval_target,
        GATEWAY_AUTH="required",
        GATEWAY_API_KEYS=static,
    )


@pytest.fixture
async def acme(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Acme's client; its handbook collection holds one document."""
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": _key("acme")}, timeout=60) as client:
        note = ("files", ("valves.md", b"# Valves\n\nThe valves are bled every ninety days.", "text/markdown"))
        uploaded = await client.post("/api/v1/documents", files=[note], data={"collection": HANDBOOK})
        assert uploaded.status_code == 201, uploaded.text
        yield client


@pytest.fixture
async def globex(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": _key("globex")}, timeout=60) as client:
        yield client


def _aim(run: RunRequested) -> dict[str, Any]:
    return {key: run.config.configurable.get(key) for key in ("collection", "filter")}


async def test_v1_runs_and_the_websocket_carry_the_aim_to_the_run(
    url: str, acme: httpx.AsyncClient, nats_namespace: str
) -> None:
    started = await acme.post("/api/v1/runs", json={"input": QUESTION, **AIM})
    assert started.status_code == 202, started.text
    assert _aim(await last_run_request(nats_namespace)) == AIM

    ws_url = url.replace("http://", "ws://") + "/api/v1/ws"
    async with connect(ws_url, additional_headers={"X-API-Key": _key("acme")}) as ws:
        await ws.send(json.dumps({"type": "query", "input": QUESTION, "collection": HANDBOOK, "ref": "q"}))
        assert json.loads(await ws.recv())["type"] == "accepted"
    assert _aim(await last_run_request(nats_namespace)) == {"collection": HANDBOOK, "filter": None}


async def test_openai_s_extra_body_carries_the_aim(url: str, acme: httpx.AsyncClient, nats_namespace: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=_key("acme"), max_retries=0)
    messages: Any = [{"role": "user", "content": QUESTION}]
    # Streamed: the reply starts once the run is submitted (no agent here finishes it).
    stream = await client.chat.completions.create(model="agent", messages=messages, stream=True, extra_body=AIM)
    await stream.close()
    assert _aim(await last_run_request(nats_namespace)) == AIM

    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(model="agent", messages=messages, extra_body={"collection": "nope"})
    assert missing.value.response.json()["error"]["code"] == "collection_not_found"
    with pytest.raises(openai.UnprocessableEntityError) as malformed:
        await client.chat.completions.create(model="agent", messages=messages, extra_body={"filter": {"n": 1}})
    assert [f["field"] for f in malformed.value.response.json()["error"]["details"]["fields"]] == ["filter.n"]
    await client.close()


async def test_langgraph_config_context_and_an_assistant_s_config_aim_the_run(
    url: str, acme: httpx.AsyncClient, nats_namespace: str
) -> None:
    client = get_client(url=f"{url}/langgraph", api_key=_key("acme"))
    try:
        input_ = {"messages": [{"role": "user", "content": QUESTION}]}
        await client.runs.create(None, "agent", input=input_, config={"configurable": AIM})
        assert _aim(await last_run_request(nats_namespace)) == AIM
        await client.runs.create(None, "agent", input=input_, context={"collection": HANDBOOK})
        assert _aim(await last_run_request(nats_namespace)) == {"collection": HANDBOOK, "filter": None}

        # An assistant aims every run of it; a request's own aim wins, key by key.
        assistant = await client.assistants.create(graph_id="agent", config={"configurable": AIM})
        await client.runs.create(None, assistant["assistant_id"], input=input_)
        assert _aim(await last_run_request(nats_namespace)) == AIM
        await client.runs.create(None, assistant["assistant_id"], input=input_, config={"configurable": {"filter": {}}})
        assert _aim(await last_run_request(nats_namespace)) == {"collection": HANDBOOK, "filter": {}}

        refused = await acme.post(
            "/langgraph/runs", json={"assistant_id": "agent", "input": input_, "context": {"filter": "valves"}}
        )
        assert refused.status_code == 422
        assert [f["field"] for f in refused.json()["error"]["details"]["fields"]] == ["context.filter"]
    finally:
        await client.aclose()


async def test_another_tenant_s_collection_is_not_found_on_every_api(
    url: str, acme: httpx.AsyncClient, globex: httpx.AsyncClient
) -> None:
    # Acme's handbook exists (acme aims at it freely); to globex it is a collection like any missing one.
    assert (await acme.post("/api/v1/runs", json={"input": QUESTION, "collection": HANDBOOK})).status_code == 202
    input_ = {"messages": [{"role": "user", "content": QUESTION}]}
    refusals = [
        await globex.post("/api/v1/query", json={"input": QUESTION, "collection": HANDBOOK}),
        await globex.post("/api/v1/runs", json={"input": QUESTION, "collection": HANDBOOK}),
        await globex.post("/api/v1/runs/stream", json={"input": QUESTION, "collection": HANDBOOK}),
        await globex.post(
            "/langgraph/runs",
            json={"assistant_id": "agent", "input": input_, "config": {"configurable": {"collection": HANDBOOK}}},
        ),
    ]
    for reply in refusals:
        assert reply.status_code == 404, reply.text
        assert reply.json()["error"]["code"] == "collection_not_found"
    # The default collection is there for every tenant, even one that has uploaded nothing.
    assert (await globex.post("/api/v1/runs", json={"input": QUESTION, "collection": "default"})).status_code == 202


@pytest.mark.parametrize(
    ("aim", "field"),
    [
        ({"filter": {"year": 2024}}, "filter.year"),
        ({"filter": "filename=valves.md"}, "filter"),
        ({"filter": {"": "x"}}, "filter..[key]"),
        ({"filter": {f"k{n}": "v" for n in range(17)}}, "filter"),
        ({"collection": "../globex"}, "collection"),
        ({"config": {"configurable": {"filter": {"year": 2024}}}}, "config.configurable.filter.year"),
        ({"config": {"configurable": {"collection": "a b"}}}, "config.configurable.collection"),
        ({"context": {"filter": ["valves.md"]}}, "context.filter"),
    ],
)
async def test_a_malformed_aim_is_a_422_naming_its_field(
    globex: httpx.AsyncClient, aim: dict[str, Any], field: str
) -> None:
    reply = await globex.post("/api/v1/query", json={"input": QUESTION, **aim})
    assert reply.status_code == 422, reply.text
    assert [f["field"] for f in reply.json()["error"]["details"]["fields"]] == [field]
