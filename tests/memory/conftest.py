"""The memory service, started in-process on a free loopback port, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_memory.server import serve
from threadline_memory.settings import MemorySettings


def memory_settings(*, database_url: str | None, sqlite_path: Path, **extra: object) -> MemorySettings:
    # Explicit arguments win over the environment, so a DATABASE_URL set in the shell cannot leak in.
    return MemorySettings(
        MEMORY_HOST="127.0.0.1", MEMORY_PORT=0, DATABASE_URL=database_url, MEMORY_SQLITE_PATH=sqlite_path, **extra
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def memory_target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """host:port of a running memory service; the PostgreSQL one has a database of its own."""
    database_url = request.getfixturevalue("database") if request.param == "postgres" else None
    settings = memory_settings(database_url=database_url, sqlite_path=tmp_path / "checkpoints.sqlite")
    async with serve(settings) as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture
async def saver(memory_target: str) -> AsyncIterator[RemoteCheckpointSaver]:
    saver = RemoteCheckpointSaver(target=memory_target, tenant_id="acme")
    yield saver
    await saver.close()


def echo_graph(saver: RemoteCheckpointSaver) -> CompiledStateGraph:
    """One node that says how many messages it has seen: enough to write real checkpoints."""

    def reply(state: MessagesState) -> dict:
        return {"messages": [AIMessage(f"seen {len(state['messages'])}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=saver)
