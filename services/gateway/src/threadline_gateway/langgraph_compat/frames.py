"""A run's events as LangGraph Platform's stream parts: ``metadata`` first, then the stream modes asked for.

The agent publishes the graph's own parts for the modes a run asks for, so these parts are
LangGraph's, not imitations: ``values``, ``updates``, ``debug``, ``events`` and ``custom`` as the
graph gave them (a ``debug`` checkpoint with its references added, as LangGraph Platform adds
them), ``messages-tuple`` as ``messages`` parts of ``[message chunk, metadata]``, and the
whole-message ``messages`` mode as ``messages/metadata`` (once per message), then
``messages/partial`` (the message so far, as a model streams it) or ``messages/complete``. Each
frame's ``id:`` is the run event's seq, so a client's ``Last-Event-ID`` resumes exactly where it
left off. The stream ends after the final event, with an ``error`` part if the run failed.
"""

from __future__ import annotations

import json
from typing import Any

from threadline.run_events import CustomChunk, MessageChunk, RunError, RunEvent

from threadline_gateway.langgraph_compat.schemas import StreamMode
from threadline_gateway.run_bus import RunRecord
from threadline_gateway.streaming import V1Frames

# Relayed as the agent sent them: the graph's parts are LangGraph's already (a debug checkpoint gets its refs).
_AS_THEY_ARE = ("values", "updates", "events", "debug")


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
        if event.kind in _AS_THEY_ARE:
            if event.kind not in self.modes:
                return None
            return _frame(event.seq, event.kind, debug_part(event.data) if event.kind == "debug" else event.data)
        if event.kind == "custom" and "custom" in self.modes:
            custom = event.payload()
            assert isinstance(custom, CustomChunk)  # a custom event's payload, by RunEvent.payload's contract
            return _frame(event.seq, "custom", custom.value)
        if event.kind == "messages":
            part = event.payload()
            assert isinstance(part, MessageChunk)
            return self._message(event.seq, part)
        if event.kind == "error":
            return _frame(event.seq, "error", error_body(event.failure()))
        return None

    def _message(self, seq: int, part: MessageChunk) -> bytes | None:
        if "messages" in self.modes and part.message is not None:
            kind = "messages/complete" if part.complete else "messages/partial"
            whole = _frame(seq, kind, [part.message])
            if not part.first:
                return whole
            key = part.message.get("id") or part.chunk.get("id")
            return _frame(seq, "messages/metadata", {key: {"metadata": part.metadata}}) + whole
        if "messages-tuple" in self.modes:
            return _frame(seq, "messages", [part.chunk, part.metadata])
        return None


def debug_part(data: Any) -> Any:
    """A ``debug`` part as LangGraph Platform sends it: a checkpoint's payload also names its checkpoint and its
    parent's as a thread state does, and its tasks' checkpoints, which LangGraph Studio reads rather than configs."""
    payload = data.get("payload") if isinstance(data, dict) and data.get("type") == "checkpoint" else None
    if not isinstance(payload, dict):
        return data
    tasks = [_task_checkpoint(t) for t in payload.get("tasks") or []]
    refs = {"checkpoint": _ref(payload.get("config")), "parent_checkpoint": _ref(payload.get("parent_config"))}
    return {**data, "payload": {**payload, **refs, "tasks": tasks}}


def _ref(config: Any) -> dict[str, Any] | None:
    """A checkpoint's config as its reference: thread, namespace and id (none for no checkpoint yet)."""
    configurable = config.get("configurable") if isinstance(config, dict) else None
    if not isinstance(configurable, dict) or not configurable.get("thread_id") or not configurable.get("checkpoint_id"):
        return None
    keys = ("thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint_map")
    return {key: configurable[key] for key in keys if key in configurable}


def _task_checkpoint(task: Any) -> Any:
    """A task whose state is a subgraph's checkpoint config names that checkpoint instead."""
    state = task.get("state") if isinstance(task, dict) else None
    if not isinstance(state, dict) or not state.get("configurable"):
        return task
    return {**{k: v for k, v in task.items() if k != "state"}, "checkpoint": state["configurable"]}


def error_body(failure: RunError) -> dict[str, str]:
    """A failed run's error as LangGraph reports it: the error's name and its message."""
    return {"error": failure.code, "message": failure.message}
