"""The ReAct graph with the extractive answerer, an in-memory checkpointer and a local tool of fixed passages."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.checkpoint.memory import InMemorySaver
from threadline.events import RunRequested, StateEventKind
from threadline.run_events import Citations, StateChunk, Token, ToolCall, ToolResult
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.assistants import build_graph, build_research_graph
from threadline_agent.graphs.calculator import make_calculator_tool
from threadline_agent.graphs.knowledge_base import format_passages
from threadline_agent.worker.execution import Progress, execute_run, run_config

from tests.agent.test_answerer import PASSAGES


def fixed_passages_tool(queries: list[str]) -> BaseTool:
    """A stand-in for the retrieval call (this is a unit test of the graph, not of the service)."""

    def search_knowledge_base(query: str) -> tuple[str, list[dict[str, Any]]]:
        queries.append(query)
        return format_passages(PASSAGES), PASSAGES

    return StructuredTool.from_function(
        search_knowledge_base, description="Search.", response_format="content_and_artifact"
    )


def request(thread_id: str, text: str) -> RunRequested:
    return RunRequested(run_id=uuid.uuid4().hex, thread_id=thread_id, tenant_id="acme", input=text)


async def _no_events(payload: Progress) -> None:
    pass


async def _no_state(mode: StateEventKind, chunk: StateChunk) -> None:
    pass


async def test_the_agent_searches_then_answers_with_citations() -> None:
    queries: list[str] = []
    graph = build_graph(ExtractiveAnswerer(), [fixed_passages_tool(queries)], InMemorySaver())
    run = request("t1", "How are runs kept durable?")
    state = await graph.ainvoke({"messages": [HumanMessage(run.input)]}, run_config(run))
    kinds = [type(m) for m in state["messages"]]
    assert kinds == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert queries == ["How are runs kept durable?"]
    assert "[1]" in state["messages"][-1].content


async def test_earlier_turns_of_the_thread_shape_a_follow_up() -> None:
    queries: list[str] = []
    saver = InMemorySaver()
    graph = build_graph(ExtractiveAnswerer(), [fixed_passages_tool(queries)], saver)
    first, second = request("t2", "How are runs kept durable?"), request("t2", "and after a crash?")
    await graph.ainvoke({"messages": [HumanMessage(first.input)]}, run_config(first))
    # A new graph over the same saver: the history comes from the checkpoint, as it does across workers.
    graph = build_graph(ExtractiveAnswerer(), [fixed_passages_tool(queries)], saver)
    state = await graph.ainvoke({"messages": [HumanMessage(second.input)]}, run_config(second))
    assert queries[-1] == "How are runs kept durable? and after a crash?"
    assert len(state["messages"]) == 8


async def test_a_run_emits_events_in_order_and_returns_the_end_data() -> None:
    graph = build_graph(ExtractiveAnswerer(), [fixed_passages_tool([])], InMemorySaver())
    run = request("t3", "How are runs kept durable?")
    events: list[Progress] = []

    async def emit(payload: Progress) -> None:
        events.append(payload)

    end = await execute_run(graph, run, emit, _no_state, model="extractive-answerer", timeout_s=30)
    call, result, *tokens, citations = events
    assert isinstance(call, ToolCall) and isinstance(result, ToolResult) and isinstance(citations, Citations)
    assert tokens and all(isinstance(t, Token) for t in tokens)
    assert call.name == "search_knowledge_base"
    assert call.args == {"query": "How are runs kept durable?"}
    assert result == ToolResult(name="search_knowledge_base", tool_call_id=call.id, status="success", citations=2)
    assert "".join(t.text for t in tokens if isinstance(t, Token)) == end.answer
    assert end.citations == citations.citations
    assert end.citations[0].document_id == "durability.md"
    assert end.model == "extractive-answerer"
    assert end.usage.approximate is True
    assert end.usage.output_tokens == len(end.answer.split())
    assert (end.run_id, end.thread_id, end.assistant_id) == (run.run_id, "t3", "agent")


async def test_a_redelivered_run_goes_on_from_its_checkpoint_instead_of_starting_over() -> None:
    queries: list[str] = []
    graph = build_graph(ExtractiveAnswerer(), [fixed_passages_tool(queries)], InMemorySaver())
    run = request("t-resume", "How are runs kept durable?")
    # The first delivery dies mid-graph, with steps left.
    async for _ in graph.astream({"messages": [HumanMessage(run.input)]}, run_config(run), stream_mode="updates"):
        break
    assert (await graph.aget_state(run_config(run))).next

    end = await execute_run(graph, run, _no_events, _no_state, model="m", timeout_s=30, resume=True)

    messages = (await graph.aget_state(run_config(run))).values["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert queries == ["How are runs kept durable?"]
    assert "[1]" in end.answer and end.citations


async def test_a_redelivered_run_that_had_finished_answers_from_its_checkpoint_without_a_step() -> None:
    queries: list[str] = []
    graph = build_graph(ExtractiveAnswerer(), [fixed_passages_tool(queries)], InMemorySaver())
    run = request("t-done", "How are runs kept durable?")
    first = await execute_run(graph, run, _no_events, _no_state, model="m", timeout_s=30)

    again = await execute_run(graph, run, _no_events, _no_state, model="m", timeout_s=30, resume=True)

    assert len((await graph.aget_state(run_config(run))).values["messages"]) == 4
    assert queries == ["How are runs kept durable?"]
    assert (again.answer, again.citations) == (first.answer, first.citations)


async def test_arithmetic_goes_to_the_calculator_not_the_knowledge_base() -> None:
    queries: list[str] = []
    tools = [fixed_passages_tool(queries), make_calculator_tool()]
    graph = build_graph(ExtractiveAnswerer(), tools, InMemorySaver())
    run = request("t-calc", "What is 12.5 * (3 + 4)?")
    state = await graph.ainvoke({"messages": [HumanMessage(run.input)]}, run_config(run))
    call = state["messages"][1].tool_calls[0]
    assert (call["name"], call["args"]) == ("calculator", {"expression": "12.5 * (3 + 4)"})
    assert state["messages"][-1].content == "12.5 * (3 + 4) = 87.5"
    assert queries == []
    # A question without arithmetic still goes to the knowledge base, with the calculator on offer.
    run = request("t-kb", "How are runs kept durable?")
    state = await graph.ainvoke({"messages": [HumanMessage(run.input)]}, run_config(run))
    assert state["messages"][1].tool_calls[0]["name"] == "search_knowledge_base" and "[1]" in state["messages"][-1].text


async def test_the_research_assistant_searches_writes_and_reviews() -> None:
    queries: list[str] = []
    graph = build_research_graph(ExtractiveAnswerer(), [fixed_passages_tool(queries)], InMemorySaver())
    run = request("t-research", "How are runs kept durable?")
    state = await graph.ainvoke({"messages": [HumanMessage(run.input)]}, run_config(run))
    assert [type(m) for m in state["messages"]] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert queries == ["How are runs kept durable?"]
    assert "[1]" in state["messages"][-1].text and "Review:" not in state["messages"][-1].text


async def test_the_review_drops_citations_of_passages_never_found() -> None:
    class Inventive(ExtractiveAnswerer):
        """A model that cites a passage that does not exist and forgets the real ones."""

        def _answer(self, query: str, results: list) -> tuple[str, list]:
            return "Made up [7].", []

    graph = build_research_graph(Inventive(), [fixed_passages_tool([])], InMemorySaver())
    run = request("t-review", "How are runs kept durable?")
    state = await graph.ainvoke({"messages": [HumanMessage(run.input)]}, run_config(run))
    answer = state["messages"][-1].text
    assert "[7]" not in answer and "cites none of the passages" in answer
    assert len(state["messages"]) == 4  # the reviewed answer replaced the draft
