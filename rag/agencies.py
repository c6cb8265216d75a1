"""News agencies: one name per outlet, from metadata or the text's attribution line.

``canonical("خبرگزاری فارس") == canonical("فارس") == canonical("Fars") == "Fars"``. Outlets in the
table get their English name (stable for filters and scripts) and a Persian one for Persian
readers; any other name is kept as written, without the words that only say what kind of outlet
it is («خبرگزاری», «روزنامه», "news agency"), with Arabic letter forms read as Persian, so two
spellings of one unknown outlet still meet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .persian import normalize_text

# English name, Persian name, other names (matched after normalize_text, case-insensitively).
OUTLETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Fars", "فارس", ("Fars News", "Fars News Agency", "farsnews", "farsnews.ir")),
    ("Tasnim", "تسنیم", ("Tasnim News", "tasnimnews", "tasnimnews.com")),
    ("IRNA", "ایرنا", ("خبرگزاری جمهوری اسلامی", "Islamic Republic News Agency", "irna.ir")),
    ("ISNA", "ایسنا", ("خبرگزاری دانشجویان ایران", "Iranian Students News Agency", "isna.ir")),
    ("Mehr", "مهر", ("Mehr News", "mehrnews", "mehrnews.com")),
    ("ILNA", "ایلنا", ("خبرگزاری کار ایران", "ilna.ir")),
    ("IBNA", "ایبنا", ("خبرگزاری کتاب ایران",)),
    ("YJC", "باشگاه خبرنگاران جوان", ("باشگاه خبرنگاران", "Young Journalists Club", "yjc.ir")),
    ("IRIB News", "صدا و سیما", ("خبرگزاری صدا و سیما", "صداوسیما", "واحد مرکزی خبر", "iribnews")),
    ("Tabnak", "تابناک", ("tabnak.ir",)),
    ("Khabar Online", "خبرآنلاین", ("خبر آنلاین", "khabaronline")),
    ("Entekhab", "انتخاب", ()),
    ("Hamshahri", "همشهری", ("همشهری آنلاین", "Hamshahri Online")),
    ("Kayhan", "کیهان", ()),
    ("Etemad", "اعتماد", ()),
    ("Shargh", "شرق", ()),
    ("Press TV", "پرس تی وی", ("PressTV",)),
    ("Tolo News", "طلوع نیوز", ("طلوع", "طلوعنیوز", "TOLOnews", "Tolonews", "tolonews.com")),
    ("Pajhwok", "پژواک", ("Pajhwok Afghan News", "خبرگزاری پژواک افغان", "pajhwok.com")),
    ("Bakhtar", "باختر", ("Bakhtar News Agency",)),
    ("Ariana News", "آریانا نیوز", ("آریانا",)),
    ("Khaama Press", "خامه پرس", ("Khaama",)),
    ("Hasht-e Subh", "هشت صبح", ("8am", "8am.media", "Hasht e Subh")),
    ("Etilaatroz", "اطلاعات روز", ("Etilaat Roz",)),
    ("Afghanistan International", "افغانستان اینترنشنال", ()),
    ("Iran International", "ایران اینترنشنال", ()),
    ("BBC Persian", "بی بی سی فارسی", ("بی بی سی", "بیبیسی فارسی", "بیبیسی", "BBC", "BBC News فارسی", "bbc.com/persian")),
    ("Radio Farda", "رادیو فردا", ()),
    ("Radio Azadi", "رادیو آزادی", ()),
    ("VOA Persian", "صدای آمریکا", ("VOA", "Voice of America")),
    ("DW Persian", "دویچه وله", ("DW", "Deutsche Welle", "دویچه وله فارسی")),
    ("Euronews Persian", "یورونیوز", ("Euronews", "یورونیوز فارسی")),
    ("Independent Persian", "ایندیپندنت فارسی", ()),
    ("Reuters", "رویترز", ("رویتر",)),
    ("AFP", "خبرگزاری فرانسه", ("Agence France-Presse", "فرانس پرس")),
    ("AP", "آسوشیتدپرس", ("Associated Press", "آسوشیتد پرس")),
    ("Xinhua", "شینهوا", ("شین هوا",)),
    ("Anadolu", "آناتولی", ("Anadolu Agency",)),
    ("Al Jazeera", "الجزیره", ()),
    ("Sputnik", "اسپوتنیک", ()),
    ("TASS", "تاس", ()),
    ("Memar", "معمار", ()),
)

# Words that only say what kind of outlet a name is (dropped from unknown names, and before lookup).
_KINDS = ("خبرگزاری", "خبرگذاری", "روزنامه", "پایگاه خبری", "پایگاه اطلاع رسانی", "پایگاه", "شبکه خبری", "شبکه",
          "رادیو", "تلویزیون", "هفته نامه", "سایت", "وبسایت", "news agency", "agency", "newspaper", "the")
_ROLE = re.compile(r"^(?:خبرنگار|گروه|سرویس|دبیر|مراسل)\b.*?(?=خبرگزاری|روزنامه|پایگاه|شبکه|$)")


def _key(name: str) -> str:
    return re.sub(r"\s+", " ", normalize_text(name)).strip().casefold()


_BY_KEY: dict[str, str] = {}
_PERSIAN: dict[str, str] = {}
for _en, _fa, _others in OUTLETS:
    _PERSIAN[_en] = _fa
    for _n in (_en, _fa, *_others):
        _BY_KEY[_key(_n)] = _en
        _BY_KEY[_key(_n).replace(" ", "")] = _en
_KIND_KEYS = sorted({_key(k) for k in _KINDS}, key=len, reverse=True)


def _strip_kind(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for k in _KIND_KEYS:
            if key.startswith(k + " "):
                key, changed = key[len(k) + 1:].strip(), True
            elif key.endswith(" " + k):
                key, changed = key[:-len(k) - 1].strip(), True
    return key


def canonical(name: str | None) -> str | None:
    """One name per outlet (see the module's docstring); None for an empty name."""
    if name is None:
        return None
    raw = re.sub(r"\s+", " ", name).strip(" \t\n\"'«»()[]:،,؛.")
    if not raw:
        return None
    key = _key(raw)
    for k in (key, key.replace(" ", ""), _strip_kind(key), _strip_kind(key).replace(" ", "")):
        if k in _BY_KEY:
            return _BY_KEY[k]
    # "خبرنگار سیاسی خبرگزاری فارس", "گروه بین‌الملل خبرگزاری فارس": the outlet is the last words
    words = key.split()
    for i in range(1, len(words)):
        tail = " ".join(words[i:])
        for k in (tail, _strip_kind(tail)):
            if k in _BY_KEY or k.replace(" ", "") in _BY_KEY:
                return _BY_KEY.get(k) or _BY_KEY[k.replace(" ", "")]
    kept = _ROLE.sub("", raw.translate(str.maketrans({"ي": "ی", "ك": "ک"}))).strip() or raw
    parts = kept.split()
    # drop the kind words (one or two of them, «پایگاه خبری»), keeping the name as written
    for _ in range(2):
        for n in (2, 1):
            if len(parts) > n and _key(" ".join(parts[:n])) in _KIND_KEYS:
                parts = parts[n:]
                break
    return " ".join(parts) or raw


def known_outlet(name: str | None) -> bool:
    """Whether ``name`` (canonical) is one of the outlets in the table."""
    return name in _PERSIAN


def shown(name: str | None, lang: str) -> str:
    """An outlet's name for a reader of ``lang`` (its Persian name for Persian readers)."""
    if not name:
        return ""
    return _PERSIAN.get(name, name) if lang == "fa" else name


# A dateline's agency: "KABUL (Pajhwok):", «کابل (باختر)»; IRNA's «تهران- ایرنا-».
_DATELINE = re.compile(r"^[^\n()]{0,40}?\(([^()\n]{2,30})\)\s*(?:[-–—:]|\s\d)"
                       r"|^[^\n\-–]{2,20}[-–]\s*([^\n\-–]{2,20}?)\s*[-–]", re.M)
_LATIN_OUTLET = re.compile(r"[A-Z][A-Za-z&.'\- ]{1,30}")
# Names too common as words to be taken as an outlet's name unless something says they are one
# (خلیج فارس, استان فارس, مهر the month, شرق the east).
_AMBIGUOUS = {_key(n) for n in ("فارس", "مهر", "شرق", "انتخاب", "اعتماد", "کیهان", "تاس", "باختر", "آریانا", "طلوع",
                                 "همشهری", "معمار", "AP", "DW", "VOA", "BBC", "آناتولی", "اسپوتنیک")}
_SCAN = sorted((k for k in _BY_KEY if k not in _AMBIGUOUS and " " not in k or len(k) > 8), key=len, reverse=True)

# Who reports: «به گزارش ...», «به نقل از ...», «منبع: ...»; and whom a person spoke to.
_TRIGGER = re.compile(r"(?<!\w)(به\s*گزارش|به\s*نقل\s*از|منبع\s*:|(?:گفت\s*و?\s*گو|گفتگو|مصاحبه)(?:\s*اختصاصی)?\s+با"
                      r"|(?:Source|Via)\s*:)\s*", re.I)
# The words that say what kind of outlet follows; an unknown name is taken only after one of them.
_OUTLET_KINDS = {_key(k) for k in ("خبرگزاری", "خبرگذاری", "روزنامه", "هفته نامه", "ماهنامه", "نشریه", "پایگاه خبری",
                                   "سایت خبری", "شبکه خبری", "news agency", "newspaper")}
# A reporter, a desk, a bureau: words before the outlet's name, never the name.
_ROLES = {_key(k) for k in ("خبرنگار", "خبرنگاران", "گروه", "سرویس", "دبیر", "دبیرخانه", "دفتر", "بخش", "مراسل",
                            "تحریریه", "ویژه نامه", "reporter", "correspondent")}
# Where an outlet's name ends: a preposition, a conjunction opening a clause, a verb of reporting.
_STOPS = {_key(k) for k in ("در", "از", "به", "که", "با", "برای", "بر", "طی", "ضمن", "درباره", "نیز", "هم", "امروز",
                            "دیروز", "چاپ", "منتشر", "آمده", "نوشت", "گفت", "اعلام", "وی", "این", "آن", "ما", "تاکید",
                            "افزود", "اظهار", "کرد", "داشت", "است")}


# Arabic letter forms and the zero-width non-joiner («به‌گزارش», «گفت‌وگو») read as the patterns are written.
_MATCHING = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "\u200c": " ", "\u00a0": " "})


