"""The model-free stand-ins (rag.hashed) that the core test tier builds with: the term-overlap reader
reads as the reader's interface says, and the answer step runs on them end to end."""

from __future__ import annotations

import numpy as np

from rag.answer import candidate_sentences, compose
from rag.hashed import HashedEmbedder, TermReader

from conftest import SEED_ID

Q = "پاکستان از طالبان چه انتظاری دارد؟"


def test_the_term_reader_scores_by_the_share_of_the_question_held():
    r = TermReader()
    q = "اسحاق دار در کوالالامپور سخنرانی کرد؟"
    items = [("سفر", "اسحاق دار در كوالالامپور سخنرانی کرد."),  # Arabic kaf: the same terms
             ("سفر", "اسحاق دار به کابل رفت."),
             ("بازار", "قیمت طلا امروز بالا رفت.")]
    logits = r.logits(q, items)
    assert logits.dtype == np.float32 and logits.shape == (3,)
    assert logits[0] > 0 > logits[2] and logits[0] > logits[1] > logits[2]
    # further values of an item (the answer step's sentence before) are not read
    assert np.array_equal(r.logits(q, [(*it, "جمله قبلی درباره کوالالامپور") for it in items]), logits)
    assert r.logits(q, []).shape == (0,)
    assert r.question_model is None and r.question_vectors([q]) is None


def test_the_term_reader_reads_questions_through_the_embedder_it_is_given():
    emb = HashedEmbedder()
    r = TermReader(emb)
    v = r.question_vectors([Q, "کابل"])
    assert v.shape == (2, emb.dim) and np.allclose(v, emb.embed_queries([Q, "کابل"]))


def test_the_answer_step_runs_on_the_fake_parts(fake_seed_rag):
    """Retrieval, candidates read through the (fake) question adapter, the reader's logits, the
    decision and the citations, without a model: a question in the article's words is answered
    with exact slices, one it does not hold is refused."""
    retrieved = fake_seed_rag.retriever.retrieve(Q, 5)
    reader = fake_seed_rag.reader()
    adapted, _ = candidate_sentences(Q, retrieved, fake_seed_rag.embedder, fake_seed_rag.config, reader)
    plain, _ = candidate_sentences(Q, retrieved, fake_seed_rag.embedder, fake_seed_rag.config)
    assert [c.text for c in adapted] and sorted(c.text for c in adapted) == sorted(c.text for c in plain)
    ans = compose(Q, retrieved, embedder=fake_seed_rag.embedder, reader=reader)
    assert ans == fake_seed_rag.ask(Q)
    assert not ans.abstained and ans.citations and "طالبان" in ans.citations[0].quote
    text = fake_seed_rag.article(SEED_ID).text
    assert all(text[c.start:c.end] == c.quote and c.article_id == SEED_ID for c in ans.citations)
    off = fake_seed_rag.ask("قیمت طلا در بازار تهران امروز چقدر است؟")
    assert off.abstained and not off.citations
