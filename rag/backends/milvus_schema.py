"""The collections of a Milvus index (``rag.backends.milvus``), as tables of fields, and making
them; the ids and values rows carry. pymilvus is imported only when a collection is made.

A collection's fields are those it was made with (Milvus Lite cannot add a field to a collection):
one made before the dating fields lacks them, and the index reads its dates as written in no known
calendar (``MilvusIndex`` looks at the fields on open). Which collections an index has is its
migrations' doing (``HISTORY``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import numpy as np

from ..articles import Article
from ..chunking import Chunk
from .base import ArticleInfo, Passage, StoreError, dequantize, passage_terms, quantize
from .history import History
from .milvus_client import client_errors

VARCHAR_MAX = 65535           # bytes in a Milvus VARCHAR
PART_CHARS = 16_000           # characters of an article record per row (≤ 4 bytes each in UTF-8)
HNSW = {"M": 16, "efConstruction": 200}
BM25 = {"bm25_k1": 1.2, "bm25_b": 0.75}   # as SQLite FTS5's bm25() in the embedded backend

# (name, pymilvus DataType name, options); a VARCHAR is VARCHAR_MAX bytes unless its options say
KEY = [("id", "INT64", {"is_primary": True}), ("article_id", "VARCHAR", {}), ("article_key", "INT64", {})]
PASSAGES = KEY + [("seq", "INT64", {}), ("start", "INT64", {}), ("end", "INT64", {}), ("title", "VARCHAR", {}),
                  ("text", "VARCHAR", {}), ("terms", "VARCHAR", {"enable_analyzer": True, "enable_match": True}),
                  ("sparse", "SPARSE_FLOAT_VECTOR", {}), ("source", "VARCHAR", {}), ("date", "VARCHAR", {}),
                  "dating", ("sha", "VARCHAR", {"max_length": 64}), ("sentences", "VARCHAR", {}),
                  ("vectors", "VARCHAR", {}), ("vector", "FLOAT_VECTOR", {})]
ARTICLES = KEY + [("part", "INT64", {}), ("parts", "INT64", {}), ("sha", "VARCHAR", {"max_length": 64}),
                  ("added", "DOUBLE", {}), ("data", "VARCHAR", {}), ("title", "VARCHAR", {}),
                  ("source", "VARCHAR", {}), ("date", "VARCHAR", {}), ("url", "VARCHAR", {}),
                  ("path", "VARCHAR", {}), ("chunks", "INT64", {}), ("chars", "INT64", {}), "dating"]
STORIES = [("id", "INT64", {"is_primary": True}), ("key", "INT64", {}), ("band", "INT64", {}),
           ("article_id", "VARCHAR", {}), ("article_key", "INT64", {}), ("story", "VARCHAR", {}),
           ("added", "DOUBLE", {}), ("minhash", "VARCHAR", {"max_length": 512})]  # base64 of 64 values, on band 0
META = [("key", "VARCHAR", {"max_length": 64, "is_primary": True}), ("value", "VARCHAR", {})]
# How a date was written: its calendar and whether its year was inferred.
DATING = [("calendar", "VARCHAR", {"max_length": 32}), ("date_inferred", "BOOL", {})]


def dating_fields() -> list:
    return DATING


def _schema(fields: list, **more):
    """A schema of ``fields`` ("dating": the DATING fields); ``more``: options by field name.
    Every collection has a vector field (Milvus wants one): a 2-float ``_v`` where none is named."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    expanded = [f for item in fields for f in (dating_fields() if item == "dating" else [item])]
    if not any(kind.endswith("FLOAT_VECTOR") and kind != "SPARSE_FLOAT_VECTOR" for _, kind, _ in expanded):
        expanded.append(("_v", "FLOAT_VECTOR", {"dim": 2}))
    for name, kind, options in expanded:
        options = {**({"max_length": VARCHAR_MAX} if kind == "VARCHAR" else {}), **options, **more.get(name, {})}
        schema.add_field(name, getattr(DataType, kind), **options)
    return schema


def _plain_index(client, inverted: tuple[str, ...]):
    """Index parameters of a collection read by filters only (the ``_v`` vector is never searched)."""
    index = client.prepare_index_params()
    index.add_index(field_name="_v", index_type="FLAT", metric_type="L2")
    for f in inverted:
        index.add_index(field_name=f, index_type="INVERTED")
    return index


