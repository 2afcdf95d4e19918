"""Event contracts: subjects per namespace and payloads that round-trip."""

from __future__ import annotations

import pytest
from threadline.events import RunRequested, Topology
from threadline.run_events import RunEvent, RunResult, Token


def test_subjects_and_streams_live_under_the_namespace() -> None:
    topology = Topology("acme-prod")
    assert topology.runs_requested_for("agent") == "acme-prod.runs.requested.agent"
    assert topology.runs_requested_wildcard == "acme-prod.runs.requested.>"
    assert topology.runs_consumer_for("agent") == "agent-workers-agent"
    assert topology.run_events("r1") == "acme-prod.run.r1.events"
    assert topology.run_events_wildcard == "acme-prod.run.*.events"
    assert topology.runs_stream == "ACME_PROD_RUNS"
    assert topology.run_events_stream == "ACME_PROD_RUN_EVENTS"


@pytest.mark.parametrize("namespace", ["", "Upper", "has.dot", "has space", "x" * 40, "9starts-with-digit"])
def test_a_namespace_that_would_break_subjects_is_refused(namespace: str) -> None:
    with pytest.raises(ValueError, match="invalid NATS namespace"):
        Topology(namespace)


@pytest.mark.parametrize("graph_id", ["", "has.dot", "has space", "a*", "a>", "-starts-with-dash", "x" * 65])
def test_a_graph_id_that_would_break_subjects_is_refused(graph_id: str) -> None:
    with pytest.raises(ValueError, match="invalid graph id"):
        Topology().runs_requested_for(graph_id)


def test_a_run_is_for_its_assistants_graph_unless_it_names_one() -> None:
    assert RunRequested(run_id="r", thread_id="t", tenant_id="a", assistant_id="research", input="hi").graph_id == (
        "research"
    )
    named = RunRequested(run_id="r", thread_id="t", tenant_id="a", assistant_id="mine", graph_id="agent", input="hi")
    assert named.graph_id == "agent"


def test_events_round_trip_and_carry_their_schema_version() -> None:
    run = RunRequested(run_id="r", thread_id="t", tenant_id="acme", input="hi")
    again = RunRequested.from_bytes(run.to_bytes())
    assert again == run
    assert again.schema_version == RunRequested.SCHEMA_VERSION == 1

    end = RunEvent.of("r", 3, RunResult(run_id="r", thread_id="t", assistant_id="agent", answer="a"))
    assert RunEvent.from_bytes(end.to_bytes()).is_final
    assert not RunEvent.of("r", 1, Token(text="a")).is_final
