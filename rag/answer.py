"""Retrieved passages → an answer made of verified verbatim quotes, each cited ``[n]``, or an
abstention when the passages do not answer the question."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from .agencies import find_agency, shown
from .config import DEFAULT, Config
from .dates import find_dates, format_date
from .embedders import Embedder
from .persian import _stem, detect_language, negated, negative_or_exception, terms, words
from .backends import Passage
from .retrieval import Retrieved

# How the weights in rag.config are used:
# - Meaning score of a candidate sentence: its cosine with the question (blended, with weight
#   w_focus, with its cosine with the question's *focus*: the question without the words of its
#   passage's title, since the sentence that answers often names the topic only by a pronoun) plus
#   w_passage × its passage's meaning score plus w_lexical × the share of the question's non-title
#   terms it holds. Without the reader it ranks the quotes; with it, it picks what the reader reads
#   and the cosines are the question's through the reader's question adapter (question_adapter).
# - Cosine confidence: the best sentence's cosine + conf_passage × its passage's score +
#   conf_lexical × term share + conf_distinct × how far the best focus match stands out from the
#   next. Without the reader, abstention is decided on it (related_below); with the reader, it only
#   says whether the retrieved passages are about the question at all (evidence or plain refusal).
# - The reader's probability decides abstention (answer_below, per question language) and its
#   logit ranks the quotes (plus reader_blend × the meaning score).
MACHINE_TRANSLATION = "machine translation"  # the mark on an English rendering of a Persian quote
FRAMING = {
    "fa": {"lead": "بر پایهٔ مقاله‌ها:", "none": "مقاله‌ها به این پرسش پاسخی نمی‌دهند.",
           "unsure": "مقاله‌ها شاید مستقیماً به این پرسش پاسخ ندهند. نزدیک‌ترین جمله‌ها (نامطمئن):",
           "also": "همین خبر را {n} منبع دیگر هم منتشر کرده‌اند: {names}", "persian": "",
           "filtered": "هیچ مقاله‌ای با این پالایه (تاریخ یا منبع) در نمایه نیست.",
           "differ": "گزارش‌ها در این باره یکسان نیستند:",
           "unknown_source": "منبع نامعلوم", "undated": "بی‌تاریخ"},
    "en": {"lead": "According to the articles:", "none": "The articles do not answer this question.",
           "unsure": "The articles may not answer this directly. The closest sentences (uncertain):",
           "also": "also reported by {n}: {names}",
           "persian": "The quotes are in Persian, as the articles wrote them; each source's agency and date follow.",
           "filtered": "No article in the index matches this filter (dates or agency).",
           "differ": "The reports differ on this:",
           "unknown_source": "unknown agency", "undated": "undated"},
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
    source: str | None = None      # the article's agency (canonical name) and publication date (ISO)
    date: str | None = None
    date_inferred: bool = False
    calendar: str | None = None
    month_day: str | None = None   # day and month in ``calendar`` when the year is unknown
    also: list[str] = field(default_factory=list)          # the other articles of its story group
    also_sources: list[str | None] = field(default_factory=list)  # and their agencies, in the same order
    differs_from: int | None = None  # the citation whose report this one contradicts (other numbers or dates)
    rendering: str | None = None     # an English machine translation of a Persian quote (the LLM option)

    def where(self, lang: str) -> str:
        """``agency, date`` in the reader's language and calendar convention."""
        frame = FRAMING[lang]
        parts = [shown(self.source, lang) or frame["unknown_source"],
                 format_date(self.date, lang, self.calendar, self.date_inferred, self.month_day) or frame["undated"]]
        return ("، " if lang == "fa" else ", ").join(parts)

    def attribution(self, lang: str, numbers: str | None = None) -> str:
        """``[n] agency, date`` (and the copies of its story) in the reader's language."""
        frame = FRAMING[lang]
        sep = "، " if lang == "fa" else ", "
        line = f"[{numbers or self.n}] " + self.where(lang)
        if self.also:
            names = sorted({shown(s, lang) or frame["unknown_source"] for s in self.also_sources})
            line += " — " + frame["also"].format(n=len(self.also), names=sep.join(names))
        return line


