"""`rag check [--repair]`: each kind of disagreement planted in a small index (embedded and Milvus
Lite's server), found, repaired from the records; a consistent index raises no alarm."""

from __future__ import annotations

import json
import sqlite3
import uuid
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from rag import RAG, Article
from rag import check as checking
from rag.backends.base import passage_terms
from rag.cli import main
from rag.hashed import HashedEmbedder

from milvus_server import milvus_server  # noqa: F401  (the fixture)
from test_backends import corpus


def articles() -> list[Article]:
    arts = corpus(10)
    copy = arts[2]  # a story copy: a few words changed, another agency
    arts.append(Article(id="a2copy", title=copy.title, text=copy.text.replace("کابل", "هرات", 1), source="IRNA"))
    return arts


def build(location: str, **options) -> RAG:
    r = RAG(location, embedder=HashedEmbedder(), create=True, reader=False, **options)
    r.add_articles(articles())
    return r


def kinds(report) -> dict[str, set]:
    out: dict[str, set] = {}
    for f in report.findings:
        out.setdefault(f.kind, set()).add(f.article)
    return out


def check(r: RAG):
    return checking.check(r.store, r.embedder, sample=100)


def answers(r: RAG) -> list:
    return [[(h.article_id, h.start, h.end, round(h.score, 4)) for h in r.search(f"واژه{i}x", k=3).hits]
            for i in (0, 2, 5)]


# ---------------------------------------------------------------- embedded


def _db(r: RAG) -> sqlite3.Connection:
    return r.store.records.db


def _passage(r: RAG, article_id: str) -> tuple[int, str, str]:
    pid, start, end = _db(r).execute('SELECT id, start, "end" FROM passages WHERE article_id=? ORDER BY seq',
                                     (article_id,)).fetchone()
    art = r.store.get(article_id)
    return pid, art.title, art.text[start:end]


def plant_missing_lexicon(r):
    pid, title, text = _passage(r, "a1")  # its row deleted by its exact terms: the FTS5 index stays sound
    _db(r).execute("INSERT INTO lexicon(lexicon, rowid, terms) VALUES ('delete', ?, ?)",
                   (pid, passage_terms(title, text)))
    return {"missing lexicon": {"a1"}, "lexicon statistics": {None}}


def plant_stale_story_key(r):
    _db(r).execute("INSERT INTO story_keys VALUES (12345, 99999, 'ghost')")
    return {"stale story keys": {"ghost"}}


def plant_stale_group(r):
    _db(r).execute("UPDATE articles SET story='gone' WHERE id IN ('a2', 'a2copy')")
    return {"stale story group": {"a2", "a2copy"}}


def plant_missing_story_keys(r):
    _db(r).execute("DELETE FROM story_keys WHERE article_id='a4'")
    return {"missing story keys": {"a4"}}


def plant_doubled(r):
    db = _db(r)  # a second copy of a3's passages under new ids, as a doubled write would leave
    db.execute('INSERT INTO passages (article_id, seq, start, "end", gen, vector) SELECT article_id, seq, start, '
               '"end", gen, vector FROM passages WHERE article_id=?', ("a3",))
    return {"doubled passages": {"a3"}, "missing vectors": {"a3"}, "missing lexicon": {"a3"}}


def plant_orphan_passages(r):
    _db(r).execute("DELETE FROM articles WHERE id='a6'")  # the record gone, its passages and keys left
    return {"orphan passages": {"a6"}, "stale story keys": {"a6"}}


def plant_other_vector(r):
    db = _db(r)  # a5's first passage holds a7's vector: right ids, wrong content
    other = db.execute("SELECT vector FROM passages WHERE article_id='a7' ORDER BY seq").fetchone()[0]
    db.execute("UPDATE passages SET vector=? WHERE id=?", (other, _passage(r, "a5")[0]))
    return {"vectors differ": {"a5"}}


PLANTS = [plant_missing_lexicon, plant_stale_story_key, plant_stale_group, plant_missing_story_keys, plant_doubled,
          plant_orphan_passages, plant_other_vector]


IVF = {"ann_from": 20, "nprobe": 4}  # approximate search from 20 passages


@pytest.mark.parametrize("plant, options", [(p, {}) for p in PLANTS] + [(plant_doubled, IVF), (plant_orphan_passages, IVF)],
                         ids=[p.__name__[6:] for p in PLANTS] + ["doubled-ivf", "orphan_passages-ivf"])
