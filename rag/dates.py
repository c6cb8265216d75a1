"""Dates in news text: found in any of the calendars Persian and Dari news use, turned into ISO
(Gregorian) dates, and shown back in the reader's convention.

Calendars: Gregorian (English month names, and their Iranian and Afghan Persian spellings), the
solar Hijri calendar with Iranian month names (فروردین … اسفند) or Afghan ones (حمل … حوت), and the
lunar Hijri calendar where a month is named (محرم … ذی‌الحجه). Digits in any script. The calendar
arithmetic is persiantools' (solar Hijri) and hijridate's (lunar, Umm al-Qura); only the month
names are ours.

Which date an article was published on is rag.published's question; here dates are only found
(:func:`find_dates`), converted and shown. A year is never made up: a date written without one
has ``year`` None, and a two-digit solar year («۳۰ مهر ماه ۹۴») is read as the century that puts
it nearest before the reference day (1394, not 1494).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

GREGORIAN, IRANIAN, AFGHAN, HIJRI = "gregorian", "iranian", "afghan", "hijri"
SOLAR = (IRANIAN, AFGHAN)

IRANIAN_MONTHS = ("فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور", "مهر", "آبان", "آذر", "دی", "بهمن",
                  "اسفند")
AFGHAN_MONTHS = ("حمل", "ثور", "جوزا", "سرطان", "اسد", "سنبله", "میزان", "عقرب", "قوس", "جدی", "دلو", "حوت")
HIJRI_MONTHS = ("محرم", "صفر", "ربیع الاول", "ربیع الثانی", "جمادی الاول", "جمادی الثانی", "رجب", "شعبان", "رمضان",
                "شوال", "ذی القعده", "ذی الحجه")
ENGLISH_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                  "November", "December")
# Gregorian months as Iranian (first) and Afghan Persian write them.
PERSIAN_GREGORIAN = (("ژانویه", "ژانویهٔ", "جنوری"), ("فوریه", "فوریهٔ", "فبروری"), ("مارس", "مارچ"),
                     ("آوریل", "اوریل", "اپریل"), ("مه", "می"), ("ژوئن", "جون"), ("ژوئیه", "ژوئیهٔ", "جولای"),
                     ("اوت", "آگوست", "آگست", "اگست"), ("سپتامبر", "سپتمبر"), ("اکتبر", "اکتوبر"),
                     ("نوامبر", "نومبر"), ("دسامبر", "دسمبر"))

_MONTHS: dict[str, tuple[str, int]] = {}
for _i, _m in enumerate(IRANIAN_MONTHS, 1):
    _MONTHS[_m] = (IRANIAN, _i)
for _i, _m in enumerate(AFGHAN_MONTHS, 1):
    _MONTHS[_m] = (AFGHAN, _i)
for _i, _m in enumerate(HIJRI_MONTHS, 1):
    _MONTHS[_m] = (HIJRI, _i)
_HIJRI_VARIANTS = {"ربیع الآخر": 4, "جمادی الاولی": 5, "جمادی الآخر": 6, "جمادی الثانیه": 6, "جمادی الآخره": 6,
                   "ذیقعده": 11, "ذی قعده": 11, "ذیحجه": 12, "ذی حجه": 12}
for _m, _i in _HIJRI_VARIANTS.items():
    _MONTHS[_m] = (HIJRI, _i)
for _i, _names in enumerate(PERSIAN_GREGORIAN, 1):
    for _m in _names:
        _MONTHS[_m] = (GREGORIAN, _i)
_MONTH_KEYS = {k.replace(" ", ""): v for k, v in _MONTHS.items()}  # as _month looks them up
_ENGLISH = {}
for _i, _m in enumerate(ENGLISH_MONTHS, 1):
    _ENGLISH[_m.lower()] = _i
    _ENGLISH[_m[:3].lower()] = _i
_ENGLISH["sept"] = 9

# Weekdays (Monday = 0, as datetime counts).
_WEEKDAYS = {"شنبه": 5, "یکشنبه": 6, "یک شنبه": 6, "دوشنبه": 0, "دو شنبه": 0, "سه شنبه": 1, "سهشنبه": 1,
             "چهارشنبه": 2, "چهار شنبه": 2, "پنجشنبه": 3, "پنج شنبه": 3, "جمعه": 4,
             "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}

# One-for-one replacements (offsets stay valid): Arabic letter forms, the zero-width non-joiner
# and the Arabic tatweel read as their Persian / plain forms for matching only.
_MATCHING = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "\u200c": " ", "\u0640": " ", "ة": "ه", "أ": "ا",
                           "إ": "ا", "\u00a0": " "})


def _alt(names) -> str:
    return "|".join(re.escape(n).replace(r"\ ", r"\s*") for n in sorted(names, key=len, reverse=True))


_D = r"\d"  # any script's decimal digits (str patterns match Unicode Nd)
_PERSIAN_MONTH = _alt(_MONTHS)
_EN_MONTH = _alt(list(_ENGLISH)) + r"|" + _alt(ENGLISH_MONTHS)
_WEEKDAY = re.compile(rf"(?<!\w)({_alt(_WEEKDAYS)})(?!\w)", re.I)
_YEAR_SUFFIX = r"(?:\s*(?:هجری\s*)?(?:شمسی|خورشیدی|قمری|میلادی|ه\s*\.?\s*ش|ه\s*\.?\s*ق|AD|CE))?"
# after a day and month, two digits are a year («۲۸ خرداد ۸۴») unless they count something («۱۰ تیر ۲۵ نفر»)
_COUNTED = (r"(?:نفر|تن|درصد|هزار|میلیون|میلیارد|ساعت|دقیقه|ثانیه|روز|ماه|سال|کیلو|متر|نوبت|بار|مورد|عدد|دستگاه|"
            r"واحد|ریال|تومان|دلار|یورو|کشور|استان|شهر|گل|امتیاز|درجه|قطعه|جلد|عنوان|اثر|ساله|سالگی|ام|م\b)")
_SP = r"[^\S\n]*"  # a two-digit year is on the line of its month
_NOT_A_YEAR = rf"(?![\d/:.٫])(?!\s*{_COUNTED})(?!\s*(?:{_PERSIAN_MONTH}|{_EN_MONTH})(?![^\W\d_]))"
_DAY_MONTH = re.compile(
    rf"(?<![\d/.-])(?P<d>{_D}{{1,2}})(?:st|nd|rd|th|ام|م)?\s*(?:ی\s*)?(?P<m>{_PERSIAN_MONTH}|{_EN_MONTH})\.?"
    rf"(?:\s*ماه)?(?![^\W\d_])(?:\s*[,،]?\s*(?:سال\s*)?(?P<y>{_D}{{4}})(?!\d){_YEAR_SUFFIX}"
    rf"|{_SP}[,،]?{_SP}(?:سال{_SP})?(?P<y2>{_D}{{2}}){_NOT_A_YEAR})?", re.I)
_MONTH_DAY = re.compile(
    rf"(?<![^\W\d_])(?P<m>{_EN_MONTH})\.?\s+(?P<d>{_D}{{1,2}})(?:st|nd|rd|th)?(?!\d)(?:\s*,?\s*(?P<y>{_D}{{4}})(?!\d))?",
    re.I)
_NUMERIC = re.compile(rf"(?<![\d/.-])(?P<y>{_D}{{4}})\s*(?P<sep>[/.-])\s*(?P<m>{_D}{{1,2}})\s*(?P=sep)\s*"
                      rf"(?P<d>{_D}{{1,2}})(?![\d/])")
_NUMERIC_DMY = re.compile(rf"(?<![\d/.-])(?P<d>{_D}{{1,2}})(?P<sep>[/.-])(?P<m>{_D}{{1,2}})(?P=sep)"
                          rf"(?P<y>{_D}{{4}})(?![\d/])")
# A month and year without a day («تیرماه ۱۴۰۴», «مهر ۹۴», "July 2025"): the day before it, if any, is
# not a digit (that would be a full date).
_MONTH_YEAR = re.compile(
    rf"(?<![\d\s])(?<!\d\s)\s*(?P<m>{_PERSIAN_MONTH}|{_EN_MONTH})(?:{_SP}ماه)?(?![^\W\d_]){_SP},?{_SP}"
    rf"(?:سال{_SP})?(?:(?P<y>{_D}{{4}})(?!\d)|(?P<y2>{_D}{{2}}){_NOT_A_YEAR})", re.I)


@dataclass(frozen=True)
class FoundDate:
    """A date written in a text: where, in which calendar, and its parts (``year`` None when not
    written); ``weekday`` (Monday = 0) when a weekday is named beside it."""

    start: int
    end: int
    calendar: str
    day: int
    month: int
    year: int | None
    weekday: int | None = None

    def on(self, year: int) -> dt.date | None:
        return to_gregorian(self.calendar, year, self.month, self.day)


@dataclass(frozen=True)
class ArticleDate:
    iso: str | None         # YYYY-MM-DD (Gregorian); None when the year is unknown
    inferred: bool          # the year was not written beside it but fixed by another date in the article
    calendar: str           # the calendar the article wrote it in (how to show it to a Persian reader)
    month_day: str | None = None  # "MM-DD" in ``calendar`` when the year is unknown


def to_gregorian(calendar: str, year: int, month: int, day: int) -> dt.date | None:
    """The Gregorian day of a date in ``calendar``, or None when there is no such day."""
    try:
        if calendar == GREGORIAN:
            return dt.date(year, month, day)
        if calendar in SOLAR:
            from persiantools.jdatetime import JalaliDate

            return JalaliDate(year, month, day).to_gregorian()
        if calendar == HIJRI:
            import hijridate

            return dt.date(*hijridate.Hijri(year, month, day).to_gregorian().datetuple())
    except (ValueError, OverflowError, TypeError):
        return None
    return None


def year_of(calendar: str, day: dt.date) -> int:
    """The year ``day`` falls in, in ``calendar``."""
    if calendar in SOLAR:
        from persiantools.jdatetime import JalaliDate

        return JalaliDate.to_jalali(day).year
    if calendar == HIJRI:
        import hijridate

        try:
            return hijridate.Gregorian(day.year, day.month, day.day).to_hijri().year
        except (ValueError, OverflowError):
            return day.year - 579  # outside the Umm al-Qura table: a year near enough to start from
    return day.year


def month_day_of(calendar: str, day: dt.date) -> tuple[int, int]:
    """The month and day ``day`` falls on in ``calendar``."""
    if calendar in SOLAR:
        from persiantools.jdatetime import JalaliDate

        j = JalaliDate.to_jalali(day)
        return j.month, j.day
    if calendar == HIJRI:
        import hijridate

        h = hijridate.Gregorian(day.year, day.month, day.day).to_hijri()
        return h.month, h.day
    return day.month, day.day


def _calendar_of_year(year: int) -> str:
    """A numeric date's calendar from its year: solar Hijri years are below 1700 in any news."""
    return GREGORIAN if year >= 1700 else IRANIAN


