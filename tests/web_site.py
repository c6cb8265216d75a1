"""A small news site served on 127.0.0.1 for the web tests and bench/web.py: pages written for
them (a Persian agency page with menus, related boxes, comments and share buttons around the
story; a Dari page dated in the Afghan solar calendar; an English wire page; a page that is all
boilerplate), RSS 2.0, Atom and JSON feeds, and misbehaving URLs (slow, a redirect loop, 404, an
oversize body, a binary body). Every request is counted by path.

Each page's story and boilerplate sentences are kept apart (``Page.story`` / ``Page.boilerplate``)
so extraction can be measured: story sentences kept, boilerplate sentences indexed.
"""

from __future__ import annotations

import email.utils
import html
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    etag: str | None = None            # answer 304 to a matching If-None-Match
    last_modified: float | None = None  # epoch seconds; answer 304 to If-Modified-Since not older
    no_length: bool = False            # send the body without Content-Length (read until close)
    fail_first: int = 0                # answer 503 to this many requests first
    drip: float = 0.0                  # seconds between the body's bytes (a server that trickles)


class Site:
    """``routes`` by path; ``hits`` counts requests by path."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                with site.lock:
                    site.hits[path] += 1
                    route = site.routes.get(path)
                if route is None:
                    return self._send(404, b"not found", "text/plain", {})
                if route.fail_first:
                    with site.lock:
                        route.fail_first -= 1
                    return self._send(503, b"busy", "text/plain", {"Retry-After": "0"})
                if route.delay:
                    time.sleep(route.delay)
                headers = dict(route.headers)
                if route.etag:
                    headers["ETag"] = route.etag
                    if self.headers.get("If-None-Match") == route.etag:
                        return self._send(304, b"", None, headers)
                if route.last_modified is not None:
                    headers["Last-Modified"] = email.utils.formatdate(route.last_modified, usegmt=True)
                    since = self.headers.get("If-Modified-Since")
                    if since and email.utils.parsedate_to_datetime(since).timestamp() >= int(route.last_modified):
                        return self._send(304, b"", None, headers)
                self._send(route.status, route.body, route.content_type, headers, route.no_length, route.drip)

            def _send(self, status, body, ctype, headers, no_length=False, drip=0.0) -> None:
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for k, v in headers.items():
                    self.send_header(k, v)
                if no_length:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if drip:
                        for i in range(len(body)):
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(drip)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Site":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: str | bytes, **kw) -> str:
        self.routes[path] = Route(body.encode("utf-8") if isinstance(body, str) else body, **kw)
        return self.url(path)


# ---------------------------------------------------------------- pages

@dataclass
class Page:
    path: str
    title: str
    story: list[str]                  # paragraphs of the story (each one or more sentences)
    boilerplate: list[str]            # every menu item, related headline, comment, share label, footer
    html: str = ""


def _sentences(paragraphs: list[str]) -> list[str]:
    import re

    out = []
    for p in paragraphs:
        out += [s.strip() for s in re.split(r"(?<=[.!؟?])\s+", p) if s.strip()]
    return out


def story_sentences(page: Page) -> list[str]:
    return _sentences(page.story)


FA_NAV = ["صفحه اصلی", "سیاسی", "اقتصادی", "بین‌الملل", "ورزشی", "فرهنگی", "عکس", "ویدئو", "آرشیو اخبار"]
FA_RELATED = ["افزایش قیمت بلیت قطار مشهد از هفته آینده اعلام شد",
              "نشست کمیسیون انرژی مجلس با حضور وزیر نفت برگزار شد",
              "پیش‌بینی هواشناسی از بارش‌های پراکنده در استان‌های شمالی خبر داد",
              "صادرات فرش دستباف در سه ماه نخست سال کاهش یافت"]
FA_COMMENTS = ["این طرح سال‌هاست وعده داده می‌شود و هنوز خبری از اجرای آن نیست.",
               "امیدوارم این بار مسئولان به قول خود عمل کنند و مردم منطقه نفس راحتی بکشند."]
FA_SHARE = ["تلگرام", "واتساپ", "توییتر", "کپی لینک", "چاپ خبر"]
FA_FOOTER = ["کلیه حقوق این پایگاه خبری محفوظ است و استفاده از مطالب تنها با ذکر منبع مجاز است.",
             "درباره ما", "تماس با ما", "آگهی‌ها"]

FA_STORY = [
    "به گزارش خبرگزاری تسنیم، عملیات اجرایی خط انتقال آب از سد طالقان به شهرهای غرب استان البرز روز "
    "شنبه با حضور معاون وزیر نیرو آغاز شد.",
    "معاون وزیر نیرو در این مراسم گفت: طول این خط انتقال ۴۲ کیلومتر است و ظرفیت آن به ۲.۵ مترمکعب در "
    "ثانیه می‌رسد. وی افزود که با بهره‌برداری از این طرح، کم‌آبی تابستانی در نظرآباد و هشتگرد برطرف خواهد شد.",
    "مدیرعامل شرکت آب منطقه‌ای البرز نیز اعلام کرد که اعتبار این طرح از محل اوراق مشارکت تأمین شده است. "
    "به گفته او، پیمانکار موظف است بخش نخست خط را تا پایان شهریور سال آینده تحویل دهد.",
    "ساکنان نظرآباد در سال‌های گذشته بارها از قطعی‌های شبانه آب در ماه‌های گرم سال شکایت کرده بودند. "
    "شورای شهر هشتگرد هم در نامه‌ای به استاندار خواستار تسریع در اجرای این خط شده بود.",
]

ASIDE_CSS = ""


def persian_agency_page() -> Page:
    p = Page("/fa/news/1404/04/20/3345127/", "آغاز عملیات اجرایی خط انتقال آب طالقان به غرب البرز",
             FA_STORY, FA_NAV + FA_RELATED + FA_COMMENTS + FA_SHARE + FA_FOOTER + ["اخبار مرتبط", "نظرات کاربران"])
    nav = "".join(f'<li><a href="/fa/section/{i}">{html.escape(x)}</a></li>' for i, x in enumerate(FA_NAV))
    related = "".join(f'<li><a href="/fa/news/{i}">{html.escape(x)}</a></li>' for i, x in enumerate(FA_RELATED))
    comments = "".join(f'<div class="comment"><span class="author">کاربر {i}</span><p>{html.escape(c)}</p></div>'
                       for i, c in enumerate(FA_COMMENTS))
    share = "".join(f'<a class="share" href="#">{x}</a>' for x in FA_SHARE)
    body = "".join(f"<p>{html.escape(x)}</p>" for x in FA_STORY)
    p.html = f"""<!DOCTYPE html><html lang="fa" dir="rtl"><head><meta charset="utf-8">
