"""OpenAI client tools with the official ``openai`` client: the request's ``tools`` reach the model, its call of one
comes back as ``message.tool_calls`` (streamed as ``delta.tool_calls``), and the tool's result sent next continues
the same thread to the final answer. A real gateway on a real server, a real agent worker on NATS, and the scripted
OpenAI-compatible model over real HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from nats.aio.client import Client as NatsClient
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.chat_models import chat_model
from threadline_agent.settings import AgentSettings

from tests.agent.conftest import running_worker
from tests.agent.openai_server import USAGE, ScriptedModel, serve_openai

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather where the user is.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
QUESTION = {"role": "user", "content": "Should I take an umbrella in Oslo?"}


@dataclass
class ClientToolModel(ScriptedModel):
    """Calls the client's get_weather when it is offered (and searches the knowledge base in the same reply when
    asked to check it too), then answers from its result."""

    def reply(self, body: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, int]]:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return {"content": f"No umbrella needed: {last['content']}"}, "stop", USAGE[1]
        if "get_weather" not in {t["function"]["name"] for t in body.get("tools", [])}:
            return {"content": "I have no weather tool."}, "stop", USAGE[1]
        weather = {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
        search = {"name": "search_knowledge_base", "arguments": '{"query":"umbrella policy"}'}
        calls = [{"id": "call_wx", "type": "function", "function": weather}]
        if body["messages"][1]["content"].startswith("Check"):
            calls.insert(0, {"id": "call_kb", "type": "function", "function": search})
        return {"content": None, "tool_calls": calls}, "tool_calls", USAGE[0]


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedModel]:
    async with serve_openai(ClientToolModel()) as model:
        yield model


@asynccontextmanager
async def gateway_and_agent(
    serve: Callable[..., str], memory_target: str, nats_namespace: str, nc: NatsClient, tmp_path: Path, model: Any
) -> AsyncIterator[openai.AsyncOpenAI]:
    url = serve(MEMORY_TARGET=memory_target, GATEWAY_DEFAULT_TENANT=f"tools-{uuid.uuid4().hex[:8]}")
    async with running_worker(nats_namespace, nc, tmp_path, model, AGENT_MEMORY_TOOLS=False):
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60) as client:
            yield client


@pytest.fixture
async def client(
    serve: Callable[..., str],
    memory_target: str,
    nats_namespace: str,
    nc: NatsClient,
    tmp_path: Path,
    scripted: ScriptedModel,
) -> AsyncIterator[openai.AsyncOpenAI]:
    endpoint = {"OPENAI_BASE_URL": scripted.base_url, "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": "scripted"}
    model = chat_model(AgentSettings(**endpoint))
    async with gateway_and_agent(serve, memory_target, nats_namespace, nc, tmp_path, model) as made:
        yield made


async def test_a_tool_call_goes_to_the_client_and_its_result_continues_the_thread(
    client: openai.AsyncOpenAI, scripted: ScriptedModel
) -> None:
    asked = await client.chat.completions.create(
        model="agent", messages=[QUESTION], tools=[WEATHER_TOOL], tool_choice="auto"
    )
    choice = asked.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert (call.id, call.type, call.function.name) == ("call_wx", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    # The model was offered the client's tool beside the platform's, with the client's tool_choice.
    offered = scripted.requests[0]
    assert {"get_weather", "search_knowledge_base"} <= {t["function"]["name"] for t in offered["tools"]}
    assert offered["tool_choice"] == "auto"
    calls_made = len(scripted.requests)

    answered = await client.chat.completions.create(
        model="agent",
        messages=[
            QUESTION,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "dry, 21 degrees"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert answered.choices[0].finish_reason == "stop"
    assert answered.choices[0].message.content == "No umbrella needed: dry, 21 degrees"
    assert answered.choices[0].message.tool_calls is None
    assert answered.model_extra["thread_id"] == asked.model_extra["thread_id"]  # the same thread, continued
    # One model call: the thread held the question and the call; the client's result joined them.
    (resumed,) = scripted.requests[calls_made:]
    assert [m["role"] for m in resumed["messages"]] == ["system", "user", "assistant", "tool"]
    assert resumed["messages"][2]["tool_calls"][0]["id"] == resumed["messages"][3]["tool_call_id"] == "call_wx"


async def test_the_platform_s_own_calls_of_the_same_reply_run_before_the_client_gets_its_own(
    client: openai.AsyncOpenAI, scripted: ScriptedModel
) -> None:
    question = {"role": "user", "content": "Check the umbrella policy and the weather in Oslo."}
    asked = await client.chat.completions.create(model="agent", messages=[question], tools=[WEATHER_TOOL])
    assert asked.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in asked.choices[0].message.tool_calls or []] == ["get_weather"]

    answered = await client.chat.completions.create(
        model="agent",
        messages=[
            question,
            asked.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": "call_wx", "content": "dry"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert answered.choices[0].message.content == "No umbrella needed: dry"
    resumed = scripted.requests[-1]["messages"]
    assert [m["role"] for m in resumed] == ["system", "user", "assistant", "tool", "tool"]
    assert [c["id"] for c in resumed[2]["tool_calls"]] == ["call_kb", "call_wx"]
    assert [m["tool_call_id"] for m in resumed[3:]] == ["call_kb", "call_wx"]  # the search ran here, first


async def test_a_tool_result_in_a_history_no_thread_holds_starts_one_with_all_of_it(
    client: openai.AsyncOpenAI, scripted: ScriptedModel
) -> None:
    made_elsewhere: list[Any] = [
        {"role": "system", "content": "Answer briefly."},
        QUESTION,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_x",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_x", "content": "drizzle"},
    ]
    answered = await client.chat.completions.create(model="agent", messages=made_elsewhere, tools=[WEATHER_TOOL])
    assert answered.choices[0].message.content == "No umbrella needed: drizzle"
    sent = scripted.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "system", "user", "assistant", "tool"]
    assert sent[1]["content"] == "Answer briefly."
    assert sent[3]["tool_calls"][0]["id"] == sent[4]["tool_call_id"] == "call_x"


async def test_streamed_tool_calls_arrive_as_delta_tool_calls(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="agent",
        messages=[QUESTION],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert [(d.index, d.id, d.function.name) for d in deltas if d.function] == [(0, "call_wx", "get_weather")]
    assert json.loads("".join(d.function.arguments or "" for d in deltas if d.function)) == {"city": "Oslo"}
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishing == ["tool_calls"]
    thread = chunks[-1].model_extra["thread_id"]

    stream = await client.chat.completions.create(
        model="agent",
        messages=[
            QUESTION,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_wx",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_wx", "content": "dry"},
        ],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "No umbrella needed: dry"
    assert chunks[-1].model_extra["thread_id"] == thread


async def test_tools_an_assistant_does_not_take_or_that_do_not_fit_are_a_422(
    client: openai.AsyncOpenAI, scripted: ScriptedModel
) -> None:
    gateway = str(client.base_url).removesuffix("/v1/")
    async with httpx.AsyncClient(base_url=gateway) as http:
        created = await http.post(
            "/api/v1/assistants",
            json={"graph_id": "agent", "name": "No tools", "config": {"configurable": {"client_tools": False}}},
        )
    assert created.status_code == 201, created.text
    strict = created.json()["assistant_id"]
    before = len(scripted.requests)
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        await client.chat.completions.create(model=strict, messages=[QUESTION], tools=[WEATHER_TOOL])
    assert "does not take client tools" in str(refused.value.body)
    assert len(scripted.requests) == before  # refused before any run
    # Without tools the same assistant answers.
    plain = await client.chat.completions.create(model=strict, messages=[QUESTION])
    assert plain.choices[0].message.content == "I have no weather tool."
    before = len(scripted.requests)

    unfit: list[dict[str, Any]] = [
        {
            "messages": [QUESTION],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "x"}},
        },
        {"messages": [QUESTION], "tool_choice": "auto"},
        {"messages": [QUESTION], "tools": [WEATHER_TOOL, WEATHER_TOOL]},
        {"messages": [QUESTION, {"role": "tool", "tool_call_id": "call_nobody_made", "content": "dry"}]},
    ]
    for body in unfit:
        with pytest.raises(openai.UnprocessableEntityError):
            await client.chat.completions.create(model="agent", **body)
    assert len(scripted.requests) == before


async def test_the_offline_answerer_answers_without_calling_client_tools(
    serve: Callable[..., str], memory_target: str, nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    async with gateway_and_agent(serve, memory_target, nats_namespace, nc, tmp_path, ExtractiveAnswerer()) as client:
        completion = await client.chat.completions.create(model="agent", messages=[QUESTION], tools=[WEATHER_TOOL])
        assert completion.choices[0].finish_reason == "stop"
        assert completion.choices[0].message.tool_calls is None
        assert completion.choices[0].message.content
