"""Schemathesis fuzzes every operation of the OpenAPI document against a served gateway on real NATS and PostgreSQL.

It checks what a client may rely on: no 5xx but the documented 504 of a run nobody works on (no agent runs
here), every status, header and body as documented.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, positive_data_acceptance
from threadline_gateway.settings import GatewaySettings

from tests.conftest import NATS_URL, REDIS_URL
from tests.gateway import auth_helpers as creds
from tests.gateway.conftest import served_gateway


@pytest.fixture(scope="module")
def served(session_database: str, retrieval_target: str, memory_target: str) -> Iterator[str]:
    gateway_settings = GatewaySettings(
        NATS_URL=NATS_URL,
        NATS_NAMESPACE="fz" + uuid.uuid4().hex[:8],
        DATABASE_URL=session_database,
        REDIS_URL=REDIS_URL,  # rate limits, and the usage counters GET /api/v1/usage reads
        RETRIEVAL_TARGET=retrieval_target,
        MEMORY_TARGET=memory_target,
        GATEWAY_AUTH="required",
        GATEWAY_JWT_SECRET=creds.SECRET,
        # No agent runs here: waiting routes answer their documented 504 / stream timeout quickly.
        GATEWAY_RUN_TIMEOUT_S=0.2,
        GATEWAY_SSE_PING_S=0.1,
    )
    with served_gateway(gateway_settings) as url:
        yield url


def fuzz(operation, auth: dict[str, str]) -> None:
    excluded = [not_a_server_error]
    if operation.path == "/v1/chat/completions":
        # "The last message is the user's" cannot be said in JSON Schema; the 422 names the rule instead.
        excluded.append(positive_data_acceptance)
    if operation.path == "/api/v1/documents" and operation.method.upper() == "POST":
        # Nor can "each file is non-empty UTF-8 text of a supported type": a 415 or 422 names the rule.
        excluded.append(positive_data_acceptance)
    if operation.path.startswith("/langgraph/store/") and operation.method.upper() in ("PUT", "POST"):
        # Nor "a value's integers fit 64 bits and its strings hold no NUL", what the stores can keep: a 422 says so.
        excluded.append(positive_data_acceptance)
    if operation.path in ("/api/v1/query", "/api/v1/runs", "/api/v1/runs/stream"):
        # Nor "output_schema is a valid JSON Schema": the meta-schema is too recursive to generate from, and a
        # random object ({"if": []}) is not one; the 422 names the keyword and the path within the schema.
        excluded.append(positive_data_acceptance)
    langgraph = operation.path.startswith("/langgraph/")
    if langgraph and operation.path.endswith(("/runs", "/runs/stream", "/runs/wait", "/runs/crons")):
        # Nor "the input holds a user message", nor that the thread must exist first, nor a cron's schedule.
        excluded.append(positive_data_acceptance)

    # The LangGraph routes are many and thin over the same code: fewer examples each keep the run short.
    @given(case=operation.as_strategy())
    @settings(
        max_examples=15 if langgraph else 40, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case) -> None:
        # 504 is the documented answer of a run nobody works on; any other 5xx is a bug.
        response = case.call_and_validate(headers=auth, excluded_checks=excluded)
        assert response.status_code < 500 or response.status_code == 504, (response.status_code, response.text)

    check()


def test_no_operation_breaks_its_contract(served: str) -> None:
    # Driven through Hypothesis directly: schemathesis' pytest plugin does not load under this pytest.
    api = schemathesis.openapi.from_url(f"{served}/openapi.json")
    # Authenticated as a real client would be; schemathesis also retries without it and expects a 401.
    auth = creds.bearer(creds.hs256(tenant="fuzz", ttl=3600))
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10
    failures: dict[str, str] = {}
    for operation in operations:
        try:
            fuzz(operation, auth)
        except Exception as exc:
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