<title>{p.title} - خبرگزاری تسنیم | Tasnim</title>
<meta property="og:site_name" content="خبرگزاری تسنیم">
<meta property="og:title" content="{p.title}">
<meta property="article:published_time" content="2025-07-11T09:15:00+04:30">
<link rel="canonical" href="/fa/news/1404/04/20/3345127/">
<script type="application/ld+json">{{"@context":"https://schema.org","@type":"NewsArticle",
"headline":"{p.title}","datePublished":"2025-07-11T09:15:00+04:30",
"publisher":{{"@type":"Organization","name":"خبرگزاری تسنیم"}}}}</script>
</head><body>
<header><div class="logo">خبرگزاری تسنیم</div><nav class="menu"><ul>{nav}</ul></nav></header>
<main><article class="news">
<h1>{p.title}</h1>
<div class="date">۲۰ تیر ۱۴۰۴ - ۰۹:۱۵</div>
<div class="body">{body}</div>
<div class="share-box">{share}</div>
</article>
<aside class="related"><h3>اخبار مرتبط</h3><ul>{related}</ul></aside>
<section id="comments" class="comments"><h3>نظرات کاربران</h3>{comments}</section>
</main>
<footer><p>{FA_FOOTER[0]}</p><a href="/about">{FA_FOOTER[1]}</a> <a href="/contact">{FA_FOOTER[2]}</a>
<a href="/ads">{FA_FOOTER[3]}</a></footer>
</body></html>"""
    return p


DARI_STORY = [
    "کابل (پژواک): مسئولان وزارت معادن و پترولیم روز چهارشنبه، ۲۵ سرطان ۱۴۰۴ گفتند که کار استخراج "
    "مس عینک در ولایت لوگر تا پایان سال جاری آغاز می‌شود.",
    "سخنگوی این وزارت به خبرنگار پژواک گفت که شرکت قراردادی تضمین داده است سرک دسترسی به معدن را "
    "در شش ماه آینده تکمیل کند. او افزود که نزدیک به دو هزار تن از باشندگان محل در این پروژه کار خواهند یافت.",
    "شماری از بزرگان قومی لوگر از حکومت خواستند که پیش از آغاز کار، خانواده‌های بیجاشده را جبران خساره کند. "
    "آنان گفتند که وعده‌های پیشین در این زمینه عملی نشده است.",
]
DARI_BOILER = ["خانه", "سیاسی", "اقتصادی", "ولایات", "گزارش ویژه", "ویدیو",
               "آخرین خبرها", "نرخ اسعار در بازار سرای شهزاده ثابت ماند",
               "فیسبوک", "واتساپ", "ایمیل",
               "تمام حقوق برای آژانس خبری پژواک محفوظ است."]


def dari_page() -> Page:
    p = Page("/dari/2025/economy/lugar-copper", "آغاز استخراج مس عینک تا پایان سال", DARI_STORY, DARI_BOILER)
    menu = "".join(f"<a href='/dari/s{i}'>{x}</a> " for i, x in enumerate(DARI_BOILER[:6]))
    p.html = f"""<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>{p.title}</title></head><body>
