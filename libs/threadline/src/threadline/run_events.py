"""A run's events: what the agent publishes on a run's subject and the gateway relays, one typed payload per kind.

On the wire an event stays ``{"run_id", "seq", "kind", "data"}``, with ``data`` the payload's
JSON, so SSE and WebSocket clients read the same frames as before. In code the payload is
a model: the agent builds events with :meth:`RunEvent.of` and the gateway reads them with
:meth:`RunEvent.payload` (or :meth:`RunEvent.result` / :meth:`RunEvent.failure` for the final
one), so a renamed field is a type error on both sides rather than a silent ``.get()`` miss.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from threadline.events import Event

RunEventKind = Literal[
    "metadata",
    "token",
    "tool_call",
    "tool_result",
    "citations",
    "interrupt",
    "values",
    "updates",
    "messages",
    "events",
    "debug",
    "custom",
    "end",
    "error",
]


class Payload(BaseModel):
    """Base of the payloads: fields a newer agent adds are ignored by an older gateway, not refused."""

    model_config = ConfigDict(extra="ignore")


class RunStarted(Payload):
    """``metadata``: the first event of a run, naming what it runs."""

    run_id: str
    thread_id: str
    assistant_id: str


class Token(Payload):
    """``token``: a piece of the answer's text, and the message and graph node it belongs to."""

    text: str
    message_id: str | None = None
    node: str | None = None


class ToolCall(Payload):
    """``tool_call``: the model asked for a tool (after a person's edit, with the arguments it will run with)."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class ToolResult(Payload):
    """``tool_result``: a tool call has returned; ``citations`` counts the passages it retrieved."""

    name: str | None = None
    tool_call_id: str
    status: Literal["success", "error"] = "success"
    citations: int = 0
    rejected: bool = Field(default=False, description="A person refused the call; it did not run.")


class Citation(Payload):
    """A passage of the knowledge base the answer rests on."""

    document_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, str] = Field(default_factory=dict)


class Citations(Payload):
    """``citations``: the passages the answer cites, [1] first."""

    citations: list[Citation]


class Interrupted(Payload):
    """``interrupt``: the run stopped for a person; each entry is the graph's interrupt value with its ``id``."""

    interrupts: list[dict[str, Any]]


class StateChunk(RootModel[dict[str, Any]]):
    """``values``, ``updates``, ``events`` or ``debug``: a part of LangGraph's stream mode of that name, as JSON
    (the graph's state, one step's update, an astream_events event, a debug step)."""


class MessageChunk(Payload):
    """``messages``: a message from LangGraph's ``messages`` stream mode, a model's chunk or a node's whole message.

    ``chunk`` and ``metadata`` are the pair the ``messages-tuple`` mode sends; ``message`` is the message so
    far (the chunks of its id added up), for runs that asked for the whole-message ``messages`` mode.
    """

    chunk: dict[str, Any]
    metadata: dict[str, Any] = Field(default_factory=dict)
    message: dict[str, Any] | None = Field(default=None, description="The message so far (messages mode only).")
    first: bool = Field(default=False, description="The first part of this message id.")
    complete: bool = Field(default=False, description="A whole message, not a model's chunk.")


class CustomChunk(Payload):
    """``custom``: what a node wrote with LangGraph's ``get_stream_writer()``, any JSON."""

    value: Any = None


