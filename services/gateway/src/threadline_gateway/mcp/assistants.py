"""Each assistant the caller can run as an MCP tool: ask it a question, get its answer with citations.

As LangGraph's Agent Server does, the tool is named after the assistant and described by it. A
tool name is at most 64 letters, digits, '_' or '-' and unique in a listing, so an assistant
whose name is not such a name, or is shared with another tool, is offered under its id instead;
a call resolves the name against the same listing, so what was listed is what runs.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from mcp_types import Tool, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field
from threadline.ids import ID_PATTERN
from threadline.run_events import Citation

from threadline_gateway.answers import result_of
from threadline_gateway.auth import Principal
from threadline_gateway.errors import ApiError
from threadline_gateway.memory import Assistant, Memory
from threadline_gateway.run_starter import NewRun, RunStarter

# The assistants offered as tools, most recently updated first: a model reads a long tool list poorly anyway.
MAX_ASSISTANT_TOOLS = 100
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class AskArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="The question, in words.")
    thread_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Continue a conversation: the thread_id of an earlier answer. Omitted: a new conversation.",
    )


class AssistantAnswer(BaseModel):
    answer: str
    citations: list[Citation] = Field(description="The passages the answer cites, [1] first.")
    run_id: str
    thread_id: str = Field(description="Pass it back as thread_id to ask a follow-up question.")
    assistant_id: str


INPUT_SCHEMA = AskArguments.model_json_schema()
_OUTPUT_SCHEMA = AssistantAnswer.model_json_schema()


async def assistant_tools(memory: Memory, tenant_id: str, reserved: Collection[str]) -> dict[str, Assistant]:
    """The caller's assistants by tool name (none named as one of ``reserved``)."""
    assistants = await memory.search_assistants(tenant_id, limit=MAX_ASSISTANT_TOOLS)
    names = [a.name for a in assistants]
    return {
        a.name
        if _TOOL_NAME.fullmatch(a.name) and a.name not in reserved and names.count(a.name) == 1
        else a.assistant_id: a
        for a in assistants
    }


def tool(name: str, assistant: Assistant) -> Tool:
    described = assistant.description or f"The {assistant.name!r} assistant (graph {assistant.graph_id!r})."
    return Tool(
        name=name,
        title=assistant.name,
        description=f"{described} Ask it a question: it answers from the knowledge base, citing its sources as [n].",
        input_schema=INPUT_SCHEMA,
        output_schema=_OUTPUT_SCHEMA,
        annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=False, open_world_hint=False),
    )


async def ask(
    starter: RunStarter, principal: Principal, assistant: Assistant, arguments: dict[str, Any], timeout_s: float
) -> AssistantAnswer:
    """Run ``assistant`` on the question as any run starts (:meth:`RunStarter.start`) and wait for its answer.

    A bad argument raises pydantic's ValidationError; a refused or failed run ApiError.
    """
    asked = AskArguments.model_validate(arguments)
    run = await starter.start(
        principal, NewRun(input=asked.question, assistant_id=assistant.assistant_id, thread_id=asked.thread_id), "mcp"
    )
    result = result_of(run.record, await run.outcome(timeout_s))
    if result.status == "interrupted":
        raise ApiError(
            409,
            "interrupted",
            f"The run stopped for a person's decision (thread {result.thread_id}); "
            "decide it through the API, then ask again on that thread.",
        )
    return AssistantAnswer(
        answer=result.answer,
        citations=result.citations,
        run_id=result.run_id,
        thread_id=result.thread_id,
        assistant_id=assistant.assistant_id,
    )
