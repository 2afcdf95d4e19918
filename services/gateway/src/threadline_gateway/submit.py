"""What every way of starting a run shares: the caller's tenant, input checks, the NATS error contract."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from nats.errors import Error as NatsError
from starlette.requests import HTTPConnection
from threadline.events import RunEvent, RunRequested

from threadline_gateway.auth import Principal, caller
from threadline_gateway.errors import ApiError, invalid_field
from threadline_gateway.runs import RunRecord
from threadline_gateway.schemas import QueryRequest, QueryResponse, strip_blank
from threadline_gateway.settings import GatewaySettings

log = structlog.get_logger("threadline.gateway")

# Agent error codes that are the caller's fault get a 4xx; any other failed run is a bad gateway.
_ERROR_STATUS = {
    "invalid_input": 422,
    "input_blocked": 422,
    "assistant_not_found": 404,
    "cancelled": 409,
    "nothing_to_resume": 409,
}


def caller_tenant(connection: HTTPConnection) -> str:
    """The tenant a request or WebSocket acts for: from its credential (or the default tenant while auth is off).

    Every run is created and looked up through this one function, so no route can pick a tenant of its own.
    """
    return caller(connection).tenant_id


def input_errors(text: str, settings: GatewaySettings) -> list[dict[str, str]]:
    """Field errors of a question's text (already stripped); empty when it may be run."""
    if not text:
        return [{"field": "input", "message": "must not be blank"}]
    if len(text) > settings.max_input_chars:
        return [{"field": "input", "message": f"at most {settings.max_input_chars} characters"}]
    return []


def new_run(body: QueryRequest, settings: GatewaySettings, principal: Principal) -> RunRequested:
    """A run for ``body``, or a 422 naming the field; a new conversation gets a new thread id."""
    text = strip_blank(body.input)
    if body.resume is not None:
        if not body.thread_id:
            raise invalid_field("thread_id", "is required with resume: the thread whose run waits")
        if len(text) > settings.max_input_chars:
            raise invalid_field("input", f"at most {settings.max_input_chars} characters")
    elif errors := input_errors(text, settings):
        raise ApiError(422, "validation_error", "The request is not valid.", fields=errors)
    return RunRequested(
        run_id=str(uuid.uuid4()),
        thread_id=body.thread_id or str(uuid.uuid4()),
        tenant_id=principal.tenant_id,
        assistant_id=body.assistant_id,
        input=text,
        metadata=user_metadata(principal, body.user_id),
        resume=body.resume.model_dump(exclude_none=True) if body.resume else None,
    )


def user_metadata(principal: Principal, claimed: object) -> dict[str, str]:
    """The run's ``user_id`` label: a token's subject, else what the (API-key) caller says."""
    user_id = principal.user_id or (claimed if isinstance(claimed, str) else None)
    return {"user_id": user_id} if user_id else {}


def unavailable() -> ApiError:
    return ApiError(
        503, "unavailable", "The message bus is unavailable; try again shortly.", headers={"Retry-After": "2"}
    )


@contextmanager
def nats_errors_as_503() -> Iterator[None]:
    """A NATS failure is the client's 503 with Retry-After, never a 500 or a hang."""
    try:
        yield
    except TimeoutError as exc:
        # TimeoutError is an OSError, but a run that is merely slow is the caller's 504, not a bus failure.
        if not isinstance(exc, NatsError):
            raise
        log.warning("nats unavailable", error=repr(exc))
        raise unavailable() from exc
    except (NatsError, ConnectionError, OSError) as exc:
        log.warning("nats unavailable", error=str(exc))
        raise unavailable() from exc


def final_response(record: RunRecord, final: RunEvent) -> QueryResponse:
    """The answer of a finished run, or its error as the API error a client can act on."""
    if final.kind == "error":
        code = str(final.data.get("code", "run_failed"))
        raise ApiError(
            _ERROR_STATUS.get(code, 502), code, str(final.data.get("message", "The run failed.")), run_id=record.run_id
        )
    data = final.data
    return QueryResponse(
        run_id=record.run_id,
        thread_id=record.thread_id,
        assistant_id=record.assistant_id,
        answer=data.get("answer", ""),
        citations=data.get("citations", []),
        model=data.get("model"),
        usage=data.get("usage") or {},
        status="interrupted" if data.get("status") == "interrupted" else "success",
        interrupts=data.get("interrupts") or [],
        knowledge_base_unavailable=bool(data.get("knowledge_base_unavailable")),
        cached=bool(data.get("cached")),
    )


def run_timeout(settings: GatewaySettings, record: RunRecord) -> ApiError:
    return ApiError(
        504,
        "run_timeout",
        f"The run did not finish within {settings.run_timeout_s:g} s; it goes on in the background.",
        run_id=record.run_id,
        thread_id=record.thread_id,
    )
