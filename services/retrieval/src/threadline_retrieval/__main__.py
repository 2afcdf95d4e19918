"""``python -m threadline_retrieval``: serve search over gRPC until SIGTERM or SIGINT."""

from __future__ import annotations

from threadline.lifecycle import serve_until_signalled

from threadline_retrieval.server import serve
from threadline_retrieval.settings import RetrievalSettings


def main() -> None:
    serve_until_signalled("retrieval", RetrievalSettings(), serve)


if __name__ == "__main__":
    main()
