"""What every embedder shares: the protocol, the error, the process-wide model lock."""

from __future__ import annotations

import functools
import os
import threading
from typing import Protocol, Sequence

import numpy as np

from ..errors import UserError

# Every model call in this process goes through it: on 2 cores two concurrent OpenMP calls turn a
# 10 ms query into seconds (see DESIGN.md).
MODEL_LOCK = threading.Lock()


class EmbedderError(UserError):
    pass


class Embedder(Protocol):
    name: str
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


class SpanEmbedder(Embedder, Protocol):
    """An embedder that also pools spans of a passage from the passage's own forward pass."""

    def embed_passages_and_spans(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
                                 ) -> tuple[np.ndarray, list[np.ndarray]]: ...


def scrub_surrogates(text: str) -> str:
    """Model input must encode as UTF-8: a lone surrogate (never valid text) becomes "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")


def cpu_count() -> int:
    """Cores this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover
        return max(1, os.cpu_count() or 1)


@functools.cache
def _libc_trim():
    """glibc's ``malloc_trim`` from the process's own symbols, looked up on first use: no
    ``find_library`` (it runs ``ldconfig``, ~7 ms on every import) for a function only bulk
    embedding needs."""
    import ctypes

    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None


def release_freed_memory() -> None:
    """Hand memory the allocator holds but no object uses back to the system (glibc's
    ``malloc_trim``, ~0.3 ms; a no-op elsewhere). torch frees each batch's activations, but glibc
    keeps the pages, so an ingestion grew with every article (bench/results/embed.md)."""
    trim = _libc_trim()
    if trim is not None:
        trim(0)
