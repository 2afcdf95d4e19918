"""Threadline's retrieval service as a LangChain ``VectorStore``, over its gRPC API.

Two ways to embed:

- with ``embedding`` (any LangChain ``Embeddings``), this client embeds texts and queries
  itself and sends the vectors: each text is stored as one chunk, and the collection
  records the model's name, so it is never mixed with another model's vectors;
- without, the service chunks and embeds with its own model, and queries are searched in
  its default mode (hybrid) or ``search_mode``: a collection the gateway's ingest filled can
  be searched from LangChain this way.

The sync methods use a blocking channel, the ``a``-prefixed ones a ``grpc.aio`` channel
opened in the calling event loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Self

import grpc
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1 import retrieval_pb2_grpc

from langchain_threadline.codec import from_stored, model_name, to_document, to_filter

SearchMode = Literal["dense", "keyword", "hybrid"]
_MODES: dict[SearchMode | None, int] = {
    None: pb.SEARCH_MODE_UNSPECIFIED,
    "dense": pb.SEARCH_MODE_DENSE,
    "keyword": pb.SEARCH_MODE_KEYWORD,
    "hybrid": pb.SEARCH_MODE_HYBRID,
}
# The service reads at most this many ids in one GetDocuments call (its SEARCH_MAX_K default).
_GET_BATCH = 100
_AioStub = tuple[asyncio.AbstractEventLoop, grpc.aio.Channel, retrieval_pb2_grpc.RetrievalServiceStub]


class ThreadlineVectorStore(VectorStore):
    """One tenant's collection in a Threadline retrieval service.

    Args:
        target: the retrieval service's gRPC address, ``host:port``.
        tenant_id: the tenant whose collection this is (the service trusts its callers with it).
        collection: the collection's name; created by the first write.
        embedding: embeds on this side; None lets the service embed.
        embedding_model: the name the collection records for ``embedding``'s vectors
            (default: the model's ``model`` attribute, or its class name).
        search_mode: how text queries are searched when the service embeds them.
        credentials: TLS credentials for the channel; None: plaintext.
        timeout_s: the deadline of each call.
        batch_size: documents per ingest call, to stay under gRPC's message size limit.
    """

    def __init__(
        self,
        target: str,
        tenant_id: str,
        collection: str = "default",
        embedding: Embeddings | None = None,
        *,
        embedding_model: str | None = None,
        search_mode: SearchMode | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout_s: float = 30.0,
        batch_size: int = 64,
    ) -> None:
        self.target = target
        self.tenant_id = tenant_id
        self.collection = collection
        self._embedding = embedding
        self._model = (embedding_model or model_name(embedding)) if embedding is not None else ""
        self._mode = search_mode
        self._credentials = credentials
        self._timeout_s = timeout_s
        self._batch_size = batch_size
        self._channel: grpc.Channel | None = None
        self._stub: retrieval_pb2_grpc.RetrievalServiceStub | None = None
        # A grpc.aio channel belongs to the loop it was made in: a call from another loop makes a new one.
        self._aio: _AioStub | None = None

    @property
    def embeddings(self) -> Embeddings | None:
        return self._embedding

    # Channels

    def _sync_stub(self) -> retrieval_pb2_grpc.RetrievalServiceStub:
        if self._stub is None:
            self._channel = (
                grpc.secure_channel(self.target, self._credentials)
                if self._credentials
                else grpc.insecure_channel(self.target)
            )
            self._stub = retrieval_pb2_grpc.RetrievalServiceStub(self._channel)
        return self._stub

    def _async_stub(self) -> retrieval_pb2_grpc.RetrievalServiceStub:
        loop = asyncio.get_running_loop()
        if self._aio is None or self._aio[0] is not loop:
            channel = (
                grpc.aio.secure_channel(self.target, self._credentials)
                if self._credentials
                else grpc.aio.insecure_channel(self.target)
            )
            self._aio = (loop, channel, retrieval_pb2_grpc.RetrievalServiceStub(channel))
        return self._aio[2]

    def close(self) -> None:
        """Close the blocking channel (an async one closes with :meth:`aclose`)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = self._stub = None

    async def aclose(self) -> None:
        if self._aio is not None and self._aio[0] is asyncio.get_running_loop():
            await self._aio[1].close()
        self._aio = None
        self.close()

    # Requests and replies, shared by the sync and async methods

    def _ingest_requests(
        self,
        texts: list[str],
        metadatas: list[dict[str, Any]] | None,
        ids: Sequence[str | None] | None,
        vectors: list[list[float]] | None,
    ) -> tuple[list[str], list[pb.IngestRequest]]:
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"got {len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids for {len(texts)} texts")
        # Ids are made here, not by the service: its default (a hash of the text) would merge equal texts.
        final_ids = [i or str(uuid.uuid4()) for i in ids] if ids is not None else [str(uuid.uuid4()) for _ in texts]
        documents = [
            to_document(final_ids[n], text, metadatas[n] if metadatas else {}, vectors[n] if vectors else None)
            for n, text in enumerate(texts)
        ]
        requests = [
            pb.IngestRequest(
                tenant_id=self.tenant_id,
                collection=self.collection,
                documents=documents[start : start + self._batch_size],
                embedding_model=self._model if vectors is not None else "",
            )
            for start in range(0, len(documents), self._batch_size)
        ]
        return final_ids, requests

    def _search_request(
        self, k: int, filter: dict[str, Any] | None, query: str = "", vector: list[float] | None = None
    ) -> pb.SearchRequest:
        # Searched by vector when there is one: the service takes a query or a vector, not both.
        return pb.SearchRequest(
            tenant_id=self.tenant_id,
            collection=self.collection,
            query="" if vector else query,
            vector=vector or [],
            k=k,
            mode=pb.SEARCH_MODE_DENSE if vector else _MODES[self._mode],
            filter=to_filter(filter),
        )

    def _delete_request(self, ids: list[str] | None, filter: dict[str, Any] | None) -> pb.DeleteDocumentsRequest:
        if (ids is None) == (filter is None):
            raise ValueError("give either ids or filter")
        return pb.DeleteDocumentsRequest(
            tenant_id=self.tenant_id, collection=self.collection, document_ids=ids or [], filter=to_filter(filter)
        )

    def _get_requests(self, ids: Sequence[str]) -> list[pb.GetDocumentsRequest]:
        return [
            pb.GetDocumentsRequest(
                tenant_id=self.tenant_id, collection=self.collection, document_ids=ids[start : start + _GET_BATCH]
            )
            for start in range(0, len(ids), _GET_BATCH)
        ]

    @staticmethod
    def _hits(response: pb.SearchResponse) -> list[tuple[Document, float]]:
        return [(from_stored(hit.document_id, hit.text, hit.metadata), hit.score) for hit in response.hits]

    @staticmethod
    def _chunks(response: pb.GetDocumentsResponse) -> list[Document]:
        return [from_stored(chunk.document_id, chunk.text, chunk.metadata) for chunk in response.chunks]

    def _vector_of(self, query: str) -> list[float] | None:
        return self._embedding.embed_query(query) if self._embedding is not None else None

    async def _avector_of(self, query: str) -> list[float] | None:
        return await self._embedding.aembed_query(query) if self._embedding is not None else None

    # Writing

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Store ``texts``, replacing any document with the same id; returns the ids, made up where not given."""
        texts = list(texts)
        vectors = self._embedding.embed_documents(texts) if self._embedding is not None and texts else None
        final_ids, requests = self._ingest_requests(texts, metadatas, ids, vectors)
        for request in requests:
            self._sync_stub().Ingest(request, timeout=self._timeout_s)
        return final_ids

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        texts = list(texts)
        vectors = await self._embedding.aembed_documents(texts) if self._embedding is not None and texts else None
        final_ids, requests = self._ingest_requests(texts, metadatas, ids, vectors)
        for request in requests:
            await self._async_stub().Ingest(request, timeout=self._timeout_s)
        return final_ids

    def delete(self, ids: list[str] | None = None, *, filter: dict[str, Any] | None = None, **kwargs: Any) -> bool:
        """Delete the documents with these ids, or those matching ``filter``; unknown ids are no error."""
        self._sync_stub().DeleteDocuments(self._delete_request(ids, filter), timeout=self._timeout_s)
        return True

    async def adelete(
        self, ids: list[str] | None = None, *, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> bool:
        await self._async_stub().DeleteDocuments(self._delete_request(ids, filter), timeout=self._timeout_s)
        return True

    # Reading

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in that order; a document the service chunked comes back per chunk."""
        stub = self._sync_stub()
        return [
            document
            for request in self._get_requests(ids)
            for document in self._chunks(stub.GetDocuments(request, timeout=self._timeout_s))
        ]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        stub = self._async_stub()
        documents = []
        for request in self._get_requests(ids):
            documents += self._chunks(await stub.GetDocuments(request, timeout=self._timeout_s))
        return documents

    def _search(self, request: pb.SearchRequest) -> list[tuple[Document, float]]:
        try:
            return self._hits(self._sync_stub().Search(request, timeout=self._timeout_s))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:  # no collection yet: nothing is similar
                return []
            raise

    async def _asearch(self, request: pb.SearchRequest) -> list[tuple[Document, float]]:
        try:
            return self._hits(await self._async_stub().Search(request, timeout=self._timeout_s))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return []
            raise

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` best chunks for ``query`` with their scores (cosine similarity when searched by vector)."""
        return self._search(self._search_request(k, filter, query=query, vector=self._vector_of(query)))

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return await self._asearch(self._search_request(k, filter, query=query, vector=await self._avector_of(query)))

    def similarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [document for document, _ in self.similarity_search_with_score(query, k, filter)]

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [document for document, _ in await self.asimilarity_search_with_score(query, k, filter)]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return self._search(self._search_request(k, filter, vector=embedding))

    async def asimilarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return await self._asearch(self._search_request(k, filter, vector=embedding))

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [document for document, _ in self.similarity_search_with_score_by_vector(embedding, k, filter)]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [document for document, _ in await self.asimilarity_search_with_score_by_vector(embedding, k, filter)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self._embedding is None and self._mode != "dense":
            # Hybrid scores are fused ranks and keyword scores BM25: neither maps onto [0, 1].
            raise NotImplementedError("relevance scores need dense search: pass an embedding or search_mode='dense'")
        return lambda cosine: (1.0 + cosine) / 2.0

    # Construction

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A store over ``kwargs`` (``target``, ``tenant_id``, ``collection``, ...) holding ``texts``."""
        store = cls(embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        store = cls(embedding=embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store
