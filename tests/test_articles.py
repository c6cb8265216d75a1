"""Loaders: files and folders become Articles whose text is kept as read and whose boilerplate is
expressed as content spans; bad inputs are skipped with a reason, never a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rag.articles import (Article, LoadError, decode_bytes, iter_files, load_file, parse_jsonl,
                          parse_text)

from conftest import SEED_FILE, SEED_ID

PARAGRAPH = ("اسحاق دار، وزیر امور خارجه پاکستان، روز شنبه در سفری یک\u200cروزه وارد کابل شد و با مقامات طالبان "
             "دیدار کرد. این نخستین سفر یک وزیر خارجه پاکستان به کابل در سال\u200cهای اخیر است.")


def _in_content(article: Article, start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in article.content_spans)


def _overlaps_content(article: Article, start: int, end: int) -> bool:
    return any(start < e and s < end for s, e in article.content_spans)


def _line_spans(text: str) -> list[tuple[int, int]]:
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        out.append((pos, pos + len(line.rstrip("\r\n"))))
        pos += len(line)
    return out


# ---------------------------------------------------------------- the seed .txt


@pytest.fixture(scope="module")
def seed_article() -> Article:
    loaded = load_file(SEED_FILE)
    assert loaded.skipped == []
    assert len(loaded.articles) == 1
    return loaded.articles[0]


def test_seed_text_kept_byte_for_byte(seed_article):
    assert seed_article.text == SEED_FILE.read_bytes().decode("utf-8")
    assert seed_article.id == SEED_ID
    assert seed_article.path == str(SEED_FILE)


def test_seed_title_is_first_line(seed_article):
    first = seed_article.text.splitlines()[0].strip()
    assert seed_article.title == first == "اسحاق دار: پاکستان هیچ رابطه دیپلماتیک رسمی با طالبان ندارد"
    s = seed_article.text.index(first)
    assert not _overlaps_content(seed_article, s, s + len(first))


def test_seed_repeated_title_not_content(seed_article):
    text = seed_article.text
    nonempty = [(s, e) for s, e in _line_spans(text) if text[s:e].strip()]
    s, e = nonempty[2]  # the headline printed again below the summary
    assert text[s:e].strip() == seed_article.title
    assert not _overlaps_content(seed_article, s, e)
    # the summary (2nd non-empty line) and the body are content
    assert _in_content(seed_article, *nonempty[1])
    assert _in_content(seed_article, *nonempty[3])


@pytest.mark.parametrize("footer", ["Facebook", "Twitter", "WhatsApp", "Telegram", "Email", "مطالب مرتبط"])
def test_seed_footer_outside_content(seed_article, footer):
    text = seed_article.text
    lines = [(s, e) for s, e in _line_spans(text) if text[s:e].strip() == footer]
    assert lines, f"{footer} line expected in the seed"
    for s, e in lines:
        assert not _overlaps_content(seed_article, s, e)
    assert footer not in seed_article.content()


def test_seed_content_spans_well_formed(seed_article):
    spans = seed_article.content_spans
    assert spans
    prev = 0
    for s, e in spans:
        assert prev <= s < e <= len(seed_article.text)
        prev = e
    assert "کوالالامپور" in seed_article.content()


def test_seed_source_and_date(seed_article):
    # «به گزارش خبرگزاری معمار؛ ... روز جمعه(۲۰سرطان)»: the agency by one name, the day as ISO with
    # its year inferred (the article's latest full date is 20 May 2025, and 20 Saratan is a Friday
    # first in 1404)
    assert seed_article.source == "Memar"
    assert (seed_article.date, seed_article.date_inferred, seed_article.calendar) == ("2025-07-11", True, "afghan")


def test_markdown_title_and_sha_changes_with_text():
    a = parse_text("# عنوان **مهم**\n\nمتن خبر اینجاست.\n", article_id="m", markdown=True)
    assert a.title == "عنوان مهم"
    b = parse_text("# عنوان **مهم**\n\nمتن خبر دیگر است.\n", article_id="m", markdown=True)
    assert a.sha != b.sha
    assert a.sha == parse_text("# عنوان **مهم**\n\nمتن خبر اینجاست.\n", article_id="m", markdown=True).sha


def test_title_only_text_is_its_own_content():
    a = parse_text("فقط یک عنوان\n", article_id="t")
    assert a.title == "فقط یک عنوان"
    assert a.content() == "فقط یک عنوان"


# ---------------------------------------------------------------- JSONL


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_ids_preserved_verbatim(tmp_path):
    f = _write_jsonl(tmp_path / "a.jsonl", [
        json.dumps({"id": "pqa-00000", "title": "یک", "text": "متن اول."}, ensure_ascii=False),
        json.dumps({"passage_id": "a/b c", "text": "متن دوم.\nخط دوم"}, ensure_ascii=False),
        json.dumps({"id": 17, "title": "عدد", "text": "متن سوم.", "source": "منبع", "date": "2025-01-02",
                    "url": "https://example.org/x"}, ensure_ascii=False),
        json.dumps({"id": "00042", "title": "صفر", "text": "متن چهارم."}, ensure_ascii=False),
    ])
    loaded = load_file(f)
    assert loaded.skipped == []
    assert [a.id for a in loaded.articles] == ["pqa-00000", "a/b c", "17", "00042"]
    a2 = loaded.articles[1]
    assert a2.text == "متن دوم.\nخط دوم"
    assert a2.title == "متن دوم."  # no title: the first line of the text
    a3 = loaded.articles[2]
    assert (a3.title, a3.source, a3.date, a3.url) == ("عدد", "منبع", "2025-01-02", "https://example.org/x")
    assert all(a.path == str(f) for a in loaded.articles)


def test_jsonl_bad_lines_reported_by_number_others_loaded(tmp_path):
    f = _write_jsonl(tmp_path / "b.jsonl", [
        json.dumps({"id": "ok1", "text": "درست."}),
        '{"id": "broken", "text": "no closing brace"',
        "",
        json.dumps({"id": "notext", "title": "t"}),
        json.dumps({"id": "ok1", "text": "تکراری."}),
        json.dumps({"text": "بی شناسه"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "ok2", "text": "درست دوم."}),
    ])
    loaded = load_file(f)
    assert [a.id for a in loaded.articles] == ["ok1", "ok2"]
    assert loaded.articles[0].text == "درست."  # the first of the duplicates is kept
    by_line = {s.path: s.reason for s in loaded.skipped}
    assert set(by_line) == {f"{f}:2", f"{f}:4", f"{f}:5", f"{f}:6", f"{f}:7"}
    assert "invalid JSON" in by_line[f"{f}:2"]
    assert "notext" in by_line[f"{f}:4"] and "text" in by_line[f"{f}:4"]
    assert "duplicate" in by_line[f"{f}:5"] and "ok1" in by_line[f"{f}:5"]
    assert "id" in by_line[f"{f}:6"]
    assert "object" in by_line[f"{f}:7"]


def test_parse_jsonl_directly():
    loaded = parse_jsonl('{"id": "x", "text": "   "}\n{"id": "y", "text": "t"}', path="p.jsonl")
    assert [a.id for a in loaded.articles] == ["y"]
    assert [s.path for s in loaded.skipped] == ["p.jsonl:1"]


# ---------------------------------------------------------------- HTML

HTML = f"""<!DOCTYPE html>
<html lang="fa" dir="rtl"><head><meta charset="utf-8">
<title>سفر وزیر خارجه پاکستان به کابل</title>
<meta property="og:title" content="سفر وزیر خارجه پاکستان به کابل">
<meta property="og:site_name" content="خبرگزاری نمونه">
</head><body>
<nav><ul><li><a href="/">صفحه اصلی</a></li><li><a href="/p">منوی سیاست</a></li><li><a href="/s">منوی ورزش</a></li></ul></nav>
<article>
<h1>سفر وزیر خارجه پاکستان به کابل</h1>
<p>{PARAGRAPH}</p>
<p>او در این دیدار گفت که پاکستان خواهان روابط بهتر با همسایه غربی خود است و همکاری&zwnj;های اقتصادی و
تجاری میان دو کشور باید گسترش یابد. دو طرف درباره امنیت مرزها و بازگشت پناهجویان گفت‌وگو کردند.</p>
<p>به گفته مقامات، نشست بعدی دو کشور در ماه آینده در اسلام‌آباد برگزار خواهد شد و هیئت‌های فنی جزئیات
توافق‌ها را بررسی خواهند کرد.</p>
</article>
<footer><p>تمامی حقوق محفوظ است. پاورقی سایت</p></footer>
</body></html>
"""


def test_html_main_text_and_title(tmp_path):
    f = tmp_path / "page.html"
    f.write_text(HTML, encoding="utf-8")
    loaded = load_file(f)
    assert loaded.skipped == []
    [art] = loaded.articles
    assert art.id == "page"
    assert art.title == "سفر وزیر خارجه پاکستان به کابل"
    assert "وارد کابل شد" in art.text
    assert "اسلام\u200cآباد" in art.text  # ZWNJ survives extraction
    assert "همکاری\u200cهای" in art.text  # also when written as &zwnj;
    assert PARAGRAPH in art.text
    for boilerplate in ("منوی سیاست", "منوی ورزش", "پاورقی سایت", "<p>", "<nav"):
        assert boilerplate not in art.text
    assert art.source == "نمونه"  # «به گزارش خبرگزاری نمونه»: the outlet's name without «خبرگزاری»


def test_html_without_main_text_skipped(tmp_path):
    f = tmp_path / "empty.htm"
    f.write_text("<html><head><title>x</title><script>var a = 1;</script></head><body><div> </div></body></html>",
                 encoding="utf-8")
    loaded = load_file(f)
    assert loaded.articles == []
    assert len(loaded.skipped) == 1 and "main text" in loaded.skipped[0].reason


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"   \n\t \r\n  ", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00", "binary"),
    ("    \n".encode("utf-16"), "empty"),
    (bytes(range(1, 32)) * 20, "binary"),
])
def test_decode_rejects_with_reason(data, reason):
    with pytest.raises(LoadError, match=reason):
        decode_bytes(data)


def test_invalid_utf8_rejected_with_offset():
    data = b"hello world, this is English text \xff\xfe\xfa and more"
    with pytest.raises(LoadError, match=r"not valid UTF-8.*offset 34"):
        decode_bytes(data)


def test_utf16_bom_and_utf8_bom_and_cp1256_decoded():
    text = "عنوان خبر\n\nاسحاق دار در کابل بود."
    assert decode_bytes(text.encode("utf-16")) == text
    assert decode_bytes(b"\xfe\xff" + text.encode("utf-16-be")) == text
    assert decode_bytes(b"\xef\xbb\xbf" + text.encode("utf-8")) == text
    assert decode_bytes("اسحاق دار در کابل بود".encode("cp1256")) == "اسحاق دار در کابل بود"


@pytest.mark.parametrize("name, data, reason", [
    ("empty.txt", b"", "empty"),
    ("blank.md", b"  \n\n  ", "empty"),
    ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
    ("latin1.txt", "café crème brûlée résumé".encode("latin-1"), "UTF-8"),
    ("doc.pdf", b"%PDF-1.4 something", "unreadable PDF"),
    ("doc.docx", b"PK\x03\x04 not really a zip", "unreadable Word document"),
    ("sheet.xlsx", b"PK\x03\x04", "unsupported file type .xlsx"),
    ("noext", b"text", "unsupported file type"),
])
def test_load_file_skips_with_reason(tmp_path, name, data, reason):
    f = tmp_path / name
    f.write_bytes(data)
    loaded = load_file(f)
    assert loaded.articles == []
    assert len(loaded.skipped) == 1
    assert loaded.skipped[0].path == str(f)
    assert reason in loaded.skipped[0].reason
    assert str(f) in str(loaded.skipped[0])


def _minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with a real text layer (Helvetica, ASCII), written by hand."""
    content = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({ln}) Tj T*" for ln in lines) + " ET"
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            "/Resources << /Font << /F1 5 0 R >> >> >>",
            f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_pdf_text_layer_becomes_an_article(tmp_path):
    f = tmp_path / "report.pdf"
    f.write_bytes(_minimal_pdf(["Kabul talks resume", "Officials met in Doha on Monday."]))
    [art] = load_file(f).articles
    assert art.id == "report" and art.title == "Kabul talks resume"
    body = art.content()
    assert "Doha" in body and "Kabul talks resume" not in body


