"""One contract for every index backend: put, replace, remove, candidates, reopen; and the embedded
backend's approximate path at a size CI can afford (taken, and answering as exact search does).

Vectors come from ``rag.hashed.HashedEmbedder`` given to ``RAG(embedder=...)``: the contract is
about storage and reading, and the embedder protocol is part of it."""

from __future__ import annotations

import json
import random
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

from rag import RAG, Article, stories
from rag.backends import open_index
from rag.backends.base import passage_terms
from rag.backends.embedded import EmbeddedIndex
from rag.hashed import HashedEmbedder
from rag.backends import Filter
from rag.persian import terms

from milvus_server import milvus_server  # noqa: F401  (the fixture)

WORDS = ("دولت مجلس وزیر سفر نشست بازار قیمت گندم باران سیلاب مرز تجارت ترانزیت امنیت انتخابات دانشگاه "
         "بیمارستان کشاورزی صادرات واردات نفت گاز برق آب جاده پل فرودگاه قطار ورزش فوتبال فیلم کتاب "
         "شاعر موسیقی زلزله آتش پلیس دادگاه قانون بودجه مالیات بانک ارز طلا سکه خودرو کارخانه").split()
PLACES = "کابل هرات مزار قندهار تهران مشهد اصفهان شیراز تبریز بلخ".split()


def make_article(i: int, rng: random.Random) -> Article:
    """An article of ~12 sentences with one word found nowhere else (``واژه{i}``)."""
    sentences = []
    for s in range(12):
        words = rng.sample(WORDS, 7) + [rng.choice(PLACES)]
        if s == 5:
            words.insert(3, f"واژه{i}x")
        sentences.append(" ".join(words) + ".")
    text = " ".join(sentences[:6]) + "\n\n" + " ".join(sentences[6:]) + "\n"
    return Article(id=f"a{i}", title=f"خبر {rng.choice(PLACES)} {i}", text=text)


def corpus(n: int, seed: int = 7) -> list[Article]:
    rng = random.Random(seed)
    return [make_article(i, rng) for i in range(n)]


BACKENDS = ["embedded", "embedded-ann", pytest.param("milvus", marks=pytest.mark.milvus)]


@pytest.fixture(params=BACKENDS)
def location(request, tmp_path) -> tuple[str, dict]:
    if request.param == "embedded":
        return str(tmp_path / "index"), {}
    if request.param == "milvus":  # a Milvus Lite gRPC server (tests/milvus_server.py), a collection of its own
        return f"milvus://127.0.0.1:{request.getfixturevalue('milvus_server')}/c{uuid.uuid4().hex}", {}
    return str(tmp_path / "index"), {"ann_from": 20, "nprobe": 2}  # approximate from 20 passages


def _rag(location: tuple[str, dict], create: bool = True) -> RAG:
    loc, options = location
    return RAG(loc, embedder=HashedEmbedder(), create=create, reader=False, **(options if create else {}))


def _passages_by_article(r: RAG) -> dict[str, list[tuple[int, int, int]]]:
    return {a.id: [(c.chunk_id, c.start, c.end) for c in r.article_chunks(a.id)] for a in r.articles()}


def test_put_candidates_and_reopen(location):
    arts = corpus(40)
    r = _rag(location)
    rep = r.add_articles(arts)
    assert len(rep.added) == 40 and r.count()[0] == 40
    # every passage is an exact slice, and candidates carry its sentences (inside it) with vectors
    target = arts[17]
    found = r.store.candidates(r.embedder.embed_queries([target.text])[0], terms(f"واژه{17}x"), 10)
    by_id = {p.chunk_id: p for p in found.passages}
    assert any(p.article_id == target.id for p in found.passages)
    for p in found.passages:
        art = r.article(p.article_id)
        assert art.text[p.start:p.end] == p.text
        assert p.sentence_vectors.shape == (len(p.sentences), 384)
        for _, s, e in p.sentences:
            assert p.start <= s < e <= p.end
        assert abs(float(np.linalg.norm(p.vector)) - 1.0) < 0.02
    # the lexical side: the one word only article 17 holds, with its document frequency
    assert found.document_frequencies[f"واژه{17}x"] == 1
    assert found.lexical and by_id[found.lexical[0][0]].article_id == target.id and found.lexical[0][1] > 0
    assert found.total_passages == r.count()[1]
    # questions find their article; reopening gives the same answers
    questions = {a.id: f"واژه{a.id[1:]}x " + " ".join(a.text.split()[:6]) for a in arts[:10]}
    first = {aid: [h.chunk_id for h in r.search(q, k=5).hits] for aid, q in questions.items()}
    assert all(r.search(q, k=5).hits[0].article_id == aid for aid, q in questions.items())
    r.close()
    r2 = _rag(location, create=False)
    assert {aid: [h.chunk_id for h in r2.search(q, k=5).hits] for aid, q in questions.items()} == first


