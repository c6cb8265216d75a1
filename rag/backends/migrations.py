"""The history of an embedded index's records: numbered migrations, each applied once and in order,
recorded in the ``_migrations`` table (as simonw's llm and sqlite-utils keep theirs). A new index
runs them all on an empty file; an index written by an older release runs those it lacks when it
is opened for writing. Each runs in one transaction with its record, so a crash leaves the index
before or after it, never between. A read-only index is read as it is; its migrations wait for a
writable open (the first one excepted: without it there is nothing this version can read).

To change what is stored, append ``mNNN_what(db, dim)`` with ``@migration`` (never edit one that
has shipped; ``rag.backends.history``) and a test that opens an index as the previous version left it. Re-reading what
``rag.dates``/``rag.agencies``/``rag.stories`` make of stored articles is :func:`reread_news`
with a ``step`` of your own (see :func:`m006_news`).

Indexes written before ``_migrations`` (releases up to 5a78a38) marked their history otherwise: a
``chunks`` table (format 2), ``lexicon``/``news`` versions and a ``signatures`` flag in ``meta``,
the columns present. :func:`_adopt` reads those once into ``_migrations``; nothing else does.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from collections import Counter
from typing import Callable

import numpy as np

from .. import published, stories
from ..articles import Article, news_metadata
from ..dates import is_iso_day
from .base import StoreError, passage_terms, quantize, rebuild_hint
from .history import History
from .records import PASSAGE_TEXTS, Records, StoryTables, is_access_error, passage_texts, transaction

log = logging.getLogger(__name__)

# Each migration: (the connection, inside the migration's transaction; the vectors' dimension).
HISTORY = History()
migration = HISTORY
MIGRATIONS = HISTORY.steps


def _script(db: sqlite3.Connection, sql: str) -> None:
    for stmt in sql.split(";"):  # not executescript: it would commit the migration's transaction
        if stmt.strip():
            db.execute(stmt)


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def applied(db: sqlite3.Connection) -> set[int]:
    if "_migrations" not in _tables(db):
        return set()
    return {r[0] for r in db.execute("SELECT id FROM _migrations")}


def migrate(db: sqlite3.Connection, dim: int, where: object) -> list[int]:
    """Apply the migrations the index at ``where`` lacks; returns those still lacking (a read-only
    index). A StoreError when a newer version wrote it, or when it cannot be read without one."""
    try:
        with transaction(db):
            tables = _tables(db)
            if "_migrations" not in tables:
                db.execute("CREATE TABLE _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)")
                if "articles" in tables:
                    _adopt(db, tables)
    except sqlite3.OperationalError as exc:
        if not is_access_error(exc):
            raise
    tables = _tables(db)
    if "_migrations" not in tables:  # read-only, never adopted: read as its release left it, if it can be
        if "articles" in tables and "chunks" not in tables:
            return [n for n, _, _ in MIGRATIONS]
        raise StoreError(f"cannot bring the index {where} up to date (it is read-only); make it writable, "
                         f"or {rebuild_hint(where)}")
    done = applied(db)
    for number, name, fn in HISTORY.pending(done, where):
        try:
            with transaction(db):
                if db.execute("SELECT 1 FROM _migrations WHERE id=?", (number,)).fetchone():
                    continue  # another process applied it meanwhile
                fn(db, dim)
                db.execute("INSERT INTO _migrations VALUES (?, ?, ?)",
                           (number, name, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        except sqlite3.OperationalError as exc:
            if not is_access_error(exc):
                raise
            if 1 not in applied(db):
                raise StoreError(f"cannot bring the index {where} up to date ({exc}); make it writable, "
                                 f"or {rebuild_hint(where)}") from None
            return [n for n, _, _ in MIGRATIONS if n not in applied(db)]
    return []


def _adopt(db: sqlite3.Connection, tables: set[str]) -> None:
    """Record the migrations an index from before ``_migrations`` had, from its markers."""
    meta = dict(db.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
    had = {1: "chunks" not in tables,
           2: meta.get("lexicon") == "6",
           3: "articles" in tables and {c for c, _ in NEWS_COLUMNS} <= _columns(db, "articles"),
           4: "story_keys" in tables and "seq" in _columns(db, "story_keys"),
           5: meta.get("signatures") == "1" and "signatures" in tables,
           6: meta.get("news") in ("2", "3"),
           7: meta.get("news") == "3"}  # 3: written by issue 42's branch before this history
    db.executemany("INSERT INTO _migrations VALUES (?, ?, 'before _migrations')",
                   [(n, name) for n, name, _ in MIGRATIONS if had.get(n)])
    db.execute("DELETE FROM meta WHERE key IN ('lexicon', 'news', 'signatures')")


# ------------------------------------------------------------------ the migrations

def _announce(db: sqlite3.Connection, doing: str, per_100k: str) -> None:
    """Say so before a migration that takes long on a big archive (silence would look like a hang)."""
    n = db.execute("SELECT count(*) FROM articles").fetchone()[0]
    if n >= 20_000:
        log.warning("%s of %d articles stored by an older version; once, %s per 100,000 articles", doing, n, per_100k)


RECORDS = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE articles (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, date TEXT, url TEXT, path TEXT, sha TEXT NOT NULL,
    added REAL NOT NULL, spans TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, article_id TEXT NOT NULL, seq INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, gen INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX passages_article ON passages(article_id);
CREATE INDEX passages_gen ON passages(gen);
CREATE TABLE removed (id INTEGER NOT NULL, gen INTEGER NOT NULL);
CREATE INDEX removed_gen ON removed(gen);
CREATE TABLE sentences (
    id INTEGER PRIMARY KEY AUTOINCREMENT, article_id TEXT NOT NULL UNIQUE, spans BLOB NOT NULL,
    vectors BLOB NOT NULL);
"""


