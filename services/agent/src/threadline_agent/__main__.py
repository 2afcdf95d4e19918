"""``python -m threadline_agent``: an agent worker on the RUNS work queue until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import sys

from threadline.logging import setup_logging
from threadline.telemetry import setup_tracing, shutdown_tracing

from threadline_agent.graphs.loader import GraphLoadError
from threadline_agent.remote.checkpointer import RemoteCheckpointSaver
from threadline_agent.remote.store import RemoteStore
from threadline_agent.settings import AgentSettings
from threadline_agent.worker.agent_worker import AgentWorker


def main() -> None:
    settings = AgentSettings()
    setup_logging("agent", settings.log_level, settings.log_format)
    provider = setup_tracing("agent")
    # Bound to no tenant: each call works in the tenant its run names.
    checkpointer = RemoteCheckpointSaver(
        target=settings.memory_target, timeout_s=settings.memory_timeout_s, guard=settings.guard("memory")
    )
    store = RemoteStore(target=settings.memory_target, timeout_s=settings.memory_timeout_s)
    try:
        worker = AgentWorker(settings, checkpointer=checkpointer, store=store if settings.memory_tools else None)
        worker.app.after_shutdown(checkpointer.close)
        worker.app.after_shutdown(store.close)
        # FastStream handles SIGINT/SIGTERM: it stops fetching, lets runs in flight finish (up to a grace
        # period), drains NATS, then runs the worker's shutdown hook that closes the gRPC channels.
        asyncio.run(worker.app.run())
    except GraphLoadError as exc:
        # A graph of langgraph.json that cannot be served: one readable line, not a traceback.
        sys.exit(f"threadline-agent: cannot start: {exc}")
    finally:
        shutdown_tracing(provider)


if __name__ == "__main__":
    main()