def _month(name: str) -> tuple[str, int] | None:
    # the pattern lets a two-word month be written with any spacing («ربیع‌الاول», «ربیع الاول»)
    key = re.sub(r"\s+", "", name.translate(_MATCHING))
    english = key.lower().rstrip(".")
    if english in _ENGLISH:
        return GREGORIAN, _ENGLISH[english]
    return _MONTH_KEYS.get(key)


def _two_digit_year(yy: int, calendar: str, reference: dt.date) -> int:
    """A solar year written with two digits: the century that puts it on or before the reference
    day's year («۹۴» read in 2026 is 1394, «۰۴» is 1404)."""
    now = year_of(calendar, reference)
    return max(y for y in (1300 + yy, 1400 + yy) if y <= now) if 1300 + yy <= now else 1300 + yy


# «می» and «مه» are also a verb prefix and "fog": as May they need a year beside them
_NEEDS_YEAR = {"می", "مه"}


def find_dates(text: str, reference: dt.date | None = None) -> list[FoundDate]:
    """Every date written in ``text`` (day and month at least), in text order, that exists in
    its calendar (a 30 Esfand of a common year is not a date). ``reference`` (default today)
    places a two-digit solar year in its century."""
    m_text = text.translate(_MATCHING)
    found: list[FoundDate] = []
    taken: list[tuple[int, int]] = []

    def free(s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b in taken)

    for pattern in (_NUMERIC, _DAY_MONTH, _MONTH_DAY, _NUMERIC_DMY):
        for m in pattern.finditer(m_text):
            if not free(m.start(), m.end()):
                continue
            end = m.end()
            try:
                day, year = int(m["d"]), int(m["y"]) if m["y"] else None
                if pattern is _NUMERIC or pattern is _NUMERIC_DMY:
                    month = int(m["m"])
                    if pattern is _NUMERIC_DMY and (year is None or year < 1700):
                        continue  # 11/07/2025 is day first, as Persian and European outlets write it
                    calendar = _calendar_of_year(year)
                else:
                    cm = _month(m["m"])
                    if cm is None:
                        continue
                    calendar, month = cm
                    y2 = m.groupdict().get("y2")
                    if y2:
                        if calendar in SOLAR:
                            year = _two_digit_year(int(y2), calendar, reference or dt.date.today())
                        else:  # two digits after a Gregorian or lunar month: not a year we read
                            end = m.start("y2")
                    if year is None and re.sub(r"\s+", "", m["m"]) in _NEEDS_YEAR:
                        continue
            except ValueError:
                continue
            if not (1 <= day <= 31 and 1 <= month <= 12):
                continue
            if year is not None and to_gregorian(calendar, year, month, day) is None:
                continue
            if year is None and day > (31 if calendar == GREGORIAN or (calendar in SOLAR and month <= 6) else 30):
                continue
            end = len(m_text[:end].rstrip())
            taken.append((m.start(), end))
            found.append(FoundDate(m.start(), end, calendar, day, month, year, _weekday_near(m_text, m.start(), end)))
    return sorted(found, key=lambda f: f.start)


