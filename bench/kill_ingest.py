"""`kill -9` of an ingestion at random moments, repeated: the index stays whole, a re-run completes it.

    python bench/kill_ingest.py [--kills 20] [--seed 5] [--articles 12] [--out bench/results/robustness.md]
    python bench/kill_ingest.py --large 20000 [--ann-from 2000] --kills 10

The corpus is made from the repository alone: variants of the seed article (distinct ids and
text: another city, other dates and figures, paragraphs reordered, a numbered line of their own),
one long article made of several variants (a large transaction), and a JSONL file of three more.
A second version of the corpus changes about half of the articles, for kills during updates.

**Normal mode** (`rag ingest`, the default embedder, a new index or a small one). **`--large N`**:
the corpus is ingested into copies of a large base index of about N generated articles (~12
sentences each, words of the seed article) with `rag.hashed.HashedEmbedder` vectors and a small
``ann_from``, so passage search is approximate (IVF,SQ8). The base's vector file is left just under
a tenth behind SQLite (as the index does on purpose), so a whole fresh ingestion of the corpus
rewrites it and a partial one or an update does not. The CLI cannot load a ``hashed-384`` index's
embedder, so in this mode the killed ingestion (and the listing) is this script run as a child,
``RAG(index, embedder=HashedEmbedder()).ingest(...)``, as `rag ingest` would run it.

First two clean ingestions give the reference: one of the corpus into a new index (the base), one
of the changed corpus over a copy of it. Then, for each kill (a seeded RNG picks everything):

- **scenario**: *fresh* (ingest the corpus into a new index / a copy of the base) or *update*
  (ingest the changed corpus into a copy of the first reference, so articles are replaced in place);
- **moment**: *timed* (SIGKILL after a uniform random delay within the reference run's wall time,
  start-up included), *in-transaction* (after a random delay, wait for SQLite's rollback journal to
  appear, i.e. a transaction is writing, then kill within 0-3 ms), or *in-cache-write* (wait for a
  temporary file of the atomic write of ``passages.faiss`` or of ``manifest.json``, then kill at once).

What the kill left is classified before anything opens the index (journal left = killed inside a
transaction; temp file left = killed inside an atomic file write; both count as "mid-write").
Then, checked every time:

1. the listing works (`rag list --json`; or, when the kill came before the index existed, it says
   there is none);
2. `rag.RAG(index)` opens it and answers a Persian and an English question, every quote an exact
   slice of its article (``--large``: hashed vectors, so those two may abstain; a third question,
   the seed's lead word for word, must be answered whenever corpus articles are present);
3. only whole articles: each article present equals the reference version it came from (old or
   new): fingerprint, every passage span, its int8 vector (cosine >= 0.999 dequantized with the
   reference's) and its lexicon row (same terms), the article's sentence spans and int8 vectors;
   no passage, sentence row or lexicon row without its article, no torn vector blob, no removed id
   still a passage; in ``--large`` mode every base article is still there;
4. the vector index after open holds exactly SQLite's passage ids, each with the dequantized int8
   vector (flat: equal; IVF,SQ8: equal to that vector's SQ8 encoding, else cosine >= 0.99); the
   ``passages.faiss`` on disk, whenever its crc32 matches the manifest, is SQLite as of the
   manifest's generation: every passage written at or before it, nothing else but passages removed
   after it, the same vectors;
5. re-running the same ingestion exits 0, reports as unchanged exactly the articles that were
   already complete, and leaves the index equal to the reference (same ids, spans, vectors,
   lexicon), its vector index after open equal to SQLite and the file on disk consistent again.

A run that ends before its kill is checked too, but not counted: runs go on until ``--kills`` kills
were delivered (at most twice as many runs). It exits 1 if any check failed. The work folder is removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = ["اسحاق دار در کدام شهر سخنرانی کرد؟", "When did the Pakistani foreign minister visit Kabul?"]
CITIES = ["تهران", "دوشنبه", "تاشکند", "آستانه", "باکو", "دوحه", "ریاض", "آنکارا", "استانبول", "جاکارتا",
          "دهلی", "مسقط", "بیشکک", "عشق‌آباد", "مسکو", "پکن"]
FA_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
VECTORS_FILE = "passages.faiss"
REWRITE_SHARE = 0.1  # rag.backends.embedded: the file is rewritten when it lacks more than this share


# ---------------------------------------------------------------- the corpus

def fa_num(n: int) -> str:
    return "".join(FA_DIGITS[int(d)] for d in str(n))


def seed_article() -> tuple[str, list[str]]:
    path = sorted((ROOT / "seeds").glob("*.txt"))[0]
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return lines[0], lines[1:]


def variant(i: int, rng: random.Random, paragraphs: int = 2) -> tuple[str, str]:
    """Title and body of variant ``i``: the seed's story in another city, on other dates, its lead
    and ``paragraphs`` of its other paragraphs in another order, with a numbered line of its own."""
    title, paras = seed_article()
    city = CITIES[i % len(CITIES)]
    day = 1 + (i * 7) % 28
    body_paras = paras[:]
    lead, rest = body_paras[:3], body_paras[3:]
    footer = [p for p in rest if p.isascii() or p.startswith("مطالب")]
    rest = [p for p in rest if p not in footer]
    rng.shuffle(rest)
    rest = rest[:paragraphs]
    text = "\n\n".join(lead + rest)
    text = (text.replace("کوالالامپور", city).replace("۱۹ اپریل", f"{fa_num(day)} اپریل")
            .replace("۲۰ می", f"{fa_num(1 + (day + 5) % 28)} می").replace("۲۰سرطان", f"{fa_num(day)}سرطان"))
    text += f"\n\nاین گزارش شماره {fa_num(i + 1)} از مجموعه گزارش‌های آزمایشی درباره نشست {city} است."
    title = f"{title} ({city}، گزارش {fa_num(i + 1)})"
    return title, text + "\n\n" + "\n".join(footer)


def update_note(i: int) -> str:
    return (f"\n\nبه‌روزرسانی: در نسخه تازه این گزارش، شمار شرکت‌کنندگان نشست {fa_num(40 + i)} نفر اعلام شد "
            f"و برگزارکنندگان گفتند نشست بعدی {fa_num(3 + i % 9)} ماه دیگر برگزار می‌شود.")


def write_corpus(folder: Path, n_articles: int, version: int, rng_seed: int) -> list[str]:
    """Write the corpus (``version`` 1 or 2) into ``folder``; returns the article ids."""
    rng = random.Random(rng_seed)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    n_txt = max(1, n_articles - 4)  # the rest: one long article and three in a JSONL file
    ids = []
    for i in range(n_txt):
        title, text = variant(i, rng)
        if version == 2 and i % 2 == 0:
            text += update_note(i)
        aid = f"var_{i:03d}"
        (folder / f"{aid}.txt").write_text(f"{title}\n\n{text}\n", encoding="utf-8")
        ids.append(aid)
    parts = [variant(100 + j, rng, paragraphs=9) for j in range(4)]
    big = "\n\n".join(f"{t}\n\n{b}" for t, b in parts)
    if version == 2:
        big += update_note(99)
    (folder / "long_000.txt").write_text(f"گزارش بلند: شش نشست منطقه‌ای\n\n{big}\n", encoding="utf-8")
    ids.append("long_000")
    with open(folder / "batch.jsonl", "w", encoding="utf-8") as f:
        for j in range(3):
            title, text = variant(200 + j, rng)
            if version == 2 and j == 1:
                text += update_note(200 + j)
            aid = f"jl-{j:03d}"
            f.write(json.dumps({"id": aid, "title": title, "text": text, "source": "آزمایش"},
                               ensure_ascii=False) + "\n")
            ids.append(aid)
    return ids


# ---------------------------------------------------------------- the large base (--large)

def base_words() -> list[str]:
    title, paras = seed_article()
    return sorted(set(re.findall(r"[\u0600-\u06FF\u200c]+", "\n".join([title, *paras]))))


def base_article(i: int, words: list[str], seed: int):
    """Generated article ``i`` of the base: 12 sentences of 8-16 of the seed article's words and a
    number each, in three paragraphs (~900 characters, 2 passages)."""
    from rag import Article

    rng = random.Random(seed * 1_000_003 + i)
    sents = [" ".join(rng.choices(words, k=rng.randint(8, 16))) + f" {rng.randint(1, 9999)}." for _ in range(12)]
    text = "\n\n".join(" ".join(sents[k:k + 4]) for k in (0, 4, 8))
    return Article(id=f"base_{i:06d}", title=" ".join(sents[0].split()[:6]), text=text)


def corpus_passages(corpus: Path) -> int:
    """Passages the corpus makes with the hashed embedder's token count (as ingestion cuts it)."""
    from rag.articles import iter_files, load_file
    from rag.chunking import segment_article
    from rag.hashed import HashedEmbedder

    count = HashedEmbedder().count_tokens
    files, _ = iter_files([str(corpus)])
    return sum(len(segment_article(a, count).chunks) for f in files for a in load_file(f).articles)


