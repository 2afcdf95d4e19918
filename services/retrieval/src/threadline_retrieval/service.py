"""The gRPC RetrievalService: validates requests, scopes them to a tenant, runs them on the catalog.

Tenancy is enforced by storage layout: a tenant's collections are files under its own
folder, and every call opens collections through its own ``tenant_id`` only.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
import structlog
from opentelemetry import trace
from threadline.grpc import BadRequest, abort_on_error
from threadline.ids import check_name, check_tenant_id, is_name, is_tenant_id
from threadline.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc

from threadline_retrieval.catalog import DEFAULT_COLLECTION, Catalog
from threadline_retrieval.chunking import CONTENT_TYPES, Chunk, Chunker
from threadline_retrieval.collection import Collection, EmbeddingMismatch, NewDocument, require_language
from threadline_retrieval.converters import BINARY_TYPES, ConversionError, to_markdown
from threadline_retrieval.embeddings import Embedder
from threadline_retrieval.keyword import check_language
from threadline_retrieval.reembed import EmbedderPool, Reembedder
from threadline_retrieval.rerank import Reranking
from threadline_retrieval.search import hybrid
from threadline_retrieval.settings import RetrievalSettings

SERVICE_NAME = retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"].full_name
MAX_QUERY_CHARS = 8000
MAX_DOCUMENT_ID_CHARS = 256
MAX_EMBED_TEXTS = 32
_EMBEDDED_KEPT = 256  # texts Embed keeps the vectors of, for a search of the same text that follows
_DEFAULT_PAGE = 100
_MODES = {
    "dense": retrieval_pb2.SEARCH_MODE_DENSE,
    "keyword": retrieval_pb2.SEARCH_MODE_KEYWORD,
    "hybrid": retrieval_pb2.SEARCH_MODE_HYBRID,
}
_MODE_NAMES = {number: name for name, number in _MODES.items()}
log = structlog.get_logger("threadline_retrieval")
# Told (documents stored, documents in the request) after each stored batch of a batched ingest.
Progress = Callable[[int, int], Awaitable[None]]
_tracer = trace.get_tracer("threadline_retrieval")
# What embeds an ingest's chunks, and their dimension; no embedder: zero placeholders (see RetrievalServicer._writer).
Writer = tuple[Embedder | None, int]


def _query_vector(values: Any, dimension: int) -> np.ndarray:
    """A caller's query vector as a unit float32 vector, so dense scores stay cosine similarities."""
    if len(values) != dimension:
        raise BadRequest(f"vector must have {dimension} values, not {len(values)}")
    vector = np.asarray(values, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise BadRequest("vector must be finite and not all zeros")
    return vector / norm


def _given_vectors(request: retrieval_pb2.IngestRequest) -> np.ndarray | None:
    """The caller's document vectors as unit float32 rows, or None when the service is to embed."""
    with_vectors = sum(1 for d in request.documents if d.vector)
    if not with_vectors:
        if request.embedding_model:
            raise BadRequest("embedding_model names the model of the documents' vectors; give it with vectors only")
        return None
    if with_vectors != len(request.documents):
        raise BadRequest("give a vector for every document of a request or for none")
    if not is_name(request.embedding_model):
        raise BadRequest("embedding_model (1-64 letters, digits, '-' or '_') is required with vectors")
    dimension = len(request.documents[0].vector)
    return np.vstack([_query_vector(d.vector, dimension) for d in request.documents])


def _require_model(collection: Collection, model: str, dimension: int) -> None:
    if (collection.embedding_model, collection.dimension) != (model, dimension):
        raise EmbeddingMismatch(
            f"collection {collection.path.stem!r} holds vectors of {collection.embedding_model} "
            f"({collection.dimension} dimensions), not {model} ({dimension}); use another collection"
        )


def _base_metadata(document: retrieval_pb2.Document) -> dict[str, str]:
    return {**document.metadata, "content_type": document.content_type or "text/plain"}


def _document_id(document: retrieval_pb2.Document) -> str:
    if not document.id:
        return hashlib.sha256(document.content or document.text.encode()).hexdigest()[:16]
    if len(document.id) > MAX_DOCUMENT_ID_CHARS or "#" in document.id:
        raise BadRequest(f"document id {document.id[:40]!r}... must be at most 256 characters without '#'")
    return document.id


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    def __init__(
        self,
        settings: RetrievalSettings,
        catalog: Catalog,
        embedder: Embedder,
        pool: EmbedderPool | None = None,
        reembedder: Reembedder | None = None,
        reranking: Reranking | None = None,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._embedder = embedder
        self._pool = pool or EmbedderPool(settings, embedder)
        self._reembedder = reembedder
        self._chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
        self._default_mode = _MODES[settings.search_default_mode]
        self._reranking = reranking or Reranking.from_settings(settings)
        # The last texts Embed was asked for: the agent embeds a question for its answer cache, and on a miss
        # searches with the same text at once, which then costs no second embedding.
        self._embedded: OrderedDict[str, np.ndarray] = OrderedDict()

    async def Ingest(self, request: retrieval_pb2.IngestRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            return await self.ingest(request)

    async def ingest(
        self, request: retrieval_pb2.IngestRequest, batch: int = 0, progress: Progress | None = None
    ) -> retrieval_pb2.IngestResponse:
        """Validate every document, then store them ``batch`` at a time (0: all in one transaction).

        Shared by the gRPC call and the ingest events. Nothing is written unless the whole request
        is valid; ``progress`` hears of each stored batch before the last. Raises BadRequest,
        EmbeddingMismatch or EmbeddingUnavailable.
        """
        tenant = check_tenant_id(request.tenant_id)
        name = check_name(request.collection or DEFAULT_COLLECTION, "collection")
        language = check_language(request.language)
        documents = self._validate_documents(request.documents)
        documents = await asyncio.to_thread(self._convert_files, documents)
        given = _given_vectors(request)
        if given is None:
            model, dimension = self._embedder.model_name, self._embedder.dimension
        else:
            model, dimension = request.embedding_model, given.shape[1]
        size = batch or len(documents)
        collection: Collection | None = None
        ingested: list[retrieval_pb2.IngestedDocument] = []
        for start in range(0, len(documents), size):
            part = documents[start : start + size]
            if given is None:
                if collection is None or collection.closed:
                    collection = await self._catalog.get(tenant, name, create=False)
                writer = await self._writer(collection)
                new = await self._chunk_and_embed(part, writer)
            else:
                new = [
                    NewDocument(i, [Chunk(d.text, _base_metadata(d))], vector.reshape(1, -1))
                    for (i, d), vector in zip(part, given[start : start + size], strict=True)
                ]
            async with self._catalog.write_lock(tenant, name):
                # Opened once the first batch is embedded (a failed embed creates nothing), and again when it
                # was deleted meanwhile: an ingest after a delete makes the collection anew.
                if collection is None or collection.closed:
                    collection = await self._catalog.get(
                        tenant,
                        name,
                        create=True,
                        embedding=(model, dimension),
                        caller_vectors=given is not None,
                        language=language,
                    )
                    assert collection is not None
                if request.language:
                    require_language(collection, language)
                if given is not None or collection.embedded_by == "caller":
                    _require_model(collection, model, dimension)
                elif (swapped := await self._writer(collection)) != writer:
                    # Re-embedded and swapped (or deleted) since this batch was embedded: embed it again, for the
                    # collection as it is now; rare, and short, so under the lock.
                    writer = swapped
                    new = await self._embed_chunks(new, writer)
                added = await asyncio.to_thread(collection.write, new)
                collection.apply([d.document_id for d in new], added)
            ingested += [
                retrieval_pb2.IngestedDocument(document_id=d.document_id, chunk_count=len(d.chunks)) for d in new
            ]
            if progress is not None and len(ingested) < len(documents):
                await progress(len(ingested), len(documents))
        chunks = sum(d.chunk_count for d in ingested)
        log.info("ingested", tenant=tenant, collection=name, documents=len(ingested), chunks=chunks)
        return retrieval_pb2.IngestResponse(documents=ingested)

    async def _writer(self, collection: Collection | None) -> Writer:
        """What embeds the chunks written to ``collection``: the service's model, or for a stale collection (its
        vectors the service's old model's) that old model, or else nothing: placeholder vectors, searched by
        nobody, since dense search of it falls back to keyword until the re-embedding replaces them."""
        current = (self._embedder, self._embedder.dimension)
        if collection is None or collection.embedded_by == "caller":
            return current
        model, version, dimension = collection.embedding_model, collection.embedding_version, collection.dimension
        if self._pool.is_current(model, version, dimension):
            return current
        return await self._pool.for_vectors(model, version, dimension), dimension

    async def _chunk_and_embed(
        self, documents: list[tuple[str, retrieval_pb2.Document]], writer: Writer
    ) -> list[NewDocument]:
        chunked = await asyncio.to_thread(
            lambda: [(i, self._chunker.split(d.text, d.content_type or "text/plain"), d) for i, d in documents]
        )
        new = []
        for document_id, chunks, document in chunked:
            base = _base_metadata(document)
            chunks = [Chunk(chunk.text, {**base, **chunk.metadata}) for chunk in chunks]
            new.append(NewDocument(document_id, chunks, np.empty((0, 0), dtype=np.float32)))
        return await self._embed_chunks(new, writer)

    @staticmethod
    async def _embed_chunks(documents: list[NewDocument], writer: Writer) -> list[NewDocument]:
        texts = [chunk.text for document in documents for chunk in document.chunks]
        embedder, dimension = writer
        vectors = await embedder.embed(texts) if embedder else np.zeros((len(texts), dimension), dtype=np.float32)
        new, offset = [], 0
        for document in documents:
            count = len(document.chunks)
            new.append(NewDocument(document.document_id, document.chunks, vectors[offset : offset + count]))
            offset += count
        return new

    def _validate_documents(self, documents: Any) -> list[tuple[str, retrieval_pb2.Document]]:
        if not documents:
            raise BadRequest("documents must not be empty")
        seen: set[str] = set()
        valid = []
        for n, document in enumerate(documents):
            where = f"documents[{n}]"
            if not document.text.strip() and not document.content:
                raise BadRequest(f"{where}.text must not be empty")
            if document.content and document.content_type not in BINARY_TYPES:
                raise BadRequest(f"{where}.content is for {' or '.join(BINARY_TYPES)} files; send text as text")
            # A file sent as base64 text is counted as the file it decodes to.
            size = len(document.content) or len(document.text.encode())
            if document.content_type in BINARY_TYPES and not document.content:
                size = size * 3 // 4
            if size > self._settings.max_document_bytes:
                raise BadRequest(f"{where} is larger than {self._settings.max_document_bytes} bytes")
            if document.content_type and document.content_type not in CONTENT_TYPES:
                raise BadRequest(f"{where}.content_type must be one of {', '.join(CONTENT_TYPES)}")
            document_id = _document_id(document)
            if document_id in seen:
                raise BadRequest(f"{where}: document id {document_id!r} appears twice in one request")
            seen.add(document_id)
            valid.append((document_id, document))
        return valid

    def _convert_files(
        self, documents: list[tuple[str, retrieval_pb2.Document]]
    ) -> list[tuple[str, retrieval_pb2.Document]]:
        """PDF and DOCX files as Markdown text, all before anything is stored: one unreadable file refuses the
        request. The text keeps the file's type, which tells the chunker it is Markdown (converters.py)."""
        converted = []
        for n, (document_id, document) in enumerate(documents):
            if document.content_type in BINARY_TYPES:
                try:
                    text = to_markdown(document.content_type, document.text, document.content).text
                except ConversionError as exc:
                    raise BadRequest(f"documents[{n}] ({document_id}): {exc}") from exc
                if len(text.encode()) > self._settings.max_document_bytes:
                    raise BadRequest(f"documents[{n}] ({document_id}) is larger than allowed once converted to text")
                document = retrieval_pb2.Document(
                    id=document.id,
                    text=text,
                    content_type=document.content_type,
                    metadata=document.metadata,
                    vector=document.vector,
                )
            converted.append((document_id, document))
        return converted

    async def Search(self, request: retrieval_pb2.SearchRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            name = check_name(request.collection or DEFAULT_COLLECTION, "collection")
            query = request.query.strip()
            if not query and not request.vector:
                raise BadRequest("query must not be empty")
            if query and request.vector:
                raise BadRequest("give either a query or a vector, not both")
            if len(query) > MAX_QUERY_CHARS:
                raise BadRequest(f"query must be at most {MAX_QUERY_CHARS} characters")
            k = request.k or self._settings.search_default_k
            if not 1 <= k <= self._settings.search_max_k:
                raise BadRequest(f"k must be between 1 and {self._settings.search_max_k}")
            mode = request.mode or (retrieval_pb2.SEARCH_MODE_DENSE if request.vector else self._default_mode)
            if mode not in _MODES.values():
                raise BadRequest(f"mode {request.mode} is not a SearchMode")
            if request.vector and mode != retrieval_pb2.SEARCH_MODE_DENSE:
                raise BadRequest("a vector can only be searched in dense mode")
            rerank = self._rerank(request)
            depth = self._reranking.depth(k) if rerank else k
            collection = await self._catalog.get(tenant, name, create=False)
            if collection is None:
                if request.collection:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"tenant {tenant!r} has no collection {name!r}")
                return retrieval_pb2.SearchResponse()
            keyword_fallback = False
            allowed = collection.matching(dict(request.filter)) if request.filter else None
            if request.vector:
                vector = _query_vector(request.vector, collection.dimension)
            elif mode != retrieval_pb2.SEARCH_MODE_KEYWORD:
                embedder = await self._query_embedder(collection)
                if embedder is None and collection.embedded_by == "caller":
                    raise EmbeddingMismatch(
                        f"collection {name!r} holds vectors of {collection.embedding_model}, which this service "
                        "cannot embed a query with: search it by vector or in keyword mode"
                    )
                if embedder is None:
                    # Being re-embedded, and its old model is gone: keyword search answers, and says so.
                    mode, keyword_fallback = retrieval_pb2.SEARCH_MODE_KEYWORD, True
                else:
                    model = {"embedding.model": embedder.model_name}
                    with _tracer.start_as_current_span("embed query", attributes=model):
                        embedded = self._embedded.get(query) if embedder is self._embedder else None
                        vector = embedded if embedded is not None else (await embedder.embed([query]))[0]
            attributes: dict[str, str | int] = {
                "retrieval.mode": _MODE_NAMES[mode],
                "retrieval.k": k,
                "retrieval.chunks": collection.chunk_count,
            }
            with _tracer.start_as_current_span(f"{_MODE_NAMES[mode]} search", attributes=attributes):
                if mode == retrieval_pb2.SEARCH_MODE_KEYWORD:
                    ranked = collection.keyword(query, depth, allowed)
                elif mode == retrieval_pb2.SEARCH_MODE_DENSE:
                    ranked = collection.dense(vector, depth, allowed)
                else:
                    ranked = hybrid(collection, query, vector, depth, allowed)
            reranked = False
            if rerank:
                with _tracer.start_as_current_span("rerank", attributes={"rerank.candidates": len(ranked)}) as span:
                    ranked, reranked = await self._reranking.apply(
                        query, ranked, lambda row: collection.chunk(row).text, k
                    )
                    span.set_attribute("rerank.ok", reranked)
        hits = []
        for row, score in ranked:
            if request.HasField("min_score") and score < request.min_score:
                continue
            chunk = collection.chunk(row)
            hits.append(
                retrieval_pb2.SearchHit(
                    document_id=chunk.document_id,
                    chunk_id=chunk.chunk_id,
                    text=chunk.text,
                    score=score,
                    metadata=chunk.metadata,
                )
            )
        return retrieval_pb2.SearchResponse(hits=hits, keyword_fallback=keyword_fallback, reranked=reranked)

    def _rerank(self, request: retrieval_pb2.SearchRequest) -> bool:
        """Whether this search is reranked: as it asks, else as the service is configured (query searches only)."""
        if not request.HasField("rerank"):
            return self._reranking.reranker is not None and not request.vector
        if request.rerank and self._reranking.reranker is None:
            raise BadRequest("rerank: this service has no reranker (RETRIEVAL_RERANKER is off)")
        if request.rerank and request.vector:
            raise BadRequest("rerank needs query text; a vector search cannot be reranked")
        return request.rerank

    async def close(self) -> None:
        """Release what the reranker holds (the chat reranker's HTTP connections)."""
        await self._reranking.aclose()

    async def Embed(self, request: retrieval_pb2.EmbedRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            texts = [text.strip() for text in request.texts]
            if not 1 <= len(texts) <= MAX_EMBED_TEXTS:
                raise BadRequest(f"texts: give 1 to {MAX_EMBED_TEXTS}")
            if any(not text or len(text) > MAX_QUERY_CHARS for text in texts):
                raise BadRequest(f"texts must be non-blank and at most {MAX_QUERY_CHARS} characters each")
            model = {"embedding.model": self._embedder.model_name}
            with _tracer.start_as_current_span("embed texts", attributes=model):
                vectors = await self._embedder.embed(texts)
        for text, vector in zip(texts, vectors, strict=True):
            self._embedded[text] = vector
            self._embedded.move_to_end(text)
        while len(self._embedded) > _EMBEDDED_KEPT:
            self._embedded.popitem(last=False)
        return retrieval_pb2.EmbedResponse(
            embeddings=[retrieval_pb2.Embedding(values=vector.tolist()) for vector in vectors],
            model=self._embedder.model_name,
            model_version=self._embedder.model_version,
        )

    async def _query_embedder(self, collection: Collection) -> Embedder | None:
        """The embedder whose query vectors compare with the collection's, or None when there is none here."""
        if collection.embedded_by == "caller":
            # The caller named the model; the service can embed a query only if it runs a model of that name.
            return self._embedder if collection.embedding_model == self._embedder.model_name else None
        writer, _ = await self._writer(collection)
        return writer

    async def DeleteDocuments(
        self, request: retrieval_pb2.DeleteDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            name = check_name(request.collection or DEFAULT_COLLECTION, "collection")
            if bool(request.document_ids) == bool(request.filter):
                raise BadRequest("give either document_ids or filter")
            ids = list(dict.fromkeys(request.document_ids))
            deleted = await self.delete_documents(tenant, name, ids, dict(request.filter))
        return retrieval_pb2.DeleteDocumentsResponse(deleted=deleted)

    async def delete_documents(self, tenant: str, name: str, ids: list[str], metadata_filter: dict[str, str]) -> int:
        """Delete the documents with these ids, or else those matching the filter; returns how many existed."""
        async with self._catalog.write_lock(tenant, name):
            # Looked up and resolved under the lock, so a concurrent ingest cannot slip a match past the delete
            # and a collection deleted meanwhile is not written to.
            collection = await self._catalog.get(tenant, name, create=False)
            if collection is None:
                return 0
            if metadata_filter:
                ids = collection.documents_matching(metadata_filter)
            deleted = await asyncio.to_thread(collection.delete, ids)
            collection.forget(ids)
        return deleted

    async def DeleteCollection(
        self, request: retrieval_pb2.DeleteCollectionRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            name = check_name(request.collection, "collection")
            deleted = await self.delete_collection(tenant, name)
        return retrieval_pb2.DeleteCollectionResponse(deleted=deleted)

    async def delete_collection(self, tenant: str, name: str) -> bool:
        """Delete one collection of the tenant with all its files; False when there was none."""
        if self._reembedder is not None:
            await self._reembedder.forget(tenant, name)
        return await self._catalog.drop(tenant, name)

    async def erase(self, tenant: str, user: str | None) -> int:
        """Act on a DataErased event: a whole tenant's collections go; for one user, the documents whose
        metadata names that ``user_id``. Returns the collections or documents deleted. Idempotent."""
        if not is_tenant_id(tenant):
            return 0  # a name the API refuses has no collections, and must not become a path
        if user is None:
            if self._reembedder is not None:
                await self._reembedder.forget(tenant)
            return len(await self._catalog.drop_tenant(tenant))
        deleted = 0
        for name in await self._catalog.names(tenant):
            deleted += await self.delete_documents(tenant, name, [], {"user_id": user})
        return deleted

    async def ListCollections(
        self, request: retrieval_pb2.ListCollectionsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            stats = []
            for name in await self._catalog.names(tenant):
                collection = await self._catalog.get(tenant, name, create=False)
                if collection is None:
                    continue
                stats.append(
                    retrieval_pb2.CollectionStats(
                        name=name,
                        document_count=collection.document_count,
                        chunk_count=collection.chunk_count,
                        dimension=collection.dimension,
                        index_type=collection.index_type,
                        embedding_model=collection.embedding_model,
                        embedding_model_version=collection.embedding_version,
                        **self._reembedding(tenant, name, collection),
                    )
                )
        return retrieval_pb2.ListCollectionsResponse(collections=stats)

    def _reembedding(self, tenant: str, name: str, collection: Collection) -> dict[str, Any]:
        done = self._reembedder.progress(tenant, name) if self._reembedder is not None else None
        if done is None or collection.closed:
            return {}
        return {
            "reembedding_model": self._embedder.model_name,
            "reembedding_model_version": self._embedder.model_version,
            "reembedded_chunks": done,
        }

    async def ListDocuments(
        self, request: retrieval_pb2.ListDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            name = check_name(request.collection or DEFAULT_COLLECTION, "collection")
            if request.limit < 0 or request.offset < 0:
                raise BadRequest("limit and offset must not be negative")
            collection = await self._catalog.get(tenant, name, create=False)
            listed = collection.documents() if collection is not None else []
        page = listed[request.offset : request.offset + (request.limit or _DEFAULT_PAGE)]
        return retrieval_pb2.ListDocumentsResponse(
            documents=[
                retrieval_pb2.DocumentSummary(document_id=document_id, chunk_count=chunks, metadata=metadata)
                for document_id, chunks, metadata in page
            ],
            total=len(listed),
        )

    async def GetDocuments(self, request: retrieval_pb2.GetDocumentsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with abort_on_error(context):
            tenant = check_tenant_id(request.tenant_id)
            name = check_name(request.collection or DEFAULT_COLLECTION, "collection")
            if len(request.document_ids) > self._settings.search_max_k:
                raise BadRequest(f"ask for at most {self._settings.search_max_k} documents at a time")
            collection = await self._catalog.get(tenant, name, create=False)
        chunks = []
        if collection is not None:
            for document_id in dict.fromkeys(request.document_ids):
                # Rows grow with each write, so their order is the chunks' order within a document.
                for row in sorted(collection.matching({"document_id": document_id})):
                    chunk = collection.chunk(row)
                    chunks.append(
                        retrieval_pb2.StoredChunk(
                            document_id=chunk.document_id,
                            chunk_id=chunk.chunk_id,
                            text=chunk.text,
                            metadata=chunk.metadata,
                        )
                    )
        return retrieval_pb2.GetDocumentsResponse(chunks=chunks)