@migration
def m001_records(db: sqlite3.Connection, dim: int) -> None:
    """Articles, passages with int8 vectors, sentences per article (format 3). A format 2 index
    (float32 vectors in ``chunks`` and one ``sentences`` row each) is moved into them."""
    old = "chunks" in _tables(db)
    if old:
        db.execute("ALTER TABLE articles RENAME TO articles_v2")
        db.execute("ALTER TABLE sentences RENAME TO sentences_v2")
        db.execute("DROP INDEX IF EXISTS sentences_article")
    _script(db, RECORDS)
    if not old:
        return
    try:
        db.execute("INSERT INTO articles SELECT id, title, source, date, url, path, sha, added, spans, text "
                   "FROM articles_v2")
        gen = int((db.execute("SELECT value FROM meta WHERE key='generation'").fetchone() or [0])[0])
        for pid, aid, seq, start, end, blob in db.execute(
                'SELECT id, article_id, seq, start, "end", vector FROM chunks').fetchall():
            vec = quantize(np.frombuffer(blob, dtype=np.float32).reshape(1, dim))[0]
            db.execute("INSERT INTO passages VALUES (?,?,?,?,?,?,?)", (pid, aid, seq, start, end, gen, vec.tobytes()))
        by_article: dict[str, list] = {}
        for aid, start, end, blob in db.execute(
                'SELECT article_id, start, "end", vector FROM sentences_v2 ORDER BY article_id, start'):
            by_article.setdefault(aid, []).append((start, end, np.frombuffer(blob, dtype=np.float32)))
        for aid, rows in by_article.items():
            spans = np.asarray([(s, e) for s, e, _ in rows], dtype=np.int64)
            vecs = quantize(np.vstack([v for _, _, v in rows]).reshape(-1, dim))
            db.execute("INSERT INTO sentences (article_id, spans, vectors) VALUES (?,?,?)",
                       (aid, spans.tobytes(), vecs.tobytes()))
    except ValueError as exc:  # vectors of another dimension than the manifest's
        raise sqlite3.DatabaseError(f"format 2 vectors unreadable: {exc}") from None
    for t in ("chunks", "sentences_v2", "articles_v2"):
        db.execute(f"DROP TABLE {t}")


# Contentless: the terms are recomputed from the article when they must be deleted, not stored twice.
LEXICON = """
CREATE VIRTUAL TABLE lexicon USING fts5(terms, content='', tokenize='unicode61 remove_diacritics 0');
CREATE TABLE term_df (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
"""


@migration
def m002_lexicon(db: sqlite3.Connection, dim: int) -> None:
    """The lexicon (FTS5, BM25) of each passage's normalized terms and each term's passage count,
    made from the stored passages. Append a migration that calls this again when
    ``rag.persian.terms`` changes what it makes of a text."""
    for old in ("lexicon_vocab", "lexicon", "term_df"):
        db.execute(f"DROP TABLE IF EXISTS {old}")
    _script(db, LEXICON)
    rows = db.execute(PASSAGE_TEXTS).fetchall()
    df: Counter = Counter()
    for r, text in zip(rows, passage_texts(db, rows)):
        pt = passage_terms(r[2], text)
        db.execute("INSERT INTO lexicon(rowid, terms) VALUES (?, ?)", (r[0], pt))
        df.update(set(pt.split()))
    db.executemany("INSERT INTO term_df VALUES (?, ?)", sorted(df.items()))


NEWS_COLUMNS = (("date_inferred", "INTEGER NOT NULL DEFAULT 0"), ("calendar", "TEXT"), ("story", "TEXT"),
                ("minhash", "BLOB"), ("words", "BLOB"))


@migration
def m003_news_columns(db: sqlite3.Connection, dim: int) -> None:
    """Whether a date's year was inferred, its calendar, the story group; ``minhash`` and
    ``words`` held fingerprints before ``signatures`` (m005), and still do for articles stored
    before it. An index of a release between gains those it lacks."""
    have = _columns(db, "articles")
    for name, decl in NEWS_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE articles ADD COLUMN {name} {decl}")


