"""The one way a run starts, whichever API asked for it: checked, built for the caller's tenant, claimed, submitted.

The v1 routes, the WebSocket, the OpenAI-compatible and the LangGraph-compatible APIs each turn
their own body into a :class:`NewRun` and hand it to :meth:`RunStarter.start`, so a run's tenant,
its ``user_id`` label, the input checks and the thread's multitask rule are decided in one place.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from threadline.events import RunRequested, StateEventKind

from threadline_gateway.auth import Principal
from threadline_gateway.errors import ApiError, invalid_field, nats_errors_as_503
from threadline_gateway.metrics import GatewayMetrics, RunMode
from threadline_gateway.run_bus import RunBus, RunRecord
from threadline_gateway.run_handle import RunHandle
from threadline_gateway.schemas import MultitaskStrategy, QueryRequest, ToolDecision, strip_blank


@dataclass(frozen=True)
class NewRun:
    """A run as a client asked for it, in any of the gateway's APIs, before the gateway has checked it."""

    input: str
    assistant_id: str = "agent"
    thread_id: str | None = None  # None: a new conversation, on a new thread
    user_id: str | None = None  # who the caller says asks; a JWT's subject wins over it
    metadata: Mapping[str, Any] = field(default_factory=dict)
    state_events: Sequence[StateEventKind] = ()
    resume: ToolDecision | None = None
    multitask: MultitaskStrategy = "reject"

    @classmethod
    def of(cls, body: QueryRequest) -> NewRun:
        return cls(
            input=body.input,
            assistant_id=body.assistant_id,
            thread_id=body.thread_id,
            user_id=body.user_id,
            resume=body.resume,
            multitask=body.multitask_strategy,
        )


def input_errors(text: str, max_chars: int) -> list[dict[str, str]]:
    """Field errors of a question's text (already stripped); empty when it may be run."""
    if not text:
        return [{"field": "input", "message": "must not be blank"}]
    if len(text) > max_chars:
        return [{"field": "input", "message": f"at most {max_chars} characters"}]
    return []


class RunStarter:
    def __init__(self, bus: RunBus, metrics: GatewayMetrics, max_input_chars: int) -> None:
        self.bus, self.metrics, self.max_input_chars = bus, metrics, max_input_chars

    async def start(self, principal: Principal, new: NewRun, mode: RunMode) -> RunHandle:
        """Check ``new``, claim its thread, store its owner and submit it; the handle follows its events.

        The run's tenant is always the caller's (never anything the body says). A 422 names a bad
        field, a 409 ``thread_busy`` refuses a busy thread (as ``new.multitask`` says), a 503 means
        NATS is unavailable. Once this returns the run is durable and counted as started in ``mode``.
        """
        run = self._request(principal, new)
        with nats_errors_as_503():
            await self.bus.start(run, new.multitask)
        self.metrics.run_started(mode)
        return RunHandle(RunRecord.of(run, new.multitask), self.bus, self.metrics)

    def _request(self, principal: Principal, new: NewRun) -> RunRequested:
        text = strip_blank(new.input)
        if new.resume is not None:
            if not new.thread_id:
                raise invalid_field("thread_id", "is required with resume: the thread whose run waits")
            if len(text) > self.max_input_chars:
                raise invalid_field("input", f"at most {self.max_input_chars} characters")
        elif errors := input_errors(text, self.max_input_chars):
            raise ApiError(422, "validation_error", "The request is not valid.", fields=errors)
        return RunRequested(
            run_id=str(uuid.uuid4()),
            thread_id=new.thread_id or str(uuid.uuid4()),
            tenant_id=principal.tenant_id,
            assistant_id=new.assistant_id,
            input=text,
            metadata={**new.metadata, **_user_label(principal, new.user_id)},
            state_events=list(new.state_events),
            resume=new.resume.model_dump(exclude_none=True) if new.resume else None,
        )


def _user_label(principal: Principal, claimed: str | None) -> dict[str, str]:
    """The run's ``user_id`` label: a token's subject, else what the (API-key) caller says."""
    user_id = principal.user_id or claimed
    return {"user_id": user_id} if user_id else {}
