"""The index on disk: the only code that writes ``index/``.

Layout of an index folder:

- ``manifest.json``: format, embedder name and dimension, and the generation the FAISS file holds.
- ``rag.sqlite``: articles (raw text, metadata, fingerprint) and chunks (offsets and vector).
  SQLite is the source of truth; each article is written in one transaction, so a crash leaves
  whole articles only.
- The lexical side lives in SQLite too: an FTS5 table of each passage's normalized Persian/English
  terms (rowid = chunk id), scored with FTS5's BM25 and written in the article's own transaction,
  so it is incremental, persisted and never out of step with the vectors.
- ``vectors.faiss`` / ``sentences.faiss``: ``IndexIDMap2`` over inner-product vectors of passages
  and of sentences, ids = row ids (never reused, so they survive deletes). It is a cache of the SQLite vectors, written atomically
  (temp file + rename); when its generation is not SQLite's (a crash between the two), or its
  checksum is not the one the manifest recorded (a damaged file), it is rebuilt from SQLite on open.
- ``.lock``: held by a writer; a second writer waits, then gives up with a clear message. A writer
  first picks up what other processes wrote since it opened the index.

A damaged ``rag.sqlite`` or ``manifest.json`` (or one the index cannot write to) is a
:class:`StoreError` naming the file and what to do, never a raw SQLite error.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import UserError
from .articles import Article
from .chunking import Chunk
from .persian import terms

FORMAT = 2  # 2: sentence vectors beside passage vectors
MANIFEST = "manifest.json"
DB = "rag.sqlite"
FAISS_FILE = "vectors.faiss"
SENTENCES_FAISS_FILE = "sentences.faiss"
# The two vector kinds: table in SQLite → FAISS cache file.
KINDS = {"chunks": FAISS_FILE, "sentences": SENTENCES_FAISS_FILE}
LOCK = ".lock"


class StoreError(UserError):
    """A problem with the index folder; the message names the file and what to do."""


@dataclass(frozen=True)
class ChunkRow:
    chunk_id: int
    article_id: str
    title: str
    start: int
    end: int
    text: str
    score: float = 0.0


@dataclass(frozen=True)
class ArticleInfo:
    id: str
    title: str
    source: str | None
    date: str | None
    url: str | None
    path: str | None
    chunks: int
    chars: int


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL, source TEXT, date TEXT, url TEXT,
    path TEXT, sha TEXT NOT NULL, spans TEXT NOT NULL, added REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, article_id TEXT NOT NULL REFERENCES articles(id),
    seq INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY AUTOINCREMENT, article_id TEXT NOT NULL REFERENCES articles(id),
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS sentences_article ON sentences(article_id, start);
CREATE VIRTUAL TABLE IF NOT EXISTS lexicon USING fts5(terms, tokenize='unicode61 remove_diacritics 0');
CREATE VIRTUAL TABLE IF NOT EXISTS lexicon_vocab USING fts5vocab(lexicon, 'row');
"""

# Bump when rag.persian.terms changes: stored lexical terms are then rebuilt on open.
LEXICON_VERSION = "4"


def passage_terms(title: str, text: str) -> str:
    """What the lexical index holds for a passage: its normalized terms (title included, as the
    dense side embeds it), space-separated for FTS5."""
    return " ".join(terms(f"{title}\n{text}"))


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; index files are as readable as any other
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def rebuild_hint(path: Path) -> str:
    return f"rebuild it with: rag ingest ARTICLES... --index {path} (after moving {path} away)"


# SQLite result codes that mean "not allowed / not possible here" rather than "damaged".
_ACCESS_CODES = {3, 5, 6, 8, 13, 14}  # PERM, BUSY, LOCKED, READONLY, FULL, CANTOPEN


