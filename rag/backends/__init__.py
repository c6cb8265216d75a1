"""Index backends behind one interface (``rag.backends.base.Backend``), chosen by the location's
scheme through a registry (as ``rag.embedders`` chooses engines by name):

- a folder path: the embedded backend (SQLite + FAISS, ``rag.backends.embedded``);
- ``milvus://HOST:PORT/COLLECTION``: a Milvus server or cluster (``rag.backends.milvus``, the
  ``milvus`` extra).

``register(scheme, "module:Class")`` adds one; the class gives ``exists(location)``,
``open(location)`` and ``create(location, embedder, dim, **options)``. Backends are imported
when a location needs them (Milvus's client costs seconds to import).
"""

from __future__ import annotations

import importlib
import os

from .base import ArticleInfo, Backend, Candidates, ChunkRow, Filter, Passage, StoreError

__all__ = ["open_index", "index_exists", "register", "Backend", "Candidates", "Passage", "ArticleInfo", "ChunkRow",
           "Filter", "StoreError"]

EMBEDDED = ""  # the scheme of a plain folder path
BACKENDS: dict[str, str] = {EMBEDDED: "rag.backends.embedded:EmbeddedIndex", "milvus": "rag.backends.milvus:MilvusIndex"}


def register(scheme: str, backend: str) -> None:
    """Open ``SCHEME://...`` locations with ``backend`` (``"package.module:Class"``)."""
    BACKENDS[scheme] = backend


def scheme(location: str) -> str:
    """``milvus`` for ``milvus://...``; ``""`` (the embedded backend) for a folder path."""
    head, sep, _ = location.partition("://")
    return head.lower() if sep and len(head) > 1 and head.isidentifier() else EMBEDDED  # not C:// (a drive)


def backend_class(location: str) -> type:
    name = scheme(location)
    if name not in BACKENDS:
        known = ", ".join(f"{s}://" for s in sorted(BACKENDS) if s)
        raise StoreError(f"no backend opens {location!r} (a folder path, or one of: {known})")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def index_exists(location: str | os.PathLike) -> bool:
    loc = os.fspath(location)
    return backend_class(loc).exists(loc)


def open_index(location: str | os.PathLike, create: bool = False, embedder: str | None = None,
               dim: int | None = None, **options) -> Backend:
    """The index at ``location``; with ``create``, a new one for ``embedder`` vectors of ``dim``
    (options: ``ann_from`` and ``nprobe`` for the embedded backend)."""
    loc = os.fspath(location)
    cls = backend_class(loc)
    if create:
        return cls.create(loc, embedder, dim, **options)
    return cls.open(loc)
