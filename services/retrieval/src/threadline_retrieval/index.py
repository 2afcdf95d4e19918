"""The FAISS index a collection searches, chosen by its size, and how each kind adds, removes, searches and persists.

Exact search (a flat inner-product scan) is the right answer while it is cheap next to the
query's embedding: about 10 ms a query at 100k x 384 on the 2-core machines, and it needs no
training. Above ``exact_max_chunks`` an approximate index takes over:

- ``ivf`` (the default): IVF with ~4*sqrt(n) lists, 0.2 ms a query at 100k, trained in ~10 s;
  deletes are real (``remove_ids``).
- ``hnsw``: the fastest graph index on big machines, but ~2 minutes to build 100k here and it
  cannot delete: deletes become tombstones filtered at search time, and the index is rebuilt
  once they pass a fifth of it.
- ``ivfpq``: IVF over product-quantised codes, about a tenth of the memory; scores are
  approximations of the cosine similarity.

A stored index is a cache of the collection's SQLite file, never the record: on load it is
reconciled with the rows that file holds, so a stale or missing index file costs time, not data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from threadline_retrieval.files import fsync_dir

Kind = Literal["flat", "ivf", "hnsw", "ivfpq"]
Choice = Literal["auto", "flat", "ivf", "hnsw", "ivfpq"]

# k-means wants ~39 points per centroid; fewer lists than that leaves centroids untrained.
_POINTS_PER_LIST = 39
# HNSW rebuilds once this share of its vectors are tombstones: they slow every search.
_MAX_TOMBSTONE_SHARE = 0.2
# HNSW's widened beam for a selective filter stops here; past it exact search over the allowed rows is cheaper.
_MAX_EF_SEARCH = 1024


@dataclass(frozen=True, slots=True)
class IndexParams:
    """How a collection picks and tunes its index; built from :class:`RetrievalSettings`."""

    index: Choice = "auto"
    exact_max_chunks: int = 20_000
    ivf_nprobe: int = 16
    hnsw_m: int = 32
    hnsw_ef_construction: int = 40
    hnsw_ef_search: int = 64
    pq_m: int = 96


def choose(params: IndexParams, chunks: int) -> Kind:
    """The kind of index a collection of ``chunks`` should have: exact up to the threshold, as configured above."""
    if params.index == "flat" or chunks <= params.exact_max_chunks:
        return "flat"
    return "ivf" if params.index == "auto" else params.index


def nlist_for(chunks: int) -> int:
    """IVF lists for ``chunks`` vectors: ~4*sqrt(n), the usual balance of list scan against centroid scan."""
    return max(1, min(int(4 * math.sqrt(chunks)), chunks // _POINTS_PER_LIST))


def _pq_shape(dimension: int, wanted_m: int, chunks: int) -> tuple[int, int]:
    """Sub-quantisers (must divide the dimension) and bits per code (fewer when too few vectors to train 256)."""
    m = max(d for d in range(1, min(wanted_m, dimension) + 1) if dimension % d == 0)
    bits = max(1, min(8, int(math.log2(max(2, chunks // _POINTS_PER_LIST)))))
    return m, bits


class VectorIndex:
    """One FAISS index over a collection's rows (ids are SQLite row numbers), inner product on unit vectors."""

    def __init__(self, kind: Kind, index: faiss.Index, params: IndexParams) -> None:
        self.kind = kind
        self._index = index
        self._params = params
        self._tombstones: set[int] = set()
        self._hidden_selector: faiss.IDSelector | None = None
        self._configure()

    def _configure(self) -> None:
        if self.kind in ("ivf", "ivfpq"):
            self._ivf = faiss.extract_index_ivf(self._index)
        elif self.kind == "hnsw":
            self._hnsw = faiss.downcast_index(self._index.index)

    @property
    def description(self) -> str:
        """What ListCollections reports: the FAISS index and its search parameters."""
        if self.kind == "flat":
            return "IndexFlatIP (exact)"
        if self.kind == "ivf":
            return f"IndexIVFFlat nlist={self._ivf.nlist} nprobe={self._params.ivf_nprobe}"
        if self.kind == "ivfpq":
            pq = faiss.downcast_index(self._ivf).pq
            return f"IndexIVFPQ nlist={self._ivf.nlist} m={pq.M} nbits={pq.nbits} nprobe={self._params.ivf_nprobe}"
        # M as built (a saved index outlives a change of the setting until its next rebuild).
        return f"IndexHNSWFlat M={self._hnsw.hnsw.nb_neighbors(1)} efSearch={self._params.hnsw_ef_search}"

    @property
    def size(self) -> int:
        """Vectors that can still be found (tombstones excluded)."""
        return int(self._index.ntotal) - len(self._tombstones)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add rows; a tombstoned row added again is revived, not inserted twice (a row's vector never changes)."""
        if self._tombstones and len(ids):
            revived = np.isin(ids, np.fromiter(self._tombstones, dtype=np.int64, count=len(self._tombstones)))
            if revived.any():
                self._tombstones.difference_update(int(i) for i in ids[revived])
                self._hidden_selector = None
                ids, vectors = ids[~revived], vectors[~revived]
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))

    def remove(self, ids: Iterable[int]) -> None:
        ids = np.fromiter(ids, dtype=np.int64)
        if not len(ids):
            return
        if self.kind == "hnsw":
            # HNSW cannot unlink a node; a tombstone hides it until the next rebuild.
            self._tombstones.update(int(i) for i in ids)
            self._hidden_selector = None
        else:
            self._index.remove_ids(faiss.IDSelectorBatch(ids))

    def stored_ids(self) -> np.ndarray:
        """Every id held in the index, tombstones included."""
        if self.kind in ("flat", "hnsw"):
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = self._ivf.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(n), lists.list_size(n)).copy()
            for n in range(self._ivf.nlist)
            if lists.list_size(n)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)

    def reconcile(self, live: np.ndarray, vectors_of: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> None:
        """Make the index hold exactly the ``live`` rows: drop the others, add the missing ones from ``vectors_of``."""
        present = self.stored_ids()
        if self._tombstones:
            present = np.setdiff1d(present, np.fromiter(self._tombstones, dtype=np.int64), assume_unique=True)
        self.remove(np.setdiff1d(present, live, assume_unique=True))
        missing = np.setdiff1d(live, present, assume_unique=True)
        if len(missing):
            self.add(*vectors_of(missing))

    def needs_rebuild(self, chunks: int) -> bool:
        """An IVF trained for a quarter of today's rows has lists 4x too long; HNSW full of tombstones is slow."""
        if self.kind in ("ivf", "ivfpq"):
            return nlist_for(chunks) >= 2 * self._ivf.nlist
        if self.kind == "hnsw":
            return len(self._tombstones) > _MAX_TOMBSTONE_SHARE * max(1, self._index.ntotal)
        return False

    def search(self, vector: np.ndarray, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """The ``k`` nearest rows (among ``allowed``), best first; with a filter, still ``k`` when that many exist."""
        if allowed is not None:
            allowed = allowed - self._tombstones if self._tombstones else allowed
            if not allowed:
                return []
        wanted = min(k, self.size if allowed is None else len(allowed))
        if wanted <= 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        if self.kind == "flat":
            return self._flat(query, wanted, allowed)
        if self.kind in ("ivf", "ivfpq"):
            return self._ivf_search(query, wanted, allowed)
        return self._hnsw_search(query, wanted, allowed)

    def _flat(self, query: np.ndarray, k: int, allowed: set[int] | None) -> list[tuple[int, float]]:
        if allowed is None:
            return _hits(*self._index.search(query, k))
        # Named, so the selector outlives the search: SearchParameters does not keep it alive.
        selector = _selector(allowed)
        return _hits(*self._index.search(query, k, params=faiss.SearchParameters(sel=selector)))

    def _ivf_search(self, query: np.ndarray, k: int, allowed: set[int] | None) -> list[tuple[int, float]]:
        nprobe = min(self._params.ivf_nprobe, self._ivf.nlist)
        if allowed is None:
            return _hits(*self._index.search(query, k, params=faiss.SearchParametersIVF(nprobe=nprobe)))
        # A filter that keeps a share s of the rows leaves ~s of each probed list: probe 1/s times as many lists
        # so as many allowed candidates are ranked as an unfiltered search ranks.
        selector = _selector(allowed)
        widened = min(self._ivf.nlist, math.ceil(nprobe * self._index.ntotal / len(allowed)))
        hits = _hits(*self._index.search(query, k, params=faiss.SearchParametersIVF(sel=selector, nprobe=widened)))
        if len(hits) < k and widened < self._ivf.nlist:
            # Still short: every list, which scans each allowed row once (~0.5 ms at 100k).
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self._ivf.nlist)
            hits = _hits(*self._index.search(query, k, params=params))
        return hits

    def _hnsw_search(self, query: np.ndarray, k: int, allowed: set[int] | None) -> list[tuple[int, float]]:
        ef = max(self._params.hnsw_ef_search, k)
        if allowed is None:
            if not self._tombstones:
                return _hits(*self._index.search(query, k, params=faiss.SearchParametersHNSW(efSearch=ef)))
            hidden = self._hidden()
            visible = faiss.IDSelectorNot(hidden)
            return _hits(*self._index.search(query, k, params=faiss.SearchParametersHNSW(efSearch=ef, sel=visible)))
        if len(allowed) <= self._params.exact_max_chunks:
            # As few rows as a flat index would scan: scan them exactly, the graph would wander past most nodes.
            return self._exact_among(query, k, allowed)
        selector = _selector(allowed)
        widened = min(_MAX_EF_SEARCH, max(ef, math.ceil(ef * self._index.ntotal / len(allowed))))
        hits = _hits(*self._index.search(query, k, params=faiss.SearchParametersHNSW(efSearch=widened, sel=selector)))
        return hits if len(hits) >= k else self._exact_among(query, k, allowed)

    def _hidden(self) -> faiss.IDSelector:
        # Built once per change of the tombstones, not once per search.
        if self._hidden_selector is None:
            self._hidden_selector = _selector(self._tombstones)
        return self._hidden_selector

    def _exact_among(self, query: np.ndarray, k: int, allowed: set[int]) -> list[tuple[int, float]]:
        ids = np.fromiter(allowed, dtype=np.int64)
        scores = self._index.reconstruct_batch(ids) @ query[0]
        best = np.argsort(-scores)[:k]
        return [(int(ids[i]), float(scores[i])) for i in best]

    def save(self, path: Path) -> None:
        """Write the index beside the collection, atomically: a crash leaves the old file or the new one."""
        partial = path.with_name(path.name + ".partial")
        faiss.write_index(self._index, str(partial))
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
        fsync_dir(path.parent)


def _selector(ids: Iterable[int]) -> faiss.IDSelector:
    return faiss.IDSelectorBatch(np.fromiter(ids, dtype=np.int64))


def _hits(scores: np.ndarray, rows: np.ndarray) -> list[tuple[int, float]]:
    return [(int(row), float(score)) for row, score in zip(rows[0], scores[0], strict=True) if row >= 0]


def build(kind: Kind, dimension: int, ids: np.ndarray, vectors: np.ndarray, params: IndexParams) -> VectorIndex:
    """A new index of ``kind`` over ``vectors``; trains IVF on them, so call it off the event loop."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    elif kind == "ivf":
        index = faiss.index_factory(dimension, f"IVF{nlist_for(len(ids))},Flat", ip)
    elif kind == "ivfpq":
        m, bits = _pq_shape(dimension, params.pq_m, len(ids))
        index = faiss.index_factory(dimension, f"IVF{nlist_for(len(ids))},PQ{m}x{bits}", ip)
        # The factory turns on polysemous training, which only polysemous search uses: 3x the training time.
        faiss.downcast_index(faiss.extract_index_ivf(index)).do_polysemous_training = False
    else:
        index = faiss.index_factory(dimension, f"IDMap2,HNSW{params.hnsw_m},Flat", ip)
        faiss.downcast_index(index.index).hnsw.efConstruction = params.hnsw_ef_construction
    if not index.is_trained:
        index.train(vectors)
    built = VectorIndex(kind, index, params)
    built.add(ids, vectors)
    return built


def load(path: Path, dimension: int, params: IndexParams) -> VectorIndex | None:
    """The index saved at ``path``, or None when there is none or it is unreadable or of another shape."""
    if not path.exists():
        return None
    try:
        index = faiss.read_index(str(path))
    except RuntimeError:
        return None
    if index.d != dimension or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        return None
    # read_index already returns the concrete class; a second downcast would drop the owning wrapper.
    if isinstance(index, faiss.IndexIVFFlat):
        return VectorIndex("ivf", index, params)
    if isinstance(index, faiss.IndexIVFPQ):
        return VectorIndex("ivfpq", index, params)
    if isinstance(index, faiss.IndexIDMap2) and isinstance(faiss.downcast_index(index.index), faiss.IndexHNSWFlat):
        return VectorIndex("hnsw", index, params)
    return None