def test_replace_and_remove(location):
    arts = corpus(30)
    r = _rag(location)
    r.add_articles(arts)
    before = _passages_by_article(r)
    n_passages = r.count()[1]
    # unchanged
    assert r.add_articles([arts[3]]).unchanged == ["a3"]
    # replaced: new ids, old ones never come back from a search
    changed = Article(id="a3", title=arts[3].title, text=arts[3].text.replace("واژه3x", "واژه3y") + "پایان.\n")
    assert r.add_articles([changed]).updated == ["a3"]
    after = _passages_by_article(r)
    old_ids = {c for c, _, _ in before["a3"]}
    assert old_ids.isdisjoint(c for c, _, _ in after["a3"])
    assert {k: v for k, v in after.items() if k != "a3"} == {k: v for k, v in before.items() if k != "a3"}
    hits = r.search("واژه3y " + changed.text[:60], k=10).hits
    assert hits[0].article_id == "a3" and old_ids.isdisjoint(h.chunk_id for h in hits)
    assert not r.search("واژه3x", k=10).hits or all(
        "واژه3x" not in h.text for h in r.search("واژه3x", k=10).hits)
    # removed: gone from articles, counts and candidates
    r.remove("a5")
    assert "a5" not in {a.id for a in r.articles()}
    assert r.count()[1] == n_passages - len(before["a5"]) - len(before["a3"]) + len(after["a3"])
    qv = r.embedder.embed_queries([arts[5].text])[0]
    assert all(p.article_id != "a5" for p in r.store.candidates(qv, terms("واژه5x"), 50).passages)
    with pytest.raises(KeyError):
        r.article("a5")
    # document frequencies follow every write: how many passages hold each term now
    held = [set(passage_terms(r.article(a.id).title, c.text).split()) for a in r.articles()
            for c in r.article_chunks(a.id)]
    probe = ["واژه3y", "واژه3x", "واژه5x", "واژه7x", "کابل", "دولت"]
    got = r.store.candidates(qv, probe, 5).document_frequencies
    assert got == {t: sum(t in h for h in held) for t in probe}
    assert got["واژه3x"] == got["واژه5x"] == 0 and got["واژه3y"] == got["واژه7x"] == 1


def test_approximate_search_is_taken_past_ann_from_and_answers_as_exact(tmp_path):
    """600 passages, approximate from 400 (10 inverted lists, 3 searched): the IVF path is taken
    (and survives reopening and later writes), and the questions' best passages are those of exact
    search."""
    arts = corpus(600, seed=11)
    exact = RAG(tmp_path / "exact", embedder=HashedEmbedder(), create=True, reader=False)
    approx = RAG(tmp_path / "approx", embedder=HashedEmbedder(), create=True, reader=False, ann_from=400, nprobe=3)
    for r in (exact, approx):
        r.add_articles(arts[:450])
    assert approx.store.approximate and not exact.store.approximate
    for r in (exact, approx):
        r.add_articles(arts[450:])  # added to the trained index
    questions = [" ".join(a.text.split("\n")[0].split()[i:i + 8]) for a in arts[::7] for i in (0, 30)]
    same = sum(exact.search(q, k=1).hits[0].chunk_id == approx.search(q, k=1).hits[0].chunk_id for q in questions)
    assert same >= 0.95 * len(questions), (same, len(questions))
    approx.close()
    reopened = RAG(tmp_path / "approx", embedder=HashedEmbedder(), reader=False)
    assert reopened.store.approximate and reopened.store.vectors.ntotal == reopened.count()[1]


