"""Question → ranked passages (chunks) and articles: dense ⊕ lexical.

Fusion is a convex combination of the min-max normalized cosine and the BM25 score relative to the
best lexical match (``combine``). On the dev sets it did better than reciprocal rank fusion
(bench/results/eval.md): ranks throw away how much better the one passage holding a rare number
or name is than the rest.

The lexical side cannot match across scripts: an English question over Persian articles only
shares digits and Latin names with them. Its weight in the fusion is therefore scaled by how much
of the question it can see: the IDF-weighted share of the question's terms that occur in the
index at all. A Persian question over Persian articles gets (nearly) full weight; an English one
over Persian articles gets only what its digits and names are worth.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .config import DEFAULT, Config
from .embedders import Embedder
from .persian import terms
from .backends import ArticleInfo, Backend, Filter, Passage


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
    source: str | None = None
    date: str | None = None
    group: str | None = None

    def to_json(self) -> dict:
        return {"rank": self.rank, "article_id": self.article_id, "chunk_id": self.chunk_id, "title": self.title,
                "text": self.text, "start": self.start, "end": self.end, "score": round(self.score, 6),
                "source": self.source, "date": self.date, "group": self.group}


@dataclass
class Retrieved:
    question: str
    query_vector: np.ndarray
    hits: list[Hit]
    # Every candidate passage (with its sentences and their vectors), and the sentences' cosines.
    passages: dict[int, Passage] = field(default_factory=dict)
    sentence_cos: dict[int, float] = field(default_factory=dict)
    # the articles of each candidate's story group (first stored first), keyed by group
    stories: dict[str, list[ArticleInfo]] = field(default_factory=dict)
    # how many passages of the index hold each of the question's terms, of total_passages (what the
    # answer step's constraint check calls a rare term)
    document_frequencies: dict[str, int] = field(default_factory=dict)
    total_passages: int = 0

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


def combine(cos: dict[int, float], lexical: list[tuple[int, float]], w_lexical: float) -> list[tuple[int, float]]:
    """Convex combination of min-max normalized cosine and BM25 (unlike rank fusion, it keeps how
    much better the best lexical match is than the rest)."""
    if not cos:
        return []
    lo, hi = min(cos.values()), max(cos.values())
    span = (hi - lo) or 1.0
    top = max((s for _, s in lexical), default=0.0) or 1.0
    bm = dict(lexical)
    fused = {cid: (c - lo) / span + w_lexical * bm.get(cid, 0.0) / top for cid, c in cos.items()}
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))


class Retriever:
    """Hybrid retrieval over an index backend: its one ``candidates`` read gives the passages found
    by meaning and by their words; here they are scored and fused."""

    def __init__(self, store: Backend, embedder: Embedder, mode: str = "hybrid", config: Config = DEFAULT) -> None:
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"unknown retrieval mode {mode!r}")
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self.config = config
        # starts no thread until a question is asked
        self.embedding = ThreadPoolExecutor(max_workers=2, thread_name_prefix="embed-question")

    def retrieve(self, question: str, k: int = 5, where: Filter | None = None) -> Retrieved:
        """The ``k`` best passages for ``question``, of the articles ``where`` passes (applied by
        the backend inside its search, so ``k`` come back when ``k`` pass)."""
        cfg = self.config
        n = max(cfg.candidates, k)
        q_terms = terms(question)
        # the question is embedded in a thread while the backend's lexical side reads (both
        # release the GIL); the backend waits for the vector only where its dense side needs it
        pending = self.embedding.submit(lambda: self.embedder.embed_queries([question])[0])
        found = self.store.candidates(pending, q_terms, n, dense=self.mode != "lexical",
                                      lexical=self.mode != "dense" and bool(q_terms),
                                      max_postings=cfg.lexical_postings, where=where or None)
        qv = pending.result()
        w_lex = 1.0 if self.mode == "lexical" else lexical_weight(found.document_frequencies, found.total_passages)
        lexical = found.lexical if w_lex > 0 else []
        passages = {p.chunk_id: p for p in found.passages}
        score, sentence_cos = _meaning(qv, passages, cfg.sentence_weight)
        if self.mode == "hybrid":
            ranked = combine(score, lexical, w_lex * cfg.lexical_weight)
        elif self.mode == "dense":
            ranked = sorted(score.items(), key=lambda x: (-x[1], x[0]))
        else:
            ranked = [(cid, s) for cid, s in lexical if cid in passages]
        hits = []
        for rank, (cid, s) in enumerate(ranked[:k], 1):
            p = passages[cid]
            hits.append(Hit(rank, cid, p.article_id, p.title, p.text, p.start, p.end, s, score.get(cid, 0.0),
                            p.source, p.date, p.group))
        return Retrieved(question, qv, hits, passages, sentence_cos, found.stories,
                         dict(found.document_frequencies or {}), found.total_passages or 0)


def _meaning(qv: np.ndarray, passages: dict, w: float) -> tuple[dict[int, float], dict[int, float]]:
    """Dense score of each passage: its own cosine blended with its best sentence's, so a passage
    holding one sentence that answers the question is not drowned by the rest; and every
    candidate sentence's cosine."""
    q = np.asarray(qv, dtype=np.float32)
    score: dict[int, float] = {}
    sentence_cos: dict[int, float] = {}
    for cid, p in passages.items():
        cos = float(p.vector @ q)
        s_cos = (p.sentence_vectors @ q).tolist() if len(p.sentences) else []
        sentence_cos.update((sid, c) for (sid, _, _), c in zip(p.sentences, s_cos))
        score[cid] = (1 - w) * cos + w * max(s_cos, default=cos)
    return score, sentence_cos
