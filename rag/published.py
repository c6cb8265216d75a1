"""An article's publication date, taken only where a date says so.

A date is the publication date when it comes from metadata (a JSONL ``date``, an HTML page's
date), from a dateline at the top («۲۰ تیر ۱۴۰۴ - ۱۰:۳۰», «تهران- ایرنا- ۵ مرداد ۱۴۰۴», "KABUL,
July 11 (Xinhua) --"), from a labelled line («تاریخ انتشار:», "Published", «به‌روز شده»), or from
the attribution sentence at the top («به گزارش فارس، ... روز جمعه (۲۰ سرطان) ...»), not as one
end of a range or an anniversary. Any other date near the top is an event the article reports.

A year is never made up. A day and month written without one keep "year unknown"
(``ArticleDate.month_day``), unless the article fixes the year: a two-digit year beside it (read by
rag.dates), its month named with a year elsewhere in it («تیرماه ۱۴۰۴»), or its latest full date,
the first such day on or after it being the day; a weekday named beside it must agree. No date is
later than the reference day (the ingestion day). A day in the attribution sentence counts only
beside its weekday («روز شنبه ۲۸ خرداد»): the day a report happened; other days there are events.
"""

from __future__ import annotations

import datetime as dt
import re

from .agencies import canonical, known_outlet
from .dates import (_MATCHING, GREGORIAN, ArticleDate, FoundDate, find_dates, find_month_years, month_day_of,
                    parse_metadata_date, year_of)

_TOP = 400  # the dateline and the attribution sentence are in the first characters of a report
_LABEL = re.compile(r"^\W*(?:تاریخ\s*(?:انتشار|خبر|درج)?|انتشار|منتشر\s*شده|به\s*روز\s*(?:شده|رسانی)|"
                    r"published|updated|posted|date)\s*(?:on\s*)?[:\-–|]?\s*$", re.I)
_TIME = r"\d{1,2}\s*[:٫]\s*\d{2}(?:\s*[:٫]\s*\d{2})?\s*(?:AM|PM|GMT[+\-\d:]*|[قب]\.?ظ)?"
_SEPARATOR = re.compile(rf"^\s*(?:[-–—:|/(]|{_TIME}|$)", re.I)
_ATTRIBUTION = re.compile(r"به\s*گزارش|به\s*نقل\s*از|\([A-Z][A-Za-z .&-]{1,30}\)\s*[-–—]")
# A Persian dateline naming its agency opens the attribution sentence as "KABUL (Reuters) -" does:
# «کابل (پژواک): ...»; the name in brackets must be a known outlet (a bracket may hold anyone).
_PERSIAN_DATELINE = re.compile(r"^\s*[^\n()]{2,40}?\(([^()\n]{2,30})\)\s*[-–—:]")
# A date that ends or starts a range, pairs with another («۲۷ و ۲۸ بهمن»), or names an anniversary.
_EVENT_BEFORE = re.compile(r"(?:(?<!\w)(?:از|تا|لغایت|الی|و|سالروز|سالگرد|حماسه|قیام|واقعه|حوادث|حادثه|مناسبت|مصوب|"
                           r"from|until|since|between|and)\s*)$", re.I)
_EVENT_AFTER = re.compile(r"^\s*(?:تا|لغایت|الی|و\s*\d|to\s|until|and\s*\d|[-–]\s*\d)", re.I)


def publication_date(text: str, metadata: str | None = None, reference: dt.date | None = None) -> ArticleDate | None:
    """The publication date of an article (see the module's docstring); None when nothing in
    its metadata or its top says it. ``reference``: the ingestion day (default today)."""
    reference = reference or dt.date.today()
    chosen = parse_metadata_date(metadata, reference) if metadata else None
    if chosen is None:
        chosen = _from_text(text, reference)
    if chosen is None:
        return None
    if chosen.year is not None:
        day, inferred = chosen.on(chosen.year), False
    else:
        day, inferred = year_from_article(chosen, text, reference), True
        if day is None:
            return ArticleDate(None, False, chosen.calendar, f"{chosen.month:02d}-{chosen.day:02d}")
    if day is None or day > reference:
        return None  # a day still to come is a plan or a typo, not when this was published
    return ArticleDate(day.isoformat(), inferred, chosen.calendar)


def _from_text(text: str, reference: dt.date) -> FoundDate | None:
    head = text[:1500]
    m_head = head.translate(_MATCHING)
    found = find_dates(head, reference)
    for f in found:  # a labelled line: «تاریخ انتشار: ۲۰ تیر ۱۴۰۴», "Published 10:30 AM, July 11, 2025"
        before = m_head[max(0, m_head.rfind("\n", 0, f.start) + 1):f.start]
        if _LABEL.search(re.sub(rf"{_TIME}|[\w]+day,?", " ", before, flags=re.I).rstrip(" ،,-–|")):
            return f
        line_end = m_head.find("\n", f.end)
        if re.match(r"^[\s\d:,APMGT+\-]*(?:updated|published)\b", m_head[f.end:line_end if line_end >= 0 else None],
                     re.I):
            return f
    # the sentence (or line) a date stands in begins near the top: a title repeated above the lead
    # («اسحاق دار: … \n\n اسحاق دار، …») must not push the attribution's own date out
    top = [f for f in found if max(m_head.rfind(ch, 0, f.start) for ch in ".!?؟\n") + 1 < _TOP]
    for f in top:
        if _in_dateline(m_head, f):
            return f
    for f in top:
        if _in_attribution(m_head, f):
            return f
    return None


