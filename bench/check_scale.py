"""`rag check` on a big consistent embedded index (hashed embedder): how long, and no false alarm.

    python bench/check_scale.py --build 100000 --index /tmp/rag-check100k   # once (~30-60 min, 2 cores)
    python bench/check_scale.py --index /tmp/rag-check100k                  # time `rag check --json`

Articles as bench/scale.py makes them (sentences of ../shared eval/train sets, ~1,900 characters);
vectors from ``rag.hashed.HashedEmbedder`` (the index records ``hashed-384``, which ``rag check``
loads to re-embed its sample).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def build(index: str, n: int, batch: int = 2000) -> None:
    from rag import RAG
    from rag.hashed import HashedEmbedder
    from scale import make_articles, sentence_pool

    pool = sentence_pool()
    r = RAG(index, embedder=HashedEmbedder(), create=True, reader=False)
    r.store.records.db.execute("PRAGMA synchronous=OFF")  # setting up, not what is measured
    have = r.count()[0]
    t0 = time.perf_counter()
    for at in range(have, n, batch):
        r.add_articles(make_articles(pool, at, min(batch, n - at)))
        print(f"{min(at + batch, n)} articles, {time.perf_counter() - t0:.0f} s", flush=True)
    print(json.dumps({"articles": r.count()[0], "passages": r.count()[1], "approximate": r.store.approximate,
                      "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    r.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="/tmp/rag-check100k")
    ap.add_argument("--build", type=int, default=0, help="first build (or complete) an index of N articles")
    args = ap.parse_args()
    if args.build:
        build(args.index, args.build)
        return 0
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "rag.cli", "check", "--index", args.index, "--json"], cwd=ROOT,
                       capture_output=True, text=True)
    seconds = time.perf_counter() - t
    print(p.stdout[-4000:], p.stderr[-2000:], sep="\n")
    print(json.dumps({"exit": p.returncode, "seconds": round(seconds, 1)}))
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
