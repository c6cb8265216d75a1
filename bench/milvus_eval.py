"""Retrieval on an evaluation set with the Milvus backend against the embedded one.

    python bench/milvus_eval.py [--data ../shared/eval/xquad_dev] [--milvus HOST:PORT] [--out bench/results/milvus.md]

Builds both indexes from the set's ``passages.jsonl`` with the bundled embedder (each passage is
embedded once; both indexes store the same vectors): the embedded backend in a temporary folder,
the Milvus backend in a fresh collection of a Milvus server — by default a Milvus Lite gRPC server
started here on a free local port (``milvus-lite server``), the same client path as a cluster.
Then asks every question (``RAG.search(q, k=10)``) and reports R@1/5/10 and MRR@10 as
``rag eval`` defines them (the gold passage among the top articles; ``rag.eval._metrics``) with
the question latency (embedding the question included), and writes a Markdown report.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag import RAG, Article  # noqa: E402
from rag.embedders import load_embedder  # noqa: E402
from rag.eval import _metrics, _read_jsonl  # noqa: E402


class CachedPassages:
    """The embedder, with its passage vectors kept: the second index does not embed again."""

    def __init__(self, embedder) -> None:
        self._e = embedder
        self.name, self.dim = embedder.name, embedder.dim
        self._cache: dict[str, object] = {}

    def embed_passages(self, texts):
        import numpy as np

        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            self._cache.update(zip(todo, self._e.embed_passages(todo)))
        return np.vstack([self._cache[t] for t in texts]) if texts else self._e.embed_passages([])

    def embed_queries(self, texts):
        return self._e.embed_queries(texts)

    def count_tokens(self, text):
        return self._e.count_tokens(text)


NOTES = """\
Notes:

- Both indexes hold the same int8 vectors and the same terms; the Milvus side searches HNSW (M 16,
  ef ≥ 100) and Milvus's BM25 function (k1 1.2, b 0.75) where the embedded one searches exactly and with
  SQLite FTS5's bm25(). Milvus Lite's BM25 statistics are per segment, and its idf is log(1 + …)
  where FTS5's is log(…): the lexical rankings differ a little, the fused top 5 hardly.
- A question makes a dense search and the term counts at once, then the BM25 search (the rarest terms,
  as the embedded backend). The lexical weight needs each query term's document frequency: a
  `count(*)` query per term filtered by `text_match` (exact), cached 30 s per process. On a Milvus
  server `text_match` uses the field's inverted index; Milvus Lite (pure Python) scans and tokenizes
  every row for it, which is most of the Milvus latency above. Milvus Lite is the test server here,
  not a serving target: the latency of a Milvus cluster was not measured (none on this machine).
