"""Feedback on answers, stored in PostgreSQL: ``POST /api/v1/runs/{run_id}/feedback`` rates a run,
``GET /api/v1/feedback`` exports ratings as evaluation cases.

Feedback is kept per tenant, run and caller: sending it again replaces the caller's earlier
rating (200) instead of adding another (201). With the rating the gateway keeps what was rated:
the question (from the thread's checkpoint of that run), the answer and its citations (from the
run's final event), since a run's events expire after an hour and an evaluation case must not.
The export is the shape ``python -m evals --cases`` reads. Without ``DATABASE_URL`` there is
nowhere to keep feedback, and both routes say so with a 503 rather than dropping it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from nats.js.errors import NotFoundError
from threadline.ids import ID_PATTERN
from threadline.run_events import RunEvent

from threadline_gateway.auth import Principal
from threadline_gateway.deps import Bus, Caller, Db, MemoryClient
from threadline_gateway.errors import ApiError, nats_errors_as_503
from threadline_gateway.memory import Memory
from threadline_gateway.run_bus import RunBus
from threadline_gateway.schemas import (
    CasePassage,
    EvalCase,
    Feedback,
    FeedbackCases,
    FeedbackRequest,
    error_responses,
)

router = APIRouter(prefix="/api/v1", tags=["feedback"])
log = structlog.get_logger("threadline.gateway")

# A rating this low or lower is negative feedback: what the export's `negative` filter keeps.
NEGATIVE = 2
# Checkpoints read back to find the rated run's (newest first; a run writes a few per step).
HISTORY = 50
_REPLACED: dict[int | str, dict[str, Any]] = {
    200: {"model": Feedback, "description": "Replaced this caller's earlier feedback"}
}
_UPSERT = """
INSERT INTO gateway_feedback
    (tenant_id, run_id, thread_id, subject, rating, comment, assistant_id, question, answer, citations)
VALUES (%(tenant)s, %(run)s, %(thread)s, %(subject)s, %(rating)s, %(comment)s,
        %(assistant)s, %(question)s, %(answer)s, %(citations)s)
ON CONFLICT (tenant_id, run_id, subject)
DO UPDATE SET rating = EXCLUDED.rating, comment = EXCLUDED.comment, created_at = now()
RETURNING id, created_at, (xmax = 0) AS inserted
"""
_EXPORT = """
SELECT id, run_id, thread_id, assistant_id, rating, comment, question, answer, citations, created_at
FROM gateway_feedback
WHERE tenant_id = %(tenant)s AND id > %(after)s AND rating <= %(ceiling)s
  AND (%(subject)s::text IS NULL OR subject = %(subject)s)
  AND (%(assistant)s::text IS NULL OR assistant_id = %(assistant)s)
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
ORDER BY id LIMIT %(limit)s
"""


def _not_configured() -> ApiError:
    return ApiError(503, "not_configured", "Feedback is stored in PostgreSQL, and this gateway has no DATABASE_URL.")


async def _final_event(bus: RunBus, run_id: str) -> RunEvent | None:
    """The run's final event, None while it has not ended."""
    try:
        msg = await bus.js.get_last_msg(bus.topology.run_events_stream, bus.topology.run_events(run_id))
    except NotFoundError:
        return None
    event = RunEvent.model_validate_json(msg.data or b"")
    return event if event.is_final else None


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict)).strip()
    return ""


async def _question(memory: Memory, tenant_id: str, thread_id: str, run_id: str) -> str:
    """The last human message of the rated run's checkpoint; empty when it cannot be read (the rating counts still)."""
    try:
        checkpoints = await memory.history(tenant_id, thread_id, limit=HISTORY)
    except ApiError as exc:
        log.warning("feedback kept without its question", run_id=run_id, reason=exc.code)
        return ""
    for checkpoint in checkpoints:
        if checkpoint.metadata.get("run_id") == run_id:
            messages = checkpoint.values.get("messages") or []
            for message in reversed(messages):
                if isinstance(message, dict) and message.get("type") == "human":
                    return _text(message.get("content"))
            return ""
    return ""


