"""``POST /api/v1/runs/{run_id}/feedback``: a rating of an answer, stored in PostgreSQL.

Feedback is kept per tenant, run and caller: sending it again replaces the caller's earlier
rating (200) instead of adding another (201). Without ``DATABASE_URL`` there is nowhere to keep
it, and the route says so with a 503 rather than dropping it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from threadline_gateway.deps import Bus, Caller, Db
from threadline_gateway.errors import ApiError, nats_errors_as_503
from threadline_gateway.schemas import Feedback, FeedbackRequest, error_responses

router = APIRouter(prefix="/api/v1/runs", tags=["feedback"])

_REPLACED: dict[int | str, dict[str, Any]] = {
    200: {"model": Feedback, "description": "Replaced this caller's earlier feedback"}
}
_UPSERT = """
INSERT INTO gateway_feedback (tenant_id, run_id, thread_id, subject, rating, comment)
VALUES (%(tenant)s, %(run)s, %(thread)s, %(subject)s, %(rating)s, %(comment)s)
ON CONFLICT (tenant_id, run_id, subject)
DO UPDATE SET rating = EXCLUDED.rating, comment = EXCLUDED.comment, created_at = now()
RETURNING id, created_at, (xmax = 0) AS inserted
"""


@router.post(
    "/{run_id}/feedback",
    status_code=201,
    response_model=Feedback,
    responses=_REPLACED | error_responses(404, 409),
)
async def give_feedback(run_id: str, body: FeedbackRequest, principal: Caller, bus: Bus, database: Db) -> JSONResponse:
    """Rate a run's answer (1-5) with an optional comment; the run must be this tenant's and finished."""
    if database is None:
        raise ApiError(503, "not_configured", "Feedback is stored in PostgreSQL, and this gateway has no DATABASE_URL.")
    with nats_errors_as_503():
        record = await bus.lookup(run_id, principal.tenant_id)
        if record is None:
            raise ApiError(404, "not_found", f"No run {run_id!r}.")
        status = await bus.status(run_id)
    if status in ("pending", "running"):
        raise ApiError(409, "run_not_finished", "The run has not finished; rate its answer once it has.")
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
