"""The Gradio app: rendering is escaped and direction-aware, and the real app answers through
gradio_client on a local port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag import RAG
from rag.articles import Article
from rag.answer import Answer, Citation
from rag.ui import esc, highlight, render_answer, render_sources, render_user, sanitize_filename

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
    out = render_answer(ans)
    assert '<div class="rag-msg" dir="ltr">According to the articles:' in out
    assert f'<div class="rag-quote" dir="rtl">{quote}&nbsp;<span class="rag-cite" data-n="1">&#91;1&#93;</span>' in out


def test_sources_highlight_the_exact_quote_and_escape_article_text(tmp_path):
    text = "عنوان\n\n" + MALICIOUS + "\nجمله اول. جمله دوم که نقل شده است. جمله سوم."
    start = text.index("جمله دوم")
    end = text.index("است.") + len("است.")
    assert text[start:end] == "جمله دوم که نقل شده است."
    out = highlight(text, start, end)
    assert '<mark dir="auto">جمله دوم که نقل شده است.</mark>' in out
    assert "<script>" not in out and "<img" not in out

    rag = RAG(tmp_path / "ix", create=True)
    art = Article(id="evil", title="<script>alert(9)</script>", text=text)
    rag.add_articles([art])
    html_out = render_sources(rag, [Citation(1, text[start:end], "evil", art.title, start, end, 1.0)])
    assert "<script>" not in html_out and "&lt;script&gt;alert" in html_out
    assert "<mark" in html_out and "جمله دوم که نقل شده است.</mark>" in html_out


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def running_app(tmp_path_factory):
    port = _free_port()
    index = tmp_path_factory.mktemp("app") / "index"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--index", str(index)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited early:\n{proc.stdout.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("app.py did not start listening within 120 s")
    yield url, index
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


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
    assert fa_html.startswith('<div class="rag-msg" dir="rtl">')
    assert "کوالالامپور" in sources
