"""Story groups of a Milvus index (``rag.stories`` decides them): ``COLLECTION_stories`` holds one
row per LSH key of an article with its group; the row of band 0 holds its MinHash and is what
group lookups read. Word hashes are not stored (a candidate's words are read from its record)."""

from __future__ import annotations

import base64
import json
import time

import numpy as np

from .. import stories
from .base import ArticleInfo
from .milvus_schema import article_info, article_key, hash64, varchar


class StoryGroups:
    """The story-group methods of ``MilvusIndex`` (a mixin: it reads the index's collections
    through its ``_query``, ``_rows_of``, ``_delete``, ``_latest`` and ``get``)."""

    def _story_rows(self, expr: str, fields: list[str], limit: int | None = None) -> list[dict]:
        return self._query(self.stories_name, expr, ["article_id"] + fields, limit)

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
            out.setdefault(r["story"], []).append(article_info(r["article_id"], h, r["story"]))
        return out


class Stories:
    """Story groups in ``COLLECTION_stories`` (``rag.stories.StoryStore``): one row per LSH key of
    an article, with its group; the row of band 0 holds its MinHash. A ``ref`` is the article id;
    word hashes are not stored (candidates' words are read from their records)."""

    def __init__(self, index: StoryGroups) -> None:
        self.index = index
        self._story: dict[str, str] = {}

    def keys(self, keys: list[int], article_id: str, per_key: int) -> list[tuple[str, str]]:
        # one read while the keys are rare; past per_key rows a key, a bounded read of each (a query
        # has no newest-first order here: any per_key rows of a key shared that widely)
        ix, bound = self.index, per_key * len(keys)
        rows = ix._story_rows(f"key in [{', '.join(map(str, keys))}]", ["story"], bound)
        if len(rows) >= bound:
            rows = [r for k in keys for r in ix._story_rows(f"key == {k}", ["story"], per_key)]
        rows = [r for r in rows if r["article_id"] != article_id]
        self._story.update((r["article_id"], r["story"]) for r in rows)
        return [(r["article_id"], r["article_id"]) for r in rows]

    def signatures(self, refs: list[str]) -> dict[str, tuple[bytes | None, None]]:
        heads = self.index._rows_of(self.index.stories_name, refs, ["minhash"], "band == 0")
        return {a: (base64.b64decode(heads[a][0]["minhash"]) if heads.get(a) and heads[a][0]["minhash"] else None,
                    None) for a in refs}

    def words(self, ref: str) -> set[str] | None:
        other = self.index.get(ref)
        return None if other is None else stories.words(other.content())

    def story(self, ref: str) -> str:
        return self._story[ref]

    def keep(self, article_id: str, ref: str, story: str, signature: np.ndarray, hashes: np.ndarray,
             keys: list[int]) -> None:
        ix, key = self.index, article_key(article_id)
        ix._delete(ix.stories_name, [r["id"] for r in ix._rows_of(ix.stories_name, [article_id], ["id"]).get(
            article_id, [])])
        now = time.time()
        ix.client.insert(ix.stories_name, [
            {"id": hash64("story", article_id, str(b)), "key": k, "band": b, "article_id": article_id,
             "article_key": key, "story": varchar(story, "the story id"), "added": now,
             "minhash": base64.b64encode(signature.tobytes()).decode("ascii") if b == 0 else "", "_v": [0.0, 0.0]}
            for b, k in enumerate(keys)])

    def members(self, story_ids: list[str]) -> dict[str, list[ArticleInfo]]:
        return self.index._members(story_ids)
