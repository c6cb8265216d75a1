"""A filtered question against an unfiltered one, same index, same process, same questions.

    python bench/filters.py --articles 10000      # ~12 min on 2 cores (building the index)

Articles as bench/scale.py makes them (14 sentences of the dev and training sets with a dateline
of their own in the Afghan calendar, 1390-1404), each given one of six agencies in turn; hashed
vectors while building, the bundled e5 for the questions; answers without the reader. Reports
question p50/p95 with no filter, one agency (1/6 of the articles), a date range (about a tenth of
them), and both; and that every filtered answer's citations pass the filter. Results in
bench/results/news.md (by hand).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

AGENCIES = ["Fars", "Tasnim", "IRNA", "Tolo News", "Pajhwok", "BBC Persian"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=10_000)
    ap.add_argument("--index", default="/tmp/rag-filters")
    args = ap.parse_args()

    from scale import QueryE5, make_articles, questions, sentence_pool

    from rag import RAG
    from rag.articles import news_metadata

    pool = sentence_pool()
    r = RAG(args.index, embedder=QueryE5(), create=True, reader=False)
    have = r.count()[0]
    t = time.perf_counter()
    while have < args.articles:
        n = min(1000, args.articles - have)
        arts = list(make_articles(pool, have, n))
        for a in arts:  # dated from the dateline, as a loader does
            news_metadata(a, None, AGENCIES[int(a.id[1:]) % len(AGENCIES)], None)
        r.add_articles(arts)
        have += n
        print(f"  {have:,} articles, {time.perf_counter() - t:,.0f} s", file=sys.stderr, flush=True)
    dates = sorted(a.date for a in r.articles() if a.date)
    since, until = dates[int(len(dates) * 0.85)], dates[int(len(dates) * 0.95)]
    qs = questions(pool)
    runs = {"none": {}, "source": {"source": "Tasnim"}, "dates": {"since": since, "until": until},
            "both": {"source": "Tasnim", "since": since, "until": until}}
    r.ask("گرم کردن")
    out = {"articles": r.count()[0], "passages": r.count()[1], "since": since, "until": until}
    for rnd in range(2):  # interleaved twice: the machine's drift falls on every run alike
        for name, flt in runs.items():
            lat, bad, full = [], 0, 0
            for q in qs:
                t0 = time.perf_counter()
                hits = r.search(q, k=5, **flt).hits
                ans = r.ask(q, **flt)
                lat.append(time.perf_counter() - t0)
                full += len(hits) == 5
                for h in hits:
                    bad += bool(flt.get("source") and h.source != flt["source"])
                    bad += bool(flt.get("since") and not (since <= (h.date or "") <= until))
                for c in ans.citations + ans.evidence:
                    bad += bool(flt.get("source") and c.source != flt["source"])
            lat.sort()
            if rnd:
                out[name] = {"p50_ms": round(1000 * lat[len(lat) // 2], 1), "p95_ms": round(1000 * lat[int(.95 * len(lat))], 1),
                             "searches_with_5_hits": full, "questions": len(qs), "outside_the_filter": bad}
    base = out["none"]["p50_ms"]
    for name in runs:
        out[name]["p50_vs_unfiltered"] = round(out[name]["p50_ms"] / base, 3)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
