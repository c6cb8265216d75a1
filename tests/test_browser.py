"""The app in a real browser: headless Chromium from Debian (``/usr/bin/chromium``), driven by
Playwright, against ``app.py`` started here on a free port with a fresh index (it indexes
``seeds/`` on first start).

Chromium must be installed (``apt-get install -y chromium``; ``.ci/run`` does it): without it these
tests fail, they do not skip. Playwright cannot download a browser here, so it is always pointed at
the system one. Screenshots of the answers go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import running_app_py

# app.py with the real model, driven in Chromium
pytestmark = [pytest.mark.browser, pytest.mark.model, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("RAG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_FILES = 3  # the app under test is started with --max-upload-files 3
SEED_TEXT = next(iter(sorted((ROOT / "seeds").glob("*.txt")))).read_text(encoding="utf-8")

Q_FA = "اسحاق دار در کدام شهر سخنرانی کرد؟"
Q_EN = "In which city did Ishaq Dar speak?"

KITES = ("Kite festival in Herat\n\n"
         "The kite festival in Herat drew twelve thousand visitors on Friday, organisers said.\n"
         "Local musicians played until late in the evening.\n")
PAYLOAD_IMG = "<img src=x onerror=\"window.__pwned='img';alert('img')\">"
PAYLOAD_SCRIPT = "<script>window.__pwned='script';alert('script')</script>"
PAYLOAD_LINK = "[a link](javascript:window.__pwned='link')"
EVIL = (f"{PAYLOAD_SCRIPT} Zebra parade report\n\n"
        f"The zebra parade in Quetta ended {PAYLOAD_IMG} with drums and {PAYLOAD_LINK} for everyone.\n"
        "The organisers thanked the city.\n")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    index = tmp_path_factory.mktemp("browser") / "index"
    with running_app_py(index, tmp_path_factory.getbasetemp() / "browser-app.log",
                        "--max-upload-files", str(MAX_FILES)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and shutil.which(CHROMIUM)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium chromium-driver "
                    "(or set RAG_CHROMIUM to its path)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install playwright (the browser comes from Debian)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Watch:
    """Dialogs and page errors seen by one page: a payload that ran would show up here."""

    def __init__(self, page):
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def _open(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    watch = Watch(page)
    page.goto(url)
    page.wait_for_selector("#rag-question textarea")
    return context, page, watch


@pytest.fixture(scope="module")
def fa_page(browser, app_url):
    context, page, watch = _open(browser, app_url)
    yield page, watch
    context.close()


def _ask(page, question: str, a: int) -> None:
    """Type ``question``, press Ask, wait for answer number ``a`` (0-based, per session) and its sources."""
    page.fill("#rag-question textarea", question)
    page.click("#rag-ask")
    page.wait_for_selector(f"#rag-chat .rag-a-{a}")
    page.wait_for_selector(f'#rag-sources .rag-sources[data-a="{a}"]')


def _quotes(page, a: int) -> list[str]:
    return page.eval_on_selector_all(f"#rag-chat .rag-a-{a} .rag-quote-text", "els => els.map(e => e.textContent)")


def _passage_marks(page) -> list[str]:
    return page.eval_on_selector_all("#rag-sources .rag-passage mark", "els => els.map(e => e.textContent)")


def _direction(page, selector: str) -> str:
    return page.eval_on_selector(selector, "e => getComputedStyle(e).direction")


def _screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def _mark_in_view(page, n: int) -> dict:
    return page.eval_on_selector(f"#rag-src-{n} details.rag-full[open] .rag-article mark", """m => {
        const r = m.getBoundingClientRect(), box = document.querySelector('#rag-sources').getBoundingClientRect();
        return {text: m.textContent, visible: r.height > 0 && r.bottom > Math.max(box.top, 0)
                && r.top < Math.min(box.bottom, innerHeight)};
    }""")


# ---------------------------------------------------------------- the seed article

def test_persian_answer_is_rtl_cited_and_highlighted(fa_page):
    page, watch = fa_page
    _ask(page, Q_FA, 0)
    answer = page.locator("#rag-chat .rag-a-0")
    assert "[1]" in answer.inner_text()
    assert _direction(page, "#rag-chat .rag-a-0 .rag-msg") == "rtl"
    assert _direction(page, "#rag-chat .rag-a-0 .rag-quote") == "rtl"
    assert _direction(page, "#rag-chat .rag-msg") == "rtl"  # the question's bubble
    quotes = _quotes(page, 0)
    assert quotes and all(q in SEED_TEXT for q in quotes)
    assert any("کوالالامپور" in q for q in quotes)
    # The sources panel: each cited passage with its quote in a <mark>, in the same order.
    assert _passage_marks(page) == quotes
    # the agency and the date in the reader's convention: solar Hijri (Afghan months, as the
    # article wrote it) with the Gregorian beside it
    meta = page.locator("#rag-src-1 .rag-src-meta").inner_text()
    assert meta.count("معمار") == 1 and "۲۰ سرطان ۱۴۰۴" in meta and "۲۰۲۵" in meta
    _screenshot(page, "answer-fa.png")

    # The [n] marker in the answer opens the whole article with the quote highlighted and in view.
    page.click("#rag-chat .rag-a-0 .rag-n-1")
    page.wait_for_selector("#rag-src-1 details.rag-full[open]")
    page.wait_for_function("() => { const m = document.querySelector('#rag-src-1 details[open] mark');"
                           " const r = m && m.getBoundingClientRect(); return r && r.top >= 0 && r.bottom <= innerHeight; }")
    seen = _mark_in_view(page, 1)
    assert seen == {"text": quotes[0], "visible": True}
    assert page.locator("#rag-src-1 .rag-article").inner_text().count("\n") > 3  # the whole article
    assert not watch.dialogs and not watch.errors


def test_english_question_frames_ltr_and_citation_click_opens_article(browser, app_url, fa_page):
    context, page, watch = _open(browser, app_url)
    try:
        _ask(page, Q_EN, 0)
        assert "[1]" in page.locator("#rag-chat .rag-a-0").inner_text()
        assert _direction(page, "#rag-chat .rag-a-0 .rag-msg") == "ltr"    # framing in the question's language
        assert _direction(page, "#rag-chat .rag-a-0 .rag-quote") == "rtl"  # the quote keeps its own
        assert page.locator("#rag-chat .rag-a-0 .rag-msg").first.inner_text().startswith("According to")
        quotes = _quotes(page, 0)
        assert quotes and _passage_marks(page) == quotes
        assert any("کوالالامپور" in q for q in quotes)
        _screenshot(page, "answer-en.png")

        # Clicking a card in the sources panel opens its article at the highlighted quote.
        last = len(quotes)
        page.click(f"#rag-src-{last} .rag-passage")
        page.wait_for_selector(f"#rag-src-{last} details.rag-full[open]")
        page.wait_for_timeout(300)
        assert _mark_in_view(page, last) == {"text": quotes[-1], "visible": True}

        # Sessions do not mix: the Persian page kept its own conversation, this one has only its own.
        fa, _ = fa_page
        assert fa.locator("#rag-chat .message-row").count() == 2
        assert Q_EN not in fa.locator("#rag-chat").inner_text()
        assert page.locator("#rag-chat .message-row").count() == 2
        assert Q_FA not in page.locator("#rag-chat").inner_text()

        # A Persian example button asks its question; [n] of the older answer brings its sources back.
        page.get_by_role("button", name=Q_FA).click()
        page.wait_for_selector("#rag-chat .rag-a-1")
        page.wait_for_selector('#rag-sources .rag-sources[data-a="1"]')
        assert _direction(page, "#rag-chat .rag-a-1 .rag-msg") == "rtl"
        page.click("#rag-chat .rag-a-0 .rag-n-1")
        page.wait_for_selector('#rag-sources .rag-sources[data-a="0"] #rag-src-1 details.rag-full[open]')
        assert _passage_marks(page) == quotes
        assert not watch.dialogs and not watch.errors
    finally:
        context.close()


# ---------------------------------------------------------------- uploads

def test_upload_ask_remove_and_nothing_in_an_article_runs(browser, app_url, tmp_path):
    context, page, watch = _open(browser, app_url)
    try:
        (tmp_path / "kites.md").write_text(KITES, encoding="utf-8")
        (tmp_path / "zebra <evil>.txt").write_text(EVIL, encoding="utf-8")
        (tmp_path / "notes.xlsx").write_bytes(b"%PDF-1.4 not really")
        page.get_by_role("tab", name="Articles · مقاله‌ها").click()

        # Gradio refuses an unsupported type on selection, with a message; the others go on.
        page.set_input_files("#rag-upload input[type=file]",
                             [tmp_path / "kites.md", tmp_path / "zebra <evil>.txt", tmp_path / "notes.xlsx"])
        page.wait_for_selector("[data-testid=toast-body] :text('Invalid file type: notes.xlsx')")
        page.click("[data-testid=toast-close]")
        page.wait_for_selector("#rag-upload td.filename[aria-label*='zebra']")
        page.click("#rag-add")
        page.wait_for_selector("#rag-report li >> nth=1", timeout=60_000)
        report = page.locator("#rag-report").inner_text()
        lines = report.splitlines()
        assert len(lines) == 2, report
        assert any(ln.startswith("kites.md: added") for ln in lines), report
        assert any(ln.startswith("zebra") and "evil" in ln and ": added" in ln and "<" not in ln.split(":")[0]
                   for ln in lines), report  # the file name is sanitised
        table = page.locator("#rag-articles").inner_text()
        assert "Kite festival in Herat" in table and "<script>" in table  # the title, as text

        # The index answers about the new article at once.
        page.get_by_role("tab", name="Ask · پرسش").click()
        _ask(page, "How many visitors did the kite festival in Herat draw?", 0)
        assert "[1]" in page.locator("#rag-chat .rag-a-0").inner_text()
        assert any("twelve thousand visitors" in m for m in _passage_marks(page))

        # The malicious article: shown as text everywhere, nothing runs.
        _ask(page, "What did the zebra parade in Quetta end with?", 1)
        marks = _passage_marks(page)
        assert any(PAYLOAD_IMG in m and PAYLOAD_LINK in m for m in marks), marks
        assert PAYLOAD_IMG in page.locator("#rag-chat .rag-a-1").inner_text()
        assert PAYLOAD_SCRIPT in page.locator("#rag-sources").inner_text()  # the title
        page.click("#rag-chat .rag-a-1 .rag-n-1")
        page.wait_for_selector("#rag-src-1 details.rag-full[open]")
        page.wait_for_timeout(500)
        injected = page.evaluate("""() => ({
            flag: window.__pwned === undefined ? null : String(window.__pwned),
            imgs: [...document.querySelectorAll('img')].filter(i => (i.getAttribute('src') || '') === 'x'
                  || i.hasAttribute('onerror')).length,
            scripts: [...document.querySelectorAll('script')].filter(s => s.textContent.includes('__pwned')).length,
            links: document.querySelectorAll('a[href^="javascript"]').length})""")
        assert injected == {"flag": None, "imgs": 0, "scripts": 0, "links": 0}
        assert not watch.dialogs, watch.dialogs

        # Remove an article: pick its row, press Remove, it is gone from the list.
        page.get_by_role("tab", name="Articles · مقاله‌ها").click()
        page.locator("#rag-articles [role=gridcell]", has_text="kites").first.click()
        page.wait_for_function("() => document.querySelector('#rag-remove-pick input').value.includes('kites')")
        page.click("#rag-remove")
        page.wait_for_selector("#rag-report :text('removed')")
        page.wait_for_function("() => !document.querySelector('#rag-articles').innerText.includes('Kite festival')")
        assert "Zebra parade report" in page.locator("#rag-articles").inner_text()

        # Past the count limit: a clear message where the report goes, nothing ingested.
        for i in range(MAX_FILES + 1):
            (tmp_path / f"many{i}.txt").write_text(f"Title {i}\n\nText {i}.\n", encoding="utf-8")
        page.set_input_files("#rag-upload input[type=file]", [tmp_path / f"many{i}.txt" for i in range(MAX_FILES + 1)])
        page.wait_for_selector(f"#rag-upload td.filename[aria-label='many{MAX_FILES}.txt']")
        page.click("#rag-add")
        page.wait_for_selector(f"#rag-report :text('the limit is {MAX_FILES}')")
        assert "nothing was added" in page.locator("#rag-report").inner_text()
        assert "Title 0" not in page.locator("#rag-articles").inner_text()
        assert not watch.dialogs and not watch.errors
    finally:
        context.close()


def test_page_by_url_is_fetched_answered_and_linked(browser, app_url):
    """A page given by address on the Articles tab (served here on 127.0.0.1: an app bound there
    may fetch local addresses) is read without its menus, answered from, and linked on its card."""
    from web_site import Site, english_page

    page_def = english_page()
    with Site() as site:
        url = site.add(page_def.path, page_def.html)
        context, page, watch = _open(browser, app_url)
        try:
            page.get_by_role("tab", name="Articles · مقاله‌ها").click()
            page.fill("#rag-urls textarea", url + "?utm_source=newsletter")
            page.click("#rag-add-urls")
            page.wait_for_selector("#rag-report li :text('added')", timeout=60_000)
            assert page_def.path.strip("/") in page.locator("#rag-report").inner_text()
            assert page_def.title in page.locator("#rag-articles").inner_text()
            assert site.hits[page_def.path] == 1

            page.get_by_role("tab", name="Ask · پرسش").click()
            _ask(page, "How much money did the FAO say it needed for seed and fertiliser?", 0)
            assert any("$40 million" in q for q in _quotes(page, 0))
            link = page.locator("#rag-src-1 .rag-src-url a")
            assert link.get_attribute("href") == url and link.get_attribute("target") == "_blank"
            assert "Sign up for our newsletter" not in page.locator("#rag-sources").inner_text()
            assert not watch.dialogs and not watch.errors
        finally:
            context.close()


def test_copies_of_a_story_and_the_filters(browser, app_url, tmp_path):
    """A copy of the seed story from another agency: the answer cites one and the source card says
    "also reported by" with the other one click away; the filter controls beside the chat answer
    from matching articles only."""
    context, page, watch = _open(browser, app_url)
    try:
        copy = SEED_TEXT.replace("خبرگزاری معمار", "خبرگزاری فارس").replace("عملاً ", "")
        (tmp_path / "copy-fars.txt").write_text(copy, encoding="utf-8")
        page.get_by_role("tab", name="Articles · مقاله‌ها").click()
        page.set_input_files("#rag-upload input[type=file]", [tmp_path / "copy-fars.txt"])
        page.wait_for_selector("#rag-upload td.filename[aria-label*='copy-fars']")
        page.click("#rag-add")
        page.wait_for_selector("#rag-report li", timeout=60_000)
        page.wait_for_function("() => document.querySelector('#rag-articles').innerText.includes('copy-fars')")
        page.get_by_role("tab", name="Ask · پرسش").click()
        _ask(page, Q_FA, 0)
        also = page.locator("#rag-src-1 .rag-also")
        assert also.count() == 1
        head = also.locator(".rag-also-head").inner_text()
        assert "1" in head and ("فارس" in head or "معمار" in head), head
        also.locator("summary").first.click()
        assert "کوالالامپور" in also.locator(".rag-article").first.inner_text()
        # the citations come from one copy only
        cited = {page.locator(f"#rag-src-{n}").get_attribute("data-n") for n in (1,)}
        assert cited == {"1"}

        # a date filter no article passes: the answer says so
        page.fill("#rag-since input, #rag-since textarea", "1410-01-01")
        _ask(page, Q_FA, 1)
        assert "هیچ مقاله‌ای با این پالایه" in page.locator("#rag-chat .rag-a-1").inner_text()
        # an agency filter: the answer quotes the Fars copy only
        page.fill("#rag-since input, #rag-since textarea", "")
        page.locator("#rag-source input").fill("Fars")
        page.keyboard.press("Enter")
        _ask(page, Q_FA, 2)
        assert page.locator("#rag-chat .rag-a-2 .rag-quote").count() >= 1
        assert "فارس" in page.locator("#rag-src-1 .rag-src-meta").inner_text()
        _screenshot(page, "filters-and-copies.png")

        # the timeline: the filtered articles (Fars only) by date, the cited one marked; a row opens it
        page.get_by_role("tab", name="Timeline · گاه‌شمار").click()
        page.wait_for_function("() => document.querySelector('#rag-timeline-list').innerText.includes('copy-fars')")
        listing = page.locator("#rag-timeline-list").inner_text()
        assert "2025-07-11" in listing and "000_" not in listing and "✓" in listing
        page.wait_for_selector("#rag-timeline canvas, #rag-timeline svg")
        page.locator("#rag-timeline-list [role=gridcell]", has_text="copy-fars").first.click()
        page.wait_for_function("() => document.querySelector('#rag-timeline-article').innerText.includes('کوالالامپور')")
        _screenshot(page, "timeline.png")
        assert not watch.dialogs and not watch.errors
    finally:
        context.close()


def test_english_rendering_is_marked_machine_translation(browser, tmp_path, monkeypatch):
    """With a chat model set (a fake OpenAI-compatible server), an English question's Persian
    quotes get an English rendering under them, marked machine translation; the quote stays."""
    from fake_openai import fake_openai_server, render_each_quote

    with fake_openai_server() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        # by what is asked, not by order: the answer call declines (the extractive answer stands),
        # the rendering call renders each quote
        srv.default = render_each_quote
        log_path = tmp_path / "app.log"
        with running_app_py(tmp_path / "index", log_path) as url:
            context, page, watch = _open(browser, url)
            try:
                page.locator("#rag-settings").get_by_text("Settings · تنظیمات").click()
                field = page.locator("#rag-llm textarea, #rag-llm input")
                # typed and left as a reader does: a fill right as the accordion opened was sometimes
                # not in the Ask request (the chat server was never asked)
                field.click()
                field.press_sequentially("openai:test-model")
                field.press("Tab")
                assert field.input_value() == "openai:test-model"
                _ask(page, Q_EN, 0)
                mark = page.locator("#rag-chat .rag-a-0 .rag-rendering")
                asked = [r["body"]["messages"][1]["content"][:80] for r in srv.requests]
                assert mark.count() >= 1, (f"no rendering under the answer; the chat server was asked {asked}; "
                                           f"the answer: {page.locator('#rag-chat .rag-a-0').inner_text()[:300]!r}; "
                                           f"app log: {log_path.read_text()[-1500:]}")
                assert mark.first.locator(".rag-mt").inner_text() == "machine translation"
                assert "The minister spoke." in mark.first.inner_text()
                assert _direction(page, "#rag-chat .rag-a-0 .rag-rendering") == "ltr"
                assert _direction(page, "#rag-chat .rag-a-0 .rag-quote") == "rtl"  # the original, cited
                assert any("The quotes are in Persian" in t for t in [page.locator("#rag-chat .rag-a-0").inner_text()])
                _screenshot(page, "english-rendering.png")
                assert not watch.dialogs and not watch.errors
            finally:
                context.close()
