"""The knowledge base's documents as MCP resources: ``threadline://documents/{collection}/{document_id}``.

A document id is a file name and may hold any character, so it travels percent-encoded; a
collection's name cannot hold '/' (:data:`threadline.ids.COLLECTION_PATTERN`), so the first '/'
after the prefix ends it. A listing walks every collection of the tenant, a page at a time.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from mcp_types import (
    Resource,
    ResourceTemplate,
    TextResourceContents,
)
from threadline.ids import is_name
from threadline.retrieval.v1.retrieval_pb2_grpc import RetrievalServiceStub

from threadline_gateway.errors import ApiError
from threadline_gateway.mcp import knowledge

_PREFIX = "threadline://documents/"
TEMPLATE = ResourceTemplate(
    name="document",
    title="A document of the knowledge base",
    uri_template=_PREFIX + "{collection}/{document_id}",
    description="The whole text of a document; collection 'default' is the tenant's default one.",
    mime_type="text/plain",
)
PAGE_SIZE = 100


def document_uri(collection: str, document_id: str) -> str:
    return f"{_PREFIX}{collection or knowledge.DEFAULT_COLLECTION}/{quote(document_id, safe='')}"


def parse_document_uri(uri: str) -> tuple[str, str]:
    """(collection, document id) of a document's URI; a 422 for anything else."""
    collection, slash, encoded = uri.removeprefix(_PREFIX).partition("/")
    if not uri.startswith(_PREFIX) or not slash or not is_name(collection) or not encoded:
        raise ApiError(422, "invalid_request", f"Not a document of this server: {uri[:200]!r}.")
    return collection, unquote(encoded)


async def list_page(
    retrieval: RetrievalServiceStub, tenant_id: str, cursor: str | None
) -> tuple[list[Resource], str | None]:
    """Up to :data:`PAGE_SIZE` documents from where ``cursor`` points, and the cursor of the next page (None: done).

    A cursor is ``<collection>/<offset>``: the collections are walked in name order, each from its first document.
    """
    collections = await knowledge.list_collections(retrieval, tenant_id)
    start, offset = _position(cursor)
    resources: list[Resource] = []
    for collection in (c for c in collections if c >= start):
        skip = offset if collection == start else 0
        page = await knowledge.list_documents(
            retrieval, tenant_id, collection, limit=PAGE_SIZE - len(resources), offset=skip
        )
        resources.extend(_resource(collection, document_id, chunks) for document_id, chunks, _ in page.documents)
        if len(resources) == PAGE_SIZE:
            following = skip + len(page.documents)
            return resources, f"{collection}/{following}" if following < page.total else _after(collections, collection)
    return resources, None


async def read(retrieval: RetrievalServiceStub, tenant_id: str, uri: str) -> TextResourceContents:
    """The document ``uri`` names, as one text; a 404 when the tenant has no such document."""
    collection, document_id = parse_document_uri(uri)
    document = await knowledge.read_document(retrieval, tenant_id, collection, document_id)
    return TextResourceContents(uri=uri, mime_type="text/plain", text=document.text)


def _resource(collection: str, document_id: str, chunks: int) -> Resource:
    return Resource(
        name=document_id,
        title=document_id if collection == knowledge.DEFAULT_COLLECTION else f"{collection}/{document_id}",
        uri=document_uri(collection, document_id),
        description=f"A document of collection {collection!r} ({chunks} chunks).",
        mime_type="text/plain",
    )


def _position(cursor: str | None) -> tuple[str, int]:
    if cursor is None:
        return "", 0
    collection, _, offset = cursor.rpartition("/")
    if not is_name(collection) or not offset.isdigit():
        raise ApiError(422, "invalid_request", "The cursor is not one this server gave.")
    return collection, int(offset)


def _after(collections: list[str], collection: str) -> str | None:
    later = [c for c in collections if c > collection]
    return f"{later[0]}/0" if later else None
