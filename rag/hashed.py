"""Model-free stand-ins for the two models: a hashed bag-of-terms embedder (~100x faster than e5)
and a term-overlap reader. Both deterministic, no torch.

For measuring the index alone (``bench/scale.py``) and for the tests' core tier (README, "Tests"),
which runs the whole pipeline without loading a model: the embedder's vectors find passages that
share terms with the question, the reader's logit says how much of the question a sentence holds,
nothing more. Not offered to users as models.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

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


class TermReader:
    """The reader's interface (``rag.reader.Reader``: ``logits``, ``question_model``,
    ``question_vectors``) by term overlap: a candidate's logit grows with the share of the
    question's terms that its title and sentence hold (``rag.persian.terms``, so spelling variants
    meet). ``scale`` is steep on purpose: the abstention thresholds in ``rag.config`` were chosen
    for e5's cosines, which the hashed vectors stay far below, so a sentence holding most of the
    question must outweigh that gap, and one holding none of it is refused. ``embedder`` (the
    index's) stands in for the question adapter: questions are read through it, so the answer
    step's adapter path runs; without it there is no adapter (``question_model`` None)."""

    def __init__(self, embedder: Any = None, scale: float = 40.0, threshold: float = 0.4) -> None:
        self.question_model = embedder
        self.scale = scale
        self.threshold = threshold

    def logits(self, question: str, items: Sequence[tuple[str, ...]]) -> np.ndarray:
        """One logit per ``(title, sentence, ...)``: ``scale × (share of the question's terms held
        − threshold)``; the sentence before (a third value) is not read, as the shipped reader
        does not read it."""
        asked = set(terms(question))
        out = np.zeros(len(items), dtype=np.float32)
        if not asked:
            return out - self.scale * self.threshold
        for i, item in enumerate(items):
            held = asked & set(terms(f"{item[0]} {item[1]}"))
            out[i] = self.scale * (len(held) / len(asked) - self.threshold)
        return out

    def question_vectors(self, questions: Sequence[str]) -> np.ndarray | None:
        if self.question_model is None:
            return None
        return np.asarray(self.question_model.embed_queries(list(questions)), dtype=np.float32)
