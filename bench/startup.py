"""Time from `python app.py` to the first answered question, with an index that already exists.

    python bench/startup.py [--runs 3]

Prints a Markdown table: seconds until the port accepts connections, until the page is served,
and until a first question is answered through gradio_client (it waits for the reader, which
loads in the background once the port is open), the app's peak memory then; and, for scale, how long a bare
`python -c "import gradio"` takes (most of the start-up).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(index: Path) -> tuple[float, float, float, float]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--index", str(index)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("app.py exited")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        t_port = time.perf_counter() - t0
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read()
        t_page = time.perf_counter() - t0
        from gradio_client import Client

        Client(f"http://127.0.0.1:{port}/", verbose=False).predict("In which city did Ishaq Dar speak?", [], 5,
                                                                   api_name="/ask")
        t_answer = time.perf_counter() - t0
        return t_port, t_page, t_answer, peak_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def peak_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def import_gradio() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio"], check=True,
                   env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(ROOT / "seeds"), "--index", str(index)],
                       check=True, stdout=subprocess.DEVNULL)
        one_run(index)  # warm the OS file cache, as a second start on a laptop would be
        runs = [(*one_run(index), import_gradio()) for _ in range(args.runs)]
    print("| measure | median s | runs |\n|---|---|---|")
    for i, name in enumerate(("port open", "page served", "first answer (waits for the reader)",
                              "app peak memory after it, MB", "python -c 'import gradio'")):
        xs = [r[i] for r in runs]
        print(f"| {name} | {statistics.median(xs):.2f} | {', '.join(f'{x:.2f}' for x in xs)} |")


if __name__ == "__main__":
    main()
