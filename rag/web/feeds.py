"""Feeds (RSS 0.9x/1.0/2.0 and Atom by feedparser; JSON Feed by hand, it is plain JSON) and the
rounds that keep an index current from them.

A round asks each feed with a conditional GET (its ETag / Last-Modified from the last round): a
feed that has not changed costs one request and nothing else. Of a changed feed, only entries that
are new or whose fingerprint changed are read: from the entry's own full content when the feed
carries it, else by fetching the entry's page. The state (validators, entry fingerprints, each
feed's last round) lives in one JSON file next to the index, written atomically; an entry that
failed is not recorded, so the next round tries it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from ..articles import Article, LoadError, Skipped
from .fetch import FEED_TYPES, Fetcher, FetchError
from .pages import html_article, page_article

# A feed entry's own content is used instead of its page when it holds at least this much text
# (a full story, not a teaser).
FULL_CONTENT_CHARS = 400


@dataclass
class Entry:
    key: str                  # the entry's id (guid), else its link
    link: str | None
    title: str | None
    date: str | None          # as the feed wrote it (read by rag.dates)
    content: str | None       # the entry's full HTML, when it carries one
    fingerprint: str = ""


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update((p or "").encode("utf-8", "surrogatepass") + b"\x00")
    return h.hexdigest()[:16]


def _text_len(fragment: str) -> int:
    import lxml.html

    try:
        return len(" ".join(lxml.html.fromstring(fragment).text_content().split()))
    except Exception:  # lxml refuses empty or odd fragments
        return 0


def parse_feed(body: bytes, url: str, content_type: str = "") -> tuple[str | None, list[Entry]]:
    """The feed's title and entries, links made absolute. Raises LoadError when the body is no feed."""
    head = body.lstrip()[:1]
    if "json" in content_type or head == b"{":
        return _json_feed(body, url)
    import feedparser

    d = feedparser.parse(body, response_headers={"content-location": url, "content-type": content_type or
                                                 "application/xml"})
    if not d.entries and (d.bozo or not d.get("version")):
        raise LoadError(f"not a feed ({type(d.get('bozo_exception')).__name__ if d.bozo else 'no entries'})")
    out = []
    for e in d.entries:
        link = urljoin(url, e.get("link")) if e.get("link") else None
        contents = [c.get("value", "") for c in e.get("content", []) if c.get("value")]
        content = max(contents, key=len) if contents else None
        # dict.get: feedparser's own get maps a missing "updated" to "published", with a warning
        updated = dict.get(e, "updated")
        date = dict.get(e, "published") or updated
        key = e.get("id") or link
        if not key:
            continue
        out.append(Entry(key, link, e.get("title"), date, content,
                         _fingerprint(e.get("title"), link, updated or date, content or e.get("summary"))))
    return d.feed.get("title"), out


def _json_feed(body: bytes, url: str) -> tuple[str | None, list[Entry]]:
    try:
        d = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LoadError(f"not a feed (invalid JSON: {exc})") from None
    if not isinstance(d, dict) or not str(d.get("version", "")).startswith("https://jsonfeed.org/"):
        raise LoadError("not a feed (JSON without a jsonfeed.org version)")
    out = []
    for it in d.get("items") or []:
        if not isinstance(it, dict):
            continue
        link = urljoin(url, it["url"]) if isinstance(it.get("url"), str) else None
        key = str(it.get("id") or link or "")
        if not key:
            continue
        content = it.get("content_html") if isinstance(it.get("content_html"), str) else None
        date = it.get("date_published") or it.get("date_modified")
        out.append(Entry(key, link, it.get("title"), date, content,
                         _fingerprint(it.get("title"), link, it.get("date_modified") or date,
                                      content or it.get("content_text") or it.get("summary"))))
    return d.get("title"), out


# ---------------------------------------------------------------- state

@dataclass
class FeedRound:
    """What one round did with one feed."""
    url: str
    title: str | None = None
    status: str = "ok"                 # ok, not modified, failed
    reason: str | None = None          # why the feed failed
    new: list[str] = field(default_factory=list)        # article ids
    updated: list[str] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)  # [entry link or key, reason]
    entries: int = 0
    at: float = 0.0

    def line(self) -> str:
        if self.status != "ok":
            return f"{self.url}: {self.status}" + (f" ({self.reason})" if self.reason else "")
        return (f"{self.url}: {len(self.new)} new, {len(self.updated)} updated, {len(self.failed)} failed "
                f"of {self.entries} entries")


def default_state_path(index: str | os.PathLike) -> Path:
    """Next to the index (the store alone writes inside it): ``index.feeds.json``; for a Milvus
    collection, ``milvus-HOST_PORT_COLLECTION.feeds.json`` in the current folder."""
    if str(index).startswith("milvus://"):
        return Path("milvus-" + re.sub(r"\W+", "_", str(index)[len("milvus://"):]).strip("_") + ".feeds.json")
    p = Path(index)
    return p.with_name(p.name + ".feeds.json")


