"""Spans for what happens inside a run: each LangGraph node, tool call and model call.

A LangChain callback handler, because the graph reports node, tool and model
boundaries there and nowhere else. Spans are parented explicitly through the
callbacks' run ids (callbacks may fire in other tasks, so the ambient context
cannot be relied on); the outermost ones hang under the span current at creation,
the worker's ``run`` span.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.outputs import LLMResult
from opentelemetry import context as otel_context
from opentelemetry import trace

tracer = trace.get_tracer("threadline.agent")


class SpanCallbacks(AsyncCallbackHandler):
    def __init__(self) -> None:
        self._root = otel_context.get_current()
        self._spans: dict[UUID, trace.Span] = {}
        # Chains that are not graph nodes get no span, but their children still need a parent.
        self._parents: dict[UUID, UUID | None] = {}

    def _start(self, name: str, run_id: UUID, parent_run_id: UUID | None, **attributes: Any) -> None:
        parent = parent_run_id
        while parent is not None and parent not in self._spans:
            parent = self._parents.get(parent)
        ctx = trace.set_span_in_context(self._spans[parent]) if parent is not None else self._root
        span = tracer.start_span(name, context=ctx, attributes={k: v for k, v in attributes.items() if v is not None})
        self._spans[run_id] = span

    def _end(self, run_id: UUID, error: BaseException | None = None) -> trace.Span | None:
        self._parents.pop(run_id, None)
        span = self._spans.pop(run_id, None)
        if span is not None:
            if error is not None:
                span.record_exception(error)
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
            span.end()
        return span

    async def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        node = (metadata or {}).get("langgraph_node")
        if node and kwargs.get("name") == node:
            # The superstep tells apart the runs of one node (the planner's execute, once per step).
            step = (metadata or {}).get("langgraph_step")
            self._start(f"node {node}", run_id, parent_run_id, **{"langgraph.node": node, "langgraph.step": step})
        else:
            self._parents[run_id] = parent_run_id

    async def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    async def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    async def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name", "tool")
        self._start(f"tool {name}", run_id, parent_run_id, **{"gen_ai.tool.name": name})

    async def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    async def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        model = (metadata or {}).get("ls_model_name") or kwargs.get("name") or "model"
        self._start(f"chat {model}", run_id, parent_run_id, **{"gen_ai.request.model": model})

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.get(run_id)
        if span is not None:
            usage = _usage(response)
            if usage:
                span.set_attribute("gen_ai.usage.input_tokens", usage.get("input_tokens", 0))
                span.set_attribute("gen_ai.usage.output_tokens", usage.get("output_tokens", 0))
        self._end(run_id)

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)


def _usage(response: LLMResult) -> dict[str, int]:
    for generations in response.generations:
        for generation in generations:
            message = getattr(generation, "message", None)
            if message is not None and getattr(message, "usage_metadata", None):
                return dict(message.usage_metadata)
    return {}
