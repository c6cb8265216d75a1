"""The trained reader (rag/reader/): it ships, loads offline, is verified, reads better than the
cosines in a case they get wrong, and the answer step uses it (graded answers, abstention, the
shipped article's own questions)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag import RAG
from rag.answer import compose
from rag.articles import Article
from rag.config import DEFAULT
from rag.reader import (ADAPTER_FILE, MANIFEST, QUESTION_DIR, QUESTION_MANIFEST, READER_DIR, ReaderError, Reader,
                        check_files, load_reader)
from rag.ui import render_answer

from conftest import SEED_ID

QUESTIONS = [json.loads(line) for line in
             (Path(__file__).parent / "data" / "seed_questions.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip()]


def test_the_shipped_reader_is_small_and_matches_its_checksums():
    manifest = check_files()
    assert ADAPTER_FILE in manifest["sha256"]
    size = sum((READER_DIR / name).stat().st_size for name in manifest["sha256"])
    assert size <= 10 * 1024 * 1024, size
    assert manifest["trained_by"].startswith("python bench/train_reader.py")


@pytest.mark.model
def test_the_question_adapter_ships_small_and_verified():
    manifest = check_files(QUESTION_DIR, QUESTION_MANIFEST)
    assert ADAPTER_FILE in manifest["sha256"]
    assert sum((QUESTION_DIR / name).stat().st_size for name in manifest["sha256"]) <= 2 * 1024 * 1024
    assert manifest["trained_by"].startswith("python bench/train_question_adapter.py")
    assert load_reader().question_model is not None


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_changed_reader_file_is_refused_by_name(tmp_path):
    copy = tmp_path / "reader"
    shutil.copytree(READER_DIR, copy)
    _corrupt(copy / QUESTION_DIR.name / ADAPTER_FILE)
    with pytest.raises(ReaderError, match=f"question/{ADAPTER_FILE}"):
        Reader(copy)
    _corrupt(copy / ADAPTER_FILE)
    with pytest.raises(ReaderError, match=f"reader/{ADAPTER_FILE}"):
        Reader(copy)
    (copy / MANIFEST).unlink()
    with pytest.raises(ReaderError, match="manifest"):
        check_files(copy)


# From persianqa_test's held-out half (rag.eval.part_of): the cosine of question and sentence puts
# a sentence that shares the question's words first; the reader puts the one that answers first.
COSINE_WRONG = {
    "question": "کدام یک از شاگرد های فارابی مسیحی بود؟",
    "title": "فارابی",
    "sentences": [
        "ابونصر محمد بن محمد طرخانی ملقب به فارابی، در حدود سال ۲۵۷هجری قمری/ ۸۷۰میلادی در دهکدهٔ «وسیج» از ناحیهٔ پاراب (فاراب) در فرارود (شهر اُترار کنونی در جنوب قزاقستان) یا پاریاب (فاریاب) خراسان در افغانستان کنونی به دنیا آمد.",
        "دهخدا به نقل از بدیع الزمان فروزانفر می‌نویسد: «اسم پدر او طرخان و نام جدش اوزلوغ است (اما در دانشنامه ایرانیکا رد شده است). نام ازلغ و طرخان هر دو نامهای سغدی ایرانی هستند که نام طرخان از سغدی به ترکی وارد شده است. درشرح زندگی فارابی مطلبی که بر جریان واقعی زندگی دوران طفولیت و جوانی وی باشد در کتاب‌ها وجود ندارد. ابن ابی اصیبعه دو خبر متناقض دربارهٔ او نقل می‌کند: اول اینکه فارابی در آغاز کار نگهبان باغی در دمشق بود و دوم اینکه، در عنفوان جوانی به قضاوت مشغول بود و چون به معارف دیگر آشنا شد، قضاوت را ترک کرد و با تمام میل به طرف معارف دیگر روی آورد.» در جوانی برای تحصیل به بغداد رفت و نزد «متی بن یونس» به فراگرفتن منطق و فلسفه پرداخت.",
        "سپس به حرّان سفر کرد و به شاگردی «یوحنا بن حیلان» درآمد.",
        "از آغاز کار، هوش سرشار و علم آموزی وی سبب شد که همه موضوعاتی را که تدریس می‌شد، به خوبی فرا گیرد.",
        "به زودی نام او به عنوان فیلسوف و دانشمند شهرت یافت و چون به بغداد بازگشت، گروهی از شاگردان، گرد او فراهم آمدند که «یحیی بن عدی» فیلسوف مسیحی یکی از آنان بود."
    ],
    "answer": 4
}


@pytest.mark.model
def test_the_reader_ranks_the_answer_first_where_the_cosine_does_not():
    from rag.embedders import load_embedder

    case = COSINE_WRONG
    emb = load_embedder(None)
    q = emb.embed_queries([case["question"]])[0]
    cos = emb.embed_passages(case["sentences"]) @ q
    assert int(np.argmax(cos)) != case["answer"]
    logits = load_reader().logits(case["question"], [(case["title"], s) for s in case["sentences"]])
    assert int(np.argmax(logits)) == case["answer"], logits


# From xquad_dev's held-out half, an English question over Persian sentences: the plain question
# vector is nearest the sentence on toy engines; through the question adapter, nearest the one on
# the usual source ("usually from burning fuel").
PLAIN_QUESTION_WRONG = {
    "question": "What is the usual source of heat for boiling water in the steam engine?",
    "sentences": [
        "گرمای مورد نیاز برای جوشاندن آب و تأمین بخار را می توان از منابع مختلفی به دست آورد ، معمولاً از سوختن مواد قابل احتراق با تأمین مناسب هوا در یک فضای بسته (به اصطلاح محفظه احتراق متنوع ، منقل).",
        "در بعضی موارد منبع گرما یک راکتور هسته ای ، انرژی زمین گرمایی ، انرژی خورشیدی یا گرمای اتلاف شده از یک موتور احتراق داخلی یا فرآیند صنعتی است.",
        "در مورد موتورهای بخار مدل یا اسباب بازی ، منبع گرما می تواند یک عنصر گرم کننده الکتریکی باشد.",
    ],
    "answer": 0,
}


@pytest.mark.model
def test_the_question_adapter_puts_the_answer_nearest_where_the_plain_question_does_not():
    from rag.embedders import load_embedder

    case = PLAIN_QUESTION_WRONG
    emb = load_embedder(None)
    stored = emb.embed_passages(case["sentences"])  # the sentence vectors as an index stores them
    plain = stored @ emb.embed_queries([case["question"]])[0]
    adapted = stored @ load_reader().question_vectors([case["question"]])[0]
    assert int(np.argmax(plain)) != case["answer"]
    assert int(np.argmax(adapted)) == case["answer"], adapted


def _steam_index(tmp_path):
    """An index of PLAIN_QUESTION_WRONG's sentences as one article, its question and what it retrieves."""
    rag = RAG(tmp_path / "ix", create=True)
    rag.add_articles([Article(id="steam", title="موتور بخار", text=" ".join(PLAIN_QUESTION_WRONG["sentences"]))])
    question = PLAIN_QUESTION_WRONG["question"]
    return rag, question, rag.retriever.retrieve(question, 5)


