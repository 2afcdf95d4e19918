"""One tenant's collection: a SQLite file is the record, FAISS and BM25 are views rebuilt from it.

A write commits to SQLite (WAL, synchronous=FULL) before the in-memory indexes change,
so an acknowledged ingest survives a crash, and a restart rebuilds exactly what was
acknowledged. Writes are serialised by the caller; reads never see a half-applied write
because the in-memory update runs without yielding to the event loop.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from threadline_retrieval.chunking import Chunk
from threadline_retrieval.keyword import KeywordIndex

INDEX_TYPE = "IndexIDMap2(IndexFlatIP)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL,
    chunk_id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (document_id);
"""


class EmbeddingMismatch(Exception):
    """The collection was built with another embedding model; its vectors are not comparable."""


@dataclass(frozen=True, slots=True)
class StoredChunk:
    document_id: str
    chunk_id: str
    text: str
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class NewDocument:
    document_id: str
    chunks: list[Chunk]
    vectors: np.ndarray


class Collection:
    def __init__(self, path: Path, embedding_model: str, dimension: int, embedding_version: str = "") -> None:
        """Open (creating if needed) and load the collection at ``path``; blocking, call off the loop."""
        self.path = path
        self.embedding_model = embedding_model
        self.dimension = dimension
        self.embedding_version = embedding_version
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._check_embedding()
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._keywords = KeywordIndex()
        self._chunks: dict[int, StoredChunk] = {}
        self._documents: dict[str, list[int]] = {}
        self._load()

    def _check_embedding(self) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        # The version made this collection's vectors; a collection from before versions were kept has none.
        self.embedding_version = meta.pop("embedding_model_version", "" if meta else self.embedding_version)
        if not meta:
            self._db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("embedding_model", self.embedding_model),
                    ("dimension", str(self.dimension)),
                    ("embedding_model_version", self.embedding_version),
                ],
            )
        elif meta != {"embedding_model": self.embedding_model, "dimension": str(self.dimension)}:
            raise EmbeddingMismatch(
                f"collection {self.path.stem!r} was built with {meta.get('embedding_model')} "
                f"({meta.get('dimension')} dimensions), not {self.embedding_model} ({self.dimension}); "
                "re-ingest it into a new collection"
            )

    def _load(self) -> None:
        rows, vectors = [], []
        for row, document_id, chunk_id, text, metadata, vector in self._db.execute(
            "SELECT row, document_id, chunk_id, text, metadata, vector FROM chunks ORDER BY row"
        ):
            self._remember(row, StoredChunk(document_id, chunk_id, text, json.loads(metadata)))
            rows.append(row)
            vectors.append(np.frombuffer(vector, dtype=np.float32))
        if rows:
            self._index.add_with_ids(np.vstack(vectors), np.asarray(rows, dtype=np.int64))

    def _remember(self, row: int, chunk: StoredChunk) -> None:
        self._chunks[row] = chunk
        self._documents.setdefault(chunk.document_id, []).append(row)
        self._keywords.add(row, chunk.text)

    def _forget(self, document_ids: list[str]) -> list[int]:
        rows = [row for document_id in document_ids for row in self._documents.pop(document_id, [])]
        for row in rows:
            del self._chunks[row]
            self._keywords.remove(row)
        if rows:
            self._index.remove_ids(np.asarray(rows, dtype=np.int64))
        return rows

    @property
    def document_count(self) -> int:
        return len(self._documents)

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    def documents(self) -> list[tuple[str, int, dict[str, str]]]:
        """(document id, chunks, its first chunk's metadata) of every document, by id."""
        return [
            (document_id, len(rows), self._chunks[rows[0]].metadata)
            for document_id, rows in sorted(self._documents.items())
        ]

    def write(self, documents: list[NewDocument]) -> list[tuple[int, StoredChunk, np.ndarray]]:
        """Replace ``documents`` in SQLite (one transaction); blocking. Returns what :meth:`apply` needs."""
        added = []
        with _transaction(self._db):
            ids = [d.document_id for d in documents]
            self._db.executemany("DELETE FROM chunks WHERE document_id = ?", [(i,) for i in ids])
            for document in documents:
                for position, (chunk, vector) in enumerate(zip(document.chunks, document.vectors, strict=True)):
                    stored = StoredChunk(
                        document.document_id, f"{document.document_id}#{position}", chunk.text, chunk.metadata
                    )
                    cursor = self._db.execute(
                        "INSERT INTO chunks (document_id, chunk_id, text, metadata, vector) VALUES (?, ?, ?, ?, ?)",
                        (
                            stored.document_id,
                            stored.chunk_id,
                            stored.text,
                            json.dumps(stored.metadata),
                            np.asarray(vector, dtype=np.float32).tobytes(),
                        ),
                    )
                    added.append((int(cursor.lastrowid), stored, vector))
        return added

    def apply(self, document_ids: list[str], added: list[tuple[int, StoredChunk, np.ndarray]]) -> None:
        """Bring the in-memory indexes up to a committed :meth:`write`; fast, runs on the loop."""
        self._forget(document_ids)
        for row, chunk, _ in added:
            self._remember(row, chunk)
        if added:
            self._index.add_with_ids(
                np.vstack([vector for _, _, vector in added]).astype(np.float32),
                np.asarray([row for row, _, _ in added], dtype=np.int64),
            )

    def delete(self, document_ids: list[str]) -> int:
        """Delete documents from SQLite; blocking. Returns how many of them existed."""
        present = [i for i in document_ids if i in self._documents]
        with _transaction(self._db):
            self._db.executemany("DELETE FROM chunks WHERE document_id = ?", [(i,) for i in present])
        return len(present)

    def forget(self, document_ids: list[str]) -> None:
        """Drop deleted documents from the in-memory indexes; runs on the loop."""
        self._forget(document_ids)

    def chunk(self, row: int) -> StoredChunk:
        return self._chunks[row]

    def matching(self, metadata_filter: dict[str, str]) -> set[int]:
        """Rows whose metadata has every key of the filter (``document_id`` matches the document)."""
        return {
            row
            for row, chunk in self._chunks.items()
            if all(
                (chunk.document_id if key == "document_id" else chunk.metadata.get(key)) == value
                for key, value in metadata_filter.items()
            )
        }

    def documents_matching(self, metadata_filter: dict[str, str]) -> list[str]:
        """Ids of the documents with at least one chunk matching the filter, by id."""
        return sorted({self._chunks[row].document_id for row in self.matching(metadata_filter)})

    def dense(self, vector: np.ndarray, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """The ``k`` nearest rows by cosine similarity, best first."""
        if not self._chunks or (allowed is not None and not allowed):
            return []
        params = selector = None
        if allowed is not None:
            # Named, so the selector outlives the search: SearchParameters does not keep it alive.
            selector = faiss.IDSelectorBatch(np.fromiter(allowed, dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)
        scores, rows = self._index.search(vector.reshape(1, -1), min(k, len(self._chunks)), params=params)
        return [(int(row), float(score)) for row, score in zip(rows[0], scores[0], strict=True) if row >= 0]

    def keyword(self, query: str, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        return self._keywords.search(query, k, allowed)

    def close(self) -> None:
        self._db.close()


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