<div id="top-menu">{menu}</div>
<div class="content"><div class="post"><h2 class="post-title">{p.title}</h2>
{"".join(f"<p>{x}</p>" for x in DARI_STORY)}
<div class="social"><a href="#">{DARI_BOILER[8]}</a><a href="#">{DARI_BOILER[9]}</a><a href="#">{DARI_BOILER[10]}</a></div>
</div>
<div class="sidebar"><h4>{DARI_BOILER[6]}</h4><ul><li><a href="/dari/x">{DARI_BOILER[7]}</a></li></ul></div></div>
<div class="copyright">{DARI_BOILER[11]}</div>
</body></html>"""
    return p


EN_STORY = [
    "KABUL (Reuters) - Afghanistan's wheat harvest is expected to fall by about a fifth this year after "
    "a dry spring, the U.N. Food and Agriculture Organization said on Friday.",
    "The agency said rainfall in the northern provinces was less than half the long-term average between "
    "February and May. Farmers in Balkh and Kunduz told Reuters they had planted less land than usual.",
    "Aid groups warned that lower harvests would push up flour prices before winter. The FAO said it "
    "needed $40 million to supply seed and fertiliser to smallholders ahead of the autumn planting.",
]
EN_BOILER = ["World", "Business", "Markets", "Sustainability", "Legal", "Breakingviews",
             "Sign up for our newsletter.", "Reporting by Staff; Editing by Desk",
             "Our Standards: The Thomson Reuters Trust Principles.",
             "Read Next", "Oil prices edge higher on supply worries", "Share this article"]


def english_page() -> Page:
    p = Page("/world/asia-pacific/afghan-wheat-harvest-2025-07-11/", "Afghan wheat harvest seen down a fifth after dry spring",
             EN_STORY, EN_BOILER)
    nav = "".join(f"<li><a href='/{x.lower()}'>{x}</a></li>" for x in EN_BOILER[:6])
    p.html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{p.title} | Reuters</title>
<meta property="og:site_name" content="Reuters">
<meta name="article:published_time" property="article:published_time" content="2025-07-11T08:30:00Z">
</head><body><nav><ul>{nav}</ul></nav>
<div class="signup">{EN_BOILER[6]}</div>
<article><h1>{p.title}</h1><time datetime="2025-07-11T08:30:00Z">July 11, 2025</time>
{"".join(f"<p>{x}</p>" for x in EN_STORY)}
<p class="credit"><em>{EN_BOILER[7]}</em></p>
<div class="share"><button>{EN_BOILER[11]}</button></div></article>
<div class="trust">{EN_BOILER[8]}</div>
<aside><h2>{EN_BOILER[9]}</h2><a href="/markets/oil">{EN_BOILER[10]}</a></aside>
</body></html>"""
    return p