def child_base(index: str, n: int, ann_from: int, corpus_pass: int, seed: int) -> None:
    """Build the base (in a child process): ~0.9 n articles in one ingestion (its vector file is
    written), then, in a second one, as many more as keep the file just under a tenth behind:
    lacking L <= T1/9 (not rewritten now) and L + corpus_pass > T1/9 (a whole fresh ingestion of
    the corpus rewrites it), aiming at T1/9 - corpus_pass/2."""
    from rag import RAG
    from rag.chunking import segment_article
    from rag.hashed import HashedEmbedder

    t0 = time.perf_counter()
    words = base_words()
    emb = HashedEmbedder()
    n1 = int(0.9 * n)
    r = RAG(index, embedder=emb, create=True, reader=False, ann_from=ann_from)
    r.store.records.db.execute("PRAGMA synchronous=OFF")  # setting up, not what is measured
    r.add_articles(base_article(i, words, seed) for i in range(n1))
    t1 = r.count()[1]
    r.close()
    target = t1 / (1 / REWRITE_SHARE - 1) - corpus_pass / 2
    more, lacking, i = [], 0, n1
    while True:
        art = base_article(i, words, seed)
        p = len(segment_article(art, emb.count_tokens).chunks)
        if lacking + p > target:
            break
        more.append(art)
        lacking += p
        i += 1
    r = RAG(index, embedder=emb, reader=False)
    r.store.records.db.execute("PRAGMA synchronous=OFF")
    r.add_articles(more)
    arts, passages = r.count()
    out = {"articles": arts, "passages": passages, "first": n1, "first_passages": t1, "lacking": lacking,
           "approximate": r.store.approximate, "file": r.store.manifest.get("vectors"),
           "generation": r.store.records.generation(), "seconds": round(time.perf_counter() - t0, 1)}
    r.close()
    print(json.dumps(out))


def child_ingest(corpus: str, index: str) -> int:
    """What `rag ingest CORPUS --index INDEX --json` does, with the hashed embedder."""
    from rag import RAG
    from rag.hashed import HashedEmbedder

    report = RAG(index, embedder=HashedEmbedder(), create=True, reader=False).ingest([corpus])
    print(json.dumps(report.to_json(), ensure_ascii=False), flush=True)
    return 0 if report.ok else 1


def child_list(index: str) -> int:
    """What `rag list --json --index INDEX` does, with the hashed embedder."""
    from rag import RAG
    from rag.hashed import HashedEmbedder

    for a in RAG(index, embedder=HashedEmbedder(), reader=False).articles():
        print(json.dumps({"id": a.id, "title": a.title, "chunks": a.chunks}, ensure_ascii=False))
    return 0


# ---------------------------------------------------------------- the index as SQLite holds it

def same_vectors(a: np.ndarray, b: np.ndarray, min_cos: float = 0.999) -> bool:
    """Row by row the same direction. Not bit for bit: the default embedder may embed a passage on
    either of its two engines (C or torch, by how much the process has embedded so far), whose
    vectors agree to cosine ~0.9999 (int8 codes may then differ by one); a torn or misplaced vector
    is far off."""
    if a.shape != b.shape:
        return False
    if not len(a):
        return True
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return bool((cos >= min_cos).all())


