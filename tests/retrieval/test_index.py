"""The FAISS index a collection picks by size: the switch, recall against exact search, filters that
still return k, deletes, and a restart that reloads the saved index instead of rebuilding it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline_retrieval.chunking import Chunk
from threadline_retrieval.collection import Collection, NewDocument
from threadline_retrieval.index import IndexParams, VectorIndex, build, choose

from tests.retrieval.conftest import Server

DIMENSION = 32
APPROXIMATE = ["ivf", "hnsw", "ivfpq"]


def clustered(n: int, dimension: int = DIMENSION, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors around ``clusters`` centres: embeddings of real text cluster by topic like this."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dimension)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, n)] + 0.4 * rng.standard_normal((n, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def open_collection(path: Path, **params: object) -> Collection:
    return Collection(path / "c.sqlite3", "toy", DIMENSION, index=IndexParams(**params))


def ingest(collection: Collection, vectors: np.ndarray, start: int = 0, groups: int = 100) -> None:
    """One-chunk documents ``doc-{n}`` in metadata group ``n % groups``, written and applied as the service does."""
    documents = [
        NewDocument(f"doc-{n}", [Chunk(f"chunk {n}", {"group": str(n % groups)})], vectors[i : i + 1])
        for i, n in enumerate(range(start, start + len(vectors)))
    ]
    collection.apply([d.document_id for d in documents], collection.write(documents))


def documents(collection: Collection, hits: list[tuple[int, float]]) -> list[str]:
    return [collection.chunk(row).document_id for row, _ in hits]


def recall_at(k: int, exact: VectorIndex, approximate: VectorIndex, queries: np.ndarray, allowed=None) -> float:
    found = 0
    for query in queries:
        truth = {row for row, _ in exact.search(query, k, allowed)}
        found += len(truth & {row for row, _ in approximate.search(query, k, allowed)})
    return found / (k * len(queries))


def test_exact_up_to_the_threshold_then_the_configured_index() -> None:
    assert choose(IndexParams(exact_max_chunks=100), 100) == "flat"
    assert choose(IndexParams(exact_max_chunks=100), 101) == "ivf"
    assert choose(IndexParams(index="hnsw", exact_max_chunks=100), 101) == "hnsw"
    assert choose(IndexParams(index="ivfpq", exact_max_chunks=100), 101) == "ivfpq"
    assert choose(IndexParams(index="flat", exact_max_chunks=100), 10**7) == "flat"


def test_a_collection_switches_to_ivf_when_it_crosses_the_threshold(tmp_path: Path) -> None:
    collection = open_collection(tmp_path, exact_max_chunks=300)
    vectors = clustered(600)
    ingest(collection, vectors[:300])
    assert collection.wait_for_index(60)
    assert collection.index_kind == "flat" and collection.index_type == "IndexFlatIP (exact)"
    assert not collection.index_path.exists()

    ingest(collection, vectors[300:], start=300)
    # While the IVF trains, the exact index keeps serving every row, and the stats say so.
    assert collection.index_type.startswith(("IndexFlatIP (exact); building ivf", "IndexIVFFlat"))
    assert len(collection.dense(vectors[599], 10)) == 10
    assert collection.wait_for_index(60)
    assert collection.index_kind == "ivf"
    assert collection.index_type.startswith("IndexIVFFlat nlist=")
    assert collection.index_path.exists()
    assert documents(collection, collection.dense(vectors[599], 1)) == ["doc-599"]
    collection.close()


def test_ivf_recall_at_10_against_exact_search_on_clustered_vectors() -> None:
    vectors = clustered(20_000, clusters=100)
    ids = np.arange(1, len(vectors) + 1, dtype=np.int64)
    queries = clustered(200, clusters=100, seed=1)  # the same centres, new points
    exact = build("flat", DIMENSION, ids, vectors, IndexParams())
    ivf = build("ivf", DIMENSION, ids, vectors, IndexParams())
    assert recall_at(10, exact, ivf, queries) >= 0.9


@pytest.mark.parametrize("kind", ["flat", *APPROXIMATE])
def test_a_filter_keeping_one_percent_of_rows_still_returns_k(kind: str) -> None:
    vectors = clustered(5_000)
    ids = np.arange(1, len(vectors) + 1, dtype=np.int64)
    # A small exact threshold so HNSW takes its filtered graph search, not the exact scan of few rows.
    params = IndexParams(exact_max_chunks=10, pq_m=8)
    index = build(kind, DIMENSION, ids, vectors, params)  # type: ignore[arg-type]
    allowed = {int(i) for i in ids[::100]}  # 50 rows, 1%
    for query in clustered(20, seed=2):
        hits = index.search(query, 10, allowed)
        assert len(hits) == 10 and {row for row, _ in hits} <= allowed
    assert len(index.search(vectors[0], 10, {1, 2, 3})) == 3  # fewer allowed than k: all of them
    if kind == "ivf":
        # IVF falls back to scanning every list for the allowed rows: exactly the exact answer.
        exact = build("flat", DIMENSION, ids, vectors, params)
        assert recall_at(10, exact, index, clustered(20, seed=2), allowed) == 1.0


def test_hnsw_scans_a_few_allowed_rows_exactly() -> None:
    vectors = clustered(2_000)
    ids = np.arange(1, 2_001, dtype=np.int64)
    params = IndexParams(exact_max_chunks=1_000)  # 20 allowed rows are well under it
    hnsw, exact = build("hnsw", DIMENSION, ids, vectors, params), build("flat", DIMENSION, ids, vectors, params)
    allowed = {int(i) for i in ids[::100]}
    for query in clustered(10, seed=4):
        hits = hnsw.search(query, 10, allowed)
        assert [row for row, _ in hits] == [row for row, _ in exact.search(query, 10, allowed)]
        expected = [score for _, score in exact.search(query, 10, allowed)]
        assert [score for _, score in hits] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("kind", APPROXIMATE)
def test_deleted_documents_are_never_found_by_the_approximate_index(tmp_path: Path, kind: str) -> None:
    collection = open_collection(tmp_path, index=kind, exact_max_chunks=100, pq_m=8)
    vectors = clustered(1_000)
    ingest(collection, vectors)
    assert collection.wait_for_index(120) and collection.index_kind == kind
    gone = [f"doc-{n}" for n in range(0, 1_000, 10)]
    collection.delete(gone)
    collection.forget(gone)
    for n in range(0, 1_000, 10):
        found = documents(collection, collection.dense(vectors[n], 10))
        assert len(found) == 10 and not set(found) & set(gone)
    assert not set(documents(collection, collection.dense(vectors[0], 10, collection.matching({"group": "0"}))))
    collection.close()


def test_hnsw_is_rebuilt_once_a_fifth_of_it_is_tombstones(tmp_path: Path) -> None:
    collection = open_collection(tmp_path, index="hnsw", exact_max_chunks=100)
    vectors = clustered(500)
    ingest(collection, vectors)
    assert collection.wait_for_index(60)
    before = collection._index
    gone = [f"doc-{n}" for n in range(150)]
    collection.delete(gone)
    collection.forget(gone)
    assert collection.wait_for_index(60)
    assert collection._index is not before and collection._index.kind == "hnsw"
    assert collection._index.size == 350 and collection._index.stored_ids().size == 350
    collection.close()


def test_a_tombstoned_row_added_again_is_revived_not_duplicated() -> None:
    # A row written but not yet applied when a build is swapped in is removed, then added by the apply.
    vectors = clustered(300)
    index = build("hnsw", DIMENSION, np.arange(1, 301, dtype=np.int64), vectors, IndexParams())
    index.remove([5])
    assert 5 not in {row for row, _ in index.search(vectors[4], 10)}
    index.add(np.array([5], dtype=np.int64), vectors[4:5])
    assert [row for row, _ in index.search(vectors[4], 10)].count(5) == 1
    assert index.size == 300 and index.stored_ids().size == 300


@pytest.mark.parametrize("kind", APPROXIMATE)
def test_writes_made_while_the_index_builds_are_in_it(tmp_path: Path, kind: str) -> None:
    collection = open_collection(tmp_path, index=kind, exact_max_chunks=1_000, pq_m=8)
    vectors = clustered(3_000)
    ingest(collection, vectors[:2_000])  # starts the build
    ingest(collection, vectors[2_000:], start=2_000)
    gone = [f"doc-{n}" for n in range(1_990, 2_010)]
    collection.delete(gone)
    collection.forget(gone)
    assert collection.wait_for_index(120) and collection.index_kind == kind
    assert collection._index.size == 2_980
    assert set(collection._index.stored_ids().tolist()) - collection._index._tombstones == set(collection._chunks)
    for n in range(1_980, 2_020):
        found = documents(collection, collection.dense(vectors[n], 10))
        assert not set(found) & set(gone)
        if f"doc-{n}" not in gone and kind != "ivfpq":  # PQ's approximate scores may rank a row below others
            assert f"doc-{n}" in found
    collection.close()


@pytest.mark.parametrize("kind", APPROXIMATE)
def test_a_restart_reloads_the_saved_index_with_the_same_results(tmp_path: Path, kind: str) -> None:
    params = {"index": kind, "exact_max_chunks": 200, "pq_m": 8}
    collection = open_collection(tmp_path, **params)
    vectors = clustered(1_000)
    ingest(collection, vectors[:800])
    assert collection.wait_for_index(120) and collection.index_kind == kind
    # After the save: one added, one deleted; the reopened index must catch up with SQLite.
    ingest(collection, vectors[800:801], start=800)
    collection.delete(["doc-3"])
    collection.forget(["doc-3"])
    queries = clustered(20, seed=3)
    before = [collection.dense(q, 10) for q in queries]
    description = collection.index_type
    collection.close()

    reopened = open_collection(tmp_path, **params)
    assert reopened.index_kind == kind and reopened.index_type == description
    assert reopened._builder is None  # loaded, not rebuilt
    assert [reopened.dense(q, 10) for q in queries] == before
    assert "doc-800" in documents(reopened, reopened.dense(vectors[800], 10))  # PQ scores are approximate
    assert "doc-3" not in documents(reopened, reopened.dense(vectors[3], 10))
    reopened.close()


def test_an_unreadable_index_file_is_rebuilt_from_the_collection(tmp_path: Path) -> None:
    collection = open_collection(tmp_path, exact_max_chunks=100)
    vectors = clustered(400)
    ingest(collection, vectors)
    assert collection.wait_for_index(60)
    collection.close()
    collection.index_path.write_bytes(b"not an index")

    reopened = open_collection(tmp_path, exact_max_chunks=100)
    assert reopened.index_kind == "flat"  # serves exactly while the IVF is rebuilt
    assert reopened.wait_for_index(60) and reopened.index_kind == "ivf"
    assert documents(reopened, reopened.dense(vectors[7], 1)) == ["doc-7"]
    reopened.close()


def test_a_failed_build_leaves_the_exact_index_serving_and_is_not_retried_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> None:
        raise MemoryError("no room for the index")

    collection = open_collection(tmp_path, exact_max_chunks=100)
    monkeypatch.setattr(VectorIndex, "save", fail)
    vectors = clustered(400)
    ingest(collection, vectors[:200])
    assert collection.wait_for_index(60) and collection.index_kind == "flat"
    builder = collection._builder
    ingest(collection, vectors[200:], start=200)
    assert collection._builder is builder  # no second attempt within the back-off
    assert documents(collection, collection.dense(vectors[7], 1)) == ["doc-7"]
    collection.close()


def test_a_collection_opened_with_another_index_setting_rebuilds(tmp_path: Path) -> None:
    collection = open_collection(tmp_path, exact_max_chunks=100)
    ingest(collection, clustered(400))
    assert collection.wait_for_index(60) and collection.index_kind == "ivf"
    collection.close()

    reopened = open_collection(tmp_path, index="hnsw", exact_max_chunks=100)
    assert reopened.wait_for_index(60) and reopened.index_kind == "hnsw"
    reopened.close()
    exact = open_collection(tmp_path, index="flat")
    assert exact.index_kind == "flat" and not exact.index_path.exists()
    exact.close()


async def _index_type(stub, collection: str = "vectors") -> str:
    stats = (await stub.ListCollections(pb.ListCollectionsRequest(tenant_id="acme"))).collections
    return next(c.index_type for c in stats if c.name == collection)


async def test_the_service_reports_the_index_it_switched_to_and_reloads_it(start_retrieval: Server) -> None:
    vectors = clustered(300)
    documents_ = [
        pb.Document(id=f"doc-{n}", text=f"chunk {n}", vector=vectors[n].tolist(), metadata={"group": str(n % 100)})
        for n in range(300)
    ]
    settings = {"RETRIEVAL_EXACT_MAX_CHUNKS": 100}
    search = pb.SearchRequest(
        tenant_id="acme", collection="vectors", vector=vectors[7].tolist(), k=3, filter={"group": "7"}
    )
    async with start_retrieval(**settings) as stub:
        request = pb.IngestRequest(tenant_id="acme", collection="vectors", documents=documents_, embedding_model="toy")
        await stub.Ingest(request)
        for _ in range(300):
            if (await _index_type(stub)).startswith("IndexIVFFlat"):
                break
            await asyncio.sleep(0.1)
        assert (await _index_type(stub)).startswith("IndexIVFFlat nlist=")
        hits = (await stub.Search(search)).hits
        assert len(hits) == 3 and hits[0].document_id == "doc-7"
        assert {h.metadata["group"] for h in hits} == {"7"}
    async with start_retrieval(**settings) as stub:
        assert (await _index_type(stub)).startswith("IndexIVFFlat nlist=")  # loaded from its file at once
        assert [h.document_id for h in (await stub.Search(search)).hits] == [h.document_id for h in hits]