@dataclass
class Answer:
    question: str
    language: str
    answer: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    # what abstention was decided on: the reader's probability that the best sentence answers, or
    # without the reader the cosine confidence
    confidence: float = 0.0
    # a graded refusal: the closest sentences, cited and verified, shown as uncertain
    evidence: list[Citation] = field(default_factory=list)

    def to_json(self, id: str | None = None) -> dict:
        out: dict = {} if id is None else {"id": id}
        out.update(question=self.question, language=self.language, answer=self.answer, abstained=self.abstained,
                   confidence=round(self.confidence, 4),
                   citations=[{**asdict(c), "score": round(c.score, 4)} for c in self.citations],
                   evidence=[{**asdict(c), "score": round(c.score, 4)} for c in self.evidence])
        return out


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


def _near_duplicate(a: frozenset[str], b: frozenset[str]) -> bool:
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
    runner_up = next((c for c, t in to_focus[1:] if not _near_duplicate(top_terms, t)), None)
    if runner_up is not None:
        confidence += cfg.conf_distinct[lang] * (top - runner_up)
    cands.sort(key=lambda c: -c.score)
    return cands, confidence


# "Which news agency published this report?", «کدام خبرگزاری این گزارش را منتشر کرد؟»: a question
# about the article's agency, which its attribution line answers («به گزارش خبرگزاری ...»).
_AGENCY_QUESTION = re.compile(
    r"(?:کدام|چه)\s*(?:خبرگزاری|خبرگذاری|رسانه|منبع|روزنامه|سایت|شبکه)|(?:خبرگزاری|رسانه|منبع)\s*(?:این|آن)\s*"
    r"(?:خبر|گزارش|مقاله)|به\s*گزارش\s*(?:کدام|چه)"
    r"|\b(?:which|what)\s+(?:news\s+)?(?:agency|outlet|newspaper|media|news\s+site|website|source)\b"
    r"|\bwho\s+(?:reported|published)\b|\b(?:agency|outlet|source)\s+(?:that\s+)?(?:reported|published)\b", re.I)


def _attribution(question: str, cands: list[Candidate], retrieved: Retrieved) -> Candidate | None:
    """For a question about the reporting agency: the attribution sentence of the best-ranked
    article that has one (a sentence naming the agency the article is attributed to)."""
    if not _AGENCY_QUESTION.search(question):
        return None
    rank = {aid: i for i, (aid, _) in enumerate(retrieved.articles())}
    named = [c for c in cands if c.passage.source and find_agency(c.text) == c.passage.source]
    return min(named, key=lambda c: (rank.get(c.article_id, len(rank)), c.start), default=None)


def _negation_filter(question: str, cands: list[Candidate], margin: float) -> list[Candidate]:
    """Asked in the negative ("which ... did not ...?"): the embeddings hardly tell "X did not
    attend" from "X attended", so only a sentence that says something in the negative or names an
    exception may answer, and only one of those within ``margin`` of the best (bench/results/eval.md)."""
    if not negated(question) or not cands:
        return cands
    top = cands[0].score
    return [c for c in cands if c.score >= top - margin and negative_or_exception(c.text)]


def _cite(chosen: list[Candidate], limit: int, stories: dict | None = None) -> list[Citation]:
    """Citations for ``chosen``. Each quote is cut from its passage's stored raw text (read with it
    from the index) at the sentence's offsets; one that does not fill its span (a passage text
    shorter than its offsets say) is never shown. One story is cited from one of its copies (the
    articles of a story group, and near-duplicate sentences), which names the others."""
    kept: list[Candidate] = []
    citations: list[Citation] = []
    cited_article: dict[str, str] = {}  # story group → the article cited for it
    stories = stories or {}
    for c in chosen:
        if len(citations) >= limit:
            break
        group = c.passage.group or c.article_id
        if cited_article.get(group, c.article_id) != c.article_id:
            continue  # another copy of a story already cited
        if any(_near_duplicate(c.terms, o.terms) for o in kept):
            continue
        if len(c.text) != c.end - c.start or not c.text:
            continue
        kept.append(c)
        cited_article[group] = c.article_id
        others = [a for a in stories.get(group, []) if a.id != c.article_id]
        citations.append(_citation(len(citations) + 1, c, also=[a.id for a in others],
                                   also_sources=[a.source for a in others]))
    return citations


