"""What the pattern graphs (``planner``, ``supervisor``) share: a task done with tools, and the cited answer.

A *step* is one task given to the model with some tools: it calls them (a few rounds at most),
then says what it found. The tool calls and their results go into the thread's messages, as
in the ``agent`` graph, so they are run events and their passages are the run's citations;
what the step concluded is kept in the graph's state, not in the conversation.

The extractive answerer generates no text of its own, so it cannot plan, route or write from
other steps' findings; for it the graphs decide by rules (see :func:`is_offline`) and the answer
is the steps' own cited sentences put together (:func:`join_findings`). A step itself runs the
same with either model: the answerer calls tools just like a chat model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ValidationError
from typing_extensions import TypedDict  # typing's is not one pydantic reads on Python < 3.12 (graph schemas)

from threadline_agent.graphs.answerer import NOTHING_RELEVANT, ExtractiveAnswerer
from threadline_agent.graphs.knowledge_base import KNOWLEDGE_BASE_TOOL, format_passages
from threadline_agent.graphs.platform import Platform

MAX_TOOL_ROUNDS = 3  # a step's model <-> tools exchanges; then it must say what it found
_MARKER = re.compile(r"(\s?)\[(\d+)\]")  # a citation, with the space before it (dropped along with it)

STEP_PROMPT = (
    "You are doing one step of the work on the user's question: {question}\n"
    "{earlier}"
    "Do only the step you are given, with your tools: search the knowledge base for facts and use the calculator "
    "for any arithmetic. Then state what you found in a few sentences, citing the passages you use as [n]."
)
WRITE_PROMPT = (
    "Answer the user's question from the findings below, and only from them.\n\n"
    "Findings of each step:\n{findings}\n\n"
    "Passages of the knowledge base:\n{passages}\n\n"
    "Cite each passage you use with its number in square brackets, like [1]. "
    "If the findings hold nothing relevant, say so plainly instead of guessing."
)


class Finding(TypedDict):
    """One step done: the task, who did it, what it concluded, and the passages behind that."""

    task: str
    by: str  # the node (planner) or agent (supervisor) that did it
    result: str
    tools: list[str]  # the tools it called, in order
    passages: list[dict[str, Any]]  # every knowledge-base passage it retrieved
    cited: list[dict[str, Any]]  # what the result's [n] markers point at (its answerer's citations, or passages)
    found: bool  # a tool gave it something: passages, or a result that is not an error
    failed: bool  # a tool call failed (the knowledge base could not be consulted, say)


def is_offline(model: BaseChatModel) -> bool:
    """Whether decisions (a plan, a route, a synthesis) must come from rules: the extractive answerer writes none."""
    return isinstance(model, ExtractiveAnswerer)


def unattended_tools(platform: Platform) -> list[BaseTool]:
    """The platform's tools that run without a person: a plan or a team of agents runs unattended, so a tool
    that must wait for approval (AGENT_APPROVAL_TOOLS) is left to the ``agent`` assistant, never run unasked."""
    return [tool for tool in platform.tools if tool.name not in platform.approval_tools]


def latest_question(messages: Sequence[BaseMessage]) -> HumanMessage:
    return next(m for m in reversed(messages) if isinstance(m, HumanMessage))


def conversation(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The thread as the people in it see it: questions and answers, without tool traffic."""
    return [
        m for m in messages if isinstance(m, HumanMessage) or (isinstance(m, AIMessage) and not m.tool_calls and m.text)
    ]


async def do_step(
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    task: str,
    *,
    question: str,
    by: str,
    earlier: Sequence[Finding],
    config: RunnableConfig,
) -> tuple[list[BaseMessage], Finding, UsageMetadata | None]:
    """Do ``task`` with ``tools``: the messages for the thread (tool calls and results), the finding, and the
    usage of the step's closing reply (which is kept out of the thread, so no one else counts it)."""
    by_name: Mapping[str, BaseTool] = {tool.name: tool for tool in tools}
    bound = model.bind_tools(list(tools)) if tools else model
    context = "".join(f"- {f['task']}: {f['result']}\n" for f in earlier)
    system = STEP_PROMPT.format(question=question, earlier=f"Earlier steps found:\n{context}" if context else "")
    # The task alone is the human turn: the extractive answerer searches with the last human text.
    exchange: list[BaseMessage] = [SystemMessage(system), HumanMessage(task)]
    produced: list[BaseMessage] = []
    reply = AIMessage("")
    for round_ in range(MAX_TOOL_ROUNDS + 1):
        answered = await bound.ainvoke(exchange, config)
        assert isinstance(answered, AIMessage)  # a chat model's reply
        reply = answered
        if not reply.tool_calls or round_ == MAX_TOOL_ROUNDS:
            break
        results = [await _call(by_name, call, config) for call in reply.tool_calls]
        exchange += [reply, *results]
        produced += [reply, *results]
    results = [m for m in produced if isinstance(m, ToolMessage)]
    passages = [p for m in results if m.name == KNOWLEDGE_BASE_TOOL for p in _artifact(m)]
    cited = reply.response_metadata.get("citations")
    finding_cites = cited if isinstance(cited, list) else passages
    finding = Finding(
        task=task,
        by=by,
        result=reply.text if not reply.tool_calls else "",
        tools=[m.name or "" for m in results],
        passages=passages,
        cited=finding_cites,
        # Passages the answerer cites none of were found but are not relevant: nothing found.
        found=bool(finding_cites) or any(m.status != "error" and m.name != KNOWLEDGE_BASE_TOOL for m in results),
        failed=any(m.status == "error" for m in results),
    )
    return produced, finding, reply.usage_metadata


