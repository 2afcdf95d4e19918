"""``planner``: plan -> execute -> reflect -> synthesize, the plan-and-execute pattern (Q53).

The question becomes a plan of steps; each step is done with tools (one ``execute`` per step,
so each is a node span of the trace); a reflection reads what the steps found and may add
steps, for a bounded number of rounds; the synthesis answers the question from all the
findings, citing their passages. The plan, each step and each reflection are written to the
run's stream as ``custom`` events (``{"type": "plan" | "step" | "reflection", ...}``), and are
the graph's state (``plan``, ``findings``) for a client that reads it.

With a chat model, the model plans and reflects (as structured output, through tool calling:
the most widely served way to get one from an OpenAI-compatible endpoint) and writes the
answer. The extractive answerer can do none of these, and teaching it to fake them would
put a second, hidden planner inside a model that must stay a plain extractor; so with it the
same nodes decide by rules, stated where they are: the plan is the question's parts, the
reflection searches the whole question again for a part that found nothing, and the answer is
the steps' cited sentences joined (graphs/steps.py). Steps run the same with either model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
from pydantic import BaseModel, Field

from threadline_agent.graphs.answerer import search_query, terms
from threadline_agent.graphs.calculator import find_expression
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

__all__ = ["PlanState", "build_planner_graph", "planner", "question_parts"]

# A plan's steps (those a reflection adds included) and its reflections, bounded so that the longest run,
# plan + 5 execute + 3 reflect + synthesize, stays within a run's default 12 steps (RECURSION_LIMIT).
MAX_STEPS = 5
MAX_REFLECTIONS = 2  # the default, and the most; an assistant's config may ask for fewer (configurable.max_reflections)

PLAN_PROMPT = (
    "Plan how to answer the user's latest question with these tools: {tools}. Give at most {limit} short, "
    "self-contained steps, in order, each one task for one tool (a search of the knowledge base, or one "
    "calculation). A simple question needs one step."
)
REFLECT_PROMPT = (
    "The user's question: {question}\n\nThe steps done so far and what each found:\n{findings}\n\n"
    "If these findings are enough to answer the question, give no steps. Otherwise give at most {limit} "
    "further steps that would find what is missing; never repeat a step already done."
)
# Where a question splits into parts: after a ? or ;, and before "and"/"also" that opens a new question.
_PART_BREAK = re.compile(
    r"(?<=[?;])\s+|;\s*|,?\s+(?:and|also|then)\s+(?=(?:what|how|why|when|where|who|which|is|are|does|do|can|"
    r"should|compute|calculate)\b)",
    re.IGNORECASE,
)


class PlanState(MessagesState, total=False):
    """The conversation, and this turn's plan: its tasks, what each found, the reflections made."""

    plan: list[str]
    findings: list[Finding]
    rounds: int
    spent: UsageMetadata | None  # model calls of the turn that left no message (plan, reflections, step replies)


class Plan(BaseModel):
    """The steps that answer the question, in order."""

    steps: list[str] = Field(min_length=1, description="Short, self-contained tasks, each for one tool.")


class Reflection(BaseModel):
    """Steps still needed to answer the question; none when the findings are enough."""

    steps: list[str] = Field(default_factory=list, description="Further tasks; empty when nothing is missing.")


def question_parts(question: str, limit: int = MAX_STEPS) -> list[str]:
    """The offline plan: the question's parts ("X, and what is 12 * 7?" -> "X", "what is 12 * 7?"), or itself."""
    parts = [p.strip(" ,") for p in _PART_BREAK.split(question)]
    parts = [p for p in parts if terms(p) or find_expression(p)]
    return parts[:limit] or [question.strip()]


