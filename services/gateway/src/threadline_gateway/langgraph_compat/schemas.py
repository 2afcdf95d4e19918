"""Request and response bodies of the LangGraph Platform API, as the official ``langgraph-sdk`` sends and reads them.

Requests ignore the fields Threadline does not act on (webhooks, durability, ...), as a client
of several servers expects; fields that would change the outcome and are not supported are refused.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from threadline.ids import ID_PATTERN

from threadline_gateway.schemas import MultitaskStrategy

StreamMode = Literal["values", "updates", "messages-tuple"]
RunStatus = Literal["pending", "running", "error", "success", "timeout", "interrupted"]
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
SortOrder = Literal["asc", "desc"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AssistantSearch(_Lenient):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class Assistant(BaseModel):
    assistant_id: str
    graph_id: str
    name: str
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = 1
    created_at: str
    updated_at: str


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


class RunCreate(_Lenient):
    assistant_id: str = Field(pattern=ID_PATTERN)
    input: dict[str, Any] | None = None
    command: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] | None = None
    stream_mode: StreamMode | list[StreamMode] = "values"
    multitask_strategy: MultitaskStrategy = "reject"
    if_not_exists: Literal["create", "reject"] = "reject"

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
