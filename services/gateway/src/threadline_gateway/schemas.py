"""The public request and response bodies of the v1 API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from threadline.aim import CollectionName, SearchFilter
from threadline.events import RunConfig
from threadline.ids import GRAPH_ID_PATTERN, ID_PATTERN
from threadline.run_events import Citation

from threadline_gateway.assistant_tools import checked_tool_config
from threadline_gateway.output_schemas import DOCUMENTED, checked_schema

# What a blank question may consist of: the characters both JSON Schema (ECMAScript) and Python regexes
# call whitespace, spelled out, because the two engines' \s differ (and str.strip() strips still more).
BLANK = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"
NOT_BLANK_PATTERN = f"[^{BLANK}]"


def strip_blank(text: str) -> str:
    return text.strip(BLANK)


MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]


class ToolDecision(BaseModel):
    """A person's decision on the tool call an interrupted run waits on."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"action": {"enum": ["approve", "reject"]}}},
                {"required": ["args"], "properties": {"action": {"const": "edit"}, "args": {"type": "object"}}},
            ]
        },
    )

    action: Literal["approve", "reject", "edit"]
    reason: str | None = Field(default=None, max_length=2000, description="With reject: told to the model.")
    args: dict[str, Any] | None = Field(default=None, description="With edit: the arguments to run the tool with.")

    @model_validator(mode="after")
    def _edit_has_args(self) -> ToolDecision:
        if self.action == "edit" and self.args is None:
            raise ValueError("edit needs args")
        return self


# An http(s) URL with a host (and a port in range): what threadline_gateway.webhooks accepts, said in the schema.
_PORT = r"(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
WEBHOOK_PATTERN = r"^[hH][tT][tT][pP][sS]?://[A-Za-z0-9][A-Za-z0-9.-]*" + _PORT + r"([/?#].*)?$"


class QueryRequest(BaseModel):
    """A question; without ``thread_id`` it starts a new conversation."""

    model_config = ConfigDict(extra="forbid")

    input: str | dict[str, Any] = Field(
        default="",
        description="The question (for a graph with messages); may be empty when the request carries `resume`. "
        "Or the graph's input as a JSON object, given to it as it is (a graph whose state has no messages).",
        examples=["How are runs kept durable?"],
    )
    config: RunConfig | None = Field(
        default=None,
        description="The graph's config: `configurable` (thread_id, tenant_id, user_id and checkpoint keys are "
        "the platform's and dropped), `tags`, `recursion_limit` (capped by the agent).",
    )
    context: dict[str, Any] | None = Field(
        default=None, description="The graph's run context (its context_schema), as LangGraph's `context`."
    )
    resume: ToolDecision | None = Field(
        default=None,
        description="Continue the thread's interrupted run (status `interrupted`) with this decision on the "
        "tool call it waits on; needs `thread_id`.",
    )
    user_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The person asking, for their long-term memory and for erasing their data; with a JWT "
        "the token's subject is used instead.",
    )
    thread_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Continue this conversation; an id that does not exist yet starts a thread under that id.",
    )
    assistant_id: str = Field(default="agent", pattern=ID_PATTERN, description="Which graph answers.")
    webhook: str | None = Field(
        default=None,
        max_length=2048,
        pattern=WEBHOOK_PATTERN,
        description="POST the run's outcome (LangGraph Platform's run object with `status` and `values` or "
        "`error`) to this http(s) URL once it has ended; retried with backoff.",
    )
    multitask_strategy: MultitaskStrategy = Field(
        default="reject",
        description="While the thread still answers an earlier question: `reject` it (409 thread_busy), "
        "`enqueue` this one after it, `interrupt` it and answer this one, or `rollback` (interrupt it and "
        "forget it).",
    )
    output_schema: dict[str, Any] | None = Field(
        default=None,
        description="Structured output: a JSON Schema (root `type: object`) the answer must match, given as "
        "`output` (validated; a model that misses twice fails the run `output_invalid`, 502). The offline "
        "extractive answerer fills only its cited-answer schema (others: 422 output_schema_unsupported). "
        "Unset: the assistant's `config.configurable.output_schema`, if any.",
        json_schema_extra=DOCUMENTED,
    )
    collection: CollectionName | None = Field(
        default=None,
        description="Search this collection of the knowledge base (`default`: the tenant's default one; "
        "one the tenant does not have: 404 collection_not_found). Unset: as the assistant's config says.",
    )
    filter: SearchFilter | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _text_or_object(cls, value: Any) -> Any:
        # Checked before the union's members, so a client reads one error on `input`, not one per member.
        if not isinstance(value, str | dict):
            raise ValueError("must be a question (a string) or the graph's input (a JSON object)")
        return value

    @field_validator("output_schema")
    @classmethod
    def _a_json_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else checked_schema(value)


