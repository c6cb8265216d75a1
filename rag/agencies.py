"""News agencies: one name per outlet, from metadata or the text's attribution line.

``canonical("خبرگزاری فارس") == canonical("فارس") == canonical("Fars") == "Fars"``. Outlets in the
table get their English name (stable for filters and scripts) and a Persian one for Persian
readers; any other name is kept as written, without the words that only say what kind of outlet
it is («خبرگزاری», «روزنامه», "news agency"), with Arabic letter forms read as Persian, so two
spellings of one unknown outlet still meet.
"""

from __future__ import annotations

import re

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
    ("Reuters", "رویترز", ()),
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


def shown(name: str | None, lang: str) -> str:
    """An outlet's name for a reader of ``lang`` (its Persian name for Persian readers)."""
    if not name:
        return ""
    return _PERSIAN.get(name, name) if lang == "fa" else name


# «به گزارش خبرگزاری فارس،» «به نقل از ایرنا،» "(Reuters) -", "Source: BBC".
_ATTRIBUTION = re.compile(
    r"(?:به\s*گزارش|به\s*نقل\s*از|منبع\s*:)\s*([^؛،,:.\n()«»]{2,60}?)\s*(?:[؛،,:.\n(«]|به\s*نقل|از\s|$)"
    r"|^\s*(?:[A-Z][A-Za-z .,'-]{0,40}\s)?\(([A-Z][A-Za-z&.\- ]{1,30})\)\s*[-–—]\s"
    r"|(?:Source|Via)\s*:\s*([^\n,.;]{2,40})", re.M)


# A dateline's agency: "KABUL (Pajhwok):", «کابل (باختر)»; IRNA's «تهران- ایرنا-».
_DATELINE = re.compile(r"^[^\n()]{0,40}?\(([^()\n]{2,30})\)\s*(?:[-–—:]|\s\d)"
                       r"|^[^\n\-–]{2,20}[-–]\s*([^\n\-–]{2,20}?)\s*[-–]", re.M)
# Names too common as words to be taken as an outlet's name unless something says they are one
# (خلیج فارس, مهر the month, شرق the east).
_AMBIGUOUS = {_key(n) for n in ("فارس", "مهر", "شرق", "انتخاب", "اعتماد", "کیهان", "تاس", "باختر", "آریانا", "طلوع",
                                 "همشهری", "معمار", "AP", "DW", "VOA", "BBC", "آناتولی", "اسپوتنیک")}
_SCAN = sorted((k for k in _BY_KEY if k not in _AMBIGUOUS and " " not in k or len(k) > 8), key=len, reverse=True)


def find_agency(text: str) -> str | None:
    """The reporting agency near the top, canonical: the attribution line («به گزارش ...»), the
    dateline ("KABUL (Reuters) -"), else a known outlet named in the first lines."""
    head = text[:3000]
    for m in _ATTRIBUTION.finditer(head):
        found = canonical(next(g for g in m.groups() if g))
        if found:
            return found
    for m in _DATELINE.finditer(head[:600]):
        name = next(g for g in m.groups() if g)
        key = _key(name)
        if key in _BY_KEY or _strip_kind(key) in _BY_KEY:
            return canonical(name)
    top = " " + _key(head[:300]) + " "
    for k in _SCAN:
        if f" {k} " in top or f" {k}:" in top or f"({k})" in top:
            return _BY_KEY[k]
    return None


def same_outlet(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and canonical(a) == canonical(b)
