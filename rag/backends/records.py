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
  places and nothing else; ``signatures``: its MinHash and word hashes, by rowid; an article's
  ``story`` is the id of the first article stored of the story it tells (its own when no copy
  of it is stored).
- ``lexicon``: a contentless FTS5 table of each passage's normalized terms (rowid = passage id),
  scored with FTS5's BM25, written in the article's own transaction; ``term_df``: how many
  passages hold each term, kept with it (FTS5 counts a term's passages only by reading all of
  them, which for a common word in a big archive costs more than the rest of the question).

The tables are made and changed only by the numbered migrations of
``rag.backends.migrations``. (~470 lines: the story tables, ``StoryTables``, share the records'
transactions and article rows, so they stay here.) Each article is written in one transaction, so a crash leaves whole
articles only. SQLite's errors come out as :class:`StoreError` naming the file and what to do.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import stories
from ..articles import Article
from ..chunking import Chunk
from .base import ArticleInfo, ChunkRow, Filter, StoreError, dequantize, passage_terms, quantize, rebuild_hint

# Sentence ids: the article's sentences row id, shifted, plus the sentence's place in it.
_SENTENCE_BITS = 20

# The connection's page cache (KiB; a ceiling, filled as pages are read).
CACHE_KIB = 65536
# SQLite result codes that mean "not allowed / not possible here" rather than "damaged".
_ACCESS_CODES = {3, 5, 6, 8, 13, 14}  # PERM, BUSY, LOCKED, READONLY, FULL, CANTOPEN


_INFO = ("SELECT a.id, a.title, a.source, a.date, a.url, a.path, "
         "(SELECT count(*) FROM passages p WHERE p.article_id = a.id) AS chunks, length(a.text) AS chars, "
         'a.date_inferred, a.calendar, coalesce(a.story, a.id) AS "group", {month_day} AS month_day FROM articles a')


def _info(row: sqlite3.Row) -> ArticleInfo:
    return ArticleInfo(**{**dict(row), "date_inferred": bool(row["date_inferred"])})


def named(db: sqlite3.Connection, sql: str, args=()) -> list[sqlite3.Row]:
    """The rows of a query, read by column name."""
    cur = db.cursor()
    cur.row_factory = sqlite3.Row
    return cur.execute(sql, args).fetchall()


@dataclass(frozen=True)
class PassageRow:
    """A stored passage as a question reads it: raw blobs, decoded by the caller."""

    id: int
    article_id: str
    title: str
    start: int
    end: int
    text: str
    vector: bytes
    sentences_row: int | None      # its article's sentences row (None: stored without sentences)
    sentence_spans: bytes | None
    sentence_vectors: bytes | None
    gen: int
    source: str | None
    date: str | None
    date_inferred: bool
    calendar: str | None
    story: str | None
    month_day: str | None


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


def passage_texts(db: sqlite3.Connection, rows: list[tuple]) -> list[str]:
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


PASSAGE_TEXTS = ('SELECT p.id, p.article_id, a.title, p.start, p."end", substr(a.text, p.start + 1, p."end" - p.start) '
                 "FROM passages p JOIN articles a ON a.id = p.article_id")


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed whole or rolled back whole."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def is_access_error(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _ACCESS_CODES


