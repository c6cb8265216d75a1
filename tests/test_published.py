"""Publication dates and agencies as Iranian and Afghan reports write them (issue 42): a date only
where it says when the report was published, no year made up, one clean outlet name. The
sentences are written for these tests in the style of such reports."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rag import RAG
from rag.agencies import Attribution, attribution, find_agency
from rag.articles import load_file
from rag.dates import find_dates, format_date
from rag.hashed import HashedEmbedder
from rag.published import publication_date

DATA = Path(__file__).parent / "data"
TODAY = dt.date(2026, 11, 30)


def _pub(text: str, metadata: str | None = None, reference: dt.date = TODAY):
    return publication_date(text, metadata, reference)


# ---------------------------------------------------------------- which date is the publication date

def test_an_event_near_the_top_is_not_the_publication_date():
    assert _pub("به گزارش خبرگزاری فارس، بیست سال پس از حوادث ۱۱ سپتامبر ۲۰۰۱ پرونده‌ها هنوز باز است.") is None
    assert _pub("وزیر نیرو گفت سد کرج در ۱۲ مهر ۱۳۹۰ افتتاح شد و اکنون کم‌آب است.") is None
    # an anniversary and a day named in a body sentence are events too
    assert _pub("به گزارش ایسنا، مراسم سالروز ۱۵ خرداد روز یکشنبه برگزار شد.") is None
    assert _pub("همایش روز دوشنبه ۲۲ بهمن در سالن شهر برگزار می‌شود.") is None


def test_dateline_labelled_line_and_attribution_sentence_are_evidence():
    assert _pub("تهران- ایرنا- ۱۸ آبان ۱۴۰۲ سخنگوی دولت گفت").iso == "2023-11-09"
    assert _pub("تاریخ انتشار: ۰۹:۴۰ - ۲ اسفند ۱۳۹۸\nبه گزارش تسنیم، جلسه برگزار شد").iso == "2020-02-21"
    assert _pub("HERAT, March 3, 2024 (Pajhwok): Farmers said").iso == "2024-03-03"
    # the report's own day in its attribution sentence, beside its weekday, with a two-digit year
    found = _pub("به گزارش خبرنگار اقتصادی فارس، نرخ مرغ در روز پنجشنبه ۳۰ مهر ماه ۹۴ در میادین تهران اعلام شد.")
    assert (found.iso, found.inferred, found.calendar) == ("2015-10-22", False, "iranian")


def test_a_persian_dateline_naming_its_agency_opens_the_attribution_sentence():
    """«کابل (پژواک): ...» is the Persian "KABUL (Reuters) -": the report's day named with its
    weekday in that sentence is the publication date; brackets naming no outlet are not a dateline,
    and a day without its weekday there is still an event."""
    said = "مسئولان وزارت معادن روز چهارشنبه، ۲۵ سرطان ۱۴۰۴ گفتند که کار استخراج آغاز می‌شود."
    assert (_pub("کابل (پژواک): " + said).iso, _pub("کابل (پژواک): " + said).calendar) == ("2025-07-16", "afghan")
    assert _pub("کابل (وزیر معادن): " + said) is None
    assert _pub("کابل (پژواک): مسئولان گفتند که کار از ۲۵ سرطان ۱۴۰۴ آغاز می‌شود.") is None


def test_ranges_and_pairs_are_not_the_publication_date():
    assert _pub("به گزارش مهر، نمایشگاه کتاب روز شنبه از ۲۴ فروردین لغایت ۳ اردیبهشت برپاست.") is None
    assert _pub("به گزارش مهر، جشنواره روزهای سه‌شنبه ۲۷ و ۲۸ بهمن برگزار می‌شود.") is None


def test_month_and_year_alone_and_relative_days_give_no_date():
    assert find_dates("قرارداد در مهر ۱۳۹۴ امضا شد و در September 2001 نه.") == []
    assert _pub("به گزارش فارس، وزیر امروز گفت که دیروز و روز گذشته جلسه‌ای نبود.") is None


def test_two_digit_solar_years_and_scripts():
    assert [(f.year, f.month, f.day) for f in find_dates("در ۳۰ مهر ماه ۹۴ و ۱۵ خرداد سال 42", TODAY)] == \
        [(1394, 7, 30), (1342, 3, 15)]
    assert [(f.year, f.month, f.day) for f in find_dates("۲ تیر ۰۳", TODAY)] == [(1403, 4, 2)]
    # two digits that count something are not a year
    assert [f.year for f in find_dates("۱۰ تیر ۲۵ نفر دستگیر شدند", TODAY)] == [None]
    # Arabic letter forms and Arabic-Indic or ASCII digits read the same
    for line in ("يكشنبه ٨ مهر ١٤٠٣", "یکشنبه ۸ مهر ۱۴۰۳", "يكشنبه 8 مهر 1403"):
        assert _pub(line + "\nبه گزارش خبرگزاري فارس، جلسه برگزار شد").iso == "2024-09-29"
    assert find_dates("تعداد آنها 10 می باشد") == []  # «می» is May only with a year


def test_year_unknown_is_kept_and_shown_without_one():
    found = _pub("به گزارش طلوع‌نیوز، روز جمعه (۲۰ سرطان) وزارت خارجه اعلام کرد که گفتگوها ادامه دارد.")
    assert (found.iso, found.month_day, found.calendar) == (None, "04-20", "afghan")
    assert format_date(None, "fa", "afghan", month_day="04-20") == "۲۰ سرطان"
    assert format_date(None, "en", "afghan", month_day="04-20") == "20 Saratan, year unknown"
    assert format_date(None, "en", "gregorian", month_day="07-11") == "11 July, year unknown"
    # metadata without a year is no different
    found = _pub("جلسه برگزار شد.", metadata="۲۰ سرطان")
    assert (found.iso, found.month_day) == (None, "04-20")


def test_a_citation_of_an_article_whose_year_is_unknown_names_its_day():
    from rag.answer import Citation

    c = Citation(1, "نقل", "a", "t", 0, 4, 1.0, source="Tolo News", calendar="afghan", month_day="04-20")
    assert c.where("fa") == "طلوع نیوز، ۲۰ سرطان"
    assert c.where("en") == "Tolo News, 20 Saratan, year unknown"


def test_file_time_is_no_evidence_unless_asked(tmp_path):
    jsonl = tmp_path / "archive.jsonl"
    jsonl.write_text(json.dumps({"id": "a", "title": "t", "text": "به گزارش فارس، روز پنجشنبه ۳۰ مهر همایش برگزار شد."},
                                ensure_ascii=False), encoding="utf-8")
    note = tmp_path / "note.txt"
    note.write_text("همایش\nبه گزارش فارس، روز پنجشنبه ۳۰ مهر همایش برگزار شد.", encoding="utf-8")
    stamp = dt.datetime(2025, 11, 1, 12).timestamp()
    for p in (jsonl, note):
        os.utime(p, (stamp, stamp))
    [art] = load_file(jsonl).articles
    assert (art.date, art.month_day) == (None, "07-30")
    [art] = load_file(note).articles
    assert (art.date, art.month_day) == (None, "07-30")
    [art] = load_file(note, file_time_years=True).articles  # the explicit option: the latest 30 Mehr by then
    assert (art.date, art.date_inferred, art.month_day) == ("2025-10-22", True, None)


def test_year_unknown_matched_by_no_date_filter_and_listed_after_dated(tmp_path):
    from rag.ui import timeline_data

    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles([_article("u", "به گزارش طلوع‌نیوز، روز جمعه (۲۰ سرطان) وزارت معارف اعلام کرد که مکاتب باز است."),
                    _article("d", "۲۰ سرطان ۱۴۰۴\nبه گزارش طلوع‌نیوز، وزارت صحت اعلام کرد که واکسین رسید.")])
    assert [a.id for a in r.articles(since="2000-01-01")] == ["d"]
    assert [a.id for a in r.articles(until="2100-01-01")] == ["d"]
    _, rows = timeline_data(r)
    assert [row[3] for row in rows] == ["d", "u"] and rows[1][0] == "20 Saratan, year unknown"
    _, rows = timeline_data(r, since="2000-01-01")
    assert [row[3] for row in rows] == ["d"]
    r.close()


def _article(aid: str, text: str):
    from rag import Article

    return Article(id=aid, title=aid, text=text)


# ---------------------------------------------------------------- an index stored by the old code

def test_index_built_by_the_previous_version_loses_its_made_up_years(tmp_path):
    """tests/data/news_v2_index: tests/data/news_v2_index/articles.jsonl (file time 2026-11-01)
    ingested by the code before issue 42, which stored 2026-10-22 for «۳۰ مهر ماه ۹۴», the event
    2001-09-11 as a publication date, years from the file time, and «فارس و» as an agency."""
    shutil.copytree(DATA / "news_v2_index", tmp_path / "ix")
    before = sqlite_rows(tmp_path / "ix")
    assert before["t1"] == ("فارس و", "2026-10-22", 1) and before["t2"][1] == "2001-09-11"
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), reader=False)
    got = {a.id: (a.source, a.date, a.date_inferred, a.month_day, a.calendar) for a in r.articles()}
    assert got["t1"] == ("Fars", "2015-10-22", False, None, "iranian")    # the two-digit year read
    assert got["t2"][:4] == (None, None, False, None)                     # an event, and a desk
    assert got["t3"][1:3] == ("2020-01-05", False)                        # metadata stays
    assert got["t4"][1:4] == (None, False, None)                          # a day in a sentence
    assert got["t5"][1:] == (None, False, "04-20", "afghan")              # metadata without a year
    assert [a.id for a in r.articles(since="2000-01-01")] == ["t1", "t3"]
    r.close()


def sqlite_rows(index: Path) -> dict:
    import sqlite3

    db = sqlite3.connect(index / "rag.sqlite")
    try:
        return {r[0]: r[1:] for r in db.execute("SELECT id, source, date, date_inferred FROM articles")}
    finally:
        db.close()


# ---------------------------------------------------------------- one clean outlet name

def test_the_attribution_stops_at_the_outlets_name():
    assert find_agency("به گزارش خبرگزاری فارس و به نقل از روابط عمومی استانداری، جلسه برگزار شد.") == "Fars"
    assert find_agency("به گزارش خبرنگار فارس در اسلام‌آباد، نخست وزیر گفت") == "Fars"
    assert find_agency("به گزارش فارس در بیانیه شماره ۲ ستاد برگزاری آمده است: مراسم لغو شد") == "Fars"
    assert find_agency("به گزارش گروه«فرهنگ و هنر» خبرگزاری فارس، جشنواره آغاز شد") == "Fars"
    assert find_agency("وزیر در گفت‌وگو با خبرنگار ورزشی خبرگزاری تسنیم اظهار داشت: تیم آماده است") == "Tasnim"


def test_a_desk_a_reporter_or_a_body_is_no_outlet():
    for text in ("به گزارش گروه سیاست خارجی، هیئت ایرانی وارد شد", "به گزارش خبرنگار ما، بازار آرام بود",
                 "به گزارش روابط عمومی شرکت گاز استان فارس، گازرسانی ادامه دارد",
                 "به گزارش پایگاه اطلاع‌رسانی پلیس، سارق دستگیر شد",
                 "نماینده مجلس در گفتگو با شبکه العالم تاکید کرد که مذاکره ادامه دارد"):
        assert find_agency(text) is None, text


def test_the_publisher_comes_first_the_quoted_outlet_is_via():
    assert attribution("به گزارش فارس به نقل از رویترز، قیمت نفت بالا رفت") == Attribution("Fars", "Reuters")
    assert attribution("به گزارش ایرنا از کابل، بازار باز شد") == Attribution("IRNA", None)
    assert find_agency("به نقل از خبرگزاری فرانسه، انتخابات برگزار شد") == "AFP"


def test_an_unknown_outlet_only_when_it_looks_like_one():
    assert find_agency("به گزارش روزنامه «گاردین»، دولت بریتانیا اعلام کرد") == "گاردین"
    assert find_agency("به گزارش پایگاه خبری انصاف نیوز، جلسه برگزار شد") == "انصاف نیوز"
    assert find_agency("LONDON (Middle East Eye) - Protesters gathered") == "Middle East Eye"
    assert find_agency("به گزارش منابع محلی، درگیری ادامه دارد") is None


# ---------------------------------------------------------------- properties

_DAY = st.integers(1, 29)
_MONTH = st.sampled_from(["فروردین", "تیر", "مهر", "بهمن", "سرطان", "جدی", "ژوئیه", "اپریل", "March", "رمضان"])
_DIGITS = st.sampled_from([str.maketrans("", ""), str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"),
                           str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")])
_WEEKDAY = st.sampled_from(["", "روز جمعه ", "شنبه ", "يكشنبه "])


@st.composite
def _report(draw, with_year: bool):
    """A report's top as outlets write it: a dateline or not, an attribution sentence with a day in
    it or not, an event; years only when ``with_year``."""
    digits = draw(_DIGITS)
    day = f"{draw(_DAY)} {draw(_MONTH)}"
    year = draw(st.sampled_from(["", " 1399", " 2019", " 94", " 1447"])) if with_year else ""
    lead = draw(st.sampled_from(["به گزارش خبرگزاری فارس، ", "به گزارش خبرنگار ما، ", "کابل (پژواک): ", ""]))
    parts = [draw(st.sampled_from([f"{day}{year}\n", f"{day}{year} - 10:30\n", ""])),
             lead, draw(_WEEKDAY), draw(st.sampled_from([f"({day}{year}) ", f"{day}{year} ", ""])),
             "وزیر گفت که ", draw(st.sampled_from([f"از {day} تا {day} ", f"در سالروز {day} ", "امروز ", ""])),
             draw(st.sampled_from(["", "25 نفر زخمی شدند و ", f"\n{draw(st.integers(10, 99))} ", "در ماه "])),
             draw(st.sampled_from(["", f"{draw(_MONTH)} "])), "جلسه برگزار شد."]
    return "".join(parts).translate(digits)


@settings(max_examples=300, deadline=None)
@given(_report(True), st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31)),
       st.sampled_from([None, "2021-05-04", "۲۰ سرطان", "۱۴۰۲/۰۱/۰۵", "11 July"]))
def test_no_date_later_than_the_ingestion_day(text, reference, metadata):
    found = publication_date(text, metadata, reference)
    assert found is None or found.iso is None or dt.date.fromisoformat(found.iso) <= reference


@settings(max_examples=300, deadline=None)
@given(_report(False), st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31)),
       st.sampled_from([None, "۲۰ سرطان", "11 July", "۳ حمل"]))
def test_no_year_without_evidence(text, reference, metadata):
    """Neither the text nor the metadata writes a year: no date has one."""
    found = publication_date(text, metadata, reference)
    assert found is None or found.iso is None
