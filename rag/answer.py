"""Retrieved passages → an answer made of verified verbatim quotes, each cited ``[n]``, or an
abstention when the passages do not answer the question."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .embedders import Embedder
from .persian import _stem, detect_language, negated, negative_or_exception, terms, words
from .retrieval import Retrieved
from .store import Store

# Scoring of candidate sentences: cosine(question, sentence) + weights below. Chosen on the
# development sets (see README, "Answer quality").
W_PASSAGE = 0.7      # the passage's own retrieval score
W_LEXICAL = 0.1      # share of the question's terms found in the sentence, its article's title terms aside
# A passage was found by the question's topic, which is usually its article's title (a Wikipedia
# entry, a news headline); the sentence that answers often names the topic only by a pronoun ("its
# founder ...", "مادرش ..."), while the sentences that repeat the title outscore it. So sentences are
# also compared with the question's *focus*: the question without the words of the passage's title
# (its cosine is blended in with this weight), and the lexical share counts only the non-title terms.
W_FOCUS = 0.5
# Whether to answer at all is decided on a separate confidence: the best sentence's cosine plus its
# passage's meaning score plus a little for the question's terms it holds (news sentences are long
# and score lower than Wikipedia's on meaning alone; an off-topic question shares no terms).
CONF_PASSAGE = 1.0
CONF_LEXICAL = 0.15
# ... plus how far the sentence that best meets the question's focus stands out from the next best
# (cosines with the focus, or with the question when it has none). A passage that answers tends to
# hold one sentence for what is asked; one that only shares the topic holds several about equally
# close (persianqa_test, 2-fold by article: at 10% of the answerable wrongly abstained, the
# unanswerable abstained went from 0.36 to 0.40). Not for English questions: their cosines with
# Persian sentences are flatter, and on xquad_dev the gap cost off-topic abstentions.
CONF_DISTINCT = {"fa": 1.0, "en": 0.0}
# Score of the best sentence under which we say the articles do not say, by question language (an
# English question over Persian text scores lower). Chosen by bench/calibrate.py (README).
ABSTAIN_BELOW = {"fa": 1.79, "en": 1.57}
MAX_QUOTES = 3
QUOTE_MARGIN = 0.15  # further quotes must score within this of the best one
CANDIDATE_PASSAGES = 4

FRAMING = {
    "fa": {"lead": "بر پایهٔ مقاله‌ها:", "none": "مقاله‌ها به این پرسش پاسخی نمی‌دهند."},
    "en": {"lead": "According to the articles:", "none": "The articles do not answer this question."},
}


@dataclass
class Citation:
    n: int
    quote: str
    article_id: str
    title: str
    start: int
    end: int
    score: float


@dataclass
class Answer:
    question: str
    language: str
    answer: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    confidence: float = 0.0  # what abstention is decided on (see CONF_PASSAGE)

    def to_json(self, id: str | None = None) -> dict:
        out: dict = {} if id is None else {"id": id}
        out.update(question=self.question, language=self.language, answer=self.answer, abstained=self.abstained,
                   citations=[{**asdict(c), "score": round(c.score, 4)} for c in self.citations])
        return out


@dataclass
class _Candidate:
    article_id: str
    title: str
    start: int
    end: int
    text: str
    score: float
    terms: frozenset[str]


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


def _focus_scores(question: str, hits, sentences: dict, embedder: Embedder | None, store: Store) -> dict:
    """Cosine of each candidate sentence with the focus of the question for its passage's title."""
    if embedder is None:
        return {}
    by_focus: dict[str, list[int]] = {}
    for h in hits:
        f = focus(question, h.title)
        if f is not None:
            by_focus.setdefault(f, []).extend(sid for sid, _, _ in sentences.get(h.chunk_id, []))
    if not by_focus:
        return {}
    texts = list(by_focus)
    vectors = embedder.embed_queries(texts)
    out: dict[int, float] = {}
    for text, vec in zip(texts, vectors):
        out.update(store.sentence_scores(vec, by_focus[text]))
    return out