def test_a_big_cache_is_caught_up_not_rewritten(tmp_path):
    """Past a few passages, a write that adds less than a tenth of the index leaves the cache file
    as it was; the next open catches up from SQLite and holds every passage."""
    arts = corpus(120, seed=3)
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles(arts[:110])
    cache = tmp_path / "ix" / "passages.faiss"
    stamp = cache.stat().st_mtime_ns, cache.read_bytes()
    r.add_articles(arts[110:112])
    assert (cache.stat().st_mtime_ns, cache.read_bytes()) == stamp
    r.remove("a0")
    r.close()
    r2 = RAG(tmp_path / "ix", embedder=HashedEmbedder(), reader=False)
    ids = set(r2.store.vectors.all()[0].tolist())
    assert ids == {c.chunk_id for a in r2.articles() for c in r2.article_chunks(a.id)}
    assert r2.search("واژه111x", k=1).hits[0].article_id == "a111"


@pytest.mark.model
def test_a_format_2_index_is_migrated_on_open(tmp_path):
    """An index written by the previous version (float32 vectors, two FAISS files) opens, answers
    with the same quotes, and is format 3 afterwards."""
    src = Path(__file__).parent / "data" / "format2_index"
    index = tmp_path / "old"
    shutil.copytree(src, index)
    r = RAG(index, reader=False)
    ans = r.ask("In which city did Ishaq Dar speak?")
    assert not ans.abstained
    text = r.article(ans.citations[0].article_id).text
    assert all(text[c.start:c.end] == c.quote for c in ans.citations)
    assert "کوالالامپور" in " ".join(c.quote for c in ans.citations)
    assert isinstance(r.store, EmbeddedIndex) and r.store.manifest["format"] == 3
    assert not (index / "sentences.faiss").exists() and (index / "passages.faiss").exists()
    assert open_index(index).count() == r.count()


def test_an_embedder_object_must_match_the_index(tmp_path):
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    r.add_articles(corpus(3))
    from rag import StoreError

    with pytest.raises(StoreError, match="hashed-384"):
        RAG(tmp_path / "ix", embedder=HashedEmbedder(dim=256), reader=False)
    with pytest.raises(ValueError, match="not both"):
        RAG(tmp_path / "ix", model="e5-small", embedder=HashedEmbedder())


# ------------------------------------------------------------------ Milvus (a Milvus Lite gRPC server)

TESTS = Path(__file__).resolve().parent

WRITER = """
import sys
sys.path.insert(0, {tests!r})
from rag import RAG
from rag.hashed import HashedEmbedder
from test_backends import corpus

arts = corpus(30)[{k}::2]
r = RAG({loc!r}, embedder=HashedEmbedder(), create=True, reader=False)
rep = r.add_articles(arts)
assert sorted(rep.added) == sorted(a.id for a in arts), rep
"""


def _milvus(port: int) -> tuple[str, dict]:
    return f"milvus://127.0.0.1:{port}/c{uuid.uuid4().hex}", {}


@pytest.mark.milvus
def test_milvus_two_writer_processes_feed_one_collection(milvus_server):
    """Two `rag ingest`-like processes create the same index at once and each add half of the
    articles: one index with every article, passage ids unique, each article found."""
    import subprocess
    import sys

    loc = _milvus(milvus_server)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER.format(tests=str(TESTS), k=k, loc=loc[0])],
                              cwd=TESTS.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for k in (0, 1)]
    for p in procs:
        out = p.communicate(timeout=120)[0].decode(errors="replace")
        assert p.returncode == 0, out[-3000:]
    r = _rag(loc, create=False)
    assert r.count()[0] == 30
    ids = [c.chunk_id for a in r.articles() for c in r.article_chunks(a.id)]
    assert len(ids) == len(set(ids)) == r.count()[1]
    for i in (0, 1, 14, 29):
        assert r.search(f"واژه{i}x", k=1).hits[0].article_id == f"a{i}"


