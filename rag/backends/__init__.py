"""Index backends behind one interface (``rag.backends.base.Backend``), opened by location:

- a folder path: the embedded backend (SQLite + FAISS, ``rag.backends.embedded``);
- ``milvus://HOST:PORT/COLLECTION``: a Milvus server or cluster (``rag.backends.milvus``, the
  ``milvus`` extra).
"""

from __future__ import annotations

import os

from .base import ArticleInfo, Backend, Candidates, ChunkRow, Filter, Passage, StoreError

__all__ = ["open_index", "index_exists", "Backend", "Candidates", "Passage", "ArticleInfo", "ChunkRow", "Filter",
           "StoreError"]


def _is_milvus(location: str) -> bool:
    return location.startswith("milvus://")


def index_exists(location: str | os.PathLike) -> bool:
    loc = os.fspath(location)
    if _is_milvus(loc):
        from .milvus import MilvusIndex

        return MilvusIndex.exists(loc)
    from .embedded import exists

    return exists(loc)


def open_index(location: str | os.PathLike, create: bool = False, embedder: str | None = None,
               dim: int | None = None, **options) -> Backend:
    """The index at ``location``; with ``create``, a new one for ``embedder`` vectors of ``dim``
    (options: ``ann_from`` for the embedded backend)."""
    loc = os.fspath(location)
    if _is_milvus(loc):
        from .milvus import MilvusIndex

        if create:
            return MilvusIndex.create(loc, embedder, dim)
        return MilvusIndex.open(loc)
    from .embedded import EmbeddedIndex

    if create:
        return EmbeddedIndex.create(loc, embedder, dim, **options)
    return EmbeddedIndex.open(loc)
