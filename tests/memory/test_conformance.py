"""LangGraph's official checkpointer conformance suite, run against the remote saver talking to a
live memory service on PostgreSQL: to LangGraph, the service is just another checkpointer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_memory.server import serve

from tests.memory.conftest import memory_settings


async def test_the_remote_saver_passes_langgraphs_conformance_suite(database: str, tmp_path: Path) -> None:
    settings = memory_settings(database_url=database, sqlite_path=tmp_path / "unused.sqlite")
    async with serve(settings) as port:

        @checkpointer_test(name="threadline-memory")
        async def remote_saver() -> AsyncIterator[RemoteCheckpointSaver]:
            saver = RemoteCheckpointSaver(target=f"127.0.0.1:{port}", tenant_id="conformance")
            yield saver
            await saver.close()

        report = await validate(remote_saver)

    failures = {
        capability: result.failures
        for capability, result in report.results.items()
        if result.detected and result.passed is not True
    }
    assert not failures, failures
    passed = {c for c, r in report.results.items() if r.passed and r.tests_passed > 0}
    assert {c.value for c in BASE_CAPABILITIES} <= passed, report.results
