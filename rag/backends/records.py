"""The records of the embedded backend in SQLite (the source of truth), with the lexicon.

- ``articles``: raw text, metadata, fingerprint.
- ``passages``: offsets into the article, the vector as int8 (``rag.backends.base.quantize``) and
  the generation that wrote it; ``removed``: ids of passages deleted, by generation. A vector
  cache at generation G catches up by adding passages written after G and dropping those
  removed after G (ids are never reused), so neither opening nor another process's write makes
  it reread every vector.
- ``sentences``: one row per article: its sentences' offsets and int8 vectors, read only for the
  candidate passages of a question (no index of every sentence in memory).
- ``story_keys``: each article's MinHash LSH keys (``rag.stories``), clustered by key and, within
  a key, by the article's rowid (newest last), so an article's candidate copies are read from 32
  places and nothing else; an article's ``story`` is the id of the first article stored of the
  story it tells (its own when no copy of it is stored).
- ``lexicon``: a contentless FTS5 table of each passage's normalized terms (rowid = passage id),
  scored with FTS5's BM25, written in the article's own transaction; ``term_df``: how many
  passages hold each term, kept with it (FTS5 counts a term's passages only by reading all of
  them, which for a common word in a big archive costs more than the rest of the question).

Each article is written in one transaction, so a crash leaves whole articles only. SQLite's errors
come out as :class:`StoreError` naming the file and what to do.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import stories
from ..articles import Article, news_metadata
from ..dates import is_iso_day
from ..published import reread_news
from ..chunking import Chunk
from .base import ArticleInfo, ChunkRow, Filter, StoreError, dequantize, passage_terms, quantize, rebuild_hint

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, date TEXT, url TEXT, path TEXT, sha TEXT NOT NULL,
    added REAL NOT NULL, spans TEXT NOT NULL, text TEXT NOT NULL, date_inferred INTEGER NOT NULL DEFAULT 0,
    calendar TEXT, story TEXT, minhash BLOB, words BLOB, month_day TEXT);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, article_id TEXT NOT NULL, seq INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, gen INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS passages_article ON passages(article_id);
CREATE INDEX IF NOT EXISTS passages_gen ON passages(gen);
CREATE TABLE IF NOT EXISTS removed (id INTEGER NOT NULL, gen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_gen ON removed(gen);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY AUTOINCREMENT, article_id TEXT NOT NULL UNIQUE, spans BLOB NOT NULL,
    vectors BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS story_keys (key INTEGER NOT NULL, seq INTEGER NOT NULL, article_id TEXT NOT NULL,
    PRIMARY KEY (key, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signatures (seq INTEGER PRIMARY KEY, minhash BLOB NOT NULL, words BLOB NOT NULL);
"""
# story_keys before 2026-12-01: a rowid table with an index on key and one on article_id. Reading
# a key's newest rows then cost one table lookup a row (~360 an article): 1.5 ms an article at
# 580k articles against 0.55 ms clustered (bench/results/scale.md). Moved over on a writable open.
STORY_KEYS_MOVE = """
CREATE TABLE story_keys_new (key INTEGER NOT NULL, seq INTEGER NOT NULL, article_id TEXT NOT NULL,
    PRIMARY KEY (key, seq)) WITHOUT ROWID;
INSERT OR IGNORE INTO story_keys_new SELECT k.key, a.rowid, k.article_id FROM story_keys k
    JOIN articles a ON a.id = k.article_id ORDER BY 1, 2;
DROP TABLE story_keys;
ALTER TABLE story_keys_new RENAME TO story_keys;
"""
# What filters and story groups read (made by check_news, after old tables gained the columns).
NEWS_SCHEMA = """
CREATE INDEX IF NOT EXISTS articles_date ON articles(date);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE INDEX IF NOT EXISTS articles_story ON articles(story);
"""
NEWS_COLUMNS = (("date_inferred", "INTEGER NOT NULL DEFAULT 0"), ("calendar", "TEXT"), ("story", "TEXT"),
                ("minhash", "BLOB"), ("words", "BLOB"), ("month_day", "TEXT"))
# Bump when rag.dates, rag.agencies or rag.stories change what they make of a stored article.
NEWS_VERSION = "3"  # 2: each article's MinHash kept; 3: dates only from a dateline or attribution, no year made up
# Contentless: the terms are recomputed from the article when they must be deleted, not stored twice.
LEXICON_SCHEMA = """
CREATE VIRTUAL TABLE lexicon USING fts5(terms, content='', tokenize='unicode61 remove_diacritics 0');
CREATE TABLE term_df (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
"""

