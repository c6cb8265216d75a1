"""Loaders: files and folders → :class:`Article`.

An article keeps its decoded text exactly as read; what is *not* content (the title line, a title
repeated below it, a share-button footer) is expressed as ``content_spans`` over that text, so
every chunk and quote stays a plain slice ``article.text[start:end]``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .agencies import canonical, find_agency
from .dates import is_iso_day
from .published import publication_date
from .persian import SEGMENTATION, normalize_text

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl", ".pdf", ".docx")
MAX_FILE_BYTES = 50 * 1024 * 1024  # larger files are refused with this reason (see README)
# A text line this long is not an article (minified or encoded data): embedding it would take many
# minutes and quote nothing a reader wants. Such .txt/.md files are refused with this reason.
MAX_LINE_CHARS = 100_000
MAX_TITLE_CHARS = 300  # a longer title is cut at a word (it is prefixed to every passage embedded)


_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub_surrogates(text: str) -> str:
    """Replace lone surrogate code points (never valid text) by U+FFFD, keeping the length."""
    return _SURROGATE.sub("\ufffd", text) if text else text


@dataclass
class Article:
    id: str
    title: str
    text: str
    source: str | None = None       # the reporting agency, one name per outlet (rag.agencies.canonical)
    date: str | None = None         # publication date, ISO YYYY-MM-DD (Gregorian)
    url: str | None = None
    path: str | None = None
    content_spans: list[tuple[int, int]] = field(default_factory=list)
    date_inferred: bool = False     # the year of ``date`` was not written beside it (rag.published)
    calendar: str | None = None     # the calendar the article wrote its date in (how to show it)
    month_day: str | None = None    # "MM-DD" in ``calendar`` when only day and month are known

    def __post_init__(self) -> None:
        # A lone surrogate (JSON "\ud800", or an API caller's string) cannot be stored or embedded as
        # UTF-8; it becomes U+FFFD one for one, so every offset stays valid.
        self.text = scrub_surrogates(self.text)
        self.title = short_title(scrub_surrogates(self.title))
        if not self.content_spans:
            self.content_spans = [(0, len(self.text))] if self.text else []
        self.source = canonical(self.source)
        if self.date is not None and not is_iso_day(self.date):
            # a date as a caller wrote it («۲۰ سرطان ۱۴۰۴», "July 11, 2025"): read as metadata
            self.date_from(self.date, None)

    def date_from(self, metadata: str | None, reference: dt.date | None) -> None:
        """Set the publication date from ``metadata`` (any calendar), else from the text's dateline
        or attribution sentence; never later than ``reference`` (the ingestion day, default today)."""
        found = publication_date(self.content(), metadata, reference)
        self.date, self.date_inferred, self.calendar, self.month_day = \
            (found.iso, found.inferred, found.calendar, found.month_day) if found else (None, False, None, None)

    @property
    def sha(self) -> str:
        """Fingerprint of everything that affects the index: unchanged sha ⇒ re-ingest is a no-op."""
        h = hashlib.sha256(f"segmentation {SEGMENTATION}\x00".encode())
        for part in (self.title, self.text, self.source or "", self.date or self.month_day or "", self.url or "",
                     json.dumps(self.content_spans)):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        return h.hexdigest()

    def content(self) -> str:
        return "\n".join(self.text[s:e] for s, e in self.content_spans)


def news_metadata(art: Article, date: str | None, source: str | None, reference: dt.date | None) -> Article:
    """The agency and publication date of a loaded article: from its metadata first, then from
    its text (the attribution line, the first dates near the top)."""
    art.source = canonical(source) or find_agency(art.content())
    art.date_from(date, reference)
    return art


@dataclass
class Skipped:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Loaded:
    articles: list[Article] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


class LoadError(Exception):
    """A file (or line) that cannot become an article; the message is the reason shown to the user."""


def short_title(title: str, limit: int = MAX_TITLE_CHARS) -> str:
    """``title``, or its first words up to ``limit`` characters and "…" when it is longer."""
    if len(title) <= limit:
        return title
    cut = title.rfind(" ", limit // 2, limit)
    return title[:cut if cut > 0 else limit].rstrip() + "…"


NOT_INDEXABLE = "no letters or digits: nothing to index"


def _indexable(body: str) -> bool:
    # Sentences are runs holding a letter or digit: without any, the article could never be found.
    return any(c.isalnum() for c in body)


def _check_indexable(body: str) -> None:
    if not _indexable(body):
        raise LoadError(NOT_INDEXABLE)


# ---------------------------------------------------------------- decoding

def decode_bytes(data: bytes) -> str:
    """Decode UTF-8 (with or without BOM), UTF-16 with a BOM, or Windows-1256 Persian text.

    Raises :class:`LoadError` with a reason for empty, binary or undecodable input."""
    if not data.strip():
        raise LoadError("empty file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _check_text(data.decode("utf-16"))
        except UnicodeDecodeError as exc:
            raise LoadError(f"invalid UTF-16 at byte {exc.start}") from None
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (contains NUL bytes)")
    try:
        return _check_text(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        utf8_error = exc
    # UTF-8 with a few bad bytes (a damaged download) has far more valid multi-byte characters than
    # bad bytes; Windows-1256 Persian read as UTF-8 is nearly all bad bytes. Read as Windows-1256,
    # damaged Persian UTF-8 would pass the Arabic-letter test below as mojibake.
    lenient = data.decode("utf-8", "replace")
    bad = lenient.count("\ufffd")
    if sum(1 for c in lenient if c > "\x7f") - bad > bad:
        raise LoadError(f"not valid UTF-8: {bad} bad byte(s), the first at offset {utf8_error.start} "
                        "(the rest is UTF-8, so the file is damaged)")
    # Older Persian sites and Windows tools write Windows-1256; accept it only when the result
    # is clearly Arabic-script text.
    try:
        text = data.decode("cp1256")
    except UnicodeDecodeError:
        text = ""
    letters = [c for c in text if c.isalpha()]
    arabic = sum(1 for c in letters if "\u0600" <= c <= "\u06ff")
    if letters and arabic / len(letters) > 0.6:
        return _check_text(text)
    raise LoadError(f"not valid UTF-8 (bad byte at offset {utf8_error.start}) and not Windows-1256 Persian")


def _check_text(text: str) -> str:
    if not text.strip():
        raise LoadError("empty file (whitespace only)")
    sample = text[:20000]
    controls = sum(1 for c in sample if ord(c) < 32 and c not in "\n\r\t\f\v")
    if controls > max(8, len(sample) // 100):
        raise LoadError("binary file (too many control characters)")
    return text


# ---------------------------------------------------------------- metadata

_FOOTER_LINES = {normalize_text(w) for w in (
    "Facebook", "Twitter", "X", "WhatsApp", "Telegram", "Email", "E-mail", "LinkedIn", "Pinterest",
    "Reddit", "Print", "Share", "Share this", "Copy link", "Tweet", "Messenger", "Viber", "VK",
    "اشتراک", "اشتراک گذاری", "اشتراک‌گذاری", "چاپ", "ایمیل", "تلگرام", "واتساپ", "فیسبوک", "توییتر",
    "کپی لینک", "ارسال",
)}
_RELATED = {normalize_text(w) for w in ("مطالب مرتبط", "اخبار مرتبط", "مطالب پیشنهادی", "Related", "Related articles",
                                        "Related posts", "Read more", "بیشتر بخوانید")}

# ---------------------------------------------------------------- plain text / markdown

def _lines(text: str) -> list[tuple[int, int]]:
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        out.append((pos, pos + len(body)))
        pos += len(line)
    return out


def _title_of(line: str, markdown: bool) -> str:
    t = line.strip()
    if markdown:
        t = re.sub(r"^#{1,6}\s*", "", t).strip()
        t = re.sub(r"[*_`]+", "", t).strip()
    return t


def parse_text(text: str, *, article_id: str, path: str | None = None, markdown: bool = False,
               reference: dt.date | None = None) -> Article:
    """A news text: first non-empty line is the title; a repeat of it is not content twice; the
    share-button / related-articles footer is not content."""
    lines = _lines(text)
    longest = max((e - s for s, e in lines), default=0)
    if longest > MAX_LINE_CHARS:
        raise LoadError(f"a line of {longest:,} characters (the limit is {MAX_LINE_CHARS:,}): not article text "
                        "(minified or encoded data?)")
    nonempty = [i for i, (s, e) in enumerate(lines) if text[s:e].strip()]
    if not nonempty:
        raise LoadError("empty file (whitespace only)")
    t_idx = nonempty[0]
    title = _title_of(text[slice(*lines[t_idx])], markdown)
    keep = [False] * len(lines)
    for i in nonempty[1:]:
        keep[i] = True
    if len(title) > MAX_TITLE_CHARS:
        # A first line this long is a paragraph, not a headline: it stays content, and the title is
        # its beginning.
        keep[t_idx] = True
        title = short_title(title)
    else:
        # A title repeated as a line (scraped pages print the headline twice) is not content.
        title_key = normalize_text(title)
        for i in nonempty[1:]:
            if normalize_text(_title_of(text[slice(*lines[i])], markdown)) == title_key:
                keep[i] = False
    # Footer: everything from a "related articles" line on, and trailing share-button lines.
    for i in nonempty[1:]:
        if normalize_text(text[slice(*lines[i])]) in _RELATED and i > nonempty[len(nonempty) // 2]:
            for j in range(i, len(lines)):
                keep[j] = False
            break
    for i in reversed(nonempty[1:]):
        if not keep[i]:
            continue
        if normalize_text(text[slice(*lines[i])]) in _FOOTER_LINES:
            keep[i] = False
        else:
            break
    spans: list[tuple[int, int]] = []
    last = -1  # index of the last kept line
    for i, (s, e) in enumerate(lines):
        if not keep[i]:
            continue
        # Paragraphs separated only by blank lines form one span; a dropped line splits spans.
        if spans and all(not text[slice(*lines[j])].strip() for j in range(last + 1, i)):
            spans[-1] = (spans[-1][0], e)
        else:
            spans.append((s, e))
        last = i
    if not spans:
        # Title-only file: the title line itself is the content.
        spans = [lines[t_idx]]
    body = "\n".join(text[s:e] for s, e in spans)
    _check_indexable(body)
    return news_metadata(Article(id=article_id, title=title, text=text, path=path, content_spans=spans), None, None,
                         reference)


# ---------------------------------------------------------------- HTML

_ZWNJ_IN_HTML = re.compile(r"\u200c|&zwnj;|&#0*8204;|&#[xX]0*200[cC];")


def protect_zwnj(html: str) -> tuple[str, str]:
    """``html`` with each ZWNJ (raw or as an entity) replaced by a printable placeholder, and the
    placeholder: trafilatura drops non-printable characters, ZWNJ among them (`می‌روم` → `میروم`),
    so it is carried through and put back after."""
    ph = next((c for c in ("\ufffc", "\ufffd", "\u2e3b") if c not in html), "\u200c")
    return _ZWNJ_IN_HTML.sub(ph, html), ph


def parse_html(html: str, *, article_id: str, path: str | None = None, reference: dt.date | None = None) -> Article:
    """Main text and metadata through trafilatura (boilerplate, menus and comments removed)."""
    import trafilatura  # imported on demand: it is only needed for HTML

    html, ph = protect_zwnj(html)
    text = trafilatura.extract(html, output_format="txt", include_comments=False, include_tables=True,
                               favor_recall=True)
    meta = trafilatura.extract_metadata(html)
    if not text or not text.strip():
        raise LoadError("no readable main text found in the HTML")
    _check_indexable(text)
    text = text.replace(ph, "\u200c")
    if meta:
        for attr in ("title", "sitename"):
            if getattr(meta, attr, None):
                setattr(meta, attr, getattr(meta, attr).replace(ph, "\u200c"))
    title = (meta.title if meta and meta.title else "").strip()
    if not title:
        title = text.strip().splitlines()[0].strip()
    art = Article(id=article_id, title=title, text=text, path=path,
                  url=meta.url if meta else None)
    # the text's attribution line names the reporting agency better than the site's name
    art.source = find_agency(text) or canonical(meta.sitename if meta and meta.sitename else None)
    art.date_from(meta.date if meta and meta.date else None, reference)
    return art


# ---------------------------------------------------------------- PDF and Word (the [docs] extra)

def _extractor(module: str, package: str):
    try:
        return __import__(module)
    except ImportError:
        raise LoadError(f"reading this file type needs {package}: pip install -e '.[docs]'") from None


def parse_pdf(data: bytes, *, article_id: str, path: str | None = None, reference: dt.date | None = None) -> Article:
    """The PDF's text layer, page by page (pypdf). A scanned PDF has none and is skipped."""
    import io

    pypdf = _extractor("pypdf", "pypdf")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise LoadError("encrypted PDF")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise LoadError(f"unreadable PDF ({type(exc).__name__})") from None
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise LoadError("no text layer in the PDF (scanned?)")
    return parse_text(text, article_id=article_id, path=path, reference=reference)