def _line(m_text: str, f: FoundDate) -> tuple[str, str]:
    start = m_text.rfind("\n", 0, f.start) + 1
    end = m_text.find("\n", f.end)
    return m_text[start:f.start], m_text[f.end:end if end >= 0 else len(m_text)]


_WORD = re.compile(r"[^\W\d_]{2,}")
_WEEKDAY_WORDS = re.compile(r"(?:روز\s*)?(?:یک|دو|سه|چهار|پنج)?\s*شنبه|جمعه|monday|tuesday|wednesday|thursday|"
                            r"friday|saturday|sunday", re.I)


def _in_dateline(m_text: str, f: FoundDate) -> bool:
    """The date stands in a line of its own at the top (a date, a time, a code, a desk: three words
    besides at most), or opens a line after a place and an agency («تهران- ایرنا-», "KABUL,")."""
    before, after = _line(m_text, f)
    rest = _WEEKDAY_WORDS.sub(" ", before + " " + after)
    if len(before) + len(after) < 100 and len(_WORD.findall(rest)) <= 3:
        return True
    if len(before) > 40 or len(before.split()) > 4:
        return False
    if re.search(r"[-–—:)|,،]\s*$", before) or not _WEEKDAY_WORDS.sub("", before).strip(" ()"):
        return bool(re.search(r"[-–—:)|]\s*$", before)) or bool(_SEPARATOR.match(after)) \
            or bool(re.match(r"^\s*\([A-Za-z]", after))
    return False


def _in_attribution(m_text: str, f: FoundDate) -> bool:
    """The date is in the sentence that names who reports («به گزارش ...»), beside its weekday, and
    not as an event: one end of a range, one of a pair, an anniversary."""
    start = max(m_text.rfind(c, 0, f.start) for c in ".!?؟\n") + 1
    end_m = re.search(r"[.!?؟\n]", m_text[f.end:])
    sentence = m_text[start:f.end + (end_m.start() if end_m else len(m_text))]
    if not _names_reporter(sentence) or f.weekday is None:
        return False  # the report's own day is named with its weekday («روز شنبه ۲۸ خرداد»); others are events
    return not _EVENT_BEFORE.search(m_text[max(0, f.start - 12):f.start]) and not _EVENT_AFTER.match(m_text[f.end:])


def _names_reporter(sentence: str) -> bool:
    if _ATTRIBUTION.search(sentence):
        return True
    m = _PERSIAN_DATELINE.match(sentence)
    return bool(m) and known_outlet(canonical(m.group(1)))


def year_from_article(found: FoundDate, text: str, reference: dt.date) -> dt.date | None:
    """The day of ``found`` (a day and month) in the year the article fixes, if the weekday named
    beside it (if any) agrees: the year of its month named with a year elsewhere («تیرماه ۱۴۰۴»),
    else the first such day on or after the article's latest full date; else None."""
    same_month = {y for cal, month, y in find_month_years(text, reference)
                  if cal == found.calendar and month == found.month}
    if len(same_month) == 1:
        return _agreeing(found, found.on(same_month.pop()), reference)
    full = [d for d in (f.on(f.year) for f in find_dates(text, reference) if f.year is not None)
            if d is not None and d <= reference]
    if not full:
        return None
    floor = max(full)
    for y in (year_of(found.calendar, floor), year_of(found.calendar, floor) + 1):
        day = found.on(y)
        if day is not None and day >= floor:
            return _agreeing(found, day, reference)
    return None


def _agreeing(found: FoundDate, day: dt.date | None, reference: dt.date) -> dt.date | None:
    if day is None or day > reference or (found.weekday is not None and day.weekday() != found.weekday):
        return None
    return day


def earlier_text_date(text: str) -> FoundDate | None:
    """The date versions before 2026-12 took from an article's text: the first full date in its
    first 600 characters, else its first date. A stored date equal to it came from the text (not
    from metadata), so it is read again; see :func:`reread_news`."""
    near = find_dates(text[:1500])
    full = [f for f in near if f.year is not None and f.start < 600]
    return full[0] if full else (near[0] if near else None)


def reread_news(art, reference: dt.date) -> None:
    """Bring an article stored by an earlier version up to date (``art``: rag.articles.Article):
    a date that version took from the text, or whose year it inferred, is read again as
    :func:`publication_date` reads it, so a year it made up goes; a date from metadata stays (a
    year it inferred becomes "year unknown"). An agency name that is the text's but no known
    outlet («فارس و», «گروه») is read again too."""
    from .agencies import find_agency, known_outlet
    from .persian import normalize_text

    text = art.content()
    again = publication_date(text, None, reference)
    if art.date and not art.month_day and not (again and again.iso == art.date):
        old = earlier_text_date(text)
        stored = dt.date.fromisoformat(art.date)
        from_text = old is not None and ((old.year is not None and old.on(old.year) == stored) or (
            art.date_inferred and old.calendar == art.calendar
            and month_day_of(old.calendar, stored) == (old.month, old.day)))
        if from_text:
            art.date_from(None, reference)
        elif art.date_inferred:  # metadata without a year: its day and month stay, the year goes
            month, day = month_day_of(art.calendar or GREGORIAN, stored)
            art.date, art.date_inferred, art.month_day = None, False, f"{month:02d}-{day:02d}"
    if art.source and not known_outlet(art.source) and normalize_text(art.source) in normalize_text(text[:600]):
        art.source = find_agency(text)
