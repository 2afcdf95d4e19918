"""MCP tools for the ``agent`` assistant: an MCP server started here with the ``mcp`` SDK (Streamable HTTP on a
free port) whose tool the agent calls during a run on the real worker and NATS, driven by the scripted
OpenAI-compatible model over real HTTP. A server that is down, before or during the run, is a tool error the
model reads, never a failed run; a tool named in the approval setting waits for a person."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from nats.aio.client import Client as NatsClient
from starlette.requests import Request
from threadline.events import RunConfig, RunRequested
from threadline.run_events import RunEvent
from threadline_agent.graphs.chat_models import chat_model
from threadline_agent.graphs.mcp_tools import STDIO_OFF, McpToolbox
from threadline_agent.settings import AgentSettings
from threadline_agent.worker.agent_worker import AgentWorker

from tests.agent.conftest import running_worker
from tests.agent.openai_server import USAGE, ScriptedModel, serve_openai
from tests.agent.test_worker import run_and_collect
from tests.conftest import free_port

TOKEN = "Bearer weather-secret"


@dataclass
class WeatherServer:
    url: str
    calls: list[str]  # the cities the forecast tool was asked about
    authorization: list[str]  # the Authorization header of each HTTP request it got
    stop: Callable[[], Awaitable[None]]


@asynccontextmanager
async def serve_mcp() -> AsyncIterator[WeatherServer]:
    """An MCP server with one tool, ``forecast``, over Streamable HTTP in this event loop."""
    server = MCPServer("weather")
    calls: list[str] = []
    authorization: list[str] = []

    @server.tool()
    def forecast(city: str) -> str:
        """Tomorrow's weather forecast for a city."""
        calls.append(city)
        return f"Sunny in {city}, 21 degrees."

    @server.tool(name="alerts.today")
    def alerts() -> str:
        """A name no chat API takes as a function's: never offered to the model."""
        return "none"

    app = server.streamable_http_app()

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            authorization.append(Request(scope).headers.get("authorization", ""))
        await app(scope, receive, send)

    port = free_port()
    http = uvicorn.Server(uvicorn.Config(recording, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(http.serve())
    while not http.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)

    async def stop() -> None:
        http.should_exit = True
        await task

    try:
        yield WeatherServer(f"http://127.0.0.1:{port}/mcp", calls, authorization, stop)
    finally:
        if not task.done():
            await stop()


@dataclass
class WeatherModel(ScriptedModel):
    """Calls ``forecast`` for Oslo, then answers with whatever the tool's result says; ``on_first_request`` runs
    when the model is first asked (the run's tools are listed by then)."""

    on_first_request: Callable[[], Awaitable[None]] | None = None
    asked: list[str] = field(default_factory=list)

    def reply(self, body: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, int]]:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return {"content": f"The forecast tool said: {last['content']}"}, "stop", USAGE[1]
        call = {"id": "call_w", "type": "function", "function": {"name": "forecast", "arguments": '{"city": "Oslo"}'}}
        return {"content": None, "tool_calls": [call]}, "tool_calls", USAGE[0]

    async def completions(self, request: Request) -> Any:
        if self.on_first_request is not None:
            hook, self.on_first_request = self.on_first_request, None
            await hook()
        return await super().completions(request)


def servers(url: str) -> dict[str, Any]:
    """The assistant's config: the weather server (with its credentials) and a stdio one the deployment refuses."""
    return {
        "mcp_servers": {
            "weather": {"transport": "streamable_http", "url": url, "headers": {"Authorization": TOKEN}},
            "shell": {"transport": "stdio", "command": "sh", "args": ["-c", "echo pwned"]},
        }
    }


@asynccontextmanager
async def agent_on(
    scripted: ScriptedModel, nats_namespace: str, nc: NatsClient, tmp_path: Path, **settings: Any
) -> AsyncIterator[AgentWorker]:
    endpoint = {"OPENAI_BASE_URL": scripted.base_url, "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": "scripted"}
    model = chat_model(AgentSettings(**endpoint))
    async with running_worker(nats_namespace, nc, tmp_path, model, AGENT_MEMORY_TOOLS=False, **settings) as worker:
        yield worker


