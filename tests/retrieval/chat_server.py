"""An OpenAI-compatible chat endpoint for the chat reranker's tests, over real HTTP (the pattern of
tests/agent/openai_server.py): the real ``openai`` client in the retrieval service talks to it.

It plays a model that scores each numbered passage of the reranker's prompt by how often it says
:data:`tests.retrieval.cross_encoder.WORD`, or, as a test sets ``behaviour``, one that fails: an
HTTP error, a reply that is not the JSON asked for, or no reply in time.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse

from tests.agent.openai_server import serve_completions
from tests.retrieval.cross_encoder import WORD

Behaviour = Literal["score", "error", "garbage", "slow"]


@dataclass
class ScoringModel:
    behaviour: Behaviour = "score"
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    # Set when a slow reply may end: the server waits for it, so shutting down never hangs on a sleep.
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @staticmethod
    def passages(prompt: str) -> list[str]:
        return re.findall(r"^\[\d+\] (.*)$", prompt, re.MULTILINE)

    async def completions(self, request: Request) -> Any:
        body = await request.json()
        self.requests.append(body)
        if self.behaviour == "error":
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, status_code=503)
        if self.behaviour == "slow":
            await self.release.wait()
        passages = self.passages(body["messages"][-1]["content"])
        scores = [len(re.findall(rf"\b{WORD}\b", p.lower())) for p in passages]
        content = "I think they are all fine." if self.behaviour == "garbage" else json.dumps({"scores": scores})
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
        return JSONResponse(
            {"id": "c", "object": "chat.completion", "model": body["model"], "choices": [choice], "usage": usage}
        )


@asynccontextmanager
async def serve_scoring_model(model: ScoringModel | None = None) -> AsyncIterator[ScoringModel]:
    """The model on a free loopback port, served by uvicorn in this loop."""
    model = model or ScoringModel()
    async with serve_completions(model.completions) as base_url:
        model.base_url = base_url
        try:
            yield model
        finally:
            model.release.set()  # a request held back must not keep the server from stopping
