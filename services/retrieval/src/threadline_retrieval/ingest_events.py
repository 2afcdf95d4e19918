"""Ingestion as JetStream events: take IngestRequested from the INGEST work queue, index, report, ack.

Every replica binds to one durable pull consumer, so each ingest is taken by one of them.
The message is acked only after every document is committed to its collection and the
IngestCompleted event is stored on the INGEST_EVENTS stream; a replica that dies before that
leaves the ingest to be redelivered, and redoing it is harmless (documents are replaced by id).
A request that can never succeed is reported IngestFailed and terminated, never redelivered.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import structlog
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy as ConsumerAckPolicy
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError
from opentelemetry import trace
from pydantic import ValidationError
from threadline.events import (
    IngestCompleted,
    IngestedDocument,
    IngestFailed,
    IngestFailureCode,
    IngestProgress,
    IngestRequested,
    parse_ingest_event,
)
from threadline.grpc import BadRequest
from threadline.ids import is_ingest_id
from threadline.nats import ensure_streams, ingest_stream_configs, keep_alive
from threadline.retrieval.v1 import retrieval_pb2
from threadline.telemetry import extract_context, inject_headers

from threadline_retrieval.catalog import DEFAULT_COLLECTION
from threadline_retrieval.collection import EmbeddingMismatch, LanguageMismatch
from threadline_retrieval.embeddings import EmbeddingUnavailable
from threadline_retrieval.service import Progress
from threadline_retrieval.settings import RetrievalSettings

ACK_WAIT_S = 60.0
IN_PROGRESS_EVERY_S = 15.0  # well inside ACK_WAIT_S, so a long ingest is never taken for a dead one
FETCH_TIMEOUT_S = 5.0
MAX_NAK_DELAY_S = 30.0
SHUTDOWN_GRACE_S = 20.0  # an ingest in flight at shutdown gets this long to finish before it is handed back
MAX_MESSAGE_CHARS = 1000
UNKNOWN_INGEST = "unknown"  # the subject token of failures of requests too broken to name their ingest

Ingest = Callable[[retrieval_pb2.IngestRequest, int, Progress], Awaitable[retrieval_pb2.IngestResponse]]
log = structlog.get_logger("threadline_retrieval.ingest")
tracer = trace.get_tracer("threadline_retrieval")


class IngestConsumer:
    """The durable consumer of ingest events; :meth:`start` and :meth:`stop` bracket the gRPC server's life."""

    def __init__(self, settings: RetrievalSettings, ingest: Ingest) -> None:
        self._settings = settings
        self._ingest = ingest
        self.topology = settings.topology()
        self._nc: NatsClient | None = None
        self.broker = NatsBroker(
            settings.nats_url,
            name="threadline-retrieval",
            max_reconnect_attempts=-1,
            logger=logging.getLogger("threadline_retrieval.nats"),
            log_level=logging.DEBUG,  # one line per message is noise; each ingest logs its own outcome
            graceful_timeout=SHUTDOWN_GRACE_S,
        )
        subscriber = self.broker.subscriber(
            self.topology.ingest_requested,
            stream=JStream(self.topology.ingest_stream, declare=False),  # declared by ensure_streams
            durable=self.topology.ingest_consumer,
            # One at a time: embedding already uses every core, and the queue keeps the rest durable.
            pull_sub=PullSub(batch_size=1, timeout=FETCH_TIMEOUT_S),
            config=ConsumerConfig(ack_policy=ConsumerAckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S),
            ack_policy=AckPolicy.MANUAL,
        )
        subscriber(self.handle)

    async def start(self) -> None:
        self._nc = await self.broker.connect()
        await ensure_streams(self._nc.jetstream(), self.topology, ingest_stream_configs(self.topology))
        await self.broker.start()
        log.info("ingest consumer ready", stream=self.topology.ingest_stream, consumer=self.topology.ingest_consumer)

    async def stop(self) -> None:
        """Stop taking ingests, let the one in flight finish (or hand it back), then drain the connection."""
        await self.broker.stop()
        self._nc = None

    async def handle(self, msg: NatsMessage) -> None:
        try:
            request = IngestRequested.model_validate_json(msg.body)
        except ValidationError as exc:
            ingest_id = _salvaged_id(msg.body, msg.headers)
            log.warning("malformed ingest request", ingest_id=ingest_id, error=_short(exc))
            await self._report(IngestFailed(ingest_id=ingest_id, code="invalid_request", message=_short(exc)))
            await msg.reject()  # terminated: redelivering cannot make it valid
            return
        with (
            tracer.start_as_current_span("ingest", context=extract_context(msg.headers), kind=trace.SpanKind.CONSUMER),
            structlog.contextvars.bound_contextvars(ingest_id=request.ingest_id, tenant_id=request.tenant_id),
        ):
            beating = asyncio.create_task(keep_alive(msg, IN_PROGRESS_EVERY_S))
            try:
                await self._work(request, msg)
            except asyncio.CancelledError:
                # Stopping mid-ingest: hand it back now rather than after ack_wait.
                await asyncio.shield(msg.nack())
                raise
            finally:
                beating.cancel()

    async def _work(self, request: IngestRequested, msg: NatsMessage) -> None:
        collection = request.collection or DEFAULT_COLLECTION
        attempt = msg.raw_message.metadata.num_delivered or 1
        if attempt > 1 and await self._already_completed(request.ingest_id):
            log.info("redelivered ingest had already completed; acking", attempt=attempt)
            await msg.ack_sync()
            return

        async def progress(done: int, total: int) -> None:
            event = IngestProgress(
                ingest_id=request.ingest_id,
                tenant_id=request.tenant_id,
                collection=collection,
                documents_done=done,
                documents_total=total,
            )
            # A plain publish: the stream captures it, and a lost progress report is not worth a round trip.
            assert self._nc is not None
            await self._nc.publish(self.topology.ingest_events(request.ingest_id), event.to_bytes())

        def failed(code: IngestFailureCode, message: str) -> IngestFailed:
            return IngestFailed(
                ingest_id=request.ingest_id,
                tenant_id=request.tenant_id,
                collection=collection,
                code=code,
                message=message[:MAX_MESSAGE_CHARS],
            )

        try:
            response = await self._ingest(_as_proto(request), self._settings.ingest_batch_documents, progress)
        except BadRequest as exc:
            outcome: IngestCompleted | IngestFailed = failed("invalid_request", str(exc))
        except EmbeddingMismatch as exc:
            outcome = failed("embedding_mismatch", str(exc))
        except LanguageMismatch as exc:
            outcome = failed("language_mismatch", str(exc))
        except EmbeddingUnavailable as exc:
            if attempt < self._settings.ingest_max_attempts:
                delay = min(2.0 ** (attempt - 1), MAX_NAK_DELAY_S)
                log.warning("embedding unavailable; redelivering", attempt=attempt, delay_s=delay, error=str(exc))
                await msg.nack(delay=delay)
                return
            outcome = failed("embedding_unavailable", str(exc))
        except Exception as exc:
            log.exception("ingest crashed")
            trace.get_current_span().record_exception(exc)
            outcome = failed("internal_error", "The retrieval service failed on this ingest.")
        else:
            outcome = IngestCompleted(
                ingest_id=request.ingest_id,
                tenant_id=request.tenant_id,
                collection=collection,
                documents=[
                    IngestedDocument(document_id=d.document_id, chunk_count=d.chunk_count) for d in response.documents
                ],
            )
        await self._report(outcome)
        if isinstance(outcome, IngestFailed):
            log.warning("ingest failed", code=outcome.code, error=outcome.message, attempt=attempt)
            trace.get_current_span().set_status(trace.Status(trace.StatusCode.ERROR, outcome.code))
            await msg.reject()
            return
        log.info("ingest completed", documents=len(request.documents), attempt=attempt)
        # Waits for the server's confirmation: once this returns the ingest cannot be handed out again.
        await msg.ack_sync()

    async def _report(self, event: IngestCompleted | IngestFailed) -> None:
        """Stored on INGEST_EVENTS before the request is acked, so an acked ingest always has its outcome."""
        assert self._nc is not None
        await self._nc.jetstream().publish(
            self.topology.ingest_events(event.ingest_id),
            event.to_bytes(),
            stream=self.topology.ingest_events_stream,
            headers=inject_headers(),
        )

    async def _already_completed(self, ingest_id: str) -> bool:
        assert self._nc is not None
        try:
            last = await self._nc.jetstream().get_last_msg(
                self.topology.ingest_events_stream, self.topology.ingest_events(ingest_id)
            )
        except NotFoundError:
            return False
        return last.data is not None and parse_ingest_event(last.data).kind == "completed"


def _as_proto(request: IngestRequested) -> retrieval_pb2.IngestRequest:
    return retrieval_pb2.IngestRequest(
        tenant_id=request.tenant_id,
        collection=request.collection,
        language=request.language,
        documents=[
            retrieval_pb2.Document(id=d.id, text=d.text, content_type=d.content_type, metadata=d.metadata)
            for d in request.documents
        ],
    )


def _salvaged_id(body: bytes, headers: dict[str, str]) -> str:
    """The id of an ingest whose request did not validate, so its sender still hears: the body's, the header's."""
    try:
        candidate = json.loads(body).get("ingest_id")
    except (ValueError, AttributeError):
        candidate = None
    for value in (candidate, headers.get("Nats-Msg-Id")):
        if isinstance(value, str) and is_ingest_id(value):
            return value
    return UNKNOWN_INGEST


def _short(exc: Exception) -> str:
    return str(exc)[:MAX_MESSAGE_CHARS]
