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

from threadline.events import RunEvent

from threadline_gateway.langgraph_compat.schemas import StreamMode
from threadline_gateway.runs import RunRecord


def _frame(seq: int, event: str, data: Any) -> bytes:
    return (
        f"id: {seq}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()
    )


def stream_part(event: RunEvent, modes: set[StreamMode], record: RunRecord) -> bytes | None:
    """The frame for ``event``, or None when it has no part in the modes asked for."""
    if event.kind == "metadata":
        return _frame(event.seq, "metadata", {"run_id": record.run_id, "thread_id": record.thread_id, "attempt": 1})
    if event.kind in ("values", "updates") and event.kind in modes:
        return _frame(event.seq, event.kind, event.data)
    if event.kind == "token" and "messages-tuple" in modes:
        chunk = {
            "type": "AIMessageChunk",
            "content": event.data.get("text", ""),
            "id": event.data.get("message_id"),
            "name": None,
            "additional_kwargs": {},
            "response_metadata": {},
            "tool_calls": [],
            "invalid_tool_calls": [],
            "tool_call_chunks": [],
            "usage_metadata": None,
        }
        metadata = {
            "run_id": record.run_id,
            "thread_id": record.thread_id,
            "assistant_id": record.assistant_id,
            "langgraph_node": event.data.get("node"),
        }
        return _frame(event.seq, "messages", [chunk, metadata])
    if event.kind == "error":
        return _frame(event.seq, "error", error_body(event))
    return None


def error_body(event: RunEvent) -> dict[str, str]:
    """A failed run's error as LangGraph reports it: the error's name and its message."""
    return {"error": str(event.data.get("code", "run_failed")), "message": str(event.data.get("message", ""))}