class QueryResponse(BaseModel):
    run_id: str
    thread_id: str
    assistant_id: str
    answer: str
    citations: list[Citation] = Field(description="The passages the answer cites, [1] first.")
    model: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    status: Literal["success", "interrupted"] = Field(
        default="success", description="interrupted: a tool call awaits approval (see interrupts); send `resume`."
    )
    interrupts: list[dict[str, Any]] = Field(
        default_factory=list, description="The tool calls awaiting a decision: id, name, args, allowed actions."
    )
    knowledge_base_unavailable: bool = Field(
        default=False, description="The knowledge base could not be consulted; the answer says so."
    )
    cached: bool = Field(default=False, description="The answer came from the answer cache.")
    output: dict[str, Any] | None = Field(
        default=None,
        description="With `output_schema`: the answer as the JSON object that matches it. A graph without "
        "messages: its final state values (`answer` is then empty).",
    )


RunStatus = Literal["pending", "running", "success", "interrupted", "error", "cancelled"]


class RunInfo(BaseModel):
    """A run as its tenant sees it; ``status`` comes from the run's last stored event."""

    run_id: str
    thread_id: str
    assistant_id: str
    created_at: datetime
    status: RunStatus


class RunCreated(RunInfo):
    """The answer to starting a background run: 202, with ``Location`` naming the run."""


class WsQuery(QueryRequest):
    """WebSocket: start a run. ``ref`` is echoed on the reply, to match it to this message."""

    type: Literal["query"]
    ref: str | None = Field(default=None, max_length=128, description="Echoed in the `accepted` or `error` reply.")


class WsResume(BaseModel):
    """WebSocket: follow a run again after a reconnect, from after ``after_seq`` (-1: from its first event)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["resume"]
    run_id: str = Field(min_length=1, max_length=128)
    after_seq: int = Field(default=-1, ge=-1)
    ref: str | None = Field(default=None, max_length=128)


WsMessage = Annotated[WsQuery | WsResume, Field(discriminator="type")]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: validation_error, not_found, invalid_token, ...")
    message: str
    request_id: str = Field(description="Also in the X-Request-ID header and the gateway's logs.")
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for these error statuses, all with the one error body."""
    described = {
        401: "No credential, or one that is expired, forged or revoked (with WWW-Authenticate)",
        403: "The credential may not do this",
        404: "No such resource for this tenant",
        409: "The resource is not in a state that allows this",
        413: "Body too large",
        422: "Invalid request; `details.fields` names each field",
        429: "Rate limit reached; retry after Retry-After seconds",
        502: "The run failed; the error names its code",
        503: "A dependency is unavailable; retry after Retry-After seconds",
        504: "The run did not finish in time; it goes on in the background",
    }
    return {s: {"model": ErrorResponse, "description": described.get(s, "Error")} for s in statuses}


class FeedbackRequest(BaseModel):
    """A rating of a run's answer, with an optional comment."""

    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5, description="1 (bad) to 5 (excellent).", examples=[4])
    comment: str = Field(
        default="",
        max_length=4000,
        validation_alias=AliasChoices("comment", "text"),
        description="Free text (also accepted as `text`).",
    )

    @field_validator("rating", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        # JSON's 4.0 is the integer 4 (as JSON Schema says), but "4" and true are not ratings.
        if isinstance(value, bool | str):
            raise ValueError("must be a number from 1 to 5")
        return value


class Feedback(BaseModel):
    id: int
    run_id: str
    thread_id: str
    rating: int
    comment: str
    created_at: datetime


class CasePassage(BaseModel):
    document_id: str
    chunk_id: str
    text: str


class EvalCase(BaseModel):
    """Rated feedback as an evaluation case: the shape ``python -m evals --cases file.jsonl`` reads."""

    id: str = Field(description="feedback-<feedback id>.", examples=["feedback-42"])
    question: str = Field(description="The question the run answered (empty if its thread was gone when rated).")
    passage: str | None = Field(default=None, description="The passage the answer needs: for a person to fill in.")
    answer: str = Field(description="The answer that was rated.")
    citations: list[CasePassage] = Field(description="The passages that answer cited, [1] first.")
    comment: str
    rating: int
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: datetime


class FeedbackCases(BaseModel):
    cases: list[EvalCase]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class DocumentSummary(BaseModel):
    id: str = Field(description="The document's id: its file name.")
    chunks: int = Field(description="Chunks it was split into for search.")
    status: Literal["indexed"] = Field(description="Searchable (an upload with wait=true returns only once indexed).")
    metadata: dict[str, str] = Field(default_factory=dict)


class UploadedDocuments(BaseModel):
    documents: list[DocumentSummary]


class IngestError(BaseModel):
    code: str = Field(
        description="invalid_request, embedding_mismatch, language_mismatch (the collection has another language), "
        "embedding_unavailable or internal_error."
    )
    message: str


class Ingestion(BaseModel):
    """Files being indexed in the background (an upload with ``wait=false``)."""

    ingest_id: str
    status: Literal["queued", "running", "completed", "failed"]
    documents_done: int | None = Field(description="Documents stored so far; null once failed.")
    documents_total: int | None
    documents: list[DocumentSummary] | None = Field(default=None, description="Once completed.")
    error: IngestError | None = Field(default=None, description="Once failed.")
    status_url: str = Field(description="Where to follow it: GET it until completed or failed.")


class DocumentList(BaseModel):
    documents: list[DocumentSummary]
    total: int = Field(description="Documents in the collection, over all pages.")
    limit: int
    offset: int


class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thread_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Your own id for the thread; a new UUID when absent."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Anything to find the thread by later.")