def _is_access_error(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _ACCESS_CODES


def _crc32_file(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            crc = zlib.crc32(block, crc)
    return crc


class Store:
    """Articles, chunks and their vectors in one folder. Thread-safe within a process."""

    def __init__(self, path: Path, manifest: dict) -> None:
        import faiss  # noqa: F401  (fail early with a clear import error)

        self.path = path
        self.manifest = manifest
        self.embedder: str = manifest["embedder"]
        self.dim: int = int(manifest["dim"])
        self._lock = threading.RLock()
        db_path = path / DB
        # The FAISS files were written from SQLite at this generation: a database that is missing
        # or older lost its articles (emptied, truncated, replaced), which must not pass for an
        # empty index.
        made_from = manifest.get("faiss_generation")
        made_from = made_from if isinstance(made_from, int) else -1
        if made_from > 0 and not db_path.exists():
            raise StoreError(f"index database {db_path} is missing; {rebuild_hint(path)}")
        try:
            self._db = sqlite3.connect(db_path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=DELETE")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.execute("SELECT count(*) FROM articles").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"index database {db_path} is unreadable ({exc}); {rebuild_hint(path)}") from None
        self._generation = -1
        self._faiss: dict = {}
        with self._db_errors():
            if made_from > self._db_generation():
                raise StoreError(f"index database {db_path} has lost writes (generation {self._db_generation()}, "
                                 f"the index was at {made_from}): it was emptied, truncated or replaced; "
                                 f"{rebuild_hint(path)}")
            self._check_lexicon()
            self._load_vectors()

    @contextmanager
    def _db_errors(self, writing: bool = False) -> Iterator[None]:
        """SQLite's errors as a :class:`StoreError` that names the file and what to do."""
        try:
            yield
        except sqlite3.ProgrammingError:
            raise  # a bug in this module, not a property of the file
        except sqlite3.DatabaseError as exc:
            db = self.path / DB
            if _is_access_error(exc):
                raise StoreError(f"cannot {'write to' if writing else 'read'} the index database {db} ({exc}); "
                                 f"check that {self.path} and its files are {'writable' if writing else 'readable'} "
                                 "and that no other program holds them") from None
            raise StoreError(f"index database {db} is damaged ({exc}); {rebuild_hint(self.path)}") from None

    # ------------------------------------------------------------ opening

    @classmethod
    def exists(cls, path: str | os.PathLike) -> bool:
        return (Path(path) / MANIFEST).exists()

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Store":
        path = Path(path)
        mf = path / MANIFEST
        if not mf.exists():
            raise StoreError(f"no index at {path}; build one with: rag ingest seeds/ --index {path}")
        try:
            manifest = json.loads(mf.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict) or "embedder" not in manifest or "dim" not in manifest:
                raise ValueError("missing embedder or dim")
            if not isinstance(manifest["embedder"], str) or int(manifest["dim"]) <= 0:
                raise ValueError("bad embedder or dim")
        except (ValueError, TypeError, OSError) as exc:
            raise StoreError(f"index manifest {mf} is damaged ({exc}); {rebuild_hint(path)}") from None
        if manifest.get("format") != FORMAT:
            raise StoreError(f"index {path} has format {manifest.get('format')}, this version reads {FORMAT}; "
                             f"{rebuild_hint(path)}")
        return cls(path, manifest)

    @classmethod
    def create(cls, path: str | os.PathLike, embedder: str, dim: int) -> "Store":
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            manifest = {"format": FORMAT, "embedder": embedder, "dim": int(dim), "faiss_generation": -1,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            _atomic_write(path / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1).encode())
        except OSError as exc:
            raise StoreError(f"cannot create index at {path}: {exc.strerror or exc}") from None
        return cls(path, manifest)

    # ------------------------------------------------------------ vectors

    def _db_generation(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def _load_vectors(self) -> None:
        """Load each FAISS file if it matches SQLite's generation, else rebuild it from SQLite."""
        gen = self._db_generation()
        self._faiss = {kind: self._load_kind(kind, gen) for kind in KINDS}
        self._generation = gen

    def _load_kind(self, kind: str, gen: int):
        import faiss

        fpath = self.path / KINDS[kind]
        count = self._db.execute(f"SELECT count(*) FROM {kind}").fetchone()[0]
        if self.manifest.get("faiss_generation") == gen and fpath.exists():
            try:
                # Indexes written before checksums were recorded have none to compare.
                crc = (self.manifest.get("faiss_crc32") or {}).get(KINDS[kind])
                if crc is None or _crc32_file(fpath) == crc:
                    index = faiss.read_index(str(fpath))
                    if index.d == self.dim and index.ntotal == count:
                        return index
            except (RuntimeError, OSError, AttributeError):
                pass  # damaged cache: rebuilt below from the source of truth
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        ids, vecs = [], []
        for rid, blob in self._db.execute(f"SELECT id, vector FROM {kind} ORDER BY id"):
            ids.append(rid)
            vecs.append(np.frombuffer(blob, dtype=np.float32))
        if ids:
            try:
                mat = np.vstack(vecs)
            except ValueError:
                mat = np.zeros((0, 0), dtype=np.float32)
            if mat.ndim != 2 or mat.shape[1] != self.dim:
                raise StoreError(f"vectors in {self.path / DB} do not have the manifest's dimension {self.dim}; "
                                 f"{rebuild_hint(self.path)}")
            index.add_with_ids(mat, np.asarray(ids, dtype=np.int64))
        return index

    def _check_lexicon(self) -> None:
        """(Re)build the lexical terms when they were made by another version of the term rules
        (or by a version without them)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='lexicon'").fetchone()
        n_lex = self._db.execute("SELECT count(*) FROM lexicon").fetchone()[0]
        if row and row[0] == LEXICON_VERSION and n_lex == self._count_chunks():
            return
        try:
            with self._transaction() as db:
                db.execute("DELETE FROM lexicon")
                rows = db.execute('SELECT c.id, c.article_id, a.title, c.start, c."end", '
                                  'substr(a.text, c.start + 1, c."end" - c.start) '
                                  "FROM chunks c JOIN articles a ON a.id = c.article_id").fetchall()
                db.executemany("INSERT INTO lexicon(rowid, terms) VALUES (?, ?)",
                               [(r[0], passage_terms(r[2], text)) for r, text in zip(rows, self._slices(rows))])
                db.execute("INSERT OR REPLACE INTO meta VALUES ('lexicon', ?)", (LEXICON_VERSION,))
        except sqlite3.OperationalError as exc:
            if not _is_access_error(exc):
                raise
            # a read-only index keeps working on its dense side; writes will report the problem

    def _count_chunks(self) -> int:
        return self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def refresh(self) -> bool:
        """Pick up writes made by another process since we loaded. Returns True when it reloaded."""
        with self._lock, self._db_errors():
            if self._db_generation() == self._generation:
                return False
            try:
                self.manifest = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
            except (ValueError, OSError):
                pass
            self._load_vectors()
            return True

    def flush(self) -> None:
        """Persist the FAISS caches (temp file + rename) and record their generation in the manifest."""
        import faiss

        with self._lock:
            if self.manifest.get("faiss_generation") == self._generation and all(
                    (self.path / f).exists() for f in KINDS.values()):
                return
            crcs = {}
            try:
                for kind, fname in KINDS.items():
                    data = faiss.serialize_index(self._faiss[kind]).tobytes()
                    _atomic_write(self.path / fname, data)
                    crcs[fname] = zlib.crc32(data)
                self.manifest["faiss_generation"] = self._generation
                self.manifest["faiss_crc32"] = crcs
                _atomic_write(self.path / MANIFEST, json.dumps(self.manifest, ensure_ascii=False, indent=1).encode())
            except OSError as exc:
                raise StoreError(f"cannot write to the index {self.path}: {exc.strerror or exc}") from None

    # ------------------------------------------------------------ writing

    @contextmanager
    def writing(self, timeout: float = 10.0) -> Iterator["Store"]:
        """Hold the index's writer lock (other processes wait up to ``timeout`` s), flush at the end."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / LOCK))
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise StoreError(f"another process is writing to the index {self.path} (lock {self.path / LOCK}); "
                             "wait for it to finish and try again") from None
        except OSError as exc:
            raise StoreError(f"cannot write to the index {self.path}: {exc.strerror or exc}") from None
        try:
            self.refresh()  # another process may have written since we opened the index
            yield self
        finally:
            try:
                self.flush()
            finally:
                lock.release()

    def state(self, article_id: str) -> tuple[str, str | None] | None:
        """``(sha, path)`` of a stored article, or None."""
        with self._lock, self._db_errors():
            row = self._db.execute("SELECT sha, path FROM articles WHERE id=?", (article_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def put(self, article: Article, chunks: list[Chunk], vectors: np.ndarray, sentences: list[Chunk] | None = None,
            sentence_vectors: np.ndarray | None = None) -> str:
        """Add or replace one article with its passages and sentences, in one transaction. Returns
        ``"added"``, ``"updated"`` or ``"unchanged"``."""
        sentences = sentences or []
        rows = {"chunks": (chunks, self._check_vectors(article, chunks, vectors)),
                "sentences": (sentences, self._check_vectors(article, sentences, sentence_vectors))}
        sha = article.sha
        with self._lock, self._db_errors(writing=True):
            old = self.state(article.id)
            if old and old[0] == sha:
                return "unchanged"
            with self._transaction() as db:
                old_ids = self._delete_article(db, article.id)
                db.execute("INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?)",
                           (article.id, article.title, article.text, article.source, article.date, article.url,
                            article.path, sha, json.dumps(article.content_spans), time.time()))
                new_ids: dict[str, list[int]] = {"chunks": [], "sentences": []}
                for seq, (c, v) in enumerate(zip(chunks, rows["chunks"][1])):
                    cur = db.execute('INSERT INTO chunks (article_id, seq, start, "end", vector) VALUES (?,?,?,?,?)',
                                     (article.id, seq, c.start, c.end, v.tobytes()))
                    new_ids["chunks"].append(cur.lastrowid)
                    db.execute("INSERT INTO lexicon(rowid, terms) VALUES (?, ?)",
                               (cur.lastrowid, passage_terms(article.title, article.text[c.start:c.end])))
                for c, v in zip(sentences, rows["sentences"][1]):
                    cur = db.execute('INSERT INTO sentences (article_id, start, "end", vector) VALUES (?,?,?,?)',
                                     (article.id, c.start, c.end, v.tobytes()))
                    new_ids["sentences"].append(cur.lastrowid)
                gen = self._bump(db)
            self._apply(gen, old_ids, {kind: (new_ids[kind], rows[kind][1]) for kind in KINDS})
            return "updated" if old else "added"

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole or rolled back whole."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _apply(self, gen: int, removed: dict[str, list[int]],
               added: dict[str, tuple[list[int], np.ndarray]] | None = None) -> None:
        """Mirror a committed transaction in the in-memory FAISS indexes."""
        for kind in KINDS:
            if removed[kind]:
                self._faiss[kind].remove_ids(np.asarray(removed[kind], dtype=np.int64))
            ids, vectors = (added or {}).get(kind, ([], None))
            if ids:
                self._faiss[kind].add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
        self._generation = gen

    def _check_vectors(self, article: Article, spans: list[Chunk], vectors: np.ndarray | None) -> np.ndarray:
        if not spans:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(spans):
            raise ValueError("one vector per passage or sentence")
        if vectors.shape[1] != self.dim:
            raise StoreError(f"embedder gives dimension {vectors.shape[1]}, index {self.path} holds {self.dim}")
        for c in spans:
            if not (0 <= c.start < c.end <= len(article.text)):
                raise ValueError(f"span {c} outside article {article.id!r}")
        return vectors

    @staticmethod
    def _delete_article(db: sqlite3.Connection, article_id: str) -> dict[str, list[int]]:
        """Delete an article's rows (inside the caller's transaction); returns the vector ids gone."""
        ids = {kind: [r[0] for r in db.execute(f"SELECT id FROM {kind} WHERE article_id=?", (article_id,))]
               for kind in KINDS}
        db.executemany("DELETE FROM lexicon WHERE rowid=?", [(i,) for i in ids["chunks"]])
        for kind in KINDS:
            db.execute(f"DELETE FROM {kind} WHERE article_id=?", (article_id,))
        db.execute("DELETE FROM articles WHERE id=?", (article_id,))
        return ids

    def remove(self, article_id: str) -> bool:
        with self._lock, self._db_errors(writing=True):
            if self.state(article_id) is None:
                return False
            with self._transaction() as db:
                ids = self._delete_article(db, article_id)
                gen = self._bump(db)
            self._apply(gen, ids)
            return True

    @staticmethod
    def _bump(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        gen = (int(row[0]) if row else 0) + 1
        db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (str(gen),))
        return gen

    # ------------------------------------------------------------ reading

    def dense(self, query_vec: np.ndarray, k: int) -> list[tuple[int, float]]:
        """``(chunk_id, cosine)`` of the ``k`` nearest chunks."""
        with self._lock:
            return self._nearest("chunks", query_vec, k)

    def _nearest(self, kind: str, query_vec: np.ndarray, k: int) -> list[tuple[int, float]]:
        index = self._faiss[kind]
        if index.ntotal == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query_vec, dtype=np.float32).reshape(1, -1)
        scores, ids = index.search(q, min(k, index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def nearest_sentences(self, query_vec: np.ndarray, k: int) -> list[tuple[int, float]]:
        """``(sentence_id, cosine)`` of the ``k`` nearest sentences."""
        with self._lock:
            return self._nearest("sentences", query_vec, k)

    def sentence_chunks(self, sentence_ids: list[int]) -> list[tuple[int, int]]:
        """``(sentence_id, chunk_id)`` for every passage that holds each sentence."""
        if not sentence_ids:
            return []
        with self._lock, self._db_errors():
            return self._db.execute(
                f'SELECT s.id, c.id FROM sentences s JOIN chunks c ON c.article_id = s.article_id '
                f'AND c.start <= s.start AND c."end" >= s."end" WHERE s.id IN ({",".join("?" * len(sentence_ids))})',
                sentence_ids).fetchall()

    def sentences_in(self, chunk_ids: list[int]) -> dict[int, list[tuple[int, int, int]]]:
        """For each passage, its sentences as ``(sentence_id, start, end)`` in text order."""
        if not chunk_ids:
            return {}
        out: dict[int, list[tuple[int, int, int]]] = {c: [] for c in chunk_ids}
        with self._lock, self._db_errors():
            rows = self._db.execute(
                f'SELECT c.id, s.id, s.start, s."end" FROM chunks c JOIN sentences s ON s.article_id = c.article_id '
                f'AND s.start >= c.start AND s."end" <= c."end" WHERE c.id IN ({",".join("?" * len(chunk_ids))}) '
                f"ORDER BY c.id, s.start", chunk_ids).fetchall()
        for cid, sid, st, en in rows:
            out[cid].append((sid, st, en))
        return out

    def sentence_scores(self, query_vec: np.ndarray, ids: list[int]) -> dict[int, float]:
        """Cosine of ``query_vec`` with the given sentences."""
        return self._scores("sentences", query_vec, ids)

    def dense_scores(self, query_vec: np.ndarray, ids: list[int]) -> dict[int, float]:
        """Cosine of ``query_vec`` with the given chunks (for chunks found by the lexical side)."""
        return self._scores("chunks", query_vec, ids)

    def _scores(self, kind: str, query_vec: np.ndarray, ids: list[int]) -> dict[int, float]:
        if not ids:
            return {}
        with self._lock:
            try:
                vecs = np.vstack([self._faiss[kind].reconstruct(int(i)) for i in ids])
            except RuntimeError:
                # Another process committed after this question's refresh, and an SQLite read already
                # returned its new ids: pick the write up, and leave out ids still unknown (removed
                # meanwhile, or not yet visible), so the question sees the old or the new index.
                import faiss

                self.refresh()
                known = set(faiss.vector_to_array(self._faiss[kind].id_map).tolist())
                ids = [i for i in ids if i in known]
                if not ids:
                    return {}
                vecs = np.vstack([self._faiss[kind].reconstruct(int(i)) for i in ids])
        return dict(zip(ids, (vecs @ np.asarray(query_vec, dtype=np.float32)).tolist()))

    def lexical(self, query_terms: list[str], k: int) -> list[tuple[int, float]]:
        """``(chunk_id, bm25)`` of the ``k`` best chunks for any of ``query_terms`` (higher is better)."""
        uniq = sorted({t for t in query_terms if t})
        if not uniq or k <= 0:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in uniq)
        with self._lock, self._db_errors():
            rows = self._db.execute("SELECT rowid, -bm25(lexicon) AS s FROM lexicon WHERE lexicon MATCH ? "
                                    "ORDER BY s DESC LIMIT ?", (match, k)).fetchall()
        return [(int(r), float(s)) for r, s in rows]

    def document_frequencies(self, query_terms: list[str]) -> dict[str, int]:
        """How many passages hold each term (0 for unknown terms)."""
        uniq = sorted(set(query_terms))
        if not uniq:
            return {}
        with self._lock, self._db_errors():
            rows = self._db.execute(f"SELECT term, doc FROM lexicon_vocab WHERE term IN ({','.join('?' * len(uniq))})",
                                    uniq).fetchall()
        found = dict(rows)
        return {t: int(found.get(t, 0)) for t in uniq}

    def chunks(self, ids: list[int]) -> list[ChunkRow]:
        if not ids:
            return []
        with self._lock, self._db_errors():
            marks = ",".join("?" * len(ids))
            rows = self._db.execute(
                f'SELECT c.id, c.article_id, a.title, c.start, c."end", substr(a.text, c.start + 1, c."end" - c.start) '
                f"FROM chunks c JOIN articles a ON a.id = c.article_id WHERE c.id IN ({marks})", ids).fetchall()
            return [ChunkRow(*r[:5], text) for r, text in zip(rows, self._slices(rows))]

    def _slices(self, rows: list[tuple]) -> list[str]:
        """The passage text of rows ``(id, article_id, title, start, end, substr)``. SQLite's substr
        stops at a NUL character, which raw text may hold: a short slice is cut again in Python."""
        texts: dict[str, str] = {}
        out = []
        for _, aid, _, start, end, text in rows:
            if len(text) != end - start:
                if aid not in texts:
                    texts[aid] = self._db.execute("SELECT text FROM articles WHERE id=?", (aid,)).fetchone()[0]
                text = texts[aid][start:end]
            out.append(text)
        return out

    def article_chunks(self, article_id: str) -> list[ChunkRow]:
        with self._lock, self._db_errors():
            ids = [r[0] for r in self._db.execute("SELECT id FROM chunks WHERE article_id=? ORDER BY seq",
                                                  (article_id,))]
        return sorted(self.chunks(ids), key=lambda r: r.start)

    def get(self, article_id: str) -> Article | None:
        with self._lock, self._db_errors():
            row = self._db.execute("SELECT id, title, text, source, date, url, path, spans FROM articles WHERE id=?",
                                   (article_id,)).fetchone()
        if not row:
            return None
        return Article(*row[:7], content_spans=[tuple(s) for s in json.loads(row[7])])

    def articles(self) -> list[ArticleInfo]:
        with self._lock, self._db_errors():
            rows = self._db.execute(
                "SELECT a.id, a.title, a.source, a.date, a.url, a.path, "
                "(SELECT count(*) FROM chunks c WHERE c.article_id = a.id), length(a.text) "
                "FROM articles a ORDER BY a.added, a.id").fetchall()
        return [ArticleInfo(*r) for r in rows]

    def count(self) -> tuple[int, int]:
        with self._lock, self._db_errors():
            n_art = self._db.execute("SELECT count(*) FROM articles").fetchone()[0]
            return n_art, self._count_chunks()

    def close(self) -> None:
        with self._lock:
            self._db.close()