@pytest.mark.model
def test_the_answer_step_ranks_by_the_question_adapter_unless_turned_off(tmp_path):
    from rag.answer import candidate_sentences

    rag, question, retrieved = _steam_index(tmp_path)
    first = PLAIN_QUESTION_WRONG["sentences"][PLAIN_QUESTION_WRONG["answer"]]
    on, related_on = candidate_sentences(question, retrieved, rag.embedder, rag.config, rag.reader())
    off, related_off = candidate_sentences(question, retrieved, rag.embedder,
                                           rag.config.replace(question_adapter=False), rag.reader())
    plain, _ = candidate_sentences(question, retrieved, rag.embedder, rag.config)
    assert on[0].text == first
    assert [c.text for c in off] == [c.text for c in plain] and off[0].text != first
    assert related_on == related_off  # abstention's confidence keeps the plain cosines


@pytest.mark.model
def test_a_reader_without_a_question_adapter_ranks_by_the_plain_question(tmp_path):
    from rag.answer import candidate_sentences

    folder = tmp_path / "reader"
    shutil.copytree(READER_DIR, folder, ignore=shutil.ignore_patterns(QUESTION_DIR.name))
    reader = Reader(folder)
    assert reader.question_model is None and reader.question_vectors(["a question"]) is None
    rag, question, retrieved = _steam_index(tmp_path)
    without, _ = candidate_sentences(question, retrieved, rag.embedder, rag.config, reader)
    plain, _ = candidate_sentences(question, retrieved, rag.embedder, rag.config)
    assert [(c.text, c.score) for c in without] == [(c.text, c.score) for c in plain]


@pytest.mark.model
def test_the_answer_step_gives_each_candidate_the_sentence_before_it(tmp_path):
    from rag.answer import candidate_sentences

    rag = RAG(tmp_path / "ix", create=True)
    rag.add_articles([PLANTED])
    question = "بیشترین بخش بودجه شهرداری تبریز صرف چه خواهد شد؟"
    cands, _ = candidate_sentences(question, rag.retriever.retrieve(question, 5), rag.embedder, rag.config)
    sentences = sorted((c.start, c.end) for c in cands)
    assert len(sentences) == 4
    for c in cands:
        i = sentences.index((c.start, c.end))
        assert c.before == (PLANTED.text[slice(*sentences[i - 1])] if i else "")


