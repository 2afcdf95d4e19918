"""A run's outcome as the v1 API answers it: the answer, or the failure as an error a client can act on."""

from __future__ import annotations

from threadline.run_events import RunError, RunResult

from threadline_gateway.errors import ApiError
from threadline_gateway.run_bus import RunOutcome, RunRecord
from threadline_gateway.schemas import QueryResponse

# Agent error codes that are the caller's fault get a 4xx; any other failed run is a bad gateway.
_ERROR_STATUS = {
    "invalid_input": 422,
    "input_blocked": 422,
    "assistant_not_found": 404,
    "cancelled": 409,
    "nothing_to_resume": 409,
    # The graph's state has no messages: it takes its input as JSON, not a question's text.
    "graph_takes_no_messages": 422,
    # The request's output schema cannot be filled here (the offline answerer fills only its cited-answer schema).
    "output_schema_unsupported": 422,
    # "output_invalid" stays a 502: the request was sound, the model (the gateway's upstream) failed to meet it.
}


def result_of(record: RunRecord, outcome: RunOutcome) -> RunResult:
    """The result of a run that ended; its failure raised as the API error a client can act on."""
    if isinstance(outcome, RunError):
        status = _ERROR_STATUS.get(outcome.code, 502)
        raise ApiError(status, outcome.code, outcome.message or "The run failed.", run_id=record.run_id)
    return outcome


def answer(record: RunRecord, outcome: RunOutcome) -> QueryResponse:
    """The v1 API's answer of a run that ended; its failure raised as the API error."""
    result = result_of(record, outcome)
    return QueryResponse(
        run_id=record.run_id,
        thread_id=record.thread_id,
        assistant_id=record.assistant_id,
        answer=result.answer,
        citations=result.citations,
        model=result.model,
        usage=result.usage.model_dump(mode="json"),
        status=result.status,
        interrupts=result.interrupts,
        knowledge_base_unavailable=result.knowledge_base_unavailable,
        cached=result.cached,
        # A run has one or the other: the structured answer of a conversation, or a graph's final values.
        output=result.structured_response if result.structured_response is not None else result.output,
    )