@migration
def m004_story_keys(db: sqlite3.Connection, dim: int) -> None:
    """Each article's LSH keys, clustered by key and article rowid (newest last). Before 2026-12-01
    they were a rowid table indexed on key, where reading a key's newest rows cost one lookup a
    row: 1.5 ms an article at 580k articles against 0.55 ms clustered (bench/results/scale.md)."""
    old = "story_keys" in _tables(db)
    if old:
        _announce(db, "reorganizing the story keys", "about half a minute")
    db.execute("CREATE TABLE story_keys_new (key INTEGER NOT NULL, seq INTEGER NOT NULL, article_id TEXT NOT NULL, "
               "PRIMARY KEY (key, seq)) WITHOUT ROWID")
    if old:
        db.execute("INSERT OR IGNORE INTO story_keys_new SELECT k.key, a.rowid, k.article_id FROM story_keys k "
                   "JOIN articles a ON a.id = k.article_id ORDER BY 1, 2")
        db.execute("DROP TABLE story_keys")
    db.execute("ALTER TABLE story_keys_new RENAME TO story_keys")


@migration
def m005_signatures(db: sqlite3.Connection, dim: int) -> None:
    """Fingerprints in their own table, by article rowid: read from the article rows, past their
    text, they cost one random read each, most of the time of adding articles to an index whose
    file outgrows the page cache. Those stored are copied; the old blobs stay in the rows
    (rewriting every row would journal the whole file)."""
    db.execute("CREATE TABLE IF NOT EXISTS signatures (seq INTEGER PRIMARY KEY, minhash BLOB NOT NULL, "
               "words BLOB NOT NULL)")
    _announce(db, "copying the story fingerprints", "about 15 seconds")
    db.execute("INSERT OR IGNORE INTO signatures SELECT rowid, minhash, words FROM articles "
               "WHERE minhash IS NOT NULL AND words IS NOT NULL")


NEWS_INDEXES = """
CREATE INDEX IF NOT EXISTS articles_date ON articles(date);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE INDEX IF NOT EXISTS articles_story ON articles(story);
"""

Step = Callable[[Article, "str | None", "str | None", dt.date], None]


def read_raw_dates(article: Article, date: str | None, source: str | None, added: dt.date) -> None:
    """An article stored before dates were read holds its date as the text wrote it: read it (and
    its agency) as rag.articles reads a loaded article; the year an article leaves out is at most
    the day it was added. A date already read (ISO) is kept."""
    if not is_iso_day(date):
        news_metadata(article, date, source, added)


def reread_news(db: sqlite3.Connection, step: Step = read_raw_dates, regroup: bool = True) -> None:
    """Run ``step(article, stored date, stored source, day added)`` on every stored article (it
    may change the article's source, date, date_inferred and calendar, which are stored with the
    new fingerprint), and, with ``regroup``, make the story groups again, first stored first."""
    if regroup:
        db.execute("DELETE FROM story_keys")
        db.execute("UPDATE articles SET story = NULL")
    rows = db.execute("SELECT id, rowid, date, source, added FROM articles ORDER BY added, id").fetchall()
    if len(rows) >= 2_000:  # 7-30 ms an article: a big archive is minutes of silence otherwise
        log.warning("updating %d articles stored by an older version (dates, agencies, story "
                    "groups); once, one to five minutes per 10,000 articles", len(rows))
    month_day = "month_day" in _columns(db, "articles")  # m006 runs before m007 adds it
    for done, (aid, seq, date, source, added) in enumerate(rows):
        if done and done % 20_000 == 0 and len(rows) >= 2_000:
            log.warning("updated %d of %d articles", done, len(rows))
        art = Records.get_in(db, aid, month_day)
        step(art, date, source, dt.date.fromtimestamp(added))
        db.execute("UPDATE articles SET source=?, date=?, date_inferred=?, calendar=?, sha=? WHERE id=?",
                   (art.source, art.date, int(art.date_inferred), art.calendar, art.sha, aid))
        if month_day:
            db.execute("UPDATE articles SET month_day=? WHERE id=?", (art.month_day, aid))
        if regroup:
            stories.join(StoryTables(db), aid, seq, art.content())


@migration
def m006_news(db: sqlite3.Connection, dim: int) -> None:
    """Dates and agencies read from stored articles (an index from before they were read holds
    dates as written), story groups made again with MinHash kept (news version 2), and the
    indexes filters read."""
    _script(db, NEWS_INDEXES)
    reread_news(db)


def read_published_again(article: Article, date: str | None, source: str | None, added: dt.date) -> None:
    """A date an earlier version took from the text (an event, a year made up from the file time
    or another date) read again as rag.published reads it now; a date from metadata stays (a year
    it inferred goes: "year unknown"); an agency name that is no outlet read again."""
    if is_iso_day(date):
        published.reread_news(article, added)
    else:
        read_raw_dates(article, date, source, added)


# the migration that adds articles.month_day: an index opened read-only before it reads none
MONTH_DAY = 7


@migration
def m007_month_day(db: sqlite3.Connection, dim: int) -> None:
    """Publication dates only from metadata, a dateline, a labelled line or the attribution
    sentence, a day without a year kept as ``month_day`` (issue 42, news version 3 on its branch):
    stored articles read again. Story groups stay: they depend on the text alone."""
    if "month_day" not in _columns(db, "articles"):  # issue 42's branch added it before m007 existed
        db.execute("ALTER TABLE articles ADD COLUMN month_day TEXT")
    reread_news(db, step=read_published_again, regroup=False)
