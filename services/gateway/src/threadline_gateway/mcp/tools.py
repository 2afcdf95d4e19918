"""The knowledge-base tools: search it, list its documents, read one. Arguments and results are pydantic models,
so each tool's input and output JSON schemas are the models' own and a bad argument is refused by name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp_types import Tool, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field
from threadline.ids import COLLECTION_PATTERN
from threadline.retrieval.v1.retrieval_pb2_grpc import RetrievalServiceStub

from threadline_gateway.mcp import knowledge
from threadline_gateway.mcp.knowledge import SearchModeName
from threadline_gateway.mcp.resources import document_uri

SEARCH = "search_knowledge_base"
LIST_DOCUMENTS = "list_documents"
GET_DOCUMENT = "get_document"

_COLLECTION = Field(
    default="", pattern=COLLECTION_PATTERN, description="The collection; empty for the tenant's default one."
)


class _Arguments(BaseModel):
    # An argument the tool does not take is refused, so a misspelt one is not silently ignored.
    model_config = ConfigDict(extra="forbid")


class SearchArguments(_Arguments):
    query: str = Field(min_length=1, description="What to look for, in words.")
    collection: str = _COLLECTION
    filter: dict[str, str] = Field(
        default_factory=dict, description="Only passages whose metadata has every one of these key/value pairs."
    )
    k: int | None = Field(default=None, ge=1, le=100, description="How many passages at most (default: 4).")
    mode: SearchModeName | None = Field(
        default=None, description="hybrid (dense and keyword, the default), dense (meaning) or keyword (BM25)."
    )
    rerank: bool | None = Field(
        default=None, description="Rerank the top passages (default: as the server is configured; true fails if none)."
    )


class ListDocumentsArguments(_Arguments):
    collection: str = _COLLECTION
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=2**31 - 1)


class GetDocumentArguments(_Arguments):
    document_id: str = Field(min_length=1, max_length=256, description="The document's id (its file name).")
    collection: str = _COLLECTION


class Passage(BaseModel):
    document_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, str]


class SearchResults(BaseModel):
    results: list[Passage] = Field(description="Best first.")


class DocumentEntry(BaseModel):
    id: str
    chunks: int
    metadata: dict[str, str]
    uri: str = Field(description="The document as an MCP resource.")


class DocumentList(BaseModel):
    collection: str
    documents: list[DocumentEntry]
    total: int
    limit: int
    offset: int


class DocumentText(BaseModel):
    document_id: str
    collection: str
    uri: str
    text: str = Field(description="Its chunks put back together: the document as search sees it.")
    chunk_ids: list[str]


def _tool(name: str, title: str, description: str, arguments: type[BaseModel], result: type[BaseModel]) -> Tool:
    return Tool(
        name=name,
        title=title,
        description=description,
        input_schema=arguments.model_json_schema(),
        output_schema=result.model_json_schema(),
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    )


KNOWLEDGE_TOOLS = [
    _tool(
        SEARCH,
        "Search the knowledge base",
        "Find the passages of the caller's documents that best answer a query, best first, each with its "
        "document id, chunk id, text and score.",
        SearchArguments,
        SearchResults,
    ),
    _tool(
        LIST_DOCUMENTS,
        "List documents",
        "A page of the documents in a collection of the knowledge base, by id.",
        ListDocumentsArguments,
        DocumentList,
    ),
    _tool(
        GET_DOCUMENT,
        "Read a document",
        "The whole text of one document of the knowledge base.",
        GetDocumentArguments,
        DocumentText,
    ),
]


def is_knowledge_tool(name: str) -> bool:
    return name in _RUNNERS


async def run_knowledge_tool(
    name: str, arguments: dict[str, Any], retrieval: RetrievalServiceStub, tenant_id: str
) -> BaseModel:
    """The result of the knowledge tool ``name`` for the caller's tenant.

    A bad argument raises pydantic's ValidationError, a refusal of the retrieval service ApiError.
    """
    return await _RUNNERS[name](arguments, retrieval, tenant_id)


async def _search(arguments: dict[str, Any], retrieval: RetrievalServiceStub, tenant_id: str) -> SearchResults:
    search = SearchArguments.model_validate(arguments)
    hits = await knowledge.search(
        retrieval,
        tenant_id,
        search.query,
        collection=search.collection,
        k=search.k,
        mode=search.mode,
        metadata_filter=search.filter,
        rerank=search.rerank,
    )
    return SearchResults(results=[Passage.model_validate(hit, from_attributes=True) for hit in hits])


async def _list_documents(arguments: dict[str, Any], retrieval: RetrievalServiceStub, tenant_id: str) -> DocumentList:
    listing = ListDocumentsArguments.model_validate(arguments)
    page = await knowledge.list_documents(
        retrieval, tenant_id, listing.collection, limit=listing.limit, offset=listing.offset
    )
    collection = listing.collection or knowledge.DEFAULT_COLLECTION
    return DocumentList(
        collection=collection,
        documents=[
            DocumentEntry(id=document_id, chunks=chunks, metadata=metadata, uri=document_uri(collection, document_id))
            for document_id, chunks, metadata in page.documents
        ],
        total=page.total,
        limit=listing.limit,
        offset=listing.offset,
    )


async def _get_document(arguments: dict[str, Any], retrieval: RetrievalServiceStub, tenant_id: str) -> DocumentText:
    wanted = GetDocumentArguments.model_validate(arguments)
    document = await knowledge.read_document(retrieval, tenant_id, wanted.collection, wanted.document_id)
    return DocumentText(
        document_id=document.document_id,
        collection=document.collection,
        uri=document_uri(document.collection, document.document_id),
        text=document.text,
        chunk_ids=document.chunk_ids,
    )


_RUNNERS: dict[str, Callable[[dict[str, Any], RetrievalServiceStub, str], Awaitable[BaseModel]]] = {
    SEARCH: _search,
    LIST_DOCUMENTS: _list_documents,
    GET_DOCUMENT: _get_document,
}
