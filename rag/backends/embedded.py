"""The embedded backend: one folder on this machine, SQLite records + a FAISS vector cache.

Layout of an index folder:

- ``manifest.json``: format, embedder name and dimension, when search turns approximate
  (``ann_from`` passages), and the generation and checksum of the vector cache file.
- ``rag.sqlite``: the records and the lexicon (``rag.backends.records``), the source of truth.
- ``passages.faiss``: the passage vector index (``rag.backends.vectors``) as of some generation.
  On open it is loaded and caught up with what SQLite holds beyond that generation; it is
  rewritten (temp file + rename) only when the catch-up has grown past a tenth of it, so adding
  to a big index never rewrites the whole file each time. A damaged file (checksum) or one newer
  than the database is rebuilt from SQLite.
- ``.lock``: held by a writer; a second writer waits, then gives up with a clear message.

The manifest's ``format`` is the folder's layout (3 since int8 vectors); the records' schema has
its own numbered history (``rag.backends.migrations``), applied on open. A format 2 folder (float32
vectors, a FAISS file of every sentence) has its records moved by migration 1, then its files.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from ..articles import Article
from ..chunking import Chunk
from .base import (Candidates, Filter, Passage, QueryVector, StoreError, check_items, dequantize, rarest, rebuild_hint,
                   resolve, sort_changes)
from .migrations import MONTH_DAY, migrate
from .records import Records
from .vectors import VectorIndex

__all__ = ["EmbeddedIndex"]

FORMAT = 3  # the folder's layout: 3: int8 vectors, sentences per article, passages.faiss
MANIFEST = "manifest.json"
DB = "rag.sqlite"
VECTORS_FILE = "passages.faiss"
LOCK = ".lock"
# Search turns approximate from this many passages (~10k articles): below it flat search is
# fast and exact (bench/results/scale.md).
ANN_FROM = 50_000
NPROBE = 24
# The cache file is rewritten when the passages it lacks exceed this share of it.
REWRITE_SHARE = 0.1
# A filter that leaves at most this many passages of an approximate index is searched exactly.
EXACT_FILTERED = 200_000

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, data: bytes) -> None:
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


def _read_manifest(path: Path) -> dict:
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
    return manifest


class EmbeddedIndex:
    """An index folder. Thread-safe within a process; several processes may read while one writes."""

    def __init__(self, path: Path, manifest: dict) -> None:
        import faiss  # noqa: F401  (fail early with a clear import error)

        self.path = path
        self.location = str(path)
        self.manifest = manifest
        self.embedder: str = manifest["embedder"]
        self.dim: int = int(manifest["dim"])
        self.ann_from = int(manifest.get("ann_from", ANN_FROM))
        self.nprobe = int(manifest.get("nprobe", NPROBE))
        self._lock = threading.RLock()
        db_path = path / DB
        # The cache was written from SQLite at this generation: a database that is missing or older
        # lost its articles (emptied, truncated, replaced), which must not pass for an empty index.
        made_from = (manifest.get("vectors") or {}).get("generation", -1)
        if made_from > 0 and not db_path.exists():
            raise StoreError(f"index database {db_path} is missing; {rebuild_hint(path)}")
        self.records = Records(db_path, path, self.dim)
        with self.records.errors():
            db_gen = self.records.generation()
            if made_from > db_gen:
                raise StoreError(f"index database {db_path} has lost writes (generation {db_gen}, "
                                 f"the index was at {made_from}): it was emptied, truncated or replaced; "
                                 f"{rebuild_hint(path)}")
            self.records.month_day = MONTH_DAY not in migrate(self.records.db, self.dim, path)
            self._load_vectors()

    # ------------------------------------------------------------ opening

    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        return (Path(path) / MANIFEST).exists()

    @classmethod
    def open(cls, path: str | os.PathLike) -> "EmbeddedIndex":
        path = Path(path)
        manifest = _read_manifest(path)
        if manifest.get("format") == 2:
            from filelock import FileLock

            with FileLock(str(path / LOCK), timeout=60):
                manifest = _read_manifest(path)  # another process may have moved it meanwhile
                if manifest.get("format") == 2:
                    index = cls(path, manifest)  # migration 1 moves its records
                    index._leave_format_2()
                    return index
        if manifest.get("format") != FORMAT:
            raise StoreError(f"index {path} has format {manifest.get('format')}, this version reads {FORMAT}; "
                             f"{rebuild_hint(path)}")
        return cls(path, manifest)

    def _leave_format_2(self) -> None:
        """After migration 1: the manifest says format 3, the vector cache is written anew and the
        format 2 FAISS files go (a crash before the manifest is written does this again)."""
        self.manifest = {k: v for k, v in self.manifest.items() if k not in ("faiss_generation", "faiss_crc32")}
        self.manifest["format"] = FORMAT
        self.flush(force=True)
        for old in ("vectors.faiss", "sentences.faiss"):
            (self.path / old).unlink(missing_ok=True)

    @classmethod
    def create(cls, path: str | os.PathLike, embedder: str, dim: int, ann_from: int = ANN_FROM,
               nprobe: int = NPROBE) -> "EmbeddedIndex":
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            manifest = {"format": FORMAT, "embedder": embedder, "dim": int(dim), "ann_from": int(ann_from),
                        "nprobe": int(nprobe),
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            atomic_write(path / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1).encode())
        except OSError as exc:
            raise StoreError(f"cannot create index at {path}: {exc.strerror or exc}") from None
        return cls(path, manifest)

    # ------------------------------------------------------------ the vector cache

    def _load_vectors(self) -> None:
        """Load the cache file if it is whole and not ahead of SQLite, then catch up with SQLite."""
        info = self.manifest.get("vectors") or {}
        fpath = self.path / VECTORS_FILE
        self._vectors, self._generation = None, 0
        if isinstance(info.get("generation"), int) and fpath.exists():
            try:
                data = fpath.read_bytes()
                if zlib.crc32(data) == info.get("crc32"):
                    self._vectors = VectorIndex.deserialize(data, self.dim, self.ann_from, self.nprobe,
                                                          self._stored_vectors)
                    self._generation = info["generation"]
            except (RuntimeError, OSError, ValueError):
                pass  # damaged cache: rebuilt below from the source of truth
        if self._vectors is None:
            self._vectors = VectorIndex(self.dim, self.ann_from, self.nprobe, source=self._stored_vectors)
        self._catch_up()
        if self._vectors.ntotal != self.records.count()[1]:
            # never expected: the cache disagrees with SQLite after catching up; rebuild it
            self._vectors, self._generation = VectorIndex(self.dim, self.ann_from, self.nprobe, source=self._stored_vectors), 0
            self._catch_up()

    def _stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Every passage id and vector in SQLite (what the vector index is rebuilt from)."""
        ids, vectors, _, _ = self.records.vectors_since(-1)
        return ids, vectors

    def _catch_up(self) -> None:
        if self.records.generation() == self._generation:
            return
        ids, vectors, removed, gen = self.records.vectors_since(self._generation)
        # ids too: a rebuild from SQLite may already hold passages newer than this generation
        self._vectors.remove(np.concatenate([removed, ids]))
        self._vectors.add(ids, vectors)
        self._generation = gen

    def refresh(self) -> bool:
        """Pick up writes made by another process since we loaded. Returns True when there were some."""
        with self._lock, self.records.errors():
            if self.records.generation() == self._generation:
                return False
            self._catch_up()
            return True

    def flush(self, force: bool = False) -> None:
        """Write the vector cache (temp file + rename) when it lacks more than REWRITE_SHARE of the
        passages, and record its generation and checksum in the manifest."""
        with self._lock:
            info = self.manifest.get("vectors") or {}
            fpath = self.path / VECTORS_FILE
            if info.get("generation") == self._generation and fpath.exists():
                return
            if not force and fpath.exists() and isinstance(info.get("generation"), int):
                lacking = self.records.passages_since(info["generation"])
                if lacking <= REWRITE_SHARE * self._vectors.ntotal and not self._vectors.approximate_changed():
                    return
            try:
                data = self._vectors.serialize()
                atomic_write(fpath, data)
                self.manifest["vectors"] = {"generation": self._generation, "crc32": zlib.crc32(data),
                                            "approximate": self._vectors.approximate}
                atomic_write(self.path / MANIFEST, json.dumps(self.manifest, ensure_ascii=False, indent=1).encode())
                self._vectors.saved()
            except OSError as exc:
                raise StoreError(f"cannot write to the index {self.path}: {exc.strerror or exc}") from None

    @property
    def vectors(self) -> VectorIndex:
        """The passage vector index as loaded and caught up (for inspection)."""
        return self._vectors

    @property
    def approximate(self) -> bool:
        """Whether passage search is approximate (the index has grown past ``ann_from``)."""
        return self._vectors.approximate

    # ------------------------------------------------------------ writing

    @contextmanager
    def writing(self, timeout: float = 10.0) -> Iterator["EmbeddedIndex"]:
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
            self._remove_stale_temp_files()
            self.refresh()  # another process may have written since we opened the index
            yield self
        finally:
            try:
                self.flush()
            finally:
                lock.release()

    def _remove_stale_temp_files(self) -> None:
        """Temp files of an atomic write that a killed writer left (a vector cache's can be hundreds
        of MB). Only writers make them, and this one holds the writer lock: none is being written."""
        for name in (VECTORS_FILE, MANIFEST):
            for tmp in self.path.glob(f"{name}.*.tmp"):
                try:
                    tmp.unlink()
                except OSError:
                    pass  # not ours to remove (permissions): harmless, the next writer tries again

    def state(self, article_id: str) -> tuple[str, str | None] | None:
        """``(sha, path)`` of a stored article, or None."""
        with self._lock, self.records.errors():
            return self.records.state(article_id)

    def put(self, article: Article, chunks: list[Chunk], vectors: np.ndarray, sentences: list[Chunk] | None = None,
            sentence_vectors: np.ndarray | None = None) -> str:
        """Add or replace one article with its passages and sentences, in one transaction. Returns
        ``"added"``, ``"updated"`` or ``"unchanged"``."""
        return self.put_many([(article, chunks, vectors, sentences or [], sentence_vectors)])[0]

    def put_many(self, items: list[tuple[Article, list[Chunk], np.ndarray, list[Chunk], np.ndarray | None]]
                 ) -> list[str]:
        """:meth:`put` for several articles in one transaction (a crash keeps all or none of them,
        each whole); one status per article."""
        checked = check_items(items, self.dim, self.path)
        with self._lock, self.records.errors(writing=True):
            def stored(article: Article) -> bool | None:
                old = self.records.state(article.id)
                return None if not old else old[0] == article.sha

            statuses, todo = sort_changes(checked, stored)
            if not todo:
                return statuses
            behind = self.records.generation() != self._generation
            gen, written = self.records.put_many(todo)
            if behind:  # another process wrote in between: catch up from SQLite, this write included
                self._catch_up()
            else:
                self._vectors.remove([i for _, _, old_ids in written for i in old_ids])
                self._vectors.add(np.asarray([i for new_ids, _, _ in written for i in new_ids], dtype=np.int64),
                                  np.vstack([v for _, v, _ in written]))
                self._generation = gen
            return statuses

    def remove(self, article_id: str) -> bool:
        with self._lock, self.records.errors(writing=True):
            behind = self.records.generation() != self._generation
            done = self.records.remove(article_id)
            if done is None:
                return False
            if behind:
                self._catch_up()
            else:
                self._vectors.remove(done[1])
                self._generation = done[0]
            return True

    # ------------------------------------------------------------ reading

    def candidates(self, query_vector: QueryVector, query_terms: list[str], n: int, dense: bool = True,
                   lexical: bool = True, max_postings: int | None = None, where: Filter | None = None
                   ) -> Candidates:
        """The passages nearest to ``query_vector`` and those whose terms best match
        ``query_terms`` (``n`` of each), with their sentences and vectors: one question's read.
        ``max_postings``: the lexical side matches the rarest terms only, as many as hold at most
        this many passages together (at least one), so a question's cost does not grow with the
        archive through its common words (which weigh little in BM25). ``where``: only passages
        of the articles it passes, searched for (not filtered afterwards), so ``n`` come back
        when ``n`` pass."""
        self.refresh()
        with self._lock, self.records.errors():
            with self.records.snapshot():
                allowed = self.records.passage_ids(where) if where else None
                df = self.records.document_frequencies(query_terms) if lexical else {}
                matched = self.records.lexical(rarest(df, max_postings), n,
                                               None if allowed is None else set(allowed.tolist())) if lexical else []
                near = self._near(resolve(query_vector), n, allowed) if dense else []
                rows = self.records.passages(list(dict.fromkeys(near + [i for i, _ in matched])))
                members = self.records.story_members([r.story for r in rows if r.story])
        bm25 = dict(matched)
        passages = []
        for r in rows:
            if r.gen > self._generation:
                continue  # committed by another process after this question's refresh: not seen yet
            sent: tuple = ()
            svec = np.zeros((0, self.dim), dtype=np.float32)
            if r.sentences_row is not None:
                span_arr = np.frombuffer(r.sentence_spans, dtype=np.int64).reshape(-1, 2)
                inside = np.nonzero((span_arr[:, 0] >= r.start) & (span_arr[:, 1] <= r.end))[0]
                sent = tuple((self.records.sentence_id(r.sentences_row, int(i)), int(span_arr[i, 0]),
                              int(span_arr[i, 1])) for i in inside)
                if len(inside):
                    all_vecs = np.frombuffer(r.sentence_vectors, dtype=np.uint8).reshape(-1, self.dim + 4)
                    svec = dequantize(all_vecs[inside], self.dim)
            vector = dequantize(np.frombuffer(r.vector, np.uint8), self.dim)[0]
            passages.append(Passage(r.id, r.article_id, r.title, r.start, r.end, r.text, vector, sent, svec,
                                    bm25.get(r.id, 0.0), r.source, r.date, r.date_inferred, r.calendar,
                                    r.story or r.article_id, r.month_day))
        return Candidates(passages, matched, df, self._vectors.ntotal, members)

    def _near(self, query_vector: np.ndarray, n: int, allowed: np.ndarray | None) -> list[int]:
        """The ``n`` nearest passages, among ``allowed`` ids when given. A few allowed passages in
        an approximate index are searched exactly (their vectors read from the records): the
        index's probed lists may hold fewer than ``n`` of them."""
        if allowed is None:
            return self._vectors.search(query_vector, n)
        if not len(allowed):
            return []
        if self._vectors.approximate and len(allowed) <= EXACT_FILTERED:
            ids, vecs = self.records.vectors_of(allowed)
            order = np.argsort(-(vecs @ np.asarray(query_vector, dtype=np.float32)), kind="stable")[:n]
            return [int(ids[i]) for i in order]
        return self._vectors.search(query_vector, n, allowed)

    def get(self, article_id: str) -> Article | None:
        with self._lock, self.records.errors():
            return self.records.get(article_id)

    def article_chunks(self, article_id: str):
        with self._lock, self.records.errors():
            return self.records.article_chunks(article_id)

    def articles(self, where: Filter | None = None):
        with self._lock, self.records.errors():
            return self.records.articles(where)

    def count(self) -> tuple[int, int]:
        with self._lock, self.records.errors():
            return self.records.count()

    def close(self) -> None:
        with self._lock:
            self.records.close()