@dataclass(frozen=True)
class Attribution:
    """Who published a report (``publisher``) and whom it quotes (``via``, «به نقل از ...»)."""

    publisher: str | None
    via: str | None = None


def _known(key: str) -> str | None:
    """The canonical name of a known outlet written as ``key`` (with or without its kind word)."""
    for k in (key, _strip_kind(key)):
        if k and (k in _BY_KEY or k.replace(" ", "") in _BY_KEY):
            return _BY_KEY.get(k) or _BY_KEY[k.replace(" ", "")]
    return None


def _words(phrase: str) -> list[str]:
    # a quoted name after a kind word is one word («روزنامه «دیلی تلگراف»»); other quotes are a desk's name
    out = []
    for quoted, plain in re.findall(r"[«\"]([^»\"]{1,40})[»\"]|([^\s«»\"]+)", phrase):
        out.append(quoted.strip() if quoted else plain)
    return out


def _outlet_in(words: list[str], lead: bool) -> tuple[str | None, int]:
    """The outlet a phrase names (canonical) and where it ends; ``lead``: the phrase follows «به
    گزارش» directly, so a bare name there is an outlet («به گزارش فارس»)."""
    role = False
    i = 0
    while i < len(words):
        w = _key(words[i])
        if w in _STOPS:
            break
        for n in (4, 3, 2, 1):
            if i + n > len(words):
                continue
            k = _key(" ".join(words[i:i + n]))
            known = _known(k)
            if known:
                after_kind = i > 0 and _key(words[i - 1]) in _OUTLET_KINDS
                if k not in _AMBIGUOUS or after_kind or role or (lead and i == 0):
                    return known, i + n
        two = _key(" ".join(words[i:i + 2]))
        kind = 2 if two in _OUTLET_KINDS else 1 if w in _OUTLET_KINDS else 0
        if kind:
            name = []
            for x in words[i + kind:i + kind + 3]:
                if _key(x) in _STOPS or _key(x) in _ROLES or _key(x) in _OUTLET_KINDS:
                    break
                name.append(x)
                if len(x.split()) > 1:  # a quoted name is whole
                    break
            if name:
                known = canonical(" ".join(name))
                return known, i + kind + len(name)
            return None, i + kind
        if w in _ROLES:
            role = True
        elif not role:
            break  # «به گزارش روابط عمومی ...», «به گزارش پلیس ...»: a body, not an outlet
        i += 1
    return None, i