# Bump when rag.persian.terms changes: stored lexical terms are then rebuilt on open.
LEXICON_VERSION = "6"  # 5: contentless; 6: document frequencies kept in term_df
# Sentence ids: the article's sentences row id, shifted, plus the sentence's place in it.
_SENTENCE_BITS = 20

# The connection's page cache (KiB; a ceiling, filled as pages are read).
CACHE_KIB = 65536
# SQLite result codes that mean "not allowed / not possible here" rather than "damaged".
_ACCESS_CODES = {3, 5, 6, 8, 13, 14}  # PERM, BUSY, LOCKED, READONLY, FULL, CANTOPEN


_INFO = ("SELECT a.id, a.title, a.source, a.date, a.url, a.path, "
         "(SELECT count(*) FROM passages p WHERE p.article_id = a.id), length(a.text), a.date_inferred, a.calendar, "
         "coalesce(a.story, a.id), a.month_day FROM articles a")


def _info(row: tuple) -> ArticleInfo:
    return ArticleInfo(*row[:8], bool(row[8]), *row[9:])


def filter_sql(where: Filter) -> tuple[str, list]:
    """``where`` as a condition on ``articles a`` and its arguments."""
    conds, args = ["1"], []
    if where.since:
        conds.append("a.date >= ?")
        args.append(where.since)
    if where.until:
        conds.append("a.date <= ?")
        args.append(where.until)
    if where.sources:
        conds.append(f"a.source IN ({','.join('?' * len(where.sources))})")
        args += list(where.sources)
    return " AND ".join(conds), args