def find_month_years(text: str, reference: dt.date | None = None) -> list[tuple[str, int, int]]:
    """``(calendar, month, year)`` of each month named with a year and no day («تیرماه ۱۴۰۴»,
    «مهر ۹۴», "July 2025")."""
    out = []
    for m in _MONTH_YEAR.finditer(" " + text.translate(_MATCHING)):
        cm = _month(m["m"])
        if cm is None or (m["y2"] and cm[0] not in SOLAR):
            continue
        year = int(m["y"]) if m["y"] else _two_digit_year(int(m["y2"]), cm[0], reference or dt.date.today())
        out.append((cm[0], cm[1], year))
    return out


def _weekday_near(m_text: str, start: int, end: int) -> int | None:
    """A weekday named just before the date («روز جمعه (۲۰ سرطان)», "Friday, July 11") or just
    after it («۲۰ سرطان، جمعه»)."""
    before = list(_WEEKDAY.finditer(m_text[max(0, start - 16):start]))
    if before and not re.search(r"[.!?؟\n]", m_text[max(0, start - 16) + before[-1].end():start]):
        return _WEEKDAYS[re.sub(r"\s+", " ", before[-1].group(1)).lower()]
    after = _WEEKDAY.match(m_text[end:end + 12].lstrip(" ،,()-"))
    if after:
        return _WEEKDAYS[re.sub(r"\s+", " ", after.group(1)).lower()]
    return None


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def is_iso_day(value: str | None) -> bool:
    """Whether ``value`` is a date as stored (``YYYY-MM-DD``), not one as a text wrote it."""
    return bool(value) and _ISO_DAY.fullmatch(value) is not None


