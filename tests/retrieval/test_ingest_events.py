"""Ingestion over the machine's real JetStream: IngestRequested in, progress and an outcome out, searchable after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from threadline.events import IngestCompleted, IngestDocument, IngestRequested, Topology, parse_ingest_event
from threadline.nats import ensure_streams, ingest_stream_configs
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc
from threadline_retrieval.embeddings import EmbeddingUnavailable, LocalEmbedder
from threadline_retrieval.server import serve
from threadline_retrieval.settings import RetrievalSettings

from tests.conftest import NATS_URL
from tests.retrieval.conftest import Server, retrieval_settings

FACTS = [
    "The lighthouse keeper logs the weather every four hours.",
    "Sourdough needs a starter fed with flour and water.",
    "A JetStream work queue hands each message to one consumer.",
    "Glaciers carve valleys into a U shape.",
    "The violin has four strings tuned in fifths.",
]


@pytest.fixture
async def topology(nats_namespace: str, nc: NatsClient) -> AsyncIterator[Topology]:
    """The test's namespace; its ingest streams are deleted afterwards."""
    topology = Topology(nats_namespace)
    yield topology
    for stream in (topology.ingest_stream, topology.ingest_events_stream):
        try:
            await nc.jetstream().delete_stream(stream)
        except NotFoundError:
            pass


def with_events(start_retrieval: Server, topology: Topology, **extra: object):
    return start_retrieval(nats_url=NATS_URL, nats_namespace=topology.namespace, **extra)


async def publish(js: JetStreamContext, topology: Topology, ingest_id: str, body: bytes) -> None:
    await js.publish(topology.ingest_requested, body, headers={"Nats-Msg-Id": ingest_id})


def request(ingest_id: str, texts: list[str] = FACTS, tenant: str = "acme") -> bytes:
    documents = [IngestDocument(id=f"fact-{n}", text=t, metadata={"n": str(n)}) for n, t in enumerate(texts)]
    return IngestRequested(ingest_id=ingest_id, tenant_id=tenant, collection="facts", documents=documents).to_bytes()


async def events_until_outcome(js: JetStreamContext, topology: Topology, ingest_id: str, timeout_s: float = 60) -> list:
    """Every event of the ingest, from the INGEST_EVENTS stream, up to its completion or failure."""
    subscription = await js.subscribe(topology.ingest_events(ingest_id), ordered_consumer=True)
    events = []
    try:
        async with asyncio.timeout(timeout_s):
            while not events or events[-1].kind == "progress":
                events.append(parse_ingest_event((await subscription.next_msg(timeout=timeout_s)).data))
    finally:
        await subscription.unsubscribe()
    return events


async def assert_nothing_left(js: JetStreamContext, topology: Topology) -> None:
    """Acked or terminated: neither waiting, nor out for delivery, nor coming back."""
    await asyncio.sleep(0.5)
    consumer = await js.consumer_info(topology.ingest_stream, topology.ingest_consumer)
    assert (consumer.num_pending, consumer.num_ack_pending, consumer.num_redelivered) == (0, 0, 0)


async def settled(js: JetStreamContext, topology: Topology, deliveries: int, timeout_s: float = 30) -> None:
    """Wait until the consumer has made ``deliveries`` deliveries and holds none unacknowledged."""
    for _ in range(int(timeout_s * 10)):
        info = await js.consumer_info(topology.ingest_stream, topology.ingest_consumer)
        if info.delivered.consumer_seq >= deliveries and not (info.num_pending or info.num_ack_pending):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the ingest consumer did not settle after {deliveries} deliveries: {info}")


async def test_an_ingest_event_is_indexed_with_progress_then_completion(
    start_retrieval: Server, topology: Topology, nc: NatsClient
) -> None:
    js = nc.jetstream()
    async with with_events(start_retrieval, topology, RETRIEVAL_INGEST_BATCH=2) as stub:
        await publish(js, topology, "ing-1", request("ing-1"))
        events = await events_until_outcome(js, topology, "ing-1")
        assert [(e.kind, getattr(e, "documents_done", None)) for e in events] == [
            ("progress", 2),
            ("progress", 4),
            ("completed", None),
        ]
        completed = events[-1]
        assert (completed.tenant_id, completed.collection) == ("acme", "facts")
        assert [(d.document_id, d.chunk_count) for d in completed.documents] == [(f"fact-{n}", 1) for n in range(5)]
        hits = (await stub.Search(pb.SearchRequest(tenant_id="acme", collection="facts", query="violin", k=1))).hits
        assert (hits[0].document_id, hits[0].metadata["n"]) == ("fact-4", "4")
        await assert_nothing_left(js, topology)