def same_packed(a: bytes, b: bytes, dim: int) -> bool:
    """Two blobs of int8 rows (``rag.backends.base.quantize``): equal, or the same directions."""
    from rag.backends.base import dequantize

    if a == b:
        return True
    if len(a) != len(b) or len(a) % (dim + 4):
        return False
    return same_vectors(dequantize(np.frombuffer(a, np.uint8), dim), dequantize(np.frombuffer(b, np.uint8), dim))


@dataclass
class ArticleState:
    sha: str
    passages: list[tuple[int, int]]
    passage_vecs: bytes  # the passages' int8 rows, in order
    sentence_spans: bytes  # int64 (start, end) pairs
    sentence_vecs: bytes  # int8 rows
    dim: int

    @property
    def n_sentences(self) -> int:
        return len(self.sentence_spans) // 16

    def same(self, other: "ArticleState") -> bool:
        return (self.sha == other.sha and self.passages == other.passages
                and self.sentence_spans == other.sentence_spans
                and same_packed(self.passage_vecs, other.passage_vecs, self.dim)
                and same_packed(self.sentence_vecs, other.sentence_vecs, self.dim))


def manifest_of(index: Path) -> dict:
    return json.loads((index / "manifest.json").read_text())


def db_generation(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
    return int(row[0]) if row else 0


def snapshot(index: Path) -> tuple[dict[str, ArticleState], list[str]]:
    """Every article as SQLite holds it, and what is wrong in the tables (problems)."""
    dim = int(manifest_of(index)["dim"])
    row = dim + 4
    db = sqlite3.connect(index / "rag.sqlite")
    try:
        problems = []
        gen = db_generation(db)
        shas = dict(db.execute("SELECT id, sha FROM articles"))
        lex = {r[0] for r in db.execute("SELECT rowid FROM lexicon")}
        passages: dict[str, list] = defaultdict(list)
        ids = set()
        torn = late = 0
        for pid, aid, seq, s, e, pgen, vec in db.execute(
                'SELECT id, article_id, seq, start, "end", gen, vector FROM passages ORDER BY article_id, seq'):
            passages[aid].append((seq, s, e, vec))
            ids.add(pid)
            torn += len(vec) != row
            late += pgen > gen
        sentences = {aid: (sp, v) for aid, sp, v in db.execute("SELECT article_id, spans, vectors FROM sentences")}
        out: dict[str, ArticleState] = {}
        for aid, sha in sorted(shas.items()):
            ps = passages.get(aid, [])
            if [p[0] for p in ps] != list(range(len(ps))):
                problems.append(f"article {aid}: passage seq {[p[0] for p in ps]}")
            sp, sv = sentences.get(aid, (b"", b""))
            if len(sp) % 16 or len(sv) != len(sp) // 16 * row:
                problems.append(f"article {aid}: sentence row torn ({len(sp)} span bytes, {len(sv)} vector bytes)")
            out[aid] = ArticleState(sha, [(p[1], p[2]) for p in ps], b"".join(p[3] for p in ps), sp, sv, dim)
        for kind, rows in (("passages", passages), ("sentences", sentences)):
            orphans = set(rows) - set(shas)
            if orphans:
                problems.append(f"{kind} of {len(orphans)} absent articles ({sorted(orphans)[:3]})")
        if lex != ids:
            problems.append(f"lexicon rows {len(lex)} != passages {len(ids)} "
                            f"({len(lex - ids)} orphan, {len(ids - lex)} missing)")
        if torn:
            problems.append(f"{torn} passage vectors of the wrong size")
        if late:
            problems.append(f"{late} passages of a generation after the database's {gen}")
        back = db.execute("SELECT count(*) FROM removed r JOIN passages p ON p.id = r.id").fetchone()[0]
        if back:
            problems.append(f"{back} removed passage ids are passages again")
        return out, problems
    finally:
        db.close()


@dataclass
class Vocab:
    """What the lexicon holds for a set of passages: per term, the FTS5 index's (passages, occurrences)
    (``fts5vocab`` row), and the passages holding it as ``term_df`` counts them (whitespace-split)."""
    fts: dict[str, tuple[int, int]] = field(default_factory=dict)
    df: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: "Vocab") -> "Vocab":
        fts, df = dict(self.fts), dict(self.df)
        for t, (d, c) in other.fts.items():
            d0, c0 = fts.get(t, (0, 0))
            fts[t] = (d0 + d, c0 + c)
        for t, d in other.df.items():
            df[t] = df.get(t, 0) + d
        return Vocab(fts, df)


def lexicon_tokenizer(db: sqlite3.Connection) -> str:
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name='lexicon'").fetchone()[0]
    m = re.search(r"tokenize\s*=\s*('(?:[^']|'')*'|\"[^\"]*\")", sql)
    return m.group(1) if m else "'unicode61'"


def passages_vocab(texts: list[tuple[str, str]], tokenizer: str) -> Vocab:
    """The :class:`Vocab` of passages ``(title, text)``, their rows made by
    ``rag.backends.base.passage_terms`` and indexed by an FTS5 table of the same tokenizer."""
    from rag.backends.base import passage_terms

    rows = [passage_terms(t, x) for t, x in texts]
    df: dict[str, int] = defaultdict(int)
    for row in rows:
        for t in set(row.split()):
            df[t] += 1
    mem = sqlite3.connect(":memory:")
    try:
        mem.execute(f"CREATE VIRTUAL TABLE l USING fts5(terms, content='', tokenize={tokenizer})")
        mem.execute("CREATE VIRTUAL TABLE v USING fts5vocab(l, 'row')")
        mem.executemany("INSERT INTO l(rowid, terms) VALUES (?, ?)", enumerate(rows, 1))
        return Vocab({t: (d, c) for t, d, c in mem.execute("SELECT term, doc, cnt FROM v")}, dict(df))
    finally:
        mem.close()


def index_passages(db: sqlite3.Connection, article_ids: list[str]) -> list[tuple[str, str]]:
    """``(title, passage text)`` of every passage of ``article_ids``."""
    out = []
    for aid in article_ids:
        title, text = db.execute("SELECT title, text FROM articles WHERE id=?", (aid,)).fetchone()
        out += [(title, text[s:e]) for s, e in db.execute('SELECT start, "end" FROM passages WHERE article_id=?',
                                                           (aid,))]
    return out


