"""The retrieval service, started in-process on a free loopback port with the packaged local model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import grpc
import pytest
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_retrieval.embeddings import LocalEmbedder
from threadline_retrieval.server import serve
from threadline_retrieval.settings import RetrievalSettings

Server = Callable[..., AbstractAsyncContextManager[retrieval_pb2_grpc.RetrievalServiceStub]]


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    """Loaded once: the model takes seconds to load and is read-only."""
    return LocalEmbedder()


def retrieval_settings(data_dir: Path, **extra: object) -> RetrievalSettings:
    return RetrievalSettings(RETRIEVAL_HOST="127.0.0.1", RETRIEVAL_PORT=0, RETRIEVAL_DATA_DIR=data_dir, **extra)


@pytest.fixture
def start_retrieval(embedder: LocalEmbedder, tmp_path: Path) -> Server:
    """``async with start_retrieval(data_dir=...) as stub``: a server over ``data_dir`` (default: a temp dir)."""

    def start(data_dir: Path = tmp_path / "retrieval", **extra: object) -> AbstractAsyncContextManager:
        return _running(retrieval_settings(data_dir, **extra), embedder)

    return start


@asynccontextmanager
async def _running(
    settings: RetrievalSettings, embedder: LocalEmbedder
) -> AsyncIterator[retrieval_pb2_grpc.RetrievalServiceStub]:
    async with serve(settings, embedder) as port, grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel)


@pytest.fixture
async def retrieval(start_retrieval: Server) -> AsyncIterator[retrieval_pb2_grpc.RetrievalServiceStub]:
    async with start_retrieval() as stub:
        yield stub
