"""Whole-ingestion throughput: `RAG.ingest` of a folder of articles into a new index, in a fresh process.

    python bench/ingest.py [--articles 200] [--model e5-small] [--seed 3]

The articles are built from the repo's own text like bench/embed.py's passages: each has a title
and 1-6 paragraphs of 50-250 tokens, written as .txt files to a temporary folder. Reports the wall
time of `RAG.ingest` (loading, chunking, embedding passages and sentences, storing), the model
tokens it embedded, tokens/s and articles/s. The model (and torch, for e5-small's bulk engine) is
loaded inside the timed run, as for a user's `rag ingest`.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def write_articles(folder: Path, n: int, seed: int) -> None:
    from embed import build_passages

    rng = random.Random(seed)
    paragraphs = build_passages(n * 4, seed=seed)
    for i in range(n):
        body = [paragraphs.pop() for _ in range(rng.randint(1, 6)) if paragraphs]
        title = " ".join(body[0].split()[:8])
        (folder / f"article-{i:04d}.txt").write_text(title + "\n\n" + "\n\n".join(body) + "\n", encoding="utf-8")


def run(folder: Path, index: Path, model: str) -> dict:
    t0 = time.perf_counter()
    from rag import RAG

    rag = RAG(index, model=model, create=True)
    report = rag.ingest([folder])
    seconds = time.perf_counter() - t0
    return {"articles": len(report.added), "skipped": len(report.skipped), "chunks": report.chunks,
            "tokens": report.tokens, "seconds": round(seconds, 2), "ingest_seconds": round(report.seconds, 2),
            "tokens_per_s": round(report.tokens / seconds), "articles_per_s": round(len(report.added) / seconds, 2),
            "engine_at_end": getattr(rag.embedder, "engine", None)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=200)
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(run(*args.worker, args.model)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "articles"
        folder.mkdir()
        write_articles(folder, args.articles, args.seed)
        out = subprocess.run([sys.executable, __file__, "--model", args.model, "--worker", str(folder),
                              str(Path(tmp) / "index")], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps({"model": args.model, **result}))


if __name__ == "__main__":
    main()
