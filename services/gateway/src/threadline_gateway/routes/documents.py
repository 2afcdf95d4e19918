"""``/api/v1/documents``: the caller's knowledge base — upload files, list them, delete them.

An upload returns once the retrieval service has chunked, embedded and durably stored every
file (it answers over gRPC), so a question asked right after finds them; with ``wait=false``
it is accepted at once onto the INGEST stream and followed at its ``status_url``. A file keeps
its name as its document id: uploading a file of the same name again replaces it. ``language``
picks the stemming of a new collection's keyword index; it is checked here, before anything is
queued, against the list the retrieval service stems with (threadline.languages).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from threadline.events import IngestCompleted, IngestDocument, IngestFailed
from threadline.ids import COLLECTION_PATTERN, INGEST_ID_PATTERN
from threadline.languages import normalise_language
from threadline.retrieval.v1 import retrieval_pb2 as pb

from threadline_gateway.deps import Caller, Ingests, Retrieval
from threadline_gateway.errors import ApiError, invalid_field, nats_errors_as_503, retrieval_errors
from threadline_gateway.ingests import IngestStatus
from threadline_gateway.schemas import (
    DocumentList,
    DocumentSummary,
    IngestError,
    Ingestion,
    UploadedDocuments,
    error_responses,
)

router = APIRouter(prefix="/api/v1/documents", tags=["documents"])
log = structlog.get_logger("threadline.gateway")

# By extension first (browsers send text/markdown as application/octet-stream), then by declared type.
_BY_EXTENSION = {".txt": "text/plain", ".text": "text/plain", ".md": "text/markdown", ".markdown": "text/markdown"}
_BY_EXTENSION |= {".html": "text/html", ".htm": "text/html"}
_TYPES = {"text/plain", "text/markdown", "text/html"}
_TIMEOUT_S = 300.0
Collection = Annotated[str, Query(pattern=COLLECTION_PATTERN, description="Empty: the tenant's default one.")]


def _content_type(upload: UploadFile) -> str:
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    by_name = _BY_EXTENSION.get(PurePath(upload.filename or "").suffix.lower())
    # `curl -F file=@notes` declares nothing useful: such a file is read as plain text (422 if it is not).
    content_type = by_name or ("text/plain" if declared in ("", "application/octet-stream") else declared)
    if content_type not in _TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{upload.filename!r} is {declared}; upload text (.txt), Markdown (.md) or HTML (.html) files.",
        )
    return content_type


async def _document(upload: UploadFile) -> pb.Document:
    name = PurePath(upload.filename or "").name
    if not name:
        raise ApiError(422, "invalid_document", "Every file needs a name: it becomes the document's id.")
    content_type = _content_type(upload)
    try:
        text = (await upload.read()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_document", f"{name!r} is not UTF-8 text.") from exc
    return pb.Document(id=name, text=text, content_type=content_type, metadata={"filename": name})


@router.post(
    "",
    status_code=201,
    response_model=UploadedDocuments,
    responses={
        202: {"model": Ingestion, "description": "With wait=false: accepted, indexed in the background."},
        **error_responses(409, 413, 415, 422, 503),
    },
    openapi_extra={"requestBody": {"required": True}},
)
async def upload_documents(
    request: Request,
    principal: Caller,
    retrieval: Retrieval,
    ingests: Ingests,
    files: Annotated[
        list[UploadFile], File(min_length=1, description="Text, Markdown or HTML files (multipart/form-data).")
    ],
    collection: Annotated[str, Form(pattern=COLLECTION_PATTERN)] = "",
    language: Annotated[
        str,
        Form(
            max_length=64,
            description="Stemming language of a new collection's keyword search (e.g. french); empty: English. "
            "Another language than an existing collection's is a 409 (with wait=false: a failed ingestion).",
        ),
    ] = "",
    wait: Annotated[
        bool, Form(description="false: answer 202 at once and index in the background; follow status_url.")
    ] = True,
) -> Any:
    """Add files to the knowledge base; returns once they are indexed and searchable, or at once with wait=false."""
    if language:
        try:
            language = normalise_language(language)
        except ValueError as exc:
            raise invalid_field("language", str(exc)) from exc
    documents = [await _document(upload) for upload in files]
    tenant = principal.tenant_id
    if not wait:
        with nats_errors_as_503():
            accepted = await ingests.submit(tenant, collection, [_ingest_document(d) for d in documents], language)
        log.info("documents queued", documents=len(documents), ingest_id=accepted.ingest_id)
        status_url = str(request.url_for("ingestion_status", ingest_id=accepted.ingest_id))
        return JSONResponse(
            _ingestion(request, accepted).model_dump(mode="json"), status_code=202, headers={"Location": status_url}
        )
    with retrieval_errors("invalid_document"):
        reply = await retrieval.Ingest(
            pb.IngestRequest(tenant_id=tenant, collection=collection, language=language, documents=documents),
            timeout=_TIMEOUT_S,
        )
    log.info("documents indexed", documents=len(reply.documents), collection=collection or "default")
    return UploadedDocuments(
        documents=[DocumentSummary(id=d.document_id, chunks=d.chunk_count, status="indexed") for d in reply.documents]
    )


@router.get("/ingestions/{ingest_id}", response_model=Ingestion, responses=error_responses(404, 503))
async def ingestion_status(
    ingest_id: Annotated[str, Path(pattern=INGEST_ID_PATTERN)], request: Request, principal: Caller, ingests: Ingests
) -> Ingestion:
    """Where a background upload stands: queued, running (with documents done of total), completed or failed."""
    with nats_errors_as_503():
        found = await ingests.status(principal.tenant_id, ingest_id)
    if found is None:
        raise ApiError(404, "not_found", f"No ingestion {ingest_id!r}.")
    return _ingestion(request, found)


def _ingest_document(document: pb.Document) -> IngestDocument:
    return IngestDocument(
        id=document.id, text=document.text, content_type=document.content_type, metadata=dict(document.metadata)
    )


def _ingestion(request: Request, found: IngestStatus) -> Ingestion:
    outcome = found.outcome
    return Ingestion(
        ingest_id=found.ingest_id,
        status=found.state,
        documents_done=found.documents_done,
        documents_total=found.documents_total,
        documents=[DocumentSummary(id=d.document_id, chunks=d.chunk_count, status="indexed") for d in outcome.documents]
        if isinstance(outcome, IngestCompleted)
        else None,
        error=IngestError(code=outcome.code, message=outcome.message) if isinstance(outcome, IngestFailed) else None,
        status_url=str(request.url_for("ingestion_status", ingest_id=found.ingest_id)),
    )


@router.get("", response_model=DocumentList, responses=error_responses(503))
async def list_documents(
    principal: Caller,
    retrieval: Retrieval,
    collection: Collection = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> DocumentList:
    """A page of the knowledge base's documents, by id."""
    listing = pb.ListDocumentsRequest(tenant_id=principal.tenant_id, collection=collection, limit=limit, offset=offset)
    with retrieval_errors("invalid_document"):
        reply = await retrieval.ListDocuments(listing, timeout=30)
    return DocumentList(
        documents=[
            DocumentSummary(id=d.document_id, chunks=d.chunk_count, status="indexed", metadata=dict(d.metadata))
            for d in reply.documents
        ],
        total=reply.total,
        limit=limit,
        offset=offset,
    )


@router.delete("/{document_id}", status_code=204, responses=error_responses(404, 503))
async def delete_document(
    document_id: str, principal: Caller, retrieval: Retrieval, collection: Collection = ""
) -> Response:
    """Remove a document and every chunk of it from the knowledge base."""
    deletion = pb.DeleteDocumentsRequest(
        tenant_id=principal.tenant_id, collection=collection, document_ids=[document_id]
    )
    with retrieval_errors("invalid_document"):
        reply = await retrieval.DeleteDocuments(deletion, timeout=60)
    if not reply.deleted:
        raise ApiError(404, "not_found", f"No document {document_id!r}.")
    return Response(status_code=204)
