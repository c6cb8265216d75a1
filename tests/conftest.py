"""Shared fixtures: offline model loading, one seed index per test session, and the fake parts.

The default model is loaded once per process (``rag.embedders.load_embedder`` caches it), so every
test that builds a ``RAG`` with the default embedder shares it. Such tests are marked ``model``
(pyproject.toml lists the markers); a test without the mark that loads a real model fails and
says so, so the core tier (``-m "not model and not browser and not milvus"``) stays model-free.
It builds with the fake parts instead (``rag.hashed``): ``fake_seed_index`` (the seed article
embedded by ``HashedEmbedder``, which reopens by name) and ``fake_reader`` (``TermReader``, given
to every RAG that loads the reader in the test).
"""

from __future__ import annotations

import os

# Set before anything imports huggingface_hub / transformers: a hub lookup can hang for ~75 s.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Caches the code writes (eval indexes, the materialized e5-small model) go to a folder of this run,
# never to the user's cache; removed at the end of the session.
import shutil  # noqa: E402
import tempfile  # noqa: E402

_TEST_HOME = tempfile.mkdtemp(prefix="rag-test-home-")
os.environ["RAG_HOME"] = _TEST_HOME

import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import rag  # noqa: E402
import rag.embedders  # noqa: E402
import rag.reader  # noqa: E402
from rag.hashed import HashedEmbedder, TermReader  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEEDS = Path(__file__).parent.parent / "seeds"
SEED_FILE = next(iter(sorted(SEEDS.glob("*.txt"))))
SEED_ID = SEED_FILE.stem


# An index built with the hashed embedder reopens by its name (RAG(index), the CLI in this process).
FAKE_EMBEDDER = HashedEmbedder().name
rag.embedders.register(FAKE_EMBEDDER, lambda device: HashedEmbedder())


def write_file(folder: Path, name: str, text: str) -> Path:
    """``folder/name`` holding ``text`` (UTF-8), the folder made as needed."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture(scope="session", autouse=True)
def _clean_test_home():
    yield
    shutil.rmtree(_TEST_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture(autouse=True)
def _real_models_only_when_marked(request, monkeypatch):
    """Loading a real model in a test not marked ``model`` fails, naming the test and the way out."""
    if request.node.get_closest_marker("model") is not None:
        return

    def refuse(what: str):
        def load(*args, **kwargs):
            raise RuntimeError(f"{request.node.nodeid} loads {what}: mark it @pytest.mark.model, or build with "
                               f"the fake parts (fake_seed_index, fake_reader, rag.hashed)")
        return load

    monkeypatch.setattr(rag.embedders, "_CACHE", {})  # what earlier model tests loaded is not at hand
    for name in rag.embedders.BUNDLED:
        monkeypatch.setitem(rag.embedders.FACTORIES, name, refuse(f"the real model {name!r}"))
    monkeypatch.setattr(rag.embedders, "_sentence_transformer", lambda name: refuse(f"the model {name!r}"))
    # the reader's files are still checked (without torch); loading its model is refused
    monkeypatch.setattr(rag.reader, "materialize", refuse("the trained reader"))


@pytest.fixture(scope="session")
def fake_seed_index(tmp_path_factory) -> Path:
    """An index of ``seeds/`` built once with the hashed embedder (no model); read-only, as
    ``seed_index``. Its answers need ``fake_reader``."""
    index = tmp_path_factory.mktemp("fake-seed") / "index"
    report = rag.RAG(index, embedder=HashedEmbedder(), create=True, reader=False).ingest([SEEDS])
    assert report.ok and report.added == [SEED_ID], report.skipped
    return index


@pytest.fixture
def fake_reader(monkeypatch) -> TermReader:
    """The term-overlap reader, given to every RAG that loads the reader during the test (the CLI's
    too); it reads questions through the hashed embedder as its question adapter."""
    reader = TermReader(HashedEmbedder())
    monkeypatch.setattr(rag.reader, "load_reader", lambda: reader)
    return reader


@pytest.fixture(scope="session")
def fake_seed_rag(fake_seed_index) -> rag.RAG:
    """A read-only RAG over ``fake_seed_index`` answering with the term-overlap reader."""
    return rag.RAG(fake_seed_index, reader=TermReader(HashedEmbedder()))


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory) -> Path:
    """An index of ``seeds/`` built once with the default (e5-small) embedder: for tests marked
    ``model``. Tests must not write to it; build your own index for ingestion/removal tests."""
    index = tmp_path_factory.mktemp("seed") / "index"
    report = rag.RAG(index, create=True).ingest([SEEDS])
    assert report.ok, report.skipped
    assert report.added == [SEED_ID]
    return index


@pytest.fixture(scope="session")
def seed_rag(seed_index) -> rag.RAG:
    """A read-only RAG over the seed index."""
    return rag.RAG(seed_index)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app_py(index: Path, log_path: Path, *args: str, timeout: float = 120):
    """``python app.py`` on a free local port over ``index``; yields its URL once it listens, and
    stops it afterwards. Fails the test (with the app's output) if it exits or never listens."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log_path, "w+") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--index", str(index),
                                 *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"app.py exited early:\n{log.read()[-3000:]}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        pytest.fail(f"app.py did not start listening within {timeout:.0f} s")
                    time.sleep(0.3)
            yield f"http://127.0.0.1:{port}/"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
