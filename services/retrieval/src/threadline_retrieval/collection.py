"""One tenant's collection: a SQLite file is the record, FAISS and BM25 are views rebuilt from it.

A write commits to SQLite (WAL, synchronous=FULL) before the in-memory indexes change,
so an acknowledged ingest survives a crash, and a restart rebuilds exactly what was
acknowledged. Writes are serialised by the caller; reads never see a half-applied write
because the in-memory update runs without yielding to the event loop.

An approximate FAISS index (see :mod:`threadline_retrieval.index`) is built in a background
thread once the collection outgrows exact search, saved beside the SQLite file as
``{name}.faiss``, and swapped in under the collection's lock; until then the exact index
keeps serving. At open, a saved index is reconciled with the rows in SQLite, never trusted.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import structlog
from threadline.grpc import FailedPrecondition

from threadline_retrieval import index as vector_index
from threadline_retrieval.chunking import Chunk
from threadline_retrieval.index import IndexParams, VectorIndex
from threadline_retrieval.keyword import DEFAULT_LANGUAGE, KeywordIndex, check_language

log = structlog.get_logger("threadline_retrieval")
# Rows fetched per SQLite query when an index catches up with rows it was built without.
_FETCH_BATCH = 500
# A failed index build (disk full, out of memory) is retried after this long, not on every write.
_RETRY_BUILD_S = 60.0

# The meta key of the language a collection's keyword index stems in.
LANGUAGE_KEY = "keyword_language"

SCHEMA = """
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


# Who made a collection's vectors: the service (it can re-embed the stored text with a new model) or the caller.
EmbeddedBy = Literal["service", "caller"]


def embedded_by(recorded: str | None, version: str) -> EmbeddedBy:
    """Who made the vectors, as recorded; a collection from before this was recorded was the service's if it
    records a model version (only the service's local model reports one), else it is taken for the caller's."""
    if recorded in ("service", "caller"):
        return recorded  # type: ignore[return-value]
    return "service" if version else "caller"


class EmbeddingMismatch(FailedPrecondition):
    """The collection was built with another embedding model; its vectors are not comparable."""


class LanguageMismatch(FailedPrecondition):
    """The collection's keyword index stems in another language; it has one for all its chunks."""


