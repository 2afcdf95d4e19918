"""OpenAI client tools on ``/v1/chat/completions``: the functions a client offers, which the client runs.

The request's ``tools`` and ``tool_choice`` travel with the run (``RunRequested.client_tools``); a
run that ends calling them answers with ``message.tool_calls`` and ``finish_reason`` "tool_calls".
The client's next request carries the results as ``role: "tool"`` messages after that assistant
message: they continue the same thread as the graph's tool messages. An assistant takes client
tools unless its config says ``"client_tools": false`` (assistant_tools.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from threadline.run_events import ToolCall

from threadline_gateway.errors import invalid_field

FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"  # OpenAI's rule for a function's name


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = Field(default=None, max_length=8000)
    parameters: dict[str, Any] | None = Field(default=None, description="A JSON Schema of the arguments.")
    strict: bool | None = None


class ChatTool(BaseModel):
    """One of the client's tools, as OpenAI's ``tools`` entries: a function the client runs."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(BaseModel):
    name: str = Field(pattern=FUNCTION_NAME)


class NamedToolChoice(BaseModel):
    """``tool_choice`` naming the one function the model must call."""

    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class FunctionCall(BaseModel):
    name: str
    arguments: str = Field(description="The arguments as a JSON object's text.")


class ChatToolCall(BaseModel):
    """A call of a client tool in an assistant message (the response's, or a resent history's)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    @classmethod
    def of(cls, call: ToolCall) -> ChatToolCall:
        return cls(id=call.id or "", function=FunctionCall(name=call.name, arguments=json.dumps(call.args)))


class _Message(Protocol):
    """What this module reads of a chat message (openai_schemas.ChatMessage)."""

    @property
    def role(self) -> str: ...
    @property
    def tool_call_id(self) -> str | None: ...
    @property
    def tool_calls(self) -> list[ChatToolCall] | None: ...

    def text(self) -> str: ...


def checked_tools(
    tools: Sequence[ChatTool] | None, choice: ToolChoice | None
) -> tuple[list[dict[str, Any]], str | dict[str, Any] | None]:
    """The run's client tools and tool choice as OpenAI specs; a 422 naming ``tools`` or ``tool_choice`` when
    they do not fit together."""
    tools = list(tools or [])
    names = [tool.function.name for tool in tools]
    if len(set(names)) < len(names):
        raise invalid_field("tools", "each function's name must be unique")
    if choice is not None and not tools:
        raise invalid_field("tool_choice", "is only allowed with tools")
    if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
        raise invalid_field("tool_choice", f"names {choice.function.name!r}, which is not one of the tools")
    specs = [tool.model_dump(exclude_none=True) for tool in tools]
    return specs, choice.model_dump() if isinstance(choice, NamedToolChoice) else choice


def tool_results(messages: Sequence[_Message]) -> list[dict[str, Any]]:
    """The request's trailing ``tool`` messages as the thread's tool messages (none: []); a 422 naming
    ``messages`` unless each answers a call of the assistant message before them."""
    at = len(messages)
    while at > 0 and messages[at - 1].role == "tool":
        at -= 1
    results = messages[at:]
    if not results:
        return []
    asked = messages[at - 1] if at > 0 else None
    calls = {c.id for c in (asked.tool_calls or [])} if asked is not None and asked.role == "assistant" else set()
    for message in results:
        if not message.tool_call_id or message.tool_call_id not in calls:
            raise invalid_field(
                "messages", "a tool message must answer, by tool_call_id, a call of the assistant message before it"
            )
    return [{"role": "tool", "content": m.text(), "tool_call_id": m.tool_call_id} for m in results]


def whole_history(messages: Sequence[_Message]) -> list[dict[str, Any]]:
    """Every message as the thread's messages, tool calls and results too: a history that no stored thread
    holds starts one with all of it."""
    history: list[dict[str, Any]] = []
    for m in messages:
        if m.role in ("system", "developer"):
            history.append({"role": "system", "content": m.text()})
        elif m.role == "user":
            history.append({"role": "user", "content": m.text()})
        elif m.role == "assistant":
            calls = [c.model_dump() for c in m.tool_calls or []]
            history.append({"role": "assistant", "content": m.text(), **({"tool_calls": calls} if calls else {})})
        elif m.role == "tool":
            history.append({"role": "tool", "content": m.text(), "tool_call_id": m.tool_call_id})
    return history
