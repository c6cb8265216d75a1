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
  band 0 is the article's head row, what group lookups read. Made on open for indexes created
  before story groups (their older articles are each their own story until ingested again).
- ``COLLECTION_meta``: the embedder, dimension, format and analyzer.

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
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

import numpy as np

from ..articles import Article
from ..chunking import Chunk
from .base import (ArticleInfo, Candidates, ChunkRow, Filter, Passage, QueryVector, StoreError, check_items,
                   dequantize, passage_terms, quantize, resolve, sort_changes)
from .embedded import rarest

FORMAT = 1
DEFAULT_PORT = 19530
CONNECT_TIMEOUT = 5.0
# Seconds a call may take, retries included (pymilvus otherwise retries an unreachable server for
# minutes); RAG_MILVUS_TIMEOUT overrides it.
try:
    TIMEOUT = float(os.environ.get("RAG_MILVUS_TIMEOUT") or 60)
except ValueError:
    TIMEOUT = 60.0
VARCHAR_MAX = 65535           # bytes in a Milvus VARCHAR
PART_CHARS = 16_000           # characters of an article record per row (≤ 4 bytes each in UTF-8)
INSERT_BATCH = 256            # rows per insert request
DF_TTL = 30.0                 # seconds a process reuses a term's document frequency / the passage count
HNSW = {"M": 16, "efConstruction": 200}
BM25 = {"bm25_k1": 1.2, "bm25_b": 0.75}   # as SQLite FTS5's bm25() in the embedded backend
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")
_PASSAGE_FIELDS = ["id", "article_id", "title", "start", "end", "text", "sentences", "vectors", "source", "date"]
# How a date was written: its calendar and whether its year was inferred (on passages, for
# citations, and on articles' part-0 rows, for listings). Collections made before these fields
# lack them (Milvus Lite cannot add a field): their dates read as written in no known calendar.
_DATING = ["calendar", "date_inferred"]

INSTALL_HINT = "the milvus:// index needs the milvus extra: pip install 'persian-rag[milvus]'"


def _hash64(*parts: str) -> int:
    """A positive int64 from ``parts`` (blake2b): ids that writers on different machines agree on."""
    h = hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(h.digest(), "big") & 0x7FFF_FFFF_FFFF_FFFF


def article_key(article_id: str) -> int:
    return _hash64("article", article_id)


def parse_location(location: str) -> tuple[str, int, str]:
    """``milvus://HOST[:PORT]/COLLECTION`` → ``(host, port, collection)``."""
    usage = "use milvus://HOST:PORT/COLLECTION (COLLECTION: letters, digits and _, not starting with a digit)"
    try:
        u = urlsplit(location)
        port = u.port or DEFAULT_PORT
    except ValueError as exc:
        raise StoreError(f"bad Milvus location {location!r} ({exc}); {usage}") from None
    name = u.path.strip("/")
    if u.scheme != "milvus" or not u.hostname or not _NAME.fullmatch(name) or u.query or u.fragment:
        raise StoreError(f"bad Milvus location {location!r}; {usage}")
    return u.hostname, port, name


def _client_errors():
    """The exception types of a failed Milvus call."""
    from pymilvus.exceptions import MilvusException

    errors: tuple = (MilvusException, ConnectionError, TimeoutError)
    try:
        import grpc

        errors += (grpc.RpcError,)
    except ImportError:
        pass
    return errors


def _reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


# pymilvus pings every 10 s even with no call in flight; a server on gRPC's default policy (Milvus
# Lite's) answers an idle client's pings with GOAWAY "too_many_pings" after ~a minute, and the
# client's next connection to it could then fail (seen with an app idle while writers ran).
GRPC_OPTIONS = {"grpc.keepalive_permit_without_calls": False}


def _connect(location: str):
    """``(client, host, port, name)`` for ``location``; a clear StoreError when Milvus is not there."""
    host, port, name = parse_location(location)
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise StoreError(INSTALL_HINT) from None
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        client = MilvusClient(uri=f"http://{netloc}", timeout=CONNECT_TIMEOUT, grpc_options=GRPC_OPTIONS)
    except _client_errors() as exc:
        raise StoreError(f"cannot reach the Milvus server at {netloc} for the index {location} ({_reason(exc)}); "
                         f"start Milvus there (for a local test server: milvus-lite server --data-dir DIR "
                         f"--host {host} --port {port}) or give the right --index location") from None
    return _Timed(client, TIMEOUT), host, port, name


