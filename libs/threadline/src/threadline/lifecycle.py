"""The ``python -m threadline_<service>`` entry point every gRPC service shares."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from threadline.logging import setup_logging
from threadline.settings import ServiceSettings
from threadline.telemetry import setup_tracing, shutdown_tracing

S = TypeVar("S", bound=ServiceSettings)


def serve_until_signalled(
    service_name: str, settings: S, serve: Callable[[S], AbstractAsyncContextManager[Any]]
) -> None:
    """Log and trace as ``service_name``, run ``serve(settings)`` until SIGTERM or SIGINT, then stop it.

    ``serve`` owns the graceful part (stop with grace, close pools); this flushes spans last.
    """
    setup_logging(service_name, settings.log_level, settings.log_format)
    provider = setup_tracing(service_name)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with serve(settings):
            await stop.wait()

    try:
        asyncio.run(run())
    finally:
        shutdown_tracing(provider)
