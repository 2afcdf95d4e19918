"""``python -m threadline_retrieval``: serve search over gRPC until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

from threadline.logging import setup_logging
from threadline.telemetry import setup_tracing, shutdown_tracing

from threadline_retrieval.server import serve
from threadline_retrieval.settings import RetrievalSettings


async def _run(settings: RetrievalSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(settings):
        await stop.wait()


def main() -> None:
    settings = RetrievalSettings()
    setup_logging("retrieval", settings.log_level, settings.log_format)
    provider = setup_tracing("retrieval")
    try:
        asyncio.run(_run(settings))
    finally:
        shutdown_tracing(provider)


if __name__ == "__main__":
    main()
