"""``supervisor``: a supervisor and a team of specialised agents handing off work (Q77).

The ``supervisor`` node picks who acts next and hands them a task with LangGraph's
``Command(goto=...)``; each agent does its task with its own tools and hands back:

- ``researcher``: searches the knowledge base;
- ``analyst``: computes with the calculator;
- ``writer``: writes the answer from the team's findings, citing their passages; the run ends there.

Plain LangGraph, no extra package: a handoff is a ``Command`` and the team shares the graph's
state. Each handoff and each agent's step are written to the run's stream as ``custom`` events
(``{"type": "handoff" | "step", ...}``) and each agent's turn is a node span of the trace. The
supervisor hands off at most ``MAX_HANDOFFS`` times per question, then the writer answers.

With a chat model the supervisor routes by structured output (tool calling) and the writer is
the model. The extractive answerer cannot route or write, so with it the supervisor follows
rules (:func:`route_by_rules`: the researcher when the question asks for facts, the analyst
when it holds arithmetic, then the writer), and the writer joins the agents' cited findings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from pydantic import BaseModel, Field

from threadline_agent.graphs.answerer import search_query, terms
from threadline_agent.graphs.calculator import CALCULATOR_TOOL, find_expression
from threadline_agent.graphs.knowledge_base import KNOWLEDGE_BASE_TOOL
from threadline_agent.graphs.platform import Platform, assistant
from threadline_agent.graphs.steps import (
    Finding,
    add_usage,
    conversation,
    do_step,
    is_offline,
    latest_question,
    structured,
    unattended_tools,
    write_answer,
)

__all__ = ["TeamState", "build_supervisor_graph", "route_by_rules", "supervisor"]

# Handoffs to the researcher and the analyst per question, then the writer answers: at most
# 2 * 4 + 2 graph steps, within a run's default 12 (RECURSION_LIMIT).
MAX_HANDOFFS = 4
WRITER = "writer"
# Each agent's tool and what the supervisor is told it does.
AGENTS: Mapping[str, tuple[str, str]] = {
    "researcher": (KNOWLEDGE_BASE_TOOL, "searches the user's knowledge base for facts, with citations"),
    "analyst": (CALCULATOR_TOOL, "computes exactly with the calculator"),
}
ROUTE_PROMPT = (
    "You supervise a team that answers the user's latest question. Your team:\n{team}\n"
    "- writer: writes the final answer from the team's findings\n\n"
    "Findings so far:\n{findings}\n\n"
    "Pick who acts next and give them one short task. Never give an agent a task it has already done. "
    "Pick the writer as soon as the findings are enough to answer."
)


class TeamState(MessagesState, total=False):
    """The conversation, and this question's work: whose question it is, the findings, the handoffs made."""

    question_id: str  # the human message the findings are for: a new question starts the work afresh
    task: str  # what the supervisor handed the next agent
    findings: list[Finding]
    handoffs: int
    spent: UsageMetadata | None  # model calls of the turn that left no message (routes, agents' closing replies)


class Route(BaseModel):
    """Who acts next, and their task."""

    next: str = Field(description="An agent's name, or writer to answer.")
    task: str = Field(default="", description="The agent's task; empty for the writer.")


def route_by_rules(question: str, findings: Sequence[Finding], agents: Sequence[str]) -> tuple[str, str]:
    """The offline supervisor: the researcher when the question asks for facts (words beside any arithmetic),
    the analyst when it holds arithmetic, each once; then the writer."""
    done = {f["by"] for f in findings}
    expression = find_expression(question)
    asks_facts = bool(terms(question.replace(expression, " ") if expression else question))
    if "researcher" in agents and "researcher" not in done and (asks_facts or not expression):
        return "researcher", question
    if "analyst" in agents and "analyst" not in done and expression:
        return "analyst", f"Compute {expression}"
    return WRITER, ""


def build_supervisor_graph(
    model: BaseChatModel, tools: Sequence[BaseTool], checkpointer: BaseCheckpointSaver | None
) -> CompiledStateGraph:
    """supervisor -> (researcher | analyst -> supervisor)* -> writer; an agent whose tool is missing is not hired."""
    offline = is_offline(model)
    by_name = {tool.name: tool for tool in tools}
    team = {name: by_name[tool] for name, (tool, _) in AGENTS.items() if tool in by_name}
    roster = "\n".join(f"- {name}: {AGENTS[name][1]}" for name in team)

    async def supervise(state: TeamState, config: RunnableConfig) -> Command:
        question = latest_question(state["messages"])
        fresh = state.get("question_id") != question.id
        findings = [] if fresh else state.get("findings") or []
        handoffs = 0 if fresh else state.get("handoffs", 0)
        spent = None if fresh else state.get("spent")
        if handoffs >= MAX_HANDOFFS:
            goto, task = WRITER, ""
        elif offline:
            # A short follow-up ("and why?") is routed with the question it leans on, as the answerer searches.
            goto, task = route_by_rules(search_query(state["messages"]), findings, list(team))
        else:
            done = "\n".join(f"- {f['by']}, {f['task']}: {f['result'] or 'nothing'}" for f in findings) or "- none"
            prompt = ROUTE_PROMPT.format(team=roster or "- (no agents)", findings=done)
            made, used = await structured(
                model, Route, [*conversation(state["messages"]), SystemMessage(prompt)], config
            )
            spent = add_usage(spent, used)
            chosen = made if isinstance(made, Route) else Route(next=WRITER)
            # A name the team does not have, or a task without words, is the writer's turn.
            goto, task = (chosen.next, chosen.task) if chosen.next in team and chosen.task.strip() else (WRITER, "")
        get_stream_writer()({"type": "handoff", "to": goto, "task": task, "handoff": handoffs + 1})
        update = {
            "question_id": question.id,
            "findings": findings,
            "handoffs": handoffs + (goto != WRITER),
            "task": task,
            "spent": spent,
        }
        return Command(goto=goto, update=update)

    def make_agent(name: str, tool: BaseTool) -> Any:
        async def act(state: TeamState, config: RunnableConfig) -> Command:
            findings, task = state.get("findings") or [], state.get("task") or ""
            produced, finding, used = await do_step(
                model,
                [tool],
                task,
                question=latest_question(state["messages"]).text,
                by=name,
                earlier=findings,
                config=config,
            )
            get_stream_writer()({"type": "step", "agent": name, "task": task, "tools": finding["tools"]})
            update = {
                "messages": produced,
                "findings": [*findings, finding],
                "spent": add_usage(state.get("spent"), used),
            }
            return Command(goto="supervisor", update=update)

        return act

    async def write(state: TeamState, config: RunnableConfig) -> dict[str, Any]:
        findings = state.get("findings") or []
        return {"messages": [await write_answer(model, state["messages"], findings, state.get("spent"), config)]}

    builder = StateGraph(TeamState)
    builder.add_node("supervisor", supervise, destinations=(*team, WRITER))
    for name, tool in team.items():
        builder.add_node(name, make_agent(name, tool), destinations=("supervisor",))
    builder.add_node(WRITER, write)
    builder.add_edge(START, "supervisor")
    builder.add_edge(WRITER, END)
    return builder.compile(checkpointer=checkpointer)


# A supervisor handing the question to a researcher and an analyst, then to a writer.
@assistant(final_node=WRITER, answer_nodes=(WRITER,))
def supervisor(platform: Platform) -> CompiledStateGraph:
    return build_supervisor_graph(platform.model, unattended_tools(platform), None)