def parse_docx(data: bytes, *, article_id: str, path: str | None = None, reference: dt.date | None = None) -> Article:
    """A Word document's paragraphs (python-docx); its title property wins over the first line."""
    import io

    docx = _extractor("docx", "python-docx")
    try:
        doc = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise LoadError(f"unreadable Word document ({type(exc).__name__})") from None
    text = "\n".join(p.text for p in doc.paragraphs)
    if not text.strip():
        raise LoadError("empty Word document")
    art = parse_text(text, article_id=article_id, path=path, reference=reference)
    title = (doc.core_properties.title or "").strip()
    if title:
        art.title = title
    return art


# ---------------------------------------------------------------- JSONL

def parse_jsonl(text: str, *, path: str, reference: dt.date | None = None) -> Loaded:
    """One article a line: ``{"id" (or "passage_id"), "title", "text"}`` plus optional ``source``,
    ``date``, ``url``. A bad line is reported by number; the others are loaded."""
    out = Loaded()
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            out.skipped.append(Skipped(where, f"invalid JSON ({exc.msg})"))
            continue
        if not isinstance(obj, dict):
            out.skipped.append(Skipped(where, "not a JSON object"))
            continue
        aid = obj.get("id", obj.get("passage_id"))
        body = obj.get("text")
        if aid is None or (isinstance(aid, str) and not aid.strip()):
            out.skipped.append(Skipped(where, 'missing "id" (or "passage_id")'))
            continue
        aid = str(aid)
        if not isinstance(body, str) or not body.strip():
            out.skipped.append(Skipped(where, f'article {aid!r} has no "text"'))
            continue
        if not _indexable(body):
            out.skipped.append(Skipped(where, f"article {aid!r} has {NOT_INDEXABLE}"))
            continue
        if aid in seen:
            out.skipped.append(Skipped(where, f"duplicate id {aid!r} (first one kept)"))
            continue
        seen.add(aid)
        title = obj.get("title")
        title = str(title).strip() if title else body.strip().splitlines()[0][:120]

        def opt(key: str) -> str | None:
            v = obj.get(key)
            return str(v) if v not in (None, "") else None

        out.articles.append(news_metadata(Article(id=aid, title=title, text=body, url=opt("url"), path=path),
                                          opt("date"), opt("source"), reference))
    return out


