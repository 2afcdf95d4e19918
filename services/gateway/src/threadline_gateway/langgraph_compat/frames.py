"""A run's events as LangGraph Platform's stream parts: ``metadata`` first, then the stream modes asked for.

The agent publishes the graph's own ``values`` and ``updates`` (when a run asks for them) and each
answer token with its message id and node, so these parts are LangGraph's, not imitations:
``messages-tuple`` parts are ``[message chunk, metadata]`` pairs. Each frame's ``id:`` is the run
event's seq, so a client's ``Last-Event-ID`` resumes exactly where it left off. The stream ends
after the final event, with an ``error`` part if the run failed.
"""

from __future__ import annotations

import json
from typing import Any

from threadline.run_events import RunError, RunEvent, Token

from threadline_gateway.langgraph_compat.schemas import StreamMode
from threadline_gateway.run_bus import RunRecord
from threadline_gateway.streaming import V1Frames


def _frame(seq: int, event: str, data: Any) -> bytes:
    return (
        f"id: {seq}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()
    )


class StreamParts(V1Frames):
    """The stream of a run as LangGraph's SDK reads it; a timeout ends it as the v1 stream's does."""

    def __init__(self, modes: set[StreamMode], record: RunRecord) -> None:
        self.modes, self.record = modes, record

    async def frame(self, event: RunEvent) -> bytes | None:
        """The part for ``event``, or None when it has none in the modes asked for."""
        record = self.record
        if event.kind == "metadata":
            return _frame(event.seq, "metadata", {"run_id": record.run_id, "thread_id": record.thread_id, "attempt": 1})
        if event.kind in ("values", "updates"):
            # Relayed as the agent sent them: the graph's state is LangGraph's already.
            return _frame(event.seq, event.kind, event.data) if event.kind in self.modes else None
        if event.kind == "token" and "messages-tuple" in self.modes:
            token = event.payload()
            assert isinstance(token, Token)  # a token event's payload, by RunEvent.payload's contract
            return _frame(event.seq, "messages", [_message_chunk(token), _message_metadata(token, record)])
        if event.kind == "error":
            return _frame(event.seq, "error", error_body(event.failure()))
        return None


def _message_chunk(token: Token) -> dict[str, Any]:
    return {
        "type": "AIMessageChunk",
        "content": token.text,
        "id": token.message_id,
        "name": None,
        "additional_kwargs": {},
        "response_metadata": {},
        "tool_calls": [],
        "invalid_tool_calls": [],
        "tool_call_chunks": [],
        "usage_metadata": None,
    }


def _message_metadata(token: Token, record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "thread_id": record.thread_id,
        "assistant_id": record.assistant_id,
        "langgraph_node": token.node,
    }


def error_body(failure: RunError) -> dict[str, str]:
    """A failed run's error as LangGraph reports it: the error's name and its message."""
    return {"error": failure.code, "message": failure.message}
