"""The caller's knowledge base as the MCP server reads it: search, a page of documents, one document's text.

The same retrieval service calls as ``/api/v1/documents``, always for the caller's own tenant;
the service's refusals become :class:`ApiError` here (a 422 or 404 the tool reports as its error),
its absence a 503.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1.retrieval_pb2_grpc import RetrievalServiceStub

from threadline_gateway.errors import ApiError, retrieval_errors

SearchModeName = Literal["hybrid", "dense", "keyword"]
_MODES = {"hybrid": pb.SEARCH_MODE_HYBRID, "dense": pb.SEARCH_MODE_DENSE, "keyword": pb.SEARCH_MODE_KEYWORD}
# The collection an empty name stands for (the retrieval service's own default).
DEFAULT_COLLECTION = "default"
_TIMEOUT_S = 30.0
# How much of a chunk's start repeats the chunks before it (StoredChunk.metadata in retrieval.proto).
REPEATED_CHARS = "repeated_chars"
# Chunks stored before the service said so are joined by their overlap (CHUNK_OVERLAP); a shorter common
# stretch is more likely the text itself than an overlap, so it is kept.
_MIN_OVERLAP = 20


@dataclass(frozen=True)
class Hit:
    document_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, str]


@dataclass(frozen=True)
class DocumentPage:
    documents: list[tuple[str, int, dict[str, str]]]  # (document id, chunks, metadata), by id
    total: int


@dataclass(frozen=True)
class Document:
    document_id: str
    collection: str
    text: str
    chunk_ids: list[str]


async def search(
    retrieval: RetrievalServiceStub,
    tenant_id: str,
    query: str,
    *,
    collection: str,
    k: int | None,
    mode: SearchModeName | None,
    metadata_filter: dict[str, str],
    rerank: bool | None = None,
) -> list[Hit]:
    """The passages that best match ``query``, best first (``k``, ``mode``, ``rerank`` None: the service's defaults)."""
    request = pb.SearchRequest(
        tenant_id=tenant_id,
        collection=collection,
        query=query,
        k=k or 0,
        mode=_MODES[mode] if mode else pb.SEARCH_MODE_UNSPECIFIED,
        filter=metadata_filter,
        rerank=rerank,
    )
    with retrieval_errors():
        reply = await retrieval.Search(request, timeout=_TIMEOUT_S)
    return [Hit(h.document_id, h.chunk_id, h.text, h.score, dict(h.metadata)) for h in reply.hits]


async def list_documents(
    retrieval: RetrievalServiceStub, tenant_id: str, collection: str, *, limit: int, offset: int
) -> DocumentPage:
    listing = pb.ListDocumentsRequest(tenant_id=tenant_id, collection=collection, limit=limit, offset=offset)
    with retrieval_errors():
        reply = await retrieval.ListDocuments(listing, timeout=_TIMEOUT_S)
    return DocumentPage([(d.document_id, d.chunk_count, dict(d.metadata)) for d in reply.documents], reply.total)


async def list_collections(retrieval: RetrievalServiceStub, tenant_id: str) -> list[str]:
    """The tenant's collections by name (the default one too, once it holds anything)."""
    with retrieval_errors():
        reply = await retrieval.ListCollections(pb.ListCollectionsRequest(tenant_id=tenant_id), timeout=_TIMEOUT_S)
    return sorted(c.name for c in reply.collections)


async def read_document(retrieval: RetrievalServiceStub, tenant_id: str, collection: str, document_id: str) -> Document:
    """The document's text, put back together from its chunks; a 404 when the tenant has no such document."""
    request = pb.GetDocumentsRequest(tenant_id=tenant_id, collection=collection, document_ids=[document_id])
    with retrieval_errors():
        reply = await retrieval.GetDocuments(request, timeout=_TIMEOUT_S)
    chunks = [c for c in reply.chunks if c.document_id == document_id]
    if not chunks:
        where = f" in collection {collection!r}" if collection else ""
        raise ApiError(404, "not_found", f"No document {document_id!r}{where}.")
    return Document(
        document_id=document_id,
        collection=collection or DEFAULT_COLLECTION,
        text=join_chunks([(c.text, c.metadata) for c in chunks]),
        chunk_ids=[c.chunk_id for c in chunks],
    )


def join_chunks(chunks: Sequence[tuple[str, Mapping[str, str]]]) -> str:
    """Chunks (text, metadata) in order as one text, what each repeats of the ones before it said once.

    Only chunks are stored, not the uploaded file: this is the document as search sees it.
    """
    joined = ""
    for text, metadata in chunks:
        repeated = metadata.get(REPEATED_CHARS)
        if repeated is not None and repeated.isdigit():  # the rest goes on from the chunk before
            rest = text[int(repeated) :]
            joined += rest if rest[:1].isspace() or not joined else f"\n\n{rest}"
            continue
        overlap = _overlap(joined, text)
        joined = joined + text[overlap:] if overlap else (f"{joined}\n\n{text}" if joined else text)
    return joined


def _overlap(before: str, text: str) -> int:
    """The length of the longest start of ``text`` that ``before`` ends with, if it is long enough to be one."""
    for size in range(min(len(before), len(text)), _MIN_OVERLAP - 1, -1):
        if before.endswith(text[:size]):
            return size
    return 0
