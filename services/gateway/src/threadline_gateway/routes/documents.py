"""``/api/v1/documents``: the caller's knowledge base — upload files, list them, delete them.

An upload returns once the retrieval service has chunked, embedded and durably stored every
file (it answers over gRPC), so a question asked right after finds them; with ``wait=false``
it is accepted at once onto the INGEST stream and followed at its ``status_url``. A file keeps
its name as its document id: uploading a file of the same name again replaces it. ``language``
picks the stemming of a new collection's keyword index; it is checked here, before anything is
queued, against the list the retrieval service stems with (threadline.languages).

PDF and DOCX files go to the retrieval service as they are (bytes over gRPC, base64 in an ingest
event): it converts every format to Markdown in one place, whichever way a file comes, so an
unreadable file is a 422 here and a failed ingestion (``invalid_request``) in the background.
``POST /api/v1/documents/urls`` fetches documents from allowed hosts first (url_fetch.py).
"""

from __future__ import annotations

import base64
from pathlib import PurePath
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from threadline.events import IngestCompleted, IngestDocument, IngestFailed
from threadline.ids import COLLECTION_PATTERN, INGEST_ID_PATTERN
from threadline.languages import LANGUAGES, normalise_language
from threadline.retrieval.v1 import retrieval_pb2 as pb

from threadline_gateway import url_fetch
from threadline_gateway.auth import Principal
from threadline_gateway.deps import Caller, Ingests, Retrieval, Settings
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

# What the OpenAPI document offers for a collection's language (empty: English).
_LANGUAGE_CHOICES: list[JsonValue] = ["", *sorted(LANGUAGES)]


# By extension first (browsers send text/markdown as application/octet-stream), then by declared type.
_BY_EXTENSION = {".txt": "text/plain", ".text": "text/plain", ".md": "text/markdown", ".markdown": "text/markdown"}
_BY_EXTENSION |= {".html": "text/html", ".htm": "text/html"}
_PDF, _DOCX = "application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_BY_EXTENSION |= {".pdf": _PDF, ".docx": _DOCX}
_FILES = {_PDF, _DOCX}  # sent as bytes; the retrieval service reads them
_TYPES = {"text/plain", "text/markdown", "text/html"} | _FILES
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
            f"{upload.filename!r} is {declared}; upload text (.txt), Markdown (.md), HTML (.html), PDF (.pdf) "
            "or Word (.docx) files.",
        )
    return content_type


async def _document(upload: UploadFile) -> pb.Document:
    name = PurePath(upload.filename or "").name
    if not name:
        raise ApiError(422, "invalid_document", "Every file needs a name: it becomes the document's id.")
    return _as_document(name, _content_type(upload), await upload.read(), {"filename": name})


def _as_document(
    document_id: str, content_type: str, data: bytes, metadata: dict[str, str], charset: str | None = None
) -> pb.Document:
    if content_type in _FILES:
        if not data:
            raise ApiError(422, "invalid_document", f"{document_id!r} is empty.")
        return pb.Document(id=document_id, content=data, content_type=content_type, metadata=metadata)
    try:
        text = data.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        raise ApiError(422, "invalid_document", f"{document_id!r} is not {charset or 'UTF-8'} text.") from exc
    return pb.Document(id=document_id, text=text, content_type=content_type, metadata=metadata)


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
            json_schema_extra={"enum": _LANGUAGE_CHOICES},  # any case and spacing is taken too
            description="Stemming language of a new collection's keyword search (e.g. french); empty: English. "
            "Another language than an existing collection's is a 409 (with wait=false: a failed ingestion).",
        ),
    ] = "",
    wait: Annotated[
        bool, Form(description="false: answer 202 at once and index in the background; follow status_url.")
    ] = True,
) -> Any:
    """Add files to the knowledge base; returns once they are indexed and searchable, or at once with wait=false."""
    language = _language(language)
    documents = _uploaded_by(principal, [await _document(upload) for upload in files])
    return await _index(request, principal.tenant_id, retrieval, ingests, documents, collection, language, wait)


def _language(given: str) -> str:
    """A new collection's stemming language as the retrieval service names it (empty: its default), or a 422
    before anything is queued."""
    if not given:
        return ""
    try:
        return normalise_language(given)
    except ValueError as exc:
        raise invalid_field("language", str(exc)) from exc


def _uploaded_by(principal: Principal, documents: list[pb.Document]) -> list[pb.Document]:
    """Each document names the person who uploaded it (a JWT's subject), so erasing that person deletes it too."""
    if principal.user_id:
        for document in documents:
            document.metadata["user_id"] = principal.user_id
    return documents


class UrlUpload(BaseModel):
    """Documents to fetch from allowed hosts and index, as an upload of the same files would be."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(min_length=1, max_length=10, description="http(s) URLs; each becomes a document's id.")
    collection: str = Field(default="", pattern=COLLECTION_PATTERN)
    language: str = Field(
        default="",
        max_length=64,
        description="As for a file upload.",
        json_schema_extra={"enum": _LANGUAGE_CHOICES},  # any case and spacing is taken too
    )
    wait: bool = Field(default=True, description="false: answer 202 at once and index in the background.")


@router.post(
    "/urls",
    status_code=201,
    response_model=UploadedDocuments,
    responses={
        202: {"model": Ingestion, "description": "With wait=false: accepted, indexed in the background."},
        **error_responses(403, 409, 413, 415, 422, 502, 503, 504),
    },
)
async def upload_urls(
    body: UrlUpload, request: Request, principal: Caller, retrieval: Retrieval, ingests: Ingests, settings: Settings
) -> Any:
    """Fetch documents from URLs (only from GATEWAY_URL_FETCH_HOSTS; off when it is empty) and index them."""
    language = _language(body.language)
    hosts = url_fetch.allowed_hosts(settings.url_fetch_hosts)
    documents = []
    for url in body.urls:
        document_id = url.split("#")[0]
        if len(document_id) > 256:
            raise invalid_field("urls", f"{url[:80]!r}... is longer than a document id may be (256 characters)")
        fetched = await url_fetch.fetch(
            url,
            hosts,
            max_bytes=settings.url_fetch_max_bytes,
            timeout_s=settings.url_fetch_timeout_s,
            types=_TYPES,
        )
        metadata = {"filename": fetched.name, "source_url": fetched.url}
        documents.append(_as_document(document_id, fetched.content_type, fetched.data, metadata, fetched.charset))
    wait = body.wait
    documents = _uploaded_by(principal, documents)
    return await _index(request, principal.tenant_id, retrieval, ingests, documents, body.collection, language, wait)


async def _index(
    request: Request,
    tenant: str,
    retrieval: Retrieval,
    ingests: Ingests,
    documents: list[pb.Document],
    collection: str,
    language: str,
    wait: bool,
) -> Any:
    """Index at once over gRPC (201), or with ``wait`` false queue them on the INGEST stream (202)."""
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
    # Events are JSON: a file travels base64-encoded in ``text``, which the retrieval service decodes.
    text = base64.b64encode(document.content).decode("ascii") if document.content else document.text
    return IngestDocument(
        id=document.id, text=text, content_type=document.content_type, metadata=dict(document.metadata)
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
