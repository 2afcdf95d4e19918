"""Human in the loop: tool calls that wait for a person's approval before they run.

The graph stops (LangGraph ``interrupt()``) before a call of a tool named in
AGENT_APPROVAL_TOOLS; the run ends "interrupted" with the call it waits on, and the
thread's checkpoint keeps the place. A later run on the thread carries the decision
(``RunRequested.resume``), which the graph receives as ``Command(resume=decision)``:

- ``{"action": "approve"}``: the call runs as the model asked;
- ``{"action": "edit", "args": {...}}``: it runs with these arguments instead;
- ``{"action": "reject", "reason": "..."}``: it does not run; the model is told so and answers without it.

One interrupt is one call: a message with two calls that need approval stops twice.

A call of one of the run's client tools (graphs/client_tools.py) never waits here nor runs in the
tools node: the client runs it, so the run ends once the platform's own calls of that message are done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import END, MessagesState
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from threadline_agent.graphs.client_tools import client_tools_of, unanswered
from threadline_agent.graphs.platform import RunTools

APPROVAL_NODE = "approve"
# Set in the response_metadata of a refused call's result (stored in checkpoints, so never renamed): an error of
# the user's making, not the tool's. The run reports it as ToolResult.rejected.
REJECTED = "rejected"
TOOLS_NODE = "tools"
# A run's tools from its config (Platform.run_tools): for graphs shared by runs whose tools differ.
ToolResolver = Callable[[RunnableConfig], Awaitable[RunTools]]


class Decision(BaseModel):
    """A person's answer to a tool call that waits for approval."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["approve", "reject", "edit"]
    args: dict[str, Any] | None = Field(default=None, description="With edit: the arguments to run the tool with.")
    reason: str | None = Field(default=None, max_length=2000, description="With reject: told to the model.")

    @model_validator(mode="after")
    def _edit_has_args(self) -> Decision:
        if self.action == "edit" and self.args is None:
            raise ValueError("an edit needs args")
        return self


def parse_decision(value: Any) -> Decision:
    """``value`` as a Decision, or ``ValueError`` naming what is wrong with it."""
    try:
        return Decision.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'resume'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"Not a decision on the waiting tool call ({problems}).") from None


def approval_request(call: ToolCall) -> dict[str, Any]:
    """What the interrupt carries to the client: the call waiting, and what may be answered."""
    return {
        "type": "tool_approval",
        "tool_call_id": call["id"],
        "name": call["name"],
        "args": call["args"],
        "actions": ["approve", "reject", "edit"],
    }


def route_tool_calls(approval_tools: Collection[str]) -> Callable[[MessagesState, RunnableConfig], str]:
    """After the model: to approval when a call needs it, else to the tools, or the end for an answer
    (or for calls of client tools only, which the client runs)."""

    def route(state: MessagesState, config: RunnableConfig) -> str:
        last = state["messages"][-1]
        client = client_tools_of(config).names
        ours = [c for c in last.tool_calls if c["name"] not in client] if isinstance(last, AIMessage) else []
        if not ours:
            return END
        return APPROVAL_NODE if any(c["name"] in approval_tools for c in ours) else TOOLS_NODE

    return route


def after_tools(state: MessagesState, config: RunnableConfig) -> str:
    """After the tools: back to the model, or the end while calls of client tools wait for the client."""
    return END if unanswered(state["messages"], client_tools_of(config).names) else "agent"


def make_approval_node(approval_tools: Collection[str]) -> Callable[..., Command]:
    """The node that stops for each call needing approval, then sends the decided calls on.

    LangGraph runs the node again from the top on resume, and each ``interrupt()`` returns
    the decision given for it, in order; so the node must do nothing before them but read state.
    """

    def approve(state: MessagesState, config: RunnableConfig) -> Command:
        message = state["messages"][-1]
        assert isinstance(message, AIMessage)
        client = client_tools_of(config).names
        calls: list[ToolCall] = []
        refusals: list[ToolMessage] = []
        for call in message.tool_calls:
            if call["name"] not in approval_tools or call["name"] in client:
                calls.append(call)
                continue
            decision = parse_decision(interrupt(approval_request(call)))
            if decision.action == "edit" and decision.args is not None:  # an edit always has args
                call = call.copy()
                call["args"] = decision.args
            calls.append(call)
            if decision.action == "reject":
                reason = f" ({decision.reason})" if decision.reason else ""
                refusals.append(
                    ToolMessage(
                        content=f"The {call['name']} call was declined by the user{reason}, so it did not run.",
                        tool_call_id=call["id"],
                        name=call["name"],
                        status="error",
                        response_metadata={REJECTED: True},
                    )
                )
        # The same id replaces the model's message: the thread records the calls as they were run.
        updated = message.model_copy(update={"tool_calls": calls})
        refused = {r.tool_call_id for r in refusals}
        if any(c["id"] not in refused and c["name"] not in client for c in calls):
            return Command(update={"messages": [updated, *refusals]}, goto=TOOLS_NODE)
        waiting = any(c["name"] in client for c in calls)  # the client's calls: the run ends, the client runs them
        return Command(update={"messages": [updated, *refusals]}, goto=END if waiting else "agent")

    return approve


def make_tools_node(tools: Sequence[BaseTool], resolve: ToolResolver | None = None) -> Callable[..., Any]:
    """``ToolNode`` over the last model message's calls that have no result yet (a refused one has), but
    the client's; with ``resolve``, over the run's tools (its MCP servers') rather than ``tools``."""
    fixed = ToolNode(list(tools))

    async def run_tools(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        messages = state["messages"]
        at = max(n for n, m in enumerate(messages) if isinstance(m, AIMessage))
        asked = messages[at]
        assert isinstance(asked, AIMessage)
        answered = {m.tool_call_id for m in messages[at + 1 :] if isinstance(m, ToolMessage)}
        client = client_tools_of(config).names
        pending = [
            {**c, "type": "tool_call"} for c in asked.tool_calls if c["id"] not in answered and c["name"] not in client
        ]
        tool_node = ToolNode((await resolve(config)).tools) if resolve is not None else fixed
        return await tool_node.ainvoke(pending, config)

    return run_tools
