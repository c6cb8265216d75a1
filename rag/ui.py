"""The Gradio app: a chat whose answers are cited verbatim quotes, a sources panel with each
quoted span highlighted and the whole article one click away, and article management. A thin face
over :class:`rag.api.RAG`; no logic lives only here.

Why it is built this way:

- **Escaping.** Every piece of user or article text passes through :func:`esc` before it reaches
  the page. The chat bubble runs Markdown and a sanitizer, the sources panel (``gr.HTML``) runs
  neither, and Gradio's error toasts render HTML: escaping is the one defence that holds in all
  three.
- **Direction.** Gradio's ``rtl`` flag is one global switch. Here each message, quote, title and
  passage carries its own ``dir`` (computed from its script by :func:`rag.persian.detect_language`),
  so Persian reads right-to-left and English left-to-right side by side. The ``[n]`` marker is its
  own isolated ``dir="ltr"`` span right after the quote's last word, so it stays next to the words
  it cites whatever the surrounding direction.
- **Citations.** The chat's sanitizer drops ``data-*`` attributes, so markers carry their number
  and their answer as classes (``rag-cite rag-n-2`` inside ``rag-answer rag-a-0``). Every source
  card holds the whole article in a ``<details>``: opening it needs no round trip, and the page
  script (:data:`JS`) opens the card and scrolls its ``<mark>`` into view when a marker is clicked.
  A marker of an older answer first brings that answer's sources back (the chat's ``select`` event).
- **One model call at a time.** Asking, uploading and removing share one queue slot
  (``concurrency_id="rag"``): the embedder uses every core, and two calls at once are slower than
  two calls in turn.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .agencies import shown as shown_agency
from .answer import FRAMING, MACHINE_TRANSLATION, Answer, Citation
from .api import RAG, IngestReport, QuestionError, check_question
from .config import STRICTNESS
from .articles import SUPPORTED, Article
from .dates import format_date
from .errors import UserError
from .persian import detect_language


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


MAX_UPLOAD_FILES = _env_int("RAG_MAX_UPLOAD_FILES", 20)
MAX_UPLOAD_MB = _env_int("RAG_MAX_UPLOAD_MB", 50)
# The whole article is shown up to this many characters; a longer one is shown around the quote.
ARTICLE_VIEW_CHARS = 200_000
MAX_K = 20  # passages to consider: the settings slider's range, also enforced for API callers
# the answer step's strictness (rag.config.Config.strictness), as the settings offer it
STRICTNESS_CHOICES = [("Answer only when sure · فقط پاسخ مطمئن", "strict"), ("Balanced · متعادل", "balanced"),
                      ("Show closest evidence · نزدیک‌ترین شواهد", "lenient")]
PASSAGE_CONTEXT = 600  # characters of the quote's paragraph shown on each side in a source card
HAS_LLM = importlib.util.find_spec("langchain") is not None  # finds, does not import

EXAMPLES = [
    "اسحاق دار در کدام شهر سخنرانی کرد؟",
    "In which city did Ishaq Dar speak?",
    "پاکستان چه انتظاری از طالبان دارد؟",
    "When did the Pakistani foreign minister visit Kabul?",
]

TEXTS = {
    "fa": {"searching": "در حال جستجو در مقاله‌ها…", "whole": "متن کامل مقاله",
           "none": "هیچ بخشی از مقاله‌ها به این پرسش پاسخ نمی‌دهد.", "cut": "…",
           "uncertain": "نامطمئن: شاید پاسخ این پرسش نباشد"},
    "en": {"searching": "Searching the articles…", "whole": "Whole article",
           "none": "No passage of the articles answers this question.", "cut": "…",
           "uncertain": "Uncertain: may not answer the question"},
}

CSS = """
.rag-msg, .rag-quote, .rag-src-head, .rag-src-meta { text-align: start; }
.rag-also { margin-top: .4em; font-size: .9em; opacity: .9; }
.rag-rendering { font-size: .92em; opacity: .85; margin: 0 0 .4em 0; text-align: left; }
.rag-mt { font-size: .8em; border: 1px solid var(--border-color-primary); border-radius: 4px; padding: 0 .3em; }
.rag-differ { display: flex; gap: .6em; flex-wrap: wrap; margin: .3em 0; }
.rag-differ-side { flex: 1 1 12em; border: 1px solid var(--border-color-primary); border-radius: 6px; padding: .3em .6em; }
.rag-differ-head { font-weight: 600; margin-top: .5em; }
.rag-also-head { font-weight: 600; }
.rag-passage, .rag-article { text-align: start; unicode-bidi: plaintext; white-space: pre-wrap; line-height: 1.9; }
.rag-msg + .rag-quote { margin-top: .5em; }
.rag-quote { margin: .3em 0; padding-inline-start: .7em; border-inline-start: 3px solid #fbbf24; }
.rag-pending { color: #6b7280; font-style: italic; }
.rag-missing { font-weight: 600; }
.rag-evidence { margin-top: .6em; padding: .4em .6em; border: 1px dashed #9ca3af; border-radius: 6px; color: #4b5563; }
.rag-evidence .rag-quote { border-inline-start-color: #9ca3af; }
.rag-src-uncertain { border-style: dashed; opacity: .9; }
.rag-src-flag { font-size: .85em; color: #92400e; }
.rag-error { color: #b91c1c; }
.rag-cite { font-weight: 600; color: #1d4ed8; white-space: nowrap; cursor: pointer; }
.rag-cite:hover { text-decoration: underline; }
#rag-sources .rag-src { border: 1px solid #e5e7eb; border-radius: 8px; padding: .6em .8em; margin-bottom: .7em;
  transition: box-shadow .3s; }
#rag-sources .rag-src.rag-flash { box-shadow: 0 0 0 3px #93c5fd; }
.rag-src-head { font-weight: 600; margin-bottom: .2em; cursor: pointer; }
.rag-src-meta { color: #6b7280; font-size: .85em; margin-bottom: .3em; }
.rag-passage { cursor: pointer; }
.rag-full summary { cursor: pointer; color: #1d4ed8; font-size: .9em; margin-top: .3em; }
.rag-full .rag-article { border-top: 1px dashed #e5e7eb; margin-top: .4em; padding-top: .4em; }
#rag-sources mark, #rag-chat mark { background: #fde68a; color: inherit; padding: 0 .1em; border-radius: 3px; }
.rag-empty { color: #6b7280; }
.rag-report li { margin: .2em 0; }
.rag-report .st-added, .rag-report .st-updated { color: #047857; font-weight: 600; }
.rag-report .st-unchanged { color: #6b7280; font-weight: 600; }
.rag-report .st-skipped { color: #b91c1c; font-weight: 600; }
.rag-example { unicode-bidi: plaintext; }
#rag-question textarea { unicode-bidi: plaintext; text-align: start; }
#rag-articles [role=gridcell] span { display: block; unicode-bidi: plaintext; text-align: start;
  font-family: var(--font), Vazirmatn, "Noto Naskh Arabic", Tahoma, "DejaVu Sans", sans-serif; }
[dir=rtl], .rag-example, #rag-question textarea {
  font-family: Vazirmatn, "Noto Naskh Arabic", "Noto Sans Arabic", Tahoma, "DejaVu Sans", sans-serif; }
"""

# Runs once on page load. Clicking a citation marker ([n] in the chat or in a source card) or a
# source card opens that card's whole article and scrolls the highlighted quote into view. A
# marker of an older answer waits until the chat's select event has put that answer's sources back.
JS = """
() => {
  const num = (el, prefix) => {
    for (const c of (el ? el.classList : [])) if (c.startsWith(prefix)) return c.slice(prefix.length);
    return null;
  };
  const panel = () => document.querySelector('#rag-sources .rag-sources');
  const reveal = (root) => {
    const m = root && root.querySelector('mark');
    if (m) m.scrollIntoView({block: 'center'});
  };
  const openSource = (n) => {
    const card = document.getElementById('rag-src-' + n);
    if (!card) return;
    const full = card.querySelector('details.rag-full');
    if (full && !full.open) full.open = true;  /* the toggle listener scrolls */
    else reveal(full || card);
    card.classList.add('rag-flash');
    setTimeout(() => card.classList.remove('rag-flash'), 1500);
  };
  let pending = null;
  document.addEventListener('toggle', (e) => {
    const d = e.target;
    if (d && d.matches && d.matches('details.rag-full') && d.open) reveal(d.querySelector('.rag-article'));
  }, true);
  document.addEventListener('click', (e) => {
    const t = e.target && e.target.closest ? e.target : e.target.parentElement;
    if (!t) return;
    const cite = t.closest('.rag-cite');
    if (cite) {
      const n = num(cite, 'rag-n-');
      const a = num(cite.closest('.rag-answer'), 'rag-a-');
      const p = panel();
      if (a === null || (p && p.dataset.a === a)) openSource(n);
      else pending = {a, n};
      return;
    }
    const card = t.closest('#rag-sources .rag-src');
    const selecting = String(window.getSelection ? window.getSelection() : '').length > 0;
    if (card && !selecting && !t.closest('details.rag-full')) openSource(card.dataset.n);
  });
  new MutationObserver(() => {
    const p = pending && panel();
    if (p && p.dataset.a === pending.a) { const n = pending.n; pending = null; openSource(n); }
  }).observe(document.body, {childList: true, subtree: true});
}
"""


# ---------------------------------------------------------------- rendering (pure functions)

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


def _cite(n: int) -> str:
    # An isolated LTR run: "[1]" keeps its shape and stays at the end of the quote in RTL text.
    return f'<span class="rag-cite rag-n-{n}" dir="ltr" title="source {n}">&#91;{n}&#93;</span>'


def render_user(question: str) -> str:
    return _one_line(f'<div class="rag-msg" dir="{_dir(question)}">{esc(question)}</div>')


def render_pending(question: str) -> str:
    lang = detect_language(question)
    return f'<div class="rag-msg rag-pending" dir="{_dir(question)}">{TEXTS[lang]["searching"]}</div>'


def render_error(message: str) -> str:
    return _one_line(f'<div class="rag-msg rag-error" dir="{_dir(message)}">{esc(message)}</div>')


def _prose(text: str, numbers: set[int]) -> str:
    """Escaped text with each ``[n]`` of a known citation turned into its marker."""
    out, pos = [], 0
    for m in re.finditer(r"\[(\d+)\]", text):
        if int(m.group(1)) in numbers:
            out.append(esc(text[pos:m.start()].rstrip(" ")) + "&nbsp;" + _cite(int(m.group(1))))
            pos = m.end()
    out.append(esc(text[pos:]))
    return "".join(out)


def _isolate_quoted(escaped: str) -> str:
    """Each “…” or «…» of a line (escaped already) in its own direction: a Persian name named in an
    English sentence, or the reverse, reads in its own order."""
    return re.sub(r"(“[^”]*”|«[^»]*»)", r'<bdi dir="auto">\1</bdi>', escaped)


def render_answer(ans: Answer, a: int = 0) -> str:
    """The answer bubble. The framing is in the question's language; a quote on its own line
    (the extractive answer) is a block in its own direction, a «quote» inside a sentence (an LLM's
    answer) is isolated in its own direction; each is followed by its ``[n]``. ``a`` numbers the
    answer within the conversation, so a marker can find its sources."""
    lead_dir = "rtl" if ans.language == "fa" else "ltr"
    if ans.abstained:
        # a graded refusal: what the articles do not mention (when that is why), the refusal itself,
        # then its closest sentences set apart as uncertain
        lines = ans.answer.split("\n\n", 1)[0].split("\n")
        body = "".join(f'<div class="rag-msg rag-abstained{" rag-missing" if ans.unsupported and i == 0 and len(lines) > 1 else ""}" '
                       f'dir="{lead_dir}">{_isolate_quoted(esc(line))}</div>' for i, line in enumerate(lines))
        if ans.evidence:
            body += (f'<div class="rag-evidence" dir="{lead_dir}">'
                     + "".join(f'<div class="rag-quote" dir="{_dir(c.quote)}"><bdi class="rag-quote-text" '
                               f'dir="{_dir(c.quote)}">{esc(c.quote)}</bdi>&nbsp;{_cite(c.n)}</div>' + _rendering(c)
                               for c in ans.evidence) + "</div>")
        return _one_line(f'<div class="rag-answer rag-a-{a}">{body}</div>')
    blocks = {f"{c.quote} [{c.n}]": c for c in ans.citations}
    inline = {f"«{c.quote}» [{c.n}]": c for c in ans.citations}
    inline_re = (re.compile("|".join(re.escape(s) for s in sorted(inline, key=len, reverse=True)))
                 if inline else None)
    numbers = {c.n for c in ans.citations}
    parts = []
    shown_renderings: set[int] = set()
    differ = FRAMING[ans.language]["differ"]
    for line in ans.answer.split("\n"):
        if not line.strip():
            continue
        if line == differ:
            parts.append(f'<div class="rag-msg rag-differ-head" dir="{lead_dir}">{esc(line)}</div>')
            continue
        if "  |  " in line:  # contradicting reports, side by side
            cells = "".join(f'<div class="rag-differ-side" dir="{lead_dir}">{_prose(side, numbers)}</div>'
                            for side in line.split("  |  "))
            parts.append(f'<div class="rag-differ">{cells}</div>')
            continue
        if f"({MACHINE_TRANSLATION})" in line:
            continue  # renderings are shown from their citations, below their quotes
        c = blocks.get(line)
        if c is not None:
            # <bdi>: an override (U+202E) inside the quote must not reach across to its [n]
            parts.append(f'<div class="rag-quote" dir="{_dir(c.quote)}"><bdi class="rag-quote-text" dir="{_dir(c.quote)}">'
                         f'{esc(c.quote)}</bdi>&nbsp;{_cite(c.n)}</div>' + _rendering(c))
            shown_renderings.add(c.n)
            continue
        pieces, pos = [], 0
        for m in (inline_re.finditer(line) if inline_re else ()):
            c = inline[m.group()]
            pieces.append(_prose(line[pos:m.start()], numbers))
            pieces.append(f'«<bdi class="rag-quote-text" dir="{_dir(c.quote)}">{esc(c.quote)}</bdi>»&nbsp;{_cite(c.n)}')
            pos = m.end()
        pieces.append(_prose(line[pos:], numbers))
        parts.append(f'<div class="rag-msg" dir="{lead_dir}">{"".join(pieces)}</div>')
    parts += [_rendering(c, numbered=True) for c in ans.citations if c.rendering and c.n not in shown_renderings]
    return _one_line(f'<div class="rag-answer rag-a-{a}">{"".join(parts)}</div>')


def _rendering(c: Citation, numbered: bool = False) -> str:
    """A quote's English rendering, marked as machine translation (the original is what is cited)."""
    if not c.rendering:
        return ""
    n = f"{_cite(c.n)}&nbsp;" if numbered else ""
    return (f'<div class="rag-rendering" dir="ltr">{n}<span class="rag-mt">{MACHINE_TRANSLATION}</span> '
            f'<bdi dir="ltr">{esc(c.rendering)}</bdi></div>')


def _paragraph(article: Article, start: int, end: int, context: int = PASSAGE_CONTEXT) -> tuple[int, int]:
    """The paragraph (text between line breaks) around ``[start, end)``, for context; at most
    ``context`` characters on each side, cut at a space."""
    text = article.text
    s = text.rfind("\n", 0, start) + 1
    e = text.find("\n", end)
    e = len(text) if e < 0 else e
    if start - s > context:
        cut = text.find(" ", start - context, start)
        s = cut + 1 if cut >= 0 else start - context
    if e - end > context:
        cut = text.rfind(" ", end, end + context)
        e = cut if cut >= 0 else end + context
    return s, e


def highlight(text: str, start: int, end: int, lo: int = 0, hi: int | None = None) -> str:
    """``text[lo:hi]`` escaped, with ``[start, end)`` in a ``<mark>``."""
    hi = len(text) if hi is None else hi
    return esc(text[lo:start]) + f'<mark class="rag-hl">{esc(text[start:end])}</mark>' + esc(text[end:hi])


def _article_window(text: str, start: int, end: int, limit: int = ARTICLE_VIEW_CHARS) -> tuple[int, int]:
    """The whole text, or ``limit`` characters around the quote when the article is longer."""
    if len(text) <= limit:
        return 0, len(text)
    room = max(0, limit - (end - start)) // 2
    lo = max(0, start - room)
    hi = min(len(text), end + room)
    return lo, hi


def _meta(article: Article, language: str) -> str:
    """The card's agency and date, in the reader's language and calendar convention."""
    parts = [shown_agency(article.source, language),
             format_date(article.date, language, article.calendar, article.date_inferred)]
    return " · ".join(f"<bdi>{esc(x)}</bdi>" for x in parts if x)


def _also(rag: RAG, c: Citation, language: str) -> str:
    """The other copies of the cited story: "also reported by N", each copy's agency, date and
    title, its whole text one click away."""
    if not c.also:
        return ""
    items = []
    for aid in c.also:
        try:
            other = rag.article(aid)
        except KeyError:
            continue
        meta = _meta(other, language)
        items.append(f'<details class="rag-also-item" data-id="{esc(aid)}"><summary dir="{_dir(other.title)}">'
                     f'{meta} — <bdi>{esc(other.title)}</bdi></summary>'
                     f'<div class="rag-article" dir="{_dir(other.text[:5000])}">{esc(other.text[:ARTICLE_VIEW_CHARS])}'
                     f'</div></details>')
    if not items:
        return ""
    names = sorted({shown_agency(s, language) or "?" for s in c.also_sources})
    head = FRAMING.get(language, FRAMING["en"])["also"].format(n=len(items), names=", ".join(names))
    head = head[:1].upper() + head[1:]  # the answer's words, opening the card's line
    return (f'<div class="rag-also" dir="{"rtl" if language == "fa" else "ltr"}"><div class="rag-also-head">'
            f'{esc(head)}</div>{"".join(items)}</div>')


def render_sources(rag: RAG, citations: list[Citation], a: int = 0, language: str = "en",
                   uncertain: bool = False) -> str:
    """One card per citation: number, title, agency and date, the paragraph with the quote in a
    ``<mark>``, and the whole article (quote highlighted) in a ``<details>``. ``uncertain``: the
    evidence of a graded refusal, each card flagged as perhaps not answering."""
    words = TEXTS.get(language, TEXTS["en"])
    lang_dir = "rtl" if language == "fa" else "ltr"
    if not citations:
        return f'<div class="rag-sources rag-empty" data-a="{a}">—</div>'
    out = []
    for c in citations:
        try:
            art = rag.article(c.article_id)
        except KeyError:
            continue
        lo, hi = _paragraph(art, c.start, c.end)
        passage = art.text[lo:hi]
        cut_lo = words["cut"] if lo and art.text[lo - 1] != "\n" else ""
        cut_hi = words["cut"] if hi < len(art.text) and art.text[hi] != "\n" else ""
        alo, ahi = _article_window(art.text, c.start, c.end)
        whole = ((words["cut"] + "\n" if alo else "") + highlight(art.text, c.start, c.end, alo, ahi)
                 + ("\n" + words["cut"] if ahi < len(art.text) else ""))
        title = art.title or c.title
        meta = _meta(art, language)
        flag = (f'<div class="rag-src-flag" dir="{lang_dir}">{words["uncertain"]}</div>' if uncertain else "")
        out.append(
            f'<div class="rag-src{" rag-src-uncertain" if uncertain else ""}" id="rag-src-{c.n}" data-n="{c.n}" '
            f'dir="{_dir(title)}">'
            f'<div class="rag-src-head" dir="{_dir(title)}" title="{esc(c.article_id)}">'
            f'{_cite(c.n)} <bdi>{esc(title)}</bdi></div>' + flag
            + (f'<div class="rag-src-meta" dir="{_dir(meta)}">{meta}</div>' if meta else "")
            + f'<div class="rag-passage" dir="{_dir(passage)}">{cut_lo}{highlight(art.text, c.start, c.end, lo, hi)}{cut_hi}</div>'
            f'<details class="rag-full"><summary dir="{lang_dir}">{words["whole"]}</summary>'
            f'<div class="rag-article" dir="{_dir(art.text[:5000])}">{whole}</div></details>'
            + _also(rag, c, language) + '</div>')
    return f'<div class="rag-sources" data-a="{a}">{"".join(out)}</div>'


def render_no_sources(language: str, a: int) -> str:
    words = TEXTS.get(language, TEXTS["en"])
    return f'<div class="rag-sources rag-empty" data-a="{a}" dir="{"rtl" if language == "fa" else "ltr"}">{words["none"]}</div>'


EMPTY_SOURCES = ('<div class="rag-sources rag-empty" data-a="">'
                 '<div dir="ltr">The sources of the latest answer appear here.</div>'
                 '<div dir="rtl">منابع آخرین پاسخ اینجا نمایش داده می‌شوند.</div></div>')


# ---------------------------------------------------------------- uploads

def sanitize_filename(name: str) -> str:
    """A safe base name for an uploaded file: no folders, no traversal, no odd characters."""
    base = os.path.basename(name.replace("\\", "/")).strip()
    base = re.sub(r"[^\w.\- ]+", "_", base, flags=re.UNICODE).strip(" .")
    return (base or "upload")[:120]


def _unique(name: str, used: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    out, i = name, 2
    while out.lower() in used:
        out = f"{stem}-{i}{dot}{ext}"
        i += 1
    used.add(out.lower())
    return out


class UploadError(UserError):
    """The upload as a whole is refused (too many files, nothing chosen); the message says why."""


@dataclass
class FileReport:
    """What happened to one uploaded file."""
    name: str
    report: IngestReport | None = None
    reason: str | None = None  # set when the file was refused before ingestion

    @property
    def status(self) -> str:
        r = self.report
        if self.reason or r is None:
            return "skipped"
        for s in ("added", "updated", "unchanged"):
            if getattr(r, s):
                return s if not r.skipped else f"{s}, with problems"
        return "skipped"


def ingest_uploads(rag: RAG, paths: list[str], max_files: int = MAX_UPLOAD_FILES, max_mb: int = MAX_UPLOAD_MB,
                   progress=None) -> list[FileReport]:
    """Ingest uploaded files one by one (each reported on its own). The files are copied under
    sanitised, de-duplicated names into a private temporary folder: the uploaded name is never a
    path. ``progress(done, total, message)`` is called before each file and after each of its
    articles (``done`` then counts the file's share done, so it may be fractional)."""
    if not paths:
        raise UploadError("choose one or more files first")
    if len(paths) > max_files:
        raise UploadError(f"too many files: {len(paths)} in one upload; the limit is {max_files} "
                          f"(RAG_MAX_UPLOAD_FILES)")
    out: list[FileReport] = []
    used: set[str] = set()
    work = Path(tempfile.mkdtemp(prefix="rag-upload-"))
    try:
        for i, p in enumerate(paths):
            src = Path(p)
            name = _unique(sanitize_filename(src.name), used)
            if progress:
                progress(i, len(paths), name)
            if src.suffix.lower() not in SUPPORTED:
                out.append(FileReport(name, reason=f"unsupported file type; supported: {' '.join(SUPPORTED)}"))
                continue
            size = src.stat().st_size
            if size > max_mb * 2**20:
                out.append(FileReport(name, reason=f"{size / 2**20:.1f} MB; the limit is {max_mb} MB "
                                                   f"(RAG_MAX_UPLOAD_MB)"))
                continue
            dst = work / name
            shutil.copyfile(src, dst)
            def inner(state, i=i, name=name) -> None:
                if progress and state.articles:
                    progress(i + state.fraction, len(paths), f"{name}: {state.describe()}")

            try:
                out.append(FileReport(name, rag.ingest([dst], progress=inner, uploaded=True)))
            finally:
                dst.unlink(missing_ok=True)
        if progress:
            progress(len(paths), len(paths), "done")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _ids(label: str, ids: list[str], limit: int = 8) -> str:
    shown = ", ".join(f"<bdi>{esc(i)}</bdi>" for i in ids[:limit])
    more = f" … (+{len(ids) - limit})" if len(ids) > limit else ""
    return f"{label} {shown}{more}"


def report_html(files: list[FileReport]) -> str:
    """One line per uploaded file: its status, the article ids it produced, and any reasons."""
    items = []
    for f in files:
        status = f.status
        cls = "st-" + status.split(",")[0]
        detail = []
        if f.reason:
            detail.append(esc(f.reason))
        r = f.report
        if r is not None:
            for label in ("added", "updated", "unchanged"):
                ids = getattr(r, label)
                if ids:
                    detail.append(_ids(f"{label}:", ids))
            if r.chunks:
                detail.append(f"{r.chunks} passages")
            for s in r.skipped:
                detail.append(f'skipped <bdi>{esc(s.path)}</bdi>: {esc(s.reason)}')
            if not (r.added or r.updated or r.unchanged or r.skipped):
                detail.append("no article found in the file")
        items.append(f'<li><bdi class="rag-file">{esc(f.name)}</bdi>: <span class="{cls}">{esc(status)}</span>'
                     + (" — " + "; ".join(detail) if detail else "") + "</li>")
    return f'<ul class="rag-report">{"".join(items)}</ul>' if items else ""


# ---------------------------------------------------------------- the app

def _articles_table(rag: RAG) -> list[list]:
    arts = rag.articles()
    size = Counter(a.group or a.id for a in arts)
    return [[a.id, a.title, a.source or "", (a.date or "") + (" ~" if a.date_inferred else ""),
             (a.group or a.id) if size[a.group or a.id] > 1 else "", a.chunks, a.chars] for a in arts]


def _agencies(rag: RAG) -> list[str]:
    return sorted({a.source for a in rag.articles() if a.source})


def _article_choices(rag: RAG) -> list[tuple[str, str]]:
    return [(f"{a.title[:70]} ({a.id})", a.id) for a in rag.articles()]


TIMELINE_MAX = 2000  # articles plotted at most (the latest; the cited ones always)


def timeline_data(rag: RAG, since: str = "", until: str = "", source=None, cited: set[str] | None = None):
    """The dated articles that pass the filter (and the cited ones), for the timeline: a frame
    for the plot (date, agency, title, id, whether cited) and the rows of its list, by date."""
    import pandas as pd

    cited = cited or set()
    arts = rag.articles(since=since, until=until, source=source)
    dated = sorted((a for a in arts if a.date), key=lambda a: (a.date, a.id))
    keep = dated[-TIMELINE_MAX:]
    if cited:
        kept = {a.id for a in keep}
        keep = sorted(keep + [a for a in dated if a.id in cited and a.id not in kept], key=lambda a: (a.date, a.id))
    frame = pd.DataFrame({
        "date": pd.to_datetime([a.date for a in keep]),
        "agency": [a.source or "?" for a in keep],
        "title": [a.title for a in keep],
        "id": [a.id for a in keep],
        "kind": ["cited" if a.id in cited else "article" for a in keep]})
    rows = [[a.date + (" ~" if a.date_inferred else ""), a.source or "", a.title, a.id,
             "✓" if a.id in cited else ""] for a in keep]
    return frame, rows


def render_article(rag: RAG, article_id: str) -> str:
    """One article, whole (up to ARTICLE_VIEW_CHARS), with its agency and date: the timeline's view."""
    try:
        art = rag.article(article_id)
    except KeyError:
        return ""
    lang = detect_language(art.title + " " + art.text[:500])
    meta = _meta(art, lang)
    return (f'<div class="rag-src" dir="{_dir(art.title)}"><div class="rag-src-head"><bdi>{esc(art.title)}</bdi></div>'
            + (f'<div class="rag-src-meta" dir="{_dir(meta)}">{meta}</div>' if meta else "")
            + f'<div class="rag-article" dir="{_dir(art.text[:5000])}">{esc(art.text[:ARTICLE_VIEW_CHARS])}</div></div>')


def _error(message: str) -> gr.Error:
    # Gradio renders toast messages as HTML: escape what may come from an article or a file name.
    return gr.Error(html.escape(message), print_exception=False)


def build_app(rag: RAG, max_files: int = MAX_UPLOAD_FILES, max_mb: int = MAX_UPLOAD_MB,
              llm_field: bool | None = None) -> gr.Blocks:
    """The Blocks app over ``rag``. ``llm_field`` (default: whether LangChain is installed) shows
    the chat-model setting."""
    llm_field = HAS_LLM if llm_field is None else llm_field

    def ask(question: str, history: list, k: float, llm: str = "", answers: list | None = None, since: str = "",
            until: str = "", source=None, strictness: str = "balanced"):
        """Progressive: first the question and a "searching" line, then the answer and its sources.
        ``since``/``until``/``source``: the filter controls (dates in either calendar, agencies)."""
        try:
            q = check_question(question)
        except QuestionError as exc:
            raise _error(str(exc))
        answers = list(answers or [])
        a = len(answers)
        history = list(history or [])
        history.append({"role": "user", "content": render_user(q)})
        # The sources panel gets a value, never gr.skip(): Gradio 6.31 keeps every gr.HTML it rebuilds
        # for a skip alive, so skipping it here grew the server by ~40 KB a question (bench/load.py).
        yield history + [{"role": "assistant", "content": render_pending(q)}], "", EMPTY_SOURCES, answers, gr.skip()
        try:
            # blank controls filter nothing (rag.api.news_filter)
            ans = rag.ask(q, k=min(max(int(k or 5), 1), MAX_K), llm=(llm or "").strip() or None,
                          since=since, until=until, source=source,
                          strictness=strictness if strictness in STRICTNESS else None)
        except UserError as exc:
            answers = answers + [None]
            yield (history + [{"role": "assistant", "content": render_error(str(exc))}], "", EMPTY_SOURCES,
                   answers, gr.skip())
            return
        answers = answers + [ans.to_json()]
        sources = _sources_of(ans.to_json(), a)
        yield history + [{"role": "assistant", "content": render_answer(ans, a)}], "", sources, answers, a

    def timeline(since: str, until: str, source, answers: list):
        """The timeline of the filtered articles, the latest answer's cited ones marked."""
        latest = next((x for x in reversed(answers or []) if x), None) or {}
        cited = {c["article_id"] for c in latest.get("citations", []) + latest.get("evidence", [])}
        try:
            frame, rows = timeline_data(rag, since, until, source, cited)
        except UserError as exc:
            raise _error(str(exc))
        return frame, rows, ""

    def timeline_range(since: str, until: str, source, answers: list, evt: gr.SelectData):
        """A range brushed on the plot narrows the list to it."""
        frame, rows, _ = timeline(since, until, source, answers)
        lo_hi = evt.index if isinstance(evt.index, (list, tuple)) and len(evt.index) == 2 else None
        if not lo_hi:
            return rows
        import pandas as pd

        def day(v):
            return pd.to_datetime(v, unit="ms") if isinstance(v, (int, float)) else pd.to_datetime(v)

        lo, hi = (day(v).strftime("%Y-%m-%d") for v in lo_hi)
        return [r for r in rows if lo <= r[0][:10] <= hi]

    def timeline_open(evt: gr.SelectData):
        row = evt.row_value or []
        return render_article(rag, row[3]) if len(row) > 3 else gr.skip()

    def show_answer_sources(answers: list, shown, evt: gr.SelectData):
        """A click in an older answer (or its [n]) brings that answer's sources back."""
        m = re.search(r"rag-a-(\d+)", str(evt.value or ""))
        if not m:
            return gr.skip(), gr.skip()
        a = int(m.group(1))
        if a == shown or not answers or a >= len(answers) or answers[a] is None:
            return gr.skip(), gr.skip()
        return _sources_of(answers[a], a), a

    def _sources_of(data: dict, a: int) -> str:
        """The sources panel of one answer's JSON: its citations, or a graded refusal's evidence."""
        lang = data.get("language", "en")
        cits = [Citation(**c) for c in data.get("citations", [])]
        if cits:
            return render_sources(rag, cits, a, lang)
        evidence = [Citation(**c) for c in data.get("evidence", [])]
        if evidence:
            return render_sources(rag, evidence, a, lang, uncertain=True)
        return render_no_sources(lang, a)

    def upload(files, progress=gr.Progress()):
        paths = [f if isinstance(f, str) else f.name for f in (files or [])]

        def tick(done: int, total: int, name: str) -> None:
            progress((done, total), desc="done" if name == "done" else f"indexing {name}", unit="files")

        try:
            reports = ingest_uploads(rag, paths, max_files, max_mb, tick)
        except UserError as exc:  # refused as a whole: say so where the report goes, keep the files
            gr.Warning(html.escape(str(exc)))
            return (f'<div class="rag-report st-skipped" dir="ltr">{esc(str(exc))}; nothing was added.</div>',
                    gr.skip(), gr.skip(), gr.skip())
        choices = _article_choices(rag)
        return report_html(reports), None, _articles_table(rag), gr.update(choices=choices, value=None)

    def remove(article_id):
        if not article_id:
            return ('<div class="rag-report st-skipped">choose an article to remove first</div>',
                    gr.skip(), gr.skip())
        try:
            rag.remove(article_id)
        except KeyError as exc:
            return (f'<div class="rag-report st-skipped">{esc(str(exc.args[0]))}</div>', *refresh())
        return (f'<div class="rag-report">removed <bdi>{esc(article_id)}</bdi></div>', _articles_table(rag),
                gr.update(choices=_article_choices(rag), value=None))

    def pick_row(evt: gr.SelectData):
        row = evt.row_value or []
        return gr.update(value=row[0]) if row else gr.skip()

    def refresh():
        return _articles_table(rag), gr.update(choices=_article_choices(rag), value=None)

    def refresh_all():
        return (*refresh(), gr.update(choices=_agencies(rag)))

    with gr.Blocks(title="Persian/English cited-quote answers") as app:
        answers = gr.State([])   # per browser session: the citations of each answer, by answer number
        shown = gr.State(None)   # the answer whose sources the panel shows
        with gr.Tab("Ask · پرسش", id="ask"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    chat = gr.Chatbot(label="Answers · پاسخ‌ها", height=560, sanitize_html=True, latex_delimiters=[],
                                      elem_id="rag-chat", buttons=[], placeholder=(
                                          "Ask in Persian or English; every answer is quoted from the articles.<br>"
                                          '<span dir="rtl">به فارسی یا انگلیسی بپرسید؛ هر پاسخ نقل‌قولی از مقاله‌هاست.</span>'))
                    with gr.Row():
                        q = gr.Textbox(placeholder="پرسش خود را بنویسید… / Ask a question…", show_label=False,
                                       scale=5, elem_id="rag-question", max_length=2000, lines=1, max_lines=4)
                        send = gr.Button("Ask · بپرس", variant="primary", scale=1, elem_id="rag-ask")
                    with gr.Row(elem_id="rag-filters"):
                        since = gr.Textbox(value="", label="Since · از", placeholder="YYYY-MM-DD", scale=1,
                                           info="Gregorian or solar Hijri (1404-04-10)",
                                           elem_id="rag-since", max_length=40)
                        until = gr.Textbox(value="", label="Until · تا", placeholder="YYYY-MM-DD", scale=1,
                                           info="۲۰ سرطان ۱۴۰۴, 11 July 2025 …",
                                           elem_id="rag-until", max_length=40)
                        source = gr.Dropdown(choices=[], value=[], multiselect=True, allow_custom_value=True,
                                             label="Agency · منبع", scale=2, elem_id="rag-source")
                    with gr.Row(elem_id="rag-examples"):
                        example_buttons = [gr.Button(e, size="sm", scale=0, elem_classes=["rag-example"])
                                           for e in EXAMPLES]
                    with gr.Accordion("Settings · تنظیمات", open=False, elem_id="rag-settings"):
                        k = gr.Slider(1, MAX_K, value=5, step=1, label="Passages to consider", elem_id="rag-k")
                        strictness = gr.Radio(STRICTNESS_CHOICES, value="balanced", elem_id="rag-strictness",
                                              label="When the articles may not say · وقتی مقاله‌ها شاید نگویند")
                        if llm_field:
                            llm = gr.Textbox(label="Chat model (optional)", value="", elem_id="rag-llm",
                                             placeholder="openai:qwen2.5-7b",
                                             info="PROVIDER:MODEL writes the answer around verified quotes "
                                                  "(OPENAI_BASE_URL for a local server). Empty: quotes only.")
                        else:
                            llm = gr.State("")
                with gr.Column(scale=2, min_width=320):
                    gr.Markdown("### Sources · منابع")
                    sources = gr.HTML(EMPTY_SOURCES, elem_id="rag-sources", max_height=640, padding=False)
        with gr.Tab("Timeline · گاه‌شمار", id="timeline") as timeline_tab:
            gr.Markdown("The articles that pass the filters beside the chat, by date; those cited by the latest "
                        "answer are marked. Brush a range on the plot to narrow the list; click a row to read "
                        "the article.")
            plot = gr.ScatterPlot(x="date", y="agency", color="kind", tooltip=["title", "date", "agency"],
                                  elem_id="rag-timeline", height=320, x_title="date", y_title="agency")
            with gr.Row(equal_height=False):
                timeline_list = gr.Dataframe(headers=["date", "agency", "title", "id", "cited"],
                                             datatype=["str", "str", "str", "str", "str"], interactive=False,
                                             wrap=True, elem_id="rag-timeline-list", scale=3)
                timeline_view = gr.HTML("", elem_id="rag-timeline-article", max_height=480, padding=False)
        with gr.Tab("Articles · مقاله‌ها", id="articles"):
            gr.Markdown(f"Add articles: {' '.join(SUPPORTED)}; at most {max_files} files of {max_mb} MB each "
                        f"per upload. Uploading a file with the same name again updates its article.")
            files = gr.File(label="Files", file_count="multiple", file_types=list(SUPPORTED), elem_id="rag-upload",
                            height=150)
            add_btn = gr.Button("Add to index", variant="primary", elem_id="rag-add")
            ingest_report = gr.HTML("", elem_id="rag-report")
            table = gr.Dataframe(headers=["id", "title", "source", "date (~ year inferred)", "story", "passages",
                                          "characters"],
                                 datatype=["str", "str", "str", "str", "str", "number", "number"],
                                 interactive=False, wrap=True, elem_id="rag-articles")
            with gr.Row():
                to_remove = gr.Dropdown(choices=[], label="Article to remove (or click its row)", scale=3,
                                        elem_id="rag-remove-pick")
                rm_btn = gr.Button("Remove", variant="stop", scale=1, elem_id="rag-remove")

        outs = [chat, q, sources, answers, shown]
        ins = [chat, k, llm, answers, since, until, source, strictness]
        send.click(ask, [q, *ins], outs, api_name="ask", concurrency_id="rag")
        q.submit(ask, [q, *ins], outs, api_name=False, concurrency_id="rag")
        for b in example_buttons:
            b.click(ask, [b, *ins], outs, api_name=False, concurrency_id="rag")
        chat.select(show_answer_sources, [answers, shown], [sources, shown], api_name=False)
        timeline_tab.select(timeline, [since, until, source, answers], [plot, timeline_list, timeline_view],
                            api_name=False)
        plot.select(timeline_range, [since, until, source, answers], [timeline_list], api_name=False)
        timeline_list.select(timeline_open, None, [timeline_view], api_name=False)
        chat.clear(lambda: (EMPTY_SOURCES, None), None, [sources, shown], api_name=False)
        add_btn.click(upload, [files], [ingest_report, files, table, to_remove], api_name="upload",
                      concurrency_id="rag")
        rm_btn.click(remove, [to_remove], [ingest_report, table, to_remove], api_name=False, concurrency_id="rag")
        table.select(pick_row, None, [to_remove], api_name=False)
        app.load(refresh_all, None, [table, to_remove, source], api_name=False)
    return app


def _print_progress(state) -> None:
    print(f"\rindexing {state.fraction:4.0%} {state.describe()}".ljust(70), end="", file=sys.stderr, flush=True)
    if state.finished:
        print(file=sys.stderr)


def open_index(index: str, seeds: str | None = None) -> RAG:
    """Open ``index``; when it is empty and ``seeds`` exists, index the seeds first (with progress)."""
    rag = RAG(index, create=True)
    if seeds and rag.count()[0] == 0 and Path(seeds).is_dir():
        print(f"first start: indexing {seeds}/ into {index}/", file=sys.stderr)
        report = rag.ingest([seeds], progress=_print_progress)
        for s in report.skipped:
            print(f"skipped: {s}", file=sys.stderr)
    return rag


def launch(index: str = "index", host: str = "127.0.0.1", port: int = 7860, seeds: str | None = None,
           auth: tuple[str, str] | None = None, prevent_thread_lock: bool = False,
           max_files: int = MAX_UPLOAD_FILES, max_mb: int = MAX_UPLOAD_MB):
    rag = open_index(index, seeds)
    app = build_app(rag, max_files=max_files, max_mb=max_mb)
    app.queue(default_concurrency_limit=1)
    out = app.launch(server_name=host, server_port=port, css=CSS, js=JS, auth=auth,
                     max_file_size=f"{max_mb}mb", footer_links=["api"],
                     prevent_thread_lock=True, show_error=True)
    # Only once the port is open: torch and the reader (~7 s) load in the background, not in the
    # way of the page; a question asked before they are ready waits for them.
    rag.preload_reader()
    if not prevent_thread_lock:
        app.block_thread()
    return out
