"""The events that travel on NATS, each a versioned pydantic model with its subject.

Subjects live under a namespace (``threadline`` by default) so that several
deployments, or test runs, can share one NATS server without seeing each other.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from threadline.ids import INGEST_ID_PATTERN, is_graph_id
from threadline.output_schema import OutputSchema

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
# LangGraph Platform's stream modes a run may ask for: the graph's state (values), each node's update
# (updates), LLM messages whole (messages) or as (chunk, metadata) pairs (messages-tuple), astream_events'
# events (events), LangGraph's debug stream (debug) and what nodes write with get_stream_writer (custom).
StreamModeName = Literal["values", "updates", "messages", "messages-tuple", "events", "debug", "custom"]
# configurable keys the platform sets (which thread, tenant and checkpoint a run works on, whose memory it
# reads); a client's are dropped, as are LangGraph's internal ``__``-prefixed ones.
RESERVED_CONFIGURABLE = frozenset(
    {"thread_id", "tenant_id", "user_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map"}
)


def client_configurable(configurable: dict[str, Any]) -> dict[str, Any]:
    """``configurable`` without the keys the platform sets."""
    return {k: v for k, v in configurable.items() if k not in RESERVED_CONFIGURABLE and not k.startswith("__")}


class RunConfig(BaseModel):
    """The parts of LangGraph's RunnableConfig a client may set for its run."""

    model_config = ConfigDict(extra="ignore")

    configurable: dict[str, Any] = Field(
        default_factory=dict, description="Passed to the graph as config['configurable'] (reserved keys dropped)."
    )
    tags: list[str] = Field(default_factory=list)
    recursion_limit: int | None = Field(
        default=None, ge=1, description="Steps the graph may take; capped by the agent's AGENT_MAX_RECURSION_LIMIT."
    )


class StateUpdate(BaseModel):
    """An update of a thread's state, applied with the graph's reducers (LangGraph's ``graph.aupdate_state``)."""

    model_config = ConfigDict(extra="ignore")

    values: Any = Field(default=None, description="The update: an object of channel values, a list of them, or None.")
    as_node: str | None = Field(default=None, description="Apply it as if this node had just run.")
    checkpoint_id: str | None = Field(default=None, description="Branch off this checkpoint; none: the latest.")


class RunRequested(Event):
    """A question accepted by the gateway; durable on the RUNS stream until a worker acks it."""

    run_id: str
    thread_id: str
    tenant_id: str
    assistant_id: str = "agent"
    graph_id: str = Field(
        default="",
        description="The graph the run is for, which names its subject (Topology.runs_requested_for); "
        "empty: the assistant id, since each graph's default assistant is addressed by the graph's name.",
    )
    input: str | dict[str, Any] | None = Field(
        default="",
        description="The question's text (a graph with messages gets it as a human message), or the graph's "
        "input as JSON, given to it as it is; None: no input (a resume or a command).",
    )
    config: RunConfig = Field(default_factory=RunConfig, description="The client's part of the run's config.")
    context: dict[str, Any] | None = Field(
        default=None, description="The graph's run context (its context_schema), as graph.astream(context=...)."
    )
    command: dict[str, Any] | None = Field(
        default=None,
        description="LangGraph's Command for the graph: resume (the value interrupt() returns), update, goto.",
    )
    stream_modes: list[StreamModeName] = Field(
        default_factory=list,
        description="LangGraph stream modes to publish as run events (besides Threadline's own events).",
    )
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
    webhook: str | None = Field(
        default=None,
        description="POST the run's outcome here once it has ended: the worker publishes WebhookDue on the "
        "WEBHOOKS stream after the final event, and the gateway delivers it (retried, durable).",
    )
    resume: dict[str, Any] | None = Field(
        default=None,
        description="Resume the thread's interrupted run with this decision on the tool call it waits on: "
        '{"action": "approve"}, {"action": "reject", "reason": "..."} or {"action": "edit", "args": {...}}; '
        "input may then be empty.",
    )

    update_state: StateUpdate | None = Field(
        default=None,
        description="Not a run of the graph: apply this update to the thread's state and end, the new "
        "checkpoint in the result (RunResult.checkpoint); input is then None.",
    )
    output_schema: OutputSchema | None = Field(
        default=None,
        description="Structured output: the final answer (of a graph with messages) must be a JSON object "
        "matching this schema, the result's structured_response; checked by the gateway, validated by the agent.",
    )

    client_tools: list[dict[str, Any]] = Field(
        default_factory=list,
        description="OpenAI function tools the client offers and runs itself (its assistant allows them): the "
        "model may call them beside the platform's; such a call ends the run, its calls in RunResult.tool_calls.",
    )
    tool_choice: str | dict[str, Any] | None = Field(
        default=None, description="The client's OpenAI tool_choice for the run's first model reply."
    )

    def wants(self, mode: StreamModeName) -> bool:
        """Whether the run asked for LangGraph's stream mode ``mode`` (``state_events`` is its older spelling)."""
        return mode in self.stream_modes or mode in self.state_events

    @model_validator(mode="after")
    def _graph_of_assistant(self) -> Self:
        if not self.graph_id:
            self.graph_id = self.assistant_id
        return self