@router.post(
    "/runs/{run_id}/feedback",
    status_code=201,
    response_model=Feedback,
    responses=_REPLACED | error_responses(404, 409),
)
async def give_feedback(
    run_id: str, body: FeedbackRequest, principal: Caller, bus: Bus, database: Db, memory: MemoryClient
) -> JSONResponse:
    """Rate a run's answer (1-5) with an optional comment; the run must be this tenant's and finished."""
    if database is None:
        raise _not_configured()
    with nats_errors_as_503():
        record = await bus.lookup(run_id, principal.tenant_id)
        if record is None:
            raise ApiError(404, "not_found", f"No run {run_id!r}.")
        final = await _final_event(bus, run_id)
    if final is None:
        raise ApiError(409, "run_not_finished", "The run has not finished; rate its answer once it has.")
    result = final.result() if final.kind == "end" else None
    citations = [
        CasePassage(document_id=c.document_id, chunk_id=c.chunk_id, text=c.text).model_dump()
        for c in (result.citations if result else [])
    ]
    async with database.connection() as conn:
        cur = await conn.execute(
            _UPSERT,
            {
                "tenant": principal.tenant_id,
                "run": run_id,
                "thread": record.thread_id,
                "subject": principal.subject,
                "rating": body.rating,
                "comment": body.comment,
                "assistant": record.assistant_id,
                "question": await _question(memory, principal.tenant_id, record.thread_id, run_id),
                "answer": result.answer if result else "",
                "citations": json.dumps(citations),
            },
        )
        row = await cur.fetchone()
    assert row is not None  # an upsert ... RETURNING yields the row it wrote
    feedback_id, created_at, inserted = row
    stored = Feedback(
        id=feedback_id,
        run_id=run_id,
        thread_id=record.thread_id,
        rating=body.rating,
        comment=body.comment,
        created_at=created_at,
    )
    return JSONResponse(stored.model_dump(mode="json"), status_code=201 if inserted else 200)


def _whose(principal: Principal) -> str | None:
    """Whose feedback the caller may export: an admin (or anyone, with authentication off) the tenant's."""
    if principal.kind == "anonymous" or "admin" in principal.roles:
        return None
    return principal.subject


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@router.get(
    "/feedback",
    response_model=FeedbackCases,
    responses=error_responses(422, 503)
    | {200: {"content": {"application/x-ndjson": {}}, "description": "A page of cases (JSONL with format=jsonl)"}},
)
async def export_feedback(
    principal: Caller,
    database: Db,
    negative: Annotated[bool, Query(description=f"Only ratings of {NEGATIVE} or less.")] = False,
    max_rating: Annotated[int | None, Query(ge=1, le=5, description="Only ratings up to this.")] = None,
    assistant_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    since: Annotated[datetime | None, Query(description="Given at or after (ISO 8601; UTC if no offset).")] = None,
    until: Annotated[datetime | None, Query(description="Given before (ISO 8601; UTC if no offset).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="A page's next_cursor.")] = None,
    output: Annotated[
        Literal["json", "jsonl"],
        Query(alias="format", description="jsonl: one case a line (next cursor in X-Next-Cursor)."),
    ] = "json",
) -> Response:
    """Rated answers as evaluation cases, oldest first: an admin's are the tenant's, anyone else's their own."""
    if database is None:
        raise _not_configured()
    ceiling = min(r for r in (max_rating, NEGATIVE if negative else None, 5) if r is not None)
    params = {
        "tenant": principal.tenant_id,
        "after": int(cursor or 0),
        "ceiling": ceiling,
        "subject": _whose(principal),
        "assistant": assistant_id,
        "since": _utc(since),
        "until": _utc(until),
        "limit": limit + 1,
    }
    async with database.connection() as conn:
        rows = await (await conn.execute(_EXPORT, params)).fetchall()
    cases = [
        EvalCase(
            id=f"feedback-{row[0]}",
            run_id=row[1],
            thread_id=row[2],
            assistant_id=row[3],
            rating=row[4],
            comment=row[5],
            question=row[6],
            answer=row[7],
            citations=[CasePassage.model_validate(c) for c in row[8]],
            created_at=row[9],
        )
        for row in rows[:limit]
    ]
    next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
    if output == "jsonl":
        body = "".join(case.model_dump_json() + "\n" for case in cases)
        headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
        return Response(body, media_type="application/x-ndjson", headers=headers)
    return JSONResponse(FeedbackCases(cases=cases, next_cursor=next_cursor).model_dump(mode="json"))
