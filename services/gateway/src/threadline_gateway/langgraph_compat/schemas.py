"""Request and response bodies of the LangGraph Platform API, as the official ``langgraph-sdk`` sends and reads them.

Requests ignore the fields Threadline does not act on (webhooks, durability, ...), as a client
of several servers expects; fields that would change the outcome and are not supported are refused.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from threadline.ids import GRAPH_ID_PATTERN, ID_PATTERN

from threadline_gateway.assistant_tools import checked_tool_config
from threadline_gateway.schemas import MultitaskStrategy

# LangGraph Platform's stream modes, each relayed as it sends them (threadline.events.StreamModeName).
StreamMode = Literal["values", "updates", "messages", "messages-tuple", "events", "debug", "custom"]
RunStatus = Literal["pending", "running", "error", "success", "timeout", "interrupted"]
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
SortOrder = Literal["asc", "desc"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


AssistantSortBy = Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"]


class AssistantSearch(_Lenient):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    sort_by: AssistantSortBy = "updated_at"
    sort_order: SortOrder = "desc"


class AssistantCount(_Lenient):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None


class AssistantCreate(_Lenient):
    graph_id: str = Field(pattern=GRAPH_ID_PATTERN)
    assistant_id: uuid.UUID | None = Field(default=None, description="A UUID; a new one when absent.")
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = Field(default=None, max_length=256)
    description: str | None = None

    @field_validator("config")
    @classmethod
    def _tools(cls, value: dict[str, Any]) -> dict[str, Any]:
        return checked_tool_config(value)


class AssistantPatch(_Lenient):
    graph_id: str | None = Field(default=None, pattern=GRAPH_ID_PATTERN)
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = Field(default=None, description="Merged into the assistant's metadata.")
    name: str | None = Field(default=None, max_length=256)
    description: str | None = None

    @field_validator("config")
    @classmethod
    def _tools(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return checked_tool_config(value) if value is not None else None


class AssistantVersionsRequest(_Lenient):
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class AssistantLatest(_Lenient):
    version: int = Field(ge=1, le=2**31 - 1)


class AssistantVersion(BaseModel):
    assistant_id: str
    graph_id: str
    name: str
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = 1
    created_at: str


class Assistant(AssistantVersion):
    updated_at: str


class GraphSchemas(BaseModel):
    graph_id: str
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    state_schema: dict[str, Any] | None = None
    config_schema: dict[str, Any] | None = None
    context_schema: dict[str, Any] | None = None


class DrawableGraph(BaseModel):
    """LangGraph's drawable graph (``Graph.to_json()``), as the agent registered it."""

    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


class ThreadCreate(_Lenient):
    thread_id: str | None = Field(default=None, pattern=ID_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"


class ThreadPatch(_Lenient):
    metadata: dict[str, Any] = Field(default_factory=dict)


class ThreadSearch(_Lenient):
    metadata: dict[str, Any] | None = None
    status: ThreadStatus | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    sort_by: Literal["thread_id", "created_at", "updated_at"] = "updated_at"
    sort_order: SortOrder = "desc"


class Thread(BaseModel):
    thread_id: str
    created_at: str
    updated_at: str
    metadata: dict[str, Any]
    status: ThreadStatus
    values: dict[str, Any] | None
    interrupts: dict[str, list[Any]] = Field(default_factory=dict)


class CheckpointRef(BaseModel):
    thread_id: str
    checkpoint_ns: str = ""
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class ThreadState(BaseModel):
    values: dict[str, Any]
    next: list[str] = Field(default_factory=list)
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    checkpoint: CheckpointRef
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    parent_checkpoint: CheckpointRef | None = None
    interrupts: list[Any] = Field(default_factory=list)


class CheckpointSelector(_Lenient):
    checkpoint_id: str | None = Field(default=None, pattern=ID_PATTERN)


class HistoryRequest(_Lenient):
    limit: int = Field(default=10, ge=1, le=1000)
    before: CheckpointSelector | str | None = None
    metadata: dict[str, Any] | None = None


class StateAtCheckpoint(_Lenient):
    checkpoint: CheckpointSelector


class ThreadStateUpdate(_Lenient):
    values: dict[str, Any] | list[dict[str, Any]] | None = None
    as_node: str | None = Field(default=None, max_length=256, description="Apply it as if this node had just run.")
    checkpoint: CheckpointSelector | None = None
    checkpoint_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Deprecated: checkpoint.")


class StateUpdated(BaseModel):
    checkpoint: CheckpointRef


class RunCreate(_Lenient):
    assistant_id: str = Field(pattern=ID_PATTERN)
    input: dict[str, Any] | None = None
    command: dict[str, Any] | None = Field(default=None, description="LangGraph's Command: resume, update, goto.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    stream_mode: StreamMode | list[StreamMode] = "values"
    multitask_strategy: MultitaskStrategy = "reject"
    if_not_exists: Literal["create", "reject"] = "reject"
    webhook: str | None = Field(
        default=None, max_length=2048, description="POST the run's outcome here once it has ended (http or https)."
    )

    def stream_modes(self) -> set[StreamMode]:
        return {self.stream_mode} if isinstance(self.stream_mode, str) else set(self.stream_mode)


# LangGraph names a field kwargs, which the pydantic mypy plugin's generated __init__(**kwargs) clashes with.
class Run(BaseModel):  # type: ignore[no-redef]
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: str
    updated_at: str
    status: RunStatus
    metadata: dict[str, Any] = Field(default_factory=dict)
    multitask_strategy: MultitaskStrategy = "reject"
    kwargs: dict[str, Any] = Field(default_factory=dict)