- The machine (2 cores) was shared with other jobs during the run: compare latencies within a run only.
"""


def start_milvus_lite(folder: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", folder, "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from pymilvus import MilvusClient

    deadline = time.time() + 60
    while True:
        try:
            MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=2).close()
            return proc, f"127.0.0.1:{port}"
        except Exception:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise SystemExit("milvus-lite server did not start")
            time.sleep(0.3)


def run(location: str, embedder, passages: list[dict], questions: list[dict]) -> dict:
    t0 = time.perf_counter()
    rag = RAG(location, embedder=embedder, create=True, reader=False)
    rag.add_articles(Article(id=str(p["passage_id"]), title=p.get("title") or "", text=p["text"]) for p in passages)
    index_s = time.perf_counter() - t0
    rag.search("warm up", k=10)
    rows = []
    for q in questions:
        t = time.perf_counter()
        retrieved = rag.search(q["question"], k=10)
        latency = time.perf_counter() - t
        ranked = [a for a, _ in retrieved.articles()]
        gold = str(q["passage_id"])
        rows.append({"lang": q.get("lang", "fa"), "rank": ranked.index(gold) + 1 if gold in ranked else None,
                     "answerable": bool(q.get("answers")), "abstained": None, "hit1": False, "hit3": False,
                     "latency": latency, "top": ranked[:5]})
    counts = rag.count()
    parts = breakdown(rag, questions[:50]) if location.startswith("milvus://") else {}
    rag.close()
    by_lang = {lang: _metrics([r for r in rows if r["lang"] == lang]) for lang in sorted({r["lang"] for r in rows})}
    return {"index_s": index_s, "counts": counts, "by_lang": by_lang, "all": _metrics(rows), "rows": rows,
            "parts": parts}


def breakdown(rag, questions: list[dict]) -> dict[str, float]:
    """Median ms of each request a question makes to Milvus, made one at a time."""
    from rag.backends.base import rarest
    from rag.backends.milvus import _PASSAGE_FIELDS
    from rag.persian import terms

    store, cfg = rag.store, rag.config
    pool = store._executor()
    times: dict[str, list[float]] = {"dense search": [], "document frequencies, all terms (uncached)": [],
                                     "document frequency, per term": [], "BM25 search": [], "count(*)": []}
    for q in questions:
        qv = rag.embedder.embed_queries([q["question"]])[0]
        words = sorted(set(terms(q["question"])))
        t = time.perf_counter()
        store.client.search(store.passages_name, data=[qv.tolist()], anns_field="vector", limit=cfg.candidates,
                            output_fields=_PASSAGE_FIELDS, search_params={"metric_type": "IP", "params": {"ef": 100}})
        times["dense search"].append(time.perf_counter() - t)
        store._df.clear()
        t = time.perf_counter()
        df = store._document_frequencies(words, pool)
        times["document frequencies, all terms (uncached)"].append(time.perf_counter() - t)
        times["document frequency, per term"].append((time.perf_counter() - t) / max(1, len(words)))
        t = time.perf_counter()
        store._bm25(rarest(df, cfg.lexical_postings), cfg.candidates, "")
        times["BM25 search"].append(time.perf_counter() - t)
        t = time.perf_counter()
        store._count(store.passages_name, "")
        times["count(*)"].append(time.perf_counter() - t)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "eval" / "xquad_dev"))
    ap.add_argument("--milvus", help="HOST:PORT of a Milvus server (default: start Milvus Lite here)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "milvus.md"))
    ap.add_argument("--limit", type=int, help="only the first N questions")
    args = ap.parse_args()
    data = Path(args.data)
    passages = _read_jsonl(data / "passages.jsonl")
    questions = _read_jsonl(data / "questions.jsonl")[:args.limit]
    embedder = CachedPassages(load_embedder(None))
    tmp = tempfile.mkdtemp(prefix="milvus-eval-")
    proc = None
    try:
        server = args.milvus
        if server is None:
            proc, server = start_milvus_lite(os.path.join(tmp, "milvus"))
        milvus_loc = f"milvus://{server}/eval_{uuid.uuid4().hex[:12]}"
        results = {"embedded": run(os.path.join(tmp, "embedded"), embedder, passages, questions),
                   "milvus": run(milvus_loc, embedder, passages, questions)}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)

    same_top = sum(a["top"] == b["top"] for a, b in zip(results["embedded"]["rows"], results["milvus"]["rows"]))
    cols = ["n", "R@1", "R@5", "R@10", "MRR@10", "p50_ms", "p95_ms"]
    lines = [f"# Milvus backend vs embedded: {data.name}", "",
             f"    python bench/milvus_eval.py --data {args.data}"
             + (f" --milvus {args.milvus}" if args.milvus else ""),
             "", f"{len(questions)} questions, {len(passages)} passages, embedder {embedder.name}, hybrid retrieval, "
             f"no reader; Milvus: {'a Milvus Lite gRPC server on this machine' if proc else args.milvus}. "
             f"Latency: one `RAG.search(q, k=10)`, embedding the question included.", "",
             "| backend | lang | " + " | ".join(cols) + " | index build s |", "|---" * (len(cols) + 3) + "|"]
    for backend, res in results.items():
        for lang, m in list(res["by_lang"].items()) + [("all", res["all"])]:
            build = f"{res['index_s']:.1f}" if lang == "all" else ""
            lines.append(f"| {backend} | {lang} | " + " | ".join(str(m.get(c)) for c in cols) + f" | {build} |")
    d = results["milvus"]["all"]["R@5"] - results["embedded"]["all"]["R@5"]
    lines += ["", f"R@5 Milvus − embedded: {d:+.4f} (target: within ±0.01). Same top-5 articles in the same order "
              f"for {same_top} of {len(questions)} questions. Passages: {results['embedded']['counts'][1]} embedded, "
              f"{results['milvus']['counts'][1]} Milvus."]
    parts = results["milvus"]["parts"]
    if parts:
        lines += ["", f"Where a question's time goes on Milvus (median ms of each request, made one at a time, "
                  f"first {min(50, len(questions))} questions):", "", "| request | ms |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in parts.items()]
    lines += ["", NOTES]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