PLANTED = Article(id="budget", title="بودجه شهرداری تبریز", text=(
    "شورای شهر تبریز بودجه سال آینده شهرداری را تصویب کرد. "
    "بر پایه این مصوبه، سهم طرح‌های عمرانی از بودجه به شصت درصد رسید. "
    "رئیس شورا گفت بیشترین بخش این بودجه صرف ساخت خط دوم قطار شهری خواهد شد. "
    "شهردار تبریز از تصویب بودجه استقبال کرد و خواستار همکاری دولت شد."))


@pytest.mark.model
def test_a_planted_unanswerable_question_is_refused_with_evidence_and_an_answerable_one_quoted(tmp_path):
    rag = RAG(tmp_path / "ix", create=True)
    rag.add_articles([PLANTED])
    ok = rag.ask("بیشترین بخش بودجه شهرداری تبریز صرف چه خواهد شد؟")
    assert not ok.abstained and "قطار شهری" in ok.citations[0].quote
    # about the same budget, but the article does not say who voted against it
    no = rag.ask("چند نفر از اعضای شورای شهر تبریز با بودجه شهرداری مخالفت کردند؟")
    assert no.abstained and not no.citations
    assert no.confidence < DEFAULT.answer_below["fa"]
    # graded: related passages exist, so the closest sentences come as evidence, verified slices
    assert 1 <= len(no.evidence) <= DEFAULT.evidence_quotes
    for c in no.evidence:
        assert PLANTED.text[c.start:c.end] == c.quote
    data = no.to_json()
    assert data["abstained"] is True and data["citations"] == []
    assert {"n", "quote", "article_id", "title", "start", "end", "score"} <= set(data["evidence"][0])
    # nothing related at all: a plain refusal, no evidence
    off = rag.ask("What is the boiling point of liquid nitrogen?")
    assert off.abstained and not off.evidence


@pytest.mark.model
def test_a_graded_refusal_renders_its_evidence_set_apart(tmp_path):
    rag = RAG(tmp_path / "ix", create=True)
    rag.add_articles([PLANTED])
    no = rag.ask("چند نفر از اعضای شورای شهر تبریز با بودجه شهرداری مخالفت کردند؟")
    html = render_answer(no, 3)
    lead, _, rest = html.partition('class="rag-evidence"')
    assert "rag-abstained" in lead and rest, html
    for c in no.evidence:
        assert f"rag-n-{c.n}" in rest and c.quote[:10] in rest
    # user text stays escaped inside the evidence block
    assert "<script" not in rest


def _hit(answer, answers: list[str], n: int = 3) -> bool:
    from rag.persian import normalize_text

    keys = [normalize_text(a) for a in answers]
    return any(k in normalize_text(c.quote) for c in answer.citations[:n] for k in keys)


@pytest.mark.model
def test_the_shipped_articles_own_questions(seed_rag):
    """Twenty questions a reader of the shipped article would ask (both languages, rephrasings
    included) and six it does not answer. The issue's target is all twenty quoted (hit@3) and five
    of six refused; the shipped reader reaches 20 and 3 (the cosine answer step: 13 and 1;
    bench/seed_questions.py, bench/results/reader.md); this holds it there."""
    assert len([q for q in QUESTIONS if q["answers"]]) == 20 and len(QUESTIONS) == 26
    quoted = [q["id"] for q in QUESTIONS if q["answers"] and _hit(seed_rag.ask(q["question"]), q["answers"])]
    refused = [q["id"] for q in QUESTIONS if not q["answers"] and seed_rag.ask(q["question"]).abstained]
    assert len(quoted) >= 20, quoted
    assert len(refused) >= 3, refused
    # the rephrasings the issue found refused or misquoted, the agency in both languages, and s17,
    # which the reader before this one refused
    assert {"s01", "s03", "s05", "s06", "s10", "s12", "s13", "s17"} <= set(quoted), quoted
    assert all(c.article_id == SEED_ID for q in QUESTIONS[:2] for c in seed_rag.ask(q["question"]).citations)


@pytest.mark.model
def test_without_the_reader_the_cosine_answer_step_still_works(seed_rag):
    retrieved = seed_rag.retriever.retrieve("اسحاق دار در کدام شهر سخنرانی کرد؟", 5)
    ans = compose("اسحاق دار در کدام شهر سخنرانی کرد؟", retrieved, embedder=seed_rag.embedder)
    assert not ans.abstained and any("کوالالامپور" in c.quote for c in ans.citations)
