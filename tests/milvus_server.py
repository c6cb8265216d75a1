"""A real Milvus server for the tests: Milvus Lite's gRPC server (``milvus-lite server``) in a
subprocess on a free local port, reached by pymilvus exactly as a Milvus cluster is.

Import the ``milvus_server`` fixture into a test module (it yields the port); the tests that use it
are skipped when the ``milvus`` extra is not installed. One server per test session; each test
uses collections of its own name.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_milvus_lite(data_dir: str, log_path: str, workers: int = 1, timeout: float = 60.0, port: int | None = None
                      ) -> tuple[subprocess.Popen, int]:
    """``(process, port)`` of a Milvus Lite gRPC server on 127.0.0.1 once it answers.

    ``workers``: its request threads. Milvus Lite serves reads concurrently but documents that
    writes to one collection must be serialized, so the tests' server (two writer processes at
    once) takes one request at a time. ``port``: a given one (a server restarted where it was)."""
    port = port or _free_port()
    log = open(log_path, "w+")
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", data_dir,
                             "--host", "127.0.0.1", "--port", str(port), "--max-workers", str(workers)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + timeout
    from pymilvus import MilvusClient

    while True:
        if proc.poll() is not None:
            log.seek(0)
            out = log.read()[-3000:]
            log.close()
            raise RuntimeError(f"milvus-lite server exited early:\n{out}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=2).close()  # answers gRPC, not just listens
            log.close()
            return proc, port
        except Exception:
            if time.time() > deadline:
                stop(proc)
                log.close()
                raise RuntimeError(f"milvus-lite server did not answer on port {port} within {timeout:.0f} s")
            time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory) -> int:
    """The port of a Milvus Lite gRPC server on 127.0.0.1 for this session."""
    pytest.importorskip("pymilvus", reason="the milvus extra is not installed")
    pytest.importorskip("milvus_lite", reason="the milvus extra is not installed")
    folder = tmp_path_factory.mktemp("milvus")
    proc, port = start_milvus_lite(str(folder / "data"), str(folder / "server.log"))
    try:
        yield port
    finally:
        stop(proc)