def base_vocab(index: Path, base_ids: set[str]) -> Vocab:
    db = sqlite3.connect(index / "rag.sqlite")
    try:
        return passages_vocab(index_passages(db, sorted(base_ids)), lexicon_tokenizer(db)) if base_ids else Vocab()
    finally:
        db.close()


def _differ(have: dict, want: dict) -> list:
    return sorted(t for t in set(have) | set(want) if have.get(t) != want.get(t))


def check_lexicon(index: Path, base_ids: set[str], base: Vocab) -> list[str]:
    """The lexicon is that of the passages stored, no more (nothing left of a passage deleted or
    rolled back) and no less: the FTS5 index's vocabulary (each term, the passages holding it, its
    occurrences; read through an ``fts5vocab`` table of this connection's own) and, where the index
    keeps one, ``term_df``. The base's part (``--large``) is computed once: its articles are checked
    whole apart."""
    db = sqlite3.connect(index / "rag.sqlite")
    try:
        db.execute("CREATE VIRTUAL TABLE temp.kill_vocab USING fts5vocab(main, 'lexicon', 'row')")
        have = {t: (d, c) for t, d, c in db.execute("SELECT term, doc, cnt FROM temp.kill_vocab")}
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        have_df = dict(db.execute("SELECT term, df FROM term_df")) if "term_df" in tables else None
        others = [r[0] for r in db.execute("SELECT id FROM articles") if r[0] not in base_ids]
        want = base + passages_vocab(index_passages(db, others), lexicon_tokenizer(db))
    finally:
        db.close()
    p = []
    wrong = _differ(have, want.fts)
    if wrong:
        extra = sum(have.get(t, (0, 0))[1] - want.fts.get(t, (0, 0))[1] for t in wrong)
        p.append(f"lexicon: {len(wrong)} terms hold other counts than the stored passages make "
                 f"({extra:+d} occurrences), e.g. {wrong[0]!r} {have.get(wrong[0])} vs {want.fts.get(wrong[0])}")
    if have_df is not None:
        wrong = _differ(have_df, want.df)
        if wrong:
            p.append(f"term_df: {len(wrong)} terms counted in other numbers of passages than are stored, "
                     f"e.g. {wrong[0]!r} {have_df.get(wrong[0])} vs {want.df.get(wrong[0])}")
    return p


# ---------------------------------------------------------------- the vector index against SQLite

def index_contents(index):
    """``(ids, vectors, sq8)`` a passage FAISS index holds: flat, as added; IVF,SQ8, decoded, with
    ``sq8(x)`` = what it would hold for ``x`` (encode then decode). Works on a copy."""
    import faiss

    index = faiss.deserialize_index(faiss.serialize_index(index))
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        flat = faiss.downcast_index(index.index)
        return ids, (flat.reconstruct_n(0, len(ids)) if len(ids) else np.zeros((0, index.d), np.float32)), None
    lists = ivf.invlists
    ids = [faiss.rev_swig_ptr(lists.get_ids(k), lists.list_size(k)).copy()
           for k in range(ivf.nlist) if lists.list_size(k)]
    ids = np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)
    if not len(ids):
        return ids, np.zeros((0, index.d), np.float32), None
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)

    def sq8(x: np.ndarray, _owner=index) -> np.ndarray:  # _owner: ``ivf`` lives inside it
        return ivf.sa_decode(ivf.sa_encode(np.ascontiguousarray(x, dtype=np.float32)))

    return ids, ivf.reconstruct_batch(ids), sq8


def sqlite_passages(index: Path) -> tuple[int, dict[int, tuple[int, bytes]], dict[int, int]]:
    """The database's generation, ``{passage id: (gen, int8 vector)}`` and ``{removed id: gen}``."""
    db = sqlite3.connect(index / "rag.sqlite")
    try:
        return (db_generation(db), {i: (g, v) for i, g, v in db.execute("SELECT id, gen, vector FROM passages")},
                dict(db.execute("SELECT id, gen FROM removed")))
    finally:
        db.close()


def vectors_differ(ids: np.ndarray, vecs: np.ndarray, sq8, rows: dict[int, tuple[int, bytes]], dim: int) -> int:
    """How many of ``ids`` hold another vector than their SQLite row's (dequantized)."""
    from rag.backends.base import dequantize

    if not len(ids):
        return 0
    want = dequantize(np.frombuffer(b"".join(rows[int(i)][1] for i in ids), np.uint8), dim)
    if sq8 is None:
        return int((np.abs(vecs - want).max(1) > 1e-6).sum())
    ok = np.abs(sq8(want) - vecs).max(1) <= 1e-5
    if not ok.all():
        cos = (vecs * want).sum(1) / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(want, axis=1) + 1e-12)
        ok |= cos >= 0.99
    return int((~ok).sum())


def check_memory(vector_index, index: Path, dim: int, where: str) -> list[str]:
    """The vector index of an open index holds exactly SQLite's passages, with their vectors."""
    _, rows, _ = sqlite_passages(index)
    ids, vecs, sq8 = index_contents(vector_index.index)
    if len(set(ids.tolist())) != len(ids) or set(ids.tolist()) != set(rows):
        held = set(ids.tolist())
        return [f"{where}: the vector index holds {len(ids)} ids, SQLite {len(rows)} passages "
                f"({len(held - set(rows))} extra, {len(set(rows) - held)} missing)"]
    bad = vectors_differ(ids, vecs, sq8, rows, dim)
    return [f"{where}: {bad} vectors of the vector index differ from SQLite's"] if bad else []


def disk_file_state(index: Path) -> str:
    """"none", "mismatch" (crc32 is not the manifest's: ignored on open), "current" or "behind"."""
    info = manifest_of(index).get("vectors") or {}
    fpath = index / VECTORS_FILE
    if not isinstance(info.get("generation"), int) or not fpath.exists():
        return "none"
    if zlib.crc32(fpath.read_bytes()) != info.get("crc32"):
        return "mismatch"
    db = sqlite3.connect(f"file:{index / 'rag.sqlite'}?mode=ro", uri=True)
    try:
        return "current" if info["generation"] == db_generation(db) else "behind"
    finally:
        db.close()


