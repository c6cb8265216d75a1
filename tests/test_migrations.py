"""The embedded index's one history of migrations (``rag.backends.migrations``): an index written by
the last release before ``_migrations`` (5a78a38, ``tests/data/index_5a78a38``, with what that
release answered from it) opens and answers the same, less the years it made up (m007, issue 42;
read-only, as it is); a new index runs every migration; a newer
one is refused; migration 2 (the lexicon) rebuilt from an index as an older version left it. The
other migrations' tests open an index as the previous version left it: 1 in test_backends.py
(format 2), 3-6 in test_news.py (word hashes, story keys, signatures, dates read again), 7 in
test_published.py (tests/data/news_v2_index).

Vectors come from ``rag.hashed.HashedEmbedder``: no model."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rag import RAG, Article, StoreError
from rag.backends.migrations import MIGRATIONS
from rag.hashed import HashedEmbedder
from rag.persian import terms

DATA = Path(__file__).parent / "data"
RELEASE = DATA / "index_5a78a38"
# what the release was asked (the answers file holds its results)
QUESTIONS = ["اسحاق دار در کدام شهر سخنرانی کرد؟", "In which city did Ishaq Dar speak?", "قیمت گوشت گوسفند در تهران",
             "بودجه سال آینده نفت", "هیئت ۱۲ نفره آب هیرمند", "وزیر کابل رابطه", "انفجار قندهار"]

ANSWERS = """
import json, sys
from rag import RAG
from rag.hashed import HashedEmbedder
r = RAG(sys.argv[1], embedder=HashedEmbedder(), reader=False)
out = {"count": list(r.count()),
       "articles": [[a.id, a.title, a.source, a.date, a.date_inferred, a.calendar, a.group, a.chunks, a.chars]
                    for a in r.articles()],
       "search": {q: [[h.article_id, h.chunk_id, h.start, h.end, round(h.score, 5), h.source, h.date, h.group]
                      for h in r.search(q, k=5).hits] for q in json.loads(sys.argv[2])},
       "filtered": [[h.article_id, h.chunk_id] for h in r.search("قیمت بازار", k=5, since="2025-07-01").hits]}
r.close()
print(json.dumps(out, ensure_ascii=False))
"""


def _answers(index: Path, unprivileged: bool = False) -> dict:
    """What the index answers (listing, hits, a filtered search), in a child process as the
    release's answers were made; ``unprivileged``: file permissions bite even as root."""
    cmd = [sys.executable, "-c", ANSWERS, str(index), json.dumps(QUESTIONS)]
    if unprivileged and os.geteuid() == 0:
        cmd = [shutil.which("setpriv"), "--bounding-set=-dac_override,-dac_read_search", "--", *cmd]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _migrations(index: Path) -> list[tuple[int, str, str]]:
    db = sqlite3.connect(index / "rag.sqlite")
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name='_migrations'").fetchone():
            return []
        return db.execute("SELECT id, name, applied FROM _migrations ORDER BY id").fetchall()
    finally:
        db.close()


def _release_copy(tmp_path: Path) -> Path:
    index = tmp_path / "release"
    shutil.copytree(RELEASE, index)
    return index


def _after_m007(answers: dict) -> dict:
    """The release's answers once m007 (issue 42) has read its inferred years again: «dated» (a day
    in a sentence, its year from an event) does not stand by issue 42's rules, so it and its hits
    are undated and a date filter no longer finds it; memar/fars (the attribution's «روز جمعه
    (۲۰سرطان)», its year fixed by the article's own full dates) keep 2025-07-11. The rest stays."""
    assert {a[0] for a in answers["articles"] if a[4]} == {"memar", "fars", "dated"}  # what the fixture holds
    inferred = {"dated"}
    out = json.loads(json.dumps(answers))
    out["articles"] = [a[:3] + [None, False, None] + a[6:] if a[0] in inferred else a for a in out["articles"]]
    out["search"] = {q: [h[:6] + [None] + h[7:] if h[0] in inferred else h for h in hits]
                     for q, hits in out["search"].items()}
    out["filtered"] = [h for h in out["filtered"] if h[0] not in inferred]
    return out