def require_language(collection: Collection, language: str) -> None:
    """Refuse ``language`` (checked) for a collection made with another one."""
    if collection.language != language:
        raise LanguageMismatch(
            f"collection {collection.path.stem!r} is in {collection.language}, not {language}; use another collection"
        )


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
    def __init__(
        self,
        path: Path,
        embedding_model: str,
        dimension: int,
        embedding_version: str = "",
        index: IndexParams | None = None,
        embedded_by: EmbeddedBy = "service",
        language: str = DEFAULT_LANGUAGE,
    ) -> None:
        """Open (creating if needed) and load the collection at ``path``; blocking, call off the loop.

        ``language`` is what a file recording none gets (a new one, or one from before languages were
        kept: those were English); a file that records one keeps it.
        """
        self.path = path
        self.index_path = path.with_suffix(".faiss")
        self._params = index or IndexParams()
        self.embedding_model = embedding_model
        self.dimension = dimension
        self.embedding_version = embedding_version
        self.embedded_by: EmbeddedBy = embedded_by
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._check_embedding()
        self.language = self._check_language(language)
        # Guards the swap of the vector index by the background builder against searches and updates.
        self._lock = threading.Lock()
        self._index: VectorIndex
        self._builder: threading.Thread | None = None
        self._building: vector_index.Kind | None = None
        self._retry_build_at = 0.0
        self._closed = False
        self._keywords = KeywordIndex(self.language)
        self._chunks: dict[int, StoredChunk] = {}
        self._documents: dict[str, list[int]] = {}
        self._load()

    def _check_language(self, language: str) -> str:
        """The language the file records, else ``language``, recorded now so that a restart keeps it."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (LANGUAGE_KEY,)).fetchone()
        if row is not None:
            return check_language(row[0])
        language = check_language(language)
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (LANGUAGE_KEY, language))
        return language

    def _check_embedding(self) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta WHERE key != ?", (LANGUAGE_KEY,)).fetchall())
        # The version made this collection's vectors; a collection from before versions were kept has none.
        self.embedding_version = meta.pop("embedding_model_version", "" if meta else self.embedding_version)
        if meta:
            self.embedded_by = embedded_by(meta.pop("embedded_by", None), self.embedding_version)
        if not meta:
            self.record_embedding(
                self._db, self.embedding_model, self.dimension, self.embedding_version, self.embedded_by
            )
        elif meta != {"embedding_model": self.embedding_model, "dimension": str(self.dimension)}:
            raise EmbeddingMismatch(
                f"collection {self.path.stem!r} was built with {meta.get('embedding_model')} "
                f"({meta.get('dimension')} dimensions), not {self.embedding_model} ({self.dimension}); "
                "re-ingest it into a new collection"
            )

    @staticmethod
    def record_embedding(
        db: sqlite3.Connection, model: str, dimension: int, version: str, made_by: EmbeddedBy = "service"
    ) -> None:
        """Write what makes a new collection file's vectors (its ``meta``), once."""
        db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("embedding_model", model),
                ("dimension", str(dimension)),
                ("embedding_model_version", version),
                ("embedded_by", made_by),
            ],
        )

    def _load(self) -> None:
        rows, vectors = [], []
        for row, document_id, chunk_id, text, metadata, vector in self._db.execute(
            "SELECT row, document_id, chunk_id, text, metadata, vector FROM chunks ORDER BY row"
        ):
            self._remember(row, StoredChunk(document_id, chunk_id, text, json.loads(metadata)))
            rows.append(row)
            vectors.append(np.frombuffer(vector, dtype=np.float32))
        ids = np.asarray(rows, dtype=np.int64)
        matrix = np.vstack(vectors) if vectors else np.empty((0, self.dimension), dtype=np.float32)
        wanted = vector_index.choose(self._params, len(rows))
        saved = vector_index.load(self.index_path, self.dimension, self._params) if wanted != "flat" else None
        if saved is not None and saved.kind == wanted:
            positions = {row: n for n, row in enumerate(rows)}
            saved.reconcile(ids, lambda missing: (missing, matrix[[positions[int(r)] for r in missing]]))
            self._index = saved
        else:
            self._index = vector_index.build("flat", self.dimension, ids, matrix, self._params)
            if wanted == "flat":
                # Smaller than the threshold now (or told to stay exact): a saved index would be stale at next growth.
                self.index_path.unlink(missing_ok=True)
        self._maybe_rebuild()

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
            self._index.remove(rows)
        return rows

    @property
    def index_type(self) -> str:
        """The FAISS index searches use right now (exact until an approximate one has been built), and any build."""
        if self._builder is not None and self._builder.is_alive():
            return f"{self._index.description}; building {self._building}"
        return self._index.description

    @property
    def index_kind(self) -> vector_index.Kind:
        return self._index.kind

    def _maybe_rebuild(self) -> None:
        """Start the background build when the collection has outgrown its index; cheap, runs on every update."""
        if self._closed or (self._builder is not None and self._builder.is_alive()):
            return
        if time.monotonic() < self._retry_build_at:
            return
        wanted = vector_index.choose(self._params, len(self._chunks))
        if wanted == "flat":
            return  # never back to exact by itself: the approximate index still serves a shrunk collection
        if self._index.kind != wanted or self._index.needs_rebuild(len(self._chunks)):
            self._building = wanted
            self._builder = threading.Thread(
                target=self._build, args=(wanted,), name=f"index-{self.path.stem}", daemon=True
            )
            self._builder.start()

    def _build(self, kind: vector_index.Kind) -> None:
        """Build ``kind`` from the rows in SQLite, save it, then swap it in with the rows added since caught up."""
        db = sqlite3.connect(self.path)
        try:
            rows, vectors = [], []
            for row, vector in db.execute("SELECT row, vector FROM chunks ORDER BY row"):
                rows.append(row)
                vectors.append(np.frombuffer(vector, dtype=np.float32))
            if not rows:
                return
            ids, matrix = np.asarray(rows, dtype=np.int64), np.vstack(vectors)
            del vectors
            built = vector_index.build(kind, self.dimension, ids, matrix, self._params)
            del ids, matrix
            # Saved before it serves: the file then holds what SQLite held, and opening reconciles the rest.
            built.save(self.index_path)
            # Catch up with the writes made during the build outside the lock (adding thousands of rows to HNSW
            # takes seconds the loop must not wait), then under it with the few made meanwhile, and swap.
            built.reconcile(self._live_rows(), lambda missing: _vectors(db, missing))
            with self._lock:
                if self._closed:
                    return
                live = np.fromiter(self._chunks, dtype=np.int64, count=len(self._chunks))
                built.reconcile(live, lambda missing: _vectors(db, missing))
                self._index = built
            log.info("index built", collection=str(self.path), index=built.description, chunks=built.size)
        except Exception:
            self._retry_build_at = time.monotonic() + _RETRY_BUILD_S
            log.exception("index build failed; the current index keeps serving", collection=str(self.path))
        finally:
            db.close()

    def _live_rows(self) -> np.ndarray:
        with self._lock:
            return np.fromiter(self._chunks, dtype=np.int64, count=len(self._chunks))

    def wait_for_index(self, timeout: float | None = None) -> bool:
        """Wait for a background index build; True when none is running. For tests, benchmarks and shutdown."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
        return builder is None or not builder.is_alive()

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
                    assert cursor.lastrowid is not None  # set by every INSERT
                    added.append((cursor.lastrowid, stored, vector))
        return added

    def apply(self, document_ids: list[str], added: list[tuple[int, StoredChunk, np.ndarray]]) -> None:
        """Bring the in-memory indexes up to a committed :meth:`write`; fast, runs on the loop."""
        with self._lock:
            self._forget(document_ids)
            for row, chunk, _ in added:
                self._remember(row, chunk)
            if added:
                self._index.add(
                    np.asarray([row for row, _, _ in added], dtype=np.int64),
                    np.vstack([vector for _, _, vector in added]).astype(np.float32),
                )
        self._maybe_rebuild()

    def delete(self, document_ids: list[str]) -> int:
        """Delete documents from SQLite; blocking. Returns how many of them existed."""
        present = [i for i in document_ids if i in self._documents]
        with _transaction(self._db):
            self._db.executemany("DELETE FROM chunks WHERE document_id = ?", [(i,) for i in present])
        return len(present)

    def forget(self, document_ids: list[str]) -> None:
        """Drop deleted documents from the in-memory indexes; runs on the loop."""
        with self._lock:
            self._forget(document_ids)
        self._maybe_rebuild()

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
        """The ``k`` nearest rows by cosine similarity, best first; with a filter, ``k`` of the allowed rows."""
        if not self._chunks or (allowed is not None and not allowed):
            return []
        with self._lock:
            return self._index.search(vector, k, allowed)

    def keyword(self, query: str, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        return self._keywords.search(query, k, allowed)

    @property
    def closed(self) -> bool:
        """Closed by a delete or a re-embedding swap: a writer holding it must look the collection up again."""
        return self._closed

    def close(self) -> None:
        # A build still running finishes into its file but is never swapped in; the file is reconciled at open.
        with self._lock:
            self._closed = True
        self._db.close()


def _vectors(db: sqlite3.Connection, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored vectors of ``rows`` (those still in SQLite), for an index catching up."""
    found, vectors = [], []
    for start in range(0, len(rows), _FETCH_BATCH):
        batch = [int(r) for r in rows[start : start + _FETCH_BATCH]]
        marks = ",".join("?" * len(batch))
        for row, vector in db.execute(f"SELECT row, vector FROM chunks WHERE row IN ({marks})", batch):
            found.append(row)
            vectors.append(np.frombuffer(vector, dtype=np.float32))
    if not found:
        return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
    return np.asarray(found, dtype=np.int64), np.vstack(vectors)


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
