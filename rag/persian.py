"""Persian/English text handling for *matching only*.

Nothing here rewrites what the user sees: :func:`normalize` returns a matching key together with a
map from every key character back to its raw offset, so a match in the key becomes a slice of the
raw text. Sentence splitting works on the raw text and returns raw ``(start, end)`` offsets.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

ZWNJ = "\u200c"

# One raw character becomes zero or more key characters.
_CHAR_MAP: dict[str, str] = {
    "ك": "ک", "ڪ": "ک",            # Arabic kaf
    "ي": "ی", "ى": "ی", "ې": "ی", "ۍ": "ی", "ئ": "ی",  # Arabic/Pashto yeh, alef maksura, hamza-yeh
    "ة": "ه", "ۀ": "ه", "ۂ": "ه",  # teh marbuta, heh with yeh above
    "أ": "ا", "إ": "ا", "ٱ": "ا", "آ": "ا",  # alef variants
    "ؤ": "و",
    "٬": "", "،": ",", "؛": ";", "؟": "?", "٫": ".",
    "«": '"', "»": '"',
}
for _i in range(10):
    _CHAR_MAP[chr(0x06F0 + _i)] = str(_i)  # Persian digits
    _CHAR_MAP[chr(0x0660 + _i)] = str(_i)  # Arabic-Indic digits

# Dropped entirely from the key: tatweel, Arabic diacritics (harakat, shadda, sukun, superscript
# alef, hamza above/below), and the invisible joiners/marks that scraped news scatters around.
# ZWNJ is dropped so that `اسلام‌آباد` and `اسلامآباد` give one key; the space variant is handled
# by the joined word pairs of :func:`terms`.
_DROP = set("\u0640" + "".join(chr(c) for c in range(0x064B, 0x0660)) + "\u0670\u06d6\u06d7\u06d8\u06d9\u06da\u06db\u06dc"
            + "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff\u00ad")


def _map_char(ch: str) -> str:
    if ch in _DROP:
        return ""
    mapped = _CHAR_MAP.get(ch)
    if mapped is not None:
        return mapped
    o = ord(ch)
    # Arabic presentation forms and full-width Latin fold to their plain letters.
    if 0xFB50 <= o <= 0xFDFF or 0xFE70 <= o <= 0xFEFF or 0xFF01 <= o <= 0xFF5E:
        folded = unicodedata.normalize("NFKC", ch)
        return "".join(_map_char(c) for c in folded) if folded != ch else ch
    if ch.isspace():
        return " "
    if unicodedata.category(ch) == "Cc":
        return " "
    return ch.casefold() if ch.isascii() or o < 0x0600 else ch


@dataclass(frozen=True)
class Normalized:
    """A matching key and, for each key character, the raw offset it came from.

    ``offsets`` has one entry per key character: the raw index it came from. A key span ``[i, j)``
    maps to the raw span ``[offsets[i], offsets[j-1] + 1)``; use :meth:`raw_span`.
    """

    key: str
    offsets: tuple[int, ...]
    raw_len: int

    def raw_span(self, i: int, j: int) -> tuple[int, int]:
        """Raw ``(start, end)`` covering key characters ``i..j-1`` (``i < j``)."""
        if not 0 <= i < j <= len(self.key):
            raise ValueError(f"bad key span {i}:{j} for key of length {len(self.key)}")
        return self.offsets[i], self.offsets[j - 1] + 1


def normalize(text: str) -> Normalized:
    """Key for matching: unified yeh/kaf/alef, ASCII digits, no diacritics/tatweel/ZWNJ, casefolded
    Latin, whitespace runs kept as single spaces."""
    out: list[str] = []
    offs: list[int] = []
    prev_space = True
    for i, ch in enumerate(text):
        m = _map_char(ch)
        for c in m:
            if c == " ":
                if prev_space:
                    continue
                prev_space = True
            else:
                prev_space = False
            out.append(c)
            offs.append(i)
    # trailing space carries no meaning
    if out and out[-1] == " ":
        out.pop()
        offs.pop()
    return Normalized("".join(out), tuple(offs), len(text))


class _KeyTable(dict):
    """``str.translate`` table of :func:`_map_char`, filled as characters are met."""

    def __missing__(self, o: int) -> str:
        self[o] = m = _map_char(chr(o))
        return m


_KEY_TABLE = _KeyTable()
_SPACE_RUNS = re.compile(" {2,}")


def normalize_text(text: str) -> str:
    """Just the key of :func:`normalize` (the same string, ~10x faster: no offsets kept)."""
    return _SPACE_RUNS.sub(" ", text.translate(_KEY_TABLE)).strip(" ")


_PERSIAN_LETTER = re.compile(r"[\u0600-\u06FF\uFB50-\uFDFF\uFE70-\uFEFF]")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00C0-\u024F]")


def detect_language(text: str) -> str:
    """``"fa"`` when Arabic-script letters outnumber Latin ones, else ``"en"``."""
    fa = len(_PERSIAN_LETTER.findall(text))
    en = len(_LATIN_LETTER.findall(text))
    return "fa" if fa > 0 and fa >= en else "en"


# ---------------------------------------------------------------- sentences

# Version of the way an article is cut (these sentence rules, and rag.chunking's sizes). It is part
# of every article's fingerprint, so re-ingesting an unchanged article after a bump re-segments it.
# 2: initials and dotted abbreviations ("جی.کی. رولینگ", "J. K. Rowling") no longer end a sentence.
SEGMENTATION = 2

_SENT_END = set(".!?؟…")
_CLOSERS = set("»\"')]”’")
_OPEN_QUOTE, _CLOSE_QUOTE = "«", "»"


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Raw ``(start, end)`` spans of the sentences in ``text[start:end]``, whitespace trimmed.

    Sentences end at ``. ! ? ؟ …`` (a run of them, plus closing quotes/brackets) and at line
    breaks; ``؛`` and ``،`` do not end a sentence; a full stop between digits (``3.5``) does not;
    a ``«…»`` quotation is kept whole unless a line break intervenes.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    s = start
    depth = 0
    i = start
    while i < end:
        ch = text[i]
        cut = None
        if ch == "\n" or ch == "\r" or ch == "\u2029":
            depth = 0
            cut = i
            nxt = i + 1
        elif ch == _OPEN_QUOTE:
            depth += 1
            nxt = i + 1
        elif ch == _CLOSE_QUOTE:
            depth = max(0, depth - 1)
            nxt = i + 1
        elif ch in _SENT_END and depth == 0:
            if ch == "." and 0 < i < end - 1 and text[i - 1].isdigit() and text[i + 1].isdigit():
                nxt = i + 1
            else:
                j = i + 1
                while j < end and (text[j] in _SENT_END or text[j] in _CLOSERS):
                    j += 1
                # A full stop glued to a following letter ("e.g.x", "U.S.") is not a sentence end,
                # nor one after an initial or a dotted abbreviation ("J. K. Rowling", "جی.کی. رولینگ").
                if ch == "." and j < end and (not text[j].isspace() and text[j] not in _CLOSERS
                                              or j == i + 1 and _abbreviation(text, start, i)):
                    nxt = j
                else:
                    cut = j
                    nxt = j
        else:
            nxt = i + 1
        if cut is not None:
            spans.extend(_trimmed(text, s, cut))
            s = nxt
        i = nxt
    spans.extend(_trimmed(text, s, end))
    return spans


def _abbreviation(text: str, start: int, dot: int) -> bool:
    """Whether the full stop at ``dot`` closes a dotted abbreviation ("e.g.", "جی.کی.", "ق.م.":
    parts of at most three letters) or one of a run of initials ("J. K. Rowling"), with more of the
    sentence after it: such a stop does not end the sentence. A capital after a Latin abbreviation
    ("in the U.S. The ...") and a lone capital ("plan A. Next") still end it."""
    def word_before(i: int) -> str:
        a = i
        while a > start and not text[a - 1].isspace():
            a -= 1
        return text[a:i]

    word = word_before(dot)
    parts = word.split(".")
    if not all(p.isalpha() and len(p) <= 3 for p in parts):
        return False
    k = dot + 1
    while k < len(text) and text[k] in " \t\u200c":
        k += 1
    if k >= len(text) or not text[k].isalpha():
        return False
    if len(parts) > 1:  # a dotted abbreviation
        return not text[k].isupper()
    if not (len(word) == 1 and word.isupper()):
        return False
    # a capital initial: part of a run of them
    def initial(w: str) -> bool:
        return len(w) == 2 and w[0].isupper() and w[1] == "."
    m = k
    while m < len(text) and not text[m].isspace():
        m += 1
    before = dot - len(word) - 1
    while before > start and text[before - 1] in " \t":
        before -= 1
    return initial(text[k:m]) or (before > start and initial(word_before(before)))


def _trimmed(text: str, s: int, e: int) -> list[tuple[int, int]]:
    while s < e and (text[s].isspace() or text[s] in "\u200c\u200d\u200e\u200f\ufeff"):
        s += 1
    while e > s and (text[e - 1].isspace() or text[e - 1] in "\u200c\u200d\u200e\u200f\ufeff"):
        e -= 1
    if e <= s:
        return []
    # a span of only punctuation is not a sentence
    if not any(c.isalnum() for c in text[s:e]):
        return []
    return [(s, e)]


# ---------------------------------------------------------------- terms for lexical matching

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ARABIC_SCRIPT = re.compile(r"[\u0600-\u06FF]")

# Very common function words that carry no topic (normalized forms).
STOPWORDS = frozenset(
    """و در به از که این را با است برای آن یک تا بر های ها می شود شد هم نیز یا اما کرد کرده کند
    او وی ما من تو شما انها ان ایشان خود دیگر هر چه چرا کجا کدام چند چگونه ایا بود بودند باشد
    چیست چیه چی کیست کیه کجاست کدوم کسی چیزی چقدر چطور کی چندمین زمانی سالی شده شه داره رو کنه
    دارد داشت ای اند هست نیست بین پس
    the a an of in on at to for is are was were be been by with and or what which who whom whose
    when where why how did do does from as that this it its into about than then there these those
    has have had not no can could would should will""".split()
)


# Thousands separators between digit groups (`946,651`, `۹۴۶٬۶۵۱`, `1'000`): one number, one term.
_DIGIT_GROUPS = re.compile(r"(?<=\d)[,'](?=\d{3}(?!\d))")


# Plural suffixes written solid or with a ZWNJ (which the key drops): `کتاب‌ها`, `کتابهای`, `کتابهایی`.
# Only these: `ان`, `ات`, `ی`, `تر` also end many stems (`ایران`, `دفتر`).
_SUFFIXES = ("هایی", "های", "ها")


def _stem(word: str) -> str:
    """The word without a plural suffix, when at least three letters remain (Persian words only)."""
    if _ARABIC_SCRIPT.match(word):
        for suf in _SUFFIXES:
            if word.endswith(suf) and len(word) - len(suf) >= 3:
                return word[: -len(suf)]
    return word


@lru_cache(maxsize=1 << 16)
def _word(word: str) -> tuple[str, bool]:
    """``(stem, joins)`` of a normalized word: its stem, and whether it is a Persian word that is
    not a stopword (such neighbours are also joined into one term). Cached: words repeat, and
    these checks were most of the time ``terms`` took."""
    return _stem(word), bool(_ARABIC_SCRIPT.match(word)) and word not in STOPWORDS


def words(text: str) -> list[tuple[str, int, int]]:
    """Normalized words with their raw ``(start, end)`` spans."""
    n = normalize(text)
    out = []
    for m in _WORD.finditer(n.key):
        s, e = n.raw_span(m.start(), m.end())
        out.append((m.group(), s, e))
    return out


def terms(text: str, *, stopwords: bool = False) -> list[str]:
    """Lexical terms: normalized words plus each adjacent pair of Persian words joined, so that a
    compound written with a space (`اسلام آباد`) meets the same compound written solid or with a
    ZWNJ (`اسلامآباد`, `اسلام‌آباد`)."""
    ws = _WORD.findall(_DIGIT_GROUPS.sub("", normalize_text(text)))
    # A lone Latin letter ("s" of "city's") matches everything and means nothing.
    ws = [w for w in ws if len(w) > 1 or not w.isascii() or w.isdigit()]
    out = [w for w in ws if stopwords or w not in STOPWORDS]
    out += [st for w in out if (st := _word(w)[0]) != w]
    joins = [_word(w)[1] for w in ws]
    out += [a + b for a, b, ja, jb in zip(ws, ws[1:], joins, joins[1:]) if ja and jb]
    return out


# ---------------------------------------------------------------- negation

# Embeddings barely tell "X did not attend" from "X attended"; a question asked in the negative is
# answered only by a sentence that says something in the negative or names an exception. Persian
# negates a verb with a prefix: نمی‌/نمی + verb, or ن + the verb's stem (نرفت، ندارد، نکرده). The stems
# below are the common ones (normalized: ا for آ); a word is negative when it is ن + a stem + a
# personal or participle ending, so nouns that merely begin with ن (نام، نیرو) are not.
_NEG_STEMS = frozenset("""
کرد کن دار داشت بود باش شد شو رفت رو خواند خوان خورد خور امد ای اید یا گفت گو گوی توان توانست خواه خواست
دید بین داد ده دهد گرفت گیر ساخت ساز زد زن نوشت نویس ماند مان یافت یاب اورد اور برد بر کشت کش پذیرفت پذیر
جنگید جنگ دانست دان شناخت شناس رسید رس افتاد افت گذاشت گذار پرداخت پرداز خواب فروخت فروش پوشید پوش
""".split())
_NEG_ENDINGS = frozenset("""م ی د یم ید ند ن ه ست ستند ستن دند دن ده ته شد شده یمش""".split()) | {""}
_NEG_WORDS = frozenset("نیست نیستند نیستن نیستم نیستی نیستید نیستیم هیچ هیچگاه هرگز".split())
# words of the same shape that are not negations (نزد "at, among"; نبرد "battle"; نیا "forefather")
_NOT_NEGATIVE = frozenset("نشون نشان نشانه نمونه نکته نهاد نمایش نماینده نمای نزد نبرد نبردی نیا نیای نیاکان نای".split())
# English: the words, and contractions (don't, isn't); "no" but not "No. 1", "no 10".
_EN_NEGATION = re.compile(r"\b(?:not|never|none|neither|nor|nobody|nothing|nowhere|cannot|no(?!\.|\s*\d))\b"
                          r"|[A-Za-z]n['’]t\b", re.IGNORECASE)
_EXCEPTION = frozenset("جز بجز بهجز مگر غیر بدون فاقد except without besides apart excluding".split())


def _negative_word(w: str) -> bool:
    if w in _NEG_WORDS:
        return True
    if w in _NOT_NEGATIVE or not w.startswith("ن") or len(w) < 3:
        return False
    if w == "نمی" or (w.startswith("نمی") and len(w) > 4):
        return True
    rest = w[1:]
    return any(rest.startswith(st) and rest[len(st):] in _NEG_ENDINGS for st in _NEG_STEMS)


def negated(text: str) -> bool:
    """Whether ``text`` (a question) is put in the negative (Persian or English)."""
    return bool(_EN_NEGATION.search(text)) or any(_negative_word(w) for w, _, _ in words(text))


def negative_or_exception(text: str) -> bool:
    """Whether ``text`` (a sentence) says something in the negative or names an exception."""
    return bool(_EN_NEGATION.search(text)) or any(_negative_word(w) or w in _EXCEPTION for w, _, _ in words(text))
