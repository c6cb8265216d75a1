"""The question's constraints, checked against the evidence a quote stands in.

A reader model scores whether a sentence answers a question, but it scores "What did China's foreign
minister say?" high on a sentence about Pakistan's. So, independently of it, the question's salient
constraints are taken out and each must be found in the cited sentence's neighbourhood (the sentence
before and after it in its passage, and its article's title):

- office titles with their holder («وزیر خارجه چین», "the Taliban government's foreign minister"):
  the title followed closely by the same holder, and not as a deputy's («معاون نخست‌وزیر» is not the
  prime minister);
- names of countries, cities, organisations and agencies (a bilingual gazetteer, rag/data/
  gazetteer.json, and rag.agencies), and other names of an English question by transliteration
  (rag.translit);
- numbers, and month names;
- rare terms of a Persian question: words the index holds in few passages (its own document
  frequencies, passed in by retrieval), matched by their normalized, plural-free form.

Persian↔Persian matching is on rag.persian's normalized words; English↔Persian through the gazetteer
and transliteration. What is not matched is returned, so the answer can name what is missing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Mapping

from .agencies import OUTLETS
from .dates import ENGLISH_MONTHS, IRANIAN_MONTHS, AFGHAN_MONTHS, PERSIAN_GREGORIAN
from .persian import STOPWORDS, _stem, normalize_text, words
from .translit import LATIN_WORD, NOT_NAMES, persian_skeletons, spelled_in

# Gazetteer forms that are also everyday Persian words (مالی "financial", دوشنبه "Monday", وین, چاد, ...):
# never taken as a name in a Persian question.
_AMBIGUOUS_FA = frozenset(normalize_text(w) for w in
                          """مالی دوشنبه وین چاد پرو ترک شاه امیر رهبر گینه عمان اردن کره فارسی عربی ملی مهر
                          انتخاب شرق اعتماد کیهان باختر تاس طلوع اریانا جمهوری""".split())
# Capitalized English words that names translate rather than spell ("Treaty", "Western Medicine"):
# a run of capitalized words made only of these is no name to check
_TRANSLATED = frozenset("""treaty office western eastern northern southern north south east west assembly council
    hemisphere millennial ministry department university airport international national federal central supreme
    general royal great new old upper lower island islands river mountain mountains sea ocean lake gulf bay party
    parliament court bank company church empire kingdom dynasty state states city province street square palace
    museum bridge station medicine energy war act agreement convention prize award cup league games olympic olympics
    committee commission agency organization organisation union association institute school college hospital army
    navy force forces police security peace revolution movement front alliance conference summit festival day
    scottish english french german spanish italian chinese russian american british european african asian
    islamic arab arabic persian catholic protestant christian muslim jewish""".split())
# Question words and verbs of asking: never a rare term.
_ASKING = frozenset(normalize_text(w) for w in """
    چه چی چیست چیزی کدام کدامیک کدوم کی کیست چند چندم چندمین چقدر چگونه چطور چرا کجا کجاست ایا آیا
    نام اسم گفت گفته گفتند کرد کردند کرده شد شدند شده بود بودند است هستند دارد دارند داشت داشتند
    میشود میشوند میکند میکنند باعث چیست سال سالی روز ماه تاریخ زمان زمانی دلیل علت نوع تعداد مقدار""".split())
_HOLDER_FILLERS = frozenset(normalize_text(w) for w in "دولت حکومت کشور رژیم جمهوری اسلامی امور government".split())
# «دیدار کرد»: the word before a light verb is the verb's, not a title's holder
_LIGHT_VERBS = frozenset(normalize_text(w) for w in """کرد کردند کند کنند کرده شد شدند شود شده داد دادند دهد
    داشت داشتند دارد گفت گفتند زد آمد رسید""".split())
# what may follow a title without naming its holder («نخست‌وزیر سابق», «وزیر جدید»)
_TITLE_ADJECTIVES = frozenset(normalize_text(w) for w in "سابق جدید فعلی پیشین نهایی کنونی اسبق موقت وقت اول دوم".split())
# In English the holder of "X's foreign minister" / "the Chinese foreign minister" / "foreign minister of X".
_EN_FILLERS = {"the", "government", "government's", "regime", "regime's", "state", "'s", "of", "new", "current",
               "former", "then", "interim", "acting", "caretaker", "islamic", "republic"}


@dataclass(frozen=True)
class Constraint:
    kind: str                      # "title", "name", "number", "month", "term"
    text: str                      # as the question writes it (named in the answer when missing)
    keys: tuple[str, ...] = ()     # normalized Persian/Latin forms, any of which supports it
    holder: tuple[str, ...] = ()   # for a title: the forms of its holder, found just after the title
    spell: str = ""                # an English name checked by transliteration when no form matches
    df: int | None = None          # a term: how many passages of the index hold it (of ``passages``)
    passages: int = 0


@dataclass
class Evidence:
    """What a quote stands in, prepared for matching: its normalized words (plural-free forms too),
    the same words squashed in runs of up to three (``اسلام آباد`` = ``اسلاماباد``), and the
    consonant skeletons of its Persian words."""
    text: str
    tokens: list[str] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        ws = words(self.text)
        self.tokens = [w for w, _, _ in ws]
        self.spans = [(s, e) for _, s, e in ws]
        self.vocab = set(self.tokens) | {_stem(t) for t in self.tokens}
        self._skeletons: set[str] | None = None
        # where each word starts, by its first two letters: a form is looked for only there
        self._at: dict[str, list[int]] = {}
        for i, t in enumerate(self.tokens):
            self._at.setdefault(t[:2], []).append(i)

    def skeletons(self) -> set[str]:
        if self._skeletons is None:
            self._skeletons = persian_skeletons(self.text)
        return self._skeletons

    def find(self, form: str, start: int = 0, stop: int | None = None) -> int | None:
        """The index of the first word at which ``form`` (normalized, spaces optional) begins, a
        suffix (ی, ها, ان …) allowed on its last word."""
        squashed = form.replace(" ", "")
        stop = len(self.tokens) if stop is None else min(stop, len(self.tokens))
        starts = self._at.get(squashed[:2], []) + self._at.get(squashed[:1], [])
        for i in sorted(i for i in starts if start <= i < stop):
            joined = ""
            for j in range(i, min(i + 4, len(self.tokens))):
                joined += self.tokens[j]
                if joined == squashed or (joined.startswith(squashed) and _suffix_ok(joined[len(squashed):])):
                    return i
                if not squashed.startswith(joined):
                    break
        return None

    def has(self, form: str) -> bool:
        if " " not in form and (form in self.vocab or _stem(form) in self.vocab):
            return True
        return self.find(form) is not None

    def raw(self, i: int, n: int) -> str:
        """The raw text of words ``i`` … ``i + n - 1``."""
        j = min(i + n, len(self.spans)) - 1
        return self.text[self.spans[i][0]:self.spans[j][1]]


_SUFFIXES = ("", "ی", "ها", "های", "هایی", "ان", "یان", "ای", "اش", "ش", "s", "es", "n", "ian", "ese", "i")


def _suffix_ok(rest: str) -> bool:
    return rest in _SUFFIXES


@dataclass(frozen=True)
class _Gazetteer:
    fa: Mapping[str, tuple[str, ...]]      # a normalized Persian form → every form of its entity (fa + en)
    adjectives: frozenset[str]             # forms that are nationality adjectives: only a title's holder
    en: Mapping[str, tuple[str, ...]]      # a lower-cased English form → the same
    acronyms: frozenset[str]               # English forms matched only in capitals ("WHO", "UN", "US")
    titles_fa: tuple[tuple[str, tuple[str, ...]], ...]   # (form, all forms of its title), longest first
    titles_en: tuple[tuple[str, tuple[str, ...], re.Pattern], ...]


@lru_cache(maxsize=1)
def gazetteer() -> _Gazetteer:
    data = json.loads(resources.files("rag").joinpath("data/gazetteer.json").read_text(encoding="utf-8"))
    entries = [(e["en"] + e.get("en_adj", []), e["fa"] + e.get("fa_adj", [])) for e in data["entities"]]
    adjectives = {normalize_text(f) for e in data["entities"] for f in e.get("fa_adj", [])} | \
        {f.lower() for e in data["entities"] for f in e.get("en_adj", [])}
    entries += [([en, *(o for o in others if o.isascii())], [fa, *(o for o in others if not o.isascii())])
                for en, fa, others in OUTLETS]
    fa_map: dict[str, tuple[str, ...]] = {}
    en_map: dict[str, tuple[str, ...]] = {}
    acronyms: set[str] = set()
    for en, fa in entries:
        forms = tuple(sorted({normalize_text(f) for f in fa} | {f.lower() for f in en}))
        for f in fa:
            key = normalize_text(f)
            if key and key not in _AMBIGUOUS_FA and len(key.replace(" ", "")) >= 3:
                fa_map.setdefault(key, forms)
        for f in en:
            en_map.setdefault(f.lower(), forms)
            if f.isupper() or (len(f) <= 4 and f.replace(".", "").isupper()):
                acronyms.add(f.lower())
    titles_fa, titles_en = [], []
    for t in data["titles"]:
        forms = tuple(sorted({normalize_text(f) for f in t["fa"]} | {f.lower() for f in t["en"]}))
        titles_fa += [(normalize_text(f), forms) for f in t["fa"]]
        titles_en += [(f.lower(), forms) for f in t["en"]]
    by_len = lambda x: -len(x[0])  # noqa: E731
    titles_en = [(f, forms, re.compile(rf"\b{re.escape(f)}\b")) for f, forms in sorted(titles_en, key=by_len)]
    return _Gazetteer(fa_map, frozenset(adjectives), en_map, frozenset(acronyms), tuple(sorted(titles_fa, key=by_len)), tuple(titles_en))


_MONTHS_EN = {m.lower(): i for i, m in enumerate(ENGLISH_MONTHS, 1)}
_MONTH_FORMS = {i: tuple(normalize_text(f) for f in PERSIAN_GREGORIAN[i - 1]) + (m.lower(),)
                for m, i in _MONTHS_EN.items()}
_SOLAR_MONTHS = frozenset(normalize_text(m) for m in IRANIAN_MONTHS + AFGHAN_MONTHS)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_EN_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?![\w])")
_EN_WORD = re.compile(r"[A-Za-z][A-Za-z.\-]*[A-Za-z]|[A-Za-z]")


def question_constraints(question: str, lang: str, df: Mapping[str, int] | None = None,
                         passages: int = 0) -> list[Constraint]:
    """The constraints of ``question`` (in ``lang``). ``df``: how many passages of the index hold each
    of its terms, of ``passages`` in all; each content word of a Persian question is a ``term`` with
    its document frequency (rag.decision counts those rare enough, ``rare_idf``)."""
    return _english(question) if lang == "en" else _persian(question, df or {}, passages)


def idf(df: int, passages: int) -> float:
    return math.log(1 + passages / (df + 0.5))


def _persian(question: str, df: Mapping[str, int], passages: int) -> list[Constraint]:
    g = gazetteer()
    q = Evidence(question)
    toks = q.tokens
    used = [False] * len(toks)
    out: list[Constraint] = []

    def entity_at(i: int, adjectives: bool = True) -> tuple[int, tuple[str, ...]] | None:
        for n in (3, 2, 1):
            if i + n <= len(toks):
                key = " ".join(toks[i:i + n])
                forms = g.fa.get(key) or g.fa.get(key.replace(" ", ""))
                if forms and not adjectives and key in g.adjectives:
                    forms = None
                if forms is None and adjectives and n == 1 and len(toks[i]) > 3 and toks[i].endswith("ی"):
                    forms = g.fa.get(toks[i][:-1])  # a nationality: «چینی»
                if forms:
                    return n, forms
        return None

    i = 0
    while i < len(toks):
        for form, forms in g.titles_fa:
            n = form.count(" ") + 1
            if " ".join(toks[i:i + n]) == form or (n == 1 and toks[i].rstrip("ی") == form):
                j = i + n
                while j < len(toks) and toks[j] in _HOLDER_FILLERS:
                    j += 1
                holder = entity_at(j) if j < len(toks) else None
                if holder is None and j == i + n and j < len(toks) and _content(toks[j]) \
                        and toks[j] not in _TITLE_ADJECTIVES and (j + 1 == len(toks) or toks[j + 1] not in _LIGHT_VERBS):
                    holder = (1, (toks[j], _stem(toks[j])))  # «وزیر علوم»: the portfolio as written
                m, hforms = holder or (0, ())
                out.append(Constraint("title", q.raw(i, j + m - i if m else n), forms, hforms))
                for k in range(i, j + m if m else i + n):
                    used[k] = True
                i = (j + m if m else i + n) - 1
                break
        i += 1
    i = 0
    while i < len(toks):
        if not used[i]:  # a nationality adjective alone describes, it is not what is asked about
            found = entity_at(i, adjectives=False)
            if found:
                n, forms = found
                out.append(Constraint("name", q.raw(i, n), forms))
                for k in range(i, i + n):
                    used[k] = True
                i += n
                continue
        i += 1
    for i, t in enumerate(toks):
        if used[i]:
            continue
        if _NUMBER.fullmatch(t):
            out.append(Constraint("number", q.raw(i, 1), (t,)))
        elif t in _SOLAR_MONTHS and any(_NUMBER.fullmatch(x) for x in toks[max(0, i - 1):i + 2]):
            out.append(Constraint("month", q.raw(i, 1), (t,)))  # «میزان», «سرطان» are words too
        elif passages and t not in STOPWORDS and t not in _ASKING and len(t) >= 3 and not t.isascii():
            out.append(Constraint("term", q.raw(i, 1), (t, _stem(t)), df=df.get(t, df.get(_stem(t), 0)),
                                  passages=passages))
    return out


def _content(token: str) -> bool:
    return token not in STOPWORDS and token not in _ASKING and not token.isascii() and len(token) >= 3


def _english(question: str) -> list[Constraint]:
    g = gazetteer()
    low = question.lower().replace("’", "'")
    out: list[Constraint] = []
    taken: list[tuple[int, int]] = []

    def free(s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b in taken)

    def entity_near(s: int, e: int) -> tuple[int, int, tuple[str, ...]] | None:
        """An entity ending just before ``s`` (X's / the X government's / Chinese) or starting just after
        ``e`` (of X)."""
        before = low[:s].rstrip()
        words_before = re.findall(r"[a-z][a-z.\-]*(?:'s)?", before)[-4:]
        for n in range(len(words_before), 0, -1):
            cand = [w for w in words_before[-n:]]
            while cand and cand[-1].replace("'s", "") in _EN_FILLERS:
                cand.pop()
            phrase = " ".join(cand).replace("'s", "")
            if phrase and phrase in g.en:
                return before.rfind(cand[0]), e, g.en[phrase]
        m = re.match(r"\s+of\s+(?:the\s+)?([a-z][a-z .\-]*)", low[e:])
        if m:
            ws = m.group(1).split()
            for n in range(min(4, len(ws)), 0, -1):
                phrase = " ".join(ws[:n])
                if phrase in g.en:
                    return s, e + m.start(1) + len(phrase), g.en[phrase]
        return None

    for form, forms, pattern in g.titles_en:
        for m in pattern.finditer(low):
            if not free(m.start(), m.end()):
                continue
            if re.search(r"\b(?:deputy|vice|assistant)\s*$", low[:m.start()]):
                taken.append((m.start(), m.end()))
                continue  # a deputy's office is written too many ways («معاون … وزارت …») to check
            near = entity_near(m.start(), m.end())
            if near:
                s, e, hforms = near
                holder_text = (question[s:m.start()] if s < m.start() else question[m.end():e])
                holder_words = [w for w in re.findall(r"[A-Za-z]+", holder_text) if w.lower() not in _EN_FILLERS
                                and len(w) > 2]
                out.append(Constraint("title", question[s:e], forms, hforms, spell=" ".join(holder_words)))
                taken.append((s, e))
    ws = [(m.group().removesuffix("'s").removesuffix("’s"), m.start(), m.end()) for m in _EN_WORD.finditer(question)]
    i = 0
    while i < len(ws):  # the longest run of words (up to 4) that is a gazetteer form, capitalized
        for n in range(min(4, len(ws) - i), 0, -1):
            run = ws[i:i + n]
            phrase = " ".join(w for w, _, _ in run).lower()
            forms = g.en.get(phrase) or (g.en.get(phrase[:-1]) if n == 1 and phrase.endswith("s") else None)
            if forms is None or not run[0][0][0].isupper() or not free(run[0][1], run[-1][2]):
                continue
            if phrase in g.acronyms and not run[0][0].replace(".", "").isupper():
                continue  # "Who" is not the WHO
            text = question[run[0][1]:run[-1][2]]
            out.append(Constraint("name", text, forms, spell=" ".join(w for w, _, _ in run if len(w) > 2)))
            taken.append((run[0][1], run[-1][2]))
            i += n - 1
            break
        i += 1
    run: list[re.Match] = []

    def close_run() -> None:
        # a run of capitalized words is one name ("Los Angeles International Airport"): a Persian
        # text translates some of its words and spells others, so one spelled word supports it
        if run:
            text = question[run[0].start():run[-1].end()]
            words_ = tuple(w for m in run for w in re.split(r"[-]", m.group().removesuffix("'s")) if len(w) > 2)
            if words_ and not all(w.lower() in _TRANSLATED for w in words_):
                out.append(Constraint("name", text, tuple(w.lower() for w in words_), spell=" ".join(words_)))
            run.clear()

    for m in LATIN_WORD.finditer(question):
        w = m.group().removesuffix("'s")
        gap = question[run[-1].end():m.start()] if run else ""
        if run and gap.strip(" ") != "":
            close_run()
        if not free(m.start(), m.end()) or not w[0].isupper() or m.start() == 0:
            close_run()
            continue
        if w.lower() in _MONTHS_EN:
            close_run()
            out.append(Constraint("month", w, _MONTH_FORMS[_MONTHS_EN[w.lower()]]))
        elif w not in NOT_NAMES and w.lower() not in STOPWORDS:
            run.append(m)
        else:
            close_run()
        taken.append((m.start(), m.end()))
    close_run()
    for m in _EN_NUMBER.finditer(question):  # "4G" is a name, not the number 4
        if free(m.start(), m.end()):
            out.append(Constraint("number", m.group(), (m.group().replace(",", ""),)))
    return out


def supported(c: Constraint, ev: Evidence) -> bool:
    """Whether the evidence holds constraint ``c``."""
    if c.kind == "title":
        for form in c.keys:
            start = 0
            while (i := ev.find(form, start)) is not None:
                n = form.count(" ") + 1
                deputy = i > 0 and ev.tokens[i - 1] in ("معاون", "deputy", "vice")
                if not deputy and (not c.holder or any(ev.find(h, i + n, i + n + 5) is not None for h in c.holder)
                                   or (c.spell and i + n < len(ev.tokens) and _spelled_near(c.spell, ev.raw(i + n, 4)))):
                    return True
                start = i + 1
        return False
    if any(ev.has(k) for k in c.keys):
        return True
    return bool(c.spell) and any(spelled_in(w, ev.skeletons()) for w in c.spell.split())


def _spelled_near(spell: str, text: str) -> bool:
    """A title's English holder spelled in the words after the title (another spelling than the
    gazetteer's: «لس آنجلس» for its «لوس‌آنجلس»)."""
    skeletons = persian_skeletons(text)
    return any(spelled_in(w, skeletons) for w in spell.split())


def unsupported(constraints: list[Constraint], ev: Evidence) -> list[Constraint]:
    return [c for c in constraints if not supported(c, ev)]


def instead(c: Constraint, ev: Evidence) -> str | None:
    """For a missing title: what the evidence holds in its place (the same title with another holder,
    as written there), to name beside what is missing."""
    if c.kind != "title":
        return None
    for form in c.keys:
        i = ev.find(form)
        if i is not None:
            n = form.count(" ") + 1
            first = i - 1 if i > 0 and ev.tokens[i - 1] in ("معاون", "deputy", "vice") else i
            return ev.raw(first, min(i - first + n + 1, len(ev.tokens) - first))
    return None