def test_an_index_of_the_last_release_opens_and_answers_the_same(tmp_path):
    index = _release_copy(tmp_path)
    expected = _after_m007(json.loads((DATA / "index_5a78a38.answers.json").read_text(encoding="utf-8")))
    assert not _migrations(index)
    assert _answers(index) == expected
    # its history was read from the release's markers, once; only what came after it (m007) ran
    history = [(n, applied) for n, _, applied in _migrations(index)]
    assert [n for n, _ in history] == [n for n, _, _ in MIGRATIONS]
    assert [applied for n, applied in history if n <= 6] == ["before _migrations"] * 6
    assert all(applied.endswith("Z") for n, applied in history if n > 6)
    db = sqlite3.connect(index / "rag.sqlite")
    assert not db.execute("SELECT key FROM meta WHERE key IN ('lexicon', 'news', 'signatures')").fetchall()
    db.close()
    assert _answers(index) == expected
    # and it takes writes: a copy of a stored story joins it, a removal leaves the rest answering
    r = RAG(index, embedder=HashedEmbedder(), reader=False)
    memar = r.article("memar")
    r.add_articles([Article(id="copy", title=memar.title, text=memar.text.replace("معمار", "فارس"))])
    assert {a.id: a.group for a in r.articles()}["copy"] == "memar"
    r.remove("copy")
    r.close()
    assert _answers(index) == expected


def test_a_read_only_index_of_the_last_release_answers_as_it_is(tmp_path):
    index = _release_copy(tmp_path)
    expected = json.loads((DATA / "index_5a78a38.answers.json").read_text(encoding="utf-8"))
    before = {p.name: p.read_bytes() for p in index.iterdir()}
    os.chmod(index, 0o555)
    for p in index.iterdir():
        os.chmod(p, 0o444)
    try:
        got = _answers(index, unprivileged=True)
    finally:
        os.chmod(index, 0o755)
        for p in index.iterdir():
            os.chmod(p, 0o644)
    assert got == expected
    assert {p.name: p.read_bytes() for p in index.iterdir()} == before and not _migrations(index)


def test_a_new_index_runs_every_migration_in_order(tmp_path):
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    r.close()
    done = _migrations(tmp_path / "ix")
    assert [(n, name) for n, name, _ in done] == [(n, name) for n, name, _ in MIGRATIONS]
    assert [n for n, _, _ in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert all(applied.endswith("Z") for _, _, applied in done)


def test_an_index_written_by_a_newer_version_is_refused(tmp_path):
    RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False).close()
    db = sqlite3.connect(tmp_path / "ix" / "rag.sqlite")
    db.execute("INSERT INTO _migrations VALUES (?, 'm999_future', 'then')", (len(MIGRATIONS) + 1,))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer version"):
        RAG(tmp_path / "ix", embedder=HashedEmbedder(), reader=False)


def test_m002_the_lexicon_of_an_older_version_is_made_again(tmp_path):
    """A release whose term rules were older (lexicon version 5: no term_df) gets the lexicon and
    each term's passage count made from its passages: the same as the release's own."""
    index = _release_copy(tmp_path)
    db = sqlite3.connect(index / "rag.sqlite")
    df = sorted(db.execute("SELECT term, df FROM term_df"))
    db.execute("UPDATE meta SET value='5' WHERE key='lexicon'")
    db.execute("DROP TABLE term_df")
    db.execute("DROP TABLE lexicon")
    db.execute("CREATE VIRTUAL TABLE lexicon USING fts5(terms, content='')")  # stale: empty
    db.commit()
    db.close()
    r = RAG(index, embedder=HashedEmbedder(), reader=False)
    found = r.store.candidates(r.embedder.embed_queries(["کوالالامپور"])[0], terms("کوالالامپور"), 5)
    assert found.lexical and {p.article_id for p in found.passages if p.chunk_id == found.lexical[0][0]} <= {"memar", "fars"}
    r.close()
    db = sqlite3.connect(index / "rag.sqlite")
    assert sorted(db.execute("SELECT term, df FROM term_df")) == df and df
    assert db.execute("SELECT applied FROM _migrations WHERE id=2").fetchone()[0] != "before _migrations"
    db.close()


def test_an_index_of_issue_42s_branch_is_adopted_without_reading_again(tmp_path):
    """Issue 42's branch marked its re-read as news version 3 and added ``month_day`` itself: such
    an index counts m006 and m007 as done (its dates are already read so) and opens."""
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles([Article(id="a", title="t", text="به گزارش خبرگزاری فارس، روز جمعه (۲۰ سرطان) وزیر به کابل رفت.")])
    r.close()
    db = sqlite3.connect(tmp_path / "ix" / "rag.sqlite")
    db.execute("DROP TABLE _migrations")
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("lexicon", "6"), ("news", "3"), ("signatures", "1")])
    db.execute("UPDATE articles SET month_day='04-21'")  # not what a re-read would make: shows none ran
    db.commit()
    db.close()
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), reader=False)
    assert [(a.date, a.month_day) for a in r.articles()] == [(None, "04-21")]
    r.close()
    assert [applied for _, _, applied in _migrations(tmp_path / "ix")] == ["before _migrations"] * len(MIGRATIONS)
