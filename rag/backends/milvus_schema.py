"""The collections of a Milvus index (``rag.backends.milvus``), as tables of fields, and making
them. pymilvus is imported only when a collection is made.

A collection's fields are those it was made with (Milvus Lite cannot add a field to a collection):
one made before the dating fields lacks them, and the index reads its dates as written in no known
calendar (``MilvusIndex`` looks at the fields on open). The stories collection, made after the
others, is made on open when an index lacks it.
"""

from __future__ import annotations

VARCHAR_MAX = 65535           # bytes in a Milvus VARCHAR
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


def client_errors() -> tuple:
    """The exception types of a failed Milvus call."""
    from pymilvus.exceptions import MilvusException

    errors: tuple = (MilvusException, ConnectionError, TimeoutError)
    try:
        import grpc

        errors += (grpc.RpcError,)
    except ImportError:
        pass
    return errors


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


def create_passages(client, name: str, dim: int) -> str:
    """The passages collection; returns the analyzer of its terms field."""
    from pymilvus import Function, FunctionType

    # Our terms are already normalized and space-separated: a whitespace tokenizer takes them as
    # they are. Milvus Lite has only "standard" (\w+, lowercased), which splits them the same way
    # (terms are runs of word characters) up to case.
    lite = "lite" in str(client.get_server_version()).lower()
    analyzer = "standard" if lite else "whitespace"
    schema = _schema(PASSAGES, terms={"analyzer_params": {"tokenizer": analyzer}}, vector={"dim": dim})
    schema.add_function(Function(name="terms_bm25", function_type=FunctionType.BM25, input_field_names=["terms"],
                                 output_field_names=["sparse"]))
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="HNSW", metric_type="IP", params=HNSW)
    index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25)
    for f in ("article_key", "source", "date"):
        index.add_index(field_name=f, index_type="INVERTED")
    _make(client, name, schema, index)
    return analyzer


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
