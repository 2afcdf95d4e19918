"""No call of the agent falls back to a default tenant: without the run's tenant it fails, naming what is missing.

Each check comes before any network call, so these clients point at a port nobody listens on.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import ToolMessage
from langgraph.store.base import PutOp
from threadline.grpc import traced_channel
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_agent.graphs.knowledge_base import make_knowledge_base_tool
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_agent.remote.store import RemoteStore

from tests.conftest import free_port

THREAD = {"configurable": {"thread_id": "t1"}}


async def test_a_search_without_a_tenant_fails_the_run() -> None:
    async with traced_channel(f"127.0.0.1:{free_port()}") as channel:
        kb = make_knowledge_base_tool(retrieval_pb2_grpc.RetrievalServiceStub(channel), k=4)
        call = {"name": kb.name, "args": {"query": "anything"}, "id": "c1", "type": "tool_call"}
        # Not an error result the model would answer around: the run fails (internal_error), loudly.
        with pytest.raises(ValueError, match=r"configurable\.tenant_id"):
            await kb.ainvoke(call, {"configurable": {}})
        # With the tenant, the call is made (and fails as an outage the model reads).
        assert isinstance(await kb.ainvoke(call, {"configurable": {"tenant_id": "acme"}}), ToolMessage)


async def test_the_checkpointer_needs_the_runs_tenant_or_one_it_is_bound_to() -> None:
    saver = RemoteCheckpointSaver(target=f"127.0.0.1:{free_port()}", timeout_s=1)
    try:
        with pytest.raises(ValueError, match=r"configurable\.tenant_id"):
            await saver.aget_tuple(THREAD)
        with pytest.raises(ValueError, match="no tenant"):
            await saver.adelete_thread("t1")
        with pytest.raises(ValueError, match="no tenant"):
            saver.delete_thread("t1")
    finally:
        await saver.close()


async def test_the_store_needs_the_runs_tenant_or_one_it_is_bound_to() -> None:
    store = RemoteStore(target=f"127.0.0.1:{free_port()}", timeout_s=1)
    try:
        with pytest.raises(ValueError, match=r"configurable\.tenant_id"):
            await store.abatch([PutOp(("users", "ana", "memories"), "k", {"fact": "x"})])
    finally:
        await store.close()