ThreadSortBy = Literal["updated_at", "created_at", "thread_id"]
SortOrder = Literal["desc", "asc"]
# The memory service lists at most 1000; a page asks for one more, to know if another follows.
THREAD_PAGE_MAX = 500


class ThreadSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any] = Field(
        default_factory=dict, description='Only threads whose metadata holds each key and value, e.g. {"user": "ada"}.'
    )
    limit: int = Field(default=20, ge=1, le=THREAD_PAGE_MAX)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    sort_by: ThreadSortBy = "updated_at"
    sort_order: SortOrder = "desc"


class ThreadInfo(BaseModel):
    """A thread as listed: its metadata, when it was created and last written, and whether a run is on it."""

    thread_id: str
    created_at: str
    updated_at: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: Literal["idle", "busy", "interrupted"] = Field(
        description="busy: a run is on it; interrupted: its last run awaits a decision (send `resume`)."
    )


class ThreadPage(BaseModel):
    threads: list[ThreadInfo]
    next_offset: int | None = Field(description="The offset of the next page; null on the last one.")


AssistantSortBy = Literal["updated_at", "created_at", "assistant_id", "graph_id", "name"]
ASSISTANT_PAGE_MAX = 500


class AssistantConfig(BaseModel):
    """The run config an assistant gives its runs (a run's own keys win)."""

    model_config = ConfigDict(extra="forbid")

    configurable: dict[str, Any] = Field(default_factory=dict, description="The graph's `config['configurable']`.")
    tags: list[str] = Field(default_factory=list)
    recursion_limit: int | None = Field(default=None, ge=1)

    @field_validator("configurable")
    @classmethod
    def _tools(cls, value: dict[str, Any]) -> dict[str, Any]:
        return checked_tool_config({"configurable": value})["configurable"]


class AssistantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    graph_id: str = Field(pattern=GRAPH_ID_PATTERN, description="A graph the agents serve, e.g. `agent`.")
    assistant_id: uuid.UUID | None = Field(default=None, description="Your own UUID for it; a new one when absent.")
    name: str | None = Field(default=None, max_length=256, description="Default: `Untitled`.")
    description: str | None = Field(default=None, max_length=4000)
    config: AssistantConfig = Field(default_factory=AssistantConfig)
    context: dict[str, Any] = Field(default_factory=dict, description="The graph's run context (its context schema).")
    metadata: dict[str, Any] = Field(default_factory=dict)


class AssistantPatch(BaseModel):
    """What a new version changes; a field left out keeps the latest version's."""

    model_config = ConfigDict(extra="forbid")

    graph_id: str | None = Field(default=None, pattern=GRAPH_ID_PATTERN)
    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=4000)
    config: AssistantConfig | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = Field(default=None, description="Merged into the assistant's metadata.")


class AssistantInfo(BaseModel):
    """An assistant at its latest version."""

    assistant_id: str
    graph_id: str
    name: str
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int
    created_at: str
    updated_at: str
    default: bool = Field(description="A graph's default assistant: every tenant's, read-only.")


class AssistantPage(BaseModel):
    assistants: list[AssistantInfo]
    next_offset: int | None = Field(description="The offset of the next page; null on the last one.")


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Whose data; absent: the caller's own (a JWT's subject) or, for an admin, the whole tenant.",
    )


class Erasure(BaseModel):
    user_id: str | None = Field(description="Whose data was erased; null: the whole tenant's.")
    threads: int = Field(description="Threads erased, with every checkpoint and pending write.")
    store_items: int = Field(description="Long-term memories erased.")


class ThreadState(BaseModel):
    """One checkpoint of a thread: its values (``messages`` for the agents here) after a step."""

    thread_id: str
    checkpoint_id: str
    parent_checkpoint_id: str | None = None
    created_at: str | None = Field(default=None, description="When the checkpoint was written (ISO 8601).")
    metadata: dict[str, Any] = Field(default_factory=dict, description="The step, its source and the run that made it.")
    values: dict[str, Any] = Field(default_factory=dict)
    interrupts: list[dict[str, Any]] = Field(
        default_factory=list, description="What a paused run waits on (value and id); resume it with a decision."
    )