def test_docx_paragraphs_become_an_article(tmp_path):
    import docx

    doc = docx.Document()
    doc.core_properties.title = "گزارش کابل"
    for para in ("گزارش کابل", "مذاکرات در دوحه از سر گرفته شد.", "مقامات روز دوشنبه دیدار کردند."):
        doc.add_paragraph(para)
    f = tmp_path / "news.docx"
    doc.save(f)
    [art] = load_file(f).articles
    assert art.title == "گزارش کابل"
    assert "مذاکرات در دوحه" in art.content()


def test_load_file_utf16_text(tmp_path):
    f = tmp_path / "u16.txt"
    text = "عنوان\n\nمتن خبر درباره کابل."
    f.write_bytes(text.encode("utf-16"))
    [art] = load_file(f).articles
    assert art.text == text and art.title == "عنوان"


def test_load_missing_file_reports_reason(tmp_path):
    loaded = load_file(tmp_path / "gone.txt")
    assert loaded.articles == [] and "cannot read" in loaded.skipped[0].reason


# ---------------------------------------------------------------- folders


def test_iter_files_walks_folders_and_survives_symlink_loop(tmp_path):
    root = tmp_path / "corpus"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "a.txt").write_text("a", encoding="utf-8")
    (root / "sub" / "b.md").write_text("b", encoding="utf-8")
    (root / "sub" / "deeper" / "c.jsonl").write_text("{}", encoding="utf-8")
    (root / "sub" / "image.png").write_bytes(b"\x89PNG")
    (root / ".hidden" / "h.txt").write_text("h", encoding="utf-8")
    (root / ".dot.txt").write_text("d", encoding="utf-8")
    os.symlink(root, root / "loop")
    os.symlink(root / "sub", root / "sub" / "deeper" / "up")
    files, problems = iter_files([root, tmp_path / "missing"])
    names = sorted(p.name for p in files)
    assert names == ["a.txt", "b.md", "c.jsonl"]
    assert [p.path for p in problems] == [str(tmp_path / "missing")]
    assert "no such file" in problems[0].reason


def test_iter_files_takes_a_file_as_is(tmp_path):
    f = tmp_path / "x.pdf"
    f.write_bytes(b"%PDF")
    files, problems = iter_files([f])
    assert files == [f] and problems == []


def test_fingerprint_follows_the_segmentation_version(monkeypatch):
    # Sentence rules changed ⇒ re-ingesting an unchanged article must re-segment it, not skip it.
    import rag.articles

    a = parse_text("# عنوان\n\nمتن خبر اینجاست.\n", article_id="m", markdown=True)
    before = a.sha
    monkeypatch.setattr(rag.articles, "SEGMENTATION", rag.articles.SEGMENTATION + 1)
    assert a.sha != before