# ---------------------------------------------------------------- files and folders

def article_id_for(path: Path) -> str:
    return path.stem


def load_file(path: Path, file_time_years: bool = False) -> Loaded:
    """Load one file; never raises for bad content: problems come back in ``Loaded.skipped``.
    A file's modification time is no evidence of when its articles were published; only with
    ``file_time_years`` does it give a single .txt/.md article written with a day and month but
    no year the latest such day on or before the file's day."""
    shown = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        return Loaded(skipped=[Skipped(shown, f"unsupported file type {suffix or '(none)'}; "
                                              f"supported: {' '.join(SUPPORTED)}")])
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            # a FIFO would block forever, /dev/zero would never end
            return Loaded(skipped=[Skipped(shown, "not a regular file")])
        # O_NONBLOCK: should the path have become a FIFO since, opening it does not hang.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return Loaded(skipped=[Skipped(shown, "not a regular file")])
            size = st.st_size
            if size <= MAX_FILE_BYTES:
                data = f.read(MAX_FILE_BYTES + 1)  # bounded, even if the file grows meanwhile
                size = max(size, len(data))
        if size > MAX_FILE_BYTES:
            return Loaded(skipped=[Skipped(shown, f"file too large ({size / 2**20:.1f} MiB > "
                                                  f"{MAX_FILE_BYTES // 2**20} MiB limit)")])
    except OSError as exc:
        return Loaded(skipped=[Skipped(shown, f"cannot read file ({exc.strerror or exc})")])
    stored = str(path.resolve())  # the article remembers where it came from, independent of the cwd
    day = dt.date.today()  # the ingestion day: no publication date is later
    try:
        if suffix == ".pdf":
            return Loaded(articles=[parse_pdf(data, article_id=article_id_for(path), path=stored, reference=day)])
        if suffix == ".docx":
            return Loaded(articles=[parse_docx(data, article_id=article_id_for(path), path=stored, reference=day)])
        text = decode_bytes(data)
        if suffix == ".jsonl":
            return parse_jsonl(text, path=shown, reference=day)
        if suffix in (".html", ".htm"):
            return Loaded(articles=[parse_html(text, article_id=article_id_for(path), path=stored, reference=day)])
        art = parse_text(text, article_id=article_id_for(path), path=stored, markdown=suffix in (".md", ".markdown"),
                         reference=day)
        if file_time_years and art.month_day:
            _year_from_file_time(art, dt.date.fromtimestamp(st.st_mtime))
        return Loaded(articles=[art])
    except LoadError as exc:
        return Loaded(skipped=[Skipped(shown, str(exc))])


