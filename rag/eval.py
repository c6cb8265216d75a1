"""`rag eval DIR`: retrieval, quote and abstention metrics over an evaluation set.

DIR holds ``passages.jsonl`` (``{"passage_id", "title", "text"}``) and ``questions.jsonl``
(``{"id", "question", "answers": [...], "passage_id", "lang"}``; ``answers: []`` means the passages
do not answer it). The passages are indexed into a cache folder keyed by their content hash and
the embedder, so a second run only asks.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

from .api import DEFAULT_READING, RAG
from .articles import Article
from .config import DEFAULT, Config
from .embedders import canonical_name
from .embedders.span_map import span_map_id
from .persian import normalize_text
from .retrieval import Retriever
from .backends.embedded import FORMAT


def cache_root() -> Path:
    home = os.environ.get("RAG_HOME")
    if home:
        return Path(home) / "eval"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("persian-rag")) / "eval"


PARTS = ("train", "heldout")


def part_of(passage_id: str) -> str:
    """Which half of a dev set a passage (and every question on it) belongs to: ``train`` may be
    trained on (bench/train_reader.py); ``heldout`` is for choosing thresholds and reporting. Split
    by passage, so a model never reads at test time a paragraph it was trained on; for xquad_dev the
    English and Persian forms of a question fall on the same side."""
    return "heldout" if _passage_hash(passage_id)[0] % 2 == 0 else "train"


def quarter_of(passage_id: str) -> str:
    """Which quarter of a dev set a passage of the held-out half falls in (``bench/calibrate.py
    --split``): ``choose`` for choosing thresholds, ``report`` for the rates. Another byte of the
    same hash as :func:`part_of`, so the split is by passage and independent of it."""
    return "choose" if _passage_hash(passage_id)[1] % 2 == 0 else "report"


def _passage_hash(passage_id: str) -> bytes:
    return hashlib.sha256(str(passage_id).encode()).digest()


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def eval_index(data_dir: Path, model: str | None, index_options: dict | None = None,
               reading: str = DEFAULT_READING) -> Path:
    h = hashlib.sha256()
    h.update(f"{canonical_name(model)}|format {FORMAT}|{sorted((index_options or {}).items())}|".encode())
    if reading != DEFAULT_READING:
        h.update(f"{reading}|".encode())
    if os.environ.get("RAG_PRECISION"):  # forced fp32/bf16 (rag.embedders.torch_e5.choose_precision)
        h.update(f"precision {os.environ['RAG_PRECISION'].lower()}|".encode())
    if reading == "passages":  # pooled sentence vectors depend on the shipped span map
        h.update(f"span map {span_map_id()}|".encode())
    h.update((data_dir / "passages.jsonl").read_bytes())
    return cache_root() / f"{data_dir.name}-{h.hexdigest()[:16]}"


def open_index(data_dir: Path, model: str | None = None, passages: list[dict] | None = None,
               reader: bool = True, config: Config = DEFAULT, index_options: dict | None = None,
               reading: str = DEFAULT_READING) -> RAG:
    """The cached index of an evaluation set's passages (built on first use; unchanged passages
    are skipped on later runs)."""
    if passages is None:
        passages = _read_jsonl(data_dir / "passages.jsonl")
    rag = RAG(eval_index(data_dir, model, index_options, reading), model=model, create=True, reader=reader,
              config=config, reading=reading, **(index_options or {}))
    if rag.count()[0] < len(passages) and hasattr(rag.embedder, "warm"):
        rag.embedder.warm(wait=True)  # the whole set through one engine: what a large ingestion gets
    rag.add_articles(Article(id=str(p["passage_id"]), title=p.get("title") or "", text=p["text"]) for p in passages)
    return rag


def evaluate(data_dir: str | os.PathLike, k: int = 10, model: str | None = None, limit: int | None = None,
             retrieval: str = "hybrid", with_answers: bool = True,
             progress: Callable[[int, int], None] | None = None, details: str | None = None,
             part: str | None = None, reader: bool = True, config: Config = DEFAULT,
             index_options: dict | None = None, reading: str = DEFAULT_READING) -> dict:
    """``part``: only the questions of that half of the set (``PARTS``); all passages are indexed
    either way, so retrieval is as hard as on the whole set."""
    data_dir = Path(data_dir)
    passages = _read_jsonl(data_dir / "passages.jsonl")
    questions = _read_jsonl(data_dir / "questions.jsonl")
    if part is not None:
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}: use one of {', '.join(PARTS)}")
        questions = [q for q in questions if part_of(q["passage_id"]) == part]
    if limit:
        questions = questions[:limit]
    t0 = time.perf_counter()
    rag = open_index(data_dir, model, passages, reader=reader and with_answers, config=config,
                     index_options=index_options, reading=reading)
    index_seconds = time.perf_counter() - t0
    the_reader = rag.reader() if with_answers else None  # loaded before the clock runs

    if retrieval != "hybrid":
        rag.retriever = Retriever(rag.store, rag.embedder, mode=retrieval, config=config)
    rows = []
    for i, q in enumerate(questions):
        t = time.perf_counter()
        if with_answers:  # as the app asks: the decision is RAG.ask's
            ans = rag.ask(q["question"], k=max(k, 10), trace=True)
            ranked = ans.trace["retrieved"]
        else:
            ans = None
            ranked = [a for a, _ in rag.search(q["question"], max(k, 10)).articles()]
        latency = time.perf_counter() - t
        gold = str(q["passage_id"])
        rank = ranked.index(gold) + 1 if gold in ranked else None
        answers = [normalize_text(a) for a in q.get("answers") or [] if a.strip()]
        quotes = [normalize_text(c.quote) for c in ans.citations] if ans else []

        def hit(n: int) -> bool:
            return any(a in qt for qt in quotes[:n] for a in answers)

        rows.append({"id": q.get("id"), "lang": q.get("lang", "fa"), "rank": rank, "answerable": bool(answers),
                     "abstained": ans.abstained if ans else None, "evidence": len(ans.evidence) if ans else None,
                     "unsupported": ans.unsupported if ans else None,
                     "confidence": ans.confidence if ans else None, "hit1": hit(1), "hit3": hit(3), "latency": latency})
        if progress:
            progress(i + 1, len(questions))
    if details:
        with open(details, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return {"set": data_dir.name, "part": part or "all", "reader": the_reader is not None,
            "embedder": rag.embedder.name, "reading": reading,
            "retrieval": retrieval, "k": k, "questions": len(rows),
            "passages": len(passages), "index_seconds": round(index_seconds, 1),
            "approximate": bool(getattr(rag.store, "approximate", False)),
            "by_lang": {lang: _metrics([r for r in rows if r["lang"] == lang])
                        for lang in sorted({r["lang"] for r in rows})},
            "all": _metrics(rows)}


def _metrics(rows: list[dict]) -> dict:
    def share(xs: list[bool]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    lat = sorted(r["latency"] for r in rows)
    out = {"n": len(rows), "n_answerable": len(answerable), "n_unanswerable": len(unanswerable)}
    for n in (1, 5, 10):
        out[f"R@{n}"] = share([r["rank"] is not None and r["rank"] <= n for r in rows])
    out["MRR@10"] = round(statistics.fmean(1 / r["rank"] if r["rank"] and r["rank"] <= 10 else 0 for r in rows), 4) \
        if rows else None
    answerable = [r for r in answerable if r["abstained"] is not None]
    unanswerable = [r for r in unanswerable if r["abstained"] is not None]
    out["quote_hit@1"] = share([r["hit1"] for r in answerable])
    out["quote_hit@3"] = share([r["hit3"] for r in answerable])
    out["abstained_unanswerable"] = share([r["abstained"] for r in unanswerable])
    out["abstained_answerable"] = share([r["abstained"] for r in answerable])
    out["p50_ms"] = round(1000 * lat[len(lat) // 2], 1) if lat else None
    out["p95_ms"] = round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.95))], 1) if lat else None
    return out


def markdown_table(result: dict) -> str:
    cols = ["n", "R@1", "R@5", "R@10", "MRR@10", "quote_hit@1", "quote_hit@3", "abstained_unanswerable",
            "abstained_answerable", "p50_ms", "p95_ms"]
    part = "" if result.get("part", "all") == "all" else f" of the {result['part']} part"
    reader = ", reader" if result.get("reader") else ", no reader"
    lines = [f"{result['set']} ({result['questions']} questions{part}, {result['passages']} passages, "
             f"embedder {result['embedder']}, {result['retrieval']} retrieval{reader})", "",
             "| lang | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for lang, m in list(result["by_lang"].items()) + [("all", result["all"])]:
        lines.append(f"| {lang} | " + " | ".join("–" if m.get(c) is None else str(m[c]) for c in cols) + " |")
    return "\n".join(lines)

