"""Question → ranked passages (chunks) and articles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .embedders import Embedder
from .store import ChunkRow, Store


@dataclass(frozen=True)
class Hit:
    rank: int
    chunk_id: int
    article_id: str
    title: str
    text: str
    start: int
    end: int
    score: float

    def to_json(self) -> dict:
        return {"rank": self.rank, "article_id": self.article_id, "chunk_id": self.chunk_id, "title": self.title,
                "text": self.text, "start": self.start, "end": self.end, "score": round(self.score, 4)}


@dataclass
class Retrieved:
    question: str
    query_vector: np.ndarray
    hits: list[Hit]

    def articles(self) -> list[tuple[str, float]]:
        """Articles in order of their best passage (a JSONL line is one article)."""
        best: dict[str, float] = {}
        for h in self.hits:
            best.setdefault(h.article_id, h.score)
        return list(best.items())


class Retriever:
    """Dense retrieval over the store's FAISS index."""

    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    def retrieve(self, question: str, k: int = 5) -> Retrieved:
        self.store.refresh()
        qv = self.embedder.embed_queries([question])[0]
        rows: list[ChunkRow] = self.store.search(qv, k)
        hits = [Hit(i + 1, r.chunk_id, r.article_id, r.title, r.text, r.start, r.end, r.score)
                for i, r in enumerate(rows)]
        return Retrieved(question, qv, hits)