def test_embedded_disagreement_is_found_and_repaired(tmp_path, plant, options):
    r = build(str(tmp_path / "index"), **options)
    before = answers(r)
    assert check(r).ok, check(r).lines()
    expected = plant(r)
    found = kinds(check(r))
    for kind, arts in expected.items():
        assert found.get(kind, set()) >= arts, (kind, found)
    after = checking.repair(r.store, r.embedder, check(r), sample=100)
    assert after.ok, after.lines()
    # only the affected articles were cut and embedded again
    assert set(after.repaired) <= {a for arts in expected.values() for a in arts if a} - {"a6", "ghost"}
    reopened = RAG(str(tmp_path / "index"), embedder=HashedEmbedder(), reader=False)
    assert check(reopened).ok
    if plant is not plant_orphan_passages:
        assert answers(reopened) == before
    else:
        assert "a6" not in {a.id for a in reopened.articles()}


def test_embedded_vectors_swapped_on_disk_found_and_repaired_by_the_cli(tmp_path):
    """The FAISS file holds a vector under an id no passage has and lacks a passage's (same count,
    so opening does not rebuild it): `rag check` exits 1 naming both, `--repair` exits 0."""
    import faiss

    index = tmp_path / "index"
    r = build(str(index))
    pid = _passage(r, "a8")[0]
    r.close()
    manifest = json.loads((index / "manifest.json").read_text())
    vi = faiss.read_index(str(index / "passages.faiss"))
    vec = faiss.downcast_index(vi.index).reconstruct(int(np.nonzero(faiss.vector_to_array(vi.id_map) == pid)[0][0]))
    vi.remove_ids(np.asarray([pid], dtype=np.int64))
    vi.add_with_ids(vec.reshape(1, -1), np.asarray([10**9], dtype=np.int64))
    data = faiss.serialize_index(vi).tobytes()
    (index / "passages.faiss").write_bytes(data)
    manifest["vectors"]["crc32"] = zlib.crc32(data)
    (index / "manifest.json").write_text(json.dumps(manifest))
    run = CliRunner().invoke(main, ["check", "--index", str(index), "--json"])
    assert run.exit_code == 1, run.output
    found = {(f["kind"], f["article"]) for f in json.loads(run.output)["findings"]}
    assert {("missing vectors", "a8"), ("orphan vectors", None)} <= found
    run = CliRunner().invoke(main, ["check", "--index", str(index), "--repair"])
    assert run.exit_code == 0, run.output
    assert "found: missing vectors: a8" in run.output and "consistent" in run.output.splitlines()[-1]
    run = CliRunner().invoke(main, ["check", "--index", str(index)])
    assert run.exit_code == 0 and "consistent" in run.output, run.output


def test_a_consistent_index_raises_no_alarm_after_removals_replacements_and_other_writers(tmp_path):
    r = build(str(tmp_path / "index"))
    r.remove("a9")  # removals and replacements leave nothing behind
    r.add_articles([Article(id="a1", title="خبر تازه", text=articles()[1].text + "\n\nبند تازه‌ای افزوده شد.")])
    rep = check(r)
    assert rep.ok and rep.articles == 10 and len(rep.sampled) == 10, rep.lines()
    # another process (here: another connection) wrote since this one opened: checked as it is now
    other = RAG(str(tmp_path / "index"), embedder=HashedEmbedder(), reader=False)
    other.add_articles([Article(id="late", title="خبر دیرتر", text=articles()[3].text + "\n\nافزوده‌ای دیگر.")])
    rep = check(r)
    assert rep.ok and rep.articles == 11, rep.lines()


def test_an_index_ingested_with_another_reading_raises_no_alarm(tmp_path):
    """Passage vectors averaged from sentences (--reading sentences) differ from a passage read
    whole (cosine ~0.98 with hashed vectors): the check tries each reading before it reports."""
    r = RAG(str(tmp_path / "index"), embedder=HashedEmbedder(), create=True, reader=False, reading="sentences")
    r.add_articles(articles())
    assert check(r).ok, check(r).lines()


def test_an_index_migrated_to_year_unknown_days_raises_no_alarm_and_repair_keeps_them(tmp_path):
    """An index the code before issue 42 wrote (tests/data/news_v2_index), migrated on open (m007:
    dates read again, a day without a year kept as month_day, the records' fingerprints remade):
    consistent; an article repaired from its record keeps its year-unknown day."""
    import shutil
    from pathlib import Path

    shutil.copytree(Path(__file__).parent / "data" / "news_v2_index", tmp_path / "ix")
    r = RAG(str(tmp_path / "ix"), embedder=HashedEmbedder(), reader=False)
    t5 = r.store.get("t5")
    assert (t5.date, t5.month_day, t5.calendar) == (None, "04-20", "afghan")
    assert check(r).ok, check(r).lines()
    _db(r).execute("DELETE FROM story_keys WHERE article_id='t5'")
    assert kinds(check(r)) == {"missing story keys": {"t5"}}
    after = checking.repair(r.store, r.embedder, check(r), sample=100)
    assert after.ok and after.repaired == ["t5"], after.lines()
    again = RAG(str(tmp_path / "ix"), embedder=HashedEmbedder(), reader=False).store.get("t5")
    assert (again.date, again.month_day, again.calendar, again.sha) == (None, "04-20", "afghan", t5.sha)
    assert _db(r).execute("SELECT sha, month_day FROM articles WHERE id='t5'").fetchone() == (t5.sha, "04-20")