def analyzer(client) -> str:
    """The tokenizer of the terms field. Our terms are already normalized and space-separated: a
    whitespace tokenizer takes them as they are. Milvus Lite has only "standard" (runs of word
    characters, lowercased), which splits them the same way (terms are such runs) up to case."""
    return "standard" if "lite" in str(client.get_server_version()).lower() else "whitespace"


def create_passages(client, name: str, dim: int, tokenizer: str) -> None:
    """The passages collection, its terms field split by ``tokenizer``."""
    from pymilvus import Function, FunctionType

    schema = _schema(PASSAGES, terms={"analyzer_params": {"tokenizer": tokenizer}}, vector={"dim": dim})
    schema.add_function(Function(name="terms_bm25", function_type=FunctionType.BM25, input_field_names=["terms"],
                                 output_field_names=["sparse"]))
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="HNSW", metric_type="IP", params=HNSW)
    index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25)
    for f in ("article_key", "source", "date"):
        index.add_index(field_name=f, index_type="INVERTED")
    _make(client, name, schema, index)


def create_articles(client, name: str) -> None:
    _make(client, name, _schema(ARTICLES), _plain_index(client, ("article_key", "part")))


def create_stories(client, name: str) -> None:
    _make(client, name, _schema(STORIES), _plain_index(client, ("key", "article_key", "band", "story")))


def create_meta(client, name: str) -> None:
    _make(client, name, _schema(META), _plain_index(client, ()))


def _make(client, name: str, schema, index) -> None:
    """Create a collection and its indexes unless there (another process creating the same index
    at the same moment, or a create that was interrupted, is fine). The indexes of an empty
    collection are ready at once: not waiting for them (pymilvus polls every 0.5 s) saves seconds
    per index; ``load_collection`` waits for what it needs."""
    if not client.has_collection(name):
        try:
            client.create_collection(name, schema=schema, consistency_level="Strong")
        except client_errors():
            if not client.has_collection(name):
                raise
    if not client.list_indexes(name):
        try:
            client.create_index(name, index, sync=False)
        except client_errors():
            if not client.list_indexes(name):
                raise


# ------------------------------------------------------------------ migrations

# The index's history: as the embedded backend's, recorded in COLLECTION_meta (key "_migrations":
# number -> when). Milvus has no transactions, so each migration makes what is not there yet and is
# recorded after it ran; Milvus Lite cannot add a field, so fields are never migrated (a collection
# made before the dating fields lacks them, and the index reads its dates as written).
HISTORY = History()


@HISTORY
def m001_collections(client, name: str, dim: int) -> None:
    """The passages, articles and meta collections."""
    create_passages(client, f"{name}_passages", dim, analyzer(client))
    create_articles(client, f"{name}_articles")
    create_meta(client, f"{name}_meta")


@HISTORY
def m002_stories(client, name: str, dim: int) -> None:
    """The story groups' collection (``rag.backends.milvus_stories``); an index made before it has
    its older articles each in a story of its own until they are ingested again."""
    create_stories(client, f"{name}_stories")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def migrate(client, name: str, dim: int, done: dict, where: str, record: bool = True) -> None:
    """Run the migrations not in ``done`` (number -> when, as recorded), recording each after it ran."""
    for number, _, fn in HISTORY.pending({int(n) for n in done}, where):
        fn(client, name, dim)
        done[str(number)] = now()
        if record:
            client.upsert(f"{name}_meta", [{"key": "_migrations", "value": json.dumps(done), "_v": [0.0, 0.0]}])



# ------------------------------------------------------------------ rows

def hash64(*parts: str) -> int:
    """A positive int64 from ``parts`` (blake2b): ids that writers on different machines agree on."""
    h = hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(h.digest(), "big") & 0x7FFF_FFFF_FFFF_FFFF


def article_key(article_id: str) -> int:
    return hash64("article", article_id)


def varchar(value: str, what: str) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > VARCHAR_MAX:
        raise StoreError(f"{what} is longer than a Milvus VARCHAR holds ({VARCHAR_MAX} bytes)")
    return value


