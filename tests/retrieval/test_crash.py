"""SIGKILL the retrieval service in the middle of a stream of ingests: after a restart every
acknowledged document is searchable, whole, and no document is there in part."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import grpc
from threadline.grpc import check_health
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc

from tests.conftest import free_port

PARAGRAPHS = 3  # each paragraph a chunk of its own at CHUNK_SIZE=100
ACKED_BEFORE_KILL = 12


def _document(n: int) -> pb.Document:
    text = "\n\n".join(f"Paragraph {p} of document {n}: marker{n}x{p} and padding words." for p in range(PARAGRAPHS))
    return pb.Document(id=f"doc-{n}", text=text)


async def _start(data_dir: Path, port: int) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "RETRIEVAL_HOST": "127.0.0.1",
        "RETRIEVAL_PORT": str(port),
        "RETRIEVAL_DATA_DIR": str(data_dir),
        "CHUNK_SIZE": "100",
        "CHUNK_OVERLAP": "0",
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "threadline_retrieval", env=env)
    for _ in range(600):
        if await check_health(f"127.0.0.1:{port}", timeout=1):
            return proc
        assert proc.returncode is None, "the retrieval service exited while starting"
        await asyncio.sleep(0.1)
    raise AssertionError("the retrieval service did not become ready")


async def _chunks_of(stub: retrieval_pb2_grpc.RetrievalServiceStub, n: int) -> int:
    request = pb.SearchRequest(
        tenant_id="acme", query=f"document {n}", k=10, mode=pb.SEARCH_MODE_KEYWORD, filter={"document_id": f"doc-{n}"}
    )
    return len((await stub.Search(request, timeout=30)).hits)


async def test_every_acknowledged_document_survives_sigkill_whole(tmp_path: Path) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    proc = await _start(tmp_path, port)
    acked: set[int] = set()
    sent = 0
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)

            async def ingest(n: int) -> None:
                request = pb.IngestRequest(tenant_id="acme", documents=[_document(n)])
                try:
                    await stub.Ingest(request, timeout=60)
                except grpc.aio.AioRpcError:
                    return  # in flight when the process died: never acknowledged
                acked.add(n)

            in_flight: set[asyncio.Task] = set()
            while len(acked) < ACKED_BEFORE_KILL:
                while len(in_flight) < 4:
                    in_flight.add(asyncio.create_task(ingest(sent)))
                    sent += 1
                _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            proc.kill()  # SIGKILL with ingests still in flight
            await proc.wait()
            await asyncio.gather(*in_flight)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    proc = await _start(tmp_path, port)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            found = {n: await _chunks_of(stub, n) for n in range(sent)}
    finally:
        proc.terminate()
        await proc.wait()

    assert len(acked) >= ACKED_BEFORE_KILL and sent > len(acked), "the kill must catch ingests in flight"
    assert all(found[n] == PARAGRAPHS for n in acked), {n: found[n] for n in acked if found[n] != PARAGRAPHS}
    # In flight at the kill: stored whole (committed before the ack could be sent) or not at all.
    assert all(found[n] in (0, PARAGRAPHS) for n in range(sent)), found
