"""Every tenant's collections, opened on first use: ``{data_dir}/{tenant}/{collection}.sqlite3``.

Deleting a collection (or a tenant's every collection) closes it, waits for its index build,
then removes every file it had, so nothing of it is left to search or on disk. A swap replaces
a collection's file by a new generation (see :mod:`threadline_retrieval.reembed`) while the old
one keeps serving searches from memory until the new one is loaded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import structlog
from threadline.ids import is_tenant_id

from threadline_retrieval.collection import LANGUAGE_KEY, Collection, EmbeddedBy, embedded_by
from threadline_retrieval.files import fsync_dir
from threadline_retrieval.index import IndexParams
from threadline_retrieval.keyword import DEFAULT_LANGUAGE

log = structlog.get_logger("threadline_retrieval")

DEFAULT_COLLECTION = "default"
_SUFFIX = ".sqlite3"
# SQLite's companions of a collection file, and the index files saved beside it.
_COMPANIONS = ("-wal", "-shm", "-journal")
_INDEX_FILES = (".faiss", ".faiss.partial")
# A tenant's folder for collection generations being built; no collection is named so (names have no dot).
NEXT_GENERATION = ".next"


@dataclass(frozen=True, slots=True)
class StoredEmbedding:
    """What a collection file records of its vectors."""

    model: str
    dimension: int
    version: str
    embedded_by: EmbeddedBy


class Catalog:
    def __init__(
        self,
        data_dir: Path,
        embedding_model: str,
        dimension: int,
        embedding_version: str = "",
        index: IndexParams | None = None,
    ) -> None:
        self._data_dir = data_dir
        self._index = index or IndexParams()
        self._embedding_model = embedding_model
        self._dimension = dimension
        self._embedding_version = embedding_version
        self._open: dict[tuple[str, str], Collection] = {}
        self._opening = asyncio.Lock()
        self._writing: dict[tuple[str, str], asyncio.Lock] = {}

    def _path(self, tenant: str, name: str) -> Path:
        return self._data_dir / tenant / f"{name}{_SUFFIX}"

    def path(self, tenant: str, name: str) -> Path:
        return self._path(tenant, name)

    def next_generation_path(self, tenant: str, name: str) -> Path:
        """Where a new generation of the collection is built before it is swapped in."""
        return self._data_dir / tenant / NEXT_GENERATION / f"{name}{_SUFFIX}"

    def tenants(self) -> list[str]:
        if not self._data_dir.is_dir():
            return []
        return sorted(p.name for p in self._data_dir.iterdir() if p.is_dir() and is_tenant_id(p.name))

    def open_collection(self, tenant: str, name: str) -> Collection | None:
        """The collection if this process has it open (no file is opened)."""
        return self._open.get((tenant, name))

    async def get(
        self,
        tenant: str,
        name: str,
        *,
        create: bool,
        embedding: tuple[str, int] | None = None,
        caller_vectors: bool = False,
        language: str = DEFAULT_LANGUAGE,
    ) -> Collection | None:
        """The collection, or None when it does not exist and ``create`` is false.

        A new collection is made for the service's model, or for ``embedding`` (a model name and
        dimension) when given, recording whether the caller made its vectors, and stems its keyword index
        in ``language`` (checked by the caller); an existing one opens with the model and language it was
        built with, so the caller can tell a mismatch from its ``embedding_model`` or ``language``.
        """
        key = (tenant, name)
        if key in self._open:
            return self._open[key]
        async with self._opening:
            if key not in self._open:
                path = self._path(tenant, name)
                if not create and not path.exists():
                    return None
                self._open[key] = await asyncio.to_thread(self._load, path, embedding, caller_vectors, language)
        return self._open[key]

    def _load(
        self, path: Path, embedding: tuple[str, int] | None, caller_vectors: bool, language: str = DEFAULT_LANGUAGE
    ) -> Collection:
        stored = stored_embedding(path) if path.exists() else None
        if stored is None:
            model, dimension = embedding or (self._embedding_model, self._dimension)
            version = self._embedding_version if model == self._embedding_model and not caller_vectors else ""
            made_by: EmbeddedBy = "caller" if caller_vectors else "service"
        else:
            model, dimension, version, made_by = stored.model, stored.dimension, stored.version, stored.embedded_by
        return Collection(path, model, dimension, version, self._index, made_by, language)

    async def drop(self, tenant: str, name: str) -> bool:
        """Delete the collection and every file of it; False when there was none. Idempotent."""
        async with self.write_lock(tenant, name):
            key = (tenant, name)
            collection = self._open.get(key)
            if collection is not None:
                await asyncio.to_thread(_close, collection)
            async with self._opening:
                self._open.pop(key, None)
                path = self._path(tenant, name)
                existed = collection is not None or path.exists()
                await asyncio.to_thread(_remove_collection_files, path, self.next_generation_path(tenant, name))
        if existed:
            log.info("collection deleted", tenant=tenant, collection=name)
        return existed

    async def drop_tenant(self, tenant: str) -> list[str]:
        """Delete every collection of the tenant and its folder; returns the collections' names. Idempotent."""
        names = await self.names(tenant)
        for name in names:
            await self.drop(tenant, name)
        # Anything else under the folder (a generation being built, a stray file) goes with it.
        await asyncio.to_thread(_remove_tree, self._data_dir / tenant)
        return names

    async def swap(self, tenant: str, name: str, new_generation: Path) -> Collection:
        """Replace the collection by ``new_generation`` (a closed, complete collection file); hold its write lock.

        The old collection keeps answering searches from memory until the new one is loaded, so a
        search never finds the collection missing; its files go before the new one is moved in, so
        a crash leaves the old generation (rebuilt at open) or the new one, never a mix.
        """
        key = (tenant, name)
        old = self._open.get(key)
        path = self._path(tenant, name)
        # A new generation records vectors only: it keeps the language the collection stems in.
        language = old.language if old is not None else await asyncio.to_thread(stored_language, path)
        if old is not None:
            await asyncio.to_thread(_close, old)
        await asyncio.to_thread(_move_in, new_generation, path)
        loaded = await asyncio.to_thread(self._load, path, None, False, language)
        async with self._opening:
            self._open[key] = loaded
        return loaded

    def write_lock(self, tenant: str, name: str) -> asyncio.Lock:
        """One writer per collection; searches need no lock."""
        return self._writing.setdefault((tenant, name), asyncio.Lock())

    async def names(self, tenant: str) -> list[str]:
        folder = self._data_dir / tenant
        on_disk = {p.name.removesuffix(_SUFFIX) for p in folder.glob(f"*{_SUFFIX}")} if folder.is_dir() else set()
        return sorted(on_disk | {name for t, name in self._open if t == tenant})

    def open_chunks(self) -> int:
        """Chunks in the collections this process has open (every collection used since start)."""
        # A copy: Prometheus calls this from its own thread while the loop may open a collection.
        return sum(collection.chunk_count for collection in list(self._open.values()))

    def close(self) -> None:
        for collection in self._open.values():
            collection.close()
        self._open.clear()


