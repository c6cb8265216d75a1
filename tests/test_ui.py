"""The Gradio app: rendering is escaped and direction-aware, and the real app answers through
gradio_client on a local port."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import running_app_py

from rag import RAG
from rag.articles import Article
from rag.hashed import HashedEmbedder
from rag.answer import Answer, Citation
from rag.ui import (UploadError, build_app, esc, highlight, ingest_uploads, render_answer, render_sources,
                    render_user, report_html, sanitize_filename)

ROOT = Path(__file__).resolve().parent.parent
MALICIOUS = ('<script>alert(1)</script> <img src=x onerror="alert(2)"> '
             '[click](javascript:alert(3)) **bold** $x$')


def test_escaping_neutralises_html_and_markdown():
    out = esc(MALICIOUS)
    assert "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;" in out and "&lt;img" in out
    # Markdown link and emphasis syntax cannot survive into the chat bubble's Markdown pass.
    assert "[click](" not in out and "**" not in out and "$x$" not in out


def test_user_message_is_escaped_and_directional():
    fa = render_user("اسحاق دار کجا بود؟ <b>x</b>")
    en = render_user("Where was <b>Dar</b>?\n\n[a](javascript:x)")
    assert 'dir="rtl"' in fa and 'dir="ltr"' in en
    assert "<b>" not in fa + en and "javascript:x)" not in en
    # One line: a blank line would let Markdown parse the rest outside the HTML block.
    assert "\n" not in en


def test_answer_rendering_keeps_markers_and_directions():
    quote = "اسحاق دار در کوالالامپور سخنرانی کرد."
    ans = Answer("Where?", "en", f"According to the articles:\n\n{quote} [1]", False,
                 [Citation(1, quote, "a1", "t", 0, len(quote), 1.0)])
    out = render_answer(ans, 3)
    assert out.startswith('<div class="rag-answer rag-a-3"><div class="rag-msg" dir="ltr">According to the articles:')
    # The quote in its own direction, the marker an isolated LTR run right after its last word; the
    # number travels in classes because the chat's sanitizer drops data-* attributes.
    assert (f'<div class="rag-quote" dir="rtl"><bdi class="rag-quote-text" dir="rtl">{quote}</bdi>&nbsp;'
            f'<span class="rag-cite rag-n-1" dir="ltr" title="source 1">&#91;1&#93;</span></div>') in out
    assert "\n" not in out


def test_llm_style_answer_isolates_inline_quotes_and_keeps_their_markers():
    quote = "اسحاق دار در کوالالامپور سخنرانی کرد."
    text = f"Dar spoke in Kuala Lumpur: «{quote}» [1]. See also [2] and [7]."
    ans = Answer("Where?", "en", text, False, [Citation(1, quote, "a1", "t", 0, len(quote), 1.0),
                                              Citation(2, "Other.", "a2", "t2", 0, 6, 0.9)])
    out = render_answer(ans)
    assert '<div class="rag-msg" dir="ltr">Dar spoke in Kuala Lumpur: «<bdi class="rag-quote-text" dir="rtl">' in out
    assert f'{quote}</bdi>»&nbsp;<span class="rag-cite rag-n-1"' in out
    assert 'rag-n-2' in out and 'rag-n-7' not in out and "&#91;7&#93;" in out  # no citation 7: plain text


def test_abstention_and_hostile_question_render_as_text():
    ans = Answer("<img src=x onerror=alert(1)>", "en", "The articles do not answer this question.", True)
    out = render_answer(ans)
    assert 'class="rag-msg rag-abstained" dir="ltr"' in out and "rag-cite" not in out
    assert "<img" not in render_user(ans.question)


def test_what_the_articles_do_not_mention_is_shown_above_the_evidence_in_its_own_direction():
    quote = "وزیر امور خارجه پاکستان به کابل سفر کرد."
    missing = "The articles speak of “وزیر امور خارجه پاکستان”; none mentions “China's <b>foreign</b> minister”."
    ans = Answer("What did China's foreign minister say?", "en",
                 f"{missing}\nThe articles may not answer this directly. The closest sentences (uncertain):\n\n{quote} [1]",
                 True, [], evidence=[Citation(1, quote, "a1", "t", 0, len(quote), 1.0)],
                 unsupported=["China's <b>foreign</b> minister"])
    out = render_answer(ans)
    first, second = out.index("rag-missing"), out.index("The articles may not answer")
    assert first < second < out.index("rag-evidence")
    assert '<bdi dir="auto">“وزیر امور خارجه پاکستان”</bdi>' in out and "<b>" not in out


def test_sources_highlight_the_exact_quote_and_escape_article_text(tmp_path):
    text = "عنوان\n\n" + MALICIOUS + "\nجمله اول. جمله دوم که نقل شده است. جمله سوم."
    start = text.index("جمله دوم")
    end = text.index("است.") + len("است.")
    assert text[start:end] == "جمله دوم که نقل شده است."
    out = highlight(text, start, end)
    assert '<mark class="rag-hl">جمله دوم که نقل شده است.</mark>' in out
    assert "<script>" not in out and "<img" not in out

    rag = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    art = Article(id="evil", title="<script>alert(9)</script>", text=text, source="<b>agency</b>", date="۲۰ سرطان")
    rag.add_articles([art])
    html_out = render_sources(rag, [Citation(1, text[start:end], "evil", art.title, start, end, 1.0)], 4, "fa")
    assert html_out.startswith('<div class="rag-sources" data-a="4">')
    assert "<script>" not in html_out and "&lt;script&gt;alert" in html_out
    assert "<b>" not in html_out and "&lt;b&gt;agency" in html_out and "۲۰ سرطان" in html_out
    # The paragraph with the quote marked, then the whole article (marked too) behind a <details>.
    assert html_out.count("جمله دوم که نقل شده است.</mark>") == 2
    assert '<details class="rag-full"><summary dir="rtl">متن کامل مقاله</summary>' in html_out
    assert 'id="rag-src-1" data-n="1"' in html_out


def test_long_articles_are_shown_around_the_quote():
    from rag import ui

    text = "Title\n\n" + "Filler sentence here. " * 20000 + "The quoted sentence. " + "More text. " * 20000
    start = text.index("The quoted sentence.")
    end = start + len("The quoted sentence.")
    art = Article(id="long", title="Title", text=text)
    rag = SimpleNamespace(article=lambda article_id: art)  # rendering needs only article()
    out = render_sources(rag, [Citation(1, text[start:end], "long", "Title", start, end, 1.0)])
    assert len(out) < ui.ARTICLE_VIEW_CHARS + 20_000
    assert out.count("The quoted sentence.</mark>") == 2


@pytest.mark.parametrize("name,expected", [
    ("../../etc/passwd", "passwd"),
    ("/abs/path/article.txt", "article.txt"),
    ("..\\..\\win.md", "win.md"),
    ("خبر تازه.txt", "خبر تازه.txt"),
    ("a<b>|c.jsonl", "a_b_c.jsonl"),
    ("..", "upload"),
])
def test_upload_names_are_sanitised(name, expected):
    assert sanitize_filename(name) == expected


def _upload_files(tmp_path, names_and_texts):
    paths = []
    for i, (name, text) in enumerate(names_and_texts):
        folder = tmp_path / f"u{i}"
        folder.mkdir()
        p = folder / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        paths.append(str(p))
    return paths


def test_uploads_are_reported_per_file_with_limits_and_safe_names(tmp_path):
    rag = RAG(tmp_path / "ix", embedder=HashedEmbedder(), create=True, reader=False)
    paths = _upload_files(tmp_path, [
        ("..\\..\\evil<1>.txt", "Evil <script>x</script>\n\nThe parade ended with drums.\n"),
        ("evil_1_.txt", "Second\n\nA different file whose sanitised name collides.\n"),
        ("big.txt", "Big\n\n" + "x " * 600_000),
        ("notes.xlsx", b"%PDF-1.4"),
        ("list.jsonl", '{"id": "j1", "title": "J1", "text": "One."}\nnot json\n'),
    ])
    seen = []
    reports = ingest_uploads(rag, paths, max_files=5, max_mb=1, progress=lambda d, t, n: seen.append((d, t, n)))
    by_name = {r.name: r for r in reports}
    assert list(by_name) == ["evil_1_.txt", "evil_1_-2.txt", "big.txt", "notes.xlsx", "list.jsonl"]
    assert by_name["evil_1_.txt"].status == "added" and by_name["evil_1_-2.txt"].status == "added"
    assert sorted(a.id for a in rag.articles()) == ["evil_1_", "evil_1_-2", "j1"]
    assert by_name["big.txt"].status == "skipped" and "the limit is 1 MB" in by_name["big.txt"].reason
    assert by_name["notes.xlsx"].status == "skipped" and "unsupported" in by_name["notes.xlsx"].reason
    assert by_name["list.jsonl"].status == "added, with problems"
    assert seen[0] == (0, 5, "evil_1_.txt") and seen[-1] == (5, 5, "done")
    out = report_html(reports)
    assert out.count("<li>") == 5 and "<script>" not in out and "list.jsonl:2" in out
    with pytest.raises(UploadError, match="the limit is 2"):
        ingest_uploads(rag, paths[:3], max_files=2)
    with pytest.raises(UploadError, match="choose one or more files"):
        ingest_uploads(rag, [])


def _event_fn(app, api_name):
    return next(f.fn for f in app.fns.values() if f.api_name == api_name)


@pytest.mark.model
def test_ask_is_progressive_and_per_session(seed_rag):
    app = build_app(seed_rag, llm_field=False)
    ask = _event_fn(app, "ask")
    steps = list(ask("In which city did Ishaq Dar speak?", [], 5, "", []))
    assert len(steps) == 2
    history, box, _, answers, _ = steps[0]
    assert box == "" and "rag-pending" in history[-1]["content"] and answers == []
    history, box, sources, answers, shown = steps[1]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert "rag-a-0" in history[-1]["content"] and "rag-n-1" in history[-1]["content"]
    assert 'data-a="0"' in sources and shown == 0 and len(answers) == 1
    # A follow-up in the same session gets the next number; the caller's lists are not modified.
    before = list(answers)
    history2, _, sources2, answers2, shown2 = list(ask("اسحاق دار در کدام شهر سخنرانی کرد؟", history, 5, "", answers))[-1]
    assert len(history2) == 4 and "rag-a-1" in history2[-1]["content"] and shown2 == 1 and answers == before
    assert 'data-a="1"' in sources2 and len(answers2) == 2


def test_llm_setting_only_when_langchain_is_installed(fake_seed_rag):
    def has_llm_box(app):
        return any(c.get("props", {}).get("elem_id") == "rag-llm" for c in app.config["components"])

    assert has_llm_box(build_app(fake_seed_rag, llm_field=True))
    assert not has_llm_box(build_app(fake_seed_rag, llm_field=False))


@pytest.fixture(scope="module")
def running_app(tmp_path_factory):
    index = tmp_path_factory.mktemp("app") / "index"
    with running_app_py(index, tmp_path_factory.getbasetemp() / "ui-app.log") as url:
        yield url, index


@pytest.mark.model
@pytest.mark.slow
def test_app_indexes_seeds_on_first_start_and_answers_through_gradio_client(running_app):
    from gradio_client import Client

    url, index = running_app
    client = Client(url, verbose=False)
    history, _, sources = client.predict("In which city did Ishaq Dar speak?", [], 5, api_name="/ask")[:3]
    assert (index / "manifest.json").exists()
    answer_html = history[-1]["content"][0]["text"] if isinstance(history[-1]["content"], list) \
        else history[-1]["content"]
    assert "&#91;1&#93;" in answer_html and 'dir="ltr"' in answer_html and 'dir="rtl"' in answer_html
    assert "<mark" in sources and "rag-src-1" in sources

    history, _, sources = client.predict("اسحاق دار در کدام شهر سخنرانی کرد؟", [], 5, api_name="/ask")[:3]
    fa_html = history[-1]["content"][0]["text"] if isinstance(history[-1]["content"], list) \
        else history[-1]["content"]
    # The client's session keeps its answer numbers: this is its second answer.
    assert fa_html.startswith('<div class="rag-answer rag-a-1"><div class="rag-msg" dir="rtl">')
    assert "کوالالامپور" in sources


@pytest.mark.model
@pytest.mark.slow
def test_answers_arrive_progressively_through_the_queue(running_app):
    from gradio_client import Client

    url, _ = running_app
    job = Client(url, verbose=False).submit("When did the Pakistani foreign minister visit Kabul?", [], 5,
                                            api_name="/ask")
    final = job.result(timeout=60)
    outputs = job.outputs()
    assert len(outputs) == 2 and outputs[-1][0] == final[0]
    first = outputs[0][0][-1]["content"]
    text = first[0]["text"] if isinstance(first, list) else first
    assert "rag-pending" in text and "Searching" in text
    assert "rag-cite" in str(final[0][-1]["content"])
