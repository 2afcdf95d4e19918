"""A collection's keyword language over real gRPC: chosen at creation, kept on disk, refused when unknown."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc
import numpy as np
import pytest
import Stemmer  # type: ignore[import-not-found]
from threadline.languages import LANGUAGES
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline_retrieval.catalog import Catalog
from threadline_retrieval.collection import SCHEMA, Collection

from tests.retrieval.conftest import Server

FRENCH = pb.Document(id="foin.txt", text="Les chevaux mangeaient du foin dans la grange.")
ENGLISH = pb.Document(id="runs.txt", text="The scheduler runs every job twice.")


async def ingest(stub, document: pb.Document, collection: str, language: str = "") -> pb.IngestResponse:
    return await stub.Ingest(
        pb.IngestRequest(tenant_id="acme", collection=collection, documents=[document], language=language)
    )


async def keyword(stub, query: str, collection: str) -> list[str]:
    reply = await stub.Search(
        pb.SearchRequest(tenant_id="acme", collection=collection, query=query, mode=pb.SEARCH_MODE_KEYWORD)
    )
    return [hit.document_id for hit in reply.hits]


async def test_a_collection_keeps_its_language_across_a_restart(start_retrieval: Server, tmp_path: Path) -> None:
    data_dir = tmp_path / "kept"
    async with start_retrieval(data_dir) as stub:
        await ingest(stub, FRENCH, "fr", language="french")
        await ingest(stub, FRENCH, "en")
        assert await keyword(stub, "cheval manger", "fr") == ["foin.txt"]
        assert await keyword(stub, "cheval manger", "en") == []
    async with start_retrieval(data_dir) as stub:
        assert await keyword(stub, "cheval manger", "fr") == ["foin.txt"]
        # A later ingest that names no language adds to the collection in the one it was made with.
        await ingest(stub, pb.Document(id="lait.txt", text="Les vaches donnent du lait."), "fr")
        assert await keyword(stub, "vache", "fr") == ["lait.txt"]
        assert await keyword(stub, "cheval", "en") == []


async def test_an_unknown_language_is_invalid_argument_and_creates_nothing(retrieval) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ingest(retrieval, ENGLISH, "new", language="klingon")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown language 'klingon'" in raised.value.details()
    listed = await retrieval.ListCollections(pb.ListCollectionsRequest(tenant_id="acme"))
    assert [c.name for c in listed.collections] == []


async def test_another_language_for_an_existing_collection_is_failed_precondition(retrieval) -> None:
    await ingest(retrieval, ENGLISH, "docs", language="english")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ingest(retrieval, FRENCH, "docs", language="french")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is in english, not french" in raised.value.details()
    assert await keyword(retrieval, "cheval", "docs") == []


async def test_a_collection_from_before_languages_were_kept_opens_in_english(
    start_retrieval: Server, tmp_path: Path
) -> None:
    data_dir = tmp_path / "old"
    async with start_retrieval(data_dir) as stub:
        await ingest(stub, ENGLISH, "legacy")
    path = data_dir / "acme" / "legacy.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE key = 'keyword_language'")
    db.close()
    async with start_retrieval(data_dir) as stub:
        assert await keyword(stub, "running", "legacy") == ["runs.txt"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'keyword_language'").fetchone() == ("english",)
    db.close()


async def test_a_new_generation_swapped_in_keeps_the_collections_language(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path, "model-a", 2)
    try:
        collection = await catalog.get("acme", "fr", create=True, language="french")
        assert collection is not None
        # A re-embedding's generation records its vectors' model only, as reembed.py writes it.
        generation = catalog.next_generation_path("acme", "fr")
        generation.parent.mkdir(parents=True)
        db = sqlite3.connect(generation, isolation_level=None)
        db.executescript(SCHEMA)
        Collection.record_embedding(db, "model-b", 2, "")
        db.execute(
            "INSERT INTO chunks (document_id, chunk_id, text, metadata, vector) VALUES (?, ?, ?, '{}', ?)",
            ("foin.txt", "foin.txt#0", FRENCH.text, np.ones(2, dtype=np.float32).tobytes()),
        )
        db.close()
        swapped = await catalog.swap("acme", "fr", generation)
        assert (swapped.embedding_model, swapped.language) == ("model-b", "french")
        assert [row for row, _ in swapped.keyword("cheval manger", 3)] != []
    finally:
        catalog.close()


def test_the_shared_language_list_is_what_pystemmer_stems() -> None:
    # The gateway refuses languages by threadline.languages without PyStemmer: the two must not drift apart.
    assert LANGUAGES == frozenset(Stemmer.algorithms())


def test_a_collection_from_before_stop_words_drops_them_once_opened(tmp_path: Path) -> None:
    # A French collection as a service without French stop words left it: the file holds chunk texts, never
    # index terms, so the keyword index rebuilt at open is the new analyser's and no migration is needed.
    path = tmp_path / "acme" / "fr.sqlite3"
    path.parent.mkdir()
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA)
    Collection.record_embedding(db, "model-a", 2, "")
    db.execute("INSERT INTO meta (key, value) VALUES ('keyword_language', 'french')")
    db.execute(
        "INSERT INTO chunks (document_id, chunk_id, text, metadata, vector) VALUES (?, ?, ?, '{}', ?)",
        ("foin.txt", "foin.txt#0", FRENCH.text, np.ones(2, dtype=np.float32).tobytes()),
    )
    assert {key for (key,) in db.execute("SELECT key FROM meta")} == {
        "embedding_model",
        "dimension",
        "embedding_model_version",
        "embedded_by",
        "keyword_language",
    }
    db.close()
    collection = Collection(path, "model-a", 2)
    try:
        assert collection.language == "french"
        assert collection.keyword("les du dans la", 3) == []
        assert [row for row, _ in collection.keyword("la grange", 3)] == [1]
    finally:
        collection.close()