async def ask(nc: NatsClient, worker: AgentWorker, thread: str, url: str, **fields: Any) -> list[RunEvent]:
    fields.setdefault("input", "Will it rain in Oslo tomorrow?")
    run = RunRequested(
        run_id=uuid.uuid4().hex,
        thread_id=thread,
        tenant_id="acme",
        config=RunConfig(configurable=servers(url)),
        **fields,
    )
    return [event for event, _ in await run_and_collect(nc, worker.topology, run)]


def of(events: list[RunEvent], kind: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.kind == kind]


def system_prompt(request: dict[str, Any]) -> str:
    return next(m["content"] for m in request["messages"] if m["role"] == "system")


async def test_the_agent_calls_a_tool_of_its_mcp_server_during_a_run(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    async with serve_mcp() as weather, serve_openai(WeatherModel()) as scripted:
        async with agent_on(scripted, nats_namespace, nc, tmp_path) as worker:
            events = await ask(nc, worker, uuid.uuid4().hex, weather.url)

    assert [(c["name"], c["args"]) for c in of(events, "tool_call")] == [("forecast", {"city": "Oslo"})]
    assert [(r["name"], r["status"]) for r in of(events, "tool_result")] == [("forecast", "success")]
    assert events[-1].kind == "end"
    assert events[-1].data["answer"] == "The forecast tool said: Sunny in Oslo, 21 degrees."
    assert weather.calls == ["Oslo"]
    assert weather.authorization and set(weather.authorization) == {TOKEN}  # the config's headers, on every request
    first = scripted.requests[0]
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert {"search_knowledge_base", "calculator", "forecast"} <= set(offered)
    assert offered["forecast"]["description"] == "Tomorrow's weather forecast for a city."
    assert offered["forecast"]["parameters"]["properties"]["city"]["type"] == "string"
    # The stdio server never ran (AGENT_MCP_ALLOW_STDIO is off), and the model was told why it has no tools.
    assert f"shell: {STDIO_OFF}" in system_prompt(first)


async def test_a_server_stopped_mid_run_is_a_tool_error_the_model_reads(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    async with serve_mcp() as weather:
        # Stopped once its tools are listed and the model is asked: the model's call finds it gone.
        async with serve_openai(WeatherModel(on_first_request=weather.stop)) as scripted:
            async with agent_on(scripted, nats_namespace, nc, tmp_path) as worker:
                events = await ask(nc, worker, uuid.uuid4().hex, weather.url)

    assert [(r["name"], r["status"]) for r in of(events, "tool_result")] == [("forecast", "error")]
    assert events[-1].kind == "end", events[-1].data
    assert weather.calls == []
    told = scripted.requests[1]["messages"][-1]
    assert told["role"] == "tool" and "The MCP server 'weather' failed" in told["content"]
    assert events[-1].data["answer"] == f"The forecast tool said: {told['content']}"


async def test_a_server_down_before_the_run_leaves_the_model_without_its_tools(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/mcp"
    async with serve_openai(WeatherModel()) as scripted:
        async with agent_on(scripted, nats_namespace, nc, tmp_path, AGENT_MCP_TIMEOUT_S=5) as worker:
            events = await ask(nc, worker, uuid.uuid4().hex, nobody)

    first = scripted.requests[0]
    assert "forecast" not in {t["function"]["name"] for t in first["tools"]}
    assert "weather: it could not be reached" in system_prompt(first)
    # The model called it all the same: an error it reads, and the run still answers.
    assert [(r["name"], r["status"]) for r in of(events, "tool_result")] == [("forecast", "error")]
    assert events[-1].kind == "end"
    assert "forecast is not a valid tool" in scripted.requests[1]["messages"][-1]["content"]


async def test_an_mcp_tool_in_the_approval_setting_waits_for_a_person(
    nats_namespace: str, nc: NatsClient, tmp_path: Path
) -> None:
    thread = uuid.uuid4().hex
    async with serve_mcp() as weather, serve_openai(WeatherModel()) as scripted:
        async with agent_on(scripted, nats_namespace, nc, tmp_path, AGENT_APPROVAL_TOOLS="forecast") as worker:
            waiting = await ask(nc, worker, thread, weather.url)
            assert [e.kind for e in waiting] == ["metadata", "tool_call", "interrupt", "end"]
            end = waiting[-1].data
            assert end["status"] == "interrupted"
            assert (end["interrupts"][0]["name"], end["interrupts"][0]["args"]) == ("forecast", {"city": "Oslo"})
            assert weather.calls == []  # nothing ran before the decision

            approved = await ask(nc, worker, thread, weather.url, input="", resume={"action": "approve"})

    assert [(r["name"], r["status"]) for r in of(approved, "tool_result")] == [("forecast", "success")]
    assert approved[-1].data["answer"] == "The forecast tool said: Sunny in Oslo, 21 degrees."
    assert weather.calls == ["Oslo"]


STDIO_SERVER = '''
from mcp.server.mcpserver import MCPServer

server = MCPServer("local")


@server.tool()
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


server.run()
'''


async def test_stdio_servers_run_only_where_the_deployment_allows_them(tmp_path: Path) -> None:
    script = tmp_path / "local_server.py"
    script.write_text(STDIO_SERVER)
    named = {"mcp_servers": {"local": {"transport": "stdio", "command": sys.executable, "args": [str(script)]}}}
    limits = {"list_timeout_s": 30.0, "call_timeout_s": 30.0, "ttl_s": 60.0}

    refused = await McpToolbox(allow_stdio=False, **limits).tools_for(named)
    assert (refused.tools, refused.unavailable) == ([], {"local": STDIO_OFF})

    allowed = await McpToolbox(allow_stdio=True, **limits).tools_for(named)
    assert [tool.name for tool in allowed.tools] == ["shout"]
    result = await allowed.tools[0].ainvoke({"name": "shout", "args": {"text": "hi"}, "id": "c", "type": "tool_call"})
    assert (result.content, result.status) == ("HI", "success")


async def test_a_tool_list_is_reused_while_fresh_and_hosts_or_configs_refused_are_no_failure() -> None:
    async with serve_mcp() as weather:
        named = {"mcp_servers": {"weather": {"transport": "streamable_http", "url": weather.url}}}
        box = McpToolbox(allow_stdio=False, list_timeout_s=5.0, call_timeout_s=5.0, ttl_s=60.0)
        first, again = await asyncio.gather(box.tools_for(named), box.tools_for(named))
        listed = len(weather.authorization)
        assert [t.name for t in first.tools] == ["forecast"] and again.tools == first.tools  # one listing for both
        assert (await box.tools_for(named)).tools == first.tools
        assert len(weather.authorization) == listed  # served from the cache: no request to the server
        # Other credentials are another entry: listed afresh, never given the first's list.
        other = {"mcp_servers": {"weather": {**named["mcp_servers"]["weather"], "headers": {"Authorization": TOKEN}}}}
        assert [t.name for t in (await box.tools_for(other)).tools] == ["forecast"]
        assert TOKEN in weather.authorization[listed:]
        # With no time to live every run lists again.
        uncached = McpToolbox(allow_stdio=False, list_timeout_s=5.0, call_timeout_s=5.0, ttl_s=0.0)
        before = len(weather.authorization)
        await uncached.tools_for(named)
        between = len(weather.authorization)
        await uncached.tools_for(named)
        assert before < between < len(weather.authorization)

    elsewhere = McpToolbox(
        allow_stdio=False,
        list_timeout_s=5.0,
        call_timeout_s=5.0,
        ttl_s=60.0,
        allowed_hosts=frozenset({"mcp.example.com"}),
    )
    fenced = await elsewhere.tools_for(named)
    assert fenced.tools == [] and "'127.0.0.1' is not one this deployment allows" in fenced.unavailable["weather"]
    broken = await box.tools_for({"mcp_servers": {"weather": {"transport": "ftp"}}})
    assert broken.tools == [] and "mcp_servers" in broken.unavailable
    assert json.dumps(broken.unavailable)  # a reason the model can be told
