"""Passage vectors for nearest-neighbour search (FAISS), the embedded backend's only in-memory index.

Exact (flat inner product) while the index is small; from ``ann_from`` vectors on, approximate:
FAISS ``index_factory("IVF{nlist},SQ8")`` (inverted lists of 8-bit scalar-quantized vectors,
~dim + 8 bytes a passage), retrained with more lists when the index has grown eightfold. Search
returns candidate ids only: their scores are recomputed from the stored vectors, so exact and
approximate search differ only in which passages become candidates.
"""

from __future__ import annotations

import math

import numpy as np

# Vectors an inverted list is trained from, at least (FAISS warns below 39).
_TRAIN_PER_LIST = 40
_MAX_TRAIN = 200_000


def _nlist(n: int) -> int:
    return max(1, min(int(4 * math.sqrt(n)), n // _TRAIN_PER_LIST, 65536))


class VectorIndex:
    def __init__(self, dim: int, ann_from: int, nprobe: int, index=None, source=None) -> None:
        """``source()``: every id and vector as stored (the records), what the index is rebuilt
        from when it turns approximate or is retrained; without it, from its own vectors."""
        import faiss

        self.source = source
        self.dim = dim
        self.ann_from = ann_from
        self.nprobe = nprobe
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.trained_at = self.index.ntotal if self.approximate else 0
        self._rebuilt = False
        if self.approximate:
            faiss.extract_index_ivf(self.index).nprobe = nprobe

    @property
    def approximate(self) -> bool:
        import faiss

        return isinstance(self.index, faiss.IndexIVF)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
        self._maybe_rebuild()

    def remove(self, ids) -> None:
        if len(ids):
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[int]:
        """Ids of the ``k`` nearest vectors; among ``allowed`` ids only, when given (a FAISS id
        selector: the search skips the others, it does not filter its result)."""
        import faiss

        if self.index.ntotal == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if allowed is None:
            _, ids = self.index.search(q, min(k, self.ntotal))
        else:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = faiss.SearchParametersIVF(sel=sel, nprobe=self.nprobe) if self.approximate \
                else faiss.SearchParameters(sel=sel)
            _, ids = self.index.search(q, min(k, self.ntotal), params=params)
        return [int(i) for i in ids[0] if i >= 0]

    def _maybe_rebuild(self) -> None:
        n = self.ntotal
        if n < self.ann_from or n < _TRAIN_PER_LIST:
            return
        if self.approximate and n < 8 * max(self.trained_at, 1):
            return
        ids, vectors = self.source() if self.source is not None else self.all()
        self.index = build_ivf(self.dim, ids, vectors, self.nprobe)
        self.trained_at = n
        self._rebuilt = True

    def approximate_changed(self) -> bool:
        """Rebuilt (turned approximate, or retrained) since it was last saved."""
        return self._rebuilt

    def saved(self) -> None:
        self._rebuilt = False

    def ids(self) -> np.ndarray:
        """Every id the index holds (without decoding vectors)."""
        import faiss

        if not self.approximate:
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        invlists = faiss.extract_index_ivf(self.index).invlists
        out = [np.zeros(0, dtype=np.int64)]
        for lst in range(invlists.nlist):
            size = invlists.list_size(lst)
            if size:
                out.append(faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy())
        return np.concatenate(out)

    def all(self) -> tuple[np.ndarray, np.ndarray]:
        """Every id and vector the index holds (SQ8-decoded when approximate)."""
        import faiss

        if not self.approximate:
            ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
            flat = faiss.downcast_index(self.index.index)
            return ids, faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * self.dim).reshape(-1, self.dim).copy()
        ivf = faiss.downcast_index(faiss.extract_index_ivf(self.index))
        invlists = ivf.invlists
        centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
        ids, vectors = [np.zeros(0, dtype=np.int64)], [np.zeros((0, self.dim), dtype=np.float32)]
        for lst in range(ivf.nlist):
            size = invlists.list_size(lst)
            if size:
                ids.append(faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy())
                codes = faiss.rev_swig_ptr(invlists.get_codes(lst), size * invlists.code_size).copy()
                v = ivf.sq.decode(codes.reshape(size, invlists.code_size))
                vectors.append(v + centroids[lst] if ivf.by_residual else v)
        return np.concatenate(ids), np.vstack(vectors)

    def serialize(self) -> bytes:
        import faiss

        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def deserialize(cls, data: bytes, dim: int, ann_from: int, nprobe: int, source=None) -> "VectorIndex":
        import faiss

        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if index.d != dim:
            raise ValueError(f"dimension {index.d}, expected {dim}")
        return cls(dim, ann_from, nprobe, index, source)


def build_ivf(dim: int, ids: np.ndarray, vectors: np.ndarray, nprobe: int):
    """An IVF-SQ8 inner-product index over ``vectors``, trained on (a sample of) them."""
    import faiss

    n = len(ids)
    nlist = _nlist(n)
    index = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    sample = vectors if n <= _MAX_TRAIN else vectors[rng.choice(n, _MAX_TRAIN, replace=False)]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    faiss.extract_index_ivf(index).nprobe = nprobe
    return index
