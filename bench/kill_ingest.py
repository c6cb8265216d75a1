"""`kill -9` of `rag ingest` at random moments, repeated: the index stays whole, a re-run completes it.

    python bench/kill_ingest.py [--kills 20] [--seed 5] [--articles 12] [--out bench/results/robustness.md]

The corpus is made from the repository alone: variants of the seed article (distinct ids and
text: another city, other dates and figures, paragraphs reordered, a numbered line of their own),
one long article made of several variants (a large transaction), and a JSONL file of three more.
A second version of the corpus changes about half of the articles, for kills during updates.

First two clean ingestions give the reference: one of the corpus into a new index, one of the
changed corpus over a copy of it. Then, for each kill (a seeded RNG picks everything):

- **scenario**: *fresh* (ingest the corpus into a new index) or *update* (ingest the changed
  corpus into a copy of the reference index, so articles are replaced in place);
- **moment**: *timed* (SIGKILL after a uniform random delay within the reference run's wall time,
  start-up included), *in-transaction* (after a random delay, wait for SQLite's rollback journal to
  appear, i.e. a transaction is writing, then kill within 0-3 ms), or *in-cache-write* (wait for a
  temporary file of the atomic FAISS/manifest writes, then kill at once).

What the kill left is classified before anything opens the index (journal left = killed inside a
transaction; temp file left = killed inside an atomic file write; both count as "mid-write").
Then, checked every time:

1. `rag list --json` works (or, when the kill came before the index existed, says there is none);
2. `rag.RAG(index)` opens it and answers a Persian and an English question, every quote an exact
   slice of its article;
3. only whole articles: each article present equals the reference version it came from (old or
   new): fingerprint, every passage span, every sentence span, every vector (cosine >= 0.999 with the reference's); every passage has its
   lexicon row; no chunk, sentence or lexicon row without its article;
4. the FAISS caches match SQLite after open (same ids, same vectors), and the files on disk do too
   whenever the manifest says they are current;
5. re-running the same `rag ingest` exits 0, reports as unchanged exactly the articles that were
   already complete, and leaves the index equal to the reference (same ids, spans, vectors).

A run that ends before its kill is checked too, but not counted: runs go on until ``--kills`` kills
were delivered (at most twice as many runs). It exits 1 if any check failed. The work folder is removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = ["اسحاق دار در کدام شهر سخنرانی کرد؟", "When did the Pakistani foreign minister visit Kabul?"]
CITIES = ["تهران", "دوشنبه", "تاشکند", "آستانه", "باکو", "دوحه", "ریاض", "آنکارا", "استانبول", "جاکارتا",
          "دهلی", "مسقط", "بیشکک", "عشق‌آباد", "مسکو", "پکن"]
FA_DIGITS = "۰۱۲۳۴۵۶۷۸۹"


# ---------------------------------------------------------------- the corpus

def fa_num(n: int) -> str:
    return "".join(FA_DIGITS[int(d)] for d in str(n))


def seed_article() -> tuple[str, list[str]]:
    path = sorted((ROOT / "seeds").glob("*.txt"))[0]
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return lines[0], lines[1:]


def variant(i: int, rng: random.Random, paragraphs: int = 2) -> tuple[str, str]:
    """Title and body of variant ``i``: the seed's story in another city, on other dates, its lead
    and ``paragraphs`` of its other paragraphs in another order, with a numbered line of its own."""
    title, paras = seed_article()
    city = CITIES[i % len(CITIES)]
    day = 1 + (i * 7) % 28
    body_paras = paras[:]
    lead, rest = body_paras[:3], body_paras[3:]
    footer = [p for p in rest if p.isascii() or p.startswith("مطالب")]
    rest = [p for p in rest if p not in footer]
    rng.shuffle(rest)
    rest = rest[:paragraphs]
    text = "\n\n".join(lead + rest)
    text = (text.replace("کوالالامپور", city).replace("۱۹ اپریل", f"{fa_num(day)} اپریل")
            .replace("۲۰ می", f"{fa_num(1 + (day + 5) % 28)} می").replace("۲۰سرطان", f"{fa_num(day)}سرطان"))
    text += f"\n\nاین گزارش شماره {fa_num(i + 1)} از مجموعه گزارش‌های آزمایشی درباره نشست {city} است."
    title = f"{title} ({city}، گزارش {fa_num(i + 1)})"
    return title, text + "\n\n" + "\n".join(footer)


def update_note(i: int) -> str:
    return (f"\n\nبه‌روزرسانی: در نسخه تازه این گزارش، شمار شرکت‌کنندگان نشست {fa_num(40 + i)} نفر اعلام شد "
            f"و برگزارکنندگان گفتند نشست بعدی {fa_num(3 + i % 9)} ماه دیگر برگزار می‌شود.")


def write_corpus(folder: Path, n_articles: int, version: int, rng_seed: int) -> list[str]:
    """Write the corpus (``version`` 1 or 2) into ``folder``; returns the article ids."""
    rng = random.Random(rng_seed)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    n_txt = max(1, n_articles - 4)  # the rest: one long article and three in a JSONL file
    ids = []
    for i in range(n_txt):
        title, text = variant(i, rng)
        if version == 2 and i % 2 == 0:
            text += update_note(i)
        aid = f"var_{i:03d}"
        (folder / f"{aid}.txt").write_text(f"{title}\n\n{text}\n", encoding="utf-8")
        ids.append(aid)
    parts = [variant(100 + j, rng, paragraphs=9) for j in range(4)]
    big = "\n\n".join(f"{t}\n\n{b}" for t, b in parts)
    if version == 2:
        big += update_note(99)
    (folder / "long_000.txt").write_text(f"گزارش بلند: شش نشست منطقه‌ای\n\n{big}\n", encoding="utf-8")
    ids.append("long_000")
    with open(folder / "batch.jsonl", "w", encoding="utf-8") as f:
        for j in range(3):
            title, text = variant(200 + j, rng)
            if version == 2 and j == 1:
                text += update_note(200 + j)
            aid = f"jl-{j:03d}"
            f.write(json.dumps({"id": aid, "title": title, "text": text, "source": "آزمایش"},
                               ensure_ascii=False) + "\n")
            ids.append(aid)
    return ids


# ---------------------------------------------------------------- the index as SQLite holds it

@dataclass
class ArticleState:
    sha: str
    chunks: list[tuple[int, int]]
    sentences: list[tuple[int, int]]
    chunk_vecs: np.ndarray
    sentence_vecs: np.ndarray

    def same(self, other: "ArticleState") -> bool:
        return (self.sha == other.sha and self.chunks == other.chunks and self.sentences == other.sentences
                and same_vectors(self.chunk_vecs, other.chunk_vecs)
                and same_vectors(self.sentence_vecs, other.sentence_vecs))


def same_vectors(a: np.ndarray, b: np.ndarray) -> bool:
    """Row by row the same direction (cosine >= 0.999). Not bit for bit: the default embedder may
    embed a passage on either of its two engines (C or torch, by how much the process has embedded
    so far), whose vectors agree to cosine ~0.9999; a torn or misplaced vector is far off."""
    if a.shape != b.shape:
        return False
    if not len(a):
        return True
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return bool((cos >= 0.999).all())


def _vecs(blobs: list[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.vstack([np.frombuffer(b, dtype=np.float32) for b in blobs])


def snapshot(index: Path) -> tuple[dict[str, ArticleState], list[str]]:
    """Every article as SQLite holds it, and the orphan rows (problems)."""
    dim = json.loads((index / "manifest.json").read_text())["dim"]
    db = sqlite3.connect(index / "rag.sqlite")
    try:
        out: dict[str, ArticleState] = {}
        for aid, sha in db.execute("SELECT id, sha FROM articles ORDER BY id"):
            ch = db.execute('SELECT start, "end", vector FROM chunks WHERE article_id=? ORDER BY seq',
                            (aid,)).fetchall()
            se = db.execute('SELECT start, "end", vector FROM sentences WHERE article_id=? ORDER BY start, id',
                            (aid,)).fetchall()
            out[aid] = ArticleState(sha, [(s, e) for s, e, _ in ch], [(s, e) for s, e, _ in se],
                                    _vecs([v for *_, v in ch], dim), _vecs([v for *_, v in se], dim))
        problems = []
        for kind in ("chunks", "sentences"):
            n = db.execute(f"SELECT count(*) FROM {kind} WHERE article_id NOT IN (SELECT id FROM articles)").fetchone()[0]
            if n:
                problems.append(f"{n} orphan rows in {kind}")
        lex = {r[0] for r in db.execute("SELECT rowid FROM lexicon")}
        chunk_ids = {r[0] for r in db.execute("SELECT id FROM chunks")}
        if lex != chunk_ids:
            problems.append(f"lexicon rows {len(lex)} != passages {len(chunk_ids)} "
                            f"({len(lex - chunk_ids)} orphan, {len(chunk_ids - lex)} missing)")
        return out, problems
    finally:
        db.close()


def sqlite_vectors(index: Path, kind: str) -> dict[int, np.ndarray]:
    db = sqlite3.connect(index / "rag.sqlite")
    try:
        return {i: np.frombuffer(v, dtype=np.float32) for i, v in db.execute(f"SELECT id, vector FROM {kind}")}
    finally:
        db.close()


def faiss_matches(index_obj, rows: dict[int, np.ndarray]) -> str | None:
    """None when the FAISS id-map index holds exactly ``rows`` (ids and vectors), else why not."""
    import faiss

    ids = faiss.vector_to_array(index_obj.id_map).astype(np.int64)
    if sorted(ids.tolist()) != sorted(rows):
        return f"FAISS holds {len(ids)} ids, SQLite {len(rows)} ({len(set(ids.tolist()) ^ set(rows))} differ)"
    if len(ids):
        vecs = faiss.downcast_index(index_obj.index).reconstruct_n(0, len(ids))
        want = np.vstack([rows[int(i)] for i in ids])
        if not np.allclose(vecs, want, atol=1e-6):
            return "FAISS vectors differ from SQLite's"
    return None


# ---------------------------------------------------------------- running and killing `rag ingest`

def ingest_cmd(corpus: Path, index: Path) -> list[str]:
    return [sys.executable, "-m", "rag.cli", "ingest", str(corpus), "--index", str(index), "--json"]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def run_ingest(corpus: Path, index: Path, log: Path) -> tuple[int, dict | None, float]:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.run(ingest_cmd(corpus, index), cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=f,
                           text=True, timeout=1800)
    secs = time.perf_counter() - t0
    try:
        report = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        report = None
    return p.returncode, report, secs


def journal(index: Path) -> Path:
    return index / "rag.sqlite-journal"


def temp_files(index: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(index) if n.endswith(".tmp"))
    except OSError:
        return []


def kill_ingest(corpus: Path, index: Path, log: Path, mode: str, delay: float, rng: random.Random) -> tuple[bool, float]:
    """Start `rag ingest`, SIGKILL it as ``mode`` says; returns (killed, seconds after start)."""
    with open(log, "w") as f:
        proc = subprocess.Popen(ingest_cmd(corpus, index), cwd=ROOT, env=env(), stdout=f, stderr=subprocess.STDOUT)
    t0 = time.perf_counter()
    try:
        deadline = t0 + delay
        while time.perf_counter() < deadline and proc.poll() is None:
            time.sleep(0.002)
        if mode == "in-transaction":
            while proc.poll() is None and not journal(index).exists():
                time.sleep(0.0002)
            time.sleep(rng.uniform(0, 0.003))
        elif mode == "in-cache-write":
            while proc.poll() is None and not temp_files(index):
                time.sleep(0.0002)
        if proc.poll() is not None:
            return False, time.perf_counter() - t0
        os.kill(proc.pid, signal.SIGKILL)
        at = time.perf_counter() - t0
        proc.wait()
        return True, at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def classify(index: Path) -> tuple[str, bool]:
    """Where the kill landed, from the files it left (read before anything opens the index)."""
    if not (index / "manifest.json").exists():
        return "before the index existed", bool(temp_files(index))
    j = journal(index)
    if j.exists() and j.stat().st_size > 0:
        return "inside a SQLite transaction (journal left)", True
    tmps = temp_files(index)
    if tmps:
        kinds = sorted({re.sub(r"\.[^.]+\.tmp$", "", t) for t in tmps})
        return f"inside an atomic write of {', '.join(kinds)} (temp file left)", True
    try:
        manifest = json.loads((index / "manifest.json").read_text())
        db = sqlite3.connect(f"file:{index / 'rag.sqlite'}?mode=ro", uri=True)
        row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        db.close()
    except sqlite3.Error:
        return "while creating the database", False
    gen = int(row[0]) if row else 0
    if manifest.get("faiss_generation") != gen:
        return "between transactions, caches behind SQLite", False
    return "between transactions, caches current", False


# ---------------------------------------------------------------- the checks

@dataclass
class Trial:
    n: int
    scenario: str
    mode: str
    killed: bool = False
    at: float = 0.0
    landed: str = ""
    mid_write: bool = False
    present: int = 0
    old_versions: int = 0
    rerun_added: int = 0
    rerun_updated: int = 0
    rerun_unchanged: int = 0
    litter: int = 0  # temp files of killed atomic writes still in the folder after the re-run
    problems: list[str] = field(default_factory=list)


def check_after_kill(trial: Trial, index: Path, refs: list[dict[str, ArticleState]]) -> dict[str, ArticleState]:
    """Checks 1-4; returns the articles present."""
    import faiss
    from rag import RAG

    p = trial.problems
    lst = subprocess.run([sys.executable, "-m", "rag.cli", "list", "--json", "--index", str(index)], cwd=ROOT,
                         env=env(), capture_output=True, text=True, timeout=300)
    if not (index / "manifest.json").exists():
        if lst.returncode != 2 or "no index" not in lst.stderr:
            p.append(f"rag list without an index: exit {lst.returncode}, {lst.stderr.strip()[:200]}")
        return {}
    listed = [json.loads(ln) for ln in lst.stdout.splitlines() if ln.strip()] if lst.returncode == 0 else None
    if listed is None:
        p.append(f"rag list failed: exit {lst.returncode}: {lst.stderr.strip()[-300:]}")
    try:
        r = RAG(index)
    except Exception as exc:  # noqa: BLE001 - any failure to open is what this script looks for
        p.append(f"RAG(index) failed: {type(exc).__name__}: {exc}")
        return {}
    try:
        state, orphans = snapshot(index)
        p.extend(orphans)
        if listed is not None and sorted(a["id"] for a in listed) != sorted(state):
            p.append("rag list disagrees with SQLite")
        for aid, st in state.items():
            matches = [i for i, ref in enumerate(refs) if aid in ref and st.same(ref[aid])]
            if not matches:
                p.append(f"article {aid} is not whole (matches no reference version: "
                         f"{len(st.chunks)} passages, {len(st.sentences)} sentences)")
            elif 0 in matches and len(refs) > 1 and 1 not in matches:
                trial.old_versions += 1
        for kind in ("chunks", "sentences"):
            why = faiss_matches(r.store._faiss[kind], sqlite_vectors(index, kind))
            if why:
                p.append(f"in-memory {kind} cache after open: {why}")
        check_disk_caches(index, p)
        for q in QUESTIONS:
            try:
                ans = r.ask(q)
            except Exception as exc:  # noqa: BLE001
                p.append(f"ask {q!r} failed: {type(exc).__name__}: {exc}")
                continue
            if state and ans.abstained:
                p.append(f"ask {q!r} abstained with {len(state)} articles present")
            if not state and not ans.abstained:
                p.append(f"ask {q!r} answered from an empty index")
            for c in ans.citations:
                if r.article(c.article_id).text[c.start:c.end] != c.quote:
                    p.append(f"quote [{c.n}] is not a slice of {c.article_id}")
        _ = faiss  # imported for faiss_matches' helpers
        return state
    finally:
        r.close()


def check_disk_caches(index: Path, p: list[str]) -> None:
    import faiss

    manifest = json.loads((index / "manifest.json").read_text())
    db = sqlite3.connect(index / "rag.sqlite")
    row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
    db.close()
    gen = int(row[0]) if row else 0
    if manifest.get("faiss_generation") != gen:
        return  # stale on disk: the store rebuilds it on open (checked in memory above)
    for kind, fname in (("chunks", "vectors.faiss"), ("sentences", "sentences.faiss")):
        if not (index / fname).exists():
            continue
        try:
            why = faiss_matches(faiss.read_index(str(index / fname)), sqlite_vectors(index, kind))
        except RuntimeError as exc:
            why = f"unreadable ({exc})"
        if why:
            p.append(f"{fname} on disk claims generation {gen} but {why}")


def check_final(trial: Trial, index: Path, ref: dict[str, ArticleState]) -> None:
    state, orphans = snapshot(index)
    trial.problems.extend(orphans)
    if sorted(state) != sorted(ref):
        trial.problems.append(f"after re-run: ids {sorted(set(state) ^ set(ref))} differ from the reference")
    for aid in set(state) & set(ref):
        if not state[aid].same(ref[aid]):
            trial.problems.append(f"after re-run: {aid} differs from the reference "
                                  f"({len(state[aid].chunks)} vs {len(ref[aid].chunks)} passages)")
    manifest = json.loads((index / "manifest.json").read_text())
    db = sqlite3.connect(index / "rag.sqlite")
    gen = int(db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
    db.close()
    if manifest.get("faiss_generation") != gen:
        trial.problems.append("after re-run: the FAISS caches on disk are behind SQLite")
    check_disk_caches(index, trial.problems)


# ---------------------------------------------------------------- the report

def code_version() -> str:
    """The commit, and whether rag/ or app.py had uncommitted changes when the figures were taken."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "rag", "app.py")
    return git("rev-parse", "--short", "HEAD") + (" with uncommitted changes in rag/" if dirty else "")