def _is_access_error(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _ACCESS_CODES


class Records:
    """Articles, passages, sentences and the lexicon in one SQLite file. Not locked: the caller
    (``EmbeddedIndex``) serializes access."""

    def __init__(self, db_path: Path, folder: Path, dim: int) -> None:
        self.db_path = db_path
        self.folder = folder
        self.dim = dim
        try:
            self.db = sqlite3.connect(db_path, timeout=30, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=DELETE")
            self.db.execute("PRAGMA synchronous=FULL")
            # SQLite's default 2 MB page cache: each write to a large index re-reads its B-tree pages
            self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self.db.executescript(SCHEMA)
            self.db.execute("SELECT count(*) FROM articles").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"index database {db_path} is unreadable ({exc}); {rebuild_hint(folder)}") from None

    @contextmanager
    def errors(self, writing: bool = False) -> Iterator[None]:
        """SQLite's errors as a :class:`StoreError` that names the file and what to do."""
        try:
            yield
        except sqlite3.ProgrammingError:
            raise  # a bug in this module, not a property of the file
        except sqlite3.DatabaseError as exc:
            if _is_access_error(exc):
                raise StoreError(f"cannot {'write to' if writing else 'read'} the index database {self.db_path} "
                                 f"({exc}); check that {self.folder} and its files are "
                                 f"{'writable' if writing else 'readable'} and that no other program holds them"
                                 ) from None
            raise StoreError(f"index database {self.db_path} is damaged ({exc}); {rebuild_hint(self.folder)}") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole or rolled back whole."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see one state of the database (another process's commit lands
        before or after all of them)."""
        db = self.db
        db.execute("BEGIN")
        try:
            yield db
        finally:
            if db.in_transaction:
                db.execute("COMMIT")

    # ------------------------------------------------------------ generations

    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _bump(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        gen = (int(row[0]) if row else 0) + 1
        db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (str(gen),))
        return gen

    def vectors_since(self, gen: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(ids added, their float32 vectors, ids removed, generation now)`` after generation
        ``gen``, in one read."""
        with self.snapshot() as db:
            now = self.generation()
            rows = db.execute("SELECT id, vector FROM passages WHERE gen > ? ORDER BY id", (gen,)).fetchall()
            removed = [r[0] for r in db.execute("SELECT id FROM removed WHERE gen > ?", (gen,))]
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        try:
            vecs = dequantize(np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8), self.dim) if rows \
                else np.zeros((0, self.dim), dtype=np.float32)
        except ValueError:
            vecs = None
        if vecs is None or len(vecs) != len(ids):
            raise StoreError(f"vectors in {self.db_path} do not have the manifest's dimension {self.dim}; "
                             f"{rebuild_hint(self.folder)}")
        return ids, vecs, np.asarray(removed, dtype=np.int64), now

    def passages_since(self, gen: int) -> int:
        return self.db.execute("SELECT count(*) FROM passages WHERE gen > ?", (gen,)).fetchone()[0]

    # ------------------------------------------------------------ lexicon

    def check_lexicon(self) -> None:
        """(Re)build the lexical terms when they were made by another version of the term rules."""
        row = self.db.execute("SELECT value FROM meta WHERE key='lexicon'").fetchone()
        if row and row[0] == LEXICON_VERSION:
            return
        try:
            with self.transaction() as db:
                for old in ("lexicon_vocab", "lexicon", "term_df"):
                    db.execute(f"DROP TABLE IF EXISTS {old}")
                for stmt in LEXICON_SCHEMA.split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                rows = db.execute('SELECT p.id, p.article_id, a.title, p.start, p."end", '
                                  'substr(a.text, p.start + 1, p."end" - p.start) '
                                  "FROM passages p JOIN articles a ON a.id = p.article_id").fetchall()
                df: Counter = Counter()
                for r, text in zip(rows, self._slices(rows)):
                    pt = passage_terms(r[2], text)
                    db.execute("INSERT INTO lexicon(rowid, terms) VALUES (?, ?)", (r[0], pt))
                    df.update(set(pt.split()))
                self._add_df(db, df)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('lexicon', ?)", (LEXICON_VERSION,))
        except sqlite3.OperationalError as exc:
            if not _is_access_error(exc):
                raise
            # a read-only index keeps working on its dense side; writes will report the problem

    # ------------------------------------------------------------ news: dates, agencies, stories

    def check_news(self) -> None:
        """Bring articles stored by an older version up to date: the columns for the inferred
        year, the calendar, the story group and its fingerprints (added on every writable open
        that lacks them); dates and agencies read again as rag.dates and
        rag.agencies read them (the stored date was the text as written), story groups made."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(articles)")}
        missing = [(name, decl) for name, decl in NEWS_COLUMNS if name not in have]
        if missing:  # the update below fills those it needs; words stay empty for stored articles
            try:
                with self.transaction() as db:
                    for name, decl in missing:
                        db.execute(f"ALTER TABLE articles ADD COLUMN {name} {decl}")
            except sqlite3.OperationalError as exc:
                if not _is_access_error(exc):
                    raise
                return  # read-only: writes, which need them, will report the problem
        if "seq" not in {r[1] for r in self.db.execute("PRAGMA table_info(story_keys)")}:
            n = self.db.execute("SELECT count(*) FROM articles").fetchone()[0]
            if n >= 20_000:
                log.warning("reorganizing the story keys of %d articles stored by an older version; "
                            "once, about half a minute per 100,000 articles", n)
            try:
                with self.transaction() as db:
                    for stmt in STORY_KEYS_MOVE.split(";"):
                        if stmt.strip():
                            db.execute(stmt)
            except sqlite3.OperationalError as exc:
                if not _is_access_error(exc):
                    raise
                return
        if not self.db.execute("SELECT 1 FROM meta WHERE key='signatures'").fetchone():
            try:
                self._move_signatures()
            except sqlite3.OperationalError as exc:
                if not _is_access_error(exc):
                    raise
                return
        row = self.db.execute("SELECT value FROM meta WHERE key='news'").fetchone()
        if row and row[0] == NEWS_VERSION:
            return
        try:
            with self.transaction() as db:  # the columns were added above
                for stmt in NEWS_SCHEMA.split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                db.execute("DELETE FROM story_keys")
                db.execute("UPDATE articles SET story = NULL")
                ids = db.execute("SELECT id, rowid FROM articles ORDER BY added, id").fetchall()
                if len(ids) >= 2_000:  # 7-30 ms an article: a big archive is minutes of silence otherwise
                    log.warning("updating %d articles stored by an older version (dates, agencies, story "
                                "groups); once, one to five minutes per 10,000 articles", len(ids))
                for done, (aid, seq) in enumerate(ids):
                    if done and done % 20_000 == 0 and len(ids) >= 2_000:
                        log.warning("updated %d of %d articles", done, len(ids))
                    raw_date, raw_source, added = db.execute(
                        "SELECT date, source, added FROM articles WHERE id=?", (aid,)).fetchone()
                    art = self._get(db, aid)
                    day_added = dt.date.fromtimestamp(added)
                    if not is_iso_day(raw_date):
                        # a date as the text wrote it (an index from before dates were read)
                        news_metadata(art, raw_date, raw_source, day_added)
                    else:  # what an earlier version took from the text is read again (rag.published)
                        reread_news(art, day_added)
                    db.execute("UPDATE articles SET source=?, date=?, date_inferred=?, calendar=?, month_day=?, sha=? "
                               "WHERE id=?", (art.source, art.date, int(art.date_inferred), art.calendar, art.month_day,
                                              art.sha, aid))
                    self._join_story(db, art, seq)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('news', ?)", (NEWS_VERSION,))
        except sqlite3.OperationalError as exc:
            if not _is_access_error(exc):
                raise
            # a read-only index keeps answering; its dates and groups wait for a writable open

    @staticmethod
    def _join_story(db: sqlite3.Connection, article: Article, seq: int) -> str:
        """Find the stored copies of ``article`` (LSH candidates, checked on their words) and put it
        in the story of the closest one, or in a story of its own; record its LSH keys and its
        signature. Each key's newest ``stories.PER_KEY`` rows are read, so the cost does not grow
        with the archive; a candidate its MinHash rules out (``stories.not_ruled_out``) is not read:
        reading their words was 30 ms an article; the others are checked on their stored word hashes
        (their text is read and split only for articles stored before those were kept).
        ``seq``: the article's rowid."""
        mine = stories.words(article.content())
        signature = stories.fingerprint(mine)
        keys = stories.band_keys(signature)
        # the newest PER_KEY rows of each key (seq order is insertion order), in one statement
        arm = ("SELECT * FROM (SELECT article_id, seq FROM story_keys WHERE key=? AND article_id != ? "
               "ORDER BY seq DESC LIMIT ?)")
        shared = Counter(db.execute(" UNION ALL ".join([arm] * len(keys)),
                                    [x for k in keys for x in (k, article.id, stories.PER_KEY)]))
        kept = [c for c, _ in sorted(shared.items(), key=lambda x: (-x[1], x[0]))[:stories.CANDIDATES]]
        sigs = Records._signatures(db, [c[1] for c in kept])
        kept = [c for c in kept if c[1] in sigs]
        close = stories.not_ruled_out(signature, [sigs[c[1]][0] for c in kept])
        hashes = stories.word_hashes(mine)
        best, best_j = None, stories.THRESHOLD
        for (aid, their_seq), maybe in zip(kept, close):
            if not maybe:
                continue
            theirs = sigs[their_seq][1]
            if theirs is not None:
                j = stories.jaccard_hashes(hashes, np.frombuffer(theirs, dtype=np.uint32))
            else:
                text, spans = db.execute("SELECT text, spans FROM articles WHERE rowid=?", (their_seq,)).fetchone()
                j = stories.jaccard(mine, stories.words("\n".join(text[a:b] for a, b in json.loads(spans))))
            if j >= best_j:
                best, best_j = (aid, their_seq), j
        story = article.id
        if best:
            story = db.execute("SELECT coalesce(story, id) FROM articles WHERE rowid=?", (best[1],)).fetchone()[0]
        db.execute("UPDATE articles SET story=?, minhash=NULL, words=NULL WHERE rowid=?", (story, seq))
        db.execute("INSERT OR REPLACE INTO signatures VALUES (?, ?, ?)", (seq, signature.tobytes(), hashes.tobytes()))
        db.executemany("INSERT OR IGNORE INTO story_keys VALUES (?, ?, ?)", [(k, seq, article.id) for k in keys])
        return story

    def _move_signatures(self) -> None:
        """Once, on a writable open: copy the fingerprints of articles stored before the
        ``signatures`` table into it. Read from the article rows they sit past the text of, one
        random read each; on a big index whose file outgrows the page cache that was most of the
        time of adding articles. The old blobs stay in the rows (rewriting every row would journal
        the whole file); ``VACUUM`` after ``UPDATE articles SET minhash=NULL, words=NULL`` frees them."""
        with self.transaction() as db:
            n = db.execute("SELECT count(*) FROM articles").fetchone()[0]
            if n >= 20_000:
                log.warning("copying the story fingerprints of %d articles stored by an older version "
                            "into their own table; once, about 15 seconds per 100,000 articles", n)
            db.execute("INSERT OR IGNORE INTO signatures SELECT rowid, minhash, words FROM articles "
                       "WHERE minhash IS NOT NULL AND words IS NOT NULL")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('signatures', '1')")

    @staticmethod
    def _signatures(db: sqlite3.Connection, seqs: list[int]) -> dict[int, tuple[bytes | None, bytes | None]]:
        """``seq -> (minhash, word hashes)`` of the stored articles among ``seqs`` (rowids): from
        ``signatures``, or from the article row for articles stored before it (one lookup each,
        both blobs past the text)."""
        if not seqs:
            return {}
        marks = ",".join("?" * len(seqs))
        out = {r[0]: (r[1], r[2]) for r in db.execute(
            f"SELECT seq, minhash, words FROM signatures WHERE seq IN ({marks})", seqs)}
        rest = [q for q in seqs if q not in out]
        if rest:
            out.update({r[0]: (r[1], r[2]) for r in db.execute(
                f"SELECT rowid, minhash, words FROM articles WHERE rowid IN ({','.join('?' * len(rest))})", rest)})
        return out

    def document_frequencies(self, query_terms: list[str]) -> dict[str, int]:
        """How many passages hold each term (0 for unknown terms)."""
        uniq = sorted(set(query_terms))
        if not uniq:
            return {}
        rows = self.db.execute(f"SELECT term, df FROM term_df WHERE term IN ({','.join('?' * len(uniq))})",
                               uniq).fetchall()
        found = dict(rows)
        return {t: int(found.get(t, 0)) for t in uniq}

    def lexical(self, query_terms: list[str], k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """``(passage_id, bm25)`` of the ``k`` best passages for any of ``query_terms`` (higher is
        better), among the ``allowed`` passage ids when given. The allowed ones are picked from the
        ranked matches here: a ``rowid IN (...)`` beside MATCH makes SQLite probe the full-text
        index once per allowed passage (2.3 s a question at 10,000 articles), while the matches of
        the terms a question keeps (``rarest``) are few enough to rank whole."""
        uniq = sorted({t for t in query_terms if t})
        if not uniq or k <= 0:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in uniq)
        if allowed is None:
            rows = self.db.execute("SELECT rowid, -bm25(lexicon) AS s FROM lexicon WHERE lexicon MATCH ? "
                                   "ORDER BY s DESC LIMIT ?", (match, k)).fetchall()
            return [(int(r), float(s)) for r, s in rows]
        out = []
        for r, sc in self.db.execute("SELECT rowid, -bm25(lexicon) AS s FROM lexicon WHERE lexicon MATCH ? "
                                     "ORDER BY s DESC", (match,)):
            if r in allowed:
                out.append((int(r), float(sc)))
                if len(out) == k:
                    break
        return out

    def passage_ids(self, where: Filter) -> np.ndarray:
        """Ids of the passages of the articles that pass ``where``."""
        sql, args = filter_sql(where)
        rows = self.db.execute(f"SELECT p.id FROM passages p JOIN articles a ON a.id = p.article_id WHERE {sql}",
                               args).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, float32 vectors)`` of the stored passages among ``ids``."""
        out_ids, blobs = [], []
        for at in range(0, len(ids), 900):  # SQLite's bound on parameters
            part = [int(i) for i in ids[at:at + 900]]
            for pid, blob in self.db.execute(f"SELECT id, vector FROM passages WHERE id IN ({','.join('?' * len(part))})",
                                             part):
                out_ids.append(pid)
                blobs.append(blob)
        if not blobs:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(out_ids, dtype=np.int64), dequantize(np.frombuffer(b"".join(blobs), dtype=np.uint8), self.dim)

    def story_members(self, story_ids: list[str]) -> dict[str, list[ArticleInfo]]:
        """The articles of each story (first stored first)."""
        uniq = sorted(set(story_ids))
        if not uniq:
            return {}
        out: dict[str, list[ArticleInfo]] = {}
        for r in self.db.execute(f"{_INFO} WHERE a.story IN ({','.join('?' * len(uniq))}) ORDER BY a.added, a.id",
                                 uniq):
            info = _info(r)
            out.setdefault(info.group, []).append(info)
        return out

    # ------------------------------------------------------------ writing

    def state(self, article_id: str) -> tuple[str, str | None] | None:
        row = self.db.execute("SELECT sha, path FROM articles WHERE id=?", (article_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def put_many(self, items: list[tuple[Article, list[Chunk], np.ndarray, list[Chunk], np.ndarray]]
                 ) -> tuple[int, list[tuple[list[int], np.ndarray, list[int]]]]:
        """Replace each article with its passages and sentences, all in one transaction (whole
        articles, and one sync for the lot). Returns the new generation and, per article, the new
        passage ids, their vectors as stored (int8, dequantized) and the ids they replaced."""
        out = []
        df: Counter = Counter()
        with self.transaction() as db:
            gen = self._bump(db)
            for article, chunks, vectors, sentences, sentence_vectors in items:
                packed = quantize(vectors)
                old_ids = self._delete(db, article.id, gen, df)
                cur = db.execute("INSERT INTO articles (id, title, source, date, url, path, sha, added, spans, "
                                 "text, date_inferred, calendar, month_day) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                 (article.id, article.title, article.source, article.date, article.url,
                                  article.path, article.sha, time.time(), json.dumps(article.content_spans),
                                  article.text, int(article.date_inferred), article.calendar, article.month_day))
                self._join_story(db, article, cur.lastrowid)
                new_ids = []
                for seq, (c, v) in enumerate(zip(chunks, packed)):
                    cur = db.execute('INSERT INTO passages (article_id, seq, start, "end", gen, vector) '
                                     "VALUES (?,?,?,?,?,?)", (article.id, seq, c.start, c.end, gen, v.tobytes()))
                    new_ids.append(cur.lastrowid)
                    pt = passage_terms(article.title, article.text[c.start:c.end])
                    db.execute("INSERT INTO lexicon(rowid, terms) VALUES (?, ?)", (cur.lastrowid, pt))
                    df.update(set(pt.split()))
                if sentences:
                    spans = np.asarray([(s.start, s.end) for s in sentences], dtype=np.int64)
                    db.execute("INSERT INTO sentences (article_id, spans, vectors) VALUES (?,?,?)",
                               (article.id, spans.tobytes(), quantize(sentence_vectors).tobytes()))
                out.append((new_ids, dequantize(packed, self.dim), old_ids))
            self._add_df(db, df)
        return gen, out

    @staticmethod
    def _add_df(db: sqlite3.Connection, df: Counter) -> None:
        """Add a write's changes to the passages holding each term (negative for removed ones)."""
        changes = [(t, d) for t, d in df.items() if d]
        db.executemany("INSERT INTO term_df VALUES (?, ?) ON CONFLICT(term) DO UPDATE SET df = df + excluded.df",
                       changes)
        db.executemany("DELETE FROM term_df WHERE term = ? AND df <= 0", [(t,) for t, d in changes if d < 0])

    def remove(self, article_id: str) -> tuple[int, list[int]] | None:
        if self.state(article_id) is None:
            return None
        df: Counter = Counter()
        with self.transaction() as db:
            gen = self._bump(db)
            ids = self._delete(db, article_id, gen, df)
            self._add_df(db, df)
        return gen, ids

    @classmethod
    def _delete(cls, db: sqlite3.Connection, article_id: str, gen: int, df: Counter) -> list[int]:
        """Delete an article's rows (inside the caller's transaction); returns the passage ids gone."""
        rows = db.execute('SELECT p.id, p.article_id, a.title, p.start, p."end", '
                          'substr(a.text, p.start + 1, p."end" - p.start) FROM passages p '
                          "JOIN articles a ON a.id = p.article_id WHERE p.article_id=?", (article_id,)).fetchall()
        ids = [r[0] for r in rows]
        for r, text in zip(rows, Records._slices_in(db, rows)):
            pt = passage_terms(r[2], text)
            db.execute("INSERT INTO lexicon(lexicon, rowid, terms) VALUES ('delete', ?, ?)", (r[0], pt))
            df.subtract(set(pt.split()))
        db.executemany("INSERT INTO removed VALUES (?, ?)", [(i, gen) for i in ids])
        db.execute("DELETE FROM passages WHERE article_id=?", (article_id,))
        db.execute("DELETE FROM sentences WHERE article_id=?", (article_id,))
        row = db.execute("SELECT rowid FROM articles WHERE id=?", (article_id,)).fetchone()
        if row:
            seq = row[0]
            signature = Records._signatures(db, [seq]).get(seq, (None,))[0]
            if signature is not None:  # its rows are where its keys put them
                db.executemany("DELETE FROM story_keys WHERE key=? AND seq=?",
                               [(k, seq) for k in stories.band_keys(np.frombuffer(signature, dtype=np.uint32))])
            else:
                db.execute("DELETE FROM story_keys WHERE article_id=?", (article_id,))
            db.execute("DELETE FROM signatures WHERE seq=?", (seq,))
        db.execute("DELETE FROM articles WHERE id=?", (article_id,))
        # a story is named after its first article: when that one goes, after the next one
        heir = db.execute("SELECT id FROM articles WHERE story=? ORDER BY added, id LIMIT 1", (article_id,)).fetchone()
        if heir:
            db.execute("UPDATE articles SET story=? WHERE story=?", (heir[0], article_id))
        return ids

    # ------------------------------------------------------------ reading

    def passages(self, ids: list[int]) -> list[tuple]:
        """For each of ``ids`` still stored: ``(id, article_id, title, start, end, text, vector,
        sentence row id, sentence spans, sentence vectors, generation, source, date, date_inferred,
        calendar, story, month_day)``; raw blobs, decoded by the caller."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f'SELECT p.id, p.article_id, a.title, p.start, p."end", substr(a.text, p.start + 1, p."end" - p.start), '
            f"p.vector, s.id, s.spans, s.vectors, p.gen, a.source, a.date, a.date_inferred, a.calendar, a.story, "
            f"a.month_day "
            f"FROM passages p JOIN articles a ON a.id = p.article_id "
            f"LEFT JOIN sentences s ON s.article_id = p.article_id WHERE p.id IN ({marks})", ids).fetchall()
        texts = self._slices([r[:6] for r in rows])
        return [r[:5] + (t,) + r[6:] for r, t in zip(rows, texts)]

    @staticmethod
    def sentence_id(row_id: int, i: int) -> int:
        return (row_id << _SENTENCE_BITS) | i

    def _slices(self, rows: list[tuple]) -> list[str]:
        return self._slices_in(self.db, rows)

    @staticmethod
    def _slices_in(db: sqlite3.Connection, rows: list[tuple]) -> list[str]:
        """The passage text of rows ``(id, article_id, title, start, end, substr)``. SQLite's substr
        stops at a NUL character, which raw text may hold: a short slice is cut again in Python."""
        texts: dict[str, str] = {}
        out = []
        for _, aid, _, start, end, text in rows:
            if text is None or len(text) != end - start:
                if aid not in texts:
                    texts[aid] = db.execute("SELECT text FROM articles WHERE id=?", (aid,)).fetchone()[0]
                text = texts[aid][start:end]
            out.append(text)
        return out

    def article_chunks(self, article_id: str) -> list[ChunkRow]:
        rows = self.db.execute(
            'SELECT p.id, p.article_id, a.title, p.start, p."end", substr(a.text, p.start + 1, p."end" - p.start) '
            "FROM passages p JOIN articles a ON a.id = p.article_id WHERE p.article_id=? ORDER BY p.start",
            (article_id,)).fetchall()
        return [ChunkRow(*r[:5], text) for r, text in zip(rows, self._slices(rows))]

    def get(self, article_id: str) -> Article | None:
        return self._get(self.db, article_id)

    @staticmethod
    def _get(db: sqlite3.Connection, article_id: str) -> Article | None:
        row = db.execute("SELECT id, title, text, source, date, url, path, spans, date_inferred, calendar, month_day "
                         "FROM articles WHERE id=?", (article_id,)).fetchone()
        if not row:
            return None
        # an older index's date is the text as written: the Article reads it (check_news stores it)
        return Article(*row[:7], content_spans=[tuple(s) for s in json.loads(row[7])], date_inferred=bool(row[8]),
                       calendar=row[9], month_day=row[10])

    def articles(self, where: Filter | None = None) -> list[ArticleInfo]:
        sql, args = filter_sql(where) if where else ("1", [])
        rows = self.db.execute(f"{_INFO} WHERE {sql} ORDER BY a.added, a.id", args).fetchall()
        return [_info(r) for r in rows]

    def count(self) -> tuple[int, int]:
        n_art = self.db.execute("SELECT count(*) FROM articles").fetchone()[0]
        n_pas = self.db.execute("SELECT count(*) FROM passages").fetchone()[0]
        return n_art, n_pas

    def close(self) -> None:
        self.db.close()
