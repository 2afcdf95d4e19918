"""The events that travel on NATS, each a versioned pydantic model with its subject.

Subjects live under a namespace (``threadline`` by default) so that several
deployments, or test runs, can share one NATS server without seeing each other.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

NAMESPACE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of every event: a schema version that consumers check before trusting a payload."""

    model_config = ConfigDict(extra="ignore")

    SCHEMA_VERSION: ClassVar[int] = 1
    schema_version: int = Field(default=1, description="Bumped on incompatible payload changes.")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Event:
        return cls.model_validate_json(data)


StateEventKind = Literal["values", "updates"]


class RunRequested(Event):
    """A question accepted by the gateway; durable on the RUNS stream until a worker acks it."""

    run_id: str
    thread_id: str
    tenant_id: str
    assistant_id: str = "agent"
    input: str
    created_at: datetime = Field(default_factory=_now)
    metadata: dict[str, Any] = Field(default_factory=dict, description="The client's labels for the run.")
    state_events: list[StateEventKind] = Field(
        default_factory=list,
        description="Also publish the graph's state after each step (values) or each node's update (updates), "
        "as LangGraph's stream modes of those names; off by default, since they repeat the conversation.",
    )
    after_run_id: str | None = Field(
        default=None, description="Start only once this earlier run of the thread has ended (an enqueued run)."
    )
    rollback_run_id: str | None = Field(
        default=None, description="Start from the thread's state before this (cancelled) run, as if it never ran."
    )
    resume: dict[str, Any] | None = Field(
        default=None,
        description="Resume the thread's interrupted run with this decision on the tool call it waits on: "
        '{"action": "approve"}, {"action": "reject", "reason": "..."} or {"action": "edit", "args": {...}}; '
        "input may then be empty.",
    )


RunEventKind = Literal[
    "metadata", "token", "tool_call", "tool_result", "citations", "interrupt", "values", "updates", "end", "error"
]


class RunEvent(Event):
    """One step of a run as the client sees it; ``seq`` orders them and lets a client resume."""

    run_id: str
    seq: int
    kind: RunEventKind
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.kind in ("end", "error")


class DataErased(Event):
    """A tenant's data (or one user's) was erased from the memory service; every other service
    holding copies of it (caches, exports, indexes built from conversations) erases them too."""

    tenant_id: str
    user_id: str | None = Field(default=None, description="None: the whole tenant.")
    threads: int = Field(description="Threads (with their checkpoints) deleted.")
    store_items: int = Field(description="Long-term memory items deleted.")
    erased_at: datetime = Field(default_factory=_now)


class Topology:
    """Subject and stream names of one namespace; the single place they are spelled."""

    def __init__(self, namespace: str = "threadline") -> None:
        if not NAMESPACE_PATTERN.match(namespace):
            raise ValueError(f"invalid NATS namespace {namespace!r}: use [a-z][a-z0-9_-]*")
        self.namespace = namespace
        self._stream_prefix = namespace.upper().replace("-", "_")

    @property
    def runs_requested(self) -> str:
        return f"{self.namespace}.runs.requested"

    @property
    def runs_stream(self) -> str:
        return f"{self._stream_prefix}_RUNS"

    @property
    def runs_consumer(self) -> str:
        """The one durable consumer that every agent worker pulls from."""
        return "agent-workers"

    def run_events(self, run_id: str) -> str:
        return f"{self.namespace}.run.{run_id}.events"

    def run_cancel(self, run_id: str) -> str:
        """Core NATS (not stored): tells the worker running ``run_id`` to stop it."""
        return f"{self.namespace}.run.{run_id}.cancel"

    @property
    def cancelled_runs_bucket(self) -> str:
        """JetStream key-value bucket of cancelled run ids, read by a worker before it starts a run."""
        return f"{self._stream_prefix}_CANCELLED_RUNS"

    @property
    def run_events_wildcard(self) -> str:
        return f"{self.namespace}.run.*.events"

    @property
    def run_events_stream(self) -> str:
        return f"{self._stream_prefix}_RUN_EVENTS"

    @property
    def erasure(self) -> str:
        """``DataErased`` events, published by the memory service after it erased the data."""
        return f"{self.namespace}.erasure"

    @property
    def erasure_stream(self) -> str:
        return f"{self._stream_prefix}_ERASURE"