def _citation(n: int, c: Candidate, **more) -> Citation:
    """Citation ``n`` of a candidate sentence, with its article's agency and date."""
    p = c.passage
    return Citation(n, c.text, c.article_id, c.title, c.start, c.end, c.score, p.source, p.date, p.date_inferred,
                    p.calendar, p.month_day, **more)


def _sources(lang: str, persian_quotes: bool, citations: list[Citation]) -> list[str]:
    """The lines under the quotes: each citation's agency and date, the copies of its story; for
    an English reader of Persian quotes, a line saying they are in Persian."""
    frame = FRAMING[lang]
    lines = [""]
    if lang == "en" and persian_quotes:
        lines.append(frame["persian"])
    by_article: dict[str, list[Citation]] = {}
    for c in citations:
        by_article.setdefault(c.article_id, []).append(c)
    return lines + [cs[0].attribution(lang, ", ".join(str(c.n) for c in cs)) for cs in by_article.values()]


def facts(text: str) -> frozenset[str]:
    """The numbers and days a sentence states (digits of any script as ASCII; dates as ISO days)."""
    found = {t for t in terms(text) if any(ch.isdigit() for ch in t) and " " not in t}
    for d in find_dates(text):
        if d.year is not None:
            day = d.on(d.year)
            if day is not None:
                found.add(day.isoformat())
    return frozenset(found)


def _same_thing(a: frozenset[str], b: frozenset[str], overlap: float) -> bool:
    """Two sentences about the same thing: they share most of their words (numbers aside)."""
    a = frozenset(t for t in a if not any(ch.isdigit() for ch in t))
    b = frozenset(t for t in b if not any(ch.isdigit() for ch in t))
    return bool(a and b) and len(a & b) / min(len(a), len(b)) >= overlap


def _disagreements(citations: list[Citation], pool: list[Candidate], cfg: Config) -> list[Citation]:
    """Reports that contradict a cited one: a sentence of another article, among those read for
    the question, saying the same thing with other numbers or dates. Each is cited beside the one
    it contradicts (copies of one story included: an agency that changed a figure is a report of
    its own here), instead of one of them being picked."""
    out = list(citations)
    for c in citations:
        mine = facts(c.quote)
        if not mine:
            continue
        c_terms = frozenset(terms(c.quote))
        for o in pool:
            if len(out) >= len(citations) + cfg.max_disagreeing:
                return out
            if o.article_id == c.article_id or any(x.article_id == o.article_id for x in out):
                continue
            theirs = facts(o.text)
            # each states a figure the other does not (one that leaves a figure out does not disagree)
            if not (theirs - mine and mine - theirs) or not _same_thing(c_terms, o.terms, cfg.disagree_overlap):
                continue
            if len(o.text) != o.end - o.start:
                continue
            c.differs_from = c.differs_from or len(out) + 1
            out.append(_citation(len(out) + 1, o, differs_from=c.n))
    return out


def _differ_lines(lang: str, citations: list[Citation]) -> list[str]:
    """Contradicting reports side by side: each with its agency, date and the figures it gives."""
    pairs = [(c, citations[c.differs_from - 1]) for c in citations if c.differs_from and c.n < c.differs_from]
    if not pairs:
        return []
    lines = ["", FRAMING[lang]["differ"]]
    for a, b in pairs:
        sides = []
        for c in (a, b):
            figures = ", ".join(sorted(facts(c.quote) - facts(a.quote if c is b else b.quote)))
            sides.append(f"[{c.n}] {c.where(lang)}: {figures}")
        lines.append("  |  ".join(sides))
    return lines


def _persian_quotes(citations: list[Citation]) -> bool:
    return any(detect_language(c.quote) == "fa" for c in citations)