def _near_duplicate(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return False
    return len(a & b) / min(len(a), len(b)) >= 0.8


def compose(question: str, retrieved: Retrieved, store: Store, max_quotes: int = MAX_QUOTES,
            embedder: Embedder | None = None) -> Answer:
    """Choose the sentences of the top passages that best answer ``question``. With ``embedder``
    (the index's), sentences are also scored against the question's focus (see W_FOCUS)."""
    lang = detect_language(question)
    frame = FRAMING[lang]
    hits = retrieved.hits[:CANDIDATE_PASSAGES]
    missing = [h.chunk_id for h in hits if h.chunk_id not in retrieved.sentences]
    sentences = {**retrieved.sentences, **store.sentences_in(missing)}
    cos = dict(retrieved.sentence_cos)
    ids = [sid for h in hits for sid, _, _ in sentences.get(h.chunk_id, []) if sid not in cos]
    cos.update(store.sentence_scores(retrieved.query_vector, ids))
    q_terms = set(terms(question))
    focus_cos = _focus_scores(question, hits, sentences, embedder, store)
    seen: set[int] = set()
    to_focus: list[tuple[float, frozenset[str]]] = []
    cands: list[_Candidate] = []
    confidence = float("-inf")
    for h in hits:
        topic_terms = q_terms - set(terms(h.title))
        for sid, s, e in sentences.get(h.chunk_id, []):
            if sid in seen or sid not in cos:  # not in the loaded vectors yet (Store._scores)
                continue
            seen.add(sid)
            text = h.text[s - h.start:e - h.start]
            c_terms = frozenset(terms(text))
            lex = len(q_terms & c_terms) / len(q_terms) if q_terms else 0.0
            lex_topic = len(topic_terms & c_terms) / len(topic_terms) if topic_terms else 0.0
            meaning = cos[sid] if sid not in focus_cos else (1 - W_FOCUS) * cos[sid] + W_FOCUS * focus_cos[sid]
            score = meaning + W_PASSAGE * h.dense + W_LEXICAL * lex_topic
            cands.append(_Candidate(h.article_id, h.title, s, e, text, score, c_terms))
            to_focus.append((focus_cos.get(sid, cos[sid]), c_terms))
            confidence = max(confidence, cos[sid] + CONF_PASSAGE * h.dense + CONF_LEXICAL * lex)
    if not cands:
        return Answer(question, lang, frame["none"], True)
    # the next best that is not the same sentence again (a story syndicated in two articles)
    to_focus.sort(key=lambda x: -x[0])
    top, top_terms = to_focus[0]
    runner_up = next((c for c, t in to_focus[1:] if not _near_duplicate(top_terms, t)), None)
    if runner_up is not None:
        confidence += CONF_DISTINCT[lang] * (top - runner_up)

    cands.sort(key=lambda c: -c.score)
    if confidence < ABSTAIN_BELOW[lang]:
        return Answer(question, lang, frame["none"], True, confidence=confidence)
    if negated(question):
        # Asked in the negative ("which ... did not ...?"): the embeddings hardly tell "X did not
        # attend" from "X attended", so only a sentence that says something in the negative or names
        # an exception may answer, and only one of those that would be quoted (within QUOTE_MARGIN of
        # the best); none ⇒ the articles do not say. (persianqa_test: 32 of the 279 unanswerable
        # questions are negated answerable ones; unanswerable abstained 0.312 → 0.344, no answerable
        # question lost; bench/results/eval.md.)
        top = cands[0].score
        cands = [c for c in cands if c.score >= top - QUOTE_MARGIN and negative_or_exception(c.text)]
        if not cands:
            return Answer(question, lang, frame["none"], True, confidence=confidence)
    best = cands[0].score

    chosen: list[_Candidate] = []
    for c in cands:
        if len(chosen) >= max_quotes or c.score < best - QUOTE_MARGIN:
            break
        if any(_near_duplicate(c.terms, o.terms) for o in chosen):
            continue
        chosen.append(c)

    citations: list[Citation] = []
    for c in chosen:
        article = store.get(c.article_id)
        # Verified against the stored raw text: a quote that is not an exact slice is never shown.
        if article is None or article.text[c.start:c.end] != c.text:
            continue
        citations.append(Citation(len(citations) + 1, c.text, c.article_id, c.title, c.start, c.end, c.score))
    if not citations:
        return Answer(question, lang, frame["none"], True)
    lines = [frame["lead"], ""] + [f"{c.quote} [{c.n}]" for c in citations]
    return Answer(question, lang, "\n".join(lines), False, citations, confidence=confidence)