def attribution(text: str) -> Attribution:
    """Who reports, from the lead: «به گزارش خبرنگار فارس در اسلام‌آباد» is Fars; «به گزارش فارس
    به نقل از رویترز» is Fars, via Reuters; a dateline ("KABUL (Reuters) -", «تهران- ایرنا-»)."""
    head = text[:600].translate(_MATCHING)
    publisher = via = None
    for m in _TRIGGER.finditer(head):
        end = re.search(r"[،,؛:.\n()!?؟]", head[m.end():m.end() + 120])
        phrase = head[m.end():m.end() + (end.start() if end else 120)]
        words = _words(phrase)
        trigger = _key(m.group(1))
        lead = trigger.startswith(("به گزارش", "بهگزارش", "منبع", "source", "via"))
        found, stop = _outlet_in(words, lead)
        if found is None:
            continue
        if not lead and not trigger.startswith(("به نقل", "بهنقل")) and \
                not any(_key(w) in _ROLES or _key(w) in _OUTLET_KINDS for w in words[:stop]):
            continue  # «در گفت‌وگو با الجزیره»: an interview another outlet ran, unless its reporter or agency
        if trigger.startswith(("به نقل", "بهنقل")):
            via = via or found
            continue
        publisher = found
        quoted = re.search(r"(?:به\s*نقل\s*از|via)\s+(.*)", head[m.end():m.end() + 200].split("\n")[0], re.I)
        if quoted and not via:
            via = _outlet_in(_words(re.split(r"[،,؛:.()]", quoted.group(1))[0]), True)[0]
        break
    if publisher is None:
        publisher = _dateline_agency(head) or _named_in_lead(head)
    if publisher is None and via is None:
        publisher = _named_on_top(head)
    return Attribution(publisher, via if via != publisher else None)