def parse_metadata_date(value: str, reference: dt.date | None = None) -> FoundDate | None:
    """A date as metadata gives it: ISO (``2025-07-11``, ``2025-07-11T08:30:00+04:30``), solar
    Hijri numeric (``1404-04-20``) or written out in any calendar."""
    if not value or not value.strip():
        return None
    found = find_dates(value.strip()[:200], reference)
    return found[0] if found else None


def parse_day(value: str) -> dt.date:
    """A day as a user types it for a filter: ``YYYY-MM-DD`` (a year below 1700 is solar Hijri,
    ``1404-04-20``), or written out (``20 Saratan 1404`` is not English; «۲۰ سرطان ۱۴۰۴», "11 July
    2025"). Raises ValueError naming the value."""
    found = parse_metadata_date(value)
    if found is None or found.year is None:
        raise ValueError(f"{value!r} is not a date: use YYYY-MM-DD (Gregorian, or solar Hijri such as 1404-04-20)")
    day = found.on(found.year)
    if day is None:
        raise ValueError(f"{value!r} is not a day of its calendar")
    return day


_FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


# Month names for English readers of a day whose year (so whose Gregorian day) is unknown.
_LATIN_MONTHS = {IRANIAN: ("Farvardin", "Ordibehesht", "Khordad", "Tir", "Mordad", "Shahrivar", "Mehr", "Aban",
                           "Azar", "Dey", "Bahman", "Esfand"),
                 AFGHAN: ("Hamal", "Sawr", "Jawza", "Saratan", "Asad", "Sonbola", "Mizan", "Aqrab", "Qaws", "Jadi",
                          "Dalw", "Hut"),
                 HIJRI: ("Muharram", "Safar", "Rabi al-Awwal", "Rabi al-Thani", "Jumada al-Ula", "Jumada al-Akhira",
                         "Rajab", "Shaban", "Ramadan", "Shawwal", "Dhu al-Qada", "Dhu al-Hijja"),
                 GREGORIAN: ENGLISH_MONTHS}
