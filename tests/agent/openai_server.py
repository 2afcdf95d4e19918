"""An OpenAI-compatible chat server for the agent's tests: real HTTP and server-sent events, so the
real ``openai`` client under ``ChatOpenAI`` is what talks to it (the one remote SaaS we stand in for).

It plays a model that first calls the knowledge-base tool with the user's question, then, once the
tool's result is in the conversation, streams an answer a word at a time; every request is kept so
a test can check what the client sent.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import free_port

ANSWER = "Every run request is stored in a JetStream work queue [1]."
USAGE = ({"prompt_tokens": 50, "completion_tokens": 9}, {"prompt_tokens": 120, "completion_tokens": 14})


@dataclass
class ScriptedModel:
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    def reply(self, body: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, int]]:
        """(the assistant message's delta fields, finish reason, usage) for this turn."""
        messages = body["messages"]
        if messages[-1]["role"] == "tool":
            return {"content": ANSWER}, "stop", USAGE[1]
        tool = next(t["function"]["name"] for t in body.get("tools", []) if "knowledge" in t["function"]["name"])
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": tool, "arguments": json.dumps({"query": question})},
        }
        return {"content": None, "tool_calls": [call]}, "tool_calls", USAGE[0]

    async def completions(self, request: Request) -> Any:
        body = await request.json()
        self.requests.append(body)
        delta, finish, usage = self.reply(body)
        usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        if not body.get("stream"):
            message = {"role": "assistant", **delta}
            choice = {"index": 0, "message": message, "finish_reason": finish}
            return JSONResponse(
                {"id": "c", "object": "chat.completion", "model": body["model"], "choices": [choice], "usage": usage}
            )
        return StreamingResponse(self._chunks(body, delta, finish, usage), media_type="text/event-stream")

    async def _chunks(
        self, body: dict[str, Any], delta: dict[str, Any], finish: str, usage: dict[str, int]
    ) -> AsyncIterator[str]:
        def chunk(choice_delta: dict[str, Any] | None, finish_reason: str | None = None, **extra: Any) -> str:
            choices = (
                [] if choice_delta is None else [{"index": 0, "delta": choice_delta, "finish_reason": finish_reason}]
            )
            payload = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
                "choices": choices,
            }
            return f"data: {json.dumps(payload | extra)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        if delta.get("tool_calls"):
            for index, call in enumerate(delta["tool_calls"]):
                arguments = call["function"]["arguments"]
                head = {
                    "index": index,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""},
                }
                yield chunk({"tool_calls": [head]})
                # Arguments arrive in pieces, as real models send them.
                for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                    yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        else:
            for word in re.findall(r"\S+\s*", delta["content"]):
                yield chunk({"content": word})
        yield chunk({}, finish)
        if body.get("stream_options", {}).get("include_usage"):
            yield chunk(None, usage=usage)
        yield "data: [DONE]\n\n"


@asynccontextmanager
async def serve_completions(completions: Callable[[Request], Awaitable[Response]]) -> AsyncIterator[str]:
    """``POST /v1/chat/completions`` answered by ``completions`` on a free loopback port, served by uvicorn in
    this loop; yields the base URL an OpenAI client takes."""
    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # says why it could not start
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def serve_openai(model: ScriptedModel | None = None) -> AsyncIterator[ScriptedModel]:
    """The scripted model (or a test's own script of it) on a free loopback port, served by uvicorn in this loop."""
    model = model or ScriptedModel()
    async with serve_completions(model.completions) as base_url:
        model.base_url = base_url
        yield model
