"""The extractive answerer: tool calling like a chat model, cited sentences, follow-ups, streaming."""

from __future__ import annotations

import re

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from threadline_agent.graphs.answerer import (
    MODEL_NAME,
    NOTHING_RELEVANT,
    ExtractiveAnswerer,
    compose_answer,
    search_query,
    terms,
)

PASSAGES = [
    {
        "document_id": "durability.md",
        "chunk_id": "durability.md#0",
        "text": "Runs are stored on a JetStream stream before the gateway answers. "
        "A worker acknowledges a run only after the final checkpoint is stored. "
        "The weather in the docs is always sunny.",
        "score": 0.82,
        "metadata": {},
    },
    {
        "document_id": "scaling.md",
        "chunk_id": "scaling.md#3",
        "text": "Workers share one durable consumer, so adding workers adds capacity. "
        "A redelivered run resumes from its last stored checkpoint.",
        "score": 0.61,
        "metadata": {},
    },
]


@tool
def search_knowledge_base(query: str) -> str:
    """Search."""
    return query


def _tool_call_turn(question: str) -> list:
    return [SystemMessage("cite"), HumanMessage(question)]


def test_it_first_calls_the_knowledge_base_tool_with_the_question() -> None:
    model = ExtractiveAnswerer().bind_tools([search_knowledge_base])
    reply = model.invoke(_tool_call_turn("How are runs kept durable?"))
    assert isinstance(reply, AIMessage)
    assert reply.content == ""
    [call] = reply.tool_calls
    assert call["name"] == "search_knowledge_base"
    assert call["args"] == {"query": "How are runs kept durable?"}
    assert reply.response_metadata["model_name"] == MODEL_NAME


def test_without_the_tool_bound_it_does_not_call_it() -> None:
    reply = ExtractiveAnswerer().invoke([HumanMessage("How are runs kept durable?")])
    assert not reply.tool_calls
    assert "no knowledge base" in reply.content


def test_it_answers_with_cited_sentences_from_the_passages() -> None:
    model = ExtractiveAnswerer().bind_tools([search_knowledge_base])
    call = model.invoke(_tool_call_turn("How are runs kept durable?"))
    result = ToolMessage("passages", artifact=PASSAGES, tool_call_id=call.tool_calls[0]["id"], name="x")
    reply = model.invoke([*_tool_call_turn("How are runs kept durable?"), call, result])
    assert not reply.tool_calls
    assert "Runs are stored on a JetStream stream" in reply.content
    assert "[1]" in reply.content
    assert "sunny" not in reply.content
    cited = reply.response_metadata["citations"]
    assert cited[0]["document_id"] == "durability.md"
    # Every marker points at a cited passage.
    for n in range(1, len(cited) + 1):
        assert f"[{n}]" in reply.content
    assert f"[{len(cited) + 1}]" not in reply.content


