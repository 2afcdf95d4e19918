"""For the pattern graphs' tests: a real retrieval service with a few documents, and an OpenAI-compatible server
(tests/agent/openai_server.py, real HTTP and SSE) scripted as a model that plans, routes, uses tools and writes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_retrieval.server import serve as serve_retrieval
from threadline_retrieval.settings import RetrievalSettings

from tests.agent.openai_server import ScriptedModel
from tests.conftest import free_port

DOCUMENTS = {
    "durability.md": "Every run request is stored in a JetStream work queue until a worker acknowledges it. "
    "A worker acknowledges a run only after its final checkpoint is stored.",
    "scaling.md": "Workers of one graph share a durable consumer, so adding workers adds capacity.",
}
USAGE = {"prompt_tokens": 10, "completion_tokens": 2}  # every reply's: the run's total is 12 per request


@asynccontextmanager
async def knowledge_base(tmp_path: Path, tenant: str = "acme") -> AsyncIterator[str]:
    """The retrieval service holding DOCUMENTS for ``tenant``; yields its address."""
    port = free_port()
    settings = RetrievalSettings(RETRIEVAL_HOST="127.0.0.1", RETRIEVAL_PORT=port, RETRIEVAL_DATA_DIR=tmp_path / "kb")
    async with serve_retrieval(settings):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            documents = [pb.Document(id=name, text=text) for name, text in DOCUMENTS.items()]
            await retrieval_pb2_grpc.RetrievalServiceStub(channel).Ingest(
                pb.IngestRequest(tenant_id=tenant, documents=documents)
            )
        yield f"127.0.0.1:{port}"


@dataclass
class PatternModel(ScriptedModel):
    """A model for the pattern graphs. Asked for a structured answer (a tool named Plan, Reflection or Route
    that it must call), it gives the next one scripted for that name; given a task with tools, it calls the
    calculator for "Compute <expression>" and otherwise searches the task, then reports what the tool
    returned; asked without tools (the final answer), it says ``answer``."""

    structured: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    answer: str = ""

    def reply(self, body: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, int]]:
        messages, tools = body["messages"], [t["function"]["name"] for t in body.get("tools", [])]
        forced = [name for name in tools if name in self.structured]
        if forced:
            return self._call(forced[0], self.structured[forced[0]].pop(0)), "tool_calls", USAGE
        last = messages[-1]
        if last["role"] == "tool":  # a step's report: what its tool said, citing the first passage if any
            found = last["content"]
            lines = found.splitlines()
            # Passages follow the tool's note that they are data; the first one's text is the line after "[1] (...)".
            first = next((n for n, line in enumerate(lines) if line.startswith("[1] (document")), None)
            text = f"Found: {lines[first + 1]} [1]" if first is not None else f"Computed: {found}"
            return {"content": text}, "stop", USAGE
        if tools and last["role"] == "user":
            task = last["content"]
            computed = re.match(r"Compute (.+)", task)
            if computed and "calculator" in tools:
                return self._call("calculator", {"expression": computed.group(1)}), "tool_calls", USAGE
            return self._call("search_knowledge_base", {"query": task}), "tool_calls", USAGE
        return {"content": self.answer}, "stop", USAGE

    def _call(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        call = {"id": f"call_{len(self.requests)}", "type": "function", "function": {"name": name, "arguments": ""}}
        call["function"]["arguments"] = json.dumps(args)
        return {"content": None, "tool_calls": [call]}
