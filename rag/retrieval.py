"""Question → ranked passages (chunks) and articles: dense ⊕ lexical.

Fusion is a convex combination of the min-max normalized cosine and the BM25 score relative to the
best lexical match (``combine``); reciprocal rank fusion (``fuse``) is kept as an option. On the
dev sets the combination did better (README, "Answer quality"): ranks throw away how much better
the one passage holding a rare number or name is than the rest.

The lexical side cannot match across scripts: an English question over Persian articles only
shares digits and Latin names with them. Its weight in the fusion is therefore scaled by how much
of the question it can see: the IDF-weighted share of the question's terms that occur in the
index at all. A Persian question over Persian articles gets (nearly) full weight; an English one
over Persian articles gets only what its digits and names are worth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .config import DEFAULT, Config
from .embedders import Embedder
from .persian import terms
from .store import Store


@dataclass(frozen=True)
class Hit:
    rank: int
    chunk_id: int
    article_id: str
    title: str
    text: str
    start: int
    end: int
    score: float          # fused score (what the ranking is by)
    dense: float = 0.0    # meaning score: cosine of question and passage, blended with its best sentence's
    lexical: float = 0.0  # BM25 of the passage for the question's terms (0 when not matched)

    def to_json(self) -> dict:
        return {"rank": self.rank, "article_id": self.article_id, "chunk_id": self.chunk_id, "title": self.title,
                "text": self.text, "start": self.start, "end": self.end, "score": round(self.score, 6)}


@dataclass
class Retrieved:
    question: str
    query_vector: np.ndarray
    hits: list[Hit]
    lexical_weight: float = 0.0
    # For each candidate passage, its sentences ``(sentence_id, start, end)``, and their cosines.
    sentences: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)
    sentence_cos: dict[int, float] = field(default_factory=dict)

    def articles(self) -> list[tuple[str, float]]:
        """Articles in order of their best passage (a JSONL line is one article)."""
        best: dict[str, float] = {}
        for h in self.hits:
            best.setdefault(h.article_id, h.score)
        return list(best.items())


def lexical_weight(df: dict[str, int], n_passages: int) -> float:
    """IDF-weighted share of the query terms that the index knows (0 … 1)."""
    if not df or n_passages <= 0:
        return 0.0

    def idf(d: int) -> float:
        return math.log(1 + (n_passages - d + 0.5) / (d + 0.5))

    total = sum(idf(d) for d in df.values())
    known = sum(idf(d) for d in df.values() if d > 0)
    return known / total if total > 0 else 0.0


def fuse(dense: list[tuple[int, float]], lexical: list[tuple[int, float]], w_lexical: float,
         w_dense: float = 1.0, k: int = DEFAULT.rrf_k) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion of two ranked lists of ``(id, score)``."""
    fused: dict[int, float] = {}
    for weight, ranked in ((w_dense, dense), (w_lexical, lexical)):
        if weight <= 0:
            continue
        for r, (cid, _) in enumerate(ranked):
            fused[cid] = fused.get(cid, 0.0) + weight / (k + r + 1)
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))


def combine(cos: dict[int, float], lexical: list[tuple[int, float]], w_lexical: float) -> list[tuple[int, float]]:
    """Convex combination of min-max normalized cosine and BM25 (an alternative to RRF that keeps
    how much better the best lexical match is than the rest)."""
    if not cos:
        return []
    lo, hi = min(cos.values()), max(cos.values())
    span = (hi - lo) or 1.0
    top = max((s for _, s in lexical), default=0.0) or 1.0
    bm = dict(lexical)
    fused = {cid: (c - lo) / span + w_lexical * bm.get(cid, 0.0) / top for cid, c in cos.items()}
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))


class Retriever:
    """Hybrid retrieval over the store: FAISS for meaning, FTS5/BM25 for the words themselves."""

    def __init__(self, store: Store, embedder: Embedder, mode: str = "hybrid", fusion: str = "combine",
                 config: Config = DEFAULT) -> None:
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"unknown retrieval mode {mode!r}")
        if fusion not in ("combine", "rrf"):
            raise ValueError(f"unknown fusion {fusion!r}: use combine or rrf")
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self.fusion = fusion
        self.config = config

    def retrieve(self, question: str, k: int = 5) -> Retrieved:
        self.store.refresh()
        qv = self.embedder.embed_queries([question])[0]
        cfg = self.config
        n = max(cfg.candidates, k)
        q_terms = terms(question)
        lexical: list[tuple[int, float]] = []
        w_lex = 0.0
        if self.mode != "dense" and q_terms:
            w_lex = 1.0 if self.mode == "lexical" else lexical_weight(
                self.store.document_frequencies(q_terms), self.store.count()[1])
            if w_lex > 0:
                lexical = self.store.lexical(q_terms, n)
        candidates: set[int] = {cid for cid, _ in lexical}
        if self.mode != "lexical":
            candidates.update(cid for cid, _ in self.store.dense(qv, n))
            near = [sid for sid, _ in self.store.nearest_sentences(qv, cfg.sentence_candidates)]
            candidates.update(cid for _, cid in self.store.sentence_chunks(near))
        meaning = self._meaning(qv, sorted(candidates))
        if self.mode == "hybrid" and self.fusion == "rrf":
            dense_ranked = sorted(meaning.score.items(), key=lambda x: (-x[1], x[0]))
            ranked = fuse(dense_ranked, lexical, w_lex * cfg.lexical_weight, k=cfg.rrf_k)
        elif self.mode == "hybrid":
            ranked = combine(meaning.score, lexical, w_lex * cfg.lexical_weight)
        elif self.mode == "dense":
            ranked = sorted(meaning.score.items(), key=lambda x: (-x[1], x[0]))
        else:
            ranked = lexical
        ranked = ranked[:k]
        bm25 = dict(lexical)
        rows = {r.chunk_id: r for r in self.store.chunks([cid for cid, _ in ranked])}
        hits = [Hit(rank, cid, rows[cid].article_id, rows[cid].title, rows[cid].text, rows[cid].start, rows[cid].end,
                    score, meaning.score.get(cid, 0.0), bm25.get(cid, 0.0))
                for rank, (cid, score) in enumerate(((c, s) for c, s in ranked if c in rows), 1)]
        return Retrieved(question, qv, hits, w_lex, meaning.sentences, meaning.sentence_cos)

    def _meaning(self, qv: np.ndarray, chunk_ids: list[int]) -> "_Meaning":
        """Dense score of each passage: its own cosine blended with its best sentence's, so a
        passage holding one sentence that answers the question is not drowned by the rest."""
        if not chunk_ids:
            return _Meaning({}, {}, {})
        cos = self.store.dense_scores(qv, chunk_ids)
        sentences = self.store.sentences_in(chunk_ids)
        sentence_cos = self.store.sentence_scores(qv, sorted({sid for v in sentences.values() for sid, _, _ in v}))
        score = {}
        for cid in chunk_ids:
            if cid not in cos:  # written by another process during this question (Store._scores)
                continue
            best = max((sentence_cos[sid] for sid, _, _ in sentences.get(cid, []) if sid in sentence_cos),
                       default=cos[cid])
            w = self.config.sentence_weight
            score[cid] = (1 - w) * cos[cid] + w * best
        return _Meaning(score, sentences, sentence_cos)


@dataclass
class _Meaning:
    score: dict[int, float]
    sentences: dict[int, list[tuple[int, int, int]]]
    sentence_cos: dict[int, float]
