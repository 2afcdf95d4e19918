"""Client tools: functions an OpenAI client offers with its request, which the client itself runs.

The model is offered them beside the platform's tools; a reply that calls one ends the run, its
calls in the run's result (``RunResult.tool_calls``), and the client's next request carries their
results as tool messages that continue the thread. They reach the graph in the run's config, under
keys a client's own configurable can never set (``client_configurable`` drops ``__`` keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig

TOOLS_KEY = "__threadline_client_tools"
CHOICE_KEY = "__threadline_tool_choice"


@dataclass(frozen=True)
class ClientTools:
    """The run's client tools as OpenAI function specs, and the client's ``tool_choice``."""

    specs: list[dict[str, Any]] = field(default_factory=list)
    choice: str | dict[str, Any] | None = None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(spec["function"]["name"] for spec in self.specs)


def client_tools_config(specs: Sequence[dict[str, Any]], choice: str | dict[str, Any] | None) -> dict[str, Any]:
    """The configurable entries that carry a run's client tools to its graph (none: nothing)."""
    return {TOOLS_KEY: list(specs), CHOICE_KEY: choice} if specs else {}


def client_tools_of(config: RunnableConfig | None) -> ClientTools:
    configurable = (config or {}).get("configurable") or {}
    return ClientTools(list(configurable.get(TOOLS_KEY) or []), configurable.get(CHOICE_KEY))


def unanswered(messages: Sequence[AnyMessage], names: frozenset[str]) -> list[ToolCall]:
    """The calls of client tools in the last model message that no tool message answers yet."""
    at = max((n for n, m in enumerate(messages) if isinstance(m, AIMessage)), default=None)
    if at is None or not names:
        return []
    asked = messages[at]
    assert isinstance(asked, AIMessage)
    answered = {m.tool_call_id for m in messages[at + 1 :] if isinstance(m, ToolMessage)}
    return [c for c in asked.tool_calls if c["name"] in names and c["id"] not in answered]


def answer_left_calls(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """``messages`` as a model may read them: a call followed by later messages but never answered (a client
    that asked on instead of returning a tool's result) gets an error result, as chat APIs require one per call."""
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    fixed: list[AnyMessage] = []
    for n, message in enumerate(messages):
        fixed.append(message)
        if isinstance(message, AIMessage) and n < len(messages) - 1:
            fixed.extend(
                ToolMessage(
                    content="No result: the call was not run.", tool_call_id=c["id"], name=c["name"], status="error"
                )
                for c in message.tool_calls
                if c["id"] not in answered
            )
    return fixed
