"""``python -m threadline_memory``: serve checkpoints over gRPC until SIGTERM or SIGINT."""

from __future__ import annotations

from threadline.lifecycle import serve_until_signalled

from threadline_memory.server import serve
from threadline_memory.settings import MemorySettings


def main() -> None:
    serve_until_signalled("memory", MemorySettings(), serve)


if __name__ == "__main__":
    main()
