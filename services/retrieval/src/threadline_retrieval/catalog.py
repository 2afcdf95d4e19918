"""Every tenant's collections, opened on first use: ``{data_dir}/{tenant}/{collection}.sqlite3``."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

from threadline_retrieval.collection import Collection
from threadline_retrieval.index import IndexParams

DEFAULT_COLLECTION = "default"
# Names become file names: this pattern keeps them inside the data directory.
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SUFFIX = ".sqlite3"


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

    async def get(
        self, tenant: str, name: str, *, create: bool, embedding: tuple[str, int] | None = None
    ) -> Collection | None:
        """The collection, or None when it does not exist and ``create`` is false.

        A new collection is made for the service's model, or for ``embedding`` (a caller's model
        name and dimension) when given; an existing one opens with the model it was built with,
        so the caller can tell a mismatch from the collection's ``embedding_model``.
        """
        key = (tenant, name)
        if key in self._open:
            return self._open[key]
        async with self._opening:
            if key not in self._open:
                path = self._path(tenant, name)
                if not create and not path.exists():
                    return None
                stored = await asyncio.to_thread(_stored_embedding, path) if path.exists() else None
                if stored is None:
                    model, dimension = embedding or (self._embedding_model, self._dimension)
                    version = self._embedding_version if model == self._embedding_model else ""
                else:
                    model, dimension, version = stored
                self._open[key] = await asyncio.to_thread(Collection, path, model, dimension, version, self._index)
        return self._open[key]

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


def _stored_embedding(path: Path) -> tuple[str, int, str] | None:
    """The model, dimension and version a collection file records, or None if it records none yet."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:  # a file made before its schema was written
        return None
    finally:
        db.close()
    if "embedding_model" not in meta or "dimension" not in meta:
        return None
    return meta["embedding_model"], int(meta["dimension"]), meta.get("embedding_model_version", "")
