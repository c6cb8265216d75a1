"""Milvus faults, the fuller runs (tests/test_milvus_faults.py has the fast variants):

    python bench/milvus_faults.py [--articles 300] [--kills 20] [--server-kills 3] [--users 4]
                                  [--out bench/results/robustness.md]

A Milvus Lite gRPC server (as the tests start it) and generated articles (bench/kill_ingest.py's
``base_article``: words of the seed article, ~900 characters) in one JSONL file, in two versions
(the second changes every article), embedded by ``hashed-384``. Three parts:

1. **writer kills**: `rag ingest` of the other version into one collection, `kill -9` after a
   uniform random delay within a clean run's time; then the same ingestion again (must exit 0) and
   ``rag.check`` (every article once, at the version just ingested, parts agreeing).
2. **server kills**: a fresh collection; `kill -9` of the server once a writer has stored some
   articles, while an app (``rag.ui``'s ask, in this process) is asking in a loop: the writer must
   exit 2 with one line, the app must answer "The index is unavailable, retrying" (no traceback);
   the server is restarted on its port and data: seconds until the app answers again (target ≤ 10),
   then the writer re-run (exit 0) and ``rag.check``.
3. **many writers**: 3 `rag ingest` at once into one collection (A: the first 60% as version 1;
   B: the last 60%, overlapping A; C: the first 30% as version 2, overlapping A) while ``--users``
   gradio_client users ask `app.py` served from the same collection; after: ``rag.check``, every
   article at a version one of its writers gave, and ``RAG.ask`` answers (JSON) of 20 questions
   equal to those of a fresh single-writer ingestion of the same versions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests")]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "RAG_MILVUS_TIMEOUT": "20",
       "GRADIO_ANALYTICS_ENABLED": "False"}


def corpus(n: int, version: int):
    from kill_ingest import base_article, base_words

    words = base_words()
    out = []
    for i in range(n):
        a = base_article(i, words, 5)
        if version == 2:
            a.text += f"\n\nنسخه دوم این گزارش با بند تازه شماره {i}."
        out.append(a)
    return out


def write_jsonl(path: Path, arts) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for a in arts:
            f.write(json.dumps({"id": a.id, "title": a.title, "text": a.text}, ensure_ascii=False) + "\n")
    return path


def loaded(path: Path) -> dict:
    """The articles of a JSONL file as ingestion reads them (agency and date found in the text),
    by id: their fingerprints are what the index stores."""
    from rag.articles import load_file

    return {a.id: a for a in load_file(path).articles}


def ingest(path: Path, loc: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(path), "--index", loc, "--model",
                             "hashed-384", "--json"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def rag_of(loc: str):
    from rag import RAG
    from rag.hashed import HashedEmbedder

    return RAG(loc, embedder=HashedEmbedder(), create=True, reader=False)


def checked(r, n: int, shas: dict[str, str] | None = None) -> list[str]:
    """What is wrong (empty: every article once, parts agreeing, at the given versions)."""
    from rag import check as checking

    rep = checking.check(r.store, r.embedder, sample=10)
    problems = [] if rep.ok else rep.lines()[:5]
    if rep.articles != n:
        problems.append(f"{rep.articles} articles, expected {n}")
    if shas:
        wrong = [a for a, s in shas.items() if (r.store.state(a) or ("",))[0] != s]
        if wrong:
            problems.append(f"{len(wrong)} articles not at the version ingested, e.g. {wrong[:3]}")
    return problems


def part_writer_kills(port: int, args, work: Path, rng: random.Random, out: dict) -> None:
    v = [None, corpus(args.articles, 1), corpus(args.articles, 2)]
    files = {k: write_jsonl(work / f"v{k}.jsonl", v[k]) for k in (1, 2)}
    loc = f"milvus://127.0.0.1:{port}/kills_{uuid.uuid4().hex[:8]}"
    t = time.perf_counter()
    p = ingest(files[1], loc)
    p.communicate()
    ref_time = time.perf_counter() - t
    r = rag_of(loc)
    rows, failures = [], 0
    for k in range(args.kills):
        version = 2 if k % 2 == 0 else 1
        delay = rng.uniform(0.3, ref_time)
        p = ingest(files[version], loc)
        time.sleep(delay)
        killed = p.poll() is None
        if killed:
            p.send_signal(signal.SIGKILL)
        p.communicate()
        t = time.perf_counter()
        q = ingest(files[version], loc)
        stdout, stderr = q.communicate()
        rerun = time.perf_counter() - t
        rep = json.loads(stdout) if q.returncode in (0, 1) and stdout.strip() else {}
        problems = [] if q.returncode == 0 else [f"re-run exited {q.returncode}: {stderr.strip()[-300:]}"]
        problems += checked(r, args.articles, {a.id: a.sha for a in loaded(files[version]).values()})
        failures += bool(problems)
        rows.append((k + 1, version, round(delay, 2), killed, len(rep.get("unchanged", [])),
                     len(rep.get("added", [])) + len(rep.get("updated", [])), round(rerun, 1), problems))
        print(f"writer kill {k + 1}: v{version} at {delay:.2f} s killed={killed}; re-run wrote "
              f"{rows[-1][5]}, unchanged {rows[-1][4]}: {'ok' if not problems else problems}", flush=True)
    out["writer"] = {"clean_run_s": round(ref_time, 1), "rows": rows, "failures": failures}


def part_server_kills(args, work: Path, out: dict) -> None:
    from milvus_server import start_milvus_lite, stop
    from rag.ui import build_app

    arts = corpus(args.articles, 1)
    path = write_jsonl(work / "server.jsonl", arts)
    rows = []
    for s in range(args.server_kills):
        data = work / f"server{s}"
        data.mkdir()
        proc, port = start_milvus_lite(str(data / "data"), str(data / "log"))
        loc = f"milvus://127.0.0.1:{port}/srv"
        app = rag_of(loc)
        ask = next(f.fn for f in build_app(app, llm_field=False).fns.values() if f.api_name == "ask")
        said: list[str] = []
        stop_asking = threading.Event()

        def asking():  # a user asking all along (one question in flight when the server dies)
            while not stop_asking.is_set():
                said.append(list(ask(arts[3].title, [], 3, "", []))[-1][0][-1]["content"])

        writer = ingest(path, loc)
        t0 = time.monotonic()
        while app.count()[0] == 0 and writer.poll() is None and time.monotonic() - t0 < 120:
            time.sleep(0.2)
        asker = threading.Thread(target=asking, daemon=True)
        asker.start()
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _, err = writer.communicate(timeout=180)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        time.sleep(2)
        n_down = len(said)
        proc, _ = start_milvus_lite(str(data / "data"), str(data / "log2"), port=port)
        back = time.monotonic()
        while not (len(said) > n_down and "rag-a-" in said[-1]) and time.monotonic() - back < 60:
            time.sleep(0.1)
        recovered = time.monotonic() - back
        stop_asking.set()
        asker.join(timeout=60)
        down = said[:n_down]
        rerun = ingest(path, loc)
        rerun.communicate(timeout=300)
        problems = checked(app, args.articles, {a.id: a.sha for a in loaded(path).values()})
        bad = [x for x in down if "rag-a-" not in x and "unavailable, retrying" not in x]
        row = {"writer_exit": writer.returncode, "stderr_lines": len(lines), "stderr": lines[-1][:200] if lines else "",
               "answers_while_down": sum("unavailable, retrying" in x for x in down),
               "other_answers_while_down": len(bad), "traceback": any("Traceback" in x for x in said),
               "recovered_s": round(recovered, 1), "rerun_exit": rerun.returncode, "problems": problems}
        rows.append(row)
        print(f"server kill {s + 1}: {row}", flush=True)
        app.close()
        stop(proc)
    out["server"] = rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def part_many_writers(port: int, args, work: Path, out: dict) -> None:
    from gradio_client import Client
    from load import text_of

    n = args.articles
    v1, v2 = corpus(n, 1), corpus(n, 2)
    sets = {"A": v1[:int(0.6 * n)], "B": v1[int(0.4 * n):], "C": v2[:int(0.3 * n)]}
    loc = f"milvus://127.0.0.1:{port}/many_{uuid.uuid4().hex[:8]}"
    r = rag_of(loc)  # the collections exist before the app opens them
    app_port = free_port()
    log = open(work / "app.log", "w")
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(app_port), "--index", loc, "--seeds", ""],
                           cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{app_port}/"
    try:
        t0 = time.monotonic()
        while True:
            try:
                socket.create_connection(("127.0.0.1", app_port), timeout=1).close()
                break
            except OSError:
                if app.poll() is not None or time.monotonic() - t0 > 180:
                    raise RuntimeError(f"app.py did not start; see {work / 'app.log'}")
                time.sleep(0.5)
        results: list[tuple[str, float]] = []
        done = threading.Event()

        def user(c: int) -> None:
            client = Client(url, verbose=False, download_files=False)
            i = c
            while not done.is_set():
                q = v1[(i * 7) % n].title
                i += 1
                t = time.perf_counter()
                try:
                    msg = text_of(client.predict(q, [], 5, api_name="/ask")[0][-1])
                    kind = ("unavailable" if "unavailable, retrying" in msg else
                            "other: " + msg[:200] if "rag-error" in msg else "answer")
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    kind = f"error: {type(exc).__name__}: {str(exc)[:200]}"
                results.append((kind, time.perf_counter() - t))

        Client(url, verbose=False, download_files=False).predict("warm-up", [], 5, api_name="/ask")  # loads the reader
        users = [threading.Thread(target=user, args=(c,), daemon=True) for c in range(args.users)]
        for u in users:
            u.start()
        t = time.perf_counter()
        paths = {k: write_jsonl(work / f"{k}.jsonl", arts) for k, arts in sets.items()}
        writers = {k: ingest(p, loc) for k, p in paths.items() if k != "C"}
        time.sleep(args.c_delay)  # C's changed versions land while A is writing (the later write wins)
        writers["C"] = ingest(paths["C"], loc)
        for p in writers.values():
            p.communicate(timeout=1800)
        exits = {k: p.returncode for k, p in writers.items()}
        wall = time.perf_counter() - t
        done.set()
        for u in users:
            u.join(timeout=120)
    finally:
        app.terminate()
        app.wait(timeout=30)
        log.close()
    final = {**loaded(paths["A"]), **loaded(paths["B"])}
    chosen = {}
    for a in loaded(paths["C"]).values():
        sha = (r.store.state(a.id) or ("",))[0]
        chosen[a.id] = "v2" if sha == a.sha else "v1" if sha == final[a.id].sha else "neither"
        if sha == a.sha:
            final[a.id] = a
    problems = checked(r, n, {k: a.sha for k, a in final.items()})
    fresh = rag_of(f"milvus://127.0.0.1:{port}/fresh_{uuid.uuid4().hex[:8]}")
    fresh.add_articles(list(final.values()))
    qs = [v1[i].title for i in range(0, n, max(1, n // 20))]
    same = sum(r.ask(q).to_json() == fresh.ask(q).to_json() for q in qs)
    kinds: dict[str, int] = {}
    for k, _ in results:
        kinds[k.split(":")[0]] = kinds.get(k.split(":")[0], 0) + 1
    lat = sorted(s for k, s in results if k == "answer")
    out["many"] = {"writers_exit": exits, "wall_s": round(wall, 1), "user_outcomes": kinds,
                   "user_p50_s": round(lat[len(lat) // 2], 2) if lat else None,
                   "user_p95_s": round(lat[int(0.95 * (len(lat) - 1))], 2) if lat else None,
                   "C_versions": {v: list(chosen.values()).count(v) for v in ("v1", "v2", "neither")},
                   "problems": problems, "same_answers": f"{same}/{len(qs)}",
                   "errors": [k for k, _ in results if not k.startswith(("answer", "unavailable"))][:5]}
    print(f"many writers: {out['many']}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=int, default=300)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--server-kills", type=int, default=3)
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--c-delay", type=float, default=8.0, help="seconds writer C starts after A and B")
    ap.add_argument("--parts", default="writer,server,many")
    args = ap.parse_args()
    from milvus_server import start_milvus_lite, stop

    rng = random.Random(args.seed)
    out: dict = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="milvus-faults-") as tmp:
        work = Path(tmp)
        proc, port = start_milvus_lite(str(work / "data"), str(work / "server.log"))
        try:
            if "writer" in args.parts:
                part_writer_kills(port, args, work, rng, out)
            if "server" in args.parts:
                part_server_kills(args, work, out)
            if "many" in args.parts:
                part_many_writers(port, args, work, out)
        finally:
            stop(proc)
    out["seconds"] = round(time.perf_counter() - t0)
    print(json.dumps(out, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
