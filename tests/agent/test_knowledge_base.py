"""The knowledge-base tool when the retrieval service cannot be reached: an error result, not an exception."""

from __future__ import annotations

from langchain_core.messages import ToolMessage
from threadline.grpc import traced_channel
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_agent.graphs.knowledge_base import make_knowledge_base_tool

from tests.conftest import free_port


async def test_an_unreachable_retrieval_service_gives_an_error_tool_result() -> None:
    async with traced_channel(f"127.0.0.1:{free_port()}") as channel:
        kb = make_knowledge_base_tool(retrieval_pb2_grpc.RetrievalServiceStub(channel), k=4)
        call = {"name": kb.name, "args": {"query": "anything"}, "id": "c1", "type": "tool_call"}
        result = await kb.ainvoke(call, {"configurable": {"tenant_id": "acme"}})
    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert "could not be consulted" in result.content
    assert result.artifact is None