@pytest.mark.milvus
def test_milvus_an_app_answers_from_what_a_writer_writes(milvus_server):
    """A second RAG on the same collection (another app server) sees added, replaced and removed
    articles at once, with their metadata; searches can filter on source."""
    loc = _milvus(milvus_server)
    arts = corpus(12)
    for i, a in enumerate(arts):
        a.source = "BBC Persian" if i % 2 else "IRNA"
        a.date = f"2025-07-{10 + i:02d}"
    arts[0].text = arts[0].text * 40  # past one row of the articles collection (16,000 characters)
    writer = _rag(loc)
    writer.add_articles(arts)
    app = _rag(loc, create=False)
    assert app.article("a0").text == arts[0].text and app.article("a0").sha == arts[0].sha
    assert app.search("واژه3x", k=1).hits[0].article_id == "a3"
    assert {a.id: a.source for a in app.articles()} == {a.id: a.source for a in arts}
    changed = Article(id="a3", title=arts[3].title, text=arts[3].text.replace("واژه3x", "واژه3y"), source="بی‌بی‌سی",
                      date=arts[3].date)
    assert writer.add_articles([changed]).updated == ["a3"]
    hit = app.search("واژه3y", k=1).hits[0]
    assert hit.article_id == "a3" and app.article("a3").text[hit.start:hit.end] == hit.text
    assert app.store.state("a3")[0] == changed.sha
    writer.remove("a4")
    assert "a4" not in {a.id for a in app.articles()} and app.count()[0] == 11
    qv = app.embedder.embed_queries([arts[5].text])[0]
    only = app.store.candidates(qv, terms("واژه5x واژه6x"), 10, where=Filter(sources=("IRNA",)))
    assert only.passages and {p.article_id for p in only.passages} <= {a.id for a in arts if a.source == "IRNA"}
    # filters go through the app's API as a user types them, applied by Milvus inside the search
    hits = app.search("واژه5x", k=3, since="2025-07-12", until="1404-04-25", source="ایرنا").hits
    assert hits and all(h.source == "IRNA" and "2025-07-12" <= h.date <= "2025-07-16" for h in hits)


@pytest.mark.milvus
def test_milvus_collections_made_before_dating_fields_still_read_and_write(milvus_server, monkeypatch):
    """A collection made before the calendar and inferred-year fields (Milvus Lite cannot add a
    field) takes new articles and answers; its dates read as written in no known calendar."""
    from rag.backends import milvus_schema

    loc = _milvus(milvus_server)
    with monkeypatch.context() as m:
        m.setattr(milvus_schema, "dating_fields", lambda: [])  # the schemas as an older version made them
        _rag(loc).close()
    r = _rag(loc, create=False)
    r.add_articles([Article(id="a", title="کابل", text="۲۰ سرطان ۱۴۰۴\nوزیر در کابل گفت که رابطه‌ای نبوده است.")])
    assert [(a.date, a.date_inferred, a.calendar) for a in r.articles()] == [("2025-07-11", False, None)]
    assert r.search("وزیر کابل", k=1).hits[0].article_id == "a"
    r.close()


