"""Copies of one story: how many made copies are grouped with their original, and how many distinct
stories on one topic are grouped together (they must not be).

    python bench/stories.py            # ~1 min; results in bench/results/news.md (by hand)
    python bench/stories.py --archive 10000   # the copies' originals 10,000 articles back (~3 min)

Originals: the passages of the dev sets (xquad_dev, persianqa_test; Persian and English Wikipedia
paragraphs, ~120 words). Copies: each original with a share of its words edited, drawn uniformly up
to --rate (default 0.2): a third of the edits delete a word, a third replace it with a word of
another passage, a third insert one after it; a copy also gets another agency's attribution line.
Distinct stories on one topic: paragraphs of the same Wikipedia article (same title), which
share the topic's names and words but not the story. All go through ingestion (the hashed
embedder: vectors do not matter here) and the grouping the index does. With ``--archive N``, N
generated articles (bench/scale.py's, from the sentences of the dev and training sets) are stored
between the originals and their copies, so each copy finds its original among N + 1,259 others and
behind N newer ones (the grouping reads a bounded number of rows per LSH key, newest first); the
seconds to store the copies are then the grouping's cost per article at that size.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def edit(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    out = []
    for w in text.split():
        x = rng.random()
        if x < rate / 3:
            continue
        if x < 2 * rate / 3:
            out.append(rng.choice(vocab))
        elif x < rate:
            out += [w, rng.choice(vocab)]
        else:
            out.append(w)
    return " ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=0.2, help="edited share of a copy's words, at most")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--archive", type=int, default=0, help="generated articles stored between originals and copies")
    args = ap.parse_args()

    from rag import RAG, Article
    from rag.hashed import HashedEmbedder

    rows = []
    for name in ("xquad_dev", "persianqa_test"):
        rows += [json.loads(line) for line in (SHARED / "eval" / name / "passages.jsonl").read_text().splitlines()]
    rng = random.Random(args.seed)
    vocab = [w for r in rows for w in r["text"].split()]
    originals = [Article(id=r["passage_id"], title=r["title"], text=r["text"]) for r in rows]
    rates = {}
    copies = []
    for r in rows:
        rate = rng.uniform(0, args.rate)
        rates[r["passage_id"]] = rate
        line = rng.choice(["به گزارش خبرگزاری فارس،", "به گزارش ایسنا،", "(Reuters) -", "به نقل از طلوع‌نیوز،"])
        copies.append(Article(id="copy:" + r["passage_id"], title=r["title"], text=line + " " + edit(r["text"], rate, rng,
                                                                                                       vocab)))
    with tempfile.TemporaryDirectory() as tmp:
        r = RAG(Path(tmp) / "ix", embedder=HashedEmbedder(), create=True, reader=False)
        r.add_articles(originals)
        if args.archive:
            from scale import make_articles, sentence_pool

            pool = sentence_pool()
            for start in range(0, args.archive, 1000):
                r.add_articles(list(make_articles(pool, start, min(1000, args.archive - start))))
        t = time.perf_counter()
        r.add_articles(copies)
        seconds = time.perf_counter() - t
        group = {a.id: a.group for a in r.articles()}
        r.close()
    grouped = [group["copy:" + a.id] == group[a.id] for a in originals]
    by_title = defaultdict(list)
    for a in originals:
        by_title[a.title].append(a.id)
    pairs = [(x, y) for ids in by_title.values() for x, y in itertools.combinations(ids, 2)]
    merged = [group[x] == group[y] for x, y in pairs]
    worst = sorted((rates[a.id], ok) for a, ok in zip(originals, grouped))
    high = [ok for rate, ok in worst if rate >= 0.15]
    print(json.dumps({
        "originals": len(originals), "copies_grouped": round(sum(grouped) / len(grouped), 4),
        "copies_edited_15_to_20pct_grouped": round(sum(high) / max(1, len(high)), 4), "copies_15_to_20pct": len(high),
        "same_topic_pairs": len(pairs), "same_topic_pairs_grouped": round(sum(merged) / max(1, len(merged)), 4),
        "archive": args.archive,
        "copies_ms_each": round(1000 * seconds / len(copies), 1)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