# ---------------------------------------------------------------- Milvus


def _client(port: int):
    from pymilvus import MilvusClient

    return MilvusClient(uri=f"http://127.0.0.1:{port}")


def test_milvus_disagreements_are_found_and_repaired(milvus_server):
    from rag.backends.milvus_schema import passage_rows, record_rows
    from rag.chunking import segment_article

    name = f"c{uuid.uuid4().hex}"
    r = build(f"milvus://127.0.0.1:{milvus_server}/{name}")
    assert check(r).ok, check(r).lines()
    before = answers(r)
    c = _client(milvus_server)
    P, A, S = f"{name}_passages", f"{name}_articles", f"{name}_stories"
    rows = c.query(P, filter='article_id == "a1"', output_fields=["id", "seq"])
    c.delete(P, ids=[min(rows, key=lambda x: x["seq"])["id"]])                       # a missing passage (vector)
    row = c.query(P, filter='article_id == "a3"', output_fields=["*"], limit=1)[0]
    row.pop("sparse", None)
    c.upsert(P, [{**row, "terms": ""}])                                              # its BM25 terms lost
    c.delete(A, filter='article_id == "a6"')                                         # passages with no record
    c.insert(S, [{"id": 777, "key": 1, "band": 0, "article_id": "ghost", "article_key": 1, "story": "ghost",
                  "added": 0.0, "minhash": "", "_v": [0.0, 0.0]}])                  # a stale story key
    # a7 half replaced: the new version's passages and record in, the old ones not deleted
    old = r.store.get("a7")
    new = Article(id="a7", title=old.title, text=old.text + "\n\nبند تازه.")
    seg = segment_article(new, r.embedder.count_tokens)
    vec = r.embedder.embed_passages([new.text[x.start:x.end] for x in seg.chunks])
    c.insert(P, passage_rows(new, new.sha, seg.chunks, vec, [], None, r.store.dim, True))
    c.insert(A, record_rows(new, new.sha, len(seg.chunks), True))
    found = kinds(check(r))
    assert found["missing passages"] >= {"a1"} and found["missing lexicon"] >= {"a3"}, found
    assert found["orphan passages"] >= {"a6"} and found["stale story keys"] >= {"ghost", "a6"}, found
    assert found["doubled article"] >= {"a7"} and found["stale passages"] >= {"a7"}, found
    after = checking.repair(r.store, r.embedder, check(r), sample=100)
    assert after.ok, after.lines()
    assert set(after.repaired) == {"a1", "a3", "a7"}
    assert r.article("a7").text == new.text and r.count()[0] == 10
    # answers as from a fresh ingestion of what the records now hold (a6 gone, a7's new version)
    final = [new if a.id == "a7" else a for a in articles() if a.id != "a6"]
    fresh = RAG(f"milvus://127.0.0.1:{milvus_server}/c{uuid.uuid4().hex}", embedder=HashedEmbedder(), create=True,
                reader=False)
    fresh.add_articles(final)
    assert [[h[:3] for h in q] for q in answers(r)] == [[h[:3] for h in q] for q in answers(fresh)]
    assert before


def test_milvus_repair_keeps_a_year_unknown_day(milvus_server):
    """A Milvus record holds month_day (issue 42) in its JSON: a check raises no alarm for it and a
    repair from the record keeps it."""
    name = f"c{uuid.uuid4().hex}"
    r = build(f"milvus://127.0.0.1:{milvus_server}/{name}")
    r.add_articles([Article(id="y", title="نشست کابل", date="۲۰ سرطان",
                            text="نشست اقتصادی در کابل با حضور نمایندگان ولایات برگزار شد.\nدر این نشست گفتگو شد.")])
    assert (r.store.get("y").date, r.store.get("y").month_day) == (None, "04-20")
    assert check(r).ok, check(r).lines()
    _client(milvus_server).delete(f"{name}_stories", filter='article_id == "y"')
    assert kinds(check(r)) == {"missing story keys": {"y"}}
    after = checking.repair(r.store, r.embedder, check(r), sample=100)
    assert after.ok and after.repaired == ["y"], after.lines()
    y = r.store.get("y")
    assert (y.date, y.month_day, y.calendar) == (None, "04-20", "afghan")