def check_disk_file(index: Path) -> list[str]:
    """``passages.faiss``, when its crc32 is the manifest's, is SQLite as of the manifest's
    generation G: it holds every passage of generation <= G, nothing else but ids removed after G,
    and each passage it holds still stored with the same vector."""
    from rag.backends.vectors import VectorIndex

    manifest = manifest_of(index)
    info = manifest.get("vectors") or {}
    fpath = index / VECTORS_FILE
    if not isinstance(info.get("generation"), int) or not fpath.exists():
        return []
    data = fpath.read_bytes()
    if zlib.crc32(data) != info.get("crc32"):
        return []  # not the file the manifest describes: ignored (rebuilt from SQLite) on open
    dim, g = int(manifest["dim"]), info["generation"]
    try:
        vi = VectorIndex.deserialize(data, dim, int(manifest.get("ann_from", 50_000)), 1)
    except (RuntimeError, ValueError) as exc:
        return [f"{VECTORS_FILE} matches its crc32 but does not load ({exc})"]
    gen, rows, removed = sqlite_passages(index)
    ids, vecs, sq8 = index_contents(vi.index)
    held = set(ids.tolist())
    p = []
    if g > gen:
        p.append(f"{VECTORS_FILE} claims generation {g}, the database is at {gen}")
    if info.get("approximate") is not None and bool(info["approximate"]) != vi.approximate:
        p.append(f"the manifest says approximate={info['approximate']}, the file is {vi.approximate}")
    missing = {i for i, (pg, _) in rows.items() if pg <= g} - held
    extra = {i for i in held - set(rows) if removed.get(i, -1) <= g}
    newer = {i for i in held & set(rows) if rows[i][0] > g}
    if missing or extra or newer or len(held) != len(ids):
        p.append(f"{VECTORS_FILE} (generation {g}) lacks {len(missing)} passages of its generation, holds "
                 f"{len(extra)} ids removed before it or never stored, {len(newer)} written after it")
    keep = np.array([i in rows for i in ids.tolist()], dtype=bool)
    bad = vectors_differ(ids[keep], vecs[keep], sq8, rows, dim) if len(ids) else 0
    if bad:
        p.append(f"{VECTORS_FILE}: {bad} vectors differ from SQLite's")
    return p


# ---------------------------------------------------------------- running and killing an ingestion

@dataclass
class Mode:
    """How ingestion is run: `rag ingest` (default embedder), or ``large``: this script as a child
    with the hashed embedder."""
    large: bool = False

    def ingest_cmd(self, corpus: Path, index: Path) -> list[str]:
        if self.large:
            return [sys.executable, str(Path(__file__).resolve()), "--child", "ingest", str(corpus), str(index)]
        return [sys.executable, "-m", "rag.cli", "ingest", str(corpus), "--index", str(index), "--json"]

    def list_cmd(self, index: Path) -> list[str]:
        if self.large:
            return [sys.executable, str(Path(__file__).resolve()), "--child", "list", str(index)]
        return [sys.executable, "-m", "rag.cli", "list", "--json", "--index", str(index)]

    def questions(self) -> list[str]:
        """The questions asked after a kill. Hashed vectors (``large``) find passages by shared terms
        only and the answer step abstains on the two usual questions: a third one, the seed's lead
        word for word, must then be answered whenever corpus articles are present."""
        return QUESTIONS + ([seed_article()[1][0][:80]] if self.large else [])

    def open(self, index: Path):
        from rag import RAG

        if self.large:
            from rag.hashed import HashedEmbedder

            return RAG(index, embedder=HashedEmbedder())
        return RAG(index)


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def run_ingest(mode: Mode, corpus: Path, index: Path, log: Path) -> tuple[int, dict | None, float]:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.run(mode.ingest_cmd(corpus, index), cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=f,
                           text=True, timeout=1800)
    secs = time.perf_counter() - t0
    try:
        report = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        report = None
    return p.returncode, report, secs


def journal(index: Path) -> Path:
    return index / "rag.sqlite-journal"


def temp_files(index: Path, kind: str = "") -> list[str]:
    """Temp files of atomic writes (``NAME.XXXXXX.tmp``), of ``kind`` (a file name) when given."""
    try:
        return sorted(n for n in os.listdir(index) if n.endswith(".tmp") and n.startswith(kind))
    except OSError:
        return []


def kill_ingest(mode: Mode, corpus: Path, index: Path, log: Path, moment: str, delay: float,
                rng: random.Random) -> tuple[bool, float]:
    """Start the ingestion, SIGKILL it as ``moment`` says; returns (killed, seconds after start)."""
    with open(log, "w") as f:
        proc = subprocess.Popen(mode.ingest_cmd(corpus, index), cwd=ROOT, env=env(), stdout=f,
                                stderr=subprocess.STDOUT)
    t0 = time.perf_counter()
    try:
        deadline = t0 + delay
        while time.perf_counter() < deadline and proc.poll() is None:
            time.sleep(0.002)
        if moment == "in-transaction":
            while proc.poll() is None and not journal(index).exists():
                time.sleep(0.0002)
            time.sleep(rng.uniform(0, 0.003))
        elif moment.startswith("in-cache-write"):
            kind = moment.split(":")[1]
            while proc.poll() is None and not temp_files(index, kind):
                time.sleep(0.0002)
        if proc.poll() is not None:
            return False, time.perf_counter() - t0
        os.kill(proc.pid, signal.SIGKILL)
        at = time.perf_counter() - t0
        proc.wait()
        return True, at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def classify(index: Path) -> tuple[str, bool]:
    """Where the kill landed, from the files it left (read before anything opens the index)."""
    if not (index / "manifest.json").exists():
        return "before the index existed", bool(temp_files(index))
    j = journal(index)
    if j.exists() and j.stat().st_size > 0:
        return "inside a SQLite transaction (journal left)", True
    tmps = temp_files(index)
    if tmps:
        kinds = sorted({re.sub(r"\.[^.]+\.tmp$", "", t) for t in tmps})
        return f"inside an atomic write of {', '.join(kinds)} (temp file left)", True
    try:
        state = disk_file_state(index)
    except (sqlite3.Error, OSError, ValueError):
        return "while creating the database", False
    return {"none": "between transactions, no vector file yet",
            "mismatch": "between transactions, vector file not the manifest's (crc32)",
            "current": "between transactions, vector file current",
            "behind": "between transactions, vector file behind SQLite"}[state], False


