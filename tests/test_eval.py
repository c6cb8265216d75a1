"""`rag eval` on a small set in the shared eval format: metrics split by language, cached index."""

import json

import pytest
from click.testing import CliRunner

from rag.cli import main

# retrieval and answer metrics of the real model (English questions over Persian passages)
pytestmark = pytest.mark.model

PASSAGES = [
    {"passage_id": "p-kabul", "title": "کابل", "text": "کابل پایتخت افغانستان است. این شهر در کنار رود کابل قرار دارد."},
    {"passage_id": "p-tehran", "title": "تهران", "text": "تهران پایتخت ایران است. جمعیت تهران حدود نه میلیون نفر است."},
    {"passage_id": "p-rain", "title": "باران", "text": "باران شدید دیروز خیابان‌های شیراز را آب گرفت."},
]
QUESTIONS = [
    {"id": "q1", "question": "پایتخت افغانستان کجاست؟", "answers": ["کابل"], "passage_id": "p-kabul", "lang": "fa"},
    {"id": "q2", "question": "What is the capital of Iran?", "answers": ["تهران"], "passage_id": "p-tehran", "lang": "en"},
    {"id": "q3", "question": "جمعیت کابل چقدر است؟", "answers": [], "passage_id": "p-kabul", "lang": "fa"},
]


def _write_set(tmp_path):
    """PASSAGES and QUESTIONS as an evaluation set folder."""
    data = tmp_path / "set"
    data.mkdir()
    (data / "passages.jsonl").write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in PASSAGES), "utf-8")
    (data / "questions.jsonl").write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in QUESTIONS), "utf-8")
    return data


def test_eval_reports_metrics_by_language_and_reuses_its_index(tmp_path, monkeypatch):
    data = _write_set(tmp_path)
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    res = runner.invoke(main, ["eval", str(data), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out["by_lang"]) == {"en", "fa"} and out["questions"] == 3
    fa, en = out["by_lang"]["fa"], out["by_lang"]["en"]
    assert fa["R@1"] == 1.0 and fa["MRR@10"] == 1.0 and en["R@5"] == 1.0 and 0 < en["MRR@10"] <= 1
    assert fa["n_answerable"] == 1 and fa["n_unanswerable"] == 1
    for m in ("quote_hit@1", "quote_hit@3", "abstained_unanswerable", "abstained_answerable", "p50_ms", "p95_ms"):
        assert m in fa
    assert fa["quote_hit@3"] == 1.0  # the Kabul sentence is quoted
    cached = list((tmp_path / "home" / "eval").iterdir())
    assert len(cached) == 1
    # A second run reuses the cached index: nothing is embedded again.
    again = json.loads(runner.invoke(main, ["eval", str(data), "--json", "--retrieval-only"]).output)
    assert list((tmp_path / "home" / "eval").iterdir()) == cached
    assert again["by_lang"]["fa"]["quote_hit@1"] is None and again["by_lang"]["fa"]["R@1"] == 1.0
    table = runner.invoke(main, ["eval", str(data)]).output
    assert "| fa |" in table and "| en |" in table and "R@5" in table


def test_eval_parts_split_by_passage_and_settings_override_the_config(tmp_path, monkeypatch):
    from rag.config import DEFAULT
    from rag.eval import part_of

    data = _write_set(tmp_path)
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    counts = {}
    for part in ("train", "heldout"):
        res = runner.invoke(main, ["eval", str(data), "--json", "--retrieval-only", "--part", part])
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        assert out["part"] == part
        counts[part] = out["questions"]
    assert counts["train"] + counts["heldout"] == len(QUESTIONS)
    assert counts["heldout"] == sum(part_of(q["passage_id"]) == "heldout" for q in QUESTIONS)
    # the English and Persian forms of one question fall on the same side: the split is by passage
    assert part_of("p-kabul") == part_of("p-kabul") and {part_of(f"x{i}") for i in range(20)} == {"train", "heldout"}
    # --set overrides one weight of rag.config; an unknown name or a bad value is refused by name
    cfg = DEFAULT.with_settings(["reader_candidates=9", 'answer_below={"fa": 0.3, "en": 0.2}', "w_focus=0"])
    assert cfg.reader_candidates == 9 and cfg.answer_below["en"] == 0.2 and cfg.w_focus == 0
    assert DEFAULT.reader_candidates != 9  # frozen: the default is untouched
    bad = runner.invoke(main, ["eval", str(data), "--retrieval-only", "--set", "no_such_weight=1"])
    assert bad.exit_code != 0 and "no_such_weight" in bad.output