@pytest.mark.parametrize(
    ("ingest_id", "body", "reported_as"),
    [
        ("bad-json", b"{not json", "bad-json"),  # named by its Nats-Msg-Id header
        ("bad-empty", b'{"ingest_id": "bad-empty", "tenant_id": "acme", "documents": []}', "bad-empty"),
        ("bad-tenant", request("bad-tenant", tenant="../etc"), "bad-tenant"),
        ("has a space", b"[]", "unknown"),  # nothing names it: reported on the "unknown" subject
    ],
)
async def test_a_malformed_ingest_is_reported_failed_and_terminated(
    start_retrieval: Server, topology: Topology, nc: NatsClient, ingest_id: str, body: bytes, reported_as: str
) -> None:
    js = nc.jetstream()
    async with with_events(start_retrieval, topology) as stub:
        outcome = asyncio.ensure_future(events_until_outcome(js, topology, reported_as))
        await asyncio.sleep(0.2)  # subscribed before it is published, as a client waiting for it would be
        await publish(js, topology, ingest_id, body)
        (failed,) = await outcome
        assert (failed.kind, failed.code) == ("failed", "invalid_request")
        assert failed.message
        await assert_nothing_left(js, topology)
        # The consumer goes on with the next ingest.
        await publish(js, topology, "good", request("good", FACTS[:1]))
        assert (await events_until_outcome(js, topology, "good"))[-1].kind == "completed"
        assert (await stub.ListDocuments(pb.ListDocumentsRequest(tenant_id="acme", collection="facts"))).total == 1


async def test_an_ingest_sent_while_retrieval_is_down_is_indexed_once_it_starts(
    start_retrieval: Server, topology: Topology, nc: NatsClient
) -> None:
    js = nc.jetstream()
    await ensure_streams(js, topology, ingest_stream_configs(topology))
    await publish(js, topology, "early", request("early"))
    await publish(js, topology, "early", request("early"))  # re-sent: dropped as a duplicate by its id
    async with with_events(start_retrieval, topology) as stub:
        assert (await events_until_outcome(js, topology, "early"))[-1].kind == "completed"
        await assert_nothing_left(js, topology)
        hits = (await stub.Search(pb.SearchRequest(tenant_id="acme", collection="facts", query="sourdough", k=1))).hits
        assert hits[0].document_id == "fact-1"


def test_ingest_events_only_where_nats_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_URL", raising=False)
    assert not RetrievalSettings().ingest_events
    monkeypatch.setenv("NATS_URL", NATS_URL)
    assert RetrievalSettings().ingest_events


async def test_stopping_lets_the_ingest_in_flight_finish_before_the_connection_drains(
    start_retrieval: Server, topology: Topology, nc: NatsClient
) -> None:
    js = nc.jetstream()
    texts = [f"Note {n}: the harbour crane lifted container number {n * 7}." for n in range(120)]
    subject = topology.ingest_events("long")
    async with with_events(start_retrieval, topology, RETRIEVAL_INGEST_BATCH=1):
        subscription = await js.subscribe(subject, ordered_consumer=True)
        await publish(js, topology, "long", request("long", texts))
        first = parse_ingest_event((await subscription.next_msg(timeout=60)).data)
        await subscription.unsubscribe()
        assert first.kind == "progress"
        last = await js.get_last_msg(topology.ingest_events_stream, subject)
        assert parse_ingest_event(last.data).kind == "progress"  # still in flight as the stop begins
    # The stop waited for it: complete and acked, neither half done nor pending.
    last = await js.get_last_msg(topology.ingest_events_stream, subject)
    assert parse_ingest_event(last.data).kind == "completed"
    await assert_nothing_left(js, topology)