async def _call(tools: Mapping[str, BaseTool], call: Any, config: RunnableConfig) -> ToolMessage:
    tool = tools.get(call["name"])
    if tool is None:  # a model may name a tool it was not given: it reads that, the run goes on
        return ToolMessage(
            f"There is no tool {call['name']!r}; use one of: {', '.join(tools)}.",
            tool_call_id=call["id"],
            name=call["name"],
            status="error",
        )
    try:
        result = await tool.ainvoke({**call, "type": "tool_call"}, config)
    except ValidationError as exc:  # arguments the tool does not take: the model reads why, as ToolNode does
        return ToolMessage(
            f"The {call['name']} call's arguments are invalid: {exc.errors(include_url=False)}",
            tool_call_id=call["id"],
            name=call["name"],
            status="error",
        )
    assert isinstance(result, ToolMessage)  # a tool invoked with a tool call answers with a ToolMessage
    return result


async def structured(
    model: BaseChatModel, schema: type[BaseModel], messages: list[BaseMessage], config: RunnableConfig
) -> tuple[BaseModel | None, UsageMetadata | None]:
    """The model's answer as ``schema`` (None if it gave none that parses), and the call's usage."""
    asking = model.with_structured_output(schema, method="function_calling", include_raw=True)
    out = await asking.ainvoke(messages, config)
    assert isinstance(out, dict)  # include_raw: {"raw", "parsed", "parsing_error"}
    raw = out.get("raw")
    parsed = out.get("parsed")
    return (parsed if isinstance(parsed, schema) else None), (
        raw.usage_metadata if isinstance(raw, AIMessage) else None
    )


def _artifact(message: ToolMessage) -> list[dict[str, Any]]:
    return [p for p in message.artifact or [] if isinstance(p, dict)] if isinstance(message.artifact, list) else []


def numbered(passages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``passages`` without repeats (the same chunk found by two steps), in the order first found."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for passage in passages:
        if _key(passage) not in seen:
            seen.add(_key(passage))
            unique.append(passage)
    return unique


async def write_answer(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    findings: Sequence[Finding],
    spent: UsageMetadata | None,
    config: RunnableConfig,
) -> AIMessage:
    """The answer to the thread's latest question from ``findings``, citing their passages as [n].

    A chat model writes it from the findings and the numbered passages; the extractive answerer's
    is :func:`join_findings`. Either way the answer's ``citations`` are the passages its markers
    number, and its usage includes ``spent``, the turn's model calls that left no message behind.
    """
    if is_offline(model):
        text, cited = join_findings(findings)
        answer = AIMessage(
            text,
            response_metadata={"model_name": getattr(model, "model_name", ""), "usage_is_approximate": True},
        )
    else:
        cited = numbered([p for f in findings for p in f["passages"]])
        steps = "\n".join(f"- {f['task']} ({f['by']}): {f['result'] or 'no result'}" for f in findings)
        prompt = WRITE_PROMPT.format(findings=steps or "- none", passages=format_passages(cited))
        reply = await model.ainvoke([*conversation(messages), SystemMessage(prompt)], config)
        assert isinstance(reply, AIMessage)
        # A marker beyond the passages given cites nothing: dropped, as the research graph's review does.
        text = _MARKER.sub(lambda m: m.group() if 1 <= int(m.group(2)) <= len(cited) else "", reply.text)
        answer = reply.model_copy(update={"content": text})
    usage = add_usage(answer.usage_metadata, spent)
    return answer.model_copy(
        update={"response_metadata": {**answer.response_metadata, "citations": cited}, "usage_metadata": usage}
    )


def join_findings(findings: Sequence[Finding]) -> tuple[str, list[dict[str, Any]]]:
    """The findings' cited sentences one after another, their [n] renumbered over all the passages cited.

    A step that found nothing is left out while another found something; if none did, the last
    one says why (nothing relevant, or the knowledge base could not be consulted).
    """
    useful = [f for f in findings if f["found"] and f["result"]] or [f for f in findings if f["result"]][-1:]
    cited: list[dict[str, Any]] = []
    parts: list[str] = []
    for finding in useful:
        local = finding["cited"]

        def renumber(match: re.Match[str], local: list[dict[str, Any]] = local) -> str:
            n = int(match.group(2))
            if not 1 <= n <= len(local):
                return ""
            keys = [_key(p) for p in cited]
            if _key(local[n - 1]) not in keys:
                cited.append(local[n - 1])
                keys.append(_key(local[n - 1]))
            return f"{match.group(1)}[{keys.index(_key(local[n - 1])) + 1}]"

        text = _MARKER.sub(renumber, finding["result"]).strip()
        text += "" if text.endswith((".", "!", "?")) else "."  # "12 * 7 = 84" closes a sentence too
        if text not in parts:  # a reflection's repeated search may find the same sentences again
            parts.append(text)
    return " ".join(parts) or NOTHING_RELEVANT, cited


def _key(passage: dict[str, Any]) -> tuple[str, str]:
    """A passage's identity: the same chunk found by two steps is one citation."""
    return str(passage.get("document_id")), str(passage.get("chunk_id"))


def add_usage(a: UsageMetadata | None, b: UsageMetadata | None) -> UsageMetadata | None:
    if not a or not b:
        return a or b
    return UsageMetadata(
        input_tokens=a["input_tokens"] + b["input_tokens"],
        output_tokens=a["output_tokens"] + b["output_tokens"],
        total_tokens=a["total_tokens"] + b["total_tokens"],
    )
