"""What ingestion has the model read (rag.api.embed_segmented): passages once with sentences pooled
from them, sentences once with passages averaged from them, or both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag import RAG
from rag.api import READINGS, embed_segmented, passage_texts
from rag.articles import load_file
from rag.chunking import segment_article
from rag.hashed import HashedEmbedder

from conftest import SEED_ID, SEEDS


class SpanHashed(HashedEmbedder):
    """A span-capable embedder whose span vector is the vector of the span's own text: so the
    spans ingestion asks for can be checked against the sentences they should be."""

    def __init__(self) -> None:
        super().__init__(dim=96)
        self.calls: list[int] = []

    def embed_passages_and_spans(self, texts, spans):
        self.calls.append(len(texts))
        return self.embed_passages(texts), [self.embed_passages([t[a:b] for a, b in sp]) for t, sp in zip(texts, spans)]


def _seed_article():
    art = load_file(Path(SEEDS) / f"{SEED_ID}.txt").articles[0]
    return art, segment_article(art, HashedEmbedder().count_tokens, max_tokens=130, overlap_tokens=50)


def test_passages_reading_asks_for_each_sentence_once_at_its_place():
    art, seg = _seed_article()
    assert len(seg.chunks) > 3 and len(seg.sentences) > len(seg.chunks)
    assert any(seg.chunks[i].end > seg.chunks[i + 1].start for i in range(len(seg.chunks) - 1))  # overlaps
    emb = SpanHashed()
    [(pv, sv)] = embed_segmented(emb, [(art, seg)], "passages")
    assert emb.calls == [len(seg.chunks)]  # one read of the passages, nothing else
    assert np.allclose(pv, emb.embed_passages(passage_texts(art, seg)))
    # every sentence's span, cut from its passage text (title first), is that sentence
    assert np.allclose(sv, emb.embed_passages([art.text[s.start:s.end] for s in seg.sentences]))


def test_sentences_reading_averages_passages_from_their_sentences():
    art, seg = _seed_article()
    emb = HashedEmbedder(dim=96)
    [(pv, sv)] = embed_segmented(emb, [(art, seg)], "sentences")
    alone = emb.embed_passages([art.text[s.start:s.end] for s in seg.sentences])
    assert np.allclose(sv, alone)
    title = emb.embed_passages([art.title])[0] * emb.count_tokens(art.title)
    for c, chunk in enumerate(seg.chunks):
        inside = [k for k, s in enumerate(seg.sentences) if chunk.start <= s.start and s.end <= chunk.end]
        want = title + sum(seg.sentence_tokens[k] * alone[k] for k in inside)
        assert np.allclose(pv[c], want / np.linalg.norm(want), atol=1e-6)


def test_every_reading_builds_a_working_index(tmp_path, seeds_dir):
    shapes = set()
    for reading in READINGS:
        r = RAG(tmp_path / reading, create=True, embedder=HashedEmbedder(dim=96), reading=reading, reader=False)
        report = r.ingest([seeds_dir])
        shapes.add((r.count(), report.tokens))
        assert r.search("کوالالامپور").hits
    assert len(shapes) == 1  # same passages, same tokens of article text whatever is read
    with pytest.raises(ValueError, match="unknown reading"):
        RAG(tmp_path / "x", create=True, embedder=HashedEmbedder(dim=96), reading="words")