class FeedState:
    """The watch state of some feeds, in one JSON file (atomic writes)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.feeds: dict[str, dict] = {}
        if self.path.exists():
            try:
                self.feeds = json.loads(self.path.read_text(encoding="utf-8")).get("feeds", {})
            except (OSError, ValueError):
                self.feeds = {}  # a damaged state only costs one full round

    def feed(self, url: str) -> dict:
        return self.feeds.setdefault(url, {"etag": None, "last_modified": None, "entries": {}, "last": None})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "feeds": self.feeds}, f, ensure_ascii=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def last_rounds(self) -> list[FeedRound]:
        return [FeedRound(**f["last"]) for f in self.feeds.values() if f.get("last")]


# ---------------------------------------------------------------- a round

@dataclass
class RoundReport:
    feeds: list[FeedRound] = field(default_factory=list)
    requests: int = 0
    fetch_seconds: float = 0.0
    ingest_seconds: float = 0.0
    ingest: object = None              # the IngestReport of the round's articles

    def summary(self) -> str:
        new = sum(len(f.new) for f in self.feeds)
        upd = sum(len(f.updated) for f in self.feeds)
        failed = sum(len(f.failed) for f in self.feeds)
        same = sum(f.status == "not modified" for f in self.feeds)
        bad = sum(f.status == "failed" for f in self.feeds)
        return (f"{time.strftime('%Y-%m-%d %H:%M:%S')} {len(self.feeds)} feeds ({same} not modified, {bad} failed): "
                f"{new} new, {upd} updated, {failed} entries failed; {self.requests} requests, "
                f"fetched in {self.fetch_seconds:.1f} s, indexed in {self.ingest_seconds:.1f} s")


def _entry_article(fetcher: Fetcher, e: Entry, feed_title: str | None) -> Article:
    meta = {"title": e.title, "date": e.date, "source": feed_title}
    if e.content and e.link and _text_len(e.content) >= FULL_CONTENT_CHARS:
        title = f"<h1>{_escape(e.title)}</h1>" if e.title else ""
        try:
            return html_article(f"<html><body><article>{title}{e.content}</article></body></html>", e.link, **meta)
        except LoadError:
            pass  # the page, then
    if not e.link:
        raise LoadError("the entry has no link and no full content")
    r = fetcher.get(e.link)
    return page_article(r.body, r.url, r.charset, **meta)


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def run_round(rag, feeds: list[str], state: FeedState, fetcher: Fetcher) -> RoundReport:
    """One round over ``feeds``: fetch what changed, ingest it into ``rag`` (one batch), record
    the state. A feed or entry that fails is reported with its reason; the others go on."""
    t0 = time.perf_counter()
    requests0 = fetcher.stats.requests
    report = RoundReport()
    work: list[tuple[FeedRound, Entry, str | None]] = []
    validators: dict[str, tuple[str | None, str | None]] = {}

    def read_feed(url: str) -> FeedRound:
        st = state.feed(url)
        fr = FeedRound(url, at=time.time())
        try:
            r = fetcher.get(url, types=FEED_TYPES, etag=st.get("etag"), last_modified=st.get("last_modified"))
            if r.status == 304:
                fr.status, fr.title = "not modified", (st.get("last") or {}).get("title")
                return fr
            title, entries = parse_feed(r.body, r.url, r.content_type)
        except (FetchError, LoadError) as exc:
            fr.status, fr.reason = "failed", str(exc)
            return fr
        fr.title, fr.entries = title, len(entries)
        validators[url] = (r.headers.get("etag"), r.headers.get("last-modified"))
        known = st["entries"]
        st["entries"] = {e.key: known[e.key] for e in entries if e.key in known}  # entries that left the feed
        for e in entries:
            old = known.get(e.key)
            if old is None or old[0] != e.fingerprint:
                work.append((fr, e, title))
        return fr

    with ThreadPoolExecutor(fetcher.policy.workers) as pool:
        report.feeds = list(pool.map(read_feed, feeds))

        def read_entry(item):
            fr, e, title = item
            try:
                return item, _entry_article(fetcher, e, title), None
            except (FetchError, LoadError) as exc:
                return item, None, str(exc)

        done = list(pool.map(read_entry, work))
    report.fetch_seconds = time.perf_counter() - t0
    articles = {}
    for (fr, e, _), art, error in done:
        if art is None:
            fr.failed.append([e.link or e.key, error])
        else:
            articles[art.id] = art
    t1 = time.perf_counter()
    ingest = rag.add_articles(list(articles.values())) if articles else None
    report.ingest_seconds = time.perf_counter() - t1
    added = set(ingest.added) if ingest else set()
    updated = set(ingest.updated) if ingest else set()
    stored = added | updated | (set(ingest.unchanged) if ingest else set())
    for (fr, e, _), art, _ in done:
        if art is None:
            continue
        if art.id not in stored:  # add_articles reports every article it is given; kept as a guard
            fr.failed.append([e.link or e.key, "not stored"])
            continue
        state.feed(fr.url)["entries"][e.key] = [e.fingerprint, art.id]
        for ids, kind in ((updated, fr.updated), (added, fr.new)):
            if art.id in ids and art.id not in kind:
                kind.append(art.id)
                break
    for fr in report.feeds:
        st = state.feed(fr.url)
        # a feed with an entry that failed keeps its old validators: a 304 next round would
        # otherwise hide the entry that still has to be read
        if fr.url in validators and not fr.failed:
            st["etag"], st["last_modified"] = validators[fr.url]
        st["last"] = asdict(fr)
    state.save()
    report.ingest = ingest
    report.requests = fetcher.stats.requests - requests0
    return report


def read_feed_list(path: str | os.PathLike) -> list[str]:
    """Feed URLs, one a line; blank lines and ``#`` comments ignored."""
    urls = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
        if line:
            urls.append(line)
    return urls


def parse_every(value: str) -> float:
    """``15m``, ``30s``, ``1h``, ``90`` (seconds) → seconds; ValueError otherwise."""
    v = value.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    n, unit = (v[:-1], units[v[-1]]) if v and v[-1] in units else (v, 1)
    seconds = float(n) * unit
    if seconds <= 0:
        raise ValueError(f"{value!r}: give a positive interval such as 15m, 30s or 1h")
    return seconds