@pytest.mark.milvus
def test_milvus_m002_an_index_from_before_migrations_and_story_groups_gains_them(milvus_server):
    """A Milvus index as a release before story groups left it (no stories collection, no recorded
    migrations) opens: migration 2 makes the collection, both are recorded, its article answers
    and a copy added later starts its own story with it; a newer version's index is refused."""
    from pymilvus import MilvusClient

    from rag import StoreError
    from rag.backends.milvus_schema import HISTORY

    loc = _milvus(milvus_server)
    root = Path(__file__).resolve().parent.parent
    seed = next((root / "seeds").glob("*.txt")).read_text(encoding="utf-8")
    r = _rag(loc)
    r.add_articles([Article(id="memar", title="اسحاق دار", text=seed)])
    r.close()
    name = loc[0].rsplit("/", 1)[1]
    client = MilvusClient(uri=f"http://127.0.0.1:{milvus_server}")
    client.drop_collection(f"{name}_stories")
    client.delete(f"{name}_meta", filter='key == "_migrations"')
    r = _rag(loc, create=False)
    assert r.search("کوالالامپور", k=1).hits[0].article_id == "memar"
    r.add_articles([Article(id="fars", title="اسحاق دار", text=seed.replace("خبرگزاری معمار", "خبرگزاری فارس"))])
    # memar lost its key rows with the collection: the copy meets nothing and tells its own story
    assert {a.id: a.group for a in r.articles()} == {"memar": "memar", "fars": "fars"}
    r.close()
    rows = client.query(f"{name}_meta", filter='key == "_migrations"', output_fields=["value"])
    done = json.loads(rows[0]["value"])
    assert done["1"] == "before _migrations" and sorted(map(int, done)) == [n for n, _, _ in HISTORY.steps]
    client.upsert(f"{name}_meta", [{"key": "_migrations", "value": json.dumps({**done, "99": "later"}),
                                    "_v": [0.0, 0.0]}])
    client.close()
    with pytest.raises(StoreError, match="newer version"):
        _rag(loc, create=False)


@pytest.mark.milvus
def test_milvus_errors_name_the_server_and_what_to_do(milvus_server, tmp_path):
    pytest.importorskip("pymilvus")
    from rag import StoreError
    from milvus_server import _free_port, start_milvus_lite, stop

    nobody = _free_port()
    with pytest.raises(StoreError, match=rf"cannot reach the Milvus server at 127\.0\.0\.1:{nobody}.*start Milvus"):
        RAG(f"milvus://127.0.0.1:{nobody}/news", embedder=HashedEmbedder(), reader=False)
    with pytest.raises(StoreError, match="use milvus://HOST:PORT/COLLECTION"):
        RAG(f"milvus://127.0.0.1:{milvus_server}/bad-name", embedder=HashedEmbedder(), reader=False)
    with pytest.raises(StoreError, match="no index at milvus://.*rag ingest"):
        RAG(f"milvus://127.0.0.1:{milvus_server}/missing", reader=False)
    # the server goes away under an open index: a StoreError within the index's timeout
    proc, port = start_milvus_lite(str(tmp_path / "data"), str(tmp_path / "log"))
    try:
        r = _rag(_milvus(port))
        r.add_articles(corpus(2))
    finally:
        stop(proc)
    r.store.timeout = 1.0
    from rag.backends.base import IndexUnavailable

    with pytest.raises(IndexUnavailable, match=rf"the index milvus://127\.0\.0\.1:{port}/\S+ is unavailable: its "
                                               rf"Milvus server does not answer \(searching: .*\); start it"):
        r.search("واژه1x")


def test_an_approximate_index_is_retrained_as_it_grows(tmp_path):
    """Past eight times the size it was trained at, the IVF index is rebuilt from the stored vectors
    with more lists; it keeps every passage, answers, and reopens approximate."""
    r = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False, ann_from=50, nprobe=4)
    arts = corpus(700, seed=5)
    for at in range(0, 700, 25):  # one write each (up to rag.api.STORE_BATCH_ARTICLES are one)
        r.add_articles(arts[at:at + 25])
    first = r.store.vectors.trained_at
    # trained first at 50 passages or a little past (where a write crosses it), then again at 8 times that
    assert r.store.approximate and first >= 8 * 50 and len(r.store.vectors.all()[0]) == 700
    ids, vecs = r.store.vectors.all()
    assert sorted(ids.tolist()) == sorted(c.chunk_id for a in r.articles() for c in r.article_chunks(a.id))
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=0.02)
    assert r.search("واژه433x", k=1).hits[0].article_id == "a433"
    r.close()
    again = RAG(tmp_path / "ix", embedder=HashedEmbedder(), reader=False)
    assert again.store.approximate and again.store.vectors.ntotal == again.count()[1]