class _Timed:
    """A MilvusClient whose calls all carry ``timeout`` (which bounds pymilvus's retries)."""

    def __init__(self, client, timeout: float) -> None:
        self._client = client
        self.timeout = timeout

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if name == "close" or not callable(attr):
            return attr

        def call(*args, **kwargs):
            kwargs.setdefault("timeout", self.timeout)
            return attr(*args, **kwargs)

        return call


def _varchar(value: str, what: str) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > VARCHAR_MAX:
        raise StoreError(f"{what} is longer than a Milvus VARCHAR holds ({VARCHAR_MAX} bytes)")
    return value


class MilvusIndex:
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
        return _wrap(self.location, doing)

    # ------------------------------------------------------------ opening

    @staticmethod
    def _read_meta(client, name: str) -> dict | None:
        if not client.has_collection(f"{name}_meta"):
            return None
        client.load_collection(f"{name}_meta")
        rows = client.query(f"{name}_meta", filter='key == "index"', output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    @classmethod
    def exists(cls, location: str) -> bool:
        client, _, _, name = _connect(location)
        try:
            with _wrap(location, "reading the index description"):
                return cls._read_meta(client, name) is not None
        finally:
            client.close()

    @classmethod
    def _connected(cls, location: str, what: str, read_meta) -> "MilvusIndex":
        """Connect, run ``read_meta(client, name)`` (it returns the index description), and make the
        index; the connection is closed if anything fails."""
        client, _, _, name = _connect(location)
        try:
            with _wrap(location, what):
                meta = read_meta(client, name)
                dating = all(any(f["name"] == "calendar" for f in client.describe_collection(f"{name}_{c}")["fields"])
                             for c in ("passages", "articles"))
        except BaseException:
            client.close()
            raise
        return cls(client, location, name, meta, dating)

    @classmethod
    def open(cls, location: str) -> "MilvusIndex":
        def read_meta(client, name: str) -> dict:
            meta = cls._read_meta(client, name)
            if meta is None:
                raise StoreError(f"no index at {location}; build one with: rag ingest seeds/ --index {location}")
            if meta.get("format") != FORMAT:
                raise StoreError(f"index {location} has format {meta.get('format')}, this version reads {FORMAT}; "
                                 f"rebuild it with: rag ingest ARTICLES... --index milvus://HOST:PORT/NEW_NAME")
            _create_stories(client, f"{name}_stories")  # an index made before story groups gains it
            for suffix in ("passages", "articles", "stories"):
                client.load_collection(f"{name}_{suffix}")
            return meta

        return cls._connected(location, "opening the index", read_meta)

    @classmethod
    def create(cls, location: str, embedder: str, dim: int) -> "MilvusIndex":
        """Create the collections (those a crashed create left are reused); the description is
        written last, so an index exists only once it is whole."""
        def read_meta(client, name: str) -> dict:
            meta = cls._read_meta(client, name)
            if meta is not None:
                if meta.get("embedder") != embedder or int(meta.get("dim", 0)) != int(dim):
                    raise StoreError(f"the index {location} exists with the embedder {meta.get('embedder')!r} "
                                     f"(dimension {meta.get('dim')})")
            else:
                analyzer = _create_passages(client, f"{name}_passages", int(dim))
                _create_articles(client, f"{name}_articles")
                meta = {"format": FORMAT, "embedder": embedder, "dim": int(dim), "analyzer": analyzer,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                _create_plain(client, f"{name}_meta", [("key", 64), ("value", VARCHAR_MAX)], "key")
                client.upsert(f"{name}_meta", [{"key": "index", "value": json.dumps(meta), "_v": [0.0, 0.0]}])
            _create_stories(client, f"{name}_stories")
            for suffix in ("passages", "articles", "meta", "stories"):
                client.load_collection(f"{name}_{suffix}")
            return meta

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
        """``(sha, path)`` of a stored article, or None."""
        with self._errors("reading an article"):
            head = self._latest(self._article_rows(article_id, ["sha", "path", "added"], part0=True))
        return (head["sha"], head["path"] or None) if head else None

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
            def stored(article: Article) -> bool | None:
                rows = old_articles.get(article.id, [])
                if not rows:
                    return None
                return sum(r["part"] == 0 for r in rows) == 1 and {r["sha"] for r in rows} == {article.sha}

            statuses, todo = sort_changes(checked, stored)
            if not todo:
                return statuses
            old_passages = self._rows_of(self.passages_name, [a.id for a, *_ in todo], ["id"])
            passages, records = [], []
            for article, chunks, vectors, sentences, sentence_vectors in todo:
                sha = article.sha
                passages += self._passage_rows(article, sha, chunks, vectors, sentences, sentence_vectors)
                records += self._record_rows(article, sha, len(chunks))
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
                self._join_story(article)
        self._changed()
        return statuses

    # ------------------------------------------------------------ story groups

    def _story_rows(self, expr: str, fields: list[str], limit: int | None = None) -> list[dict]:
        return self._query(self.stories_name, expr, ["article_id"] + fields, limit)

    def _join_story(self, article: Article) -> str:
        """As the embedded backend: the story of the closest stored copy (LSH candidates checked on
        their words, those their MinHash rules out unread), else a story of its own; the
        article's key rows replace its old ones."""
        from .. import stories

        mine = stories.words(article.content())
        signature = stories.fingerprint(mine)
        keys = stories.band_keys(signature)
        shared: dict[str, int] = {}
        story_of: dict[str, str] = {}
        # one read while the keys are rare; past PER_KEY rows a key, a bounded read of each (a query
        # has no newest-first order here: any PER_KEY rows of a key shared that widely)
        bound = stories.PER_KEY * len(keys)
        rows = self._story_rows(f"key in [{', '.join(map(str, keys))}]", ["story"], bound)
        if len(rows) >= bound:
            rows = [r for k in keys for r in self._story_rows(f"key == {k}", ["story"], stories.PER_KEY)]
        for r in rows:
            if r["article_id"] != article.id:
                shared[r["article_id"]] = shared.get(r["article_id"], 0) + 1
                story_of[r["article_id"]] = r["story"]
        candidates = sorted(shared, key=lambda a: (-shared[a], a))[:stories.CANDIDATES]
        heads = {a: rows[0]["minhash"]
                 for a, rows in self._rows_of(self.stories_name, candidates, ["minhash"], "band == 0").items()}
        close = stories.not_ruled_out(signature, [base64.b64decode(heads[a]) if heads.get(a) else None
                                                  for a in candidates])
        best, best_j = None, stories.THRESHOLD
        for aid, maybe in zip(candidates, close):
            if not maybe:
                continue
            other = self.get(aid)
            if other is None:
                continue
            j = stories.jaccard(mine, stories.words(other.content()))
            if j >= best_j:
                best, best_j = story_of[aid], j
        story = best or article.id
        key = article_key(article.id)
        self._delete(self.stories_name, [r["id"] for r in self._rows_of(self.stories_name, [article.id], ["id"]).get(
            article.id, [])])
        now = time.time()
        self.client.insert(self.stories_name, [
            {"id": _hash64("story", article.id, str(b)), "key": k, "band": b, "article_id": article.id,
             "article_key": key, "story": _varchar(story, "the story id"), "added": now,
             "minhash": base64.b64encode(signature.tobytes()).decode("ascii") if b == 0 else "", "_v": [0.0, 0.0]}
            for b, k in enumerate(keys)])
        return story

    def _leave_story(self, article_id: str) -> None:
        """Remove an article's key rows; a story named after it is named after its next article."""
        rows = self._rows_of(self.stories_name, [article_id], ["id"]).get(article_id, [])
        self._delete(self.stories_name, [r["id"] for r in rows])
        members = self._story_rows(f'story == {json.dumps(article_id)}',
                                   ["id", "key", "band", "article_key", "story", "added", "minhash"])
        members = [r for r in members if r["article_id"] != article_id]
        if not members:
            return
        heir = min((r for r in members if r["band"] == 0), key=lambda r: (r["added"], r["article_id"]),
                   default=None)
        if heir is None:
            return
        self.client.upsert(self.stories_name, [{**{k: r[k] for k in ("id", "key", "band", "article_id",
                                                                         "article_key", "added", "minhash")},
                                                 "story": heir["article_id"], "_v": [0.0, 0.0]} for r in members])

    def _groups(self, article_ids: list[str]) -> dict[str, str]:
        """The story group of each article (its own id when it has no key rows)."""
        heads = self._rows_of(self.stories_name, article_ids, ["story"], "band == 0")
        return {a: heads[a][0]["story"] if a in heads else a for a in article_ids}

    def _members(self, groups: list[str]) -> dict[str, list[ArticleInfo]]:
        """The articles of each story group (first stored first), with their listing fields."""
        uniq = sorted(set(groups))
        if not uniq:
            return {}
        rows = self._story_rows(f"band == 0 and story in {json.dumps(uniq, ensure_ascii=False)}", ["story", "added"])
        ids = [r["article_id"] for r in rows]
        heads = {a: self._latest(rs) for a, rs in self._rows_of(
            self.articles_name, ids, ["part", "added", "title", "source", "date", "url", "path", "chunks",
                                      "chars"] + self._dating).items()}
        out: dict[str, list[ArticleInfo]] = {}
        for r in sorted(rows, key=lambda r: (r["added"], r["article_id"])):
            h = heads.get(r["article_id"])
            if h is None:
                continue
            out.setdefault(r["story"], []).append(_info(r["article_id"], h, r["story"]))
        return out

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

    def _passage_rows(self, article: Article, sha: str, chunks: list[Chunk], vectors: np.ndarray,
                      sentences: list[Chunk], sentence_vectors: np.ndarray) -> list[dict]:
        packed = quantize(vectors)
        stored = dequantize(packed, self.dim)  # searched as the int8 codes store it, like the embedded backend
        s_packed = quantize(sentence_vectors) if sentences else np.zeros((0, self.dim + 4), dtype=np.uint8)
        s_span = np.asarray([(s.start, s.end) for s in sentences], dtype=np.int64).reshape(-1, 2)
        s_ids = [_hash64("sentence", article.id, sha, str(i)) for i in range(len(sentences))]
        key = article_key(article.id)
        rows = []
        for seq, c in enumerate(chunks):
            inside = np.nonzero((s_span[:, 0] >= c.start) & (s_span[:, 1] <= c.end))[0]
            text = article.text[c.start:c.end]
            blob = np.concatenate([packed[seq:seq + 1], s_packed[inside]]).tobytes()
            rows.append({
                "id": _hash64("passage", article.id, sha, str(seq)), "article_id": article.id, "article_key": key,
                "seq": seq, "start": c.start, "end": c.end, "title": article.title,
                "text": _varchar(text, f"passage {seq} of the article {article.id!r}"),
                "terms": _varchar(passage_terms(article.title, text), f"the terms of passage {seq} of {article.id!r}"),
                "source": _varchar(article.source or "", "the source"),
                "date": _varchar(article.date or "", "the date"),
                **self._dating_fields(article),
                "sha": sha,
                "sentences": _varchar(json.dumps([[s_ids[i], int(s_span[i, 0]), int(s_span[i, 1])] for i in inside]),
                                      f"the sentences of passage {seq} of {article.id!r}"),
                "vectors": _varchar(base64.b64encode(blob).decode("ascii"),
                                    f"the sentence vectors of passage {seq} of {article.id!r}"),
                "vector": stored[seq].tolist(),
            })
        return rows

    def _dating_fields(self, article: Article | None) -> dict:
        """The _DATING fields of a row (of ``article``; None: a row that is not a listing's)."""
        if not self._dating:
            return {}
        return {"calendar": _varchar((article.calendar or "") if article else "", "the calendar"),
                "date_inferred": bool(article.date_inferred) if article else False}

    def _record_rows(self, article: Article, sha: str, n_chunks: int) -> list[dict]:
        record = json.dumps({"title": article.title, "text": article.text, "source": article.source,
                             "date": article.date, "url": article.url, "path": article.path,
                             "spans": article.content_spans, "date_inferred": article.date_inferred,
                             "calendar": article.calendar, "month_day": article.month_day}, ensure_ascii=False)
        parts = [record[i:i + PART_CHARS] for i in range(0, len(record), PART_CHARS)]
        now, key = time.time(), article_key(article.id)
        rows = []
        for i, data in enumerate(parts):
            head = i == 0
            rows.append({
                "id": _hash64("record", article.id, sha, str(i)), "article_id": article.id, "article_key": key,
                "part": i, "parts": len(parts), "sha": sha, "added": now, "data": data,
                "title": article.title if head else "", "source": (article.source or "") if head else "",
                "date": (article.date or "") if head else "",
                "url": _varchar(article.url or "", "the url") if head else "",
                "path": _varchar(article.path or "", "the path") if head else "",
                "chunks": n_chunks if head else 0, "chars": len(article.text) if head else 0, "_v": [0.0, 0.0],
                **self._dating_fields(article if head else None),
            })
        return rows

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
                passages[pid] = self._passage(pid, h["entity"], bm25.get(pid, 0.0))
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

    def _passage(self, pid: int, e: dict, bm25: float) -> Passage:
        sent = tuple((int(a), int(b), int(c)) for a, b, c in json.loads(e["sentences"]))
        vecs = dequantize(np.frombuffer(base64.b64decode(e["vectors"]), dtype=np.uint8), self.dim)
        return Passage(pid, e["article_id"], e["title"], int(e["start"]), int(e["end"]), e["text"], vecs[0], sent,
                       vecs[1:1 + len(sent)], bm25, e.get("source") or None, e.get("date") or None,
                       bool(e.get("date_inferred")), e.get("calendar") or None)

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
        return [_info(r["article_id"], r, groups[r["article_id"]]) for r in chosen]

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


def _info(article_id: str, head: dict, group: str) -> ArticleInfo:
    """An article's listing from the part-0 row of its record (empty strings are absent values)."""
    return ArticleInfo(article_id, head["title"], head["source"] or None, head["date"] or None, head["url"] or None,
                       head["path"] or None, int(head["chunks"]), int(head["chars"]),
                       bool(head.get("date_inferred")), head.get("calendar") or None, group=group)


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


@contextmanager
def _wrap(location: str, doing: str) -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except _client_errors() as exc:
        raise StoreError(f"Milvus index {location}: {doing} failed ({_reason(exc)}); check that the Milvus server "
                         f"is running and reachable, then try again") from None


# ------------------------------------------------------------------ schema

def _create_passages(client, name: str, dim: int) -> str:
    """The passages collection; returns the analyzer of its terms field."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    # Our terms are already normalized and space-separated: a whitespace tokenizer takes them as
    # they are. Milvus Lite has only "standard" (\w+, lowercased), which splits them the same way
    # (terms are runs of word characters) up to case.
    lite = "lite" in str(client.get_server_version()).lower()
    analyzer = "standard" if lite else "whitespace"
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("article_id", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("article_key", DataType.INT64)
    schema.add_field("seq", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("title", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("text", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("terms", DataType.VARCHAR, max_length=VARCHAR_MAX, enable_analyzer=True, enable_match=True,
                     analyzer_params={"tokenizer": analyzer})
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("source", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("date", DataType.VARCHAR, max_length=VARCHAR_MAX)
    _add_dating(schema)
    schema.add_field("sha", DataType.VARCHAR, max_length=64)
    schema.add_field("sentences", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("vectors", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_function(Function(name="terms_bm25", function_type=FunctionType.BM25, input_field_names=["terms"],
                                 output_field_names=["sparse"]))
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="HNSW", metric_type="IP", params=HNSW)
    index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25)
    for f in ("article_key", "source", "date"):
        index.add_index(field_name=f, index_type="INVERTED")
    _make(client, name, schema, index)
    return analyzer


def _add_dating(schema) -> None:
    from pymilvus import DataType

    schema.add_field("calendar", DataType.VARCHAR, max_length=32)
    schema.add_field("date_inferred", DataType.BOOL)


def _create_articles(client, name: str) -> None:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("article_id", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("article_key", DataType.INT64)
    schema.add_field("part", DataType.INT64)
    schema.add_field("parts", DataType.INT64)
    schema.add_field("sha", DataType.VARCHAR, max_length=64)
    schema.add_field("added", DataType.DOUBLE)
    schema.add_field("data", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("title", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("source", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("date", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("url", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("path", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("chunks", DataType.INT64)
    schema.add_field("chars", DataType.INT64)
    _add_dating(schema)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
    index = client.prepare_index_params()
    index.add_index(field_name="_v", index_type="FLAT", metric_type="L2")
    for f in ("article_key", "part"):
        index.add_index(field_name=f, index_type="INVERTED")
    _make(client, name, schema, index)


def _create_stories(client, name: str) -> None:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("key", DataType.INT64)
    schema.add_field("band", DataType.INT64)
    schema.add_field("article_id", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("article_key", DataType.INT64)
    schema.add_field("story", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("added", DataType.DOUBLE)
    schema.add_field("minhash", DataType.VARCHAR, max_length=512)  # base64 of the 64 values, on band 0
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index(field_name="_v", index_type="FLAT", metric_type="L2")
    for f in ("key", "article_key", "band", "story"):
        index.add_index(field_name=f, index_type="INVERTED")
    _make(client, name, schema, index)


def _create_plain(client, name: str, fields: list[tuple[str, int]], primary: str) -> None:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    for f, length in fields:
        schema.add_field(f, DataType.VARCHAR, max_length=length, is_primary=f == primary)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index(field_name="_v", index_type="FLAT", metric_type="L2")
    _make(client, name, schema, index)


def _make(client, name: str, schema, index) -> None:
    """Create a collection and its indexes unless there (another process creating the same index
    at the same moment, or a create that was interrupted, is fine). The indexes of an empty
    collection are ready at once: not waiting for them (pymilvus polls every 0.5 s) saves seconds
    per index; ``load_collection`` waits for what it needs."""
    if not client.has_collection(name):
        try:
            client.create_collection(name, schema=schema, consistency_level="Strong")
        except _client_errors():
            if not client.has_collection(name):
                raise
    if not client.list_indexes(name):
        try:
            client.create_index(name, index, sync=False)
        except _client_errors():
            if not client.list_indexes(name):
                raise
