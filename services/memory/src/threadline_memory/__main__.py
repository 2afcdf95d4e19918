"""``python -m threadline_memory``: serve checkpoints over gRPC until SIGTERM or SIGINT.

``python -m threadline_memory migrate`` creates or upgrades the schema and exits, so a
deployment can migrate once, before rolling out replicas (which also migrate at start-up,
one at a time, when nothing did it first).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import structlog
from threadline.lifecycle import serve_until_signalled
from threadline.logging import setup_logging

from threadline_memory.server import serve
from threadline_memory.settings import MemorySettings
from threadline_memory.storage import StorageUnavailable, open_storage

log = structlog.get_logger("threadline_memory")


async def migrate(settings: MemorySettings) -> int:
    """Run every pending migration (the saver's, the store's, the thread and assistant registries'); 0 when done."""
    async with open_storage(settings) as storage:
        try:
            await storage.setup()
        except StorageUnavailable as exc:
            log.error("migration failed", storage=storage.name, error=str(exc))
            return 1
        log.info("migrated", storage=storage.name)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m threadline_memory", description="Serve the memory service over gRPC, or migrate its schema."
    )
    commands = parser.add_subparsers(dest="command")
    migrating = commands.add_parser("migrate", help="create or upgrade the schema, then exit")
    migrating.add_argument(
        "--timeout-s",
        type=float,
        default=120.0,
        help="how long to wait for the database (to come up, and for each step); default 120",
    )
    args = parser.parse_args(argv)
    settings = MemorySettings()
    if args.command == "migrate":
        setup_logging("memory", settings.log_level, settings.log_format)
        # A migration may rebuild indexes and a job may start before the database: longer than a call's limit.
        sys.exit(asyncio.run(migrate(settings.model_copy(update={"db_timeout_s": args.timeout_s}))))
    serve_until_signalled("memory", settings, serve)


if __name__ == "__main__":
    main()
