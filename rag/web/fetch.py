"""Fetching web pages and feeds politely and safely (urllib3, which trafilatura already brings).

Every request goes through one :class:`Fetcher`: http(s) only; the host resolved once, checked
(loopback, private, link-local and metadata addresses refused unless the policy allows them) and
connected to by that address, so a DNS answer cannot change between the check and the request;
redirects followed by hand, each hop checked again; timeouts, a size cap and content types checked
while reading; retries with backoff on connection errors, 429 and 5xx; robots.txt (protego) read
once per host; a per-host interval between requests and bounds on concurrent requests.
Problems raise :class:`FetchError` whose message is the reason shown to the user.
"""

from __future__ import annotations

import email.utils
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import urllib3

USER_AGENT = "persian-rag/0.1 (+https://github.com/; news reader)"
ROBOTS_AGENT = "persian-rag"
ROBOTS_TTL = 24 * 3600.0
ROBOTS_RETRY = 600.0
HTML_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml",
              "application/feed+json", "application/json", "text/html", "text/plain")


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one fetcher. ``allow_private``: may URLs resolve to loopback, private,
    link-local or metadata addresses (yes for a local user; no for an app shared on a network)."""

    allow_private: bool = True
    connect_timeout: float = 10.0
    read_timeout: float = 20.0       # between two reads of the body
    total_timeout: float = 60.0      # a whole response, however slowly it trickles
    max_bytes: int = 5 * 2**20       # a news page or feed is far below this
    max_redirects: int = 5
    retries: int = 2                 # after the first try, on connection errors, 429 and 5xx
    backoff: float = 1.0             # seconds before the first retry, doubled each time (Retry-After wins, capped)
    host_interval: float = 1.0       # seconds between two requests to one host (robots.txt crawl-delay wins, capped)
    max_crawl_delay: float = 30.0
    per_host: int = 2                # concurrent requests to one host
    workers: int = 8                 # concurrent requests in all
    robots: bool = True


class FetchError(Exception):
    """A URL that could not be fetched; the message says why."""


@dataclass
class Response:
    url: str                          # after redirects
    status: int
    headers: dict[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            k, _, v = part.partition("=")
            if k.strip().lower() == "charset" and v.strip():
                return v.strip().strip("\"'")
        return None


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host, else FetchError."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https"):
        raise FetchError(f"only http and https URLs are fetched, not {parts.scheme or 'a bare path'}:")
    if not parts.hostname:
        raise FetchError("the URL has no host")
    return url.strip()


def _refused(ip: ipaddress._BaseAddress) -> bool:
    ip = getattr(ip, "ipv4_mapped", None) or ip
    # not is_global covers loopback, RFC 1918, link-local (169.254.169.254, the cloud metadata
    # service), CGNAT, unique-local IPv6 and the reserved ranges
    return not ip.is_global or ip.is_multicast


def resolve(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to for ``host``; FetchError when it does not resolve, or when
    private addresses are not allowed and any of its addresses is one."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve {host} ({exc})") from None
    addrs = [info[4][0] for info in infos]
    if not allow_private:
        for a in addrs:
            if _refused(ipaddress.ip_address(a.split("%")[0])):
                raise FetchError(f"refused: {host} resolves to a private or local address ({a}); the app's "
                                 "operator can allow this with --allow-private-urls")
    return addrs[0]


class _Host:
    """One host's robots.txt, pacing and concurrency."""

    def __init__(self, per_host: int) -> None:
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(per_host)
        self.next_at = 0.0
        self.robots_lock = threading.Lock()
        self.robots = None          # protego parser, or False: everything allowed
        self.robots_error: str | None = None
        self.robots_until = 0.0     # when to read robots.txt again
        self.delay: float | None = None


@dataclass
class Stats:
    requests: int = 0
    by_url: dict[str, int] = field(default_factory=dict)


