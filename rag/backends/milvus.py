"""The Milvus backend: an index held by a Milvus server or cluster (``milvus://HOST:PORT/COLLECTION``),
shared by several ``rag ingest`` writers and app servers on other machines (the ``milvus`` extra).

Three collections, named after COLLECTION:

- ``COLLECTION_passages``: one row per passage. ``id`` (INT64, a hash of article id, fingerprint
  and position: no counter, so writers on different machines never collide), ``article_id`` and
  ``article_key`` (an INT64 hash of it, what lookups filter on), ``seq``, ``start``, ``end``,
  ``title``, ``text`` (the raw slice), ``source`` and ``date`` (for metadata filters), ``sha``;
  ``vector`` (the passage vector, as the int8 codes store it, under an HNSW index, metric IP);
  ``terms`` (``passage_terms``: our normalized terms, space-separated) from which a Milvus BM25
  Function makes the ``sparse`` field (SPARSE_INVERTED_INDEX, metric BM25); ``sentences`` (JSON
  ``[[sentence_id, start, end], ...]`` of the sentences inside the passage) and ``vectors``
  (base64 of the int8 codes of the passage vector followed by those sentences', as
  ``rag.backends.base.quantize`` packs them). A search's output fields are thus everything a
  ``Passage`` needs: a question reads no other collection.
- ``COLLECTION_articles``: the articles, one row per part of ≤ 16,000 characters of a JSON
  record (text, metadata, content spans; a VARCHAR holds 64 KiB), with the listing fields
  (title, source, date, url, path, sha, added, chunks, chars) on part 0.
- ``COLLECTION_stories``: each article's MinHash LSH keys (``rag.stories``), one row per key, with
  the article's story group (the id of the first stored of the copies of one story); the row of
  band 0 is the article's head row, what group lookups read (migration 2).
- ``COLLECTION_meta``: the embedder, dimension, format and analyzer; the migrations done
  (``rag.backends.milvus_schema.HISTORY``).

A question is one dense search and one BM25 search plus the lexical statistics: the document
frequency of each query term is a ``count(*)`` query filtered by ``text_match`` on the terms field
(exact; indexed on a Milvus server, a scan on Milvus Lite), the counts run concurrently with the
dense search and are cached for ``DF_TTL`` seconds per process (the number of passages likewise);
the BM25 search follows them, on the rarest terms (``max_postings``, as the embedded backend).

Writes are per article and need no lock: ``put`` reads the article's old rows, deletes leftovers of
an interrupted write of the same version, inserts the new passages and then the article rows,
and deletes the old rows by primary key. Milvus has no transactions: a reader may for a moment
see both versions of an article being replaced; a writer killed half way leaves rows that the next
``put`` of that article removes. Two writers replacing the *same* article at the same moment may
both leave their version; ``state``/``get`` take the latest and the next ``put`` cleans up.

Beside it: ``milvus_client`` (connecting, errors), ``milvus_schema`` (the collections' fields and
the rows written to them), ``milvus_stories`` (story groups). This module, ~480 lines, is the one
class a Backend is; its reads and writes share the collections' row layout.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ..articles import Article
from ..chunking import Chunk
from .. import stories
from .base import (ArticleInfo, Candidates, ChunkRow, Filter, Passage, QueryVector, StoreError, check_items, rarest,
                   resolve, sort_changes)
from .milvus_client import connect, wrap
from .milvus_schema import (analyzer, article_info, article_key, migrate, now, passage_of, passage_rows,
                            record_rows)
from .milvus_stories import Stories, StoryGroups

FORMAT = 1
INSERT_BATCH = 256            # rows per insert request
DF_TTL = 30.0                 # seconds a process reuses a term's document frequency / the passage count
_PASSAGE_FIELDS = ["id", "article_id", "title", "start", "end", "text", "sentences", "vectors", "source", "date"]
# How a date was written: its calendar and whether its year was inferred (on passages, for
# citations, and on articles' part-0 rows, for listings). Collections made before these fields
# lack them (Milvus Lite cannot add a field): their dates read as written in no known calendar.
_DATING = ["calendar", "date_inferred"]



class MilvusIndex(StoryGroups):
    """An index in a Milvus server or cluster. Thread-safe; any number of processes may read and
    write it at once (see the module notes on replacing one article from two writers)."""

    def __init__(self, client, location: str, name: str, meta: dict, dating: bool = False) -> None:
        self.client = client
        self.location = location
        self.name = name
        self.passages_name = f"{name}_passages"
        self.articles_name = f"{name}_articles"
        self.stories_name = f"{name}_stories"
        self.meta = meta
        self.embedder: str = meta["embedder"]
        self.dim: int = int(meta["dim"])
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._df: dict[str, tuple[float, int]] = {}       # term → (when, document frequency)
        self._total: tuple[float, int] | None = None
        self._dirty = False
        self._dating = _DATING if dating else []  # the _DATING fields, when the collections have them
        self._passage_fields = _PASSAGE_FIELDS + self._dating

    @property
    def timeout(self) -> float:
        """Seconds a Milvus call may take before it fails with a StoreError."""
        return self.client.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.client.timeout = seconds

    # ------------------------------------------------------------ errors

    def _errors(self, doing: str):
        """A failed Milvus call as a StoreError naming the index, what failed and what to do."""
        return wrap(self.location, doing)

    # ------------------------------------------------------------ opening

    @staticmethod
    def _read_meta(client, name: str, key: str = "index") -> dict | None:
        """The index description (``key`` "index") or the migrations done ("_migrations")."""
        if not client.has_collection(f"{name}_meta"):
            return None
        client.load_collection(f"{name}_meta")
        rows = client.query(f"{name}_meta", filter=f'key == "{key}"', output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    @classmethod
    def exists(cls, location: str) -> bool:
        client, _, _, name = connect(location)
        try:
            with wrap(location, "reading the index description"):
                return cls._read_meta(client, name) is not None
        finally:
            client.close()

    @classmethod
    def _connected(cls, location: str, what: str, read_meta) -> "MilvusIndex":
        """Connect, run ``read_meta(client, name)`` (it returns the index description), and make the
        index; the connection is closed if anything fails."""
        client, _, _, name = connect(location)
        try:
            with wrap(location, what):
                meta = read_meta(client, name)
                dating = all(any(f["name"] == "calendar" for f in client.describe_collection(f"{name}_{c}")["fields"])
                             for c in ("passages", "articles"))
        except BaseException:
            client.close()
            raise
        return cls(client, location, name, meta, dating)

    @classmethod
    def _up_to_date(cls, client, name: str, meta: dict, location: str) -> dict:
        """Run the migrations the index lacks (one made before they were recorded had migration 1,
        its collections) and load its collections."""
        done = cls._read_meta(client, name, "_migrations") or {"1": "before _migrations"}
        migrate(client, name, int(meta["dim"]), done, location)
        for suffix in ("passages", "articles", "meta", "stories"):
            client.load_collection(f"{name}_{suffix}")
        return meta

    @classmethod
    def open(cls, location: str) -> "MilvusIndex":
        def read_meta(client, name: str) -> dict:
            meta = cls._read_meta(client, name)
            if meta is None:
                raise StoreError(f"no index at {location}; build one with: rag ingest seeds/ --index {location}")
            if meta.get("format") != FORMAT:
                raise StoreError(f"index {location} has format {meta.get('format')}, this version reads {FORMAT}; "
                                 f"rebuild it with: rag ingest ARTICLES... --index milvus://HOST:PORT/NEW_NAME")
            return cls._up_to_date(client, name, meta, location)

        return cls._connected(location, "opening the index", read_meta)

    @classmethod
    def create(cls, location: str, embedder: str, dim: int, **_embedded_options) -> "MilvusIndex":
        """Create the collections by running every migration (those a crashed create left are
        reused); the description is written last, so an index exists only once it is whole.
        (``ann_from``/``nprobe`` are the embedded backend's: Milvus's HNSW is approximate from the start.)"""
        def read_meta(client, name: str) -> dict:
            meta = cls._read_meta(client, name)
            if meta is not None:
                if meta.get("embedder") != embedder or int(meta.get("dim", 0)) != int(dim):
                    raise StoreError(f"the index {location} exists with the embedder {meta.get('embedder')!r} "
                                     f"(dimension {meta.get('dim')})")
                return cls._up_to_date(client, name, meta, location)
            done: dict = {}
            migrate(client, name, int(dim), done, location, record=False)
            meta = {"format": FORMAT, "embedder": embedder, "dim": int(dim), "analyzer": analyzer(client),
                    "created": now()}
            client.upsert(f"{name}_meta", [{"key": "_migrations", "value": json.dumps(done), "_v": [0.0, 0.0]},
                                           {"key": "index", "value": json.dumps(meta), "_v": [0.0, 0.0]}])
            return cls._up_to_date(client, name, meta, location)

        return cls._connected(location, "creating the index", read_meta)

    # ------------------------------------------------------------ writing

    @contextmanager
    def writing(self, timeout: float = 10.0) -> Iterator["MilvusIndex"]:
        """No lock is needed (writes are per article, by primary key); at the end, a flush seals
        what was written into segments."""
        try:
            yield self
        finally:
            if self._dirty:
                self._dirty = False
                with self._errors("flushing the writes"):
                    self.client.flush(self.passages_name)
                    self.client.flush(self.articles_name)
                    self.client.flush(self.stories_name)

    def _query(self, collection: str, filter: str, fields: list[str], limit: int | None = None) -> list[dict]:
        more = {} if limit is None else {"limit": limit}
        return list(self.client.query(collection, filter=filter, output_fields=fields, **more))

    def _article_rows(self, article_id: str, fields: list[str], part0: bool = False) -> list[dict]:
        expr = f"article_key == {article_key(article_id)}" + (" and part == 0" if part0 else "")
        return [r for r in self._query(self.articles_name, expr, ["article_id"] + fields)
                if r["article_id"] == article_id]

    @staticmethod
    def _latest(rows: list[dict]) -> dict | None:
        """The part-0 row of the latest version of an article among ``rows``."""
        heads = [r for r in rows if r.get("part", 0) == 0]
        return max(heads, key=lambda r: r["added"]) if heads else None

    def state(self, article_id: str) -> tuple[str, str | None] | None:
        """``(sha, path)`` of a stored article, or None (sha "": stored without its story keys, so
        ingesting it again writes it whole)."""
        with self._errors("reading an article"):
            head = self._latest(self._article_rows(article_id, ["sha", "path", "added"], part0=True))
            if head is None:
                return None
            # its story keys are written last: without them a writer was killed before it finished
            whole = self._query(self.stories_name, f"article_key == {article_key(article_id)} and band == 0",
                                ["article_id"])
        return (head["sha"] if any(r["article_id"] == article_id for r in whole) else "", head["path"] or None)

    def put(self, article: Article, chunks: list[Chunk], vectors: np.ndarray, sentences: list[Chunk] | None = None,
            sentence_vectors: np.ndarray | None = None) -> str:
        """Add or replace one article with its passages and sentences. Returns ``"added"``,
        ``"updated"`` or ``"unchanged"``."""
        return self.put_many([(article, chunks, vectors, sentences or [], sentence_vectors)])[0]

    def put_many(self, items: list[tuple[Article, list[Chunk], np.ndarray, list[Chunk], np.ndarray | None]]
                 ) -> list[str]:
        """:meth:`put` for several articles with a few requests for all of them (one query of the
        old rows per collection, batched inserts and deletes); one status per article. Milvus has
        no transactions: each article is whole once its rows are in (see the module notes)."""
        if len({item[0].id for item in items}) != len(items):  # the same article twice: in order
            return [status for item in items for status in self.put_many([item])]
        checked = check_items(items, self.dim, self.location)
        what = f"writing the article {items[0][0].id!r}" if len(items) == 1 else f"writing {len(items)} articles"
        with self._errors(what):
            old_articles = self._rows_of(self.articles_name, [a.id for a, *_ in checked], ["id", "sha", "part"])
            # story keys are written last: a writer killed before them left the article otherwise whole
            keyed = self._rows_of(self.stories_name, list(old_articles), ["id"], "band == 0") if old_articles else {}

            def stored(article: Article) -> bool | None:
                rows = old_articles.get(article.id, [])
                if not rows:
                    return None
                return (sum(r["part"] == 0 for r in rows) == 1 and {r["sha"] for r in rows} == {article.sha}
                        and article.id in keyed)

            statuses, todo = sort_changes(checked, stored)
            if not todo:
                return statuses
            old_passages = self._rows_of(self.passages_name, [a.id for a, *_ in todo], ["id"])
            passages, records = [], []
            for article, chunks, vectors, sentences, sentence_vectors in todo:
                sha = article.sha
                passages += passage_rows(article, sha, chunks, vectors, sentences, sentence_vectors, self.dim,
                                         bool(self._dating))
                records += record_rows(article, sha, len(chunks), bool(self._dating))
            old_p = [r["id"] for a, *_ in todo for r in old_passages.get(a.id, [])]
            old_a = [r["id"] for a, *_ in todo for r in old_articles.get(a.id, [])]
            new_p, new_a = {r["id"] for r in passages}, {r["id"] for r in records}
            # rows of these very versions left by an interrupted write go first (no duplicate keys)
            self._delete(self.passages_name, [i for i in old_p if i in new_p])
            self._delete(self.articles_name, [i for i in old_a if i in new_a])
            for i in range(0, len(passages), INSERT_BATCH):
                self.client.insert(self.passages_name, passages[i:i + INSERT_BATCH])
            for i in range(0, len(records), INSERT_BATCH):
                self.client.insert(self.articles_name, records[i:i + INSERT_BATCH])
            self._delete(self.passages_name, [i for i in old_p if i not in new_p])
            self._delete(self.articles_name, [i for i in old_a if i not in new_a])
            for article, *_ in todo:  # one by one: a copy later in the batch finds an earlier one
                stories.join(Stories(self), article.id, article.id, article.content())
        self._changed()
        return statuses

    def _rows_of(self, collection: str, article_ids: list[str], fields: list[str], where: str = ""
                 ) -> dict[str, list[dict]]:
        """The rows of ``collection`` of each of ``article_ids`` (looked up by their key), those
        ``where`` (a filter expression) holds for when given."""
        wanted, out = set(article_ids), {}
        keys = sorted({article_key(a) for a in article_ids})
        for i in range(0, len(keys), 100):
            expr = (f"{where} and " if where else "") + f"article_key in [{', '.join(map(str, keys[i:i + 100]))}]"
            for r in self._query(collection, expr, ["article_id"] + fields):
                if r["article_id"] in wanted:
                    out.setdefault(r["article_id"], []).append(r)
        return out

    def remove(self, article_id: str) -> bool:
        with self._errors(f"removing the article {article_id!r}"):
            records = [r["id"] for r in self._article_rows(article_id, ["id"])]
            if not records:
                return False
            passages = [r["id"] for r in self._query(self.passages_name, f"article_key == {article_key(article_id)}",
                                                     ["id", "article_id"]) if r["article_id"] == article_id]
            self._delete(self.passages_name, passages)
            self._delete(self.articles_name, records)
            self._leave_story(article_id)
        self._changed()
        return True

    def _delete(self, collection: str, ids: list[int]) -> None:
        for i in range(0, len(ids), 1000):
            self.client.delete(collection, ids=ids[i:i + 1000])

    def _changed(self) -> None:
        with self._lock:
            self._dirty = True
            self._df.clear()  # this process sees its own writes in the lexical statistics at once
            self._total = None

    # ------------------------------------------------------------ reading

    def refresh(self) -> bool:
        """Nothing to catch up: every read asks the server (strong consistency)."""
        return False

    def candidates(self, query_vector: QueryVector, query_terms: list[str], n: int, dense: bool = True,
                   lexical: bool = True, max_postings: int | None = None, where: Filter | None = None
                   ) -> Candidates:
        """The ``n`` passages nearest to ``query_vector`` and the ``n`` best BM25 matches of
        ``query_terms``, with their sentences and vectors, the terms' document frequencies and the
        passage count. The dense search runs alongside the document frequency counts; the BM25
        search then matches the rarest terms that together hold at most ``max_postings``
        passages (as the embedded backend does; with None, every term, alongside the rest).
        ``where``: applied by Milvus inside both searches, as a filter expression on the
        passages' ``source`` and ``date`` fields."""
        uniq = sorted({t for t in query_terms if t}) if lexical else []
        pool = self._executor()
        flt = filter_expression(where)

        def dense_search():  # in the pool: it waits there for the question's vector
            qv = np.asarray(resolve(query_vector), dtype=np.float32).tolist()
            return self.client.search(self.passages_name, data=[qv], anns_field="vector", limit=n, filter=flt,
                                      output_fields=self._passage_fields,
                                      search_params={"metric_type": "IP", "params": {"ef": max(64, 2 * n)}})

        with self._errors("searching"):
            near = pool.submit(dense_search) if dense and n > 0 else None
            words = pool.submit(self._bm25, uniq, n, flt) if max_postings is None and uniq else None
            df = self._document_frequencies(uniq, pool) if uniq else {}
            total = self._total_passages()
            if words is not None:
                word_hits = words.result()
            else:
                word_hits = self._bm25(rarest(df, max_postings), n, flt) if uniq else []
            near_hits = near.result()[0] if near else []
        matched = sorted(((int(h["id"]), abs(float(h["distance"]))) for h in word_hits), key=lambda x: (-x[1], x[0]))
        bm25 = dict(matched)
        passages: dict[int, Passage] = {}
        for h in list(near_hits) + list(word_hits):
            pid = int(h["id"])
            if pid not in passages:
                passages[pid] = passage_of(pid, h["entity"], bm25.get(pid, 0.0), self.dim)
        with self._errors("reading story groups"):
            groups = self._groups(sorted({p.article_id for p in passages.values()}))
            members = self._members(list(groups.values()))
        found = [dataclasses.replace(p, group=groups.get(p.article_id, p.article_id)) for p in passages.values()]
        return Candidates(found, matched, df, total, members)

    def _bm25(self, words: list[str], n: int, flt: str) -> list:
        """The ``n`` best passages for ``words`` by the BM25 function's sparse field (Milvus Lite
        gives its scores negated, as distances: taken as they are, positive)."""
        if not words or n <= 0:
            return []
        return self.client.search(self.passages_name, data=[" ".join(words)], anns_field="sparse", limit=n,
                                  filter=flt, output_fields=self._passage_fields,
                                  search_params={"metric_type": "BM25", "params": {}})[0]

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="milvus")
            return self._pool

    def _count(self, collection: str, expr: str) -> int:
        rows = self.client.query(collection, filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def _document_frequencies(self, uniq: list[str], pool: ThreadPoolExecutor) -> dict[str, int]:
        """Passages holding each term: a ``text_match`` count per term, concurrently; reused for
        ``DF_TTL`` seconds (other processes' writes show in the lexical weight within that time)."""
        now = time.monotonic()
        known: dict[str, int] = {}
        with self._lock:
            for t in uniq:
                hit = self._df.get(t)
                if hit is not None and now - hit[0] < DF_TTL:
                    known[t] = hit[1]
        asks = {t: pool.submit(self._count, self.passages_name, f"text_match(terms, '{t}')")
                for t in uniq if t not in known and "'" not in t and "\\" not in t}
        fresh = {t: f.result() for t, f in asks.items()}
        with self._lock:
            if len(self._df) > 50_000:
                self._df.clear()
            self._df.update((t, (now, d)) for t, d in fresh.items())
        return {t: known.get(t, fresh.get(t, 0)) for t in uniq}

    def _total_passages(self) -> int:
        now = time.monotonic()
        with self._lock:
            if self._total and now - self._total[0] < DF_TTL:
                return self._total[1]
        total = self._count(self.passages_name, "")
        with self._lock:
            self._total = (now, total)
        return total

    def get(self, article_id: str) -> Article | None:
        with self._errors("reading an article"):
            rows = self._article_rows(article_id, ["sha", "part", "parts", "added", "data"])
        head = self._latest(rows)
        if head is None:
            return None
        parts = sorted((r for r in rows if r["sha"] == head["sha"]), key=lambda r: r["part"])
        if [r["part"] for r in parts] != list(range(head["parts"])):
            raise StoreError(f"the article {article_id!r} in {self.location} is incomplete (a write was interrupted); "
                             f"ingest it again")
        rec = json.loads("".join(r["data"] for r in parts))
        return Article(article_id, rec["title"], rec["text"], rec["source"], rec["date"], rec["url"], rec["path"],
                       content_spans=[tuple(s) for s in rec["spans"]], date_inferred=bool(rec.get("date_inferred")),
                       calendar=rec.get("calendar"), month_day=rec.get("month_day"))

    def article_chunks(self, article_id: str) -> list[ChunkRow]:
        with self._errors("reading an article's passages"):
            head = self._latest(self._article_rows(article_id, ["sha", "added"], part0=True))
            if head is None:
                return []
            rows = self._query(self.passages_name, f"article_key == {article_key(article_id)}",
                               ["id", "article_id", "sha", "title", "start", "end", "text"])
        rows = sorted((r for r in rows if r["article_id"] == article_id and r["sha"] == head["sha"]),
                      key=lambda r: (r["start"], r["id"]))
        return [ChunkRow(int(r["id"]), article_id, r["title"], int(r["start"]), int(r["end"]), r["text"]) for r in rows]

    def articles(self, where: Filter | None = None) -> list[ArticleInfo]:
        fields = ["article_id", "title", "source", "date", "url", "path", "chunks", "chars", "added"] + self._dating
        latest: dict[str, dict] = {}
        with self._errors("listing the articles"):
            it = self.client.query_iterator(self.articles_name, batch_size=1000, filter="part == 0",
                                            output_fields=fields)
            try:
                while batch := it.next():
                    for r in batch:
                        old = latest.get(r["article_id"])
                        if old is None or r["added"] > old["added"]:
                            latest[r["article_id"]] = r
            finally:
                it.close()
        chosen = [r for r in sorted(latest.values(), key=lambda r: (r["added"], r["article_id"]))
                  if where is None or where.passes(r["source"] or None, r["date"] or None)]
        with self._errors("listing the story groups"):
            groups = self._groups([r["article_id"] for r in chosen])
        return [article_info(r["article_id"], r, groups[r["article_id"]]) for r in chosen]

    def count(self) -> tuple[int, int]:
        with self._errors("counting"):
            return self._count(self.articles_name, "part == 0"), self._count(self.passages_name, "")

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self.client is not None:
            self.client.close()
            self.client = None


def filter_expression(where: Filter | None) -> str:
    """``where`` as a Milvus boolean expression on the passages (ISO dates compare as strings)."""
    if not where:
        return ""
    conds = []
    if where.since:
        conds.append(f"date >= {json.dumps(where.since)}")
    if where.until:
        conds.append(f'date <= {json.dumps(where.until)} and date != ""')
    if where.sources:
        conds.append(f"source in {json.dumps(list(where.sources), ensure_ascii=False)}")
    return " and ".join(conds)
