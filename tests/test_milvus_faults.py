"""Milvus faults, the fast variants (bench/milvus_faults.py runs the fuller ones): `kill -9` of a
`rag ingest` writer, `kill -9` of the Milvus Lite server under a writer and under an app, two
writers feeding one collection at once. After each: re-running completes it, `rag check` finds
every article exactly once, answers equal a fresh ingestion of the same versions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from rag import RAG, Article, check as checking
from rag.hashed import HashedEmbedder
from rag.ui import build_app

from conftest import ROOT
from milvus_server import milvus_server, start_milvus_lite, stop  # noqa: F401  (the fixture)
from test_backends import corpus

pytest.importorskip("pymilvus", reason="the milvus extra is not installed")
pytest.importorskip("milvus_lite", reason="the milvus extra is not installed")

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "RAG_MILVUS_TIMEOUT": "20"}


def write_corpus(folder: Path, arts: list[Article]) -> Path:
    """One JSONL file (ids as given: the same article from two writers' files is one article)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "articles.jsonl", "w", encoding="utf-8") as f:
        for a in arts:
            f.write(json.dumps({"id": a.id, "title": a.title, "text": a.text}, ensure_ascii=False) + "\n")
    return folder


def changed(arts: list[Article]) -> list[Article]:
    return [Article(id=a.id, title=a.title, text=a.text + f"\n\nنسخه دوم خبر {a.id} با بند تازه.") for a in arts]


def ingest(folder: Path, loc: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(folder), "--index", loc, "--json"],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def new_index(port: int, arts: list[Article]) -> tuple[str, RAG]:
    loc = f"milvus://127.0.0.1:{port}/c{uuid.uuid4().hex}"
    r = RAG(loc, embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles(arts)
    return loc, r


def hits(r: RAG, n: int) -> list:
    return [[(h.article_id, h.start, h.end) for h in r.search(f"واژه{i}x", k=3).hits] for i in range(0, n, 7)]


def consistent(r: RAG, articles: int) -> None:
    rep = checking.check(r.store, r.embedder, sample=10)
    assert rep.ok and rep.articles == articles, rep.lines()


def wait_until(cond, timeout: float) -> float:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.1)
    return time.monotonic() - t0


def test_killed_writers_and_two_writers_at_once_leave_every_article_once(milvus_server, tmp_path):
    arts = corpus(40, seed=11)
    loc, app = new_index(milvus_server, arts[:10])
    # kill -9 of a writer once it has written some articles, then a re-run completes it
    folder = write_corpus(tmp_path / "all", arts)
    p = ingest(folder, loc)
    wait_until(lambda: app.count()[0] > 10 or p.poll() is not None, 60)
    assert p.poll() is None, "the writer finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    p = ingest(folder, loc)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err[-2000:]
    consistent(app, 40)
    # two writers at once: overlapping sets, the second re-ingesting changed versions of 10 articles
    v2 = changed(arts[10:20])
    more = corpus(60, seed=12)[40:]
    a = write_corpus(tmp_path / "w1", arts[0:30] + more[:10])  # 0-29 as they are, 40-49 new
    b = write_corpus(tmp_path / "w2", v2 + arts[20:30] + more)  # 10-19 changed, 20-29 again, 40-59 new
    procs = [ingest(a, loc), ingest(b, loc)]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-2000:]
    consistent(app, 60)
    # 10-19: whichever writer stored last (both versions are whole articles); the rest as given
    final = {x.id: x for x in arts + more}
    for x in v2:
        sha = app.store.state(x.id)[0]
        assert sha in (x.sha, final[x.id].sha)
        final[x.id] = x if sha == x.sha else final[x.id]
    assert {k: app.store.state(k)[0] for k in final} == {k: v.sha for k, v in final.items()}
    _, fresh = new_index(milvus_server, list(final.values()))
    assert hits(app, 60) == hits(fresh, 60)


def test_server_killed_under_a_writer_and_an_app_then_restarted(tmp_path):
    proc, port = start_milvus_lite(str(tmp_path / "data"), str(tmp_path / "server.log"))
    try:
        arts = corpus(50, seed=3)
        loc, app = new_index(port, arts[:5])
        ask = next(f.fn for f in build_app(app, llm_field=False).fns.values() if f.api_name == "ask")
        assert "rag-a-0" in list(ask("واژه1x", [], 3, "", []))[-1][0][-1]["content"]
        writer = ingest(write_corpus(tmp_path / "corpus", arts), loc)
        wait_until(lambda: app.count()[0] > 5 or writer.poll() is not None, 60)
        os.kill(proc.pid, signal.SIGKILL)   # mid-ingest
        proc.wait()
        out, err = writer.communicate(timeout=120)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert writer.returncode == 2 and len(lines) == 1, err[-3000:]
        assert lines[0].startswith("error: the index milvus://") and "is unavailable" in lines[0], lines
        # the app, mid-question: a clear answer, no traceback
        said = list(ask("واژه1x", [], 3, "", []))[-1][0][-1]["content"]
        assert "The index is unavailable, retrying" in said and "Traceback" not in said, said
        proc, _ = start_milvus_lite(str(tmp_path / "data"), str(tmp_path / "server2.log"), port=port)
        back = wait_until(lambda: "rag-a-" in list(ask("واژه1x", [], 3, "", []))[-1][0][-1]["content"], 10)
        print(f"the app answered again {back:.1f} s after the server was back")
        writer = ingest(tmp_path / "corpus", loc)   # the re-run completes it
        out, err = writer.communicate(timeout=180)
        assert writer.returncode == 0, err[-2000:]
        report = json.loads(out)
        assert len(report["added"]) + len(report["updated"]) + len(report["unchanged"]) == 50
        consistent(app, 50)
    finally:
        stop(proc)
