"""The Milvus backend's side of ``rag check``: its inventory (record rows, passage rows, whose
vector and BM25 terms live on the row, story key rows) and repairs made from the records."""

from __future__ import annotations

import json

import numpy as np

from .base import passage_terms
from .inventory import Inventory


def _all(ix, collection: str, fields: list[str], filter: str = "") -> list[dict]:
    rows = []
    it = ix.client.query_iterator(collection, batch_size=1000, filter=filter, output_fields=fields)
    try:
        while batch := it.next():
            rows += batch
    finally:
        it.close()
    return rows


def inventory(ix) -> Inventory:
    """What ``ix`` (a ``MilvusIndex``) holds. A passage's vector and terms are on its row, so a
    passage row is the dense side's entry; its lexical entry is right when its terms are those of
    its text (the BM25 function makes the sparse vector from them)."""
    with ix._errors("reading the index for a check"):
        heads: dict[str, list[dict]] = {}
        for r in _all(ix, ix.articles_name, ["article_id", "sha", "chunks", "added"], "part == 0"):
            heads.setdefault(r["article_id"], []).append(r)
        passages = _all(ix, ix.passages_name, ["id", "article_id", "seq", "sha", "title", "text", "terms"])
        keys = _all(ix, ix.stories_name, ["article_id", "band", "story"])
    latest = {a: max(rs, key=lambda r: r["added"]) for a, rs in heads.items()}
    articles = {a: (h["sha"], len(heads[a])) for a, h in latest.items()}
    rows = [(int(p["id"]), p["article_id"], int(p["seq"]),
             p["article_id"] in latest and p["sha"] == latest[p["article_id"]]["sha"]) for p in passages]
    lexicon = {int(p["id"]) for p in passages if p["terms"] == passage_terms(p["title"], p["text"])}
    counts: dict[str, int] = {}
    groups: dict[str, str | None] = {a: None for a in latest}
    for k in keys:
        counts[k["article_id"]] = counts.get(k["article_id"], 0) + 1
        if k["band"] == 0 and k["article_id"] in groups:
            groups[k["article_id"]] = k["story"]
    return Inventory(articles, rows, {r[0] for r in rows}, lexicon, {a: int(h["chunks"]) for a, h in latest.items()},
                     counts, groups)


def stored(ix, article_id: str) -> list[tuple[int, int, int, np.ndarray]]:
    """``(passage id, start, end, vector as stored)`` of the recorded version's passages, in order."""
    with ix._errors("reading an article's passages"):
        head = ix._latest(ix._article_rows(article_id, ["sha", "added"], part0=True))
        rows = ix._rows_of(ix.passages_name, [article_id], ["id", "seq", "sha", "start", "end", "vector"]
                           ).get(article_id, [])
    rows = sorted((r for r in rows if head and r["sha"] == head["sha"]), key=lambda r: (r["seq"], r["id"]))
    return [(int(r["id"]), int(r["start"]), int(r["end"]), np.asarray(r["vector"], dtype=np.float32)) for r in rows]


def finds_itself(ix, passage_id: int, vector: np.ndarray, k: int = 10) -> bool:
    with ix._errors("searching"):
        hits = ix.client.search(ix.passages_name, data=[np.asarray(vector, dtype=np.float32).tolist()],
                                anns_field="vector", limit=k, output_fields=["id"],
                                search_params={"metric_type": "IP", "params": {"ef": 64}})[0]
    return passage_id in {int(h["id"]) for h in hits}


def repair(ix, rewrite: list, orphans: set[str], stale_groups: set[str], lexicon: bool) -> None:
    """Delete every row of ``orphans`` (passages and story keys of articles not in the records) and
    every passage row not of its article's recorded version; rename ``stale_groups`` after their
    first member; store ``rewrite`` (items made from the records) after deleting each article's
    rows, so it is written whole and once. (``lexicon``: nothing apart to remake here, a passage's
    terms are on its row.)"""
    with ix.writing(), ix._errors("repairing the index"):
        inv = inventory(ix)
        ix._delete(ix.passages_name, [p for p, a, _, ok in inv.passages if not ok])
        for at in range(0, len(orphans), 100):  # by id, not key: a stray row's key may be anything
            names = json.dumps(sorted(orphans)[at:at + 100], ensure_ascii=False)
            ix._delete(ix.passages_name, [r["id"] for r in ix._query(ix.passages_name, f"article_id in {names}", ["id"])])
            ix._delete(ix.stories_name, [r["id"] for r in ix._query(ix.stories_name, f"article_id in {names}", ["id"])])
        for story in sorted(stale_groups):
            ix._leave_story(story)
        for item in rewrite:
            aid = item[0].id
            for collection in (ix.passages_name, ix.stories_name, ix.articles_name):
                ix._delete(collection, [r["id"] for r in ix._rows_of(collection, [aid], ["id"]).get(aid, [])])
        if rewrite:
            ix.put_many(rewrite)
        ix._changed()