_PERSIAN_NAMES = {IRANIAN: IRANIAN_MONTHS, AFGHAN: AFGHAN_MONTHS, HIJRI: HIJRI_MONTHS,
                  GREGORIAN: tuple(n[0] for n in PERSIAN_GREGORIAN)}


def format_month_day(month_day: str | None, lang: str, calendar: str | None) -> str:
    """A day whose year is unknown, in the calendar the article wrote it in: «۲۰ سرطان»,
    "20 Saratan, year unknown", "11 July, year unknown"."""
    try:
        month, day = map(int, (month_day or "").split("-"))
        names = (_PERSIAN_NAMES if lang == "fa" else _LATIN_MONTHS)[calendar or GREGORIAN]
        name = names[month - 1]
    except (ValueError, KeyError, IndexError):
        return ""
    return f"{day} {name}".translate(_FA_DIGITS) if lang == "fa" else f"{day} {name}, year unknown"


def format_date(iso: str | None, lang: str, calendar: str | None = None, inferred: bool = False,
                month_day: str | None = None) -> str:
    """A stored date as a reader of ``lang`` reads it: English "11 July 2025"; Persian in the
    solar Hijri calendar with the article's own month names (Afghan or Iranian) and the
    Gregorian beside it: «۲۰ سرطان ۱۴۰۴ (۱۱ ژوئیه ۲۰۲۵)». A year fixed by another date in the
    article is marked; a day whose year is unknown is shown without one (:func:`format_month_day`)."""
    if not iso:
        return format_month_day(month_day, lang, calendar) if month_day else ""
    try:
        day = dt.date.fromisoformat(iso)
    except ValueError:
        return iso
    if lang != "fa":
        text = f"{day.day} {ENGLISH_MONTHS[day.month - 1]} {day.year}"
        return text + (" (year inferred)" if inferred else "")
    from persiantools.jdatetime import JalaliDate

    j = JalaliDate.to_jalali(day)
    names = AFGHAN_MONTHS if calendar == AFGHAN else IRANIAN_MONTHS
    greg = PERSIAN_GREGORIAN[day.month - 1][-1 if calendar == AFGHAN else 0]
    text = f"{j.day} {names[j.month - 1]} {j.year} ({day.day} {greg} {day.year})".translate(_FA_DIGITS)
    return text + (" (سال حدسی)" if inferred else "")