def _named_on_top(head: str) -> str | None:
    """A known outlet on a short line of its own at the top («رادیو آزادی», "Kabul, Afghanistan —
    Khaama Press"), or saying it reports («افغانستان اینترنشنال گزارش داد», «هشت صبح:»); a name
    inside a sentence is what the report is about."""
    for line in head[:300].splitlines():
        key = _key(line)
        opening = re.match(r"([^:]{2,30}):", key)  # «هشت صبح: ...» opens its line with its name
        if opening and opening.group(1).strip() not in _AMBIGUOUS and _known(opening.group(1).strip()):
            return _known(opening.group(1).strip())
        short = len(line.strip()) <= 60
        for k in _SCAN:
            at = f" {key} ".find(f" {k} ")
            if at < 0 and f"({k})" not in key:
                continue
            after = f" {key} "[at + len(k) + 1:]
            if short or re.match(r"\s*(?::|گزارش\s*(?:داد|میدهد|کرد))", after):
                return _BY_KEY[k]
    return None


def _dateline_agency(head: str) -> str | None:
    for m in _DATELINE.finditer(head[:600]):
        name = next(g for g in m.groups() if g).strip()
        key = _key(name)
        if key in _BY_KEY or _strip_kind(key) in _BY_KEY:
            return canonical(name)
        if m.group(1) and _LATIN_OUTLET.fullmatch(name):
            return name  # "KABUL (Khaama Press) -": a Latin outlet's name in a dateline
    return None


def _named_in_lead(head: str) -> str | None:
    """«در گفت‌وگو با خبرنگار ورزشی خبرگزاری فارس»; «خبرگزاری فارس؛»: a known outlet named as a
    news agency or with its reporter in the first sentences."""
    words = _words(re.sub(r"[،,؛:.()!?؟]", " ", head[:300]))
    for i, w in enumerate(words):
        if _key(w) in _OUTLET_KINDS or _key(w) in {"خبرنگار"}:
            for n in (3, 2, 1):
                known = _known(_key(" ".join(words[i + 1:i + 1 + n])))
                if known:
                    return known
    return None


def find_agency(text: str) -> str | None:
    """The agency that published a report, canonical (see :func:`attribution`); the outlet it
    quotes when the lead names no publisher; None when neither is named."""
    found = attribution(text)
    return found.publisher or found.via


def same_outlet(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and canonical(a) == canonical(b)
