"""Re-embedding on a change of model: a collection's stored text is embedded again, and swapped in whole.

Every collection records the model, version and dimension of its vectors. When the service
starts with another embedder, each collection whose vectors the service made (not a caller's)
is *stale*: it keeps serving as it was (keyword search always; dense search with its old model
where that can still be constructed, else keyword search with ``keyword_fallback`` set), while a
background task embeds every stored chunk with the new model into a new generation of the
collection, ``{tenant}/.next/{collection}.sqlite3``, keeping the chunks' row ids.

Writes go on meanwhile into the old generation; the task catches up with them by diffing row ids
(a row never changes: a replaced document gets new rows), then does a last small catch-up under
the collection's write lock and swaps the files (see :meth:`Catalog.swap`). A restart finds the
collection still stale and the partial generation on disk: it resumes from the rows already
there when they are of the same model, else starts over. A partial generation is never opened
as a collection, so it is never served.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import structlog

from threadline_retrieval.catalog import NEXT_GENERATION, Catalog, StoredEmbedding, stored_embedding
from threadline_retrieval.collection import SCHEMA, Collection
from threadline_retrieval.embeddings import LOCAL_MODEL, Embedder, OpenAIEmbedder, local_embedder, local_runtime_of
from threadline_retrieval.settings import RetrievalSettings

log = structlog.get_logger("threadline_retrieval.reembed")
# Left for the final catch-up under the write lock: few enough that writers barely wait.
_CATCH_UP_UNDER_LOCK = 256
# Catch-up rounds outside the lock before the rest is done under it, however much a busy writer adds.
_MAX_ROUNDS = 5
# An old model that could not be constructed (an endpoint down) is tried again after this long.
_RETRY_EMBEDDER_S = 60.0
# A failed re-embedding (the new model's endpoint down) is retried after this long.
_RETRY_JOB_S = 30.0
# At shutdown, a batch in flight gets this long before it is cancelled (the partial generation is resumed).
_STOP_GRACE_S = 5.0


def _key(embedder: Embedder) -> tuple[str, str, int]:
    return embedder.model_name, embedder.model_version, embedder.dimension


class EmbedderPool:
    """The service's embedder, and those of the models stale collections were made with, where constructible.

    The local model of the installed version is always constructible; an OpenAI-compatible model is when
    ``OPENAI_BASE_URL`` is set and the endpoint still serves it at the recorded dimension.
    """

    def __init__(self, settings: RetrievalSettings, current: Embedder, others: Sequence[Embedder] = ()) -> None:
        self._settings = settings
        self.current = current
        self._known: dict[tuple[str, str, int], Embedder] = {_key(e): e for e in (*others, current)}
        self._failed: dict[tuple[str, str, int], float] = {}
        self._constructing = asyncio.Lock()

    def is_current(self, model: str, version: str, dimension: int) -> bool:
        return (model, version, dimension) == _key(self.current)

    async def for_vectors(self, model: str, version: str, dimension: int) -> Embedder | None:
        """An embedder that makes vectors comparable with these, or None when none can be had."""
        key = (model, version, dimension)
        if key in self._known:
            return self._known[key]
        if time.monotonic() < self._failed.get(key, 0.0):
            return None
        async with self._constructing:
            if key not in self._known:
                try:
                    embedder = await self._construct(model, version)
                except Exception as exc:  # an endpoint down or a model gone: the collection falls back to keyword
                    log.warning("old embedding model unavailable", model=model, version=version, error=str(exc))
                    embedder = None
                if embedder is None or _key(embedder) != key:
                    self._failed[key] = time.monotonic() + _RETRY_EMBEDDER_S
                    return None
                self._known[key] = embedder
                log.info("old embedding model serves its stale collections", model=model, version=version)
        return self._known[key]

    async def _construct(self, model: str, version: str) -> Embedder | None:
        if model == LOCAL_MODEL:
            runtime = local_runtime_of(version)
            if runtime is None:
                return None  # another version of the packaged model is not installed
            return await asyncio.to_thread(local_embedder, runtime, self._settings.data_dir)
        if version or not self._settings.openai_base_url:
            return None
        embedder = OpenAIEmbedder(model, self._settings.openai_base_url, self._settings.openai_api_key)
        await embedder.start()
        return embedder


@dataclass
class _Job:
    tenant: str
    name: str
    done: int = 0
    stop: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class Reembedder:
    """Finds the stale collections at :meth:`start` and re-embeds them one at a time in the background."""

    def __init__(self, catalog: Catalog, pool: EmbedderPool, batch: int = 64) -> None:
        self._catalog = catalog
        self._pool = pool
        self._batch = batch
        self._jobs: list[_Job] = []
        self._current: _Job | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        stale = await asyncio.to_thread(self._scan)
        self._jobs = [_Job(tenant, name) for tenant, name in stale]
        if self._jobs:
            self._idle.clear()
            self._task = asyncio.create_task(self._run(), name="reembed")
            log.info("re-embedding stale collections", collections=len(self._jobs), model=self._pool.current.model_name)

    async def stop(self) -> None:
        """Stop after the batch in flight (cancelled after a grace); the partial generation is resumed at next start."""
        self._stopping = True
        if self._current is not None:
            self._current.stop = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), _STOP_GRACE_S)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until every stale collection is swapped; True when done. For tests and benchmarks."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def progress(self, tenant: str, name: str) -> int | None:
        """Chunks of the collection re-embedded so far, or None when it is not waiting for or being re-embedded."""
        for job in ([self._current] if self._current else []) + self._jobs:
            if (job.tenant, job.name) == (tenant, name):
                return job.done
        return None

    async def forget(self, tenant: str, name: str | None = None) -> None:
        """Stop re-embedding a collection (every one of the tenant's, without a name) about to be deleted.

        Waits for the batch in flight, so nothing writes the new generation once this returns.
        """
        self._jobs = [j for j in self._jobs if j.tenant != tenant or name not in (None, j.name)]
        job = self._current
        if job is not None and job.tenant == tenant and name in (None, job.name):
            job.stop = True
            await job.finished.wait()

    def _scan(self) -> list[tuple[str, str]]:
        """The stale collections, by tenant and name; a generation left for a collection no longer stale goes."""
        stale = []
        for tenant in self._catalog.tenants():
            folder = self._catalog.path(tenant, "x").parent
            for path in sorted(folder.glob("*.sqlite3")):
                stored = stored_embedding(path)
                if stored is not None and self._is_stale(stored):
                    stale.append((tenant, path.name.removesuffix(".sqlite3")))
            for left in sorted((folder / NEXT_GENERATION).glob("*.sqlite3")):
                if (tenant, left.name.removesuffix(".sqlite3")) not in stale:
                    _remove_generation(left)
        return stale

    def _is_stale(self, stored: StoredEmbedding) -> bool:
        return stored.embedded_by == "service" and not self._pool.is_current(
            stored.model, stored.version, stored.dimension
        )

    async def _run(self) -> None:
        try:
            while self._jobs and not self._stopping:
                self._current = self._jobs.pop(0)
                try:
                    await self._reembed(self._current)
                except _Stopped:
                    pass
                except Exception:
                    log.exception("re-embedding failed; retried later", tenant=self._current.tenant)
                    self._jobs.append(_Job(self._current.tenant, self._current.name))
                    await asyncio.sleep(_RETRY_JOB_S)
                finally:
                    self._current.finished.set()
                    self._current = None
        finally:
            self._current = None
            if not self._jobs:
                self._idle.set()

    async def _reembed(self, job: _Job) -> None:
        tenant, name = job.tenant, job.name
        collection = await self._catalog.get(tenant, name, create=False)
        if collection is None:
            return
        # Old-model embedders are made now, not on the first search that needs one.
        await self._pool.for_vectors(collection.embedding_model, collection.embedding_version, collection.dimension)
        embedder = self._pool.current
        generation = await asyncio.to_thread(_Generation, self._catalog.next_generation_path(tenant, name), embedder)
        try:
            log.info(
                "re-embedding", tenant=tenant, collection=name, model=embedder.model_name, chunks=collection.chunk_count
            )
            # All of it first, however little, outside the lock; then the writes made meanwhile, until few are left.
            await self._catch_up(job, generation, collection.path, limit=0)
            for _ in range(_MAX_ROUNDS):
                missing = await self._catch_up(job, generation, collection.path, limit=_CATCH_UP_UNDER_LOCK)
                if missing <= _CATCH_UP_UNDER_LOCK:
                    break
            async with self._catalog.write_lock(tenant, name):
                current = self._catalog.open_collection(tenant, name)
                if current is not collection or collection.closed:
                    return  # deleted meanwhile: the generation went with it
                await self._catch_up(job, generation, collection.path, limit=0)
                await asyncio.to_thread(generation.close)
                swapped = await self._catalog.swap(tenant, name, generation.path)
            log.info(
                "re-embedded and swapped",
                tenant=tenant,
                collection=name,
                model=swapped.embedding_model,
                version=swapped.embedding_version,
                chunks=swapped.chunk_count,
            )
        finally:
            await asyncio.to_thread(generation.close)

    async def _catch_up(self, job: _Job, generation: _Generation, old: Path, limit: int) -> int:
        """Embed the rows the old generation has and the new lacks, unless no more than ``limit``; returns how many."""
        missing = await asyncio.to_thread(generation.diff, old)
        job.done = generation.rows
        if len(missing) <= limit:
            return len(missing)
        for start in range(0, len(missing), self._batch):
            if job.stop or self._stopping:
                raise _Stopped
            rows = await asyncio.to_thread(_read_rows, old, missing[start : start + self._batch])
            if rows:
                vectors = await self._pool.current.embed([text for _, _, _, text, _ in rows])
                await asyncio.to_thread(generation.add, rows, vectors)
            job.done = generation.rows
        return len(missing)


class _Stopped(Exception):
    """The job was told to stop (shutdown, or its collection is being deleted)."""


class _Generation:
    """A new generation's SQLite file, written only by the re-embedder; blocking, call off the loop."""

    def __init__(self, path: Path, embedder: Embedder) -> None:
        self.path = path
        stored = stored_embedding(path) if path.exists() else None
        wanted = StoredEmbedding(embedder.model_name, embedder.dimension, embedder.model_version, "service")
        if path.exists() and stored != wanted:
            _remove_generation(path)  # another model's leftovers (the model changed again): start over
        path.parent.mkdir(parents=True, exist_ok=True)
        # The default rollback journal, not WAL: closed, the generation is one self-contained file to move in.
        self._db: sqlite3.Connection | None = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        if not self._db.execute("SELECT 1 FROM meta").fetchone():
            Collection.record_embedding(self._db, embedder.model_name, embedder.dimension, embedder.model_version)
        self.rows = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def diff(self, old: Path) -> list[int]:
        """Drop the rows the old generation no longer has; returns the rows it has that this one lacks."""
        assert self._db is not None
        with _read_only(old) as db:
            wanted = {row for (row,) in db.execute("SELECT row FROM chunks")}
        have = {row for (row,) in self._db.execute("SELECT row FROM chunks")}
        gone = sorted(have - wanted)
        if gone:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM chunks WHERE row = ?", [(r,) for r in gone])
            self._db.execute("COMMIT")
        self.rows = len(have) - len(gone)
        return sorted(wanted - have)

    def add(self, rows: list[tuple[int, str, str, str, str]], vectors: np.ndarray) -> None:
        assert self._db is not None
        self._db.execute("BEGIN IMMEDIATE")
        # REPLACE: a document re-ingested meanwhile reuses its chunk ids under new rows.
        self._db.executemany(
            "INSERT OR REPLACE INTO chunks (row, document_id, chunk_id, text, metadata, vector)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (row, document_id, chunk_id, text, metadata, np.asarray(vector, dtype=np.float32).tobytes())
                for (row, document_id, chunk_id, text, metadata), vector in zip(rows, vectors, strict=True)
            ],
        )
        self._db.execute("COMMIT")
        self.rows = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _read_only(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


def _read_rows(old: Path, rows: list[int]) -> list[tuple[int, str, str, str, str]]:
    """The stored chunks of ``rows`` still in the old generation (a row deleted meanwhile is left out)."""
    marks = ",".join("?" * len(rows))
    with _read_only(old) as db:
        return db.execute(
            f"SELECT row, document_id, chunk_id, text, metadata FROM chunks WHERE row IN ({marks}) ORDER BY row", rows
        ).fetchall()


def _remove_generation(path: Path) -> None:
    for file in (path, path.with_name(path.name + "-journal")):
        file.unlink(missing_ok=True)
