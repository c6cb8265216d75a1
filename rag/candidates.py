"""The sentences that may be quoted for a question: those of the top retrieved passages, with the
meaning score that ranks them before the reader reads them, the cosine confidence (is anything
retrieved about the question at all?), and each one's neighbourhood for the constraint check.

How the weights in rag.config are used:
- Meaning score of a candidate sentence: its cosine with the question (blended, with weight
  w_focus, with its cosine with the question's *focus*: the question without the words of its
  passage's title, since the sentence that answers often names the topic only by a pronoun) plus
  w_passage × its passage's meaning score plus w_lexical × the share of the question's non-title
  terms it holds. Without the reader it ranks the quotes; with it, it picks what the reader reads
  and the cosines are the question's through the reader's question adapter (question_adapter).
- Cosine confidence: the best sentence's cosine + conf_passage × its passage's score +
  conf_lexical × term share + conf_distinct × how far the best focus match stands out from the
  next. Without the reader, abstention is decided on it (related_below); with the reader, it says
  whether the retrieved passages are about the question at all (evidence or plain refusal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backends import Passage
from .config import Config
from .embedders import Embedder
from .persian import _stem, detect_language, terms, words
from .retrieval import Retrieved


@dataclass
class Candidate:
    article_id: str
    title: str
    start: int
    end: int
    text: str
    score: float
    terms: frozenset[str]
    passage: Passage  # the one it comes from (its article's agency, date and story group)
    before: str = ""  # the sentence before it in that passage, which a reader with context reads


def focus(question: str, title: str) -> str | None:
    """The question without the words its passage's title holds (plural suffixes aside), or None
    when it holds none of them, or nothing else."""
    title_terms = set(terms(title))
    if not title_terms:
        return None
    ws = words(question)
    kept = [question[s:e] for w, s, e in ws if w not in title_terms and _stem(w) not in title_terms]
    if len(kept) == len(ws) or not kept:
        return None
    return " ".join(kept)


def _cosines(vec, cids, passages: dict) -> dict[int, float]:
    out: dict[int, float] = {}
    for cid in cids:
        p = passages[cid]
        if len(p.sentences):
            out.update(zip((sid for sid, _, _ in p.sentences),
                           (p.sentence_vectors @ np.asarray(vec, dtype=np.float32)).tolist()))
    return out


def _focus_groups(question: str, hits) -> dict[str, list[int]]:
    """The question's focus for each hit's title (``focus``), with the passages it is for."""
    by_focus: dict[str, list[int]] = {}
    for h in hits:
        f = focus(question, h.title)
        if f is not None:
            by_focus.setdefault(f, []).append(h.chunk_id)
    return by_focus


def _focus_cosines(by_focus: dict[str, list[int]], vectors, passages: dict) -> dict[int, float]:
    """Cosine of each candidate sentence with the focus of the question for its passage's title
    (``vectors``: the focus texts' vectors, in ``by_focus``'s order)."""
    out: dict[int, float] = {}
    for text, vec in zip(by_focus, vectors):
        out.update(_cosines(vec, by_focus[text], passages))
    return out


def near_duplicate(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return False
    return len(a & b) / min(len(a), len(b)) >= 0.8


def candidate_sentences(question: str, retrieved: Retrieved, embedder: Embedder | None,
                        cfg: Config, reader=None) -> tuple[list[Candidate], float]:
    """The sentences of the top passages with their meaning scores, best first, and the cosine
    confidence (how related the best of them is to the question). With a ``reader`` that has a
    question adapter (and ``cfg.question_adapter``), the meaning scores use the question read
    through it; the confidence keeps the plain cosines its thresholds were chosen on."""
    lang = detect_language(question)
    hits = retrieved.hits[:cfg.candidate_passages]
    passages = retrieved.passages
    cos = retrieved.sentence_cos
    q_terms = set(terms(question))
    by_focus = _focus_groups(question, hits)
    focus_cos = _focus_cosines(by_focus, embedder.embed_queries(list(by_focus)), passages) \
        if embedder is not None and by_focus else {}
    mean_cos, mean_focus = cos, focus_cos
    if cfg.question_adapter and reader is not None and reader.question_model is not None:
        # the question and its focus through the question adapter, in one forward
        vecs = reader.question_vectors([question, *by_focus])
        mean_cos = _cosines(vecs[0], [h.chunk_id for h in hits], passages)
        mean_focus = _focus_cosines(by_focus, vecs[1:], passages)
    seen: set[int] = set()
    to_focus: list[tuple[float, frozenset[str]]] = []
    cands: list[Candidate] = []
    confidence = float("-inf")
    for h in hits:
        topic_terms = q_terms - set(terms(h.title))
        prev = None
        for sid, s, e in passages[h.chunk_id].sentences:
            before, prev = prev, (s, e)
            if sid in seen or not h.start <= s < e <= h.end:
                continue
            seen.add(sid)
            text = h.text[s - h.start:e - h.start]
            before = h.text[before[0] - h.start:before[1] - h.start] if before and before[0] >= h.start else ""
            c_terms = frozenset(terms(text))
            lex = len(q_terms & c_terms) / len(q_terms) if q_terms else 0.0
            lex_topic = len(topic_terms & c_terms) / len(topic_terms) if topic_terms else 0.0
            meaning = mean_cos[sid] if sid not in mean_focus else \
                (1 - cfg.w_focus) * mean_cos[sid] + cfg.w_focus * mean_focus[sid]
            score = meaning + cfg.w_passage * h.dense + cfg.w_lexical * lex_topic
            cands.append(Candidate(h.article_id, h.title, s, e, text, score, c_terms, passages[h.chunk_id], before))
            to_focus.append((focus_cos.get(sid, cos[sid]), c_terms))
            confidence = max(confidence, cos[sid] + cfg.conf_passage * h.dense + cfg.conf_lexical * lex)
    if not cands:
        return [], confidence
    # the next best that is not the same sentence again (a story syndicated in two articles)
    to_focus.sort(key=lambda x: -x[0])
    top, top_terms = to_focus[0]
    runner_up = next((c for c, t in to_focus[1:] if not near_duplicate(top_terms, t)), None)
    if runner_up is not None:
        confidence += cfg.conf_distinct[lang] * (top - runner_up)
    cands.sort(key=lambda c: -c.score)
    return cands, confidence


def neighbourhood(c: Candidate) -> str:
    """What a quote stands in for the constraint check: its article's title, and the sentence
    before it, itself and the sentence after it in its passage."""
    p = c.passage
    spans = [(s, e) for _, s, e in p.sentences if p.start <= s < e <= p.start + len(p.text)]
    at = next((i for i, (s, _) in enumerate(spans) if s == c.start), None)
    near = [c.text] if at is None else [p.text[s - p.start:e - p.start] for s, e in spans[max(0, at - 1):at + 2]]
    return "\n".join([c.title, *near])
