"""Uploads indexed in the background: published to the retrieval service's INGEST stream, followed by their events.

The gateway writes a first ``0 of n`` progress event before the request itself, so an ingest
has a status the moment it is accepted; the retrieval service's own progress, completion or
failure events come after it on the same subject, and the last one is the ingest's status.
Events carry the tenant: another tenant's ingest reads as absent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from threadline.events import (
    IngestCompleted,
    IngestDocument,
    IngestFailed,
    IngestProgress,
    IngestRequested,
    Topology,
    parse_ingest_event,
)
from threadline.nats import ensure_streams, ingest_stream_configs

from threadline_gateway.errors import ApiError

IngestState = Literal["queued", "running", "completed", "failed"]


@dataclass(frozen=True)
class IngestStatus:
    ingest_id: str
    state: IngestState
    documents_done: int | None
    documents_total: int | None
    outcome: IngestCompleted | IngestFailed | None = None


class IngestBus:
    def __init__(self, js: JetStreamContext, topology: Topology, max_payload: int) -> None:
        self._js, self._topology, self._max_payload = js, topology, max_payload

    @classmethod
    async def create(cls, js: JetStreamContext, topology: Topology, max_payload: int) -> IngestBus:
        await ensure_streams(js, topology, ingest_stream_configs(topology))
        return cls(js, topology, max_payload)

    async def submit(
        self, tenant_id: str, collection: str, documents: list[IngestDocument], language: str = ""
    ) -> IngestStatus:
        """Accept the documents for indexing; durable once this returns."""
        ingest_id = uuid.uuid4().hex
        request = IngestRequested(
            ingest_id=ingest_id, tenant_id=tenant_id, collection=collection, language=language, documents=documents
        )
        payload = request.to_bytes()
        if len(payload) > self._max_payload:
            raise ApiError(
                413,
                "payload_too_large",
                f"Files for background indexing may total {self._max_payload // 1024} KiB; "
                "upload them with wait=true (the default) or in smaller batches.",
            )
        queued = IngestProgress(
            ingest_id=ingest_id,
            tenant_id=tenant_id,
            collection=collection,
            documents_done=0,
            documents_total=len(documents),
        )
        await self._js.publish(self._topology.ingest_events(ingest_id), queued.to_bytes())
        await self._js.publish(self._topology.ingest_requested, payload, headers={"Nats-Msg-Id": ingest_id})
        return IngestStatus(ingest_id, "queued", 0, len(documents))

    async def status(self, tenant_id: str, ingest_id: str) -> IngestStatus | None:
        try:
            last = await self._js.get_last_msg(
                self._topology.ingest_events_stream, self._topology.ingest_events(ingest_id)
            )
        except NotFoundError:
            return None
        event = parse_ingest_event(last.data or b"")
        if event.tenant_id != tenant_id:
            return None
        if isinstance(event, IngestProgress):
            state: IngestState = "queued" if event.documents_done == 0 else "running"
            return IngestStatus(ingest_id, state, event.documents_done, event.documents_total)
        if isinstance(event, IngestCompleted):
            return IngestStatus(ingest_id, "completed", len(event.documents), len(event.documents), event)
        return IngestStatus(ingest_id, "failed", None, None, event)
