"""Web pages and feeds (issue 44), all against a local server (tests/web_site.py) on 127.0.0.1:

1. extraction on the test pages: share of story sentences kept, of boilerplate sentences
   indexed (our settings and trafilatura's other two modes beside them);
2. a watch round over 10 feeds x 30 entries with nothing new: requests per feed, pages fetched
   (feeds with ETag, with Last-Modified, and with neither);
3. 300 new entries (one round, the bundled model) against ingesting the same 300 pages as files,
   fetch time reported apart.

    python bench/web.py [--entries 300] [--feeds 10] [--files-first] [--out bench/results/web.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from web_site import (FA_STORY, Site, boilerplate_page, dari_page, english_page, persian_agency_page,  # noqa: E402
                      rss, simple_page, story_sentences)

from rag import RAG  # noqa: E402
from rag.articles import LoadError  # noqa: E402
from rag.web import FeedWatch, Fetcher, FetchPolicy  # noqa: E402
from rag.web.pages import html_article  # noqa: E402

LOCAL = FetchPolicy(host_interval=0.0)  # one local host: the politeness interval would only measure sleep


def extraction() -> dict:
    import trafilatura

    from rag.articles import protect_zwnj

    pages = [persian_agency_page(), dari_page(), english_page(), boilerplate_page()]
    out = {}
    modes = {"ours (favor_precision, markup dates)": None, "trafilatura default": {},
             "favor_recall": {"favor_recall": True}}
    for name, kw in modes.items():
        kept = total = junk = junk_total = 0
        per_page = []
        for p in pages:
            if kw is None:
                try:
                    text = html_article(p.html, "http://127.0.0.1" + p.path).text
                except LoadError:
                    text = ""
            else:
                html, ph = protect_zwnj(p.html)
                doc = trafilatura.bare_extraction(html, include_comments=False, include_tables=True, **kw)
                text = ((doc.text if doc else "") or "").replace(ph, "\u200c")
            story = story_sentences(p)
            k = sum(s in text for s in story)
            j = [b for b in p.boilerplate if b in text]
            kept, total, junk, junk_total = kept + k, total + len(story), junk + len(j), junk_total + len(p.boilerplate)
            per_page.append({"page": p.path, "story_kept": f"{k}/{len(story)}",
                             "boilerplate_indexed": f"{len(j)}/{len(p.boilerplate)}", "indexed": j})
        out[name] = {"story_kept": round(kept / total, 3), "boilerplate_indexed": round(junk / junk_total, 3),
                     "story": f"{kept}/{total}", "boilerplate": f"{junk}/{junk_total}", "pages": per_page}
    return out


POOL = FA_STORY + [
    "سخنگوی دولت در نشست خبری هفتگی گفت که لایحه بودجه سال آینده تا پایان آذر به مجلس می‌رسد.",
    "رئیس سازمان هواشناسی از کاهش دما در استان‌های شمال غرب از اواخر هفته خبر داد.",
    "معاون وزیر بهداشت گفت که واکسیناسیون کودکان در مناطق مرزی از هفته آینده آغاز می‌شود.",
    "مدیرکل راهداری استان اعلام کرد که جاده چالوس برای عملیات ایمن‌سازی دو روز بسته خواهد بود.",
    "نماینده مردم تبریز در مجلس خواستار بررسی دلایل تأخیر در تکمیل خط دوم مترو شد.",
    "بانک مرکزی اعلام کرد که نرخ تورم نقطه به نقطه در ماه گذشته دو واحد درصد کاهش یافته است.",
    "وزیر آموزش و پرورش از استخدام بیست هزار معلم جدید تا مهر سال آینده خبر داد.",
    "شهردار مشهد گفت که ناوگان اتوبوسرانی شهر با ورود سیصد دستگاه اتوبوس برقی نوسازی می‌شود.",
]


def story_page(i: int, rng: random.Random) -> tuple[str, list[str]]:
    paras = []
    for _ in range(5):
        picks = rng.sample(POOL, 3)
        paras.append(" ".join(picks) + f" این خبر به شماره {i}{rng.randint(100, 999)} ثبت شده است.")
    return f"گزارش شماره {i}: {POOL[i % len(POOL)][:40]}", paras


def feeds_bench(n_feeds: int, per_feed: int, tmp: Path, files_first: bool = False) -> dict:
    rng = random.Random(44)
    now = 1752220800
    out: dict = {}
    with Site() as site:
        site.add("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
        pages: list[tuple[str, str]] = []
        for f in range(n_feeds):
            items = []
            for e in range(per_feed):
                i = f * per_feed + e
                title, paras = story_page(i, rng)
                html = simple_page(title, paras, published=f"2025-07-{1 + i % 28:02d}T10:00:00Z")
                site.add(f"/news/{i}", html)
                pages.append((f"{i}.html", html))
                items.append({"guid": f"n{i}", "link": f"/news/{i}", "title": title, "date": now + i})
            # a third of the feeds give an ETag, a third Last-Modified, the rest neither
            kind = ("etag", "last_modified", "none")[f % 3]
            site.add(f"/feed/{f}.xml", rss(site, items), content_type="application/rss+xml",
                     **({"etag": f'"f{f}"'} if kind == "etag" else {"last_modified": now} if kind == "last_modified" else {}))
        feeds = [site.url(f"/feed/{f}.xml") for f in range(n_feeds)]

        def web_round() -> None:
            rag = RAG(tmp / "web-ix", create=True, reader=False)
            rag.embedder.embed_passages(["warm"])  # the model is loaded before the clock starts
            watch = FeedWatch(rag, feeds, tmp / "web-ix.feeds.json", fetcher=Fetcher(LOCAL))
            t0 = time.perf_counter()
            first = watch.round()
            wall = time.perf_counter() - t0
            ing = first.ingest
            out["new_entries"] = {"entries": sum(len(f.new) for f in first.feeds), "requests": first.requests,
                                  "fetch_seconds": round(first.fetch_seconds, 2),
                                  "ingest_seconds": round(first.ingest_seconds, 2), "wall_seconds": round(wall, 2),
                                  "passages": ing.chunks, "tokens": ing.tokens}
            hits_before = dict(site.hits)
            t0 = time.perf_counter()
            second = watch.round()
            out["nothing_new"] = {
                "feeds": n_feeds, "requests": second.requests, "requests_per_feed": round(second.requests / n_feeds, 2),
                "pages_fetched": sum(n - hits_before.get(p, 0) for p, n in site.hits.items() if p.startswith("/news/")),
                "statuses": {s: sum(f.status == s for f in second.feeds) for s in ("not modified", "ok", "failed")},
                "seconds": round(time.perf_counter() - t0, 3)}

        def files() -> None:  # the same pages as files, into a fresh index
            folder = tmp / "files"
            folder.mkdir()
            for name, html in pages:
                (folder / name).write_text(html, encoding="utf-8")
            rag2 = RAG(tmp / "file-ix", create=True, reader=False)
            rag2.embedder.embed_passages(["warm"])
            rep = rag2.ingest([folder])
            out["same_as_files"] = {"articles": len(rep.added), "seconds": round(rep.seconds, 2),
                                    "passages": rep.chunks, "tokens": rep.tokens}

        for step in ((files, web_round) if files_first else (web_round, files)):
            step()
        out["order"] = "files first" if files_first else "web first"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=300)
    ap.add_argument("--feeds", type=int, default=10)
    ap.add_argument("--files-first", action="store_true", help="ingest the files before the feeds' entries")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "web.json"))
    args = ap.parse_args()
    result = {"extraction": extraction()}
    with tempfile.TemporaryDirectory() as tmp:
        result.update(feeds_bench(args.feeds, args.entries // args.feeds, Path(tmp), args.files_first))
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
