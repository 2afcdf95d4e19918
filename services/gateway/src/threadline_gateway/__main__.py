"""``python -m threadline_gateway``: serve the public API with uvicorn."""

from __future__ import annotations

import uvicorn
from threadline.logging import setup_logging
from threadline.telemetry import setup_tracing, shutdown_tracing

from threadline_gateway.app import create_app
from threadline_gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    setup_logging("gateway", settings.log_level, settings.log_format)
    provider = setup_tracing("gateway")
    try:
        # uvicorn handles SIGINT/SIGTERM: it stops accepting, finishes in-flight requests, then runs the lifespan exit.
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)
    finally:
        shutdown_tracing(provider)


if __name__ == "__main__":
    main()
