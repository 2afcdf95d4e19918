"""A liveness signal for a process that serves no port: a heartbeat file and its probe.

The worker touches the file while its NATS connection is up; ``python -m
threadline_agent.liveness`` (the Kubernetes exec probe) fails when the file is older
than ``--max-age`` seconds, so a worker wedged or cut off from NATS is restarted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_FILE = Path("/tmp/threadline-agent-alive")


async def beat(path: Path, is_alive: Callable[[], bool], every_s: float = 5.0) -> None:
    """Touch ``path`` every ``every_s`` seconds while ``is_alive()``; runs until cancelled."""
    while True:
        if is_alive():
            await asyncio.to_thread(path.touch)
        await asyncio.sleep(every_s)


def fresh(path: Path, max_age_s: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime <= max_age_s
    except FileNotFoundError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m threadline_agent.liveness", description=__doc__)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--max-age", type=float, default=30.0, help="seconds")
    args = parser.parse_args()
    sys.exit(0 if fresh(args.file, args.max_age) else 1)


if __name__ == "__main__":
    main()