def build_planner_graph(
    model: BaseChatModel, tools: Sequence[BaseTool], checkpointer: BaseCheckpointSaver | None
) -> CompiledStateGraph:
    """plan -> execute (once per step) -> reflect (back to execute if it added steps) -> synthesize."""
    offline = is_offline(model)
    tool_names = ", ".join(t.name for t in tools) or "none"

    async def plan(state: PlanState, config: RunnableConfig) -> dict[str, Any]:
        question = latest_question(state["messages"]).text
        spent: UsageMetadata | None = None
        if offline:
            # A short follow-up ("and why?") is planned with the question it leans on, as the answerer searches.
            steps = question_parts(search_query(state["messages"]))
        else:
            prompt = PLAN_PROMPT.format(tools=tool_names, limit=MAX_STEPS)
            made, spent = await structured(
                model, Plan, [SystemMessage(prompt), *conversation(state["messages"])], config
            )
            # A model that answers with no usable plan still gets the question done, as one step.
            steps = (made.steps if isinstance(made, Plan) else [])[:MAX_STEPS] or [question]
        get_stream_writer()({"type": "plan", "steps": steps})
        return {"plan": steps, "findings": [], "rounds": 0, "spent": spent}

    async def execute(state: PlanState, config: RunnableConfig) -> dict[str, Any]:
        findings = state.get("findings") or []
        index, task = len(findings), state["plan"][len(findings)]
        write = get_stream_writer()
        write({"type": "step", "step": index + 1, "task": task, "status": "running"})
        question = latest_question(state["messages"]).text
        produced, finding, used = await do_step(
            model, tools, task, question=question, by="execute", earlier=findings, config=config
        )
        write({"type": "step", "step": index + 1, "task": task, "status": "done", "tools": finding["tools"]})
        return {
            "messages": produced,
            "findings": [*findings, finding],
            "spent": add_usage(state.get("spent"), used),
        }

    async def reflect(state: PlanState, config: RunnableConfig) -> dict[str, Any]:
        rounds, steps = state.get("rounds", 0), state["plan"]
        findings = state.get("findings") or []
        if rounds >= _reflections_allowed(config) or len(steps) >= MAX_STEPS:
            return {}
        question = latest_question(state["messages"]).text
        spent = state.get("spent")
        if offline:
            added = _retry_what_found_nothing(search_query(state["messages"]), steps, findings)
        else:
            done = "\n".join(f"- {f['task']}: {f['result'] or 'nothing'}" for f in findings)
            prompt = REFLECT_PROMPT.format(question=question, findings=done, limit=MAX_STEPS - len(steps))
            made, used = await structured(model, Reflection, [SystemMessage(prompt)], config)
            spent = add_usage(spent, used)
            added = [s for s in (made.steps if isinstance(made, Reflection) else []) if s not in steps]
        added = added[: MAX_STEPS - len(steps)]
        get_stream_writer()({"type": "reflection", "round": rounds + 1, "added": added})
        return {"plan": [*steps, *added], "rounds": rounds + 1, "spent": spent}

    async def synthesize(state: PlanState, config: RunnableConfig) -> dict[str, Any]:
        findings = state.get("findings") or []
        answer = await write_answer(model, state["messages"], findings, state.get("spent"), config)
        return {"messages": [answer]}

    def next_step(state: PlanState) -> str:
        return "execute" if len(state.get("findings") or []) < len(state["plan"]) else "reflect"

    def after_reflection(state: PlanState) -> str:
        return "execute" if len(state.get("findings") or []) < len(state["plan"]) else "synthesize"

    builder = StateGraph(PlanState)
    builder.add_node("plan", plan)
    builder.add_node("execute", execute)
    builder.add_node("reflect", reflect)
    builder.add_node("synthesize", synthesize)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "execute")
    builder.add_conditional_edges("execute", next_step, ["execute", "reflect"])
    builder.add_conditional_edges("reflect", after_reflection, ["execute", "synthesize"])
    builder.add_edge("synthesize", END)
    return builder.compile(checkpointer=checkpointer)


def _retry_what_found_nothing(question: str, steps: list[str], findings: list[Finding]) -> list[str]:
    """The offline reflection: a part that found nothing on its own is searched again as the whole question
    (its context may be what the search needed); a failed tool is not retried, it would fail again."""
    missed = any(not f["found"] and not f["failed"] for f in findings)
    return [question] if missed and question not in steps else []


def _reflections_allowed(config: RunnableConfig) -> int:
    """``configurable.max_reflections`` (an assistant's config may set it), 0-2; 2 when unset or not a number."""
    asked = (config.get("configurable") or {}).get("max_reflections")
    if isinstance(asked, int) and not isinstance(asked, bool):
        return max(0, min(asked, MAX_REFLECTIONS))
    return MAX_REFLECTIONS


# Plan, execute each step with tools, reflect, synthesize a cited answer.
@assistant(final_node="synthesize", answer_nodes=("synthesize",))
def planner(platform: Platform) -> CompiledStateGraph:
    return build_planner_graph(platform.model, unattended_tools(platform), None)