def _year_from_file_time(art: Article, file_day: dt.date) -> None:
    """The latest day of ``art.month_day`` (in its calendar) on or before ``file_day``: the
    explicit option of :func:`load_file`, the year marked inferred."""
    from .dates import to_gregorian, year_of

    month, day = map(int, art.month_day.split("-"))
    for y in range(year_of(art.calendar, file_day), year_of(art.calendar, file_day) - 2, -1):
        found = to_gregorian(art.calendar, y, month, day)
        if found is not None and found <= min(file_day, dt.date.today()):
            art.date, art.date_inferred, art.month_day = found.isoformat(), True, None
            return


def iter_files(paths: list[str | os.PathLike]) -> tuple[list[Path], list[Skipped]]:
    """Expand folders (recursively, symlink loops visited once, hidden files ignored)."""
    files: list[Path] = []
    problems: list[Skipped] = []
    seen_dirs: set[tuple[int, int]] = set()
    for p in paths:
        p = Path(p)
        if not p.exists():
            problems.append(Skipped(str(p), "no such file or folder"))
            continue
        if not p.is_dir():
            files.append(p)  # a file, or something load_file reports (a FIFO, a device)
            continue
        for root, dirs, names in os.walk(p, followlinks=True, onerror=lambda e: problems.append(
                Skipped(str(e.filename), f"cannot read folder ({e.strerror})"))):
            try:
                st = os.stat(root)
            except OSError:
                dirs[:] = []
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                dirs[:] = []
                continue
            seen_dirs.add(key)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.startswith("."):
                    continue
                fp = Path(root) / name
                if fp.suffix.lower() in SUPPORTED:
                    files.append(fp)
    return files, problems