class Fetcher:
    """Fetches URLs under one :class:`FetchPolicy`; safe to share between threads."""

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self.policy = policy or FetchPolicy()
        self._hosts: dict[str, _Host] = {}
        self._lock = threading.Lock()
        self._all = threading.BoundedSemaphore(self.policy.workers)
        self._pools: dict[tuple, urllib3.connectionpool.HTTPConnectionPool] = {}
        self.stats = Stats()

    def _host(self, key: str) -> _Host:
        with self._lock:
            if key not in self._hosts:
                self._hosts[key] = _Host(self.policy.per_host)
            return self._hosts[key]

    # ------------------------------------------------------------ one request

    def _pool(self, scheme: str, host: str, port: int, ip: str):
        key = (scheme, host, port, ip)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                timeout = urllib3.Timeout(connect=self.policy.connect_timeout, read=self.policy.read_timeout)
                if scheme == "https":
                    # connect to the checked address, verify the certificate of the named host
                    pool = urllib3.HTTPSConnectionPool(ip, port, timeout=timeout, retries=False, maxsize=4,
                                                       server_hostname=host, assert_hostname=host)
                else:
                    pool = urllib3.HTTPConnectionPool(ip, port, timeout=timeout, retries=False, maxsize=4)
                self._pools[key] = pool
            return pool

    def _once(self, url: str, headers: dict[str, str], types: tuple[str, ...]) -> Response:
        """One request, no redirects followed; the body read up to the cap."""
        p = self.policy
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
        ip = resolve(host, port, p.allow_private)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" + (f":{parts.port}" if parts.port else "")
        with self._lock:
            self.stats.requests += 1
            self.stats.by_url[url] = self.stats.by_url.get(url, 0) + 1
        started = time.monotonic()
        try:
            r = self._pool(scheme, host, port, ip).urlopen(
                "GET", target, headers={"Host": host_header, "User-Agent": USER_AGENT,
                                        "Accept-Encoding": "gzip, deflate", **headers},
                redirect=False, preload_content=False, assert_same_host=False)
        except urllib3.exceptions.HTTPError as exc:
            raise _Retryable(_reason(exc)) from None
        complete = False
        try:
            hdrs = {k.lower(): v for k, v in r.headers.items()}
            resp = Response(url, r.status, hdrs)
            if r.status != 200:
                return resp
            if types and resp.content_type and not any(resp.content_type == t for t in types):
                raise FetchError(f"not a page or feed: content type {resp.content_type}")
            length = hdrs.get("content-length", "")
            if length.isdigit() and int(length) > p.max_bytes:
                raise FetchError(f"too large: {_size(int(length))} (the limit is {_size(p.max_bytes)})")
            chunks, size = [], 0
            try:
                # read1: what has arrived, so that a server trickling bytes meets the total timeout
                while chunk := r.read1(65536, decode_content=True):
                    size += len(chunk)
                    if size > p.max_bytes:
                        raise FetchError(f"too large: over {_size(p.max_bytes)}")
                    if time.monotonic() - started > p.total_timeout:
                        raise _Retryable(f"too slow: not complete after {p.total_timeout:.0f} s")
                    chunks.append(chunk)
            except urllib3.exceptions.HTTPError as exc:
                raise _Retryable(_reason(exc)) from None
            resp.body = b"".join(chunks)
            complete = True
            return resp
        finally:
            if not complete:  # a body not read to its end is not read at all: its connection is closed
                r.close()
            r.release_conn()

    # ------------------------------------------------------------ politeness

    def _robots(self, scheme: str, netloc: str, h: _Host) -> None:
        """Read the host's robots.txt once (under ``h.lock``). Missing (4xx): everything is
        allowed; unreachable or 5xx: nothing is (RFC 9309)."""
        if time.monotonic() < h.robots_until:
            return
        h.robots, h.robots_error, h.delay = None, None, None
        # a watch keeps its fetcher: robots.txt is read again a day later (RFC 9309), after a failure
        # ten minutes later
        h.robots_until = time.monotonic() + ROBOTS_TTL
        try:
            r = self._redirected(f"{scheme}://{netloc}/robots.txt", {}, (), 0)
        except FetchError as exc:
            h.robots_error = f"robots.txt unreachable ({exc})"
            h.robots_until = time.monotonic() + ROBOTS_RETRY
            return
        if r.status >= 500:
            h.robots_error = f"robots.txt answered {r.status}"
            h.robots_until = time.monotonic() + ROBOTS_RETRY
        elif r.status != 200:
            h.robots = False
        else:
            from protego import Protego

            h.robots = Protego.parse(r.body.decode("utf-8", "replace"))
            d = h.robots.crawl_delay(ROBOTS_AGENT)
            h.delay = min(float(d), self.policy.max_crawl_delay) if d else None

    def _paced(self, url: str, fn):
        """Run ``fn()`` for ``url`` inside the host's concurrency slot, after its interval."""
        parts = urlsplit(url)
        key = f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"
        h = self._host(key)
        if self.policy.robots and parts.path != "/robots.txt":
            with h.robots_lock:  # outside the slots: reading robots.txt takes one
                self._robots(parts.scheme.lower(), parts.netloc, h)
            if h.robots_error:
                raise FetchError(f"refused: {h.robots_error}")
            if h.robots and not h.robots.can_fetch(url, ROBOTS_AGENT):
                raise FetchError("refused by the site's robots.txt")
        with self._all, h.slots:
            interval = max(self.policy.host_interval, h.delay or 0.0)
            with h.lock:
                wait = h.next_at - time.monotonic()
                h.next_at = max(h.next_at, time.monotonic()) + interval
            if wait > 0:
                time.sleep(wait)
            return fn()

    def _redirected(self, url: str, headers: dict[str, str], types, retries: int | None = None) -> Response:
        seen = [url]
        for _ in range(self.policy.max_redirects + 1):
            r = self._retried(url, headers, types, retries)
            if r.status not in (301, 302, 303, 307, 308) or "location" not in r.headers:
                return r
            url = check_url(urljoin(url, r.headers["location"]))
            if url in seen:
                raise FetchError(f"redirect loop ({' -> '.join(seen[-3:] + [url])})")
            seen.append(url)
        raise FetchError(f"too many redirects (more than {self.policy.max_redirects})")

    def _retried(self, url: str, headers, types, retries: int | None = None) -> Response:
        p = self.policy
        tries = (p.retries if retries is None else retries) + 1
        for attempt in range(tries):
            try:
                r = self._paced(url, lambda: self._once(url, headers, types))
            except _Retryable as exc:
                if attempt + 1 >= tries:
                    raise FetchError(str(exc)) from None
                time.sleep(p.backoff * 2 ** attempt)
                continue
            if (r.status == 429 or r.status >= 500) and attempt + 1 < tries:
                time.sleep(min(_retry_after(r.headers.get("retry-after")) or p.backoff * 2 ** attempt,
                               p.max_crawl_delay))
                continue
            return r
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ public

    def get(self, url: str, types: tuple[str, ...] = HTML_TYPES, etag: str | None = None,
            last_modified: str | None = None) -> Response:
        """The response to GET ``url`` after redirects: status 200 with its body, or 304 when
        ``etag``/``last_modified`` say the copy held is current. Any other outcome is a FetchError."""
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        r = self._redirected(check_url(url), headers, types)
        if r.status in (200, 304):
            return r
        raise FetchError(f"HTTP {r.status}" + (" (not found)" if r.status in (404, 410) else ""))


class _Retryable(FetchError):
    """A failure worth trying again (connection refused or reset, timeout)."""


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ConnectTimeoutError)) \
            or "timed out" in text:
        return "timed out"
    if "Connection refused" in text:
        return "connection refused"
    return text.split(": ", 1)[-1][:200]


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    when = email.utils.parsedate_to_datetime(value) if value else None
    return max(0.0, when.timestamp() - time.time()) if when else None
