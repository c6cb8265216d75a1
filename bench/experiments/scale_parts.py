"""Parts of bench/scale.py's figures, measured before and after a change in one session (ratios).

    python bench/experiments/scale_parts.py keys INDEX          # reading story-group candidates: all key rows vs 16 a key
    python bench/experiments/scale_parts.py add INDEX [--code DIR]   # add 1,000 articles (DIR: another checkout, e.g.
                                                    #   git worktree add ../before HEAD~1)
    python bench/experiments/scale_parts.py overlap INDEX       # questions with the embedding alongside the lexical read, or not

INDEX is an index bench/scale.py built (/tmp/rag-scale). ``keys`` only reads; ``add`` adds the next
1,000 articles bench/scale.py would (alternate ``--code`` between two checkouts to compare them on
the same index); ``overlap`` asks bench/scale.py's 60 questions both ways, interleaved twice.
Results in bench/results/scale.md (by hand).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from collections import Counter
from concurrent.futures import Future
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # bench/scale.py


def keys(index: str) -> None:
    db = sqlite3.connect(f"file:{index}/rag.sqlite?mode=ro", uri=True)
    ids = [r[0] for r in db.execute("SELECT article_id FROM story_keys WHERE seq % 97 = 0")]
    random.Random(1).shuffle(ids)
    ids = ids[:300]
    mine = {a: [k for (k,) in db.execute("SELECT key FROM story_keys WHERE article_id=?", (a,))] for a in ids}

    def every_row(a):  # the read before: every matching key row, grouped
        marks = ",".join("?" * len(mine[a]))
        return db.execute(f"SELECT c.article_id, a.minhash, c.shared FROM (SELECT article_id, count(*) AS shared "
                          f"FROM story_keys WHERE key IN ({marks}) AND article_id != ? GROUP BY article_id "
                          f"ORDER BY shared DESC LIMIT 32) c JOIN articles a ON a.id = c.article_id",
                          (*mine[a], a)).fetchall()

    def per_key(a):  # the read after: the newest 16 rows a key
        arm = "SELECT * FROM (SELECT article_id FROM story_keys WHERE key=? AND article_id != ? ORDER BY seq DESC LIMIT 16)"
        shared = Counter(r[0] for r in db.execute(" UNION ALL ".join([arm] * len(mine[a])),
                                                  [x for k in mine[a] for x in (k, a)]))
        kept = [x for x, _ in sorted(shared.items(), key=lambda x: (-x[1], x[0]))[:32]]
        return db.execute(f"SELECT id, minhash FROM articles WHERE id IN ({','.join('?' * len(kept))})", kept).fetchall()

    rows = [db.execute(f"SELECT count(*) FROM story_keys WHERE key IN ({','.join('?' * len(mine[a]))})",
                       mine[a]).fetchone()[0] - len(mine[a]) for a in ids]
    for rep in range(2):
        for name, fn in (("every row", every_row), ("16 a key", per_key)):
            t = time.perf_counter()
            for a in ids:
                fn(a)
            print(f"{rep} {name}: {1000 * (time.perf_counter() - t) / len(ids):.2f} ms an article", flush=True)
    n = db.execute("SELECT count(*) FROM articles").fetchone()[0]
    print(f"{n} articles; matching key rows an article: {sum(rows) / len(rows):.0f}")


def add(index: str) -> None:
    import rag  # from --code, before bench/scale.py puts this checkout first on the path
    from rag import RAG
    from rag.hashed import HashedEmbedder
    from scale import make_articles, sentence_pool, store_timed  # this checkout's bench: the same articles

    r = RAG(index, embedder=HashedEmbedder(), reader=False)
    have = r.count()[0]
    seconds = store_timed(r, list(make_articles(sentence_pool(), have, 1000)))
    print(f"{rag.__file__}: {have} articles, add 1,000: {seconds:.2f} s", flush=True)
    r.close()


def overlap(index: str) -> None:
    from rag import RAG
    from scale import QueryE5, ask_timed, questions, sentence_pool

    class Inline:  # the question embedded first, then the index read (as before)
        def submit(self, fn):
            f = Future()
            f.set_result(fn())
            return f

    r = RAG(index, embedder=QueryE5(), reader=False)
    qs = questions(sentence_pool())
    r.ask("گرم کردن")
    threaded = r.retriever.embedding
    for rep in range(2):
        for name in ("embedded first", "alongside"):
            r.retriever.embedding = Inline() if name == "embedded first" else threaded
            p50, p95 = ask_timed(r, qs)
            print(f"{rep} {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms", flush=True)
    r.retriever.embedding = threaded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["keys", "add", "overlap"])
    ap.add_argument("index")
    ap.add_argument("--code", default=str(ROOT), help="the checkout whose rag/ to import (add)")
    args = ap.parse_args()
    sys.path.insert(0, str(args.code))
    {"keys": keys, "add": add, "overlap": overlap}[args.what](args.index)


if __name__ == "__main__":
    main()