def _close(collection: Collection) -> None:
    """Close, then wait for a background index build: it must not write an index file after its collection went."""
    collection.close()
    collection.wait_for_index()


def _remove(path: Path) -> None:
    for file in [path, *(path.with_name(path.name + c) for c in _COMPANIONS)]:
        file.unlink(missing_ok=True)


def _remove_collection_files(path: Path, next_generation: Path) -> None:
    _remove(path)
    for suffix in _INDEX_FILES:
        path.with_suffix(suffix).unlink(missing_ok=True)
    _remove(next_generation)
    for folder in (path.parent, next_generation.parent):
        fsync_dir(folder)


def _remove_tree(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
        fsync_dir(folder.parent)


def _move_in(new_generation: Path, path: Path) -> None:
    # The old index holds the old model's vectors under the same row ids: it must not be reconciled into the new.
    for suffix in _INDEX_FILES:
        path.with_suffix(suffix).unlink(missing_ok=True)
    # Every connection to the old file is closed, so a WAL left now could only replay old pages into the new file.
    for companion in _COMPANIONS:
        path.with_name(path.name + companion).unlink(missing_ok=True)
    os.replace(new_generation, path)
    fsync_dir(path.parent)
    fsync_dir(new_generation.parent)


def stored_embedding(path: Path) -> StoredEmbedding | None:
    """The model, dimension, version and maker a collection file records, or None if it records none yet."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:  # a file made before its schema was written
        return None
    finally:
        db.close()
    if "embedding_model" not in meta or "dimension" not in meta:
        return None
    version = meta.get("embedding_model_version", "")
    return StoredEmbedding(
        meta["embedding_model"], int(meta["dimension"]), version, embedded_by(meta.get("embedded_by"), version)
    )


def stored_language(path: Path) -> str:
    """The language a collection file's keyword index stems in; English for a file from before it was recorded."""
    if not path.exists():
        return DEFAULT_LANGUAGE
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (LANGUAGE_KEY,)).fetchone()
    except sqlite3.OperationalError:  # a file made before its schema was written
        row = None
    finally:
        db.close()
    return row[0] if row is not None else DEFAULT_LANGUAGE