class WebhookDue(Event):
    """A run with a webhook has ended (its final event is stored): the gateway POSTs its outcome to ``webhook``.

    Published by the worker with ``webhook-<run_id>`` as the ``Nats-Msg-Id``, so a redelivered run's
    second publish is dropped; durable on the WEBHOOKS work queue until a gateway has delivered it.
    """

    run_id: str
    thread_id: str
    tenant_id: str
    webhook: str
    ended_at: datetime = Field(default_factory=_now)


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
    language: str = Field(
        default="",
        description="The collection's stemming language (threadline.languages), set by its first ingest; "
        "empty: English for a new collection, whatever it has for an existing one.",
    )
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


IngestFailureCode = Literal[
    "invalid_request", "embedding_mismatch", "language_mismatch", "embedding_unavailable", "internal_error"
]


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

    def runs_requested_for(self, graph_id: str) -> str:
        """The runs of one graph: each graph has its own subject, and its workers their own consumer."""
        if not is_graph_id(graph_id):
            raise ValueError(f"invalid graph id {graph_id!r}: use [A-Za-z0-9][A-Za-z0-9_-]*, at most 64")
        return f"{self.namespace}.runs.requested.{graph_id}"

    @property
    def runs_requested_wildcard(self) -> str:
        """Every graph's runs: the RUNS stream's subject."""
        return f"{self.namespace}.runs.requested.>"

    @property
    def runs_stream(self) -> str:
        return f"{self._stream_prefix}_RUNS"

    def runs_consumer_for(self, graph_id: str) -> str:
        """The durable consumer that every agent worker serving ``graph_id`` pulls that graph's runs from."""
        if not is_graph_id(graph_id):
            raise ValueError(f"invalid graph id {graph_id!r}: use [A-Za-z0-9][A-Za-z0-9_-]*, at most 64")
        return f"{self.runs_consumer_prefix}{graph_id}"

    @property
    def runs_consumer_prefix(self) -> str:
        """What every graph's consumer name starts with (the gateway counts workers over them)."""
        return "agent-workers-"

    @property
    def legacy_runs_consumer(self) -> str:
        """The one unfiltered consumer of every run before runs had a subject per graph; deleted on upgrade."""
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
    def webhooks_due(self) -> str:
        """``WebhookDue`` events: runs that ended and whose outcome a gateway must POST to their webhook."""
        return f"{self.namespace}.webhooks.due"

    @property
    def webhooks_stream(self) -> str:
        return f"{self._stream_prefix}_WEBHOOKS"

    @property
    def webhooks_consumer(self) -> str:
        """The one durable consumer that every gateway replica pulls due webhooks from."""
        return "gateway-webhooks"

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
