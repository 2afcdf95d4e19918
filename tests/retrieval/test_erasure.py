"""Erasure over the machine's real JetStream: a DataErased for a tenant deletes its collections, files and all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from threadline.events import DataErased, Topology
from threadline.nats import ensure_streams, erasure_stream_config
from threadline.retrieval.v1 import retrieval_pb2 as pb

from tests.conftest import NATS_URL
from tests.retrieval.conftest import Server

# Past the exact-search threshold below, so the collection saves an IVF index file beside its SQLite file.
MANY = [pb.Document(id=f"note-{n}", text=f"Note {n}: the depot ships parcel batch {n} on weekdays.") for n in range(60)]
FEW = [
    pb.Document(id="ops.md", text="Restart the ingest workers after a deploy.", metadata={"user_id": "u-1"}),
    pb.Document(id="menu.md", text="The canteen serves soup on Fridays.", metadata={"user_id": "u-2"}),
]


@pytest.fixture
async def topology(nats_namespace: str, nc: NatsClient) -> AsyncIterator[Topology]:
    """The test's own namespace with its ERASURE stream, deleted afterwards."""
    topology = Topology(nats_namespace)
    await ensure_streams(nc.jetstream(), topology, [erasure_stream_config(topology)])
    yield topology
    for stream in (topology.erasure_stream, topology.ingest_stream, topology.ingest_events_stream):
        try:
            await nc.jetstream().delete_stream(stream)
        except NotFoundError:
            pass


async def ingest(stub, tenant: str, collection: str, documents: list[pb.Document]) -> None:
    await stub.Ingest(pb.IngestRequest(tenant_id=tenant, collection=collection, documents=documents))


async def names(stub, tenant: str) -> list[str]:
    return [c.name for c in (await stub.ListCollections(pb.ListCollectionsRequest(tenant_id=tenant))).collections]


async def erased(nc: NatsClient, topology: Topology, timeout_s: float = 30) -> None:
    """Wait until the retrieval service's durable consumer has acked every erasure."""
    js = nc.jetstream()
    async with asyncio.timeout(timeout_s):
        while True:
            info = await js.consumer_info(topology.erasure_stream, "retrieval-erasure")
            if info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq > 0:
                return
            await asyncio.sleep(0.1)


async def appears(path: Path, timeout_s: float = 60) -> None:
    async with asyncio.timeout(timeout_s):
        while not path.exists():  # noqa: ASYNC110, ASYNC240 - a file, not an event of this process
            await asyncio.sleep(0.1)


async def test_a_tenant_erasure_deletes_its_collections_and_files(
    start_retrieval: Server, tmp_path: Path, topology: Topology, nc: NatsClient
) -> None:
    data_dir = tmp_path / "data"
    settings = {"nats_url": NATS_URL, "nats_namespace": topology.namespace, "RETRIEVAL_EXACT_MAX_CHUNKS": 50}
    async with start_retrieval(data_dir=data_dir, **settings) as stub:
        await ingest(stub, "acme", "notes", MANY)
        await ingest(stub, "acme", "ops", FEW)
        await ingest(stub, "globex", "ops", FEW)
        await appears(data_dir / "acme" / "notes.faiss")  # the IVF index is built in the background
        assert await names(stub, "acme") == ["notes", "ops"]

        event = DataErased(tenant_id="acme", threads=0, store_items=0)
        await nc.jetstream().publish(topology.erasure, event.to_bytes(), stream=topology.erasure_stream)
        await erased(nc, topology)

        assert await names(stub, "acme") == []
        assert not (data_dir / "acme").exists()  # SQLite, WAL and FAISS files alike
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.Search(pb.SearchRequest(tenant_id="acme", collection="ops", query="deploy"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        # Another tenant is untouched.
        assert await names(stub, "globex") == ["ops"]
        hits = (await stub.Search(pb.SearchRequest(tenant_id="globex", collection="ops", query="deploy"))).hits
        assert hits[0].document_id == "ops.md"

        # Redelivered (or published twice): acked again, nothing else changes; the tenant can start afresh after.
        await nc.jetstream().publish(topology.erasure, event.to_bytes(), stream=topology.erasure_stream)
        await erased(nc, topology)
        await ingest(stub, "acme", "ops", FEW[:1])
        assert await names(stub, "acme") == ["ops"]
        assert await names(stub, "globex") == ["ops"]


async def test_a_user_erasure_deletes_the_documents_of_that_user(
    start_retrieval: Server, topology: Topology, nc: NatsClient
) -> None:
    async with start_retrieval(nats_url=NATS_URL, nats_namespace=topology.namespace) as stub:
        await ingest(stub, "acme", "ops", FEW)
        await ingest(stub, "acme", "more", FEW)
        await ingest(stub, "globex", "ops", FEW)
        event = DataErased(tenant_id="acme", user_id="u-1", threads=0, store_items=0)
        await nc.jetstream().publish(topology.erasure, event.to_bytes(), stream=topology.erasure_stream)
        await erased(nc, topology)
        for tenant, left in (("acme", ["menu.md"]), ("globex", ["menu.md", "ops.md"])):
            for collection in await names(stub, tenant):
                listed = await stub.ListDocuments(pb.ListDocumentsRequest(tenant_id=tenant, collection=collection))
                assert [d.document_id for d in listed.documents] == left


async def test_delete_collection_removes_one_collection(start_retrieval: Server, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with start_retrieval(data_dir=data_dir) as stub:
        await ingest(stub, "acme", "ops", FEW)
        await ingest(stub, "acme", "keep", FEW)
        request = pb.DeleteCollectionRequest(tenant_id="acme", collection="ops")
        assert (await stub.DeleteCollection(request)).deleted
        assert not (await stub.DeleteCollection(request)).deleted  # a retry finds nothing, and is no error
        assert await names(stub, "acme") == ["keep"]
        assert {p.name for p in (data_dir / "acme").iterdir()} == {f"keep.sqlite3{s}" for s in ("", "-shm", "-wal")}
        with pytest.raises(grpc.aio.AioRpcError) as unnamed:
            await stub.DeleteCollection(pb.DeleteCollectionRequest(tenant_id="acme"))
        assert unnamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