class Usage(Payload):
    """Tokens a run spent; ``approximate`` when a model reported none and they were counted here."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    approximate: bool = False
    cost_usd: float | None = Field(default=None, description="From the configured per-model prices, if any.")


class RunResult(Payload):
    """``end``: the outcome of a run that finished, answered or stopped for a person (``interrupted``)."""

    run_id: str
    thread_id: str
    assistant_id: str
    status: Literal["success", "interrupted"] = "success"
    answer: str = ""
    citations: list[Citation] = Field(default_factory=list)
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    interrupts: list[dict[str, Any]] = Field(
        default_factory=list, description="With status interrupted: what the run waits on."
    )
    knowledge_base_unavailable: bool = Field(default=False, description="Every search failed; the answer says so.")
    cached: bool = Field(default=False, description="Answered from the answer cache.")
    output: dict[str, Any] | None = Field(
        default=None, description="The graph's final state values as JSON (what LangGraph's runs.wait returns)."
    )
    checkpoint: dict[str, str] | None = Field(
        default=None,
        description="A state update's new checkpoint: thread_id, checkpoint_ns and checkpoint_id.",
    )
    structured_response: dict[str, Any] | None = Field(
        default=None,
        description="With an output schema: the answer as the JSON object that matches it (LangGraph's name).",
    )
    tool_calls: list[ToolCall] = Field(
        default_factory=list,
        description="The run ended calling the client's tools (RunRequested.client_tools): the client runs them "
        "and continues the thread with their results; ``answer`` is then whatever text came with the calls.",
    )


class RunError(Payload):
    """``error``: the run failed; ``code`` is stable for programs, ``message`` is for people."""

    code: str
    message: str = ""


RunPayload = (
    RunStarted
    | Token
    | ToolCall
    | ToolResult
    | Citations
    | Interrupted
    | StateChunk
    | MessageChunk
    | CustomChunk
    | RunResult
    | RunError
)

_PAYLOAD_OF: dict[str, type[BaseModel]] = {
    "metadata": RunStarted,
    "token": Token,
    "tool_call": ToolCall,
    "tool_result": ToolResult,
    "citations": Citations,
    "interrupt": Interrupted,
    "values": StateChunk,
    "updates": StateChunk,
    "events": StateChunk,
    "debug": StateChunk,
    "messages": MessageChunk,
    "custom": CustomChunk,
    "end": RunResult,
    "error": RunError,
}
_KIND_OF: dict[type[BaseModel], RunEventKind] = {
    RunStarted: "metadata",
    Token: "token",
    ToolCall: "tool_call",
    ToolResult: "tool_result",
    Citations: "citations",
    Interrupted: "interrupt",
    MessageChunk: "messages",
    CustomChunk: "custom",
    RunResult: "end",
    RunError: "error",
}


def kind_of(payload: RunPayload) -> RunEventKind:
    """The event kind a payload travels as; a state chunk's kind (values, updates, events, debug) is the caller's."""
    if isinstance(payload, StateChunk):
        raise ValueError("a StateChunk is a values, updates, events or debug event: pass the kind")
    return _KIND_OF[type(payload)]


class RunEvent(Event):
    """One step of a run as the client sees it; ``seq`` orders them and lets a client resume."""

    run_id: str
    seq: int
    kind: RunEventKind
    data: dict[str, Any] = Field(default_factory=dict, description="The payload of ``kind``, as JSON.")

    @classmethod
    def of(cls, run_id: str, seq: int, payload: RunPayload, kind: RunEventKind | None = None) -> RunEvent:
        """The event carrying ``payload``; ``kind`` only for a state chunk (values, updates, events, debug)."""
        kind = kind or kind_of(payload)
        if not isinstance(payload, _PAYLOAD_OF[kind]):
            raise ValueError(f"a {type(payload).__name__} is not the payload of a {kind} event")
        return cls(run_id=run_id, seq=seq, kind=kind, data=payload.model_dump(mode="json"))

    def payload(self) -> RunPayload:
        """``data`` as the model of this event's kind."""
        parsed = _PAYLOAD_OF[self.kind].model_validate(self.data)
        assert isinstance(parsed, RunPayload)  # every model in _PAYLOAD_OF is one of RunPayload's
        return parsed

    def result(self) -> RunResult:
        """The outcome of a run that ended; raises ValueError on any other event."""
        if self.kind != "end":
            raise ValueError(f"a {self.kind} event is not a run's result")
        return RunResult.model_validate(self.data)

    def failure(self) -> RunError:
        """The error of a run that failed; raises ValueError on any other event."""
        if self.kind != "error":
            raise ValueError(f"a {self.kind} event is not a run's error")
        return RunError.model_validate(self.data)

    @property
    def is_final(self) -> bool:
        return self.kind in ("end", "error")
