"""Web pages and feeds (rag.web) against a real HTTP server on 127.0.0.1 (tests/web_site.py):
main text without menus or comments, dates and agencies from metadata and text, ids from the
canonical URL, failures named and skipped, private addresses refused, and watch rounds that fetch
only what changed (requests counted at the server). Indexes use the hashed embedder, except the
CLI tests, which run the bundled model as ``rag`` does."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from rag import RAG
from rag.articles import Article
from rag.hashed import HashedEmbedder
from rag.web import FeedWatch, Fetcher, FetchError, FetchPolicy, load_urls, url_id
from rag.web.feeds import FeedState, parse_every, parse_feed, read_feed_list
from web_site import (DARI_STORY, EN_BOILER, EN_STORY, FA_COMMENTS, FA_FOOTER, FA_NAV, FA_RELATED, FA_SHARE,
                      FA_STORY, Site, atom, boilerplate_page, dari_page, english_page, json_feed,
                      persian_agency_page, rss, simple_page, story_sentences)

FAST = FetchPolicy(host_interval=0.0, backoff=0.05, read_timeout=1.0, total_timeout=3.0, retries=1,
                   max_bytes=256 * 1024)


@pytest.fixture
def site():
    with Site() as s:
        for make in (persian_agency_page, dari_page, english_page, boilerplate_page):
            p = make()
            s.add(p.path, p.html)
        s.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
        yield s


def fetcher(**kw) -> Fetcher:
    return Fetcher(FetchPolicy(**{**FAST.__dict__, **kw}))


def hashed_rag(path) -> RAG:
    return RAG(path, embedder=HashedEmbedder(), create=True, reader=False)


# ---------------------------------------------------------------- pages

def test_persian_agency_page_main_text_only_with_metadata(site, tmp_path):
    p = persian_agency_page()
    loaded = load_urls([site.url(p.path)], fetcher())
    assert not loaded.skipped
    [art] = loaded.articles
    for sentence in story_sentences(p):
        assert sentence in art.text
    for junk in FA_NAV + FA_RELATED + FA_COMMENTS + FA_SHARE + FA_FOOTER:
        assert junk not in art.text, junk
    assert art.title == p.title
    assert art.content().startswith(FA_STORY[0][:30])  # the headline line is the title, not content
    assert (art.source, art.date) == ("Tasnim", "2025-07-11")  # og:site_name, article:published_time
    assert art.id == f"127.0.0.1:{site.port}/fa/news/1404/04/20/3345127"
    assert art.url == site.url(p.path)
    assert "\u200c" in art.text  # ZWNJ survives extraction (می‌رسد)

    # in the index: the story is found, the menus and comments are not there to be found
    r = hashed_rag(tmp_path / "ix")
    report = r.ingest_urls([site.url(p.path)], fetcher())
    assert report.added == [art.id]
    stored = r.article(art.id)
    assert stored.url == art.url and stored.source == "Tasnim"
    assert not any(c in stored.text for c in FA_COMMENTS)
    hits = r.search("خط انتقال آب طالقان", k=3).hits
    assert hits and hits[0].article_id == art.id


def test_dari_page_dated_by_its_afghan_solar_dateline(site):
    p = dari_page()
    [art] = load_urls([site.url(p.path)], fetcher()).articles
    assert (art.date, art.calendar) == ("2025-07-16", "afghan")  # ۲۵ سرطان ۱۴۰۴; the page has no date markup
    assert art.source == "Pajhwok"  # «کابل (پژواک):»
    assert all(s in art.text for s in story_sentences(p))
    assert "نرخ اسعار" not in art.text and "فیسبوک" not in art.text


def test_english_wire_page(site):
    p = english_page()
    [art] = load_urls([site.url(p.path)], fetcher()).articles
    assert (art.source, art.date) == ("Reuters", "2025-07-11")
    assert all(s in art.text for s in story_sentences(p))
    for junk in EN_BOILER[:7] + EN_BOILER[8:]:
        assert junk not in art.text, junk


def test_two_urls_of_one_page_are_one_article_and_refetching_changes_nothing(site, tmp_path):
    p = persian_agency_page()
    a = site.url(p.path + "?utm_source=telegram&utm_medium=social")
    b = site.url(p.path + "?fbclid=XYZ#comments")
    assert url_id(a) == url_id(b) == url_id(site.url(p.path))
    assert url_id(site.url("/news?id=5")) != url_id(site.url("/news?id=6"))  # a real parameter is kept
    r = hashed_rag(tmp_path / "ix")
    report = r.ingest_urls([a, b], fetcher())
    assert len(report.added) == 1 and not report.skipped
    assert r.ingest_urls([b], fetcher()).unchanged == report.added
    assert r.count()[0] == 1


def test_every_failure_is_named_and_the_rest_ingested(site, tmp_path):
    good = persian_agency_page()
    site.add("/slow", simple_page("کند", FA_STORY), delay=2.5)
    site.add("/loop/a", b"", status=302, headers={"Location": "/loop/b"})
    site.add("/loop/b", b"", status=302, headers={"Location": "/loop/a"})
    site.add("/huge", "<html><body><p>" + "خبر " * 200_000 + "</p></body></html>")
    site.add("/huge-stream", b"<html><body><p>" + b"x" * 400_000 + b"</p></body></html>", no_length=True)
    site.add("/photo.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40, content_type="application/octet-stream")
    site.add("/binary-as-html", b"\x00\x01\x02" * 3000, content_type="text/html")
    site.add("/private/page", simple_page("خصوصی", FA_STORY))
    site.add("/trickle", b"<html><body><p>" + b"slow news " * 100 + b"</p></body></html>", drip=0.2)
    urls = {
        "/slow": "timed out", "/trickle": "too slow", "/loop/a": "redirect loop", "/missing": "HTTP 404", "/huge": "too large",
        "/huge-stream": "too large", "/photo.jpg": "content type application/octet-stream",
        "/binary-as-html": "binary", "/fa/tag/water": "no readable main text", "/private/page": "robots.txt",
    }
    r = hashed_rag(tmp_path / "ix")
    t0 = time.monotonic()
    report = r.ingest_urls([site.url(good.path), *(site.url(u) for u in urls), "ftp://127.0.0.1/x"], fetcher())
    assert time.monotonic() - t0 < 20
    assert report.added == [url_id(site.url(good.path))]
    reasons = {s.path: s.reason for s in report.skipped}
    assert len(reasons) == len(urls) + 1
    for path, why in urls.items():
        assert why in reasons[site.url(path)], (path, reasons[site.url(path)])
    assert "only http and https" in reasons["ftp://127.0.0.1/x"]
    assert site.hits["/private/page"] == 0  # robots.txt said no: never asked
    assert site.hits["/slow"] == 2  # one retry after the timeout


def test_retries_with_backoff_on_503(site):
    site.add("/busy", simple_page("خبر", FA_STORY), fail_first=1)
    [art] = load_urls([site.url("/busy")], fetcher()).articles
    assert site.hits["/busy"] == 2 and FA_STORY[1][:20] in art.text
    site.add("/down", simple_page("خبر", FA_STORY), fail_first=5)
    loaded = load_urls([site.url("/down")], fetcher())
    assert "HTTP 503" in loaded.skipped[0].reason and site.hits["/down"] == 2


def test_private_and_local_addresses_refused_unless_allowed(site):
    strict = fetcher(allow_private=False)
    for url in (site.url("/fa/tag/water"), f"http://localhost:{site.port}/x", "http://169.254.169.254/latest/meta-data/",
                "http://10.1.2.3/", "http://[::1]/", "http://[::ffff:127.0.0.1]/"):
        with pytest.raises(FetchError, match="refused: .* private or local address"):
            strict.get(url)
    assert sum(site.hits.values()) == 0  # not even robots.txt was asked
    for url in ("file:///etc/passwd", "gopher://127.0.0.1/", "javascript:alert(1)"):
        with pytest.raises(FetchError, match="only http and https"):
            fetcher().get(url)
    # a redirect is checked again at each hop
    site.add("/to-file", b"", status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(FetchError, match="only http and https"):
        fetcher().get(site.url("/to-file"))
    assert fetcher(allow_private=True).get(site.url("/fa/tag/water")).status == 200


def test_the_app_refuses_private_urls_only_when_shared():
    from rag.ui import web_fetcher

    assert web_fetcher("127.0.0.1").policy.allow_private
    assert not web_fetcher("0.0.0.0").policy.allow_private
    assert web_fetcher("0.0.0.0", allow_private_urls=True).policy.allow_private


def test_source_card_links_only_web_addresses():
    from rag.ui import _link

    html = _link(Article("a", "t", "text", url='https://example.com/a?b=1&c="x"'))
    assert 'href="https://example.com/a?b=1&amp;c=&quot;x&quot;"' in html and 'rel="noopener' in html
    assert _link(Article("b", "t", "text", url="javascript:alert(1)")) == ""


# ---------------------------------------------------------------- feeds

NOW = 1752220800  # 2025-07-11


def _site_feeds(site):
    """Pages for 3 RSS items, 2 Atom entries (one carrying its full story) and 1 JSON item."""
    for i in range(3):
        site.add(f"/fa/news/{i}", simple_page(f"خبر شماره {i} درباره سد طالقان",
                                              [f"به گزارش تسنیم، متن خبر شماره {i} درباره آب رسانی به البرز است."] + FA_STORY[1:],
                                              published=f"2025-07-0{i + 1}T10:00:00Z"))
    site.add("/dari/pages/lugar.html", dari_page().html)
    site.add("/wire/1", simple_page("Wheat harvest", EN_STORY, lang="en", site_name="Reuters"))
    items = [{"guid": f"tasnim-{i}", "link": f"/fa/news/{i}", "title": f"خبر {i}",
              "title_xml": f"خبر شماره {i} &amp; «آب» &#1601;",
              "date": NOW + i} for i in range(3)]
    full = "".join(f"<p>{x}</p>" for x in DARI_STORY + DARI_STORY)
    entries = [{"guid": "pajhwok-1", "link": "pages/lugar.html", "title": "مس عینک", "date": NOW},
               {"guid": "pajhwok-2", "link": "pages/full-only.html", "title": "خبر با متن کامل", "date": NOW,
                "content": full}]
    site.add("/rss.xml", rss(site, items), content_type="application/rss+xml", etag='"v1"')
    site.add("/atom.xml", atom(site, entries), content_type="application/atom+xml", last_modified=NOW)
    site.add("/feed.json", json_feed(site, [{"guid": "w1", "link": "/wire/1", "title": "Wheat", "date": NOW}]),
             content_type="application/feed+json")
    return items, entries


def test_feed_parsing_relative_links_and_entities(site):
    items, entries = _site_feeds(site)
    title, parsed = parse_feed(site.routes["/rss.xml"].body, site.url("/rss.xml"), "application/rss+xml")
    assert title == "خبرگزاری تسنیم"
    assert [e.link for e in parsed] == [site.url(f"/fa/news/{i}") for i in range(3)]
    assert parsed[0].title == "خبر شماره 0 & «آب» ف"
    _, parsed = parse_feed(site.routes["/atom.xml"].body, site.url("/atom.xml"), "application/atom+xml")
    assert [e.link for e in parsed] == [site.url("/dari/pages/lugar.html"), site.url("/dari/pages/full-only.html")]
    assert parsed[1].content and "مس عینک" in parsed[1].content
    _, parsed = parse_feed(site.routes["/feed.json"].body, site.url("/feed.json"), "application/feed+json")
    assert parsed[0].link == site.url("/wire/1")


def test_watch_rounds_fetch_only_what_changed(site, tmp_path):
    items, entries = _site_feeds(site)
    feeds = [site.url("/rss.xml"), site.url("/atom.xml"), site.url("/feed.json")]
    r = hashed_rag(tmp_path / "ix")
    state_path = tmp_path / "ix.feeds.json"
    watch = FeedWatch(r, feeds, state_path, fetcher=fetcher())

    first = watch.round()
    assert [f.status for f in first.feeds] == ["ok", "ok", "ok"]
    assert [len(f.new) for f in first.feeds] == [3, 2, 1] and not any(f.failed for f in first.feeds)
    assert site.hits["/dari/pages/full-only.html"] == 0  # its full story came with the feed
    full = r.article(url_id(site.url("/dari/pages/full-only.html")))
    assert DARI_STORY[1].split(". ")[0] in full.text and full.title == "خبر با متن کامل"
    assert r.article(url_id(site.url("/fa/news/2"))).date == "2025-07-03"  # the page's own date
    saved = json.loads(state_path.read_text(encoding="utf-8"))
    assert saved["feeds"][feeds[0]]["etag"] == '"v1"'
    assert not list(tmp_path.glob("*.tmp"))
    pages_before = {p: n for p, n in site.hits.items() if not p.endswith((".xml", ".json"))}

    # nothing new: ETag and Last-Modified answer 304, the JSON feed (no validators) is read but
    # none of its entries changed: no page is fetched
    second = watch.round()
    assert [f.status for f in second.feeds] == ["not modified", "not modified", "ok"]
    assert second.requests == 3 and second.ingest is None
    assert {p: n for p, n in site.hits.items() if not p.endswith((".xml", ".json"))} == pages_before

    # one entry changes (its page too): only that page is fetched, and its article updated
    site.add("/fa/news/1", simple_page("خبر شماره 1 درباره سد طالقان", ["متن اصلاح شده: آبرسانی از هفته آینده آغاز می‌شود."]
                                       + FA_STORY[1:], published="2025-07-02T10:00:00Z"))
    items[1]["date"] += 3600
    items[1]["title_xml"] = "خبر شماره 1 (اصلاح شده)"
    site.add("/rss.xml", rss(site, items), content_type="application/rss+xml", etag='"v2"')
    third = watch.round()
    assert third.feeds[0].status == "ok" and third.feeds[0].updated == [url_id(site.url("/fa/news/1"))]
    assert not third.feeds[0].new
    assert site.hits["/fa/news/1"] == pages_before["/fa/news/1"] + 1
    assert site.hits["/fa/news/0"] == pages_before["/fa/news/0"]
    assert "متن اصلاح شده" in r.article(url_id(site.url("/fa/news/1"))).text
    assert "3 feeds (2 not modified" in second.summary()


def test_a_bad_feed_or_entry_is_reported_and_the_rest_ingested_then_retried(site, tmp_path):
    items, _ = _site_feeds(site)
    items.append({"guid": "gone", "link": "/fa/news/404", "title": "x", "date": NOW})
    site.add("/rss.xml", rss(site, items), content_type="application/rss+xml", etag='"e1"')
    site.add("/not-a-feed", "<html><body>hello</body></html>")
    r = hashed_rag(tmp_path / "ix")
    watch = FeedWatch(r, [site.url("/rss.xml"), site.url("/nope.xml"), site.url("/not-a-feed")],
                      tmp_path / "s.json", fetcher=fetcher())
    rep = watch.round()
    assert len(rep.feeds[0].new) == 3
    assert rep.feeds[0].failed == [[site.url("/fa/news/404"), "HTTP 404 (not found)"]]
    assert (rep.feeds[1].status, rep.feeds[1].reason) == ("failed", "HTTP 404 (not found)")
    assert rep.feeds[2].status == "failed" and "not a feed" in rep.feeds[2].reason
    # the failed entry was not recorded: the next round asks for it again, and only for it
    site.add("/fa/news/404", simple_page("دیر رسید", FA_STORY))
    again = watch.round()  # the feed is read again despite its unchanged ETag: an entry is owed
    assert again.feeds[0].new == [url_id(site.url("/fa/news/404"))]
    assert site.hits["/fa/news/0"] == 1
    assert watch.round().feeds[0].status == "not modified"  # all read: now the ETag holds
    # the state on disk says what the Articles tab shows
    last = {f.url: f for f in FeedState(tmp_path / "s.json").last_rounds()}
    assert last[site.url("/nope.xml")].status == "failed"


def test_feed_list_and_interval_parsing(tmp_path):
    (tmp_path / "feeds.txt").write_text("# news\nhttps://a.example/rss\n\n  https://b.example/atom  \n", encoding="utf-8")
    assert read_feed_list(tmp_path / "feeds.txt") == ["https://a.example/rss", "https://b.example/atom"]
    assert (parse_every("15m"), parse_every("30s"), parse_every("1h"), parse_every("90")) == (900, 30, 3600, 90)
    with pytest.raises(ValueError):
        parse_every("0m")


def test_import_rag_does_not_import_the_web_libraries():
    code = ("import sys, rag; bad = [m for m in ('feedparser', 'protego', 'trafilatura', 'courlan', 'urllib3') "
            "if m in sys.modules]; print(bad)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


# ---------------------------------------------------------------- the command line (bundled model)

@pytest.mark.model
def test_cli_ingest_url_feed_and_watch(site, tmp_path):
    from rag.cli import main

    _site_feeds(site)
    runner = CliRunner()
    index = tmp_path / "ix"
    p = english_page()
    res = runner.invoke(main, ["ingest", site.url(p.path + "?utm_source=x"), site.url("/missing"), "--index", str(index)],
                        catch_exceptions=False)
    assert res.exit_code == 1, res.output  # one page skipped
    assert f"added: {url_id(site.url(p.path))}" in res.output
    assert f"skipped: {site.url('/missing')}: HTTP 404" in res.output

    res = runner.invoke(main, ["ingest", "--feed", site.url("/rss.xml"), "--index", str(index)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "3 new, 0 updated" in res.output and (tmp_path / "ix.feeds.json").exists()

    (tmp_path / "feeds.txt").write_text(f"{site.url('/rss.xml')}\n{site.url('/atom.xml')}\n", encoding="utf-8")
    res = runner.invoke(main, ["watch", str(tmp_path / "feeds.txt"), "--once", "--index", str(index)],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "2 feeds (1 not modified, 0 failed): 2 new, 0 updated" in res.output.splitlines()[-1]
    ask = runner.invoke(main, ["ask", "How much did the FAO say it needed?", "--index", str(index), "--json"],
                        catch_exceptions=False)
    cites = json.loads(ask.output)["citations"]
    assert cites and cites[0]["article_id"] == url_id(site.url(p.path))


def test_feed_rounds_shown_escaped_on_the_articles_tab():
    from rag.ui import feeds_html
    from rag.web.feeds import FeedRound

    html = feeds_html([FeedRound("http://a.example/rss", title="<b>Fars</b>", new=["a", "b"], updated=["c"],
                                 failed=[["http://a.example/x?<i>", "HTTP 404 <script>"]], at=NOW),
                       FeedRound("http://b.example/atom", status="failed", reason="timed out", at=NOW)])
    assert "&lt;b&gt;Fars&lt;/b&gt;" in html and "<script>" not in html and "HTTP 404 &lt;script&gt;" in html
    assert "<td>2</td><td>1</td><td>1<ul>" in html  # new, updated, failed
    assert "<td>failed &#40;timed out&#41;</td>" in html
    assert "No feed round yet" in feeds_html([])
