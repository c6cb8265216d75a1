"""A hashed bag-of-terms embedder: no model, deterministic, ~100x faster than e5.

For measuring the index alone (``bench/scale.py``) and for testing backends against the embedder
protocol (``rag.embedders.Embedder``); its vectors find passages that share terms with the
question, nothing more. Not offered to users as a model.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from .persian import terms


class HashedEmbedder:
    """Each normalized term (``rag.persian.terms``) adds a fixed pseudo-random ±1 vector."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.name = f"hashed-{dim}"
        self._rows: dict[str, np.ndarray] = {}

    def _row(self, term: str) -> np.ndarray:
        row = self._rows.get(term)
        if row is None:
            # the term's SHAKE-256 bits as signs: ~6x cheaper than seeding a generator per term
            bits = np.unpackbits(np.frombuffer(hashlib.shake_256(term.encode()).digest((self.dim + 7) // 8),
                                               dtype=np.uint8))[:self.dim]
            row = bits.astype(np.float32) * 2.0 - 1.0
            if len(self._rows) < 1_000_000:
                self._rows[term] = row
        return row

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for t in terms(text):
                out[i] += self._row(t)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)