def _answered(question: str, lang: str, citations: list[Citation], confidence: float) -> Answer:
    frame = FRAMING[lang]
    lines = [frame["lead"], ""] + [f"{c.quote} [{c.n}]" for c in citations]
    lines += _differ_lines(lang, citations)
    lines += _sources(lang, _persian_quotes(citations), citations)
    return Answer(question, lang, "\n".join(lines), False, citations, confidence=confidence)


def reader_rank(logit: float, meaning: float, cfg: Config) -> float:
    """What quotes are ranked by once the reader has read them."""
    return logit + cfg.reader_blend * meaning


def answer_probability(best_logit: float, related: float, lang: str, cfg: Config) -> float:
    """P(answer), what abstention is decided on: the reader's best logit plus the cosine
    confidence's margin over ``related_below`` (which keeps off-topic questions out)."""
    z = best_logit + cfg.reader_related[lang] * (related - cfg.related_below[lang])
    return 1.0 / (1.0 + math.exp(-z))


def compose(question: str, retrieved: Retrieved, max_quotes: int | None = None,
            embedder: Embedder | None = None, reader=None, config: Config = DEFAULT) -> Answer:
    """Choose the sentences of the top passages that best answer ``question``, or abstain.

    ``embedder`` (the index's) adds the question's focus to the meaning score. ``reader``
    (``rag.reader.Reader``) reads the best ``reader_candidates`` sentences by meaning with the
    question, decides whether any answers it, and ranks the quotes; without it the cosine
    confidence decides (the behaviour before the reader)."""
    cfg = config
    max_quotes = cfg.max_quotes if max_quotes is None else max_quotes
    lang = detect_language(question)
    frame = FRAMING[lang]
    cands, related = candidate_sentences(question, retrieved, embedder, cfg, reader)
    if not cands:
        return Answer(question, lang, frame["none"], True)
    named = _attribution(question, cands, retrieved)
    if named is not None:
        citations = _cite([named], 1, retrieved.stories)
        if citations:
            return _answered(question, lang, citations, 1.0)  # decided by the attribution line, not a score
    if reader is None:
        if related < cfg.related_below[lang]:
            return Answer(question, lang, frame["none"], True, confidence=related)
        cands = _negation_filter(question, cands, cfg.quote_margin)
        best = cands[0].score if cands else 0.0
        citations = _cite([c for c in cands if c.score >= best - cfg.quote_margin], max_quotes, retrieved.stories)
        citations = _disagreements(citations, cands[:cfg.reader_candidates], cfg)
        if not citations:
            return Answer(question, lang, frame["none"], True, confidence=related)
        return _answered(question, lang, citations, related)

    read = cands[:cfg.reader_candidates]
    logits = reader.logits(question, [(c.title, c.text, c.before) for c in read])
    ranked = sorted((dataclasses.replace(c, score=reader_rank(float(lg), c.score, cfg))
                     for c, lg in zip(read, logits)), key=lambda c: -c.score)
    probability = answer_probability(float(max(logits)), related, lang, cfg)
    answerable = probability >= cfg.answer_below[lang]
    if answerable:
        best = ranked[0].score
        chosen = _negation_filter(question, [c for c in ranked if c.score >= best - cfg.reader_margin],
                                  cfg.reader_margin)
        citations = _cite(chosen, max_quotes, retrieved.stories)
        citations = _disagreements(citations, ranked, cfg)
        if citations:
            return _answered(question, lang, citations, probability)
    # Unsure: when the passages are about the question, the closest sentences are shown as
    # evidence, set apart from an answer; when nothing retrieved is related, a plain refusal.
    if related < cfg.related_below[lang]:
        return Answer(question, lang, frame["none"], True, confidence=probability)
    evidence = _cite(ranked, cfg.evidence_quotes, retrieved.stories)
    if not evidence:
        return Answer(question, lang, frame["none"], True, confidence=probability)
    lines = [frame["unsure"], ""] + [f"{c.quote} [{c.n}]" for c in evidence]
    lines += _sources(lang, _persian_quotes(evidence), evidence)
    return Answer(question, lang, "\n".join(lines), True, [], confidence=probability, evidence=evidence)
