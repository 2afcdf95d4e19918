"""The agent's announcement of the graphs it serves to the memory service's assistant registry.

At start-up a worker sends ``RegisterGraphs`` with each graph's JSON schemas (input, output,
state, config, context) and its drawable structure (nodes and edges); the memory service stores
them and creates each graph's default assistant if it is missing. The call is idempotent, so
every replica makes it. Start-up makes one try; if the memory service is down the worker starts all
the same and tries again in the background (retries with backoff within one round, through a
memory breaker, then a new round every ``ROUND_EVERY_S``) until the service has answered once.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import structlog
from langgraph.pregel import Pregel
from pydantic import TypeAdapter
from threadline.grpc import traced_channel
from threadline.memory.v1 import memory_pb2, memory_pb2_grpc

from threadline_agent.resilience import CircuitOpen, Guarded, transient_grpc_error

log = structlog.get_logger("threadline.agent")
ROUND_EVERY_S = 5.0


def graph_schemas(graph_id: str, graph: Pregel | None) -> memory_pb2.GraphSchemas:
    """What the registry keeps of one graph; a schema that cannot be made is left out (empty)."""
    if graph is None:  # built per run, from the run's config: nothing to describe before a run
        return memory_pb2.GraphSchemas(graph_id=graph_id)

    def config_schema() -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # deprecated for context, still what config holds
            return graph.get_config_jsonschema()

    def state_schema() -> dict[str, Any] | None:
        builder = getattr(graph, "builder", None)
        state = getattr(builder, "state_schema", None)
        return TypeAdapter(state).json_schema() if state is not None else graph.get_output_jsonschema()

    makers: dict[str, Callable[[], Any]] = {
        "input_schema_json": graph.get_input_jsonschema,
        "output_schema_json": graph.get_output_jsonschema,
        "state_schema_json": state_schema,
        "config_schema_json": config_schema,
        "context_schema_json": graph.get_context_jsonschema,
        "graph_json": lambda: graph.get_graph().to_json(),
    }
    fields: dict[str, bytes] = {}
    for name, make in makers.items():
        try:
            value = make()
        except Exception as exc:  # a schema the graph's types cannot express: the others still go
            log.info("graph schema left out", graph=graph_id, schema=name, error=f"{type(exc).__name__}: {exc}")
            continue
        if isinstance(value, dict):
            fields[name] = json.dumps(value, default=str).encode()
    return memory_pb2.GraphSchemas(graph_id=graph_id, **fields)


async def register_graphs(
    stub: memory_pb2_grpc.AssistantServiceStub,
    graphs: Mapping[str, Pregel | None],
    *,
    guard: Guarded,
    timeout_s: float,
) -> list[str]:
    """One round: the graphs registered (retried on a transient failure); the default assistants' ids."""
    request = memory_pb2.RegisterGraphsRequest(graphs=[graph_schemas(gid, g) for gid, g in graphs.items()])
    reply = await guard.call(lambda: stub.RegisterGraphs(request, timeout=timeout_s))
    return [a.assistant_id for a in reply.assistants]


async def announce_graphs(
    target: str,
    graphs: Mapping[str, Pregel | None],
    *,
    guard: Guarded,
    timeout_s: float,
    every_s: float | None = None,
) -> asyncio.Task[list[str]]:
    """Register ``graphs`` until the memory service has taken them. The first try is made now, once (so a
    worker that starts with memory up serves registered graphs, and one that starts without it is not
    held up); the rest go on in the background. The task is returned, to cancel at shutdown."""
    every_s = every_s or ROUND_EVERY_S
    request = memory_pb2.RegisterGraphsRequest(graphs=[graph_schemas(gid, g) for gid, g in graphs.items()])

    async def register(guarded: Guarded | None) -> list[str]:
        # A channel per round: one that failed to connect would wait out gRPC's growing reconnect backoff.
        async with traced_channel(target) as channel:
            stub = memory_pb2_grpc.AssistantServiceStub(channel)
            call = lambda: stub.RegisterGraphs(request, timeout=timeout_s)  # noqa: E731
            reply = await (call() if guarded is None else guarded.call(call))
        return [a.assistant_id for a in reply.assistants]

    try:
        ids: list[str] | None = await register(None)
    except grpc.RpcError as exc:
        log.warning("graphs not registered yet; trying again in the background", error=_described(exc))
        ids = None

    async def until_done(ids: list[str] | None) -> list[str]:
        while ids is None:
            try:
                ids = await register(guard)
            except CircuitOpen as exc:  # the breaker says when to come back
                await asyncio.sleep(max(every_s, exc.retry_in_s))
            except grpc.RpcError as exc:
                if not transient_grpc_error(exc):
                    # Refused, not down: another round would be refused alike. Runs are unaffected.
                    log.error("graphs refused by the memory service's registry", error=_described(exc))
                    return []
                log.info("graphs not registered yet; trying again", error=_described(exc), retry_in_s=every_s)
                await asyncio.sleep(every_s)
        log.info("graphs registered", graphs=sorted(graphs), assistants=ids)
        return ids

    return asyncio.create_task(until_done(ids), name="announce-graphs")


def _described(exc: BaseException) -> str:
    code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
    return f"{code.name}: {exc.details()}" if isinstance(exc, grpc.aio.AioRpcError) and code else str(exc)[:200]