def write_section(out: Path, name: str, body: str) -> None:
    """Replace this script's section of the results file (between its markers), or append it."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = out.read_text(encoding="utf-8") if out.exists() else "# Robustness\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    out.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=5, help="RNG seed for the corpus and the kill moments")
    ap.add_argument("--articles", type=int, default=12, help="articles in the corpus (at least 5)")
    ap.add_argument("--update-share", type=float, default=0.3, help="share of kills during an update")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "robustness.md",
                    help="results file to update ('-' to skip)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus"
    command = " ".join(["python bench/kill_ingest.py", *(argv if argv is not None else sys.argv[1:])])
    t_start = time.perf_counter()

    # The references: clean ingestions of version 1 (new index) and version 2 (over version 1).
    ids = write_corpus(corpus, args.articles, 1, args.seed)
    ref1_index, ref2_index = work / "ref1", work / "ref2"
    rc, rep, t_ref1 = run_ingest(corpus, ref1_index, work / "ref1.log")
    if rc != 0 or rep is None or sorted(rep["added"]) != sorted(ids):
        print(f"reference ingestion failed (exit {rc}); see {work / 'ref1.log'}", file=sys.stderr)
        return 1
    shutil.copytree(ref1_index, ref2_index)
    write_corpus(corpus, args.articles, 2, args.seed)
    rc, rep2, t_ref2 = run_ingest(corpus, ref2_index, work / "ref2.log")
    if rc != 0 or rep2 is None:
        print(f"reference update failed (exit {rc}); see {work / 'ref2.log'}", file=sys.stderr)
        return 1
    embedder = json.loads((ref1_index / "manifest.json").read_text())["embedder"]
    head = code_version()
    ref1, _ = snapshot(ref1_index)
    ref2, _ = snapshot(ref2_index)
    n_chunks, n_sent = sum(len(s.chunks) for s in ref1.values()), sum(len(s.sentences) for s in ref1.values())
    print(f"corpus: {len(ids)} articles, {n_chunks} passages, {n_sent} sentences; clean ingestion {t_ref1:.1f} s, "
          f"update of {len(rep2['updated'])} articles {t_ref2:.1f} s", flush=True)

    trials: list[Trial] = []
    run_time = {"fresh": t_ref1, "update": t_ref2}  # shortened when a run ends before its kill
    n = 0
    while sum(t.killed for t in trials) < args.kills and n < 2 * args.kills:
        n += 1
        scenario = "update" if rng.random() < args.update_share else "fresh"
        mode = rng.choices(["timed", "in-transaction", "in-cache-write"], weights=[6, 3, 1])[0]
        t = Trial(n, scenario, mode)
        index = work / f"kill{n:02d}"
        if scenario == "fresh":
            write_corpus(corpus, args.articles, 1, args.seed)
            refs, final_ref = [ref1], ref1
        else:
            shutil.copytree(ref1_index, index)
            write_corpus(corpus, args.articles, 2, args.seed)
            refs, final_ref = [ref1, ref2], ref2
        ref_time = run_time[scenario]
        delay = rng.uniform(0.0, ref_time) if mode == "timed" else rng.uniform(0.0, 0.8 * ref_time)
        t.killed, t.at = kill_ingest(corpus, index, work / f"kill{n:02d}.log", mode, delay, rng)
        if not t.killed:  # this run was quicker than the reference (a shared machine): aim earlier next time
            run_time[scenario] = min(run_time[scenario], t.at)
        t.landed, t.mid_write = classify(index) if t.killed else ("the run finished before the kill", False)
        present = check_after_kill(t, index, refs)
        t.present = len(present)
        rc, rep, _ = run_ingest(corpus, index, work / f"rerun{n:02d}.log")
        if rc != 0 or rep is None:
            t.problems.append(f"re-run exited {rc}")
        else:
            t.rerun_added, t.rerun_updated, t.rerun_unchanged = map(len, (rep["added"], rep["updated"],
                                                                          rep["unchanged"]))
            complete = sorted(a for a, s in present.items() if a in final_ref and s.same(final_ref[a]))
            if sorted(rep["unchanged"]) != complete:
                t.problems.append(f"re-run called {len(rep['unchanged'])} articles unchanged; "
                                  f"{len(complete)} were complete after the kill")
            check_final(t, index, final_ref)
            t.litter = len(temp_files(index))
        trials.append(t)
        print(f"run {n:2d} (kill {sum(x.killed for x in trials)}/{args.kills}) {scenario:6s} {mode:14s} at {t.at:5.2f} s: {t.landed}; "
              f"{t.present} articles present ({t.old_versions} old versions); re-run added {t.rerun_added}, "
              f"updated {t.rerun_updated}, unchanged {t.rerun_unchanged}; "
              + ("ok" if not t.problems else "FAILED: " + "; ".join(t.problems)), flush=True)
        if not args.keep:
            shutil.rmtree(index, ignore_errors=True)

    failures = sum(1 for t in trials if t.problems)
    kills = sum(t.killed for t in trials)
    mid = sum(t.mid_write for t in trials)
    total = time.perf_counter() - t_start
    print(f"{kills} kills ({mid} mid-write) in {len(trials)} runs, failures: {failures}; {total:.0f} s")

    if str(args.out) != "-":
        rows = "\n".join(
            f"| {t.n} | {t.scenario} | {t.mode} | {t.at:.2f} | {t.landed} | {t.present} | {t.old_versions} | "
            f"{t.rerun_added}/{t.rerun_updated}/{t.rerun_unchanged} | {'ok' if not t.problems else 'FAILED'} |"
            for t in trials)
        landed: dict[str, int] = {}
        for t in trials:
            landed[t.landed] = landed.get(t.landed, 0) + 1
        body = f"""## `kill -9` during `rag ingest`