# ---------------------------------------------------------------- the checks

@dataclass
class Trial:
    n: int
    scenario: str
    mode: str
    killed: bool = False
    at: float = 0.0
    landed: str = ""
    mid_write: bool = False
    present: int = 0  # corpus articles present after the kill
    old_versions: int = 0
    asked: int = 0
    abstained: int = 0
    file_after_kill: str = ""
    file_after_rerun: str = ""
    rerun_added: int = 0
    rerun_updated: int = 0
    rerun_unchanged: int = 0
    litter: int = 0  # temp files of killed atomic writes still in the folder after the re-run
    problems: list[str] = field(default_factory=list)


def check_after_kill(mode: Mode, trial: Trial, index: Path, refs: list[dict[str, ArticleState]],
                     corpus_ids: list[str], base_ids: set[str], base_lex: Vocab) -> dict[str, ArticleState]:
    """Checks 1-4; returns the articles present."""
    p = trial.problems
    lst = subprocess.run(mode.list_cmd(index), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    if not (index / "manifest.json").exists():
        if lst.returncode != 2 or "no index" not in lst.stderr:
            p.append(f"rag list without an index: exit {lst.returncode}, {lst.stderr.strip()[:200]}")
        return {}
    listed = [json.loads(ln) for ln in lst.stdout.splitlines() if ln.strip()] if lst.returncode == 0 else None
    if listed is None:
        p.append(f"listing failed: exit {lst.returncode}: {lst.stderr.strip()[-300:]}")
    try:
        r = mode.open(index)
    except Exception as exc:  # noqa: BLE001 - any failure to open is what this script looks for
        p.append(f"RAG(index) failed: {type(exc).__name__}: {exc}")
        return {}
    try:
        trial.file_after_kill = disk_file_state(index)  # (opening rolled back a transaction left)
        state, table_problems = snapshot(index)
        p.extend(table_problems)
        if listed is not None and sorted(a["id"] for a in listed) != sorted(state):
            p.append("the listing disagrees with SQLite")
        for aid, st in state.items():
            matches = [i for i, ref in enumerate(refs) if aid in ref and st.same(ref[aid])]
            if not matches:
                p.append(f"article {aid} is not whole (matches no reference version: "
                         f"{len(st.passages)} passages, {st.n_sentences} sentences)")
            elif 0 in matches and len(refs) > 1 and 1 not in matches:
                trial.old_versions += 1
        lost = base_ids - set(state)
        if lost:
            p.append(f"{len(lost)} articles of the base are gone")
        p.extend(check_lexicon(index, base_ids, base_lex))
        p.extend(check_memory(r.store.vectors, index, r.store.dim, "after open"))
        p.extend(check_disk_file(index))
        for q in mode.questions():
            try:
                ans = r.ask(q)
            except Exception as exc:  # noqa: BLE001
                p.append(f"ask {q!r} failed: {type(exc).__name__}: {exc}")
                continue
            trial.asked += 1
            trial.abstained += ans.abstained
            must = bool(set(state) & set(corpus_ids)) if mode.large else bool(state)
            if ans.abstained and must and (not mode.large or q not in QUESTIONS):
                p.append(f"ask {q!r} abstained with {len(state)} articles present")
            if not state and not ans.abstained:
                p.append(f"ask {q!r} answered from an empty index")
            for c in ans.citations:
                if r.article(c.article_id).text[c.start:c.end] != c.quote:
                    p.append(f"quote [{c.n}] is not a slice of {c.article_id}")
        return {a: s for a, s in state.items() if a in corpus_ids}
    finally:
        r.close()


def check_final(trial: Trial, index: Path, ref: dict[str, ArticleState], base_ids: set[str], base_lex: Vocab) -> None:
    """Check 5 after the re-run: the reference's articles, the vector index caught up, the file."""
    from rag.backends import open_index

    state, table_problems = snapshot(index)
    trial.problems.extend(table_problems)
    if sorted(state) != sorted(ref):
        trial.problems.append(f"after re-run: ids {sorted(set(state) ^ set(ref))[:5]} differ from the reference")
    for aid in set(state) & set(ref):
        if not state[aid].same(ref[aid]):
            trial.problems.append(f"after re-run: {aid} differs from the reference "
                                  f"({len(state[aid].passages)} vs {len(ref[aid].passages)} passages)")
    trial.problems.extend(f"after re-run: {x}" for x in check_lexicon(index, base_ids, base_lex))
    trial.file_after_rerun = disk_file_state(index)
    trial.problems.extend(f"after re-run: {x}" for x in check_disk_file(index))
    try:
        store = open_index(index)
    except Exception as exc:  # noqa: BLE001
        trial.problems.append(f"after re-run: open failed: {type(exc).__name__}: {exc}")
        return
    try:
        trial.problems.extend(check_memory(store.vectors, index, store.dim, "after re-run, open"))
    finally:
        store.close()


# ---------------------------------------------------------------- the report

def code_version() -> str:
    """The commit, and whether rag/ or app.py had uncommitted changes when the figures were taken."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "rag", "app.py")
    return git("rev-parse", "--short", "HEAD") + (" with uncommitted changes in rag/" if dirty else "")


def write_section(out: Path, name: str, body: str) -> None:
    """Replace this script's section of the results file (between its markers), or append it."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = out.read_text(encoding="utf-8") if out.exists() else "# Robustness\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    out.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=5, help="RNG seed for the corpus and the kill moments")
    ap.add_argument("--articles", type=int, default=12, help="articles in the corpus (at least 5)")
    ap.add_argument("--update-share", type=float, default=0.3, help="share of kills during an update")
    ap.add_argument("--large", type=int, default=0, metavar="N",
                    help="ingest into copies of a base index of ~N generated articles (hashed vectors)")
    ap.add_argument("--ann-from", type=int, default=2000,
                    help="with --large: passages from which the base is approximate (IVF,SQ8; retrained from "
                         "SQLite when it has grown 8x, so the default base is retrained once while built)")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "robustness.md",
                    help="results file to update ('-' to skip)")
    args = ap.parse_args(argv)
    mode = Mode(large=args.large > 0)
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus"
    shown = list(argv if argv is not None else sys.argv[1:])
    for opt in ("--out", "--work"):  # where results and scratch go: not part of what was run
        if opt in shown and shown.index(opt) + 1 < len(shown):
            del shown[shown.index(opt):shown.index(opt) + 2]
    command = " ".join(["python bench/kill_ingest.py", *shown])
    t_start = time.perf_counter()

    # The references: clean ingestions of version 1 (into a new index, or a copy of the base) and
    # version 2 (over version 1).
    ids = write_corpus(corpus, args.articles, 1, args.seed)
    ref1_index, ref2_index, base_index = work / "ref1", work / "ref2", work / "base"
    base: dict = {}
    if mode.large:
        a = corpus_passages(corpus)
        print(f"building the base: ~{args.large} articles, ann_from {args.ann_from} ...", flush=True)
        p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "base", str(base_index),
                            str(args.large), str(args.ann_from), str(a), str(args.seed)],
                           cwd=ROOT, env=env(), capture_output=True, text=True)
        if p.returncode:
            print(f"building the base failed:\n{p.stderr[-3000:]}", file=sys.stderr)
            return 1
        base = json.loads(p.stdout.strip().splitlines()[-1])
        base["corpus_passages"] = a
        print(f"base: {base}", flush=True)
        shutil.copytree(base_index, ref1_index)
    rc, rep, t_ref1 = run_ingest(mode, corpus, ref1_index, work / "ref1.log")
    if rc != 0 or rep is None or sorted(rep["added"]) != sorted(ids):
        print(f"reference ingestion failed (exit {rc}); see {work / 'ref1.log'}", file=sys.stderr)
        return 1
    ref1_file = disk_file_state(ref1_index)
    shutil.copytree(ref1_index, ref2_index)
    write_corpus(corpus, args.articles, 2, args.seed)
    rc, rep2, t_ref2 = run_ingest(mode, corpus, ref2_index, work / "ref2.log")
    if rc != 0 or rep2 is None:
        print(f"reference update failed (exit {rc}); see {work / 'ref2.log'}", file=sys.stderr)
        return 1
    ref2_file = disk_file_state(ref2_index)
    embedder = manifest_of(ref1_index)["embedder"]
    head = code_version()
    ref1, probs1 = snapshot(ref1_index)
    ref2, probs2 = snapshot(ref2_index)
    base_ids = set(ref1) - set(ids)
    base_lex = base_vocab(ref1_index, base_ids)
    ref_problems = (probs1 + probs2 + check_disk_file(ref1_index) + check_disk_file(ref2_index)
                    + check_lexicon(ref1_index, base_ids, base_lex) + check_lexicon(ref2_index, base_ids, base_lex))
    if ref_problems:
        print(f"the references themselves fail the checks: {ref_problems}", file=sys.stderr)
        return 1
    n_chunks = sum(len(ref1[a].passages) for a in ids)
    n_sent = sum(ref1[a].n_sentences for a in ids)
    print(f"corpus: {len(ids)} articles, {n_chunks} passages, {n_sent} sentences; clean ingestion {t_ref1:.1f} s "
          f"(vector file after it: {ref1_file}), update of {len(rep2['updated'])} articles {t_ref2:.1f} s "
          f"(vector file: {ref2_file})", flush=True)

    trials: list[Trial] = []
    run_time = {"fresh": t_ref1, "update": t_ref2}  # shortened when a run ends before its kill
    n = 0
    while sum(t.killed for t in trials) < args.kills and n < 2 * args.kills:
        n += 1
        scenario = "update" if rng.random() < args.update_share else "fresh"
        # --large: an update does not rewrite the vector file (it adds too little), so no cache-write kill
        weights = ([6, 3, 1] if not mode.large else [3, 4, 3] if scenario == "fresh" else [4, 6, 0])
        moment = rng.choices(["timed", "in-transaction", "in-cache-write"], weights=weights)[0]
        if moment == "in-cache-write":
            moment += ":" + rng.choice([VECTORS_FILE, VECTORS_FILE, "manifest.json"])
        t = Trial(n, scenario, moment)
        index = work / f"kill{n:02d}"
        if scenario == "fresh":
            if mode.large:
                shutil.copytree(base_index, index)
            write_corpus(corpus, args.articles, 1, args.seed)
            refs, final_ref = [ref1], ref1
        else:
            shutil.copytree(ref1_index, index)
            write_corpus(corpus, args.articles, 2, args.seed)
            refs, final_ref = [ref1, ref2], ref2
        ref_time = run_time[scenario]
        delay = rng.uniform(0.0, ref_time) if moment == "timed" else rng.uniform(0.0, 0.8 * ref_time)
        t.killed, t.at = kill_ingest(mode, corpus, index, work / f"kill{n:02d}.log", moment, delay, rng)
        if not t.killed:  # this run was quicker than the reference (a shared machine): aim earlier next time
            run_time[scenario] = min(run_time[scenario], t.at)
        t.landed, t.mid_write = classify(index) if t.killed else ("the run finished before the kill", False)
        present = check_after_kill(mode, t, index, refs, ids, base_ids, base_lex)
        t.present = len(present)
        rc, rep, _ = run_ingest(mode, corpus, index, work / f"rerun{n:02d}.log")
        if rc != 0 or rep is None:
            t.problems.append(f"re-run exited {rc}")
        else:
            t.rerun_added, t.rerun_updated, t.rerun_unchanged = map(len, (rep["added"], rep["updated"],
                                                                          rep["unchanged"]))
            complete = sorted(a for a, s in present.items() if a in final_ref and s.same(final_ref[a]))
            if sorted(rep["unchanged"]) != complete:
                t.problems.append(f"re-run called {len(rep['unchanged'])} articles unchanged; "
                                  f"{len(complete)} were complete after the kill")
            check_final(t, index, final_ref, base_ids, base_lex)
            t.litter = len(temp_files(index))
        trials.append(t)
        print(f"run {n:2d} (kill {sum(x.killed for x in trials)}/{args.kills}) {scenario:6s} {moment:29s} "
              f"at {t.at:5.2f} s: {t.landed}; {t.present} articles present ({t.old_versions} old versions); "
              f"file {t.file_after_kill or '-'} -> {t.file_after_rerun or '-'}; re-run added {t.rerun_added}, "
              f"updated {t.rerun_updated}, unchanged {t.rerun_unchanged}; "
              + ("ok" if not t.problems else "FAILED: " + "; ".join(t.problems)), flush=True)
        if not args.keep:
            shutil.rmtree(index, ignore_errors=True)

    failures = sum(1 for t in trials if t.problems)
    kills = sum(t.killed for t in trials)
    mid = sum(t.mid_write for t in trials)
    total = time.perf_counter() - t_start
    print(f"{kills} kills ({mid} mid-write) in {len(trials)} runs, failures: {failures}; {total:.0f} s")

    if str(args.out) != "-":
        write_section(args.out, "kill_ingest_large" if mode.large else "kill_ingest",
                      report(args, mode, command, head, embedder, total, ids, n_chunks, n_sent, t_ref1, t_ref2,
                             rep2, ref1_file, ref2_file, base, trials))
        print(f"wrote {args.out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept: {work}")
    return 1 if failures else 0