def article_info(article_id: str, head: dict, group: str) -> ArticleInfo:
    """An article's listing from the part-0 row of its record (empty strings are absent values)."""
    return ArticleInfo(article_id, head["title"], head["source"] or None, head["date"] or None, head["url"] or None,
                       head["path"] or None, int(head["chunks"]), int(head["chars"]),
                       bool(head.get("date_inferred")), head.get("calendar") or None, group=group)


def passage_rows(article: Article, sha: str, chunks: list[Chunk], vectors: np.ndarray,
                 sentences: list[Chunk], sentence_vectors: np.ndarray, dim: int, dating: bool) -> list[dict]:
    """The rows of an article's passages (``dating``: the collection has the DATING fields)."""
    packed = quantize(vectors)
    stored = dequantize(packed, dim)  # searched as the int8 codes store it, like the embedded backend
    s_packed = quantize(sentence_vectors) if sentences else np.zeros((0, dim + 4), dtype=np.uint8)
    s_span = np.asarray([(s.start, s.end) for s in sentences], dtype=np.int64).reshape(-1, 2)
    s_ids = [hash64("sentence", article.id, sha, str(i)) for i in range(len(sentences))]
    key = article_key(article.id)
    rows = []
    for seq, c in enumerate(chunks):
        inside = np.nonzero((s_span[:, 0] >= c.start) & (s_span[:, 1] <= c.end))[0]
        text = article.text[c.start:c.end]
        blob = np.concatenate([packed[seq:seq + 1], s_packed[inside]]).tobytes()
        rows.append({
            "id": hash64("passage", article.id, sha, str(seq)), "article_id": article.id, "article_key": key,
            "seq": seq, "start": c.start, "end": c.end, "title": article.title,
            "text": varchar(text, f"passage {seq} of the article {article.id!r}"),
            "terms": varchar(passage_terms(article.title, text), f"the terms of passage {seq} of {article.id!r}"),
            "source": varchar(article.source or "", "the source"),
            "date": varchar(article.date or "", "the date"),
            **dating_values(article, dating),
            "sha": sha,
            "sentences": varchar(json.dumps([[s_ids[i], int(s_span[i, 0]), int(s_span[i, 1])] for i in inside]),
                                  f"the sentences of passage {seq} of {article.id!r}"),
            "vectors": varchar(base64.b64encode(blob).decode("ascii"),
                                f"the sentence vectors of passage {seq} of {article.id!r}"),
            "vector": stored[seq].tolist(),
        })
    return rows

def dating_values(article: Article | None, dating: bool) -> dict:
    """The DATING fields of a row (of ``article``; None: a row that is not a listing's)."""
    if not dating:
        return {}
    return {"calendar": varchar((article.calendar or "") if article else "", "the calendar"),
            "date_inferred": bool(article.date_inferred) if article else False}

def record_rows(article: Article, sha: str, n_chunks: int, dating: bool) -> list[dict]:
    """The rows of an article's record: its JSON in parts, the listing fields on part 0."""
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
            "id": hash64("record", article.id, sha, str(i)), "article_id": article.id, "article_key": key,
            "part": i, "parts": len(parts), "sha": sha, "added": now, "data": data,
            "title": article.title if head else "", "source": (article.source or "") if head else "",
            "date": (article.date or "") if head else "",
            "url": varchar(article.url or "", "the url") if head else "",
            "path": varchar(article.path or "", "the path") if head else "",
            "chunks": n_chunks if head else 0, "chars": len(article.text) if head else 0, "_v": [0.0, 0.0],
            **dating_values(article if head else None, dating),
        })
    return rows


def passage_of(pid: int, e: dict, bm25: float, dim: int) -> Passage:
    """A search hit's passage, from its output fields."""
    sent = tuple((int(a), int(b), int(c)) for a, b, c in json.loads(e["sentences"]))
    vecs = dequantize(np.frombuffer(base64.b64decode(e["vectors"]), dtype=np.uint8), dim)
    return Passage(pid, e["article_id"], e["title"], int(e["start"]), int(e["end"]), e["text"], vecs[0], sent,
                   vecs[1:1 + len(sent)], bm25, e.get("source") or None, e.get("date") or None,
                   bool(e.get("date_inferred")), e.get("calendar") or None)