class OutageEmbedder:
    """The packaged model behind an endpoint that refuses the first ``failures`` calls (this test's outage)."""

    def __init__(self, model: LocalEmbedder, failures: int) -> None:
        self._model, self.failures = model, failures
        self.model_name, self.model_version, self.dimension = model.model_name, model.model_version, model.dimension

    async def embed(self, texts: list[str]) -> np.ndarray:
        if self.failures > 0:
            self.failures -= 1
            raise EmbeddingUnavailable("embedding endpoint failed: connection refused")
        return await self._model.embed(texts)


@pytest.mark.parametrize(("failures", "outcome"), [(1, "completed"), (5, "failed")])
async def test_an_embedding_outage_is_retried_then_reported(
    embedder: LocalEmbedder, tmp_path: Path, topology: Topology, nc: NatsClient, failures: int, outcome: str
) -> None:
    js = nc.jetstream()
    settings = retrieval_settings(
        tmp_path, nats_url=NATS_URL, nats_namespace=topology.namespace, RETRIEVAL_INGEST_MAX_ATTEMPTS=2
    )
    outage = OutageEmbedder(embedder, failures)
    async with serve(settings, outage):
        await publish(js, topology, "outage", request("outage", FACTS[:2]))
        event = (await events_until_outcome(js, topology, "outage"))[-1]
        assert event.kind == outcome
        if outcome == "failed":
            assert (event.code, event.message) == (
                "embedding_unavailable",
                "embedding endpoint failed: connection refused",
            )
        assert outage.failures == max(failures - 2, 0)  # delivered twice: RETRIEVAL_INGEST_MAX_ATTEMPTS
        await assert_nothing_left(js, topology)


async def test_a_redelivered_ingest_that_had_completed_is_acked_not_redone(
    embedder: LocalEmbedder, tmp_path: Path, topology: Topology, nc: NatsClient
) -> None:
    js = nc.jetstream()
    settings = retrieval_settings(tmp_path, nats_url=NATS_URL, nats_namespace=topology.namespace)
    outage = OutageEmbedder(embedder, failures=1)  # the first delivery is handed back, with a second's delay
    async with serve(settings, outage) as port, grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await publish(js, topology, "again", request("again", FACTS[:2]))
        # Meanwhile the outcome appears, as if a replica had finished it and died before its ack.
        done = IngestCompleted(ingest_id="again", tenant_id="acme", collection="facts", documents=[])
        await js.publish(topology.ingest_events("again"), done.to_bytes())
        await settled(js, topology, deliveries=2)
        assert outage.failures == 0
        await assert_nothing_left(js, topology)
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        listed = await stub.ListDocuments(pb.ListDocumentsRequest(tenant_id="acme", collection="facts"))
        assert listed.total == 0  # acked on sight of its outcome, not indexed a second time


def in_language(ingest_id: str, text: str, language: str) -> bytes:
    documents = [IngestDocument(id=f"{ingest_id}.txt", text=text)]
    event = IngestRequested(
        ingest_id=ingest_id, tenant_id="acme", collection="lang", language=language, documents=documents
    )
    return event.to_bytes()


async def test_an_ingest_events_language_stems_a_new_collection_and_another_is_reported_as_a_mismatch(
    start_retrieval: Server, topology: Topology, nc: NatsClient
) -> None:
    js = nc.jetstream()
    async with with_events(start_retrieval, topology) as stub:
        await publish(js, topology, "fr", in_language("fr", "Les chevaux mangeaient du foin.", "french"))
        assert (await events_until_outcome(js, topology, "fr"))[-1].kind == "completed"
        # French stems: "cheval" finds "chevaux", which an English index would not.
        search = pb.SearchRequest(tenant_id="acme", collection="lang", query="cheval", mode=pb.SEARCH_MODE_KEYWORD)
        assert [h.document_id for h in (await stub.Search(search)).hits] == ["fr.txt"]

        await publish(js, topology, "en", in_language("en", "The horses ate hay.", "english"))
        (failed,) = [e for e in await events_until_outcome(js, topology, "en") if e.kind != "progress"]
        assert (failed.kind, failed.code) == ("failed", "language_mismatch")
        assert "is in french, not english" in failed.message
        await assert_nothing_left(js, topology)
        listed = await stub.ListDocuments(pb.ListDocumentsRequest(tenant_id="acme", collection="lang"))
        assert [d.document_id for d in listed.documents] == ["fr.txt"]