def test_how_a_date_was_written_is_kept_on_every_backend(location):
    """The calendar an article wrote its date in and whether its year was inferred reach the listing,
    a question's candidates and a story's members alike on every backend (they decide how a
    citation shows the date)."""
    text = ("به گزارش طلوع‌نیوز، روز جمعه (۲۰ سرطان) وزیر گفت که سفرش به کابل در ۱۹ اپریل ۲۰۲۵ بود. سفیر پاکستان "
            "در کابل این را گفت.")
    r = _rag(location)
    r.add_articles([Article(id="a", title="کابل", text=text),
                    Article(id="b", title="تهران", text="تهران، ۲۰ تیر ۱۴۰۴: بازار ارز امروز آرام بود.")])
    listed = {a.id: (a.date, a.date_inferred, a.calendar) for a in r.articles()}
    assert listed == {"a": ("2025-07-11", True, "afghan"), "b": ("2025-07-11", False, "iranian")}
    qv = r.embedder.embed_queries(["سفیر پاکستان در کابل"])[0]
    found = r.store.candidates(qv, terms("سفیر پاکستان در کابل"), 10)
    got = {p.article_id: (p.date, p.date_inferred, p.calendar) for p in found.passages}
    assert got["a"] == ("2025-07-11", True, "afghan")
    assert [(m.date_inferred, m.calendar) for m in found.stories["a"]] == [(True, "afghan")]
    r.close()


def test_story_grouping_reads_a_bounded_number_of_rows_a_key(location, monkeypatch):
    """Storing an article reads at most ``stories.PER_KEY`` rows of each of its LSH keys (so its cost
    does not grow with the archive); copies stored one after another still find their story through
    the rows read, on every backend (Milvus past the bound reads key by key)."""
    monkeypatch.setattr(stories, "PER_KEY", 1)
    root = Path(__file__).resolve().parent.parent
    seed = next((root / "seeds").glob("*.txt")).read_text(encoding="utf-8")
    r = _rag(location)
    for i in range(4):
        r.add_articles([Article(id=f"c{i}", title="اسحاق دار", text=seed + f"\n\nگزارش {i}.")])
    r.add_articles([Article(id="fifa", title="فیفا", text="فدراسیون بین‌المللی فوتبال در سال ۱۹۰۴ در پاریس بنیان نهاده شد.")])
    assert {a.id: a.group for a in r.articles()} == {"c0": "c0", "c1": "c0", "c2": "c0", "c3": "c0", "fifa": "fifa"}
    r.close()


def test_story_groups_on_every_backend(location):
    """Copies of one story share a group (the first stored's id) on every backend; a question's
    candidates carry it with the group's members; when the first goes, the next names the group."""
    root = Path(__file__).resolve().parent.parent
    seed = next((root / "seeds").glob("*.txt")).read_text(encoding="utf-8")
    copy = seed.replace("خبرگزاری معمار", "خبرگزاری فارس").replace("عملاً ", "").replace("حیاتی", "بسیار مهم")
    other = ("فدراسیون بین‌المللی فوتبال نهاد اداره‌کنندهٔ مسائل فوتبال، فوتسال و فوتبال ساحلی در سطح جهان است. "
             "این فدراسیون در سال ۱۹۰۴ در پاریس بنیان نهاده شد و مقر آن در زوریخ سوئیس است.")
    r = _rag(location)
    r.add_articles([Article(id="memar", title="اسحاق دار", text=seed)])
    r.add_articles([Article(id="fars", title="اسحاق دار", text=copy), Article(id="fifa", title="فیفا", text=other)])
    assert {a.id: a.group for a in r.articles()} == {"memar": "memar", "fars": "memar", "fifa": "fifa"}
    assert {a.source for a in r.articles() if a.id != "fifa"} == {"Memar", "Fars"}
    qv = r.embedder.embed_queries(["اسحاق دار کوالالامپور"])[0]
    found = r.store.candidates(qv, terms("اسحاق دار کوالالامپور"), 10)
    assert {p.group for p in found.passages if p.article_id in ("memar", "fars")} == {"memar"}
    assert [a.id for a in found.stories["memar"]] == ["memar", "fars"]
    r.remove("memar")
    assert {a.id: a.group for a in r.articles()} == {"fars": "fars", "fifa": "fifa"}
    r.close()
