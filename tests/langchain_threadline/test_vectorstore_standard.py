"""LangChain's standard VectorStore tests, run against a real retrieval service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests
from langchain_threadline import ThreadlineVectorStore


class TestThreadlineVectorStore(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, retrieval_target: str, collection: str) -> Iterator[VectorStore]:  # type: ignore[override]
        """An empty store: a collection of its own, which the module's data directory discards."""
        store = ThreadlineVectorStore(retrieval_target, "acme", collection, self.get_embeddings())
        try:
            yield store
        finally:
            store.close()
