"""Articles from the web: pages by URL and RSS/Atom/JSON feeds (``rag ingest URL``, ``--feed``,
``rag watch``, ``python app.py --feeds``). ``import rag`` does not import this package: fetch
(urllib3, robots.txt by protego), pages (trafilatura, htmldate, courlan) and feeds (feedparser)
load on first use.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ..articles import Article, Loaded, LoadError, Skipped
from .fetch import Fetcher, FetchError, FetchPolicy, check_url
from .pages import page_article, url_id

__all__ = ["Fetcher", "FetchError", "FetchPolicy", "FeedWatch", "is_url", "load_urls", "url_id"]


def is_url(value: str) -> bool:
    """Whether a command-line argument names a web page rather than a file."""
    return str(value).lower().startswith(("http://", "https://"))


def load_url(url: str, fetcher: Fetcher) -> Article:
    r = fetcher.get(check_url(url))
    if r.status != 200:
        raise FetchError(f"HTTP {r.status}")
    return page_article(r.body, r.url, r.charset)


def load_urls(urls: list[str], fetcher: Fetcher | None = None) -> Loaded:
    """Fetch and read each page (concurrently, within the fetcher's bounds); a page that fails is
    in ``skipped`` with its reason. Two URLs of one page (tracking parameters, a redirect) give
    one article."""
    fetcher = fetcher or Fetcher()
    out = Loaded()

    def one(url: str):
        try:
            return url, load_url(url, fetcher), None
        except (FetchError, LoadError) as exc:
            return url, None, str(exc)

    seen: set[str] = set()
    with ThreadPoolExecutor(max(1, fetcher.policy.workers)) as pool:
        for url, art, error in pool.map(one, urls):
            if art is None:
                out.skipped.append(Skipped(url, error))
            elif art.id not in seen:
                seen.add(art.id)
                out.articles.append(art)
    return out


class FeedWatch:
    """Follows a list of feeds for one RAG: ``round()`` runs one round now; ``start(every)`` runs
    one every ``every`` seconds in a daemon thread. The fetcher is kept between rounds (robots.txt
    is read once a day, pacing holds across rounds)."""

    def __init__(self, rag, feeds: list[str], state_path, fetcher: Fetcher | None = None,
                 on_round: Callable | None = None) -> None:
        from .feeds import FeedState

        self.rag = rag
        self.feeds = list(dict.fromkeys(feeds))  # a feed listed twice is read once
        self.state = FeedState(state_path)
        self.fetcher = fetcher or Fetcher()
        self.on_round = on_round
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def round(self):
        from filelock import FileLock

        from .feeds import run_round

        # one round at a time, in this process and across processes sharing the state file
        with self._lock, FileLock(str(self.state.path) + ".lock"):
            report = run_round(self.rag, self.feeds, self.state, self.fetcher)
        if self.on_round:
            self.on_round(report)
        return report

    def start(self, every: float) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    self.round()
                except Exception as exc:  # a round that breaks (disk full) is reported; the next one tries again
                    print(f"feed round failed: {type(exc).__name__}: {exc}", flush=True)
                self._stop.wait(max(0.0, every - (time.monotonic() - t0)))

        self.thread = threading.Thread(target=loop, name="rag-feeds", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
