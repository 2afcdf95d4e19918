"""Run events: each kind has one payload model, built by the agent and read back by the gateway."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from threadline.run_events import (
    Citation,
    RunError,
    RunEvent,
    RunResult,
    StateChunk,
    Token,
    ToolResult,
    Usage,
)


def test_a_result_travels_as_the_end_event_and_reads_back_typed() -> None:
    cited = Citation(document_id="d", chunk_id="d:0", text="Runs are durable.", score=0.5)
    result = RunResult(
        run_id="r",
        thread_id="t",
        assistant_id="agent",
        answer="Yes [1].",
        citations=[cited],
        usage=Usage(total_tokens=3),
    )
    event = RunEvent.from_bytes(RunEvent.of("r", 7, result).to_bytes())
    assert isinstance(event, RunEvent)
    assert (event.kind, event.seq) == ("end", 7)
    assert event.data["answer"] == "Yes [1]."  # what SSE clients read: the payload's JSON, by its field names
    assert event.result() == result
    assert event.payload() == result


def test_an_error_is_read_as_a_failure_and_not_as_a_result() -> None:
    event = RunEvent.of("r", 2, RunError(code="run_timeout", message="too slow"))
    assert event.failure().code == "run_timeout"
    with pytest.raises(ValueError, match="not a run's result"):
        event.result()
    with pytest.raises(ValueError, match="not a run's error"):
        RunEvent.of("r", 0, Token(text="hi")).failure()


def test_state_chunks_name_their_stream_mode() -> None:
    chunk = StateChunk({"messages": [{"type": "human", "content": "hi"}]})
    assert RunEvent.of("r", 1, chunk, "values").data == chunk.root
    assert RunEvent.of("r", 1, chunk, "updates").payload() == chunk
    with pytest.raises(ValueError, match="pass the kind"):
        RunEvent.of("r", 1, chunk)


def test_a_payload_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="not the payload of a token event"):
        RunEvent.of("r", 1, ToolResult(tool_call_id="c"), "token")


def test_a_payload_missing_a_field_fails_loudly_and_new_fields_are_ignored() -> None:
    with pytest.raises(ValidationError, match="code"):
        RunEvent(run_id="r", seq=1, kind="error", data={"message": "no code"}).failure()
    newer = RunEvent(run_id="r", seq=1, kind="token", data={"text": "a", "added_later": 1})
    assert newer.payload() == Token(text="a")
