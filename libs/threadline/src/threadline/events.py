"""The events that travel on NATS, each a versioned pydantic model with its subject.

Subjects live under a namespace (``threadline`` by default) so that several
deployments, or test runs, can share one NATS server without seeing each other.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from threadline.ids import INGEST_ID_PATTERN

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
    def from_bytes(cls, data: bytes) -> Self:
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


class DataErased(Event):
    """A tenant's data (or one user's) was erased from the memory service; every other service
    holding copies of it (caches, exports, indexes built from conversations) erases them too."""

    tenant_id: str
    user_id: str | None = Field(default=None, description="None: the whole tenant.")
    threads: int = Field(description="Threads (with their checkpoints) deleted.")
    store_items: int = Field(description="Long-term memory items deleted.")
    erased_at: datetime = Field(default_factory=_now)


class IngestDocument(BaseModel):
    """One document of an ingest, as the retrieval gRPC API's ``Document`` without a vector."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(default="", description="Empty: the service derives a stable id from the text.")
    text: str
    content_type: str = Field(default="", description="text/plain, text/markdown or text/html; empty: text/plain.")
    metadata: dict[str, str] = Field(default_factory=dict)


class IngestRequested(Event):
    """Documents to index, durable on the INGEST stream until the retrieval service has stored them.

    Publish it with ``ingest_id`` as the ``Nats-Msg-Id`` header, so a re-sent request is dropped as
    a duplicate. A document that already exists (same id) is replaced, so a redelivery is harmless.
    """

    ingest_id: str = Field(pattern=INGEST_ID_PATTERN, description="The caller's id; names the events' subject.")
    tenant_id: str
    collection: str = Field(default="", description="Empty: the tenant's default collection.")
    documents: list[IngestDocument] = Field(min_length=1)
    created_at: datetime = Field(default_factory=_now)


class IngestProgress(Event):
    """Part of a large ingest is stored (each part is one transaction); more is coming."""

    kind: Literal["progress"] = "progress"
    ingest_id: str
    tenant_id: str
    collection: str
    documents_done: int
    documents_total: int


class IngestedDocument(BaseModel):
    document_id: str
    chunk_count: int


class IngestCompleted(Event):
    """Every document of the ingest is stored and searchable."""

    kind: Literal["completed"] = "completed"
    ingest_id: str
    tenant_id: str
    collection: str
    documents: list[IngestedDocument]


IngestFailureCode = Literal["invalid_request", "embedding_mismatch", "embedding_unavailable", "internal_error"]


class IngestFailed(Event):
    """The ingest will not be retried; documents of parts already reported in progress stay stored."""

    kind: Literal["failed"] = "failed"
    ingest_id: str
    tenant_id: str = ""
    collection: str = ""
    code: IngestFailureCode
    message: str


IngestEvent = Annotated[IngestProgress | IngestCompleted | IngestFailed, Field(discriminator="kind")]
_INGEST_EVENT: TypeAdapter[IngestEvent] = TypeAdapter(IngestEvent)


def parse_ingest_event(data: bytes) -> IngestProgress | IngestCompleted | IngestFailed:
    """An event of an ingest's subject, as the class its ``kind`` names."""
    return _INGEST_EVENT.validate_json(data)


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

    @property
    def ingest_requested(self) -> str:
        return f"{self.namespace}.ingest.requested"

    @property
    def ingest_stream(self) -> str:
        return f"{self._stream_prefix}_INGEST"

    @property
    def ingest_consumer(self) -> str:
        """The one durable consumer that every retrieval replica pulls ingests from."""
        return "retrieval-ingest"

    def ingest_events(self, ingest_id: str) -> str:
        """Progress, completion or failure of one ingest (``unknown`` for a request too broken to name one)."""
        return f"{self.namespace}.ingest.{ingest_id}.events"

    @property
    def ingest_events_wildcard(self) -> str:
        return f"{self.namespace}.ingest.*.events"

    @property
    def ingest_events_stream(self) -> str:
        return f"{self._stream_prefix}_INGEST_EVENTS"