def boilerplate_page() -> Page:
    items = FA_NAV + FA_SHARE
    p = Page("/fa/tag/water", "برچسب: آب", [], items + [FA_FOOTER[0]])
    p.html = f"""<html lang="fa"><head><meta charset="utf-8"><title>برچسب: آب</title></head><body>
<nav>{"".join(f"<a href='/s{i}'>{x}</a> " for i, x in enumerate(FA_NAV))}</nav>
<div class="share">{"".join(f"<a href='#'>{x}</a>" for x in FA_SHARE)}</div>
<footer>{FA_FOOTER[0]}</footer></body></html>"""
    return p


PAGES = (persian_agency_page, dari_page, english_page)


# ---------------------------------------------------------------- feeds

def rss(site: Site, items: list[dict], title: str = "خبرگزاری تسنیم") -> str:
    """RSS 2.0; each item: guid, link (relative links allowed), title (or title_xml), date (epoch),
    optional description and content (full HTML)."""
    out = []
    for it in items:
        extra = ""
        if it.get("content"):
            extra = f"<content:encoded><![CDATA[{it['content']}]]></content:encoded>"
        item_title = it.get("title_xml") or html.escape(it["title"])  # title_xml: as written, entities and all
        out.append(f"""<item><title>{item_title}</title><link>{html.escape(it['link'])}</link>
<guid isPermaLink="false">{html.escape(it['guid'])}</guid>
<pubDate>{email.utils.formatdate(it['date'], usegmt=True)}</pubDate>
<description>{html.escape(it.get('description', ''))}</description>{extra}</item>""")
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>
<title>{html.escape(title)}</title><link>{site.base}/</link><description>آخرین اخبار</description>
{"".join(out)}</channel></rss>"""


def atom(site: Site, entries: list[dict], title: str = "Pajhwok Afghan News") -> str:
    """Atom 1.0 with an xml:base, so entry links may be relative."""
    out = []
    for e in entries:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e["date"]))
        content = (f'<content type="html">{html.escape(e["content"])}</content>' if e.get("content") else "")
        out.append(f"""<entry><id>{html.escape(e['guid'])}</id><title>{html.escape(e['title'])}</title>
<link rel="alternate" href="{html.escape(e['link'])}"/><updated>{when}</updated><published>{when}</published>
<summary>{html.escape(e.get('description', ''))}</summary>{content}</entry>""")
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="{site.base}/dari/">
<title>{html.escape(title)}</title><id>{site.base}/dari/</id>
<updated>{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}</updated>
{"".join(out)}</feed>"""


def json_feed(site: Site, items: list[dict], title: str = "Wire") -> str:
    import json

    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": title, "home_page_url": site.base,
                       "items": [{"id": it["guid"], "url": it["link"], "title": it["title"],
                                  "date_published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(it["date"])),
                                  **({"content_html": it["content"]} if it.get("content") else {})}
                                 for it in items]}, ensure_ascii=False)


def simple_page(title: str, paragraphs: list[str], lang: str = "fa", site_name: str = "خبرگزاری تسنیم",
                published: str | None = None) -> str:
    meta = f'<meta property="article:published_time" content="{published}">' if published else ""
    return f"""<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta property="og:site_name" content="{html.escape(site_name)}">{meta}</head><body>
<nav><a href="/">صفحه اصلی</a> <a href="/s">سیاسی</a> <a href="/e">اقتصادی</a></nav>
<article><h1>{html.escape(title)}</h1>{"".join(f"<p>{html.escape(x)}</p>" for x in paragraphs)}</article>
<footer>کلیه حقوق محفوظ است.</footer></body></html>"""
