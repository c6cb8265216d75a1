"""A fetched web page → :class:`Article`: main text, title, date and site through trafilatura
(htmldate for the date, markup only), the id from the canonical URL (courlan).

The agency and date then go through ``rag.articles.news_metadata`` as for files: the page's
metadata first (``og:site_name``, ``article:published_time``, JSON-LD, a date in the URL), then its
text (the attribution line, a dateline in any calendar).
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit, urlunsplit

from ..agencies import canonical, find_agency, known_outlet
from ..articles import Article, LoadError, decode_bytes, news_metadata, protect_zwnj

MAX_ID_CHARS = 200
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.I)
# htmldate on the markup only (meta tags, JSON-LD, <time>, the URL): a date found in the running
# text may be an event's, and the text is read by rag.dates, which knows the solar calendars.
_DATE_PARAMS = {"extensive_search": False, "original_date": True, "outputformat": "%Y-%m-%d"}


def canonical_url(url: str) -> str:
    """``url`` normalized (courlan): scheme and host lower-cased, default port, tracking
    parameters (utm_*, fbclid, …) dropped, parameters sorted; the fragment dropped."""
    from courlan import normalize_url

    try:
        norm = normalize_url(url)
    except (ValueError, AttributeError):
        norm = url
    parts = urlsplit(norm)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


def url_id(url: str) -> str:
    """The article id of a page: its canonical URL without the scheme, a leading ``www.`` or a
    trailing slash (``tasnimnews.com/fa/news/1404/04/20/123``); a very long one is cut and
    suffixed with a hash of the whole."""
    parts = urlsplit(canonical_url(url))
    host = parts.netloc.lower()
    host = host[4:] if host.startswith("www.") else host
    aid = host + (parts.path.rstrip("/") or "") + (f"?{parts.query}" if parts.query else "")
    if len(aid) > MAX_ID_CHARS:
        aid = aid[:MAX_ID_CHARS - 9] + "~" + hashlib.sha1(aid.encode()).hexdigest()[:8]
    return aid


def _site(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def decode_page(body: bytes, charset: str | None) -> str:
    """The page's text: by the HTTP charset, else its ``<meta charset>``, else as files are read
    (UTF-8, UTF-16 with a BOM, Windows-1256 Persian). Raises LoadError for binary bodies."""
    if b"\x00" in body[:8192] and not body.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("binary content (contains NUL bytes)")
    m = _META_CHARSET.search(body[:4096])
    for enc in (charset, m.group(1).decode() if m else None):
        if enc:
            try:
                return body.decode(enc)
            except (LookupError, UnicodeDecodeError):
                continue
    return decode_bytes(body)


def _agency(sitename: str | None, url: str, text: str) -> str | None:
    """The page's outlet: the site's name when it is a known outlet (og:site_name, JSON-LD
    publisher), or its host (farsnews.ir); else the text's attribution line; else the site's name
    as written."""
    for name in (sitename, _site(url)):
        if name and known_outlet(canonical(name)):
            return name
    return find_agency(text) or sitename


def html_article(html: str, url: str, title: str | None = None, date: str | None = None,
                 source: str | None = None) -> Article:
    """An article from a page's HTML fetched from ``url`` (or a feed entry's full content):
    ``title``/``date``/``source`` (a feed entry's) stand in for what the page does not say."""
    import trafilatura

    html, ph = protect_zwnj(html)
    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                      include_tables=True, favor_precision=True,
                                      date_extraction_params=_DATE_PARAMS)
    text = (doc.text if doc is not None else None) or ""
    if not text.strip() or not any(c.isalnum() for c in text):
        raise LoadError("no readable main text found on the page")

    def back(value):
        return value.replace(ph, "\u200c").strip() if isinstance(value, str) and value.strip() else None

    text = text.replace(ph, "\u200c")
    page_title = back(doc.title) or back(title) or text.strip().splitlines()[0].strip()
    # the page's own canonical link names the article when it is on the same site (a copy on an
    # aggregator keeps its own address)
    canon = doc.url if isinstance(doc.url, str) and doc.url.startswith(("http://", "https://")) else None
    home = canon if canon and _site(canon) == _site(url) else url
    first, nl, rest = text.partition("\n")
    # the headline the page prints above the story is the title, not content a second time
    spans = [(len(first) + 1, len(text))] if nl and rest.strip() and first.strip() == page_title else []
    art = Article(id=url_id(home), title=page_title, text=text, url=canonical_url(home), content_spans=spans)
    sitename = back(doc.sitename) or back(source)
    return news_metadata(art, back(doc.date) or back(date), _agency(sitename, home, text), None)


def page_article(body: bytes, url: str, charset: str | None = None, **entry) -> Article:
    """:func:`html_article` of a fetched body (decoded by :func:`decode_page`)."""
    return html_article(decode_page(body, charset), url, **entry)
