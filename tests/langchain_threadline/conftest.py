"""A real retrieval service for the LangChain client, served from a thread of its own.

The standard suite calls the store's blocking methods from the test's thread, which would
deadlock against a server on the same event loop; a thread with its own loop serves both
those and the async tests.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from threadline_retrieval.embeddings import LocalEmbedder
from threadline_retrieval.server import serve
from threadline_retrieval.settings import RetrievalSettings


class ThreadedRetrieval:
    """``start()`` returns the bound port once the server is ready; ``stop()`` waits for a clean stop."""

    def __init__(self, data_dir: Path, embedder: LocalEmbedder | None = None) -> None:
        self._settings = RetrievalSettings(RETRIEVAL_HOST="127.0.0.1", RETRIEVAL_PORT=0, RETRIEVAL_DATA_DIR=data_dir)
        self._embedder = embedder
        self._port: Future[int] = Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="retrieval", daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with serve(self._settings, self._embedder) as port:
                self._port.set_result(port)
                await self._stop.wait()
        except BaseException as exc:
            if not self._port.done():
                self._port.set_exception(exc)
            raise

    def start(self, timeout_s: float = 120.0) -> int:
        self._thread.start()
        return self._port.result(timeout_s)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def retrieval_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a retrieval service over a fresh data directory, shared by a module's tests."""
    server = ThreadedRetrieval(tmp_path_factory.mktemp("retrieval"))
    port = server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def collection() -> str:
    """A collection no other test has written: each test starts from an empty store."""
    return "lc-" + uuid.uuid4().hex[:12]