`{command}` ({time.strftime('%Y-%m-%d')}, at {head}, embedder `{embedder}`, {total:.0f} s on the shared 2-core machine)

Corpus (built from `seeds/` alone): {len(ids)} articles ({args.articles - 4} variants of the seed
article, one long article made of four whole variants, three more in a JSONL file), {n_chunks} passages and
{n_sent} sentences; a clean ingestion takes {t_ref1:.1f} s, the update of {len(rep2['updated'])} changed
articles {t_ref2:.1f} s.

| | |
|---|---|
| runs | {len(trials)} ({sum(t.scenario == 'fresh' for t in trials)} into a new index, {sum(t.scenario == 'update' for t in trials)} updating an existing one) |
| `kill -9` delivered | {kills} |
| kills that landed mid-write (journal or temp file left) | {mid} |
| where they landed | {'; '.join(f'{v} {k}' for k, v in sorted(landed.items(), key=lambda kv: -kv[1]))} |
| articles present after each kill | {', '.join(str(t.present) for t in trials if t.killed)} (of {len(ids)}) |
| failures (any check) | **{failures}** |
| temp files of killed writes still there after the re-run | {sum(t.litter for t in trials)} (harmless, never read; not cleaned up) |

Every run: `rag list` works, `RAG(index)` opens and answers a Persian and an English question with
exact-slice quotes, each article present equals a clean ingestion's (fingerprint, passage and
sentence spans, vectors) in its old or new version, no orphan rows, FAISS caches equal to SQLite
after open (and on disk whenever the manifest calls them current), and the re-run exits 0 with
exactly the complete articles reported unchanged, leaving the index equal to the reference.

| # | scenario | moment | killed at (s) | what it left | articles present | old versions | re-run added/updated/unchanged | checks |
|---|---|---|---|---|---|---|---|---|
{rows}
"""
        write_section(args.out, "kill_ingest", body)
        print(f"wrote {args.out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept: {work}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
