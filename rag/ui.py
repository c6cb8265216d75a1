"""The Gradio app: a chat whose answers are cited verbatim quotes, a sources panel with each
quoted span highlighted, and article management. A thin face over :class:`rag.api.RAG`.

Every piece of user or article text passes through :func:`esc` before it reaches the page, and
every message, quote and passage carries ``dir="auto"`` so Persian reads right-to-left and
English left-to-right, each on its own (Gradio's ``rtl`` flag is one global switch).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import gradio as gr

from .answer import Answer, Citation
from .api import RAG, IngestReport, QuestionError
from .articles import SUPPORTED, Article
from .persian import detect_language

MAX_UPLOAD_FILES = int(os.environ.get("RAG_MAX_UPLOAD_FILES", "20"))
MAX_UPLOAD_MB = int(os.environ.get("RAG_MAX_UPLOAD_MB", "50"))

EXAMPLES = [
    "اسحاق دار در کدام شهر سخنرانی کرد؟",
    "In which city did Ishaq Dar speak?",
    "پاکستان چه انتظاری از طالبان دارد؟",
    "When did the Pakistani foreign minister visit Kabul?",
]

CSS = """
.rag-msg, .rag-quote, .rag-src, .rag-article { unicode-bidi: plaintext; }
.rag-quote { margin: .35em 0; }
.rag-cite { font-weight: 600; color: #1d4ed8; white-space: nowrap; }
.rag-src { border: 1px solid #e5e7eb; border-radius: 8px; padding: .6em .8em; margin-bottom: .7em; }
.rag-src-head { font-weight: 600; margin-bottom: .3em; }
.rag-src-meta { color: #6b7280; font-size: .85em; margin-bottom: .3em; }
.rag-passage, .rag-article { white-space: pre-wrap; line-height: 1.9; }
.rag-src mark, .rag-article mark { background: #fde68a; padding: 0 .1em; border-radius: 3px; }
[dir=rtl] { font-family: Vazirmatn, Tahoma, "Noto Naskh Arabic", sans-serif; }
"""

# Scroll the highlighted span of the article view into view whenever it changes.
JS = """
() => {
  const obs = new MutationObserver(() => {
    const m = document.querySelector('#rag-article mark');
    if (m && !m.dataset.seen) { m.dataset.seen = '1'; m.scrollIntoView({block: 'center'}); }
  });
  obs.observe(document.body, {childList: true, subtree: true});
}
"""


def esc(text: str) -> str:
    """HTML-escape user or article text (quotes included), and neutralise characters that could
    restart Markdown parsing inside the chat bubble."""
    return (html.escape(text, quote=True)
            .replace("[", "&#91;").replace("]", "&#93;").replace("(", "&#40;").replace(")", "&#41;")
            .replace("*", "&#42;").replace("_", "&#95;").replace("`", "&#96;").replace("$", "&#36;")
            .replace("\\", "&#92;").replace("~", "&#126;").replace("|", "&#124;"))


def _one_line(fragment: str) -> str:
    # Inside the chatbot, a blank line would end the HTML block and start Markdown again.
    return fragment.replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


def _dir(text: str) -> str:
    return "rtl" if detect_language(text) == "fa" else "ltr"


def render_user(question: str) -> str:
    return _one_line(f'<div class="rag-msg" dir="{_dir(question)}">{esc(question)}</div>')


def render_answer(ans: Answer) -> str:
    """The answer bubble: framing in the question's language, each quote in its own direction,
    with its ``[n]`` marker right after its last word."""
    lead_dir = "rtl" if ans.language == "fa" else "ltr"
    if ans.abstained:
        return _one_line(f'<div class="rag-msg" dir="{lead_dir}">{esc(ans.answer)}</div>')
    lead = ans.answer.split("\n", 1)[0]
    parts = [f'<div class="rag-msg" dir="{lead_dir}">{esc(lead)}</div>']
    for c in ans.citations:
        parts.append(f'<div class="rag-quote" dir="{_dir(c.quote)}">{esc(c.quote)}&nbsp;'
                     f'<span class="rag-cite" data-n="{c.n}">&#91;{c.n}&#93;</span></div>')
    return _one_line("".join(parts))


def _paragraph(article: Article, start: int, end: int) -> tuple[int, int]:
    """The paragraph (text between line breaks) around ``[start, end)``, for context."""
    text = article.text
    s = text.rfind("\n", 0, start) + 1
    e = text.find("\n", end)
    return s, (len(text) if e < 0 else e)


def highlight(text: str, start: int, end: int, lo: int = 0, hi: int | None = None) -> str:
    """``text[lo:hi]`` escaped, with ``[start, end)`` in a ``<mark>``."""
    hi = len(text) if hi is None else hi
    return (esc(text[lo:start]) + f'<mark dir="auto">{esc(text[start:end])}</mark>' + esc(text[end:hi]))


def render_sources(rag: RAG, citations: list[Citation]) -> str:
    if not citations:
        return '<div class="rag-src-empty">—</div>'
    out = []
    for c in citations:
        art = rag.store.get(c.article_id)
        if art is None:
            continue
        meta = " · ".join(esc(x) for x in (art.source, art.date, c.article_id) if x)
        lo, hi = _paragraph(art, c.start, c.end)
        out.append(
            f'<div class="rag-src" id="rag-src-{c.n}" dir="auto">'
            f'<div class="rag-src-head" dir="auto">[{c.n}] {esc(c.title)}</div>'
            f'<div class="rag-src-meta" dir="auto">{meta}</div>'
            f'<div class="rag-passage" dir="auto">{highlight(art.text, c.start, c.end, lo, hi)}</div></div>')
    return "".join(out)


def render_article(rag: RAG, citation: Citation | None) -> str:
    if citation is None:
        return ""
    art = rag.store.get(citation.article_id)
    if art is None:
        return ""
    return (f'<div class="rag-src-head" dir="auto">[{citation.n}] {esc(art.title)}</div>'
            f'<div class="rag-article" dir="auto">{highlight(art.text, citation.start, citation.end)}</div>')


def sanitize_filename(name: str) -> str:
    """A safe base name for an uploaded file: no folders, no traversal, no odd characters."""
    base = os.path.basename(name.replace("\\", "/")).strip()
    base = re.sub(r"[^\w.\- ]+", "_", base, flags=re.UNICODE).strip(" .")
    return (base or "upload")[:120]


def report_markdown(report: IngestReport) -> str:
    lines = []
    for label, ids in (("added", report.added), ("updated", report.updated), ("unchanged", report.unchanged)):
        lines += [f"- {label}: `{esc(i)}`" for i in ids]
    lines += [f"- skipped: `{esc(s.path)}`: {esc(s.reason)}" for s in report.skipped]
    return "\n".join(lines) or "nothing to ingest"


def build_app(rag: RAG) -> gr.Blocks:
    def articles_table() -> list[list]:
        return [[a.id, a.title, a.source or "", a.date or "", a.chunks] for a in rag.articles()]

    def ask(question: str, history: list, k: int):
        history = list(history or [])
        try:
            ans = rag.ask(question, k=int(k))
        except QuestionError as exc:
            raise gr.Error(str(exc))
        history.append({"role": "user", "content": render_user(question)})
        history.append({"role": "assistant", "content": render_answer(ans)})
        choices = [(f"[{c.n}] {c.title[:60]}", c.n) for c in ans.citations]
        first = ans.citations[0] if ans.citations else None
        return (history, "", render_sources(rag, ans.citations), ans.to_json(),
                gr.update(choices=choices, value=first.n if first else None), render_article(rag, first))

    def open_citation(n, answer_json):
        cits = (answer_json or {}).get("citations", [])
        for c in cits:
            if c["n"] == n:
                return render_article(rag, Citation(**c))
        return ""

    def upload(files):
        files = files or []
        if len(files) > MAX_UPLOAD_FILES:
            raise gr.Error(f"too many files ({len(files)}); the limit is {MAX_UPLOAD_FILES} per upload")
        work = Path(tempfile.mkdtemp(prefix="rag-upload-"))
        try:
            named = []
            for f in files:
                src = Path(f if isinstance(f, str) else f.name)
                size = src.stat().st_size
                if size > MAX_UPLOAD_MB * 2**20:
                    raise gr.Error(f"{sanitize_filename(src.name)} is {size / 2**20:.1f} MB; "
                                   f"the limit is {MAX_UPLOAD_MB} MB")
                dst = work / sanitize_filename(src.name)
                shutil.copyfile(src, dst)
                named.append(dst)
            report = rag.ingest(named, uploaded=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return report_markdown(report), articles_table(), gr.update(choices=[a.id for a in rag.articles()])

    def remove(article_id):
        if not article_id:
            raise gr.Error("choose an article to remove")
        try:
            rag.remove(article_id)
        except KeyError as exc:
            raise gr.Error(str(exc.args[0]))
        return articles_table(), gr.update(choices=[a.id for a in rag.articles()], value=None)

    with gr.Blocks(title="Persian/English cited-quote answers") as app:
        last_answer = gr.State(None)
        with gr.Tab("Ask"):
            with gr.Row():
                with gr.Column(scale=3):
                    chat = gr.Chatbot(label="Answers", height=520, sanitize_html=True, latex_delimiters=[],
                                      elem_id="rag-chat", buttons=["copy"])
                    with gr.Row():
                        q = gr.Textbox(placeholder="پرسش خود را بنویسید… / Ask a question…", show_label=False,
                                       scale=5, rtl=False, elem_id="rag-question", max_length=2000)
                        send = gr.Button("Ask", variant="primary", scale=1, elem_id="rag-ask")
                    gr.Examples(EXAMPLES, inputs=[q], label="Examples")
                    k = gr.Slider(1, 20, value=5, step=1, label="Passages to consider")
                with gr.Column(scale=2):
                    gr.Markdown("### Sources")
                    sources = gr.HTML(render_sources(rag, []), elem_id="rag-sources")
                    cite_pick = gr.Radio(choices=[], label="Open cited article", elem_id="rag-cite-pick")
                    article_view = gr.HTML("", elem_id="rag-article", max_height=500)
        with gr.Tab("Articles"):
            files = gr.File(label=f"Add articles ({', '.join(SUPPORTED)})", file_count="multiple",
                            file_types=list(SUPPORTED), elem_id="rag-upload")
            add_btn = gr.Button("Add to index", elem_id="rag-add")
            ingest_report = gr.Markdown(elem_id="rag-report")
            table = gr.Dataframe(headers=["id", "title", "source", "date", "passages"], value=articles_table,
                                 interactive=False, wrap=True, elem_id="rag-articles")
            with gr.Row():
                to_remove = gr.Dropdown(choices=[a.id for a in rag.articles()], label="Article", scale=3)
                rm_btn = gr.Button("Remove", variant="stop", scale=1)

        outs = [chat, q, sources, last_answer, cite_pick, article_view]
        send.click(ask, [q, chat, k], outs, api_name="ask")
        q.submit(ask, [q, chat, k], outs, api_name=False)
        cite_pick.change(open_citation, [cite_pick, last_answer], [article_view], api_name=False)
        add_btn.click(upload, [files], [ingest_report, table, to_remove], api_name="upload")
        rm_btn.click(remove, [to_remove], [table, to_remove], api_name=False)
    return app


def _print_progress(done: int, total: int, msg: str) -> None:
    print(f"\rindexing {done}/{total} {Path(msg).name if msg != 'done' else ''}".ljust(70), end="",
          file=sys.stderr, flush=True)
    if done == total:
        print(file=sys.stderr)


def open_index(index: str, seeds: str | None = None) -> RAG:
    """Open ``index``; when it is empty and ``seeds`` exists, index the seeds first (with progress)."""
    rag = RAG(index, create=True)
    if seeds and rag.store.count()[0] == 0 and Path(seeds).is_dir():
        print(f"first start: indexing {seeds}/ into {index}/", file=sys.stderr)
        report = rag.ingest([seeds], progress=_print_progress)
        for s in report.skipped:
            print(f"skipped: {s}", file=sys.stderr)
    return rag


def launch(index: str = "index", host: str = "127.0.0.1", port: int = 7860, seeds: str | None = None,
           auth: tuple[str, str] | None = None, prevent_thread_lock: bool = False):
    rag = open_index(index, seeds)
    app = build_app(rag)
    app.queue(default_concurrency_limit=1)
    return app.launch(server_name=host, server_port=port, css=CSS, js=JS, auth=auth,
                      max_file_size=f"{MAX_UPLOAD_MB}mb", footer_links=["api"],
                      prevent_thread_lock=prevent_thread_lock, show_error=True)