def report(args, mode: Mode, command: str, head: str, embedder: str, total: float, ids: list[str], n_chunks: int,
           n_sent: int, t_ref1: float, t_ref2: float, rep2: dict, ref1_file: str, ref2_file: str, base: dict,
           trials: list[Trial]) -> str:
    kills = sum(t.killed for t in trials)
    landed: dict[str, int] = {}
    for t in trials:
        landed[t.landed] = landed.get(t.landed, 0) + 1

    def tally(values) -> str:
        counts: dict[str, int] = {}
        for v in values:
            counts[v or "-"] = counts.get(v or "-", 0) + 1
        return ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))

    rows = "\n".join(
        f"| {t.n} | {t.scenario} | {t.mode} | {t.at:.2f} | {t.landed} | {t.present} | {t.old_versions} | "
        f"{t.file_after_kill or '-'} → {t.file_after_rerun or '-'} | "
        f"{t.rerun_added}/{t.rerun_updated}/{t.rerun_unchanged} | {'ok' if not t.problems else 'FAILED'} |"
        for t in trials)
    if mode.large:
        title = f"## `kill -9` during ingestion into a large approximate index (`--large {args.large}`)"
        setting = (
            f"Base: {base['articles']:,} generated articles, {base['passages']:,} passages, embedder `{embedder}` "
            f"(`rag.hashed`), `ann_from` {args.ann_from:,}: passage search approximate (IVF,SQ8: "
            f"{base['approximate']}); built in {base['seconds']:.0f} s (approximate from {args.ann_from:,} passages, "
            f"retrained from SQLite each time it grew 8×), its `{VECTORS_FILE}` written at "
            f"{base['first_passages']:,} passages and left {base['lacking']:,} behind (under a tenth), so a whole "
            f"ingestion of the corpus ({base['corpus_passages']} passages) rewrites it. Each kill ingests into a copy "
            f"of the base (fresh) or of the first reference (update), as `RAG(index, embedder=HashedEmbedder())"
            f".ingest([corpus])` in a child process (the CLI cannot load a `hashed-384` index's embedder).\n\n"
            f"Corpus: the same {len(ids)} articles as above, {n_chunks} passages and {n_sent} sentences; its clean "
            f"ingestion into the base takes {t_ref1:.1f} s (start-up and opening the index included; vector "
            f"file after it: {ref1_file}), the update of {len(rep2['updated'])} changed articles {t_ref2:.1f} s "
            f"(vector file: {ref2_file}).")
    else:
        title = "## `kill -9` during `rag ingest`"
        setting = (
            f"Corpus (built from `seeds/` alone): {len(ids)} articles ({args.articles - 4} variants of the seed "
            f"article, one long article made of four whole variants, three more in a JSONL file), {n_chunks} "
            f"passages and {n_sent} sentences; a clean ingestion takes {t_ref1:.1f} s (vector file after it: "
            f"{ref1_file}), the update of {len(rep2['updated'])} changed articles {t_ref2:.1f} s (vector file: "
            f"{ref2_file}).")
    failures = sum(1 for t in trials if t.problems)
    return f"""{title}

`{command}` ({time.strftime('%Y-%m-%d')}, at {head}, embedder `{embedder}`, {total:.0f} s on the shared 2-core machine)

{setting}

| | |
|---|---|
| runs | {len(trials)} ({sum(t.scenario == 'fresh' for t in trials)} fresh, {sum(t.scenario == 'update' for t in trials)} updating) |
| `kill -9` delivered | {kills} |
| kills that landed mid-write (journal or temp file left) | {sum(t.mid_write for t in trials)} |
| where they landed | {'; '.join(f'{v} {k}' for k, v in sorted(landed.items(), key=lambda kv: -kv[1]))} |
| corpus articles present after each kill | {', '.join(str(t.present) for t in trials if t.killed)} (of {len(ids)}) |
| `{VECTORS_FILE}` after the kill / after the re-run | {tally(t.file_after_kill for t in trials)} / {tally(t.file_after_rerun for t in trials)} |
| questions abstained | {sum(t.abstained for t in trials)} of {sum(t.asked for t in trials)} |
| failures (any check) | **{failures}** |
| temp files of killed writes still there after the re-run | {sum(t.litter for t in trials)} (never read; not cleaned up) |

| # | scenario | moment | killed at (s) | what it left | corpus articles present | old versions | vector file: after kill → after re-run | re-run added/updated/unchanged | checks |
|---|---|---|---|---|---|---|---|---|---|
{rows}
"""


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        what, rest = sys.argv[2], sys.argv[3:]
        if what == "base":
            child_base(rest[0], int(rest[1]), int(rest[2]), int(rest[3]), int(rest[4]))
            sys.exit(0)
        sys.exit(child_ingest(*rest) if what == "ingest" else child_list(*rest))
    sys.exit(main())
