"""News as news: publication dates in any calendar, one name per agency, filters applied inside
retrieval, copies of one story grouped and cited once."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag import RAG, Article, stories
from rag.agencies import canonical, find_agency
from rag.answer import FRAMING
from rag.api import news_filter
from rag.cli import main
from rag.dates import find_dates, format_date, parse_day
from rag.published import publication_date
from rag.errors import UserError
from rag.hashed import HashedEmbedder

DATA = Path(__file__).parent / "data"
TODAY = dt.date(2026, 11, 30)


def test_labelled_datelines_parse():
    """42 datelines as Iranian, Afghan and international outlets print them (labelled by hand):
    the day, and the agency where the text names one."""
    rows = [json.loads(line) for line in (DATA / "news_dates.jsonl").read_text(encoding="utf-8").splitlines()]
    dated = [r for r in rows if r["date"]]
    right = sum(_iso(r["text"]) == r["date"] for r in dated)
    assert right / len(dated) >= 0.95, right
    assert all(_iso(r["text"]) is None for r in rows if not r["date"])
    named = [r for r in rows if r["agency"]]
    assert sum(find_agency(r["text"]) == r["agency"] for r in named) / len(named) >= 0.95


def _iso(text: str) -> str | None:
    found = publication_date(text, reference=TODAY)
    return found.iso if found else None


@pytest.mark.parametrize("text, iso", [
    ("۲۰ سرطان ۱۴۰۴", "2025-07-11"),          # Afghan solar Hijri
    ("۲۰ تیر ۱۴۰۴", "2025-07-11"),            # Iranian
    ("٢٠ تیرماه ١٤٠٤", "2025-07-11"),         # Arabic-Indic digits, «تیرماه»
    ("1404/04/20", "2025-07-11"),              # numeric solar Hijri
    ("۱۱ ژوئیه ۲۰۲۵", "2025-07-11"),          # Gregorian, Iranian Persian month name
    ("۱۱ جولای ۲۰۲۵", "2025-07-11"),          # Gregorian, Afghan Persian month name
    ("Friday, July 11, 2025", "2025-07-11"),
    ("2025-07-11T08:30:00+04:30", "2025-07-11"),
    ("۱۵ محرم ۱۴۴۷", "2025-07-10"),           # lunar Hijri
    ("۳۰ اسفند ۱۴۰۳", "2025-03-20"),          # 1403 is a leap year
])
def test_date_forms(text, iso):
    assert _iso(text) == iso


def test_days_that_do_not_exist_are_not_dates():
    assert find_dates("۳۰ اسفند ۱۴۰۴") == []  # 1404 is not a leap year
    assert find_dates("ساعت ۱۰:۳۰ و ۴۵ دقیقه") == []


def test_missing_year_fixed_only_by_the_article():
    # the article's latest full date is 19 April 2025: the first 20 Saratan after it is a Friday, as written
    text = "به گزارش خبرگزاری معمار، روز جمعه (۲۰ سرطان) وزیر گفت که سفرش به کابل در ۱۹ اپریل ۲۰۲۵ بود."
    found = publication_date(text, reference=TODAY)
    assert (found.iso, found.inferred) == ("2025-07-11", True)
    # a year alone («سال ۲۰۲۱») fixes nothing: the day stays without a year
    found = publication_date("به گزارش خبرگزاری معمار، روز جمعه (۲۰ سرطان) وزیر گفت که از سال ۲۰۲۱ رابطه‌ای نبوده است.",
                             reference=TODAY)
    assert (found.iso, found.month_day, found.calendar) == (None, "04-20", "afghan")
    # nor does a full date whose next 20 Saratan falls on another weekday than the one written
    found = publication_date("به گزارش پژواک، روز شنبه (۲۰ سرطان) وزیر گفت که سفرش در ۱۹ اپریل ۲۰۲۵ بود.",
                             reference=TODAY)
    assert (found.iso, found.month_day) == (None, "04-20")
    # nor a day the reference (ingestion) day has not reached
    found = publication_date(text, reference=dt.date(2025, 7, 1))
    assert (found.iso, found.month_day) == (None, "04-20")


def test_metadata_wins_over_text_and_is_read_in_any_calendar():
    art = Article(id="a", title="t", text="۲۰ سرطان ۱۴۰۴ خبر", date="۱۵ مرداد ۱۴۰۴")
    assert (art.date, art.date_inferred) == ("2025-08-06", False)


def test_dates_shown_in_the_readers_convention():
    assert format_date("2025-07-11", "en") == "11 July 2025"
    assert format_date("2025-07-11", "fa", "afghan") == "۲۰ سرطان ۱۴۰۴ (۱۱ جولای ۲۰۲۵)"
    assert format_date("2025-07-11", "fa", "iranian", inferred=True) == "۲۰ تیر ۱۴۰۴ (۱۱ ژوئیه ۲۰۲۵) (سال حدسی)"


def test_one_name_per_outlet():
    assert canonical("خبرگزاری فارس") == canonical("فارس") == canonical("Fars") == canonical("farsnews") == "Fars"
    assert canonical("خبرنگار سیاسی خبرگزاری فارس") == "Fars"
    assert canonical("خبرگزاري ايرنا") == canonical("IRNA") == "IRNA"
    assert canonical("پایگاه خبری انصاف نیوز") == canonical("انصاف نیوز") == "انصاف نیوز"
    assert find_agency("خلیج فارس و دریای عمان در ماه مهر") is None  # words, not outlets


def test_filter_parsing():
    f = news_filter("1404-04-01", "2025-07-31", "خبرگزاری فارس, Tasnim")
    assert (f.since, f.until, f.sources) == ("2025-06-22", "2025-07-31", ("Fars", "Tasnim"))
    assert news_filter() is None
    assert parse_day("۲۰ سرطان ۱۴۰۴") == dt.date(2025, 7, 11)
    with pytest.raises(UserError, match="not a date"):
        news_filter(since="2025-13-01")
    with pytest.raises(UserError, match="after until"):
        news_filter(since="2025-08-01", until="2025-07-01")


# ------------------------------------------------------------------ an index of news

def _pool() -> list[str]:
    """Persian and English news sentences the repo holds: the seed article's and tests/data's."""
    from rag.persian import split_sentences

    sents = []
    for f in sorted((DATA.parent.parent / "seeds").glob("*.txt")):
        t = f.read_text(encoding="utf-8")
        sents += [t[s:e].strip() for s, e in split_sentences(t) if e - s > 30]
    sents += [json.loads(line)["text"] for line in (DATA / "parity_texts.jsonl").read_text(encoding="utf-8").splitlines()]
    return sents


AGENCIES = ["خبرگزاری فارس", "Tasnim", "ایرنا", "طلوع‌نیوز"]


def _articles(n: int) -> list[Article]:
    pool = _pool()
    rng = random.Random(7)
    out = []
    for i in range(n):
        day = dt.date(2025, 1, 1) + dt.timedelta(days=3 * i)
        out.append(Article(id=f"n{i}", title=f"خبر {i}", text=" ".join(rng.sample(pool, 8)) + f" واژه{i}x.",
                           source=AGENCIES[i % 4], date=day.isoformat()))
    return out


@pytest.fixture(scope="module")
def news_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("news") / "ix"
    r = RAG(path, embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles(_articles(60))
    yield r
    r.close()


def test_filters_apply_inside_retrieval(news_index):
    r = news_index
    q = "رابطه دیپلماتیک پاکستان و طالبان"
    hits = r.search(q, k=5, source="فارس").hits
    assert len(hits) == 5 and {h.source for h in hits} == {"Fars"}  # k come back: searched among Fars only
    hits = r.search(q, k=5, since="2025-03-01", until="2025-04-30").hits
    assert len(hits) == 5 and all("2025-03-01" <= h.date <= "2025-04-30" for h in hits)
    # solar Hijri bounds: 1404-01-01 is 21 March 2025
    hits = r.search(q, k=50, since="1404-01-01", source="Tolo News").hits
    assert hits and all(h.date >= "2025-03-21" and h.source == "Tolo News" for h in hits)
    listed = {a.id for a in r.articles(since="1404-01-01", source="Tolo News")}
    assert listed and {h.article_id for h in hits} <= listed
    assert len(listed) == sum(1 for a in r.articles() if a.source == "Tolo News" and a.date >= "2025-03-21")
    ans = r.ask(q, since="2030-01-01")
    assert ans.abstained and ans.answer == FRAMING["fa"]["filtered"]
    ans = r.ask("رابطه دیپلماتیک پاکستان", source="Tasnim")
    assert all(c.source == "Tasnim" and c.date for c in ans.citations + ans.evidence)


def test_filters_on_an_approximate_index(tmp_path):
    """A selective filter on an approximate (IVF) index still returns k passages."""
    from rag.backends.embedded import EmbeddedIndex

    emb = HashedEmbedder()
    EmbeddedIndex.create(tmp_path / "ix", emb.name, emb.dim, ann_from=0, nprobe=1).close()
    r = RAG(tmp_path / "ix", embedder=emb, reader=False)
    r.add_articles(_articles(60))
    assert r.store.approximate
    hits = r.search("رابطه دیپلماتیک", k=5, source="IRNA").hits
    assert len(hits) == 5 and {h.source for h in hits} == {"IRNA"}
    r.close()


def _edit(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    out = []
    for w in text.split():
        x = rng.random()
        if x < rate / 3:
            continue
        if x < 2 * rate / 3:
            out.append(rng.choice(vocab))
        elif x < rate:
            out += [w, rng.choice(vocab)]
        else:
            out.append(w)
    return " ".join(out)


def _seed_and_vocab() -> tuple[str, list[str]]:
    """The shipped article, and its words without digits (edits that change no figure)."""
    seed = next((DATA.parent.parent / "seeds").glob("*.txt")).read_text(encoding="utf-8")
    return seed, [w for w in seed.split() if not any(ch.isdigit() for ch in w)]


def _other_texts() -> list[str]:
    """Texts on other subjects than the shipped article."""
    return [json.loads(line)["text"] for line in (DATA / "parity_texts.jsonl").read_text(encoding="utf-8").splitlines()]


def test_minhash_rules_out_only_what_is_far_below_the_threshold():
    """A copy with a sixth of its words edited is never ruled out by its fingerprint; another story
    is; a candidate with no stored fingerprint (or one of another size) is read."""
    seed, vocab = _seed_and_vocab()
    rng = random.Random(11)
    texts = _other_texts()
    other = " ".join(texts[:8])
    mine = stories.fingerprint(stories.words(seed))
    copies = [stories.fingerprint(stories.words(_edit(seed, 0.17, rng, vocab))).tobytes() for _ in range(20)]
    assert stories.not_ruled_out(mine, copies) == [True] * 20
    far = stories.fingerprint(stories.words(other)).tobytes()
    assert stories.jaccard(stories.words(seed), stories.words(other)) < 0.1
    assert stories.not_ruled_out(mine, [far, None, b"\0" * 8]) == [False, True, True]


def test_stored_word_hashes_give_the_words_own_jaccard():
    """Candidates are checked on stored 32-bit word hashes: the same Jaccard as the words."""
    seed, vocab = _seed_and_vocab()
    rng = random.Random(5)
    texts = _other_texts()
    mine = stories.words(seed)
    for other in [_edit(seed, rate, rng, vocab) for rate in (0.05, 0.15, 0.3, 0.6)] + texts[:5] + [""]:
        theirs = stories.words(other)
        assert stories.jaccard_hashes(stories.word_hashes(mine), stories.word_hashes(theirs)) == \
            pytest.approx(stories.jaccard(mine, theirs), abs=1e-12)


def test_copies_found_in_an_index_stored_before_word_hashes(tmp_path):
    """An index from before word hashes were kept gains the column on open; a copy added later
    is grouped with an original that has none (its words are read from its text)."""
    seed, vocab = _seed_and_vocab()
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles([Article(id="memar", title="اسحاق دار", text=seed)])
    r.close()
    r = _reopened_as_written_by_an_older_version(
        tmp_path / "ix", "UPDATE articles SET minhash = (SELECT minhash FROM signatures s WHERE s.seq = articles.rowid)",
        "DROP TABLE signatures", "ALTER TABLE articles DROP COLUMN words")
    r.add_articles([Article(id="copy", title="اسحاق دار", text=_edit(seed, 0.15, random.Random(8), vocab))])
    assert {a.id: a.group for a in r.articles()} == {"memar": "memar", "copy": "memar"}
    r.close()
    db = sqlite3.connect(tmp_path / "ix" / "rag.sqlite")
    stored = dict(db.execute("SELECT a.id, s.words FROM articles a LEFT JOIN signatures s ON s.seq = a.rowid"))
    db.close()
    assert stored["memar"] is None and len(stored["copy"]) > 4 * 100


def test_fingerprints_in_article_rows_copied_to_their_table_on_open(tmp_path):
    """An index from before the ``signatures`` table (fingerprints past each article's text) gets
    them copied into it once on open; a copy added later is still grouped with the original."""
    seed, vocab = _seed_and_vocab()
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles([Article(id="memar", title="اسحاق دار", text=seed)])
    r.close()
    db = sqlite3.connect(tmp_path / "ix" / "rag.sqlite")
    before = db.execute("SELECT minhash, words FROM signatures").fetchall()
    db.close()
    r = _reopened_as_written_by_an_older_version(
        tmp_path / "ix",
        "UPDATE articles SET minhash = (SELECT minhash FROM signatures s WHERE s.seq = articles.rowid), "
        "words = (SELECT words FROM signatures s WHERE s.seq = articles.rowid)",
        "DELETE FROM signatures", "DELETE FROM meta WHERE key = 'signatures'")
    r.add_articles([Article(id="copy", title="اسحاق دار", text=_edit(seed, 0.15, random.Random(8), vocab))])
    assert {a.id: a.group for a in r.articles()} == {"memar": "memar", "copy": "memar"}
    r.close()
    db = sqlite3.connect(tmp_path / "ix" / "rag.sqlite")
    moved = db.execute("SELECT s.minhash, s.words FROM signatures s JOIN articles a ON a.rowid = s.seq "
                       "WHERE a.id = 'memar'").fetchall()
    done = db.execute("SELECT name, applied != 'before _migrations' FROM _migrations WHERE id = 5").fetchone()
    markers = db.execute("SELECT key FROM meta WHERE key IN ('lexicon', 'news', 'signatures')").fetchall()
    db.close()
    assert len(before) == 1 and moved == before and done == ("m005_signatures", 1) and not markers


def test_story_keys_of_an_older_layout_moved_over_on_open(tmp_path):
    """An index whose story keys are a rowid table with two indexes (before 2026-12-01) gets them
    clustered by key on open; its stored articles still meet their copies, and removing one takes
    its keys with it."""
    seed, vocab = _seed_and_vocab()
    texts = _other_texts()
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles([Article(id="memar", title="اسحاق دار", text=seed)] +
                   [Article(id=f"other{i}", title=f"خبر {i}", text=" ".join(texts[8 * i:8 * i + 8])) for i in range(3)])
    r.close()
    r = _reopened_as_written_by_an_older_version(
        tmp_path / "ix",
        "CREATE TABLE old_keys (key INTEGER NOT NULL, article_id TEXT NOT NULL)",
        "INSERT INTO old_keys SELECT key, article_id FROM story_keys ORDER BY seq, key",
        "DROP TABLE story_keys",
        "ALTER TABLE old_keys RENAME TO story_keys",
        "CREATE INDEX story_keys_key ON story_keys(key)",
        "CREATE INDEX story_keys_article ON story_keys(article_id)")
    r.add_articles([Article(id="copy", title="اسحاق دار", text=_edit(seed, 0.15, random.Random(8), vocab))])
    assert {a.id: a.group for a in r.articles()}["copy"] == "memar"
    r.remove("other1")
    r.close()
    db = sqlite3.connect(tmp_path / "ix" / "rag.sqlite")
    cols = [c[1] for c in db.execute("PRAGMA table_info(story_keys)")]
    per_article = dict(db.execute("SELECT article_id, count(*) FROM story_keys GROUP BY article_id"))
    seqs = dict(db.execute("SELECT k.article_id, count(DISTINCT k.seq) FROM story_keys k "
                           "JOIN articles a ON a.id = k.article_id AND a.rowid = k.seq GROUP BY k.article_id"))
    indexes = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='story_keys'")]
    db.close()
    assert cols == ["key", "seq", "article_id"] and not [i for i in indexes if not i.startswith("sqlite_autoindex")]
    assert sorted(per_article) == ["copy", "memar", "other0", "other2"]
    assert set(per_article.values()) == {stories.BANDS} and set(seqs.values()) == {1} and seqs.keys() == per_article.keys()


@pytest.mark.model
def test_copies_of_one_story_grouped_and_cited_once(tmp_path):
    seed, vocab = _seed_and_vocab()
    rng = random.Random(3)
    arts = [Article(id="memar", title="اسحاق دار", text=seed)]
    arts += [Article(id=f"copy{i}", title="اسحاق دار", text=_edit(seed, 0.15, rng, vocab), source=src)
             for i, src in enumerate(["Fars", "Tasnim"])]
    texts = _other_texts()
    other = [{"passage_id": f"other{i}", "title": f"خبر {i}", "text": " ".join(texts[8 * i:8 * i + 8])} for i in range(5)]
    arts += [Article(id=o["passage_id"], title=o["title"], text=o["text"]) for o in other]
    r = RAG(tmp_path / "ix", create=True, reader=False)  # the bundled model: answers need real meaning scores
    r.add_articles(arts)
    groups = {a.id: a.group for a in r.articles()}
    assert groups["copy0"] == groups["copy1"] == groups["memar"] == "memar"
    assert all(groups[o["passage_id"]] == o["passage_id"] for o in other)
    ans = r.ask("اسحاق دار در کدام شهر سخنرانی کرد؟")
    cited = ans.citations or ans.evidence
    assert cited and len({c.article_id for c in cited}) == 1  # one copy cited
    first = cited[0]
    assert sorted(first.also) == sorted({"memar", "copy0", "copy1"} - {first.article_id})
    assert "2" in ans.answer  # "also reported by 2: ..."
    # the story is named after its first article; when that one goes, after the next
    r.remove("memar")
    assert {a.id: a.group for a in r.articles()}["copy1"] == "copy0"
    out = CliRunner().invoke(main, ["list", "--index", str(tmp_path / "ix"), "--json"])
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert {"id", "title", "source", "date", "date_inferred", "group"} <= set(rows[0])
    assert {row["id"]: row["group"] for row in rows}["copy1"] == "copy0"
    r.close()


def _reopened_as_written_by_an_older_version(index: Path, *statements: str) -> RAG:
    """The index's records as a release before ``_migrations`` left them (5a78a38 and older kept
    their history in ``meta`` markers), rewritten by ``statements`` into an older state, then opened."""
    db = sqlite3.connect(index / "rag.sqlite")
    db.execute("DROP TABLE _migrations")
    db.execute("ALTER TABLE articles DROP COLUMN month_day")  # no release before _migrations had it (m007)
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("lexicon", "6"), ("news", "2"), ("signatures", "1")])
    for sql in statements:
        db.execute(sql)
    db.commit()
    db.close()
    return RAG(index, embedder=HashedEmbedder(), reader=False)


def test_old_index_dates_read_again_on_open(tmp_path):
    """An index written before dates were parsed holds the date as written: opened, it is ISO."""
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles([Article(id="a", title="t", text="۲۰ تیر ۱۴۰۴ — به گزارش خبرگزاری فارس، خبر.")])
    r.close()
    r = _reopened_as_written_by_an_older_version(
        tmp_path / "ix", "UPDATE articles SET date='۲۰ تیر ۱۴۰۴', source='خبرگزاری فارس', story=NULL",
        "DELETE FROM meta WHERE key='news'")
    [info] = r.articles()
    assert (info.date, info.source, info.group) == ("2025-07-11", "Fars", "a")
    # and re-ingesting the same article is a no-op (its fingerprint was brought up to date)
    assert r.add_articles([Article(id="a", title="t", text="۲۰ تیر ۱۴۰۴ — به گزارش خبرگزاری فارس، خبر.",
                                   source="Fars", date="2025-07-11")]).unchanged == ["a"]
    r.close()


@pytest.mark.model
def test_disagreeing_reports_shown_side_by_side(tmp_path):
    """Two agencies give the same story with different death tolls: both are quoted, each with its
    agency and date, instead of one being picked."""
    base = ("در پی انفجار روز دوشنبه در بازار شهر قندهار {n} نفر کشته و ده‌ها تن زخمی شدند. "
            "مقامات محلی گفتند تحقیقات آغاز شده است. پولیس منطقه را بست.")
    r = RAG(tmp_path / "ix", create=True, reader=False)
    r.add_articles([
        Article(id="fars", title="انفجار در قندهار", text="۱۲ اسد ۱۴۰۴ — به گزارش خبرگزاری فارس، " + base.format(n="۱۲")),
        Article(id="irna", title="انفجار مرگبار در بازار قندهار",
                text="۱۳ اسد ۱۴۰۴ — به گزارش ایرنا، " + base.format(n="۱۵") + " این حادثه محکوم شد."),
        Article(id="sport", title="ورزش", text="تیم ملی فوتبال افغانستان در بازی دیروز پیروز شد.")])
    infos = {a.id: a for a in r.articles()}
    assert (infos["fars"].source, infos["fars"].date) == ("Fars", "2025-08-03")  # from the text, as loaders do
    ans = r.ask("در انفجار بازار قندهار چند نفر کشته شدند؟")
    f = next(c for c in ans.citations if c.article_id == "fars" and "۱۲ نفر" in c.quote)
    i = next(c for c in ans.citations if c.article_id == "irna" and "۱۵ نفر" in c.quote)
    assert f.differs_from == i.n and i.differs_from == f.n
    assert FRAMING["fa"]["differ"] in ans.answer
    line = ans.answer.split(FRAMING["fa"]["differ"], 1)[1].strip().splitlines()[0]
    assert "12" in line and "15" in line and "فارس" in line and "ایرنا" in line
    # the app shows the two reports side by side, each citation a marker
    from rag.ui import render_answer

    html_out = render_answer(ans)
    assert html_out.count('class="rag-differ-side"') == 2 and 'class="rag-differ"' in html_out
    r.close()


@pytest.mark.model
def test_agency_questions_are_answered_from_the_attribution_line(tmp_path):
    """«کدام خبرگزاری این گزارش را منتشر کرد؟» / "Which agency reported the blast?": the quote is the
    sentence naming the agency the article is attributed to, of the best-matching article."""
    r = RAG(tmp_path / "ix", create=True, reader=False)
    r.add_articles([
        Article(id="blast", title="انفجار در قندهار",
                text="به گزارش خبرگزاری پژواک، در پی انفجار در بازار قندهار ده‌ها تن زخمی شدند. پولیس منطقه را بست."),
        Article(id="sport", title="ورزش", text="به گزارش طلوع‌نیوز، تیم ملی فوتبال افغانستان در بازی دیروز پیروز شد.")])
    for q in ("کدام خبرگزاری خبر انفجار قندهار را منتشر کرد؟", "Which news agency reported the Kandahar market blast?"):
        ans = r.ask(q)
        assert not ans.abstained and ans.citations[0].article_id == "blast", ans.answer
        assert "پژواک" in ans.citations[0].quote and ans.citations[0].source == "Pajhwok"
    r.close()


def test_a_newer_news_version_keeps_dates_already_read(tmp_path):
    """Bringing an index from an older news version up to date regroups its stories but keeps the
    dates it already read (an inferred year stays inferred)."""
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles([Article(id="a", title="t", text="به گزارش خبرگزاری معمار، روز جمعه (۲۰ سرطان) وزیر گفت که سفرش "
                                                    "به کابل در ۱۹ اپریل ۲۰۲۵ بود.")])
    before = r.articles()[0]
    assert (before.date, before.date_inferred, before.calendar) == ("2025-07-11", True, "afghan")
    r.close()
    r = _reopened_as_written_by_an_older_version(
        tmp_path / "ix", "UPDATE meta SET value='1' WHERE key='news'", "UPDATE articles SET story=NULL")
    after = r.articles()[0]
    assert (after.date, after.date_inferred, after.calendar, after.group) == ("2025-07-11", True, "afghan", "a")
    r.close()
