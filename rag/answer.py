"""Retrieved passages → an answer made of verified verbatim quotes, each cited ``[n]``, or an
abstention when the passages do not answer the question."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field

from .agencies import find_agency, shown
from .config import DEFAULT, Config
from .constraints import Evidence, idf, instead, question_constraints, unsupported
from .decision import ANSWER, REFUSE, decide, inputs_of, quotable, reader_rank
from .candidates import Candidate, candidate_sentences, focus, near_duplicate, neighbourhood  # noqa: F401
from .dates import find_dates, format_date
from .embedders import Embedder
from .persian import detect_language, negated, negative_or_exception, terms
from .retrieval import Retrieved

# The reader's probability decides abstention (rag.decision, answer_below per question language and
# strictness) and its logit ranks the quotes (plus reader_blend × the meaning score, rag.candidates).
MACHINE_TRANSLATION = "machine translation"  # the mark on an English rendering of a Persian quote
FRAMING = {
    "fa": {"lead": "بر پایهٔ مقاله‌ها:", "none": "مقاله‌ها به این پرسش پاسخی نمی‌دهند.",
           "unsure": "مقاله‌ها شاید مستقیماً به این پرسش پاسخ ندهند. نزدیک‌ترین جمله‌ها (نامطمئن):",
           "also": "همین خبر را {n} منبع دیگر هم منتشر کرده‌اند: {names}", "persian": "",
           "filtered": "هیچ مقاله‌ای با این پالایه (تاریخ یا منبع) در نمایه نیست.",
           "differ": "گزارش‌ها در این باره یکسان نیستند:",
           "unknown_source": "منبع نامعلوم", "undated": "بی‌تاریخ",
           "missing": "نزدیک‌ترین بخش‌های مقاله‌ها از {what} نامی نمی‌برند.",
           "elsewhere": "نزدیک‌ترین جمله‌ها دربارهٔ {what} نیستند.",
           "instead": "مقاله‌ها از {instead} سخن می‌گویند؛ هیچ‌کدام از {what} نامی نمی‌برد."},
    "en": {"lead": "According to the articles:", "none": "The articles do not answer this question.",
           "unsure": "The articles may not answer this directly. The closest sentences (uncertain):",
           "also": "also reported by {n}: {names}",
           "persian": "The quotes are in Persian, as the articles wrote them; each source's agency and date follow.",
           "filtered": "No article in the index matches this filter (dates or agency).",
           "differ": "The reports differ on this:",
           "unknown_source": "unknown agency", "undated": "undated",
           "missing": "None of the closest passages mentions {what}.",
           "elsewhere": "The closest sentences do not speak of {what}.",
           "instead": "The articles speak of {instead}; none mentions {what}."},
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
    unsupported: list[str] = field(default_factory=list)  # what the question asks that this quote's neighbourhood lacks

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
    # the question's constraints (names, titles, numbers, ...) the closest evidence lacks, as the
    # question writes them: named in the answer whenever they are why it abstained
    unsupported: list[str] = field(default_factory=list)
    # what the decision was made on (rag.decision.DecisionInputs and the candidates read), for the
    # benches: RAG.ask(..., trace=True)
    trace: dict | None = None

    def to_json(self, id: str | None = None) -> dict:
        out: dict = {} if id is None else {"id": id}
        out.update(question=self.question, language=self.language, answer=self.answer, abstained=self.abstained,
                   confidence=round(self.confidence, 4),
                   citations=[{**asdict(c), "score": round(c.score, 4)} for c in self.citations],
                   evidence=[{**asdict(c), "score": round(c.score, 4)} for c in self.evidence],
                   unsupported=list(self.unsupported))
        if self.trace is not None:
            out["trace"] = self.trace
        return out


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
        if any(near_duplicate(c.terms, o.terms) for o in kept):
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


def _idf(c) -> float:
    return idf(c.df, c.passages) if c.kind == "term" else float("inf")


def _missing_line(lang: str, missing: list, ev: Evidence | None, passages: Evidence) -> str:
    """The sentence that names what the articles do not mention, in the question's language: what
    none of the closest passages mentions (beside what the best quote speaks of instead, for a
    title), or, when each is in a passage but not near the best quote, that the closest sentences
    do not speak of it."""
    frame = FRAMING[lang]
    sep, quote = ("، ", lambda t: f"«{t.strip()}»") if lang == "fa" else (", ", lambda t: f"\u201c{t.strip()}\u201d")
    absent = unsupported(missing, passages)
    if not absent:
        return frame["elsewhere"].format(what=sep.join(quote(c.text) for c in missing))
    what = sep.join(quote(c.text) for c in absent)
    other = next((x for c in absent for e in (ev, passages) if e is not None and (x := instead(c, e))), None)
    if other:
        return frame["instead"].format(instead=quote(other), what=what)
    return frame["missing"].format(what=what)


def compose(question: str, retrieved: Retrieved, embedder: Embedder | None = None, reader=None,
            config: Config = DEFAULT, trace: bool = False) -> Answer:
    """Choose the sentences of the top passages that best answer ``question``, or abstain.

    ``embedder`` (the index's) adds the question's focus to the meaning score. ``reader``
    (``rag.reader.Reader``) reads the best ``reader_candidates`` sentences by meaning with the
    question and ranks the quotes; without it the meaning score ranks them. Whether to answer is
    ``rag.decision.decide``'s, on the reader's probability (or the cosine confidence) and on the
    question's constraints found or not in the best quote's neighbourhood. ``trace`` keeps what the
    decision was made on in ``Answer.trace``."""
    cfg = config
    lang = detect_language(question)
    frame = FRAMING[lang]
    cands, related = candidate_sentences(question, retrieved, embedder, cfg, reader)
    if not cands:
        return Answer(question, lang, frame["none"], True)
    named = _attribution(question, cands, retrieved)
    if named is not None:
        citations = _cite([named], 1, retrieved.stories)
        if citations:  # decided by the attribution line, not a score
            return dataclasses.replace(_answered(question, lang, citations, 1.0),
                                       trace={"attribution": True} if trace else None)
    if reader is None:
        ranked, margin, best_logit = cands, cfg.quote_margin, None
        pool = _negation_filter(question, cands, margin)[:cfg.reader_candidates]
        read = [(c, None) for c in cands[:cfg.reader_candidates]]
    else:
        logits = reader.logits(question, [(c.title, c.text, c.before) for c in cands[:cfg.reader_candidates]])
        read = [(c, float(lg)) for c, lg in zip(cands, logits)]
        ranked = sorted((dataclasses.replace(c, score=reader_rank(lg, c.score, cfg)) for c, lg in read),
                        key=lambda c: -c.score)
        margin, best_logit, pool = cfg.reader_margin, max(lg for _, lg in read), ranked
    asked = question_constraints(question, lang, retrieved.document_frequencies, retrieved.total_passages) \
        if cfg.check_constraints else []
    evidence_of: dict[tuple[str, int], Evidence] = {}
    lacking: dict[tuple[str, int], list] = {}

    def lacks(c: Candidate) -> list:
        key = (c.article_id, c.start)
        if key not in lacking:
            if not asked:
                return []
            evidence_of[key] = Evidence(neighbourhood(c))
            lacking[key] = unsupported(asked, evidence_of[key])
        return lacking[key]

    def missing_of(c: Candidate) -> list[tuple[str, str, float]]:
        return [(x.text, x.kind, _idf(x)) for x in lacks(c)]

    ranked, chosen = quotable(ranked, lambda c: c.score, missing_of, lambda c: negative_or_exception(c.text),
                              negated(question), margin, lang, cfg)
    top = chosen[0] if chosen else ranked[0]
    missing = lacks(top)
    inputs = inputs_of(lang, related, best_logit, missing_of(top), forced=not chosen)
    decision = decide(inputs, cfg)
    traced = None
    if trace:
        traced = {"inputs": dataclasses.asdict(inputs),
                  "candidates": [{"text": c.text, "title": c.title, "article_id": c.article_id, "meaning": c.score,
                                  "logit": lg, "negative": negative_or_exception(c.text), "near": neighbourhood(c),
                                  "missing": [list(m) for m in missing_of(c)]} for c, lg in read]}
    if decision.verdict == ANSWER:
        citations = _cite(chosen, cfg.max_quotes, retrieved.stories)
        citations = _disagreements(citations, pool, cfg)
        if citations:
            ans = _answered(question, lang, citations, decision.confidence)
            ans.trace = traced
            return ans
    missing = [c for c in missing if c.text in decision.missing]
    lines = [_missing_line(lang, missing, evidence_of.get((top.article_id, top.start)),
                           Evidence("\n".join(h.title + "\n" + h.text for h in retrieved.hits[:cfg.candidate_passages])))
             ] if missing else []
    evidence = _cite(ranked, cfg.evidence_quotes, retrieved.stories) if decision.verdict != REFUSE else []
    if not evidence:
        return Answer(question, lang, " ".join([frame["none"], *lines]), True, confidence=decision.confidence,
                      unsupported=[c.text for c in missing], trace=traced)
    by_span = {(c.article_id, c.start): c for c in ranked}
    for e in evidence:
        e.unsupported = [x.text for x in lacks(by_span[(e.article_id, e.start)])]
    lines += [frame["unsure"], ""] + [f"{c.quote} [{c.n}]" for c in evidence]
    lines += _sources(lang, _persian_quotes(evidence), evidence)
    return Answer(question, lang, "\n".join(lines), True, [], confidence=decision.confidence, evidence=evidence,
                  unsupported=[c.text for c in missing], trace=traced)