def test_usage_is_reported_and_marked_approximate() -> None:
    model = ExtractiveAnswerer().bind_tools([search_knowledge_base])
    call = model.invoke(_tool_call_turn("How are runs kept durable?"))
    result = ToolMessage("passages", artifact=PASSAGES, tool_call_id=call.tool_calls[0]["id"])
    reply = model.invoke([*_tool_call_turn("How are runs kept durable?"), call, result])
    usage = reply.usage_metadata
    assert usage["output_tokens"] == len(reply.content.split())
    assert usage["input_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert reply.response_metadata["usage_is_approximate"] is True


def test_nothing_relevant_is_said_plainly() -> None:
    answer, cited = compose_answer("What is the capital of Peru?", PASSAGES)
    assert answer == NOTHING_RELEVANT
    assert cited == []


def test_a_failed_search_is_reported_not_hidden() -> None:
    model = ExtractiveAnswerer().bind_tools([search_knowledge_base])
    failure = ToolMessage("The knowledge base could not be consulted.", tool_call_id="c1", status="error")
    reply = model.invoke([HumanMessage("How are runs kept durable?"), AIMessage("", tool_calls=[]), failure])
    assert reply.content.startswith("I could not consult the knowledge base")
    assert reply.response_metadata["citations"] == []


def test_a_short_follow_up_is_expanded_with_the_previous_question() -> None:
    history = [
        HumanMessage("How are runs kept durable?"),
        AIMessage("Runs are stored on a stream [1]."),
        HumanMessage("and after a crash?"),
    ]
    assert search_query(history) == "How are runs kept durable? and after a crash?"
    model = ExtractiveAnswerer().bind_tools([search_knowledge_base])
    assert model.invoke(history).tool_calls[0]["args"]["query"] == "How are runs kept durable? and after a crash?"


def test_a_self_contained_question_is_not_expanded() -> None:
    history = [HumanMessage("How are runs kept durable?"), HumanMessage("How do workers share the queue of runs?")]
    assert search_query(history) == "How do workers share the queue of runs?"


def test_stemming_lets_word_forms_meet() -> None:
    assert set(terms("running runs")) == set(terms("run"))
    assert "the" not in terms("the durable run")


async def test_the_answer_streams_word_by_word_and_adds_up() -> None:
    model = ExtractiveAnswerer().bind_tools([search_knowledge_base])
    result = ToolMessage("passages", artifact=PASSAGES, tool_call_id="c1")
    messages = [HumanMessage("How are runs kept durable?"), AIMessage("", tool_calls=[]), result]
    chunks = [chunk async for chunk in model.astream(messages)]
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert len(chunks) > 5
    assert all(len(c.content.split()) <= 1 for c in chunks)
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert whole.content == model.invoke(messages).content
    assert whole.usage_metadata["output_tokens"] == len(whole.content.split())


def test_markdown_headings_are_not_answers_and_wrapped_lines_are_one_sentence() -> None:
    passage = {
        "document_id": "architecture.md",
        "chunk_id": "architecture.md#3",
        "text": "## How runs are kept durable\n\nRuns are kept durable by JetStream and by acknowledging\n"
        "late. A worker pulls the run from the durable consumer, which all\nworkers share.\n\n- a list item",
        "score": 0.9,
        "metadata": {},
    }
    answer, _ = compose_answer("How are runs kept durable?", [passage])
    assert not answer.startswith("How runs are kept durable")
    assert "Runs are kept durable by JetStream and by acknowledging late [1]." in answer
    assert "which all workers share [1]." in answer


def test_markdown_marks_are_dropped_but_not_the_underscores_of_a_name() -> None:
    text = "Run events are kept in the `RUN_EVENTS` stream, _an hour_, by **JetStream**."
    passage = {"document_id": "a.md", "chunk_id": "a.md#0", "text": text, "score": 0.9, "metadata": {}}
    answer, _ = compose_answer("Where are run events kept?", [passage])
    assert answer == "Run events are kept in the RUN_EVENTS stream, an hour, by JetStream [1]."


# One document cut as the retrieval service cuts it: chunks end at a space or a line end, wherever the size
# runs out, and the next chunk starts again up to 150 characters earlier.
DURABILITY = (
    "Each tenant's run (an error message, connection kept) is answered from what was stored.\n"
    "Runs are kept durable on a JetStream stream before the gateway answers. A worker keeps the run until\n"
    "JetStream redelivers it to another worker after a crash. Durable runs survive a restart of every service.\n"
    "A run is acknowledged only once its final checkpoint is kept in the memory service."
)


def _chunk(start: str, end: str, position: int) -> dict:
    """The document from ``start`` up to and including ``end``: a chunk with its real boundaries."""
    begin = DURABILITY.index(start)
    text = DURABILITY[begin : DURABILITY.index(end, begin) + len(end)]
    return {"document_id": "durability.md", "chunk_id": f"durability.md#{position}", "text": text, "score": 0.5}


def _quoted(answer: str) -> list[tuple[str, str]]:
    """(sentence, citation marker) of each quoted sentence; the pieces must make up the whole answer."""
    pieces = re.findall(r"(.+?) \[(\d+)\][.!?](?: |$)", answer)
    assert " ".join(f"{s} [{n}]." for s, n in pieces) == answer, answer
    return pieces


def test_a_chunk_that_opens_or_closes_mid_sentence_is_quoted_without_the_fragments() -> None:
    chunk = _chunk("tenant's run", "worker keeps the run until", 1)
    answer, cited = compose_answer("How are runs kept durable?", [chunk], max_sentences=6)
    assert _quoted(answer) == [("Runs are kept durable on a JetStream stream before the gateway answers", "1")]
    assert cited == [chunk]


def test_a_chunk_opening_on_a_capital_mid_sentence_is_told_by_its_overlapping_neighbour() -> None:
    # "JetStream redelivers ..." looks like a sentence; the previous chunk shows the line before it goes on.
    later = _chunk("JetStream redelivers", "memory service.", 2)
    earlier = _chunk("Runs are kept", "redelivers it to another worker", 1)
    answer, _ = compose_answer("How are runs kept durable after a crash?", [later, earlier], max_sentences=6)
    sentences = [s for s, _ in _quoted(answer)]
    assert not any(s.startswith("JetStream redelivers") for s in sentences), answer
    assert "Durable runs survive a restart of every service" in sentences
    # Alone, without its neighbour, the same chunk cannot be told from one that opens a sentence.
    alone, _ = compose_answer("How are runs kept durable after a crash?", [later], max_sentences=6)
    assert alone.startswith("JetStream redelivers it to another worker after a crash [1].")


def test_sentences_come_in_reading_order_once_each_with_their_passage_cited() -> None:
    first = _chunk("Runs are kept", "restart of every service.", 1)
    overlapping = _chunk("Durable runs survive", "memory service.", 2)  # repeats the sentence before it
    answer, cited = compose_answer("How are runs kept durable?", [first, overlapping], max_sentences=6)
    assert _quoted(answer) == [
        ("Runs are kept durable on a JetStream stream before the gateway answers", "1"),
        ("A worker keeps the run until JetStream redelivers it to another worker after a crash", "1"),
        ("Durable runs survive a restart of every service", "1"),
        ("A run is acknowledged only once its final checkpoint is kept in the memory service", "2"),
    ]
    assert cited == [first, overlapping]


def test_a_passage_without_a_whole_sentence_is_skipped() -> None:
    fragment = _chunk("run (an error message", "worker keeps the run until", 1)
    fragment["text"] = "kept durable by the stream, so runs"  # cut at both ends
    whole = _chunk("Durable runs survive", "restart of every service.", 2)
    answer, cited = compose_answer("How are runs kept durable?", [fragment, whole])
    assert _quoted(answer) == [("Durable runs survive a restart of every service", "1")]
    assert cited == [whole]
    assert compose_answer("How are runs kept durable?", [fragment]) == (NOTHING_RELEVANT, [])


def test_list_items_are_whole_without_a_full_stop_but_must_open_a_sentence() -> None:
    passage = {
        "document_id": "ops.md",
        "text": "## Durability\n\n- Runs are kept on a durable stream;\n- runs kept in lower case are code\n"
        "- Runs are kept durable in three places:\n",
        "score": 0.4,
    }
    answer, _ = compose_answer("How are runs kept durable?", [passage])
    assert _quoted(answer) == [("Runs are kept on a durable stream", "1")]