class Records:
    """Articles, passages, sentences and the lexicon in one SQLite file. Not locked: the caller
    (``EmbeddedIndex``) serializes access."""

    def __init__(self, db_path: Path, folder: Path, dim: int) -> None:
        self.db_path = db_path
        self.folder = folder
        self.dim = dim
        # False for an index opened read-only before migration 7 (articles.month_day): read as its
        # release left it, every month_day NULL (rag.backends.embedded sets it after migrating)
        self.month_day = True
        try:
            self.db = sqlite3.connect(db_path, timeout=30, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=DELETE")
            self.db.execute("PRAGMA synchronous=FULL")
            # SQLite's default 2 MB page cache: each write to a large index re-reads its B-tree pages
            self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
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
            if is_access_error(exc):
                raise StoreError(f"cannot {'write to' if writing else 'read'} the index database {self.db_path} "
                                 f"({exc}); check that {self.folder} and its files are "
                                 f"{'writable' if writing else 'readable'} and that no other program holds them"
                                 ) from None
            raise StoreError(f"index database {self.db_path} is damaged ({exc}); {rebuild_hint(self.folder)}") from None

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self.db)

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
        """The count of writes (0 for a database without tables yet)."""
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
            return 0
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
        return StoryTables(self.db, self.month_day).members(story_ids)

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
                stories.join(StoryTables(db), article.id, cur.lastrowid, article.content())
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
        rows = db.execute(f"{PASSAGE_TEXTS} WHERE p.article_id=?", (article_id,)).fetchall()
        ids = [r[0] for r in rows]
        for r, text in zip(rows, passage_texts(db, rows)):
            pt = passage_terms(r[2], text)
            db.execute("INSERT INTO lexicon(lexicon, rowid, terms) VALUES ('delete', ?, ?)", (r[0], pt))
            df.subtract(set(pt.split()))
        db.executemany("INSERT INTO removed VALUES (?, ?)", [(i, gen) for i in ids])
        db.execute("DELETE FROM passages WHERE article_id=?", (article_id,))
        db.execute("DELETE FROM sentences WHERE article_id=?", (article_id,))
        row = db.execute("SELECT rowid FROM articles WHERE id=?", (article_id,)).fetchone()
        if row:
            seq = row[0]
            signature = StoryTables(db).signatures([seq]).get(seq, (None,))[0]
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

    def passages(self, ids: list[int]) -> list[PassageRow]:
        """The stored passages among ``ids``, with their sentences and article metadata."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = named(self.db,
                     f'SELECT p.id, p.article_id, a.title, p.start, p."end", '
                     f'substr(a.text, p.start + 1, p."end" - p.start) AS text, p.vector, s.id AS sentences_row, '
                     f"s.spans AS sentence_spans, s.vectors AS sentence_vectors, p.gen, a.source, a.date, "
                     f"a.date_inferred, a.calendar, a.story, {self._month_day_sql()} AS month_day "
                     f"FROM passages p JOIN articles a ON a.id = p.article_id "
                     f"LEFT JOIN sentences s ON s.article_id = p.article_id WHERE p.id IN ({marks})", ids)
        texts = self._slices([tuple(r)[:6] for r in rows])
        return [PassageRow(**{**dict(r), "text": t, "date_inferred": bool(r["date_inferred"])})
                for r, t in zip(rows, texts)]

    @staticmethod
    def sentence_id(row_id: int, i: int) -> int:
        return (row_id << _SENTENCE_BITS) | i

    def _slices(self, rows: list[tuple]) -> list[str]:
        return passage_texts(self.db, rows)

    def article_chunks(self, article_id: str) -> list[ChunkRow]:
        rows = self.db.execute(f"{PASSAGE_TEXTS} WHERE p.article_id=? ORDER BY p.start", (article_id,)).fetchall()
        return [ChunkRow(*r[:5], text) for r, text in zip(rows, self._slices(rows))]

    def get(self, article_id: str) -> Article | None:
        return self.get_in(self.db, article_id, self.month_day)

    def _info_sql(self) -> str:
        return _INFO.format(month_day=self._month_day_sql())

    def _month_day_sql(self) -> str:
        return "a.month_day" if self.month_day else "NULL"

    @staticmethod
    def get_in(db: sqlite3.Connection, article_id: str, month_day: bool = True) -> Article | None:
        """``month_day``: the index has the column (m007; m006 re-reads articles before it)."""
        row = db.execute("SELECT id, title, text, source, date, url, path, spans, date_inferred, calendar, "
                         f"{'month_day' if month_day else 'NULL'} "
                         "FROM articles WHERE id=?", (article_id,)).fetchone()
        if not row:
            return None
        return Article(*row[:7], content_spans=[tuple(s) for s in json.loads(row[7])], date_inferred=bool(row[8]),
                       calendar=row[9], month_day=row[10])

    def articles(self, where: Filter | None = None) -> list[ArticleInfo]:
        sql, args = filter_sql(where) if where else ("1", [])
        return [_info(r) for r in named(self.db, f"{self._info_sql()} WHERE {sql} ORDER BY a.added, a.id", args)]

    def count(self) -> tuple[int, int]:
        n_art = self.db.execute("SELECT count(*) FROM articles").fetchone()[0]
        n_pas = self.db.execute("SELECT count(*) FROM passages").fetchone()[0]
        return n_art, n_pas

    def close(self) -> None:
        self.db.close()


class StoryTables:
    """Story groups in SQLite (``rag.stories.StoryStore``), inside the caller's transaction: keys
    in ``story_keys`` clustered by key and article row id (newest last), fingerprints in
    ``signatures`` (or, for articles stored before that table, past the text of their row), the
    group in ``articles.story``. A ``ref`` is the article's row id."""

    def __init__(self, db: sqlite3.Connection, month_day: bool = True) -> None:
        self.db = db
        self.month_day = month_day  # as Records.month_day

    def keys(self, keys: list[int], article_id: str, per_key: int) -> list[tuple[str, int]]:
        arm = ("SELECT * FROM (SELECT article_id, seq FROM story_keys WHERE key=? AND article_id != ? "
               "ORDER BY seq DESC LIMIT ?)")  # one statement for all keys
        return [tuple(r) for r in self.db.execute(" UNION ALL ".join([arm] * len(keys)),
                                                  [x for k in keys for x in (k, article_id, per_key)])]

    def signatures(self, refs: list[int]) -> dict[int, tuple[bytes | None, bytes | None]]:
        if not refs:
            return {}
        out = {r[0]: (r[1], r[2]) for r in self.db.execute(
            f"SELECT seq, minhash, words FROM signatures WHERE seq IN ({','.join('?' * len(refs))})", refs)}
        rest = [q for q in refs if q not in out]
        if rest:  # stored before the signatures table: one lookup each, both blobs past the text
            out.update({r[0]: (r[1], r[2]) for r in self.db.execute(
                f"SELECT rowid, minhash, words FROM articles WHERE rowid IN ({','.join('?' * len(rest))})", rest)})
        return out

    def words(self, ref: int) -> set[str] | None:
        row = self.db.execute("SELECT text, spans FROM articles WHERE rowid=?", (ref,)).fetchone()
        return stories.words("\n".join(row[0][a:b] for a, b in json.loads(row[1]))) if row else None

    def story(self, ref: int) -> str:
        return self.db.execute("SELECT coalesce(story, id) FROM articles WHERE rowid=?", (ref,)).fetchone()[0]

    def keep(self, article_id: str, ref: int, story: str, signature: np.ndarray, hashes: np.ndarray,
             keys: list[int]) -> None:
        self.db.execute("UPDATE articles SET story=?, minhash=NULL, words=NULL WHERE rowid=?", (story, ref))
        self.db.execute("INSERT OR REPLACE INTO signatures VALUES (?, ?, ?)",
                        (ref, signature.tobytes(), hashes.tobytes()))
        self.db.executemany("INSERT OR IGNORE INTO story_keys VALUES (?, ?, ?)", [(k, ref, article_id) for k in keys])

    def members(self, story_ids: list[str]) -> dict[str, list[ArticleInfo]]:
        uniq = sorted(set(story_ids))
        out: dict[str, list[ArticleInfo]] = {}
        if uniq:
            for r in named(self.db, f"{_INFO.format(month_day='a.month_day' if self.month_day else 'NULL')} WHERE a.story IN ({','.join('?' * len(uniq))}) "
                                    "ORDER BY a.added, a.id", uniq):
                info = _info(r)
                out.setdefault(info.group, []).append(info)
        return out
